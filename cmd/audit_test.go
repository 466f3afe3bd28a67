package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/audit"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// auditTLSAndFileChecks are the checks a host fresh from dtls init passes.
var auditTLSAndFileChecks = []string{
	"daemon-tcp-tls", "daemon-flag-conflict",
	"etc-docker-owner", "etc-docker-mode", "daemon-json-owner", "daemon-json-mode",
	"ca-cert-owner", "ca-cert-mode", "server-cert-owner", "server-cert-mode",
	"server-key-owner", "server-key-mode", "ca-key-location", "ca-key-mode",
	"server-cert-expiry", "ca-cert-expiry", "server-cert-sans", "server-cert-chain",
	"server-key-match", "server-cert-eku", "server-cert-signature", "socket-owner", "socket-mode",
}

// TestAuditAfterInit: dtls init on a sandboxed host, dockerd started from
// the merged daemon.json, then dtls audit. The TLS and file checks pass and
// the exit code is 0; a container that mounts the socket turns it into 3.
// The table and the JSON carry the same findings.
func TestAuditAfterInit(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	now := time.Now()
	h := newTLSHost(t, now)
	dir, state, daemonJSON, systemd, port, d := h.Dir, h.State, h.DaemonJSON, h.Systemd, h.Port, h.Daemon
	group := filepath.Join(dir, "group")
	require.NoError(t, os.WriteFile(group, []byte("docker:x:"+hostDockerGID(t)+":alice\n"), 0o644))

	// No --certs-dir, --socket or --host: they come from daemon.json and
	// the state directory.
	args := []string{"audit", "--daemon-json", daemonJSON, "--state-dir", state, "--systemd-dir", systemd, "--group-file", group, "--passwd-file", group}

	table, stderr, code := dtls(t, now, args...)
	require.Equal(t, 0, code, "stderr: %s\nstdout:\n%s", stderr, table)
	assert.Empty(t, stderr)
	jsonOut, stderr, code := dtls(t, now, append(args, "--output", "json")...)
	require.Equal(t, 0, code, stderr)
	rep := decodeReport(t, jsonOut)
	assert.Zero(t, rep.Summary.Fail)
	for _, id := range auditTLSAndFileChecks {
		fs := findings(rep, id)
		require.NotEmpty(t, fs, id)
		for _, f := range fs {
			assert.Equal(t, audit.Pass, f.Status, "%s: %s %s", id, f.Title, f.Detail)
		}
	}
	assert.Contains(t, findings(rep, "daemon-tcp-tls")[0].Title, fmt.Sprintf("tcp://127.0.0.1:%d", port))
	assert.Contains(t, findings(rep, "docker-group")[0].Title, "alice")
	assertTableMatchesJSON(t, table, rep)

	// The same daemon asked over its TLS listener with a client bundle.
	bundle := filepath.Join(dir, "auditor")
	_, stderr, code = dtls(t, now, "issue-client", "auditor", "--state-dir", state, "--out", bundle)
	require.Equal(t, 0, code, stderr)
	jsonOut, stderr, code = dtls(t, now, append(args, "--output", "json", "--docker-host", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--cert-path", bundle)...)
	require.Equal(t, 0, code, stderr)
	v := findings(decodeReport(t, jsonOut), "daemon-version")
	require.NotEmpty(t, v)
	assert.NotEqual(t, audit.Skip, v[0].Status, "%s %s", v[0].Title, v[0].Detail)
	// Without a client certificate the daemon refuses: the check is
	// skipped with the reason, not passed.
	jsonOut, _, _ = dtls(t, now, append(args, "--output", "json", "--docker-host", fmt.Sprintf("tcp://127.0.0.1:%d", port))...)
	v = findings(decodeReport(t, jsonOut), "daemon-version")
	require.NotEmpty(t, v)
	assert.Equal(t, audit.Skip, v[0].Status)

	// A container with the socket mounted: FAIL, CIS 5.32, exit code 3.
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))
	createWithBind(t, d, "portainer", "/var/run/docker.sock:/var/run/docker.sock")
	table, stderr, code = dtls(t, now, args...)
	assert.Equal(t, exitAuditFail, code, stderr)
	assert.Equal(t, "dtls: error: audit found 1 FAIL finding\n", stderr)
	assert.Regexp(t, `(?m)^FAIL   5\.32   container portainer mounts the Docker socket`, table)
	assert.Contains(t, table, "fix: docker rm -f portainer")
	jsonOut, _, code = dtls(t, now, append(args, "--output", "json")...)
	assert.Equal(t, exitAuditFail, code)
	require.True(t, json.Valid([]byte(jsonOut)), "stdout must be JSON only: %s", jsonOut)
	rep = decodeReport(t, jsonOut)
	assert.Equal(t, 1, rep.Summary.Fail)
	assertTableMatchesJSON(t, table, rep)
}

// TestAuditExitCodeFollowsFindings: without a daemon (SKIP) and with
// nothing failing the exit code is 0; one loosened key makes it 3; bad
// flags are usage errors.
func TestAuditExitCodeFollowsFindings(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	state, certs, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "etc", "daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	_, stderr, code := dtls(t, now, "init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd, "--host", "localhost")
	require.Equal(t, 0, code, stderr)
	group := filepath.Join(dir, "group")
	require.NoError(t, os.WriteFile(group, []byte("docker:x:999:\n"), 0o644))
	args := []string{"audit", "--daemon-json", daemonJSON, "--state-dir", state, "--systemd-dir", systemd, "--group-file", group, "--passwd-file", group,
		"--socket", filepath.Join(dir, "no.sock")}

	out, stderr, code := dtls(t, now, append(args, "--output", "json")...)
	require.Equal(t, 0, code, stderr)
	rep := decodeReport(t, out)
	assert.Equal(t, audit.Skip, findings(rep, "daemon-version")[0].Status)
	assert.Contains(t, findings(rep, "daemon-version")[0].Detail, "daemon not reachable")

	require.NoError(t, os.Chmod(filepath.Join(certs, "server-key.pem"), 0o644))
	out, stderr, code = dtls(t, now, args...)
	assert.Equal(t, exitAuditFail, code)
	assert.Equal(t, "dtls: error: audit found 1 FAIL finding\n", stderr)
	assert.Regexp(t, `(?m)^FAIL   3\.14   server key .*server-key.pem has mode 0644, want exactly 0400$`, out)
	assert.Contains(t, out, "fix: chmod 400 "+filepath.Join(certs, "server-key.pem"))

	// --expiry-warning beyond the certificate's year: a WARN, still exit 3
	// only because of the key.
	out, _, _ = dtls(t, now, append(args, "--expiry-warning", "400d", "--output", "json")...)
	assert.Equal(t, audit.Warn, findings(decodeReport(t, out), "server-cert-expiry")[0].Status)

	for _, bad := range [][]string{{"--output", "yaml"}, {"--expiry-warning", "soon"}, {"--docker-host", "ssh://x"}, {"extra"}} {
		_, stderr, code = dtls(t, now, append(args, bad...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, stderr)
	}
}

func decodeReport(t *testing.T, s string) audit.Report {
	t.Helper()
	var r audit.Report
	require.NoError(t, json.Unmarshal([]byte(s), &r), s)
	return r
}

func findings(r audit.Report, id string) []audit.Finding {
	var out []audit.Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// assertTableMatchesJSON checks that the table has one line per finding of
// the JSON report, in order, with the same status, CIS id and title, and
// the same summary.
func assertTableMatchesJSON(t *testing.T, table string, rep audit.Report) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(table, "\n")[1:] {
		if l != "" && !strings.HasPrefix(l, " ") && !strings.Contains(l, " PASS, ") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, len(rep.Findings), table)
	for i, f := range rep.Findings {
		cis := f.CIS
		if cis == "" {
			cis = "-"
		}
		assert.Equal(t, fmt.Sprintf("%-6s %-5s  %s", f.Status, cis, f.Title), lines[i])
	}
	s := rep.Summary
	assert.Contains(t, table, fmt.Sprintf("\n%d PASS, %d WARN, %d FAIL, %d SKIP\n", s.Pass, s.Warn, s.Fail, s.Skip))
}

func hostDockerGID(t *testing.T) string {
	b, err := os.ReadFile("/etc/group")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) == 4 && f[0] == "docker" {
			return f[2]
		}
	}
	return "0"
}

func createWithBind(t *testing.T, d *sandbox.Daemon, name, bind string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"Image": "tiny:1", "Cmd": []string{"/x"}, "HostConfig": map[string]any{"Binds": []string{bind}}})
	require.NoError(t, err)
	c := d.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://docker/containers/create?name="+name, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
}

// TestAuditRemote: 'dtls audit --docker-host tcp://... --cert-path BUNDLE'
// from a machine that is not the Docker host (no host file named) checks
// what the network shows and says first that the host checks were
// skipped: no PASS for a listener, socket or file it did not see, and the
// server certificate checked as the daemon presents it.
func TestAuditRemote(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := newTLSHost(t, now)
	bundle := filepath.Join(h.Dir, "auditor")
	_, stderr, code := dtls(t, now, "issue-client", "auditor", "--state-dir", h.State, "--out", bundle)
	require.Equal(t, 0, code, stderr)
	dockerHost := fmt.Sprintf("tcp://127.0.0.1:%d", h.Port)

	jsonOut, stderr, code := dtls(t, now, "audit", "--docker-host", dockerHost, "--cert-path", bundle, "-o", "json")
	require.Equal(t, 0, code, "stderr: %s\n%s", stderr, jsonOut)
	rep := decodeReport(t, jsonOut)
	require.NotEmpty(t, rep.Findings)
	assert.Equal(t, "host-checks", rep.Findings[0].ID)
	assert.Equal(t, audit.Skip, rep.Findings[0].Status)
	for _, id := range []string{"daemon-tcp-tls", "daemon-flag-conflict", "socket-owner", "socket-mode", "socket-acl", "docker-group",
		"etc-docker-owner", "daemon-json-owner", "server-key-mode", "ca-key-location", "server-key-match"} {
		assert.Empty(t, findings(rep, id), "%s was reported by a remote audit", id)
	}
	for _, id := range []string{"daemon-version", "server-cert-expiry", "server-cert-chain", "server-cert-eku", "server-cert-signature", "container-socket-mount"} {
		fs := findings(rep, id)
		require.Len(t, fs, 1, id)
		assert.Equal(t, audit.Pass, fs[0].Status, "%s: %s %s", id, fs[0].Title, fs[0].Detail)
	}
	sans := findings(rep, "server-cert-sans")
	require.Len(t, sans, 1)
	assert.Equal(t, audit.Pass, sans[0].Status)
	assert.Contains(t, sans[0].Title, "server certificate presented by "+dockerHost+" covers 127.0.0.1")

	table, _, code := dtls(t, now, "audit", "--docker-host", dockerHost, "--cert-path", bundle)
	require.Equal(t, 0, code)
	assert.Regexp(t, `^STATUS .*\nSKIP   -      host checks skipped: the daemon at `+regexp.QuoteMeta(dockerHost)+` is audited over the network\n`, table)
	assertTableMatchesJSON(t, table, decodeReport(t, jsonOut))
}
