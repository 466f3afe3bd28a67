package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// shortDir is a directory for unix sockets (paths are limited to 107
// bytes: t.TempDir() can be too long).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// localGateway is a gateway serving only its own unix sockets, in front
// of a real dockerd, with a policy file the test writes.
type localGateway struct {
	g                                    *Gateway
	dir, sock, policy, audit, book, dir2 string
	log                                  *syncBuffer
}

func startLocalGateway(t *testing.T, policy string) *localGateway {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("SO_PEERCRED is Linux's")
	}
	d := sandbox.StartForTest(t)
	dir := shortDir(t)
	lg := &localGateway{dir: dir, sock: filepath.Join(dir, "run", "docker.sock"), policy: filepath.Join(dir, "policy.json"),
		audit: filepath.Join(dir, "audit.log"), book: filepath.Join(dir, SocketsFileName), dir2: filepath.Join(dir, "sockets"), log: &syncBuffer{}}
	require.NoError(t, os.WriteFile(lg.policy, []byte(policy), 0o644))
	al, err := authz.OpenAuditLog(lg.audit, 0, 0, nil)
	require.NoError(t, err)
	t.Cleanup(func() { al.Close() })
	reg, err := authz.OpenRegistry("", authz.NewDockerClient(d.Socket))
	require.NoError(t, err)
	engine, err := authz.NewEngine(authz.Config{PolicyPath: lg.policy, Audit: al, Objects: reg, Log: lg.log, ReloadEvery: time.Millisecond})
	require.NoError(t, err)
	lg.g, err = New(Config{DockerSocket: d.Socket, Engine: engine, LocalSocket: lg.sock, SocketsDir: lg.dir2, SocketsFile: lg.book,
		TLSEvery: 20 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- lg.g.Serve() }()
	t.Cleanup(func() {
		assert.NoError(t, lg.g.Close())
		assert.NoError(t, <-done)
		if t.Failed() {
			t.Logf("gateway log:\n%s", lg.log.String())
		}
	})
	return lg
}

// call sends one request on a new connection to the socket at path and
// returns the status and body.
func localCall(t *testing.T, path, method, uri, body string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	require.NoError(t, err)
	return localCallOn(t, c, method, uri, body)
}

// containerCall is localCall from a process in a PID namespace of its
// own, as a container's process calls a per-container socket.
func containerCall(t *testing.T, path, method, uri, body string) (int, string) {
	t.Helper()
	return localCallOn(t, dialFromOtherPIDNS(t, path), method, uri, body)
}

// localCallOn sends one request on c, closes it, and returns the status
// and body.
func localCallOn(t *testing.T, c net.Conn, method, uri, body string) (int, string) {
	t.Helper()
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, uri, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	// dockerd's error format: the message, unquoted.
	var msg struct{ Message string }
	if json.Unmarshal(b, &msg) == nil && msg.Message != "" {
		return resp.StatusCode, msg.Message
	}
	return resp.StatusCode, string(b)
}

func lastRecord(t *testing.T, audit, user string) authz.AuditRecord {
	t.Helper()
	recs, err := authz.ReadAudit(audit, authz.AuditFilter{User: user})
	require.NoError(t, err)
	require.NotEmpty(t, recs, "no audit record of %s", user)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Phase == authz.PhaseRequest {
			return recs[i]
		}
	}
	t.Fatalf("no request record of %s", user)
	return authz.AuditRecord{}
}

// TestLocalSocketPeerCredentials: the local socket's caller is the
// account of the process that connected (SO_PEERCRED), with the role the
// policy's unix_users gives it; its records carry uid, pid and socket;
// an account the policy stops naming is denied from its next connection;
// the socket has mode 0666 in a 0755 directory.
func TestLocalSocketPeerCredentials(t *testing.T) {
	me, err := user.Current()
	require.NoError(t, err)
	lg := startLocalGateway(t, fmt.Sprintf(`{"unix_users": {%q: "readonly"}}`, me.Username))
	fi, err := os.Lstat(lg.sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm())
	fi, err = os.Lstat(filepath.Dir(lg.sock))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

	name := "unix:" + me.Username
	status, body := localCall(t, lg.sock, "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = localCall(t, lg.sock, "POST", "/v1.41/containers/create", `{"Image": "tiny:1"}`)
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, name+" (role readonly)")
	rec := lastRecord(t, lg.audit, name)
	assert.Equal(t, authz.DecisionDeny, rec.Decision)
	assert.Equal(t, "local", rec.Source)
	assert.Equal(t, "readonly", rec.Role)
	assert.Equal(t, strconv.Itoa(os.Getuid()), rec.UID)
	assert.Equal(t, os.Getpid(), rec.PID)
	assert.Equal(t, lg.sock, rec.Socket)
	// The caller's command name, confirmed by its pidfd, where the kernel
	// has SO_PEERPIDFD (Linux 6.5 and later); none elsewhere.
	comm, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	if sandbox.PeerPIDFDs() {
		assert.Equal(t, strings.TrimSpace(string(comm)), rec.Comm)
	} else {
		assert.Empty(t, rec.Comm)
	}

	// The same account's uid from another PID namespace, a container's
	// process (root in it, 'docker exec -u UID', with a descriptor of
	// the socket passed in): refused, whatever its uid.
	status, body = localCallOn(t, dialFromOtherPIDNS(t, lg.sock), "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "runs in another PID namespace than the gateway's, a container's")
	rec = lastRecord(t, lg.audit, name)
	assert.Equal(t, authz.RuleMisplacedCaller, rec.Rule)
	assert.Equal(t, authz.DecisionDeny, rec.Decision)
	assert.NotEqual(t, os.Getpid(), rec.PID)

	// A kept-alive connection, open when the mapping goes: cut.
	kept, err := net.Dial("unix", lg.sock)
	require.NoError(t, err)
	defer kept.Close()
	fmt.Fprintf(kept, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	br := bufio.NewReader(kept)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	io.Copy(io.Discard, resp.Body)

	// The mapping goes: the account is nobody the policy knows.
	require.NoError(t, os.WriteFile(lg.policy, []byte(`{"unix_users": {"someone-else": "admin"}}`+"\n"), 0o644))
	waitUntil(t, "the policy reload", func() bool {
		status, _ := localCall(t, lg.sock, "GET", "/v1.41/containers/json", "")
		return status == http.StatusForbidden
	})
	status, body = localCall(t, lg.sock, "GET", "/_ping", "")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, fmt.Sprintf("local user %q has no role", me.Username))
	rec = lastRecord(t, lg.audit, name)
	assert.Equal(t, "gateway: local user without a role", rec.Rule)
	require.NoError(t, kept.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the open connection was not cut")
	// The cut's record follows the cut.
	waitUntil(t, "the audit record of the cut", func() bool {
		cuts, err := authz.ReadAudit(lg.audit, authz.AuditFilter{User: name})
		require.NoError(t, err)
		for _, r := range cuts {
			if r.Phase == PhaseSession && r.Rule == RuleSessionCut && r.UID == strconv.Itoa(os.Getuid()) && r.Socket == lg.sock {
				return true
			}
		}
		return false
	})
	assert.Empty(t, rec.Role)

	// Verify the chain with the new fields in it.
	v, err := authz.VerifyAudit(lg.audit, nil)
	require.NoError(t, err)
	assert.Nil(t, v.Break, "the chain breaks")
}

// TestContainerSocketBook: a socket put in the book while the gateway
// runs appears (0666, in a 0700 directory) with the fixed identity
// socket:NAME and the book's role; a role change applies from the next
// request; a removal closes it, removes its file and cuts its open
// connections.
func TestContainerSocketBook(t *testing.T) {
	lg := startLocalGateway(t, `{}`)
	_, err := AddSocket(lg.book, ContainerSocket{Name: "proxy", Role: "readonly", Added: time.Now()})
	require.NoError(t, err)
	path := SocketPath(lg.dir2, "proxy")
	waitUntil(t, "the socket", func() bool { _, err := os.Lstat(path); return err == nil })
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm())
	fi, err = os.Lstat(lg.dir2)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	status, body := containerCall(t, path, "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = containerCall(t, path, "POST", "/v1.41/containers/create", `{"Image": "tiny:1"}`)
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "socket:proxy (role readonly)")
	rec := lastRecord(t, lg.audit, "socket:proxy")
	assert.Equal(t, path, rec.Socket)
	assert.Equal(t, "readonly", rec.Role)

	// A host process, which reaches the file through /proc/PID/root of a
	// container running as its uid, past the 0700 directory: refused.
	status, body = localCall(t, path, "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "runs in the host's PID namespace, not in a container")
	rec = lastRecord(t, lg.audit, "socket:proxy")
	assert.Equal(t, authz.RuleMisplacedCaller, rec.Rule)
	assert.Equal(t, authz.DecisionDeny, rec.Decision)
	assert.Equal(t, os.Getpid(), rec.PID)
	// A container's process that runs as a host account's uid (nobody's
	// here): that account can trace it and take its connection.
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
	status, body = localCallOn(t, dialAsFromOtherPIDNS(t, path, uint32(uid), uint32(gid)), "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, fmt.Sprintf("runs as uid %d in its container", uid))
	// A uid no account has: the same (a DynamicUser service, an LDAP
	// user runs as one).
	status, body = localCallOn(t, dialAsFromOtherPIDNS(t, path, 4242, 4242), "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "runs as uid 4242 in its container")
	// Root when it connected, then another uid, keeping the connection
	// (su-exec): refused from its next request on.
	dropped := dialDroppingFromOtherPIDNS(t, path, uint32(uid), uint32(gid))
	status, body = localCallOn(t, dropped, "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, fmt.Sprintf("runs as uid %d now, not root", uid))

	// A host account's own PID namespace, inside its own user namespace
	// ('unshare -Urp', which needs no privilege): refused too.
	status, body = localCallOn(t, dialFromOwnUserNS(t, path), "GET", "/v1.41/containers/json", "")
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "runs in a user namespace of its own")

	old, err := AddSocket(lg.book, ContainerSocket{Name: "proxy", Role: "ghost"})
	require.NoError(t, err)
	assert.Equal(t, "readonly", old)
	waitUntil(t, "the role change", func() bool {
		status, _ := containerCall(t, path, "GET", "/v1.41/containers/json", "")
		return status == http.StatusForbidden
	})

	// An open connection, then the socket's removal.
	c := dialFromOtherPIDNS(t, path)
	fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	_, err = RemoveSocket(lg.book, "proxy")
	require.NoError(t, err)
	waitUntil(t, "the socket's removal", func() bool { _, err := os.Lstat(path); return os.IsNotExist(err) })
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the open connection was not cut")
	_, err = RemoveSocket(lg.book, "proxy")
	assert.EqualError(t, err, fmt.Sprintf("no socket %q in %s", "proxy", lg.book))
}

// TestSweepStaleSockets: at start, the stale socket of a socket no
// longer in the book goes, a live one, a regular file and the book's own
// stay.
func TestSweepStaleSockets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_PEERCRED is Linux's")
	}
	dir := shortDir(t)
	sockets := filepath.Join(dir, "sockets")
	logf := func(string, string, ...any) {}
	stale, err := listenLocal(SocketPath(sockets, "gone"), "gone", socketsDirMode, logf)
	require.NoError(t, err)
	stale.UnixListener.Close() // a crash: the file stays
	live, err := listenLocal(SocketPath(sockets, "other"), "other", socketsDirMode, logf)
	require.NoError(t, err)
	defer live.Close()
	keep, err := listenLocal(SocketPath(sockets, "kept"), "kept", socketsDirMode, logf)
	require.NoError(t, err)
	keep.UnixListener.Close()
	file := filepath.Join(sockets, "note.sock")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	s := &localSockets{dir: sockets, logf: logf}
	s.sweep([]ContainerSocket{{Name: "kept", Role: "readonly"}})
	for name, want := range map[string]bool{"gone.sock": false, "other.sock": true, "kept.sock": true, "note.sock": true} {
		_, err := os.Lstat(filepath.Join(sockets, name))
		assert.Equal(t, want, err == nil, name)
	}
}

// TestListenLocalRefuses: what stands at a socket's path or in its
// directory's place is refused, naming the path, and left as it was; a
// stale socket is replaced.
func TestListenLocalRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_PEERCRED is Linux's")
	}
	dir := shortDir(t)
	logf := func(string, string, ...any) {}
	run := filepath.Join(dir, "run")
	require.NoError(t, os.Mkdir(run, 0o755))
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, []byte("x"), 0o600))

	link := filepath.Join(run, "link.sock")
	require.NoError(t, os.Symlink(target, link))
	_, err := listenLocal(link, "", localDirMode, logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q: a symbolic link stands there", link))
	dest, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, target, dest, "the link was touched")

	file := filepath.Join(run, "file.sock")
	require.NoError(t, os.WriteFile(file, []byte("keep"), 0o600))
	_, err = listenLocal(file, "", localDirMode, logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q: it exists and is not a socket (a regular file)", file))
	b, _ := os.ReadFile(file)
	assert.Equal(t, "keep", string(b))

	linkDir := filepath.Join(dir, "linkdir")
	require.NoError(t, os.Symlink(run, linkDir))
	_, err = listenLocal(filepath.Join(linkDir, "docker.sock"), "", localDirMode, logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("its directory %q is a symbolic link", linkDir))

	open := filepath.Join(dir, "open")
	require.NoError(t, os.Mkdir(open, 0o755))
	require.NoError(t, os.Chmod(open, 0o777))
	_, err = listenLocal(filepath.Join(open, "docker.sock"), "", localDirMode, logf)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("its directory %q has mode 0777", open))

	// A live socket is refused, a stale one replaced.
	sock := filepath.Join(run, "docker.sock")
	l, err := listenLocal(sock, "", localDirMode, logf)
	require.NoError(t, err)
	_, err = listenLocal(sock, "", localDirMode, logf)
	assert.EqualError(t, err, fmt.Sprintf("listen on %q: another process is listening on that socket", sock))
	l.UnixListener.Close() // as a crash leaves it: the file stays
	_, err = os.Lstat(sock)
	require.NoError(t, err)
	l2, err := listenLocal(sock, "", localDirMode, logf)
	require.NoError(t, err)
	require.NoError(t, l2.Close())
	_, err = os.Lstat(sock)
	assert.True(t, os.IsNotExist(err), "Close leaves the socket file")
}

// TestSocketNames: the book refuses a bad name, naming it, and writes
// nothing.
func TestSocketNames(t *testing.T) {
	book := filepath.Join(t.TempDir(), SocketsFileName)
	for _, bad := range []string{"", ".", "..", "-x", "a/b", "a b", "x;y", strings.Repeat("a", 64)} {
		_, err := AddSocket(book, ContainerSocket{Name: bad, Role: "readonly"})
		assert.EqualError(t, err, fmt.Sprintf("invalid socket name %q: want 1 to 63 letters, digits, '-', '_' and '.', starting with a letter or digit", bad))
	}
	_, err := os.Lstat(book)
	assert.True(t, os.IsNotExist(err))
	_, err = AddSocket(book, ContainerSocket{Name: "traefik-1.x_y", Role: "readonly"})
	assert.NoError(t, err)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestWarnHardlinks: a kernel that lets anyone hard-link others' files
// (fs.protected_hardlinks 0) is named at start; 1 says nothing.
func TestWarnHardlinks(t *testing.T) {
	dir := t.TempDir()
	for v, warned := range map[string]bool{"0\n": true, "1\n": false} {
		f := filepath.Join(dir, "protected_hardlinks")
		require.NoError(t, os.WriteFile(f, []byte(v), 0o644))
		var got []string
		warnHardlinks(f, func(_, format string, a ...any) { got = append(got, fmt.Sprintf(format, a...)) })
		if warned {
			require.Len(t, got, 1)
			assert.Contains(t, got[0], "set fs.protected_hardlinks = 1")
		} else {
			assert.Empty(t, got)
		}
	}
}
