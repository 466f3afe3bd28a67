package clientenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realShell is a shell that TestRoundTrip runs: argv runs script, which reads
// the output files named by $DTLS_TEST_SET and (when not empty)
// $DTLS_TEST_UNSET the way the usage line says, then runs `env -0`, so the
// test sees what a child such as docker would: exported variables only.
type realShell struct {
	name   string
	writes Shell
	argv   []string
	script string
}

const (
	posixScript = `eval "$(cat "$DTLS_TEST_SET")" || exit 1
if [ -n "$DTLS_TEST_UNSET" ]; then eval "$(cat "$DTLS_TEST_UNSET")" || exit 1; fi
exec env -0`
	fishScript = `cat $DTLS_TEST_SET | source; or exit 1
if test -n "$DTLS_TEST_UNSET"; cat $DTLS_TEST_UNSET | source; end
exec env -0`
	// The usage line's eval "`...`", in a non-interactive tcsh (-f: no
	// ~/.tcshrc) and in csh mode.
	tcshScript = `eval "` + "`" + `cat $DTLS_TEST_SET:q` + "`" + `" || exit 1
if ( "$DTLS_TEST_UNSET" != "" ) then
eval "` + "`" + `cat $DTLS_TEST_UNSET:q` + "`" + `" || exit 1
endif
exec env -0`
)

var realShells = []realShell{
	{"bash", Bash, []string{"bash", "--norc", "--noprofile", "-c"}, posixScript},
	{"bash-posix", Bash, []string{"bash", "--posix", "-c"}, posixScript},
	// DetectShell sends sh, dash and ksh to the Bash syntax.
	{"dash", Bash, []string{"dash", "-c"}, posixScript},
	{"zsh", Zsh, []string{"zsh", "-f", "-c"}, posixScript},
	{"zsh-rcquotes", Zsh, []string{"zsh", "-f", "-o", "rcquotes", "-c"}, posixScript},
	{"fish", Fish, []string{"fish", "--no-config", "-c"}, fishScript},
	{"tcsh", Tcsh, []string{"tcsh", "-f", "-c"}, tcshScript},
}

// needShell returns the path of name, or ends the test: in CI a missing
// shell fails (make test installs them); elsewhere it skips.
func needShell(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shell %q is not installed (CI=true): %v", name, err)
		}
		t.Skipf("shell %q is not installed: %v (apt-get install -y zsh fish)", name, err)
	}
}

// runShell runs rs on the set (and unset) output and returns the exported
// environment it ends with.
func runShell(t *testing.T, rs realShell, setOut, unsetOut []byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	setFile := filepath.Join(dir, "set")
	require.NoError(t, os.WriteFile(setFile, setOut, 0o600))
	unsetFile := ""
	if unsetOut != nil {
		unsetFile = filepath.Join(dir, "unset")
		require.NoError(t, os.WriteFile(unsetFile, unsetOut, 0o600))
	}

	home := t.TempDir()
	cmd := exec.Command(rs.argv[0], append(rs.argv[1:], rs.script)...)
	cmd.Dir = home
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"LANG=C.UTF-8",
		"DTLS_TEST_SET=" + setFile,
		"DTLS_TEST_UNSET=" + unsetFile,
		// Inherited values that env must replace and --unset must remove.
		"DOCKER_HOST=unix:///var/run/docker.sock",
		"DOCKER_CERT_PATH=/old",
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s failed; stderr:\n%s\ninput:\n%s", rs.name, stderr.String(), setOut)
	assert.Empty(t, stderr.String(), "%s wrote to stderr; input:\n%s", rs.name, setOut)

	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(stdout.String(), "\x00"), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestRoundTrip runs the output of WriteSet and WriteUnset in every shell
// that is installed, with values built to break quoting, and checks that the
// exported values come back byte for byte and that no injected command ran.
func TestRoundTrip(t *testing.T) {
	values := append([]struct{ name, value string }{}, hostileValues...)
	// Not UTF-8: POSIX shells and fish are byte-clean in single quotes.
	values = append(values, struct{ name, value string }{"latin-1 bytes", "/home/l\xe9a/\xff"})

	for _, rs := range realShells {
		t.Run(rs.name, func(t *testing.T) {
			needShell(t, rs.argv[0])
			for _, tv := range values {
				t.Run(tv.name, func(t *testing.T) {
					markerDir := t.TempDir()
					marker := filepath.Join(markerDir, "PWNED")
					value := strings.ReplaceAll(tv.value, "MARKER", marker)
					b := &Bundle{Dir: value, Meta: Meta{DockerHost: "tcp://" + value}}
					vars := Vars(b, "")

					var set, unset bytes.Buffer
					require.NoError(t, WriteSet(&set, rs.writes, vars, UsageHint(rs.writes, "dtls env")))
					require.NoError(t, WriteUnset(&unset, rs.writes, VarNames, UsageHint(rs.writes, "dtls env --unset")))

					env := runShell(t, rs, set.Bytes(), nil)
					for _, v := range vars {
						got, ok := env[v.Name]
						if assert.True(t, ok, "%s not exported; input:\n%s", v.Name, set.String()) {
							assert.Equal(t, v.Value, got, "%s; input:\n%s", v.Name, set.String())
						}
					}

					env = runShell(t, rs, set.Bytes(), unset.Bytes())
					for _, name := range VarNames {
						assert.NotContains(t, env, name, "--unset left %s; input:\n%s", name, unset.String())
					}

					entries, err := os.ReadDir(markerDir)
					require.NoError(t, err)
					assert.Empty(t, entries, "a command in the value ran; input:\n%s", set.String())
				})
			}
		})
	}
}

// TestRoundTripBundle goes from a real bundle directory with a hostile name
// through LoadBundle, Vars and WriteSet to bash.
func TestRoundTripBundle(t *testing.T) {
	rs := realShells[0]
	needShell(t, rs.argv[0])
	markerDir := t.TempDir()
	dir := filepath.Join(t.TempDir(), `it's "my" $(touch `+markerDir+`/PWNED) bundle`)
	writeBundle(t, dir, testMeta)

	b, err := LoadBundle(dir)
	require.NoError(t, err)
	var set bytes.Buffer
	require.NoError(t, WriteSet(&set, Bash, Vars(b, ""), `eval "$(dtls env)"`))

	env := runShell(t, rs, set.Bytes(), nil)
	assert.Equal(t, dir, env["DOCKER_CERT_PATH"])
	assert.Equal(t, "tcp://srv.example.com:2376", env["DOCKER_HOST"])
	assert.Equal(t, "1", env["DOCKER_TLS_VERIFY"])
	entries, err := os.ReadDir(markerDir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
