package cmd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// newFleetGatewayHost is newGatewayHost on a host of a fleet: enrolled
// with the online CA ('init --ca-url URL --token T --gateway', no CA key
// on the host), its gateway following the CA's revocation list (the
// ca_url of server.json) every second.
func newFleetGatewayHost(t *testing.T, ca *onlineCA) *gatewayHost {
	t.Helper()
	docker := dockerCLI(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	h := &gatewayHost{Dir: dir, State: filepath.Join(dir, "state"), Certs: filepath.Join(dir, "certs"),
		Policy: filepath.Join(dir, "authz-policy.json"), Audit: filepath.Join(dir, "gateway.log"),
		Bundles: filepath.Join(dir, "bundles"), Sessions: filepath.Join(dir, "sessions"), Port: port, docker: docker, out: &bytes.Buffer{},
		exe: ca.exe}
	daemonJSON, initJSON, systemd := filepath.Join(dir, "daemon.json"), filepath.Join(dir, "init-daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, atomicfile.Write(initJSON, []byte("{}\n"), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	tok := ca.token(t, "--host", "localhost", "--san", "127.0.0.1")
	_, stderr, code := h.dtls(t, "init", "--state-dir", h.State, "--certs-dir", h.Certs, "--daemon-json", initJSON,
		"--systemd-dir", systemd, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--gateway", "--ca-url", ca.URL, "--token", tok)
	require.Equal(t, 0, code, stderr)
	require.NoFileExists(t, filepath.Join(h.State, "ca-key.pem"))
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	h.Daemon = d
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		_ = h.cmd.Wait()
		if t.Failed() {
			t.Logf("gateway output:\n%s", tailString(h.out.String(), 6000))
		}
	})
	h.launch(t, exec.Command(h.exe, "gateway", "serve", "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port),
		"--docker", "unix://"+d.Socket, "--state-dir", h.State, "--certs-dir", h.Certs, "--policy", h.Policy,
		"--audit-log", h.Audit, "--daemon-json", daemonJSON, "--sessions-dir", h.Sessions, "--crl-refresh", "1s",
		// Never the host's /run/dtls: no local socket, per-container ones in the sandbox.
		"--local-socket=", "--sockets-dir", filepath.Join(h.Dir, "sockets")))
	return h
}

// TestGatewayFleetRevocationCutsStreams: on a fleet host, a revocation
// at the online CA reaches the gateway through the CA's revocation list:
// the revoked holder's open 'docker exec -i ... cat' ends within the
// list's refresh (1 s here) and the gateway's check (250 ms) of the
// revocation, with a record; another holder's stream goes on.
func TestGatewayFleetRevocationCutsStreams(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	ca := startOnlineCA(t, dtlsExe(t), time.Hour)
	h := newFleetGatewayHost(t, ca)
	for _, n := range []string{"alice", "bob"} {
		tok := ca.token(t, "--client", n, "--role", "developer")
		_, stderr, code := h.dtls(t, "enroll", ca.URL, tok, "--dir", filepath.Join(h.Bundles, n),
			"--docker-host", fmt.Sprintf("tcp://127.0.0.1:%d", h.Port))
		require.Equal(t, 0, code, stderr)
	}
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	type stream struct {
		in    io.WriteCloser
		out   *bufio.Reader
		ended chan time.Time
	}
	open := func(name string) *stream {
		t.Helper()
		out, err := h.as(t, name, "run", "-d", "--name", name+"box", "tool:1", "/t", "sleep")
		require.NoError(t, err, out)
		cmd := h.command(t, name, "exec", "-i", name+"box", "/t", "cat")
		s := &stream{ended: make(chan time.Time, 1)}
		s.in, err = cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		s.out = bufio.NewReader(stdout)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		_, err = io.WriteString(s.in, "ping\n")
		require.NoError(t, err)
		line, err := s.out.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ping\n", line)
		go func() { _ = cmd.Wait(); s.ended <- time.Now() }()
		return s
	}
	alice, bob := open("alice"), open("bob")

	_, stderr, code := h.dtls(t, "revoke", "alice", "--operator", filepath.Join(ca.Dir, "operator"))
	require.Equal(t, 0, code, stderr)
	revoked := time.Now()
	select {
	case at := <-alice.ended:
		t.Logf("alice's stream ended %v after the revocation at the CA", at.Sub(revoked))
		// The list is fetched every second; the gateway checks open
		// connections every 250 ms.
		assert.Less(t, at.Sub(revoked), 3*time.Second)
	case <-time.After(15 * time.Second):
		t.Fatal("alice's stream still open 15s after the revocation at the CA")
	}
	_, err := io.WriteString(bob.in, "still here\n")
	require.NoError(t, err)
	line, err := bob.out.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "still here\n", line)
	out, err := h.as(t, "alice", "ps")
	require.Error(t, err, out)
	assert.Contains(t, out, "revoked")
	waitFor(t, 5*time.Second, "the cut session is recorded", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "alice"})
		require.NoError(t, err)
		for _, r := range recs {
			if r.Phase == "session" && r.Decision == "deny" && strings.Contains(r.Reason, "revoked") {
				return true
			}
		}
		return false
	})
}
