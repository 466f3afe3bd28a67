package sysunit

// Unit names of the renewal timer and the laptop agent.
const (
	RenewService = "dtls-renew.service"
	RenewTimer   = "dtls-renew.timer"
	AgentUnit    = "dtls-agent.service"
)

// Renew is dtls-renew.service and dtls-renew.timer: on a Docker host
// enrolled with an online CA, the daily renewal of the server
// certificate. examples/fleet-host holds the same units with
// /usr/local/bin/dtls and how to install them by hand.
func Renew(exe string) map[string][]byte {
	return map[string][]byte{
		RenewService: []byte(`# On a Docker host enrolled with an online CA ('dtls init --ca-url URL
# --token T'): renews the daemon's server certificate through the CA, with
# mutual TLS and a key made here, once it is within 30 days of its expiry,
# and restarts dockerd to load it (dockerd reads its TLS files only at
# start, moby#23936). Run by dtls-renew.timer; nothing happens on the days
# the certificate is not within the window.
#
# Install (as root):
#   install -m 0644 dtls-renew.service dtls-renew.timer /etc/systemd/system/
#   systemctl daemon-reload
#   systemctl enable --now dtls-renew.timer
#   journalctl -u dtls-renew            # what it renewed, and when

[Unit]
Description=dtls: renew this Docker host's server certificate through the online CA
Documentation=https://github.com/dtls-tool/dtls/tree/main/examples/fleet-host
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=` + exe + ` renew --expiring 30d --restart
UMask=0077
# Root: it writes the server certificate in /etc/docker (root's files)
# and the state directory, and restarts docker through systemd's D-Bus
# API. Owner access needs no capability.
CapabilityBoundingSet=
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-/etc/docker ` + StateDir + `
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
`),
		RenewTimer: []byte(`# Runs dtls-renew.service daily, at a random moment of the day so that the
# hosts of a fleet do not all ask the CA at once; a day missed while the
# host was off is made up at the next boot.

[Unit]
Description=dtls: daily check of this Docker host's server certificate

[Timer]
OnCalendar=daily
RandomizedDelaySec=24h
Persistent=true

[Install]
WantedBy=timers.target
`),
	}
}

// Agent is dtls-agent.service, the laptop's user unit: 'dtls agent'
// renewing the bundles 'dtls enroll' got. examples/agent holds the same
// unit with /usr/local/bin/dtls.
func Agent(exe string) []byte {
	return []byte(`# dtls agent as a systemd user service: renews the client bundles that
# 'dtls enroll' got from an online CA (the bundle store, ~/.docker/dtls, or
# $DTLS_HOME), and the Docker contexts made from them, before they expire.
#
# Install (as the developer, not root):
#   install -D -m 0644 dtls-agent.service ~/.config/systemd/user/dtls-agent.service
#   systemctl --user daemon-reload
#   systemctl --user enable --now dtls-agent.service
#   journalctl --user -u dtls-agent     # what it renewed, and when
# To keep renewing while logged out (a build machine):
#   sudo loginctl enable-linger "$USER"
#
# The agent sleeps at most 10 minutes at a time, so a laptop that wakes
# from suspend renews within minutes what fell due meanwhile.

[Unit]
Description=dtls agent: renew the Docker client certificates of an online CA
Documentation=https://github.com/dtls-tool/dtls/tree/main/examples/agent

[Service]
Type=simple
ExecStart=` + exe + ` agent
# Environment=DTLS_HOME=%h/.docker/dtls
# A CA that cannot be reached never stops the agent: it retries (30 s,
# doubling up to 10 min), warns when less than a third of a certificate's
# lifetime is left, and says so when one expired while the CA was
# unreachable. Restarted when it fails otherwise (a crash), but not when it
# exits 1: that is every bundle refused by the CA (revoked, superseded,
# expired), which asking again cannot change; enrol again ('dtls enroll
# ... --force'), then 'systemctl --user restart dtls-agent'.
Restart=on-failure
RestartSec=1min
RestartPreventExitStatus=1
# New files (a key first of all) are the user's alone; dtls sets every
# mode itself as well.
UMask=0077
# A user service has no capability to drop; these need none to apply
# (seccomp filters, allowed with NoNewPrivileges).
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=default.target
`)
}
