package cmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
)

// TestGatewayInstallWithRealDocker: after 'dtls init --gateway' a real
// dockerd starts from the merged daemon.json (tlsverify and the TLS files
// kept, no TCP host) on its local socket only, and leaves the TCP port
// free for the gateway's socket; 'dtls init' moves the listener back and
// dockerd serves mutual TLS there again.
func TestGatewayInstallWithRealDocker(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := newTLSHost(t, now)
	paths := []string{"--state-dir", h.State, "--certs-dir", h.Certs, "--daemon-json", h.DaemonJSON, "--systemd-dir", h.Systemd,
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", h.Port)}
	run := func(args ...string) string {
		t.Helper()
		_, stderr, code := dtls(t, now, args...)
		require.Equal(t, 0, code, stderr)
		return stderr
	}
	alice := filepath.Join(h.Dir, "alice")
	run("issue-client", "alice", "--out", alice, "--state-dir", h.State)
	served := servedSerial(t, h.Port, alice)

	out := run(append([]string{"init", "--gateway"}, paths...)...)
	assert.Contains(t, out, fmt.Sprintf(`removed "tcp://127.0.0.1:%d" from "hosts" (the dtls gateway serves TCP)`, h.Port))
	assert.Equal(t, authority.ModeGateway, authority.Mode(h.State))
	sock, err := os.ReadFile(filepath.Join(h.Systemd, authority.GatewaySocketUnit))
	require.NoError(t, err)
	assert.Contains(t, string(sock), fmt.Sprintf("\nListenStream=127.0.0.1:%d\n", h.Port))

	// dockerd restarts from the merged file: up on its socket, and the
	// port is free for the gateway.
	require.NoError(t, h.Daemon.Restart(context.Background()), "dockerd does not start with tlsverify and no TCP host")
	_, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), 5*time.Second)
	require.Error(t, err, "dockerd still listens on TCP in gateway mode")
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port))
	require.NoError(t, err, "the gateway's port is not free")
	require.NoError(t, l.Close())

	// The audit, with the daemon answering on its socket.
	audit := func() string {
		t.Helper()
		stdout, _, _ := dtls(t, now, "audit", "--daemon-json", h.DaemonJSON, "--certs-dir", h.Certs, "--state-dir", h.State,
			"--systemd-dir", h.Systemd, "--socket", h.Daemon.Socket)
		return stdout
	}
	assert.Contains(t, audit(), "is installed but not enabled: no remote access")
	wants := filepath.Join(h.Systemd, "sockets.target.wants")
	require.NoError(t, os.Mkdir(wants, 0o755))
	require.NoError(t, os.Symlink("../"+authority.GatewaySocketUnit, filepath.Join(wants, authority.GatewaySocketUnit)))
	a := audit()
	assert.Contains(t, a, fmt.Sprintf("PASS   2.7    TCP 127.0.0.1:%d is served by the dtls gateway", h.Port))
	assert.Contains(t, a, "PASS   2.7    dockerd listens on no TCP address (local socket only)")
	assert.NotContains(t, a, "FAIL   2.7")

	// Back: dockerd serves mutual TLS on the port again.
	out = run(append([]string{"init"}, paths...)...)
	assert.Contains(t, out, "(dockerd serves TCP again)")
	require.NoError(t, os.Remove(filepath.Join(wants, authority.GatewaySocketUnit)))
	require.NoError(t, h.Daemon.Restart(context.Background()))
	assert.Equal(t, served, servedSerial(t, h.Port, alice))
	assert.NotContains(t, audit(), "dtls gateway")
}

// TestGatewayInstallFleetHost: a host enrolls with the online CA and
// installs the gateway in one run ('init --ca-url URL --token T
// --gateway'): the gateway's service follows that CA (--ca-url), no CA
// key is on the host, and a server renewal through the CA restarts
// nothing.
func TestGatewayInstallFleetHost(t *testing.T) {
	t.Parallel()
	ca := startOnlineCA(t, dtlsExe(t), time.Hour)
	dir := t.TempDir()
	state, certs, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, os.Mkdir(systemd, 0o755))
	require.NoError(t, os.WriteFile(daemonJSON, []byte("{}\n"), 0o644))
	args := []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd,
		"--listen", "tcp://127.0.0.1:2376", "--gateway"}
	tok := ca.token(t, "--host", "localhost", "--san", "127.0.0.1")
	_, stderr, code := dtls(t, time.Now(), append(args, "--ca-url", ca.URL, "--token", tok)...)
	require.Equal(t, 0, code, stderr)
	svc, err := os.ReadFile(filepath.Join(systemd, authority.GatewayServiceUnit))
	require.NoError(t, err)
	assert.Contains(t, string(svc), " --ca-url "+ca.URL+"\n")
	assert.NoFileExists(t, filepath.Join(state, "ca-key.pem"))
	b, err := os.ReadFile(daemonJSON)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "tcp://")
	assert.Contains(t, stderr, "'sudo dtls renew --server' (the gateway reloads it within a second)")

	// Run again without the token: the host stays enrolled and in gateway
	// mode, nothing to restart.
	_, stderr, code = dtls(t, time.Now(), args...)
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, stderr, "wrote ")
	assert.NotContains(t, stderr, "restart docker")

	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "renewing the server certificate through the CA at "+ca.URL)
	assert.Contains(t, stderr, gatewayReloads)
	assert.NotContains(t, stderr, "restart needed")
}
