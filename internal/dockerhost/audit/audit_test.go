package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

func TestMain(m *testing.M) {
	// cfssl, under pki, logs every signature at info level.
	cflog.Level = cflog.LevelError
	if js := os.Getenv(envAuditAs); js != "" {
		// Run as another user by runAsNobody.
		var cfg Config
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out, _ := json.Marshal(Run(context.Background(), cfg))
		os.Stdout.Write(out)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// host is a Docker host's files laid out the way dtls init leaves them, in
// a temporary directory.
type host struct {
	dir, daemonJSON, certs, state, systemd, group string
	ca                                            *pki.CA
}

// newHost writes a CA (state dir 0700, key 0400), the daemon's ca.pem,
// server-cert.pem (0444) and server-key.pem (0400), and a daemon.json that
// listens on socket and on a loopback TCP port with tlsverify. The group
// file has a group docker with alice and bob.
func newHost(t testing.TB, now time.Time, socket string) *host {
	t.Helper()
	dir := t.TempDir()
	h := &host{
		dir:        dir,
		daemonJSON: filepath.Join(dir, "etc", "daemon.json"),
		certs:      filepath.Join(dir, "etc", "certs"),
		state:      filepath.Join(dir, "state"),
		systemd:    filepath.Join(dir, "systemd"),
		group:      filepath.Join(dir, "group"),
	}
	for _, d := range []struct {
		p    string
		mode os.FileMode
	}{{filepath.Join(dir, "etc"), 0o755}, {h.certs, 0o755}, {h.state, 0o700}, {h.systemd, 0o755}} {
		require.NoError(t, os.Mkdir(d.p, d.mode))
		require.NoError(t, os.Chmod(d.p, d.mode))
	}
	ca, err := pki.NewCA(pki.CARequest{Now: now})
	require.NoError(t, err)
	h.ca = ca
	srv, err := ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost", "127.0.0.1"}, Now: now})
	require.NoError(t, err)
	write(t, filepath.Join(h.state, "ca-key.pem"), ca.KeyPEM, 0o400)
	write(t, filepath.Join(h.state, "ca.pem"), ca.CertPEM, 0o444)
	write(t, filepath.Join(h.certs, "ca.pem"), ca.CertPEM, 0o444)
	write(t, filepath.Join(h.certs, "server-cert.pem"), srv.CertPEM, 0o444)
	write(t, filepath.Join(h.certs, "server-key.pem"), srv.KeyPEM, 0o400)
	h.writeDaemonJSON(t, map[string]any{
		"hosts":     []string{"unix://" + socket, "tcp://127.0.0.1:2376"},
		"tlsverify": true,
		"tlscacert": filepath.Join(h.certs, "ca.pem"),
		"tlscert":   filepath.Join(h.certs, "server-cert.pem"),
		"tlskey":    filepath.Join(h.certs, "server-key.pem"),
	})
	write(t, h.group, []byte("root:x:0:\ndocker:x:"+dockerGID(t)+":alice,bob\n"), 0o644)
	write(t, h.passwd(), []byte("root:x:0:0:root:/root:/bin/bash\ncarol:x:1003:"+dockerGID(t)+"::/home/carol:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"), 0o644)
	return h
}

// passwd is the host's user database: carol's primary group is docker.
func (h *host) passwd() string { return filepath.Join(filepath.Dir(h.group), "passwd") }

func (h *host) writeDaemonJSON(t testing.TB, v map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	write(t, h.daemonJSON, b, 0o644)
}

func (h *host) config(now time.Time) Config {
	return Config{
		DaemonJSON:    h.daemonJSON,
		StateDir:      h.state,
		SystemdDirs:   []string{h.systemd},
		Group:         h.group,
		Passwd:        h.passwd(),
		Now:           now,
		ExpiryWarning: 30 * 24 * time.Hour,
		Hosts:         []string{"localhost", "127.0.0.1"},
	}
}

// dockerGID is the GID dockerd gives its socket: the host's group docker,
// which dockerd looks up itself.
func dockerGID(t testing.TB) string {
	b, err := os.ReadFile("/etc/group")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) == 4 && f[0] == "docker" {
			return f[2]
		}
	}
	return "0"
}

func write(t testing.TB, p string, b []byte, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(p, b, mode))
	require.NoError(t, os.Chmod(p, mode))
}

// createContainer creates (does not start) a container from tiny:1.
func createContainer(t testing.TB, d *sandbox.Daemon, name string, binds ...string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"Image":      "tiny:1",
		"Cmd":        []string{"/x"},
		"HostConfig": map[string]any{"Binds": binds},
	})
	require.NoError(t, err)
	c := d.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://docker/containers/create?name="+name, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "create %s: %s", name, b)
}

// byID returns the findings with an id.
func byID(r Report, id string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

func statuses(fs []Finding) []Status {
	out := make([]Status, len(fs))
	for i, f := range fs {
		out[i] = f.Status
	}
	return out
}

// failures lists the FAIL findings, for messages.
func failures(r Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		if f.Status == Fail {
			fmt.Fprintf(&b, "%s [%s] %s\n", f.ID, f.CIS, f.Title)
		}
	}
	return b.String()
}

// requireOne asserts exactly one finding with id, of status st and CIS id
// cis, and returns it.
func requireOne(t *testing.T, r Report, id string, st Status, cis string) Finding {
	t.Helper()
	fs := byID(r, id)
	require.Len(t, fs, 1, "findings %q: %+v", id, fs)
	assert.Equal(t, st, fs[0].Status, "%s: %s (%s)", id, fs[0].Title, fs[0].Detail)
	assert.Equal(t, cis, fs[0].CIS, id)
	return fs[0]
}

// TestAuditGoodHostAndEachFailure prepares a host as dtls init would, audits
// it against a real dockerd, then breaks one thing at a time and checks
// that exactly that is reported as FAIL with its CIS id.
func TestAuditGoodHostAndEachFailure(t *testing.T) {
	d := sandbox.StartForTest(t)
	ctx := context.Background()
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	createContainer(t, d, "harmless", "/usr/share:/data")
	now := time.Now()

	t.Run("good host", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		rep := Run(ctx, h.config(now))
		require.False(t, rep.Failed(), failures(rep))
		for _, c := range []struct{ id, cis string }{
			{"socket-owner", "3.15"}, {"socket-mode", "3.16"},
			{"daemon-flag-conflict", ""},
			{"etc-docker-owner", "3.5"}, {"etc-docker-mode", "3.6"},
			{"daemon-json-owner", "3.17"}, {"daemon-json-mode", "3.18"},
			{"ca-cert-owner", "3.9"}, {"ca-cert-mode", "3.10"},
			{"server-cert-owner", "3.11"}, {"server-cert-mode", "3.12"},
			{"server-key-owner", "3.13"}, {"server-key-mode", "3.14"},
			{"ca-key-location", ""}, {"ca-key-mode", ""},
			{"server-cert-expiry", ""}, {"ca-cert-expiry", ""}, {"server-cert-sans", ""},
			{"server-cert-chain", ""}, {"server-key-match", ""}, {"server-cert-eku", ""},
			{"server-cert-signature", ""}, {"daemon-version", ""}, {"daemon-seccomp", "2.17"},
			{"container-socket-mount", "5.32"},
		} {
			requireOne(t, rep, c.id, Pass, c.cis)
		}
		// The TCP listener with tlsverify.
		tcp := requireOne(t, rep, "daemon-tcp-tls", Pass, "2.7")
		assert.Contains(t, tcp.Title, "tcp://127.0.0.1:2376")
		// Group docker: both members named, as root-equivalent.
		g := requireOne(t, rep, "docker-group", Warn, "")
		assert.Contains(t, g.Title, "alice, bob, carol (primary group)")
		assert.Contains(t, g.Title, "3 members")
		assert.Contains(t, g.Title, "root-equivalent")
		assert.Contains(t, g.Fix, "sudo dtls role --unix-user alice developer")
		// Nothing to bypass without an AuthZ plugin: a WARN.
		requireOne(t, rep, "daemon-authz", Warn, "2.12")
		assert.Equal(t, 0, rep.Summary.Skip, "%+v", rep.Findings)
	})

	t.Run("socket root's alone", func(t *testing.T) {
		// dtls init --local: group docker's members no longer reach it.
		h := newHost(t, now, d.Socket)
		fi, err := os.Stat(d.Socket)
		require.NoError(t, err)
		_, gid, _ := owner(fi)
		require.NoError(t, os.Chown(d.Socket, 0, 0))
		t.Cleanup(func() { require.NoError(t, os.Chown(d.Socket, 0, int(gid))) })
		rep := Run(ctx, h.config(now))
		g := requireOne(t, rep, "docker-group", Pass, "")
		assert.Contains(t, g.Title, "is root's alone (root:root): they do not reach it")
		requireOne(t, rep, "socket-owner", Pass, "3.15")
	})

	t.Run("socket 0666", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		fi, err := os.Stat(d.Socket)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(d.Socket, 0o666))
		t.Cleanup(func() { _ = os.Chmod(d.Socket, fi.Mode().Perm()) })
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "socket-mode", Fail, "3.16")
		assert.Contains(t, f.Title, "0666")
		assert.Equal(t, "sudo chmod 660 "+d.Socket, f.Fix)
		assert.Equal(t, 1, rep.Summary.Fail, failures(rep))
	})

	t.Run("tcp 2375 without TLS", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		h.writeDaemonJSON(t, map[string]any{"hosts": []string{"unix://" + d.Socket, "tcp://0.0.0.0:2375"}})
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "daemon-tcp-tls", Fail, "2.7")
		assert.Contains(t, f.Title, "tcp://0.0.0.0:2375")
		requireOne(t, rep, "daemon-port-2375", Fail, "")
	})

	t.Run("tls without verify", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		h.writeDaemonJSON(t, map[string]any{
			"hosts": []string{"unix://" + d.Socket, "tcp://0.0.0.0:2376"}, "tls": true,
			"tlscert": filepath.Join(h.certs, "server-cert.pem"), "tlskey": filepath.Join(h.certs, "server-key.pem"),
		})
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "daemon-tcp-tls", Fail, "2.7")
		assert.Contains(t, f.Title, "without tlsverify")
	})

	t.Run("key 0644", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		key := filepath.Join(h.certs, "server-key.pem")
		require.NoError(t, os.Chmod(key, 0o644))
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "server-key-mode", Fail, "3.14")
		assert.Equal(t, "chmod 400 "+key, f.Fix)
		assert.Equal(t, 1, rep.Summary.Fail, failures(rep))
	})

	t.Run("key 0440 is not exactly 0400", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		require.NoError(t, os.Chmod(filepath.Join(h.certs, "server-key.pem"), 0o440))
		requireOne(t, Run(ctx, h.config(now)), "server-key-mode", Fail, "3.14")
	})

	t.Run("expired server certificate", func(t *testing.T) {
		// A CA made 90 days ago, which issued a 30-day certificate 60
		// days ago.
		h := newHost(t, now.Add(-90*24*time.Hour), d.Socket)
		old, err := h.ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost", "127.0.0.1"},
			Now: now.Add(-60 * 24 * time.Hour), Validity: 30 * 24 * time.Hour, NotBefore: now.Add(-60 * 24 * time.Hour)})
		require.NoError(t, err)
		require.True(t, old.Cert.NotAfter.Before(now))
		write(t, filepath.Join(h.certs, "server-cert.pem"), old.CertPEM, 0o444)
		write(t, filepath.Join(h.certs, "server-key.pem"), old.KeyPEM, 0o400)
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "server-cert-expiry", Fail, "")
		assert.Contains(t, f.Title, "expired on "+old.Cert.NotAfter.UTC().Format("2006-01-02"))
		// Reported once, as expired: the chain itself is fine.
		requireOne(t, rep, "server-cert-chain", Pass, "")
		assert.Equal(t, 1, rep.Summary.Fail, failures(rep))
	})

	t.Run("server certificate expiring soon", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		cfg := h.config(now.Add(350 * 24 * time.Hour)) // a year's certificate, 15 days left
		requireOne(t, Run(ctx, cfg), "server-cert-expiry", Warn, "")
	})

	t.Run("server certificate from another CA", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		other, err := pki.NewCA(pki.CARequest{Now: now})
		require.NoError(t, err)
		srv, err := other.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost"}, Now: now})
		require.NoError(t, err)
		write(t, filepath.Join(h.certs, "server-cert.pem"), srv.CertPEM, 0o444)
		rep := Run(ctx, h.config(now))
		requireOne(t, rep, "server-cert-chain", Fail, "")
		requireOne(t, rep, "server-key-match", Fail, "")
		f := requireOne(t, rep, "server-cert-sans", Warn, "")
		assert.Contains(t, f.Title, "127.0.0.1")
	})

	t.Run("daemon.json not root-owned", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		require.NoError(t, os.Chown(h.daemonJSON, 65534, 65534))
		f := requireOne(t, Run(ctx, h.config(now)), "daemon-json-owner", Fail, "3.17")
		assert.Contains(t, f.Title, "65534:65534")
	})

	t.Run("CA key in the certs dir", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		write(t, filepath.Join(h.certs, "signing.pem"), h.ca.KeyPEM, 0o400)
		f := requireOne(t, Run(ctx, h.config(now)), "ca-key-location", Fail, "")
		assert.Contains(t, f.Title, "signing.pem")
	})

	t.Run("unit files others can write or own", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		b, err := os.ReadFile("../../../daemonconfig/testdata/docker.service.debian")
		require.NoError(t, err)
		write(t, filepath.Join(h.systemd, "docker.service"), b, 0o666)
		write(t, filepath.Join(h.systemd, "docker.socket"), []byte("[Socket]\nListenStream=/run/docker.sock\n"), 0o644)
		require.NoError(t, os.Chown(filepath.Join(h.systemd, "docker.socket"), 65534, 65534))
		rep := Run(ctx, h.config(now))
		requireOne(t, rep, "docker-service-owner", Pass, "3.1")
		requireOne(t, rep, "docker-service-mode", Fail, "3.2")
		requireOne(t, rep, "docker-socket-unit-owner", Fail, "3.3")
		requireOne(t, rep, "docker-socket-unit-mode", Pass, "3.4")
	})

	t.Run("CA key readable by others", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		require.NoError(t, os.Chmod(filepath.Join(h.state, "ca-key.pem"), 0o644))
		requireOne(t, Run(ctx, h.config(now)), "ca-key-mode", Fail, "")
	})

	t.Run("hosts both in the unit and in daemon.json", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		b, err := os.ReadFile("../../../daemonconfig/testdata/docker.service.debian")
		require.NoError(t, err)
		write(t, filepath.Join(h.systemd, "docker.service"), b, 0o644)
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "daemon-flag-conflict", Fail, "")
		assert.Contains(t, f.Title, "-H fd://")
	})

	t.Run("hosts hidden in DOCKER_OPTS of the unit's EnvironmentFile", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		b, err := os.ReadFile("../../../daemonconfig/testdata/docker.service.debian")
		require.NoError(t, err)
		envFile := filepath.Join(h.systemd, "default-docker")
		unit := strings.Replace(string(b), "EnvironmentFile=-/etc/default/docker", "EnvironmentFile=-"+envFile, 1)
		require.NotEqual(t, string(b), unit, "the fixture must name /etc/default/docker")
		write(t, filepath.Join(h.systemd, "docker.service"), []byte(unit), 0o644)
		write(t, envFile, []byte("# old Ubuntu advice\nDOCKER_OPTS=\"-H tcp://0.0.0.0:2375 --dns 192.0.2.53\"\n"), 0o644)
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "daemon-flag-conflict", Fail, "")
		assert.Contains(t, f.Title, "-H tcp://0.0.0.0:2375")
		assert.Contains(t, f.Title, "$DOCKER_OPTS in "+envFile)
	})

	t.Run("flags in the unit without TLS", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		h.writeDaemonJSON(t, map[string]any{})
		write(t, filepath.Join(h.systemd, "docker.service"),
			[]byte("[Service]\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --tls --authorization-plugin=opa\n"), 0o644)
		cfg := h.config(now)
		cfg.Socket = d.Socket
		rep := Run(ctx, cfg)
		requireOne(t, rep, "daemon-flag-conflict", Pass, "")
		f := requireOne(t, rep, "daemon-tcp-tls", Fail, "2.7")
		assert.Contains(t, f.Title, "without tlsverify")
		a := requireOne(t, rep, "daemon-authz", Pass, "2.12")
		assert.Contains(t, a.Title, "opa")
	})

	t.Run("singular host key", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		h.writeDaemonJSON(t, map[string]any{"host": "tcp://0.0.0.0:2376", "hosts": []string{"unix://" + d.Socket}})
		rep := Run(ctx, h.config(now))
		f := requireOne(t, rep, "daemon-host-key", Warn, "2.7")
		assert.Contains(t, f.Title, "tcp://0.0.0.0:2376")
		// dockerd ignores it, so it listens on no TCP address.
		requireOne(t, rep, "daemon-tcp-tls", Pass, "2.7")
	})

	t.Run("socket group", func(t *testing.T) {
		h := newHost(t, now, d.Socket)
		write(t, h.group, []byte("docker:x:4242:\n"), 0o644)
		fi, err := os.Stat(d.Socket)
		require.NoError(t, err)
		_, gid, _ := owner(fi)
		f := requireOne(t, Run(ctx, h.config(now)), "socket-owner", map[bool]Status{true: Pass, false: Fail}[gid == 0], "3.15")
		if gid != 0 {
			assert.Contains(t, f.Title, "not docker")
		}
	})

	t.Run("socket mounted into a container", func(t *testing.T) {
		createContainer(t, d, "sockmount", "/var/run/docker.sock:/var/run/docker.sock")
		createContainer(t, d, "runmount", "/run:/hostrun")
		h := newHost(t, now, d.Socket)
		rep := Run(ctx, h.config(now))
		fs := byID(rep, "container-socket-mount")
		require.Len(t, fs, 2, "%+v", fs)
		for _, f := range fs {
			assert.Equal(t, Fail, f.Status)
			assert.Equal(t, "5.32", f.CIS)
		}
		assert.Contains(t, fs[0].Title, "container runmount mounts the directory holding the Docker socket")
		assert.Contains(t, fs[1].Title, "container sockmount mounts the Docker socket (/var/run/docker.sock at /var/run/docker.sock)")
		assert.Contains(t, fs[1].Fix, "'sudo dtls gateway socket add sockmount --role readonly' and -v /run/dtls/sockets/sockmount.sock:/var/run/docker.sock in its place")
		assert.Contains(t, fs[1].Fix, "--role proxy for a reverse proxy such as traefik, updater for watchtower, ci-runner for a CI runner")
		assert.Contains(t, fs[0].Fix, "-v /run/dtls/sockets/runmount.sock:/hostrun/docker.sock in its place")
		assert.NotContains(t, fmt.Sprint(fs), "harmless")
	})
}

// TestAuditWithoutDaemon: a daemon that does not answer is reported as SKIP
// with the reason, not as a failure.
func TestAuditWithoutDaemon(t *testing.T) {
	now := time.Now()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "none.sock")
	h := newHost(t, now, sock)
	rep := Run(context.Background(), h.config(now))
	require.False(t, rep.Failed(), failures(rep))
	for _, id := range []string{"daemon-version", "daemon-security-options", "container-socket-mount", "socket-owner", "socket-mode"} {
		fs := byID(rep, id)
		require.Len(t, fs, 1, id)
		assert.Equal(t, Skip, fs[0].Status, id)
	}
	assert.Contains(t, byID(rep, "daemon-version")[0].Detail, "daemon not reachable at unix://"+sock)
	assert.Contains(t, byID(rep, "socket-mode")[0].Detail, sock+" does not exist")
}

// TestAuditUnreadable: files the audit may not read are SKIP with
// "permission denied", never PASS or FAIL. The audit runs as an
// unprivileged user: as root, this test binary re-runs itself under
// setpriv as nobody (uid and gid 65534, no supplementary groups).
func TestAuditUnreadable(t *testing.T) {
	now := time.Now()
	// A host others may traverse, whose secrets only root reads:
	// daemon.json 0600, the server key 0400, the state directory 0700.
	root, err := os.MkdirTemp("", "dtls-audit-unreadable-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	require.NoError(t, os.Chmod(root, 0o755))
	h := newHost(t, now, "/nonexistent/docker.sock")
	host := filepath.Join(root, "host")
	require.NoError(t, os.Rename(h.dir, host))
	require.NoError(t, os.Chmod(host, 0o755))
	moved := func(p string) string { return filepath.Join(host, strings.TrimPrefix(p, h.dir)) }
	h.dir, h.daemonJSON, h.certs, h.state, h.systemd, h.group = host, moved(h.daemonJSON), moved(h.certs), moved(h.state), moved(h.systemd), moved(h.group)
	h.writeDaemonJSON(t, map[string]any{
		"hosts": []string{"unix:///nonexistent/docker.sock", "tcp://0.0.0.0:2376"}, "tlsverify": true,
		"tlscacert": filepath.Join(h.certs, "ca.pem"), "tlscert": filepath.Join(h.certs, "server-cert.pem"), "tlskey": filepath.Join(h.certs, "server-key.pem"),
	})
	require.NoError(t, os.Chmod(h.daemonJSON, 0o600))
	cfg := h.config(now)

	var rep Report
	if os.Geteuid() != 0 {
		rep = Run(context.Background(), cfg)
	} else {
		rep = runAsNobody(t, root, cfg)
	}
	f := requireOne(t, rep, "daemon-json-syntax", Skip, "")
	assert.Equal(t, h.daemonJSON+": permission denied (run dtls audit as root to check it)", f.Detail)
	requireOne(t, rep, "daemon-tcp-tls", Skip, "2.7")
	f = requireOne(t, rep, "ca-key-mode", Skip, "")
	assert.Contains(t, f.Detail, "permission denied")
	// Neither a PASS nor a FAIL about what could not be read.
	for _, f := range rep.Findings {
		if strings.Contains(f.Detail, "permission denied") {
			assert.Equal(t, Skip, f.Status, "%s: %s", f.ID, f.Title)
		}
	}
}

// envAuditAs, in the environment of this test binary, makes TestMain run
// the audit described by the JSON Config it holds and print the report as
// JSON, instead of the tests.
const envAuditAs = "DTLS_TEST_AUDIT_CONFIG"

// runAsNobody runs the audit of cfg in a copy of this test binary (in dir,
// which nobody can traverse) under setpriv as uid and gid 65534.
func runAsNobody(t *testing.T, dir string, cfg Config) Report {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("setpriv (util-linux; scripts/deps.sh installs it) runs the audit as an unprivileged user: %v", err)
		}
		t.Skipf("setpriv not found: %v", err)
	}
	self, err := os.Executable()
	require.NoError(t, err)
	exe := filepath.Join(dir, "audit.test")
	b, err := os.ReadFile(self)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(exe, b, 0o755))
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", exe)
	cmd.Env = []string{envAuditAs + "=" + string(js), "PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out, &rep), "%s", out)
	return rep
}

func TestParseVersion(t *testing.T) {
	for _, c := range []struct {
		in     string
		v      version
		suffix string
	}{
		{"20.10.24+dfsg1", version{20, 10, 24}, "+dfsg1"},
		{"27.1.1", version{27, 1, 1}, ""},
		{"v29.3.1", version{29, 3, 1}, ""},
		{"18.09.1-ce", version{18, 9, 1}, "-ce"},
		{"24.0.7-0ubuntu4", version{24, 0, 7}, "-0ubuntu4"},
		{"26.1", version{26, 1, 0}, ""},
	} {
		v, s, ok := parseVersion(c.in)
		require.True(t, ok, c.in)
		assert.Equal(t, c.v, v, c.in)
		assert.Equal(t, c.suffix, s, c.in)
	}
	_, _, ok := parseVersion("master-dockerproject-2024")
	assert.False(t, ok)
}

func TestCVERanges(t *testing.T) {
	affected := func(id, v string) bool {
		ver, _, ok := parseVersion(v)
		require.True(t, ok)
		for _, c := range cves {
			if c.id == id {
				_, hit := c.affects(ver)
				return hit
			}
		}
		t.Fatalf("no %s", id)
		return false
	}
	for v, want := range map[string]bool{
		"18.09.0": true, "18.09.1": false, "19.03.15": true, "19.03.16": false,
		"20.10.24": true, "20.10.27": true, "20.10.28": false,
		"23.0.14": true, "23.0.15": false, "24.0.9": true, "24.0.10": false,
		"25.0.5": true, "25.0.6": false, "26.0.2": true, "26.0.3": false,
		"26.1.4": true, "26.1.5": false, "27.0.3": true, "27.1.0": true, "27.1.1": false,
		"28.0.0": false, "29.3.1": false,
	} {
		assert.Equal(t, want, affected("CVE-2024-41110", v), "CVE-2024-41110 %s", v)
	}
	for v, want := range map[string]bool{"20.10.24": true, "27.1.1": true, "29.3.0": true, "29.3.1": false, "29.4.0": false, "30.0.0": false} {
		assert.Equal(t, want, affected("CVE-2026-34040", v), "CVE-2026-34040 %s", v)
	}
}

func TestCheckVersionStatus(t *testing.T) {
	for _, c := range []struct {
		version string
		authz   []string
		want    Status
	}{
		{"27.1.0", []string{"opa"}, Fail},            // upstream, AuthZ in use
		{"27.1.0", nil, Warn},                        // nothing to bypass
		{"20.10.24+dfsg1", []string{"opa"}, Warn},    // Debian may have backported the fix
		{"29.3.1", []string{"opa"}, Pass},            // fixed
		{"29.3.0-rc.1", []string{"opa"}, Fail},       // a release candidate is upstream
		{"24.0.7-0ubuntu4", []string{"authz"}, Warn}, // Ubuntu
	} {
		a := &auditor{}
		a.checkVersion(versionInfo{Version: c.version, APIVersion: "1.41"}, c.authz)
		r := Report{Findings: a.findings}
		f := byID(r, "cve-2026-34040")
		require.Len(t, f, 1)
		assert.Equal(t, c.want, f[0].Status, "%s %v: %s", c.version, c.authz, f[0].Title)
		if strings.Contains(c.version, "dfsg") {
			assert.Contains(t, f[0].Detail, "backport")
		}
	}
}

func TestParseFlags(t *testing.T) {
	f := daemonconfig.DockerdFlagMap("/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock --tlsverify --tlscert /etc/x.pem -D --authorization-plugin opa --authorization-plugin=other $DOCKER_OPTS")
	assert.Equal(t, []string{"/run/containerd/containerd.sock"}, f["containerd"])
	assert.Equal(t, []string{""}, f["tlsverify"])
	assert.Equal(t, []string{"/etc/x.pem"}, f["tlscert"])
	assert.Equal(t, []string{""}, f["debug"])
	assert.Equal(t, []string{"opa", "other"}, f["authorization-plugin"])
	set, v := flagBool([]string{"false"})
	assert.True(t, set)
	assert.False(t, v)
}

// BenchmarkAudit200Containers times a whole audit against a sandboxed
// dockerd holding 200 created containers, 20 of them with the socket
// mounted.
func BenchmarkAudit200Containers(b *testing.B) {
	d := sandbox.StartForTest(b)
	ctx := context.Background()
	require.NoError(b, d.TinyImage(ctx, "tiny:1"))
	const n, workers = 200, 8
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < workers; w++ {
		go func() {
			for i := range next {
				errs <- create(d, fmt.Sprintf("c%03d", i), i%10 == 0)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for i := 0; i < n; i++ {
		require.NoError(b, <-errs)
	}
	now := time.Now()
	h := newHost(b, now, d.Socket)
	cfg := h.config(now)

	rep := Run(ctx, cfg)
	require.Len(b, byID(rep, "container-socket-mount"), n/10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Run(ctx, cfg)
	}
}

func create(d *sandbox.Daemon, name string, sock bool) error {
	var binds []string
	if sock {
		binds = []string{"/var/run/docker.sock:/var/run/docker.sock"}
	}
	body, _ := json.Marshal(map[string]any{"Image": "tiny:1", "Cmd": []string{"/x"}, "HostConfig": map[string]any{"Binds": binds}})
	c := d.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://docker/containers/create?name="+name, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("create %s: %s: %s", name, resp.Status, b)
	}
	return nil
}

// TestAuditUnreadableWithUnit: when daemon.json cannot be read but
// docker.service can, the unit alone does not say how dockerd listens
// ("hosts" and "tlsverify" may be in the file): the listener and conflict
// checks are SKIP, not PASS.
func TestAuditUnreadableWithUnit(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, "/nonexistent/docker.sock")
	write(t, filepath.Join(h.systemd, "docker.service"),
		[]byte("[Service]\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n"), 0o644)
	cfg := h.config(now)
	// A path through a regular file fails (ENOTDIR) even for root, as
	// EACCES does for a user.
	cfg.DaemonJSON = filepath.Join(h.group, "daemon.json")
	rep := Run(context.Background(), cfg)
	f := requireOne(t, rep, "daemon-tcp-tls", Skip, "2.7")
	assert.Contains(t, f.Detail, cfg.DaemonJSON)
	requireOne(t, rep, "daemon-flag-conflict", Skip, "")
}

// TestAuditHostWithSpaces: dockerd trims the space around a "hosts" entry
// (opts.ParseHost), so " tcp://0.0.0.0:2375" is a plain-text TCP listener.
func TestAuditHostWithSpaces(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, "/nonexistent/docker.sock")
	h.writeDaemonJSON(t, map[string]any{"hosts": []string{" tcp://0.0.0.0:2375 "}})
	rep := Run(context.Background(), h.config(now))
	requireOne(t, rep, "daemon-tcp-tls", Fail, "2.7")
	requireOne(t, rep, "daemon-port-2375", Fail, "")
}

// TestAuditCAKeyLinkedIntoCerts: a symbolic link in the certs directory to
// the CA key puts the key there as much as a copy does.
func TestAuditCAKeyLinkedIntoCerts(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, "/nonexistent/docker.sock")
	require.NoError(t, os.Symlink(filepath.Join(h.state, "ca-key.pem"), filepath.Join(h.certs, "ca-key.pem")))
	require.NoError(t, os.Symlink(filepath.Join(h.state, "ca-key.pem"), filepath.Join(h.certs, "signing.pem")))
	f := requireOne(t, Run(context.Background(), h.config(now)), "ca-key-location", Fail, "")
	assert.Contains(t, f.Title, filepath.Join(h.certs, "ca-key.pem"))
	assert.Contains(t, f.Title, filepath.Join(h.certs, "signing.pem"))
}

// TestAuditCombinedShortHostFlag: -DH fd:// in docker.service is -H fd://
// for dockerd (pflag combines short flags), so "hosts" in daemon.json is a
// conflict that keeps dockerd from starting.
func TestAuditCombinedShortHostFlag(t *testing.T) {
	for _, execStart := range []string{"/usr/bin/dockerd -DH fd://", "/usr/bin/dockerd -D -H fd://", "/usr/bin/dockerd -Hfd://", "/usr/bin/dockerd --host=fd://", "/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376"} {
		now := time.Now()
		h := newHost(t, now, "/nonexistent/docker.sock")
		write(t, filepath.Join(h.systemd, "docker.service"), []byte("[Service]\nExecStart="+execStart+"\n"), 0o644)
		f := requireOne(t, Run(context.Background(), h.config(now)), "daemon-flag-conflict", Fail, "")
		assert.Contains(t, f.Title, "-H fd://", execStart)
	}
}

// TestAuditCertsDirWins: --certs-dir names the directory checked even when
// daemon.json names the certificates elsewhere (its base names are kept).
func TestAuditCertsDirWins(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, "/nonexistent/docker.sock")
	other := filepath.Join(h.dir, "copy")
	require.NoError(t, os.Mkdir(other, 0o755))
	for _, n := range []string{"ca.pem", "server-cert.pem", "server-key.pem"} {
		b, err := os.ReadFile(filepath.Join(h.certs, n))
		require.NoError(t, err)
		write(t, filepath.Join(other, n), b, 0o444)
	}
	cfg := h.config(now)
	cfg.CertsDir = other
	rep := Run(context.Background(), cfg)
	f := requireOne(t, rep, "server-key-mode", Fail, "3.14")
	assert.Contains(t, f.Title, filepath.Join(other, "server-key.pem"))
	for _, f := range rep.Findings {
		assert.NotContains(t, f.Title, h.certs+"/", "%s: daemon.json's directory was checked instead of --certs-dir", f.ID)
	}
}

// TestAuditRemoteSkipsHostChecks: a remote audit says first that the host
// checks were skipped, and passes nothing it did not see: here a
// daemon.json with a plain-text listener and a loose key on this machine
// are not reported at all, and an unreachable daemon is SKIP.
func TestAuditRemoteSkipsHostChecks(t *testing.T) {
	now := time.Now()
	h := newHost(t, now, "/nonexistent/docker.sock")
	require.NoError(t, os.Chmod(filepath.Join(h.certs, "server-key.pem"), 0o644))
	cfg := h.config(now)
	cfg.Remote, cfg.DockerHost, cfg.Hosts = true, "tcp://127.0.0.1:1", nil
	rep := Run(context.Background(), cfg)
	require.NotEmpty(t, rep.Findings)
	first := rep.Findings[0]
	assert.Equal(t, "host-checks", first.ID)
	assert.Equal(t, Skip, first.Status)
	assert.Contains(t, first.Title, "host checks skipped")
	for _, f := range rep.Findings {
		assert.NotEqual(t, Pass, f.Status, "%s: %s", f.ID, f.Title)
		assert.NotContains(t, []string{"socket-mode", "socket-owner", "daemon-tcp-tls", "server-key-mode", "etc-docker-owner", "docker-group"}, f.ID)
	}
	requireOne(t, rep, "server-cert", Skip, "")
	assert.False(t, rep.Failed())
}
