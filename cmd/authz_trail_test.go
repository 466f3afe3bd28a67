package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// TestAuthzLogVerify: --verify on a whole trail (rotated), on an edited
// one (exit 1, file and line), --head and --anchor, and the usage errors.
func TestAuthzLogVerify(t *testing.T) {
	now := time.Now()
	path := filepath.Join(t.TempDir(), "authz.log")
	l, err := authz.OpenAuditLog(path, 2000, 3, nil)
	require.NoError(t, err)
	for i := range 40 {
		require.NoError(t, l.Write(authz.AuditRecord{Phase: authz.PhaseRequest, Decision: authz.DecisionAllow, User: "alice",
			Method: "GET", Path: "/containers/json", Reason: strings.Repeat("x", i)}))
	}
	require.NoError(t, l.Close())

	out, stderr, code := dtls(t, now, "authz", "log", "--audit-log", path, "--verify")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^files:   4, \d+ records$`, out)
	assert.Regexp(t, `(?m)^start:   `+path+`\.3:1 seq \d+, after sha256:[0-9a-f]{64}: the last record rotation dropped \(the record at `+path+`(\.\d)?:\d+ says so\)$`, out)
	// 40 records and the rotations' own (trail: rotated out).
	assert.Regexp(t, `(?m)^head:    4\d sha256:[0-9a-f]{64}$`, out)
	assert.Contains(t, out, "ok:      no record removed, changed or reordered\n")
	assert.Empty(t, stderr)

	head, stderr, code := dtls(t, now, "authz", "log", "--audit-log", path, "--head")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `^4\d sha256:[0-9a-f]{64}\n$`, head)
	out, _, code = dtls(t, now, "authz", "log", "--audit-log", path, "--verify", "--anchor", head)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "anchor:  seq "+strings.Fields(head)[0]+" found at "+path+":")

	// An edited line: exit 1, the file and line named.
	b, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"user":"alice"`, `"user":"mallory"`, 1)
	require.NoError(t, os.WriteFile(path+".1", []byte(strings.Join(lines, "")), 0o600))
	out, stderr, code = dtls(t, now, "authz", "log", "--audit-log", path, "--verify")
	assert.Equal(t, 1, code)
	assert.NotContains(t, out, "ok:")
	assert.Regexp(t, `^dtls: error: audit trail broken at `+path+`\.1:2 \(seq \d+\): record changed: record seq \d+ was changed after it was written`, stderr)

	out, _, code = dtls(t, now, "authz", "log", "--audit-log", path, "--verify", "-o", "json")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `"kind": "changed"`)

	for _, bad := range [][]string{{"--verify", "--head"}, {"--verify", "--user", "alice"}, {"--verify", "--anchor", "12"}, {"--anchor", strings.TrimSpace(head)}} {
		_, stderr, code = dtls(t, now, append([]string{"authz", "log", "--audit-log", path}, bad...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, stderr)
	}
}

// TestAuditWriteAuditdRules: --write-auditd-rules writes the rules file
// and audits nothing; dtls audit then finds its watches.
func TestAuditWriteAuditdRules(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	rules, state := filepath.Join(dir, "rules.d"), filepath.Join(dir, "state")
	require.NoError(t, os.Mkdir(rules, 0o750))
	require.NoError(t, os.Mkdir(state, 0o700))
	args := []string{"audit", "--auditd-rules-dir", rules, "--state-dir", state, "--daemon-json", filepath.Join(dir, "daemon.json"),
		"--systemd-dir", dir, "--socket", filepath.Join(dir, "no.sock"), "--audit-log", filepath.Join(dir, "authz.log")}

	out, _, _ := dtls(t, now, args...)
	assert.Contains(t, out, "auditd does not watch dtls's state directory "+state)

	out, stderr, code := dtls(t, now, "audit", "--write-auditd-rules", rules, "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, filepath.Join(rules, "dtls-docker.rules")+"\n", out)
	assert.Contains(t, stderr, "augenrules --load")
	b, err := os.ReadFile(filepath.Join(rules, "dtls-docker.rules"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "-w "+state+" -p wa -k dtls\n")

	out, _, _ = dtls(t, now, args...)
	assert.Contains(t, out, "PASS   -      auditd watches dtls's state directory "+state+" (-p wa)")
	assert.Contains(t, out, "SKIP   -      audit trail not checked")

	_, stderr, code = dtls(t, now, "audit", "--write-auditd-rules", filepath.Join(dir, "missing"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `auditd rules directory "`+filepath.Join(dir, "missing")+`": no such file or directory`)
}

// TestAuditAnchorExample: examples/audit-anchor/dtls-anchor.sh sends the
// head to logger with the tag dtls-anchor (a stand-in logger records its
// arguments); the anchor sent verifies, and fails once the newest record
// is removed, which the chain alone does not show.
func TestAuditAnchorExample(t *testing.T) {
	dtlsPath, err := exec.LookPath("dtls")
	require.NoError(t, err, "testscript.Main puts dtls in $PATH")
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	l, err := authz.OpenAuditLog(path, 0, 0, nil)
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, l.Write(authz.AuditRecord{Phase: authz.PhaseRequest, Decision: authz.DecisionAllow, Method: "GET", Path: "/info"}))
	}
	require.NoError(t, l.Close())
	sent := filepath.Join(dir, "sent")
	logger := filepath.Join(dir, "logger")
	require.NoError(t, os.WriteFile(logger, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+sent+"\n"), 0o755))

	cmd := exec.Command("sh", filepath.Join("..", "examples", "audit-anchor", "dtls-anchor.sh"))
	cmd.Env = []string{"PATH=" + filepath.Dir(dtlsPath) + ":/usr/bin:/bin", "DTLS_AUDIT_LOG=" + path, "LOGGER=" + logger}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(sent)
	require.NoError(t, err)
	args := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, args, 4, "%q", args)
	assert.Equal(t, []string{"-t", "dtls-anchor", "--"}, args[:3])
	assert.Regexp(t, `^5 sha256:[0-9a-f]{64}$`, args[3])

	now := time.Now()
	_, stderr, code := dtls(t, now, "authz", "log", "--audit-log", path, "--verify", "--anchor", args[3])
	require.Equal(t, 0, code, stderr)
	trail, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(trail), "\n")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines[:4], "")), 0o600))
	_, _, code = dtls(t, now, "authz", "log", "--audit-log", path, "--verify")
	assert.Equal(t, 0, code, "the chain alone does not show the end removed")
	_, stderr, code = dtls(t, now, "authz", "log", "--audit-log", path, "--verify", "--anchor", args[3])
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the anchor's record seq 5 is missing: the trail ends at seq 4")
}
