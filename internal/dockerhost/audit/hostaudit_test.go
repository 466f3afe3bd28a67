package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

func TestParseAuditdRule(t *testing.T) {
	tests := []struct {
		line  string
		want  auditdWatch
		ok    bool
		error string
	}{
		{"-w /usr/bin/dockerd -p wa -k docker", auditdWatch{"/usr/bin/dockerd", "wa"}, true, ""},
		{"-w /etc/docker -k docker", auditdWatch{"/etc/docker", "rwxa"}, true, ""},
		{"-a always,exit -F arch=b64 -F dir=/etc/docker -F perm=wa -F key=docker", auditdWatch{"/etc/docker", "wa"}, true, ""},
		{"-a always,exit -F path=/usr/bin/runc -F perm=rwa -k docker", auditdWatch{"/usr/bin/runc", "rwa"}, true, ""},
		{"-a always,exit -F arch=b64 -S execve -k exec", auditdWatch{}, false, ""},
		{"# -w /etc/docker -p wa", auditdWatch{}, false, ""},
		{"", auditdWatch{}, false, ""},
		{"-D", auditdWatch{}, false, ""},
		{"-w etc/docker -p wa", auditdWatch{}, false, `the watched path must be absolute`},
		{"-w /etc/docker -p wz", auditdWatch{}, false, `permissions "wz" are not among r, w, x, a`},
		{"-w /etc/docker -p", auditdWatch{}, false, `-p has no value`},
	}
	for _, tt := range tests {
		w, ok, err := parseAuditdRule(tt.line)
		if tt.error != "" {
			require.Error(t, err, tt.line)
			assert.Contains(t, err.Error(), tt.error)
			continue
		}
		require.NoError(t, err, tt.line)
		assert.Equal(t, tt.ok, ok, tt.line)
		if ok {
			assert.Equal(t, tt.want, w, tt.line)
		}
	}
	assert.True(t, auditdWatch{"/etc/docker", "wa"}.covers("/etc/docker/daemon.json"))
	assert.True(t, auditdWatch{"/etc/docker", "rwa"}.covers("/etc/docker"))
	assert.False(t, auditdWatch{"/etc/docker", "w"}.covers("/etc/docker"), "attribute changes not watched")
	assert.False(t, auditdWatch{"/etc/dock", "wa"}.covers("/etc/docker"))
	assert.False(t, auditdWatch{"/etc/docker/daemon.json", "wa"}.covers("/etc/docker"))
}

// auditdFindings are the findings of the auditd check.
func auditdFindings(rep Report) map[string]Finding {
	out := map[string]Finding{}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.ID, "auditd") {
			out[f.ID] = f
		}
	}
	return out
}

// TestAuditdRules: without rules each target is a WARN; the rules file
// --write-auditd-rules writes (0640) makes each a PASS, the binaries at
// their real path (symbolic links resolved).
func TestAuditdRules(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, filepath.Join(t.TempDir(), "docker.sock"))
	bin, rules := filepath.Join(h.dir, "bin"), filepath.Join(h.dir, "rules.d")
	require.NoError(t, os.MkdirAll(filepath.Join(bin, "real"), 0o755))
	require.NoError(t, os.Mkdir(rules, 0o750))
	for _, name := range []string{"real/dockerd", "containerd", "runc"} {
		write(t, filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755)
	}
	require.NoError(t, os.Symlink("real/dockerd", filepath.Join(bin, "dockerd")))
	cfg := h.config(now)
	cfg.DockerHost = "unix://" + filepath.Join(h.dir, "none.sock")
	cfg.AuditdRulesDir, cfg.BinDirs, cfg.OwnFiles = rules, []string{bin}, []OwnFile{{"dtls's state directory", h.state}}

	fs := auditdFindings(Run(context.Background(), cfg))
	for _, id := range []string{"auditd-1-1-3", "auditd-1-1-6", "auditd-1-1-11", "auditd-1-1-14", "auditd-1-1-18", "auditd-dtls-state"} {
		require.Contains(t, fs, id)
		assert.Equal(t, Warn, fs[id].Status, id)
	}
	assert.Equal(t, "auditd does not watch the Docker daemon "+filepath.Join(bin, "real", "dockerd"), fs["auditd-1-1-3"].Title)
	assert.Contains(t, fs["auditd-1-1-3"].Fix, "--write-auditd-rules")

	path, err := WriteAuditdRules(rules, cfg)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(rules, AuditdRulesFile), path)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "# 1.1.3 the Docker daemon\n-w "+filepath.Join(bin, "real", "dockerd")+" -p wa -k docker\n")
	assert.Contains(t, text, "-w "+h.daemonJSON+" -p wa -k docker\n")
	assert.Contains(t, text, "-w "+h.state+" -p wa -k dtls\n")
	assert.Contains(t, text, "# 1.1.16 containerd-shim-runc-v1: "+filepath.Join(bin, "containerd-shim-runc-v1")+" is not on this host\n")

	fs = auditdFindings(Run(context.Background(), cfg))
	for id, f := range fs {
		assert.Equal(t, Pass, f.Status, "%s: %s", id, f.Title)
	}
	assert.Equal(t, "auditd watches the Docker daemon "+filepath.Join(bin, "real", "dockerd")+" (-p wa)", fs["auditd-1-1-3"].Title)
	assert.Contains(t, fs["auditd-absent"].Title, "1.1.16")

	t.Run("a directory watch covers what is in it", func(t *testing.T) {
		write(t, path, []byte("-w "+h.dir+" -p wa -k all\n"), 0o640)
		fs := auditdFindings(Run(context.Background(), cfg))
		assert.Equal(t, Pass, fs["auditd-1-1-11"].Status)
		assert.Equal(t, Pass, fs["auditd-dtls-state"].Status)
	})
	t.Run("no rules directory", func(t *testing.T) {
		cfg := cfg
		cfg.AuditdRulesDir = filepath.Join(h.dir, "missing")
		fs := auditdFindings(Run(context.Background(), cfg))
		require.Len(t, fs, 1)
		assert.Equal(t, Warn, fs["auditd-rules"].Status)
		assert.Contains(t, fs["auditd-rules"].Detail, "does not exist")
	})
	t.Run("not a directory", func(t *testing.T) {
		_, err := WriteAuditdRules(h.daemonJSON, cfg)
		assert.EqualError(t, err, `auditd rules directory "`+h.daemonJSON+`": not a directory`)
	})
}

func findingByID(rep Report, id string) (Finding, bool) {
	for _, f := range rep.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

// TestTrailFindings: the trail's gauge (writable, failing, denials) and
// chain, and the line on what plugin mode cannot record.
func TestTrailFindings(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, filepath.Join(t.TempDir(), "docker.sock"))
	cfg := h.config(now)
	cfg.DockerHost = "unix://" + filepath.Join(h.dir, "none.sock")
	cfg.AuditLog = filepath.Join(h.dir, "authz.log")

	f, ok := findingByID(Run(context.Background(), cfg), "audit-trail")
	require.True(t, ok)
	assert.Equal(t, Skip, f.Status)

	l, err := authz.OpenAuditLog(cfg.AuditLog, 0, 0, nil)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, l.Write(authz.AuditRecord{Phase: authz.PhaseRequest, Decision: authz.DecisionAllow, Method: "GET", Path: "/info"}))
	}
	require.NoError(t, l.Close())
	rep := Run(context.Background(), cfg)
	f, _ = findingByID(rep, "audit-trail")
	assert.Equal(t, Pass, f.Status, f.Title)
	f, _ = findingByID(rep, "audit-trail-chain")
	assert.Equal(t, Pass, f.Status)
	assert.Equal(t, "audit trail chain holds: 3 records, seq 1 to 3", f.Title)
	_, ok = findingByID(rep, "authz-streams")
	assert.False(t, ok, "no plugin in daemon.json")

	// A failing trail, as the plugin leaves its status, and an edited line.
	write(t, authz.StatusPath(cfg.AuditLog), []byte(`{"state":"failing","since":"2026-01-02T03:04:05Z","last_error":"write audit log: no space left on device","denied":7,"unrecorded":9,"pid":42}`), 0o600)
	b, err := os.ReadFile(cfg.AuditLog)
	require.NoError(t, err)
	write(t, cfg.AuditLog, []byte(strings.Replace(string(b), `"path":"/info"`, `"path":"/infx"`, 1)), 0o600)
	h.writeDaemonJSON(t, map[string]any{"authorization-plugins": []string{"dtls-authz"}})
	rep = Run(context.Background(), cfg)
	f, _ = findingByID(rep, "audit-trail")
	assert.Equal(t, Fail, f.Status)
	assert.Contains(t, f.Title, "cannot be written since 2026-01-02T03:04:05Z: 7 calls denied for it, 9 records not in the file")
	assert.Contains(t, f.Detail, "no space left on device")
	f, _ = findingByID(rep, "audit-trail-chain")
	assert.Equal(t, Fail, f.Status)
	assert.Contains(t, f.Title, "authz.log:1 (seq 1): record changed")
	f, ok = findingByID(rep, "authz-streams")
	require.True(t, ok)
	assert.Equal(t, Warn, f.Status)
	assert.Contains(t, f.Title, "exec and attach sessions are not recorded")
}
