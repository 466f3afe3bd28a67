package cmd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// adviceHost is a Docker host set up by 'dtls init' in a temporary
// directory, with every path flag's variable pointing into it, and a
// laptop's bundle store (DTLS_HOME) there too.
type adviceHost struct {
	Dir string
	Env map[string]string
}

func newAdviceHost(t *testing.T, now time.Time, initArgs ...string) *adviceHost {
	t.Helper()
	dir := t.TempDir()
	h := &adviceHost{Dir: dir, Env: map[string]string{
		"DTLS_STATE_DIR":   filepath.Join(dir, "state"),
		"DTLS_CERTS_DIR":   filepath.Join(dir, "certs"),
		"DTLS_DAEMON_JSON": filepath.Join(dir, "daemon.json"),
		"DTLS_SYSTEMD_DIR": dir,
		"DTLS_HOME":        filepath.Join(dir, "home", ".docker", "dtls"),
		"HOME":             filepath.Join(dir, "home"),
	}}
	if initArgs != nil {
		_, stderr, code := h.run(t, now, append([]string{"init"}, initArgs...)...)
		require.Equal(t, 0, code, stderr)
	}
	return h
}

func (h *adviceHost) run(t *testing.T, now time.Time, args ...string) (string, string, int) {
	t.Helper()
	return runWithEnv(t, now, h.Env, args...)
}

// TestLsShowsHoursUnderADay: a bundle with hours left says so ("in 5h"),
// not "in 1 day" or "0 days".
func TestLsShowsHoursUnderADay(t *testing.T) {
	now := time.Now()
	h := newAdviceHost(t, now, "--host", "docker.example.com")
	archive := filepath.Join(h.Dir, "alice.tar.gz")
	_, stderr, code := h.run(t, now, "issue-client", "alice", "--days", "1", "--archive", archive, "--out", filepath.Join(h.Dir, "alice"))
	require.Equal(t, 0, code, stderr)
	_, stderr, code = h.run(t, now, "import", archive)
	require.Equal(t, 0, code, stderr)

	out, stderr, code := h.run(t, now.Add(19*time.Hour), "ls")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `\(expires in 5h\)\n`, out)
	assert.NotContains(t, out, "day")
	out, _, _ = h.run(t, now.Add(24*time.Hour-20*time.Minute), "ls")
	assert.Regexp(t, `\(expires in 2[01]m\)\n`, out)
	out, _, _ = h.run(t, now.Add(-24*time.Hour), "ls")
	assert.Regexp(t, `\(expires in 2 days\)\n`, out)
}

// TestPythonCAWarningOnceAndSilenced: the REQUESTS_CA_BUNDLE warning is one
// line, printed once by env and by check, and
// DTLS_NO_REQUESTS_CA_BUNDLE_WARNING=1 silences it.
func TestPythonCAWarningOnceAndSilenced(t *testing.T) {
	now := time.Now()
	h := newAdviceHost(t, now, "--host", "localhost")
	bundle := filepath.Join(h.Dir, "alice")
	_, stderr, code := h.run(t, now, "issue-client", "alice", "--out", bundle)
	require.Equal(t, 0, code, stderr)

	h.Env["REQUESTS_CA_BUNDLE"] = "/etc/ssl/certs/ca-certificates.crt"
	_, stderr, code = h.run(t, now, "env", "--cert-path", bundle)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, 1, strings.Count(stderr, "REQUESTS_CA_BUNDLE is set"), stderr)
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	require.Len(t, lines, 1, stderr)
	assert.Regexp(t, `^dtls: warning: REQUESTS_CA_BUNDLE is set: docker-py .*env -u REQUESTS_CA_BUNDLE \(DTLS_NO_REQUESTS_CA_BUNDLE_WARNING=1 hides this\)$`, lines[0])

	_, stderr, _ = h.run(t, now, "check", "--cert-path", bundle, "--timeout", "1s")
	assert.Equal(t, 1, strings.Count(stderr, "REQUESTS_CA_BUNDLE is set"), stderr)

	h.Env["DTLS_NO_REQUESTS_CA_BUNDLE_WARNING"] = "1"
	_, stderr, code = h.run(t, now, "env", "--cert-path", bundle)
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, stderr, "REQUESTS_CA_BUNDLE")
	_, stderr, _ = h.run(t, now, "check", "--cert-path", bundle, "--timeout", "1s")
	assert.NotContains(t, stderr, "REQUESTS_CA_BUNDLE")
}

// TestCAInitMakesUnitDirAndSaysOperatorLifetime: a missing --unit-dir is
// made (0755), and ca init says when the operator bundle expires and how
// to keep it renewed.
func TestCAInitMakesUnitDirAndSaysOperatorLifetime(t *testing.T) {
	dir := t.TempDir()
	state, units := filepath.Join(dir, "ca"), filepath.Join(dir, "etc", "units")
	now := time.Now()
	_, stderr, code := dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", units,
		"--host", "ca.example", "--listen", "127.0.0.1:8888", "--client-validity", "12h")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, os.FileMode(0o755), fileMode(t, units))
	assert.FileExists(t, filepath.Join(units, "dtls-ca.service"))
	assert.Contains(t, stderr, "systemd unit: "+filepath.Join(units, "dtls-ca.service"))
	assert.Regexp(t, `operator bundle: `+regexp.QuoteMeta(filepath.Join(state, "operator"))+` \(role ca-operator\), expires \d{4}-\d\d-\d\d \d\d:\d\d UTC, in 12h \(a client lifetime, --client-validity\)\n`, stderr)
	assert.Contains(t, stderr, "keep it renewed where it is used: dtls agent --dir DIR")
	assert.Contains(t, stderr, "sudo dtls ca token --client NAME --role ca-operator")
}
