# dtls agent as a Windows scheduled task: at logon and every 15 minutes,
# 'dtls agent --once' renews what is due among the client bundles that
# 'dtls enroll' got from an online CA (%USERPROFILE%\.docker\dtls, or
# %DTLS_HOME%), and the Docker contexts made from them.
#
# Run it once, as the developer (no administrator rights needed):
#   powershell -ExecutionPolicy Bypass -File dtls-agent-task.ps1
#   powershell -ExecutionPolicy Bypass -File dtls-agent-task.ps1 -Dtls C:\tools\dtls.exe
# See what it did:   Get-ScheduledTaskInfo -TaskName 'dtls agent'
# Run it now:        Start-ScheduledTask -TaskName 'dtls agent'
# Remove it:         Unregister-ScheduledTask -TaskName 'dtls agent' -Confirm:$false
#
# The task runs in the user's session (the bundles are the user's files),
# so a console window shows for a moment at each run.
param(
    [string]$Dtls = (Get-Command dtls.exe -ErrorAction Stop).Source,
    [int]$EveryMinutes = 15
)
$ErrorActionPreference = 'Stop'

$action = New-ScheduledTaskAction -Execute $Dtls -Argument 'agent --once'
$atLogon = New-ScheduledTaskTrigger -AtLogOn -User "$env:USERDOMAIN\$env:USERNAME"
# No -RepetitionDuration: the repetition goes on indefinitely (Windows 10
# and later).
$repeat = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes $EveryMinutes)
# A run missed while the machine slept or was off starts as soon as it
# can; on battery too; never two at once. A run that failed is started
# again after a minute, three times at most; a CA that cannot be reached
# is not a failure ('dtls agent --once' exits 0 and warns; the next run
# tries again).
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
    -ExecutionTimeLimit (New-TimeSpan -Minutes 5) -MultipleInstances IgnoreNew `
    -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 1)
$principal = New-ScheduledTaskPrincipal -UserId "$env:USERDOMAIN\$env:USERNAME" -LogonType Interactive -RunLevel Limited

Register-ScheduledTask -TaskName 'dtls agent' -Action $action -Trigger $atLogon, $repeat -Settings $settings -Principal $principal `
    -Description 'Renew the Docker client certificates of an online CA (dtls agent --once)' -Force | Out-Null
Write-Host "registered the scheduled task 'dtls agent': $Dtls agent --once, at logon and every $EveryMinutes minutes"
