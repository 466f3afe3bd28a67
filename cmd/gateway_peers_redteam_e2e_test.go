package cmd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// fdPassBinary is a static helper of two modes:
//
//	fdpass serve LISTEN TARGET: opens TARGET with O_PATH (no permission
//	    needed on a 0666 socket), listens on the unix socket LISTEN (made
//	    0777), and hands the O_PATH descriptor to the first caller
//	    (SCM_RIGHTS).
//	fdpass call LISTEN: connects to LISTEN, receives the descriptor, and
//	    connects a NEW unix socket to /proc/self/fd/N (the gateway's local
//	    socket, reached through the descriptor: connect(2) follows the
//	    magic link), then asks for a privileged container and prints the
//	    answer's status and body.
func fdPassBinary(t *testing.T) string {
	return buildStatic(t, "fdpass", `package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

func main() {
	switch os.Args[1] {
	case "serve":
		fd, err := syscall.Open(os.Args[3], 0x200000 /* O_PATH */|syscall.O_CLOEXEC, 0)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		os.Remove(os.Args[2])
		l, err := net.Listen("unix", os.Args[2])
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(2)
		}
		os.Chmod(os.Args[2], 0o777)
		fmt.Println("ready")
		c, err := l.Accept()
		if err != nil {
			fmt.Println("accept:", err)
			os.Exit(2)
		}
		_, _, err = c.(*net.UnixConn).WriteMsgUnix([]byte("x"), syscall.UnixRights(fd), nil)
		if err != nil {
			fmt.Println("send:", err)
			os.Exit(2)
		}
		c.Close()
	case "call":
		c, err := net.Dial("unix", os.Args[2])
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(2)
		}
		buf, oob := make([]byte, 1), make([]byte, 64)
		_, oobn, _, _, err := c.(*net.UnixConn).ReadMsgUnix(buf, oob)
		if err != nil {
			fmt.Println("recv:", err)
			os.Exit(2)
		}
		msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
		fds, _ := syscall.ParseUnixRights(&msgs[0])
		gw, err := net.Dial("unix", fmt.Sprintf("/proc/self/fd/%d", fds[0]))
		if err != nil {
			fmt.Println("dial gateway:", err)
			os.Exit(2)
		}
		body := `+"`"+`{"Image": "tiny:1", "Cmd": ["/x"], "HostConfig": {"Privileged": true}}`+"`"+`
		req, _ := http.NewRequest("POST", "http://docker/v1.41/containers/create?name=rtpriv", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Write(gw)
		resp, err := http.ReadResponse(bufio.NewReader(gw), req)
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(2)
		}
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		fmt.Printf("%d %s\n", resp.StatusCode, b[:n])
	}
}
`)
}

// TestGatewayRedteamLocalSocketFromContainer (found by an attacker
// helper): a local account with the developer role spoke as any other
// local account on the gateway's local socket, the admin's included.
// The gateway identifies a local caller by SO_PEERCRED, the uid of the
// process that called connect(2), and a developer chooses the host uid
// of its own containers' processes (docker run --user, docker exec -u).
// The socket's path is not in the container, but a descriptor of it is
// enough (connect(2) to /proc/self/fd/N):
//
//  1. the developer runs its own container as its own uid and reads its
//     host pid (docker inspect, its own);
//  2. on the host, as itself, it binds a unix socket in the container's
//     /tmp through /proc/PID/root (same uid: ptrace's read check passes)
//     and serves an O_PATH descriptor of the gateway's local socket;
//  3. 'docker exec -u ADMINUID' into its own container runs a program
//     that receives the descriptor and connects through it.
//
// The call was the admin account's, and created a privileged container.
// Now the local socket refuses a process in another PID namespace than
// the gateway's.
func TestGatewayRedteamLocalSocketFromContainer(t *testing.T) {
	t.Parallel()
	requireLocalTools(t)
	sandbox.Require(t)
	pub, sock := publicSocketDir(t)
	devs := newLocalGroup(t)
	dev := newLocalUser(t, pub, devs)
	ops := newLocalUser(t, pub) // an operator: admin on the local socket

	h := newGatewayHost(t, "--local-socket", sock)
	d, ctx := h.Daemon, context.Background()
	require.NoError(t, os.WriteFile(h.Policy, []byte(fmt.Sprintf(`{"default_role": "readonly", "unix_users": {%q: "admin"}, "unix_groups": {%q: "developer"}}`+"\n", ops.Name, devs)), 0o644))
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	fdpass := fdPassBinary(t)
	importImage(t, d, "rt:1", map[string]string{"sleep": sleeperBinary(t), "fdpass": fdpass})
	hostHelper := filepath.Join(pub, "fdpass")
	copyFile(t, fdpass, hostHelper, 0o755)

	waitFor(t, 10*time.Second, "the developer's first call", func() bool {
		_, err := dev.docker(t, h.docker, sock, "ps")
		return err == nil
	})
	// The developer may not create a privileged container itself.
	out, err := dev.docker(t, h.docker, sock, "create", "--privileged", "tiny:1", "/x")
	require.Error(t, err, out)
	require.Contains(t, out, "unix:"+dev.Name+" (role developer)")

	// 1. Its own container, running as its own uid.
	out, err = dev.docker(t, h.docker, sock, "run", "-d", "--name", "devbox", "--user", fmt.Sprintf("%d:%d", dev.UID, dev.GID), "rt:1", "/sleep")
	require.NoError(t, err, out)
	out, err = dev.docker(t, h.docker, sock, "inspect", "-f", "{{.State.Pid}}", "devbox")
	require.NoError(t, err, out)
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	require.NoError(t, err, out)

	// 2. As the developer on the host: a socket in the container's /tmp
	// that hands out a descriptor of the gateway's local socket.
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	serve := dev.command(sctx, hostHelper, nil, "serve", fmt.Sprintf("/proc/%d/root/tmp/pass.sock", pid), sock)
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	require.NoError(t, serve.Start())
	waitFor(t, 10*time.Second, "the developer's helper listens", func() bool {
		return strings.Contains(serveOut.String(), "ready") || serve.ProcessState != nil
	})

	// 3. An exec as the admin account's uid in the developer's own
	// container: it takes the descriptor and calls the gateway.
	out, err = dev.docker(t, h.docker, sock, "exec", "-u", fmt.Sprintf("%d:%d", ops.UID, ops.GID), "devbox", "/fdpass", "call", "/tmp/pass.sock")
	_ = serve.Wait()
	t.Logf("host helper: %s", serveOut.String())
	t.Logf("exec as uid %d: err=%v %s", ops.UID, err, out)

	recs, rerr := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "unix:" + ops.Name})
	require.NoError(t, rerr)
	for _, r := range recs {
		t.Logf("audit: user=%s role=%s uid=%s pid=%d %s %s -> %s %s", r.User, r.Role, r.UID, r.PID, r.Method, r.Path, r.Decision, r.Reason)
	}
	require.NoError(t, err, out)
	assert.Contains(t, out, "403 ", "the developer's container process was taken for the admin account %s", ops.Name)
	assert.Contains(t, out, "runs in another PID namespace than the gateway's")
	resp, err := d.Client().Get("http://docker/containers/rtpriv/json")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a privileged container rtpriv exists, made by the developer as %s", ops.Name)
}

// TestGatewayRedteamRecordingBound (found by an attacker helper):
// --sessions-max-size bounded the recordings' directory only by removing
// the oldest finished recordings before a new one, never the one being
// written: 'docker exec -i box cat' fed 8 MiB of NUL bytes, each written
// as the six bytes \u0000, left a recording of 50 MB under a 1 MiB
// bound, and an endless stream fills the file system of /var/log/dtls,
// the audit trail's by default. Now the open recordings share the bound
// (recording.Budget): the stream whose recording reaches it is cut.
func TestGatewayRedteamRecordingBound(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t, "--sessions-max-size", "1M")
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "developer"}`+"\n"), 0o644))
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	waitFor(t, 10*time.Second, "dev runs a container", func() bool {
		_, err := h.as(t, "dev", "run", "-d", "--name", "devbox", "tool:1", "/t", "sleep")
		return err == nil
	})
	cmd := h.command(t, "dev", "exec", "-i", "devbox", "/t", "cat")
	cmd.Stdin = bytes.NewReader(make([]byte, 8<<20))
	var n rtCount
	cmd.Stdout = &n
	runErr := cmd.Run()
	t.Logf("exec: %v, %d bytes back", runErr, n.n)
	var total int64
	entries, err := os.ReadDir(h.Sessions)
	require.NoError(t, err)
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		total += fi.Size()
		t.Logf("recording %s: %d bytes", e.Name(), fi.Size())
	}
	assert.LessOrEqual(t, total, int64(1<<20), "the recordings' directory holds %d bytes with --sessions-max-size 1M", total)
	recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "dev"})
	require.NoError(t, err)
	cut := false
	for _, r := range recs {
		cut = cut || r.Phase == gateway.PhaseSession && r.Rule == gateway.RuleRecording && r.Decision == authz.DecisionDeny &&
			strings.Contains(r.Reason, "size bound (--sessions-max-size)")
	}
	assert.True(t, cut, "no audit record of the stream cut at the bound")
}

type rtCount struct{ n int64 }

func (c *rtCount) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestGatewayRedteamContainerSocketFromHost (found by an attacker
// helper): the per-container sockets' directory is 0700 so that no host
// account reaches them, but the container that mounts one exposes it at
// /proc/PID/root/MOUNTPOINT to the host account whose uid the container
// runs as (--user, or an image's uid 1000). That account, with no role,
// spoke as socket:NAME with the socket's role. Now a per-container socket
// refuses a process in the host's PID namespace.
func TestGatewayRedteamContainerSocketFromHost(t *testing.T) {
	t.Parallel()
	requireLocalTools(t)
	pub, _ := publicSocketDir(t)
	stranger := newLocalUser(t, pub) // no role anywhere
	h := newGatewayHost(t)
	d, ctx := h.Daemon, context.Background()
	socketsDir := filepath.Join(h.Dir, "sockets")
	_, stderr, code := h.dtls(t, "gateway", "socket", "add", "runner", "--role", "ci-runner", "--policy", h.Policy,
		"--state-dir", h.State, "--sockets-dir", socketsDir)
	require.Equal(t, 0, code, stderr)
	path := filepath.Join(socketsDir, "runner.sock")
	waitFor(t, 10*time.Second, "the socket", func() bool { _, err := os.Lstat(path); return err == nil })
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	importImage(t, d, "sleeper:1", map[string]string{"sleep": sleeperBinary(t)})
	root := []string{"DOCKER_HOST=unix://" + d.Socket}
	// The admin runs the tenant as a non-root uid, which happens to be a
	// host account's.
	out, err := runDocker(t, h.docker, root, "run", "-d", "--name", "runner", "--user", fmt.Sprintf("%d:%d", stranger.UID, stranger.GID),
		"-v", path+":/var/run/docker.sock", "sleeper:1", "/sleep")
	require.NoError(t, err, out)
	out, err = runDocker(t, h.docker, root, "inspect", "-f", "{{.State.Pid}}", "runner")
	require.NoError(t, err, out)
	pid := strings.TrimSpace(out)
	client := filepath.Join(pub, "apiclient")
	copyFile(t, apiClientBinary(t), client, 0o755)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := stranger.command(cctx, client, nil, "/proc/"+pid+"/root/var/run/docker.sock", "create").CombinedOutput()
	t.Logf("the roleless host account %s through /proc/%s/root: err=%v %s", stranger.Name, pid, err, b)
	assert.NotContains(t, string(b), "201 ", "a host account with no role created a container as socket:runner")
	assert.Contains(t, string(b), "runs in the host's PID namespace")
	// In a PID namespace of its own, which an account makes without
	// privilege inside a user namespace of its own ('unshare -Urp'),
	// holding a descriptor of the socket opened before (a user namespace
	// of its own no longer passes /proc/PID/root's check): refused too.
	fdpass := filepath.Join(pub, "fdpass")
	copyFile(t, fdPassBinary(t), fdpass, 0o755)
	relay := filepath.Join(stranger.Home, "r.sock")
	serve := stranger.command(cctx, fdpass, nil, "serve", relay, "/proc/"+pid+"/root/var/run/docker.sock")
	serveOut, err := serve.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, serve.Start())
	first, _ := bufio.NewReader(serveOut).ReadString('\n')
	require.Equal(t, "ready\n", first, "the account's relay")
	b, err = stranger.command(cctx, "/usr/bin/unshare", nil, "--user", "--map-root-user", "--pid", "--fork", fdpass, "call", relay).CombinedOutput()
	_ = serve.Wait()
	t.Logf("the same account in its own user and PID namespaces: err=%v %s", err, b)
	assert.NotContains(t, string(b), "201 ", "a host account in its own PID namespace created a container as socket:runner")
	assert.Contains(t, string(b), "runs in a user namespace of its own")
}

// TestGatewayRedteamRevokeSuccessorBySerial (found by an attacker
// helper): bob has a 'docker exec -i' shell open; a renewal supersedes
// the certificate it holds (what it has open goes on, by design); the
// admin revokes the certificate that replaced it, by serial. The gateway
// cuts the streams of revoked certificates, not of superseded ones, and
// the revocation took that one certificate only: bob's shell outlived
// the revocation of his only valid certificate. Now revoking a
// certificate revokes those of its holder it superseded.
func TestGatewayRedteamRevokeSuccessorBySerial(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	s := h.catStreams(t, "bob")
	bob := s[0]
	_, stderr, code := h.dtls(t, "renew", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	pemBytes, err := os.ReadFile(filepath.Join(h.Bundles, "bob", "cert.pem"))
	require.NoError(t, err)
	blk, _ := pem.Decode(pemBytes)
	require.NotNil(t, blk)
	cert, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	serial := fmt.Sprintf("%x", cert.SerialNumber)
	out, _, _ := h.dtls(t, "list", "--state-dir", h.State)
	t.Logf("dtls list after the renewal:\n%s", out)
	_, stderr, code = h.dtls(t, "revoke", serial, "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	t.Logf("revoke %s: %s", serial, stderr)
	assert.Equal(t, 2, strings.Count(stderr, `revoked client "bob" serial `), "the certificate it superseded was not revoked with it: %s", stderr)
	out, _, _ = h.dtls(t, "list", "--state-dir", h.State)
	t.Logf("dtls list after the revocation:\n%s", out)
	// The renewed (now revoked) certificate is refused.
	o, err := h.as(t, "bob", "ps")
	require.Error(t, err, o)
	// The revocation took the certificate it superseded with it, and the
	// gateway cuts a revoked certificate's streams.
	select {
	case <-bob.ended:
	case <-time.After(20 * time.Second):
		t.Fatal("bob's stream on his superseded certificate survived the revocation of the certificate that replaced it")
	}
}
