package clientenv

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testBundle = &Bundle{Dir: "/home/alice/.docker/dtls/default", Meta: testMeta}

func TestParseShell(t *testing.T) {
	tests := []struct {
		in   string
		want Shell
	}{
		{"bash", Bash},
		{"zsh", Zsh},
		{"fish", Fish},
		{"powershell", PowerShell},
		{"pwsh", PowerShell},
		{"PowerShell", PowerShell},
		{"cmd", Cmd},
		{"tcsh", Tcsh},
		{"csh", Tcsh},
		{"nushell", Nushell},
		{"nu", Nushell},
	}
	for _, tt := range tests {
		got, err := ParseShell(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}

	for _, in := range []string{"", "ksh", "sh", "bash "} {
		_, err := ParseShell(in)
		assert.EqualError(t, err, `unknown shell "`+in+`" (valid: bash, zsh, fish, powershell, cmd, tcsh, nushell)`)
	}
}

func TestShellsAreAllParseable(t *testing.T) {
	for _, sh := range Shells {
		got, err := ParseShell(string(sh))
		require.NoError(t, err)
		assert.Equal(t, sh, got)
	}
}

func TestDetectShell(t *testing.T) {
	tests := []struct {
		shellEnv, goos string
		want           Shell
	}{
		{"/bin/bash", "linux", Bash},
		{"/usr/local/bin/bash", "darwin", Bash},
		{"/bin/zsh", "darwin", Zsh},
		{"/usr/bin/fish", "linux", Fish},
		{"/opt/homebrew/bin/fish", "darwin", Fish},
		{"/usr/bin/pwsh", "linux", PowerShell},
		{"/usr/local/bin/powershell", "linux", PowerShell},
		{"fish", "linux", Fish},
		{"-zsh", "darwin", Zsh},
		{"/bin/sh", "linux", Bash},
		{"/bin/dash", "linux", Bash},
		{"/bin/ksh", "openbsd", Bash},
		{"/bin/tcsh", "freebsd", Tcsh},
		{"/bin/csh", "freebsd", Tcsh},
		{"/usr/bin/nu", "linux", Nushell},
		{"/usr/bin/elvish", "linux", Bash},
		{"", "linux", Bash},
		{"", "darwin", Bash},
		// Windows: no $SHELL in cmd or PowerShell; Git Bash and MSYS set it.
		{"", "windows", PowerShell},
		{"/usr/bin/bash", "windows", Bash},
		{`C:\Program Files\Git\usr\bin\bash.exe`, "windows", Bash},
		{`C:\Program Files\PowerShell\7\pwsh.exe`, "windows", PowerShell},
		{`C:\msys64\usr\bin\ZSH.EXE`, "windows", Zsh},
		{"/usr/bin/fish", "windows", Fish},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, detectShell(tt.shellEnv, tt.goos), "SHELL=%q on %s", tt.shellEnv, tt.goos)
	}
}

func TestVars(t *testing.T) {
	assert.Equal(t, []Var{
		{"DOCKER_HOST", "tcp://srv.example.com:2376"},
		{"DOCKER_TLS_VERIFY", "1"},
		{"DOCKER_CERT_PATH", "/home/alice/.docker/dtls/default"},
	}, Vars(testBundle, ""))

	assert.Equal(t, []Var{
		{"DOCKER_HOST", "tcp://127.0.0.1:12376"},
		{"DOCKER_TLS_VERIFY", "1"},
		{"DOCKER_CERT_PATH", "/home/alice/.docker/dtls/default"},
	}, Vars(testBundle, "tcp://127.0.0.1:12376"))

	names := make([]string, 0, len(VarNames))
	for _, v := range Vars(testBundle, "") {
		names = append(names, v.Name)
	}
	assert.Equal(t, VarNames, names, "--unset removes exactly what env sets")
}

func TestUsageHint(t *testing.T) {
	assert.Equal(t, `eval "$(dtls env)"`, UsageHint(Bash, "dtls env"))
	assert.Equal(t, `eval "$(dtls env --shell zsh)"`, UsageHint(Zsh, "dtls env --shell zsh"))
	assert.Equal(t, `dtls env | source`, UsageHint(Fish, "dtls env"))
	assert.Equal(t, `& dtls env --shell powershell | Invoke-Expression`, UsageHint(PowerShell, "dtls env --shell powershell"))
	assert.Equal(t, `@FOR /f "tokens=*" %i IN ('dtls env --shell cmd') DO @%i`, UsageHint(Cmd, "dtls env --shell cmd"))
}

func TestWriteSetGolden(t *testing.T) {
	tests := []struct {
		sh   Shell
		want string
	}{
		{Bash, `export DOCKER_HOST='tcp://srv.example.com:2376'
export DOCKER_TLS_VERIFY='1'
export DOCKER_CERT_PATH='/home/alice/.docker/dtls/default'
# Run this command to configure your shell:
# eval "$(dtls env)"
`},
		{Zsh, `export DOCKER_HOST='tcp://srv.example.com:2376'
export DOCKER_TLS_VERIFY='1'
export DOCKER_CERT_PATH='/home/alice/.docker/dtls/default'
# Run this command to configure your shell:
# eval "$(dtls env)"
`},
		{Fish, `set -gx DOCKER_HOST 'tcp://srv.example.com:2376';
set -gx DOCKER_TLS_VERIFY '1';
set -gx DOCKER_CERT_PATH '/home/alice/.docker/dtls/default';
# Run this command to configure your shell:
# dtls env | source
`},
		{PowerShell, `$Env:DOCKER_HOST = 'tcp://srv.example.com:2376'
$Env:DOCKER_TLS_VERIFY = '1'
$Env:DOCKER_CERT_PATH = '/home/alice/.docker/dtls/default'
# Run this command to configure your shell:
# & dtls env --shell powershell | Invoke-Expression
`},
		{Cmd, `SET DOCKER_HOST=tcp://srv.example.com:2376
SET DOCKER_TLS_VERIFY=1
SET DOCKER_CERT_PATH=/home/alice/.docker/dtls/default
REM Run this command to configure your shell:
REM @FOR /f "tokens=*" %i IN ('dtls env --shell cmd') DO @%i
`},
	}
	usage := map[Shell]string{
		Bash:       `eval "$(dtls env)"`,
		Zsh:        `eval "$(dtls env)"`,
		Fish:       `dtls env | source`,
		PowerShell: `& dtls env --shell powershell | Invoke-Expression`,
		Cmd:        `@FOR /f "tokens=*" %i IN ('dtls env --shell cmd') DO @%i`,
	}
	for _, tt := range tests {
		t.Run(string(tt.sh), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, WriteSet(&out, tt.sh, Vars(testBundle, ""), usage[tt.sh]))
			assert.Equal(t, tt.want, out.String())
		})
	}
}

func TestWriteSetWindowsPath(t *testing.T) {
	b := &Bundle{Dir: `C:\Users\Alice\.docker\dtls\default (x86)`, Meta: Meta{DockerHost: "npipe:////./pipe/docker_engine"}}

	var out bytes.Buffer
	require.NoError(t, WriteSet(&out, Cmd, Vars(b, ""), ""))
	assert.Equal(t, `SET DOCKER_HOST=npipe:////./pipe/docker_engine
SET DOCKER_TLS_VERIFY=1
SET DOCKER_CERT_PATH=C:\Users\Alice\.docker\dtls\default (x86)
`, out.String(), "cmd values are verbatim: no carets, no doubled percent")

	out.Reset()
	require.NoError(t, WriteSet(&out, PowerShell, Vars(b, ""), ""))
	assert.Equal(t, `$Env:DOCKER_HOST = 'npipe:////./pipe/docker_engine'
$Env:DOCKER_TLS_VERIFY = '1'
$Env:DOCKER_CERT_PATH = 'C:\Users\Alice\.docker\dtls\default (x86)'
`, out.String())
}

func TestWriteUnsetGolden(t *testing.T) {
	tests := []struct {
		sh    Shell
		usage string
		want  string
	}{
		{Bash, `eval "$(dtls env --unset)"`, `unset DOCKER_HOST
unset DOCKER_TLS_VERIFY
unset DOCKER_CERT_PATH
# Run this command to configure your shell:
# eval "$(dtls env --unset)"
`},
		{Zsh, "", `unset DOCKER_HOST
unset DOCKER_TLS_VERIFY
unset DOCKER_CERT_PATH
`},
		{Fish, `dtls env --unset | source`, `set -e -g DOCKER_HOST;
set -e -g DOCKER_TLS_VERIFY;
set -e -g DOCKER_CERT_PATH;
# Run this command to configure your shell:
# dtls env --unset | source
`},
		{PowerShell, `& dtls env --unset --shell powershell | Invoke-Expression`, `Remove-Item Env:\DOCKER_HOST -ErrorAction SilentlyContinue
Remove-Item Env:\DOCKER_TLS_VERIFY -ErrorAction SilentlyContinue
Remove-Item Env:\DOCKER_CERT_PATH -ErrorAction SilentlyContinue
# Run this command to configure your shell:
# & dtls env --unset --shell powershell | Invoke-Expression
`},
		{Cmd, `@FOR /f "tokens=*" %i IN ('dtls env --unset --shell cmd') DO @%i`, `SET DOCKER_HOST=
SET DOCKER_TLS_VERIFY=
SET DOCKER_CERT_PATH=
REM Run this command to configure your shell:
REM @FOR /f "tokens=*" %i IN ('dtls env --unset --shell cmd') DO @%i
`},
	}
	for _, tt := range tests {
		t.Run(string(tt.sh), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, WriteUnset(&out, tt.sh, VarNames, tt.usage))
			assert.Equal(t, tt.want, out.String())
		})
	}
}

// hostile values: each is set as DOCKER_CERT_PATH and must come back byte
// for byte. MARKER is replaced with a file that must never be created.
var hostileValues = []struct {
	name, value string
}{
	{"spaces", "/home/alice/my certs/dtls default"},
	{"single quote", "/home/o'brien/.docker/it's"},
	{"single quotes doubled", "a''b'''c'"},
	{"only a quote", "'"},
	{"double quotes", `/tmp/"quoted" dir"`},
	{"command substitution", "/tmp/$(touch MARKER)"},
	{"backticks", "/tmp/`touch MARKER`"},
	{"fish command substitution", "/tmp/(touch MARKER)"},
	{"powershell subexpression", "/tmp/$(New-Item MARKER)"},
	{"variables", "/tmp/$HOME/${HOME}/$1/$?/%HOME%/!HOME!/$Env:HOME"},
	{"backslashes", `C:\Users\alice\ \' \\ trailing\`},
	{"semicolon", "/tmp/a; touch MARKER"},
	{"ampersand", "/tmp/a & touch MARKER &"},
	{"pipe and redirection", "/tmp/a | touch MARKER > MARKER < /dev/null"},
	{"globs and braces", "/tmp/*/?/[a]/{a,b}/~/~root"},
	{"history", "/tmp/a!b!!c!$"},
	{"hash", "/tmp/#not a comment"},
	{"leading dash", "-n"},
	{"empty", ""},
	{"unicode", "/home/jürgen/straße/日本語/ü"},
	{"typographic quotes", "/home/o\u2019brien/\u2018a\u2019/\u201Ab\u201B"},
	{"carets and percent", "/tmp/^&^^%%PATH%%"},
}

func TestWriteSetQuotingGolden(t *testing.T) {
	// The syntax each shell's manual gives for a literal; the shells that
	// are installed also run these (see TestRoundTrip).
	value := `a'b"c$d\e` + "`f\u2019g"
	tests := []struct {
		sh   Shell
		want string
	}{
		{Bash, `export K='a'\''b"c$d\e` + "`f\u2019g'\n"},
		{Zsh, `export K='a'\''b"c$d\e` + "`f\u2019g'\n"},
		{Fish, `set -gx K 'a\'b"c$d\\e` + "`f\u2019g';\n"},
		{PowerShell, `$Env:K = 'a''b"c$d\e` + "`f\u2019\u2019g'\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		require.NoError(t, WriteSet(&out, tt.sh, []Var{{"K", value}}, ""))
		assert.Equal(t, tt.want, out.String(), tt.sh)
	}
}

func TestWriteSetPowerShellQuotes(t *testing.T) {
	tests := []struct{ value, want string }{
		{"it's", `'it''s'`},
		{"''", `''''''`},
		{"\u2018a\u2019", "'\u2018\u2018a\u2019\u2019'"},
		{"\u201Ab\u201B", "'\u201A\u201Ab\u201B\u201B'"},
		{"$(Remove-Item C:\\)", `'$(Remove-Item C:\)'`},
		{"`n", "'`n'"},
		{`"$HOME"`, `'"$HOME"'`},
		{"\u201Cdouble\u201D", "'\u201Cdouble\u201D'"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		require.NoError(t, WriteSet(&out, PowerShell, []Var{{"K", tt.value}}, ""))
		assert.Equal(t, "$Env:K = "+tt.want+"\n", out.String(), tt.value)
	}
}

func TestWriteSetCmd(t *testing.T) {
	ok := []string{
		`C:\Users\alice\.docker\dtls\default`,
		`C:\Program Files (x86)\dtls`,
		`D:\certs\o'brien\it's`,
		`\\server\share\certs`,
		"C:\\Users\\J\u00fcrgen\\\u65e5\u672c",
		"tcp://[::1]:2376",
		"a=b",
		" leading space",
	}
	for _, v := range ok {
		var out bytes.Buffer
		require.NoError(t, WriteSet(&out, Cmd, []Var{{"DOCKER_CERT_PATH", v}}, ""), v)
		assert.Equal(t, "SET DOCKER_CERT_PATH="+v+"\n", out.String(), "verbatim: %s", v)
	}

	refused := []struct{ value, reason string }{
		{`C:\R&D\certs`, `contains "&", which cmd cannot take safely`},
		{`C:\a^b`, `contains "^", which cmd cannot take safely`},
		{`C:\100%\x`, `contains "%", which cmd cannot take safely`},
		{`C:\%PATH%`, `contains "%", which cmd cannot take safely`},
		{`C:\wow!`, `contains "!", which cmd cannot take safely`},
		{`a|b`, `contains "|", which cmd cannot take safely`},
		{`a<b`, `contains "<", which cmd cannot take safely`},
		{`a>b`, `contains ">", which cmd cannot take safely`},
		{`a"b`, `contains "\"", which cmd cannot take safely`},
		{`C:\certs `, `ends in a space, which cmd may drop`},
		{"C:\\\xff", `is not valid UTF-8`},
	}
	for _, tt := range refused {
		var out bytes.Buffer
		err := WriteSet(&out, Cmd, []Var{{"DOCKER_HOST", "tcp://h:2376"}, {"DOCKER_CERT_PATH", tt.value}}, "REM")
		assert.EqualError(t, err, "cannot write DOCKER_CERT_PATH for cmd: value "+quoteGo(tt.value)+" "+tt.reason)
		assert.Empty(t, out.String(), "nothing is written when a value is refused")
	}
}

func TestWriteSetRefusesControlCharacters(t *testing.T) {
	tests := []struct{ value, reason string }{
		{"/tmp/a\nexport PWNED=1", "contains a newline"},
		{"/tmp/a\n", "contains a newline"},
		{"/tmp/a\x00b", "contains control character U+0000"},
		{"/tmp/a\rb", "contains control character U+000D"},
		{"/tmp/\x1b[2Jb", "contains control character U+001B"},
		{"/tmp/a\tb", "contains control character U+0009"},
		{"/tmp/a\x7fb", "contains control character U+007F"},
		{"/tmp/a\u009bb", "contains control character U+009B"},
	}
	for _, sh := range Shells {
		for _, tt := range tests {
			var out bytes.Buffer
			err := WriteSet(&out, sh, []Var{{"DOCKER_HOST", "tcp://h:2376"}, {"DOCKER_CERT_PATH", tt.value}}, "x")
			assert.EqualError(t, err, "cannot write DOCKER_CERT_PATH for "+string(sh)+": value "+quoteGo(tt.value)+" "+tt.reason)
			var ve *ValueError
			if assert.True(t, errors.As(err, &ve)) {
				assert.Equal(t, ValueError{Shell: sh, Name: "DOCKER_CERT_PATH", Value: tt.value, Reason: tt.reason}, *ve)
			}
			assert.Empty(t, out.String(), "nothing is written when a value is refused")
		}
	}
}

func TestWriteSetInvalidUTF8(t *testing.T) {
	// POSIX shells and fish take any bytes (TestRoundTrip runs them);
	// PowerShell and cmd decode the output as text.
	v := "/home/l\xe9a"
	for _, sh := range []Shell{Bash, Zsh, Fish} {
		assert.NoError(t, WriteSet(&bytes.Buffer{}, sh, []Var{{"K", v}}, ""), sh)
	}
	for _, sh := range []Shell{PowerShell, Cmd} {
		err := WriteSet(&bytes.Buffer{}, sh, []Var{{"K", v}}, "")
		assert.EqualError(t, err, `cannot write K for `+string(sh)+`: value "/home/l\xe9a" is not valid UTF-8`)
	}
}

func TestWriteInvalidName(t *testing.T) {
	for _, name := range []string{"", "1A", "A-B", "A B", "A=B", "A;B", "$(x)", "Ä"} {
		for _, sh := range Shells {
			var out bytes.Buffer
			err := WriteSet(&out, sh, []Var{{"OK", "v"}, {name, "v"}}, "")
			assert.EqualError(t, err, "invalid variable name "+quoteGo(name))
			assert.Empty(t, out.String())

			err = WriteUnset(&out, sh, []string{"OK", name}, "")
			assert.EqualError(t, err, "invalid variable name "+quoteGo(name))
			assert.Empty(t, out.String())
		}
	}
	assert.NoError(t, WriteSet(&bytes.Buffer{}, Bash, []Var{{"_a1", "v"}}, ""))
}

func TestWriteUnknownShell(t *testing.T) {
	var out bytes.Buffer
	assert.EqualError(t, WriteSet(&out, "elvish", Vars(testBundle, ""), ""),
		`unknown shell "elvish" (valid: bash, zsh, fish, powershell, cmd, tcsh, nushell)`)
	assert.EqualError(t, WriteUnset(&out, "", VarNames, ""),
		`unknown shell "" (valid: bash, zsh, fish, powershell, cmd, tcsh, nushell)`)
	assert.Empty(t, out.String())
}

func TestWriteUsageRefusesNewline(t *testing.T) {
	usage := "dtls env\ntouch /tmp/PWNED"
	var out bytes.Buffer
	assert.EqualError(t, WriteSet(&out, Bash, Vars(testBundle, ""), usage),
		`usage line "dtls env\ntouch /tmp/PWNED" contains a control character`)
	assert.EqualError(t, WriteUnset(&out, Cmd, VarNames, usage),
		`usage line "dtls env\ntouch /tmp/PWNED" contains a control character`)
	assert.Empty(t, out.String())
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteReturnsWriterError(t *testing.T) {
	assert.EqualError(t, WriteSet(failWriter{}, Bash, Vars(testBundle, ""), ""), "disk full")
	assert.EqualError(t, WriteUnset(failWriter{}, Fish, VarNames, ""), "disk full")
}

// quoteGo quotes s as the error messages do.
func quoteGo(s string) string { return fmt.Sprintf("%q", s) }
