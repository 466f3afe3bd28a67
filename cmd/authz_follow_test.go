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
)

// localPlugin is 'dtls authz serve' as its own process over the inventory
// of state, with a policy file in a temporary directory.
func startLocalPlugin(t *testing.T, state string, args ...string) *fleetPlugin {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "authz-policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	return startFleetPlugin(t, append([]string{"--state-dir", state, "--policy", policy, "--audit-log", "-"}, args...)...)
}

// issueAlice issues alice's client certificate and returns it (PEM).
func issueAlice(t *testing.T, state string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "alice")
	_, stderr, code := dtls(t, time.Now(), "issue-client", "alice", "--state-dir", state, "--out", out)
	require.Equal(t, 0, code, stderr)
	b, err := os.ReadFile(filepath.Join(out, "cert.pem"))
	require.NoError(t, err)
	return b
}

// denyWithin polls the plugin until it refuses certPEM with a message
// that holds want, for at most d.
func (p *fleetPlugin) denyWithin(t *testing.T, certPEM []byte, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		allow, msg := p.ask(t, certPEM)
		if !allow && strings.Contains(msg, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not refused with %q within %s: allow=%v %q", want, d, allow, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
}

// TestAuthzFollowsReplacedInventory: the plugin follows an inventory file
// that is replaced while it runs. SQLite keeps reading the file it opened
// after a rename or removal, so without reopening it a revocation made in
// the new file would never be enforced.
func TestAuthzFollowsReplacedInventory(t *testing.T) {
	t.Parallel()
	revoke := func(t *testing.T, state string) {
		t.Helper()
		_, stderr, code := dtls(t, time.Now(), "revoke", "alice", "--state-dir", state)
		require.Equal(t, 0, code, stderr)
	}

	// Moved aside with its -wal and -shm files (SQLite's files of one
	// database go together: sqlite.org/howtocorrupt.html, 2.4) and
	// replaced by a copy (a backup restored): a revocation in the copy
	// is enforced within a second.
	t.Run("moved aside and restored", func(t *testing.T) {
		state, _ := newInstall(t)
		alice := issueAlice(t, state)
		p := startLocalPlugin(t, state)
		allow, msg := p.ask(t, alice)
		require.True(t, allow, msg)
		db := filepath.Join(state, "dtls.db")
		aside := filepath.Join(t.TempDir(), "aside")
		require.NoError(t, os.Mkdir(aside, 0o700))
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			mustRun(t, "mv", f, aside)
		}
		mustRun(t, "cp", filepath.Join(aside, "dtls.db"), db)
		revoke(t, state)
		p.denyWithin(t, alice, `certificate "alice" serial`, time.Second)
		_, msg = p.ask(t, alice)
		assert.Contains(t, msg, "is revoked")
	})

	// Removed: refused while there is none (closed, saying why); made
	// again (a backup copied back), a revocation there is enforced.
	t.Run("removed and made again", func(t *testing.T) {
		state, _ := newInstall(t)
		alice := issueAlice(t, state)
		db := filepath.Join(state, "dtls.db")
		backup := filepath.Join(t.TempDir(), "backup.db")
		mustRun(t, "cp", db, backup)
		p := startLocalPlugin(t, state)
		allow, msg := p.ask(t, alice)
		require.True(t, allow, msg)
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			require.NoError(t, os.RemoveAll(f))
		}
		p.denyWithin(t, alice, "the inventory cannot be read", time.Second)
		_, msg = p.ask(t, alice)
		assert.Contains(t, msg, `the inventory cannot be read: open database "`+db+`": file does not exist`)
		mustRun(t, "cp", backup, db)
		// The plugin tries to open it again once a second.
		deadline := time.Now().Add(3 * time.Second)
		for allow, msg := p.ask(t, alice); !allow; allow, msg = p.ask(t, alice) {
			require.True(t, time.Now().Before(deadline), "the new inventory is not read: %s", msg)
			time.Sleep(10 * time.Millisecond)
		}
		revoke(t, state)
		p.denyWithin(t, alice, "is revoked", time.Second)
	})

	// The state directory renamed and a copy put in its place.
	t.Run("state directory replaced", func(t *testing.T) {
		state, _ := newInstall(t)
		alice := issueAlice(t, state)
		p := startLocalPlugin(t, state)
		allow, msg := p.ask(t, alice)
		require.True(t, allow, msg)
		mustRun(t, "mv", state, state+".old")
		mustRun(t, "cp", "-a", state+".old", state)
		revoke(t, state)
		p.denyWithin(t, alice, "is revoked", time.Second)
	})

	// The state directory is a symbolic link, switched to a copy in
	// which alice is revoked.
	t.Run("symbolic link switched", func(t *testing.T) {
		real, _ := newInstall(t)
		alice := issueAlice(t, real)
		link := filepath.Join(t.TempDir(), "state")
		require.NoError(t, os.Symlink(real, link))
		p := startLocalPlugin(t, link)
		allow, msg := p.ask(t, alice)
		require.True(t, allow, msg)
		next := real + ".next"
		mustRun(t, "cp", "-a", real, next)
		revoke(t, next)
		require.NoError(t, os.Symlink(next, link+".tmp"))
		require.NoError(t, os.Rename(link+".tmp", link))
		p.denyWithin(t, alice, "is revoked", time.Second)
	})
}

// TestAuthzServeRefusesUnverifiedTCP: dockerd sends no user and no
// certificate for a caller on a TCP listener without tlsverify, exactly as
// for the local unix socket, so 'authz serve' refuses to start, naming the
// host, where it is set and the fix; a daemon.json it cannot read is an
// error too. Nothing is listened on.
func TestAuthzServeRefusesUnverifiedTCP(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, daemonJSON, execStart string
		want                        []string
	}{
		{"plain TCP in daemon.json", `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}`, "",
			[]string{`dtls: error: dockerd listens on tcp://0.0.0.0:2375 (in DAEMON_JSON) with plain TCP, without TLS: its callers send no client certificate, so the authorization plugin would take them for the local unix socket`}},
		{"a bare HOST:PORT", `{"hosts": [" 127.0.0.1:2375"]}`, "",
			[]string{`dockerd listens on 127.0.0.1:2375 (in DAEMON_JSON) with plain TCP`}},
		{"tls without tlsverify", `{"hosts": ["tcp://0.0.0.0:2376"], "tls": true, "tlscert": "/c.pem", "tlskey": "/k.pem"}`, "",
			[]string{`dockerd listens on tcp://0.0.0.0:2376 (in DAEMON_JSON) with TLS without tlsverify`}},
		{"tlsverify turned off by a flag", `{"hosts": ["tcp://0.0.0.0:2376"], "tls": true, "tlsverify": true}`, "/usr/bin/dockerd --tlsverify=false",
			[]string{`dockerd listens on tcp://0.0.0.0:2376 (in DAEMON_JSON) with TLS without tlsverify`}},
		{"-H in docker.service", `{}`, "/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2375 --containerd=/run/containerd/containerd.sock",
			[]string{`dockerd listens on tcp://0.0.0.0:2375 (in UNIT) with plain TCP`}},
		{"invalid daemon.json", `{"hosts": [}`, "",
			[]string{`dtls: error: read daemon config "DAEMON_JSON": invalid JSON at line 1, column 12: invalid character '}' looking for beginning of value: cannot tell whether dockerd takes TCP callers without a client certificate`,
				"dtls: hint: fix the file, or point --daemon-json at the daemon.json dockerd reads"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			daemonJSON, unit, socket := filepath.Join(dir, "daemon.json"), filepath.Join(dir, "docker.service"), filepath.Join(dir, "authz.sock")
			require.NoError(t, os.WriteFile(daemonJSON, []byte(c.daemonJSON), 0o644))
			if c.execStart != "" {
				require.NoError(t, os.WriteFile(unit, []byte("[Service]\nExecStart="+c.execStart+"\n"), 0o644))
			}
			state, _ := newInstall(t)
			_, stderr, code := dtls(t, time.Now(), "authz", "serve", "--state-dir", state, "--socket", socket, "--audit-log", "-",
				"--policy", filepath.Join(dir, "none.json"), "--daemon-json", daemonJSON, "--systemd-dir", dir)
			assert.Equal(t, 1, code, stderr)
			for _, w := range c.want {
				w = strings.NewReplacer("DAEMON_JSON", daemonJSON, "UNIT", unit).Replace(w)
				assert.Contains(t, stderr, w)
			}
			if !strings.Contains(c.name, "invalid") {
				assert.Contains(t, stderr, `dtls: hint: set "tlsverify": true with "tlscacert", "tlscert" and "tlskey" in daemon.json (sudo dtls init does), or remove the host, then restart docker`)
			}
			assert.NoFileExists(t, socket)
		})
	}

	// Verified TCP, from the file or from a flag, and no daemon.json at
	// all (dockerd's defaults): the plugin serves.
	for _, c := range []struct{ daemonJSON, execStart string }{
		{`{"hosts": ["tcp://0.0.0.0:2376"], "tls": true, "tlsverify": true}`, ""},
		{`{}`, "/usr/bin/dockerd -H tcp://0.0.0.0:2376 --tlsverify"},
		{"", ""},
	} {
		dir := t.TempDir()
		daemonJSON := filepath.Join(dir, "daemon.json")
		if c.daemonJSON != "" {
			require.NoError(t, os.WriteFile(daemonJSON, []byte(c.daemonJSON), 0o644))
		}
		if c.execStart != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "docker.service"), []byte("[Service]\nExecStart="+c.execStart+"\n"), 0o644))
		}
		state, _ := newInstall(t)
		alice := issueAlice(t, state)
		p := startLocalPlugin(t, state, "--daemon-json", daemonJSON, "--systemd-dir", dir)
		allow, msg := p.ask(t, alice)
		assert.True(t, allow, msg)
	}
}

// TestAuthzServeMissingExplicitPolicy: a --policy given elsewhere than the
// default path that is missing denies every TCP request, saying why
// (closed), while the unix socket keeps the built-in policy; once the file
// exists it is loaded.
func TestAuthzServeMissingExplicitPolicy(t *testing.T) {
	t.Parallel()
	state, _ := newInstall(t)
	alice := issueAlice(t, state)
	policy := filepath.Join(t.TempDir(), "policy.json")
	p := startFleetPlugin(t, "--state-dir", state, "--policy", policy, "--audit-log", "-")
	allow, msg := p.ask(t, alice)
	assert.False(t, allow)
	assert.Contains(t, msg, `every TCP request is denied until the policy is fixed: policy "`+policy+`" cannot be read: no such file or directory`)
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": "readonly"}`), 0o644))
	deadline := time.Now().Add(3 * time.Second)
	for allow, msg := p.ask(t, alice); !allow; allow, msg = p.ask(t, alice) {
		require.True(t, time.Now().Before(deadline), "the policy is not loaded: %s", msg)
		time.Sleep(10 * time.Millisecond)
	}
}
