package cmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// localUser is a unix account made by the test (removed when it ends),
// with a home of its own for the Docker CLI's files.
type localUser struct {
	Name, Home string
	UID, GID   int
}

// requireLocalTools stops the test when it cannot make accounts: it needs
// root and shadow-utils' useradd, and util-linux's setpriv. Outside CI it
// skips.
func requireLocalTools(t *testing.T) {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	if os.Geteuid() != 0 {
		stop("the local socket's tests make unix accounts: they run as root")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			stop("%s: %v (apt-get install -y passwd util-linux)", tool, err)
		}
	}
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newLocalUser makes an account (with a group of its name) in groups,
// its home in dir.
func newLocalUser(t *testing.T, dir string, groups ...string) *localUser {
	t.Helper()
	name := randomName("dtlsu")
	home := filepath.Join(dir, name)
	args := []string{"--no-create-home", "--home-dir", home, "--shell", "/bin/sh", "--user-group"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	out, err := exec.Command("useradd", append(args, name)...).CombinedOutput()
	require.NoError(t, err, "useradd %s: %s", name, out)
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		// userdel removes the user's own group where USERGROUPS_ENAB
		// says so; a group left behind goes here.
		_ = exec.Command("groupdel", name).Run()
	})
	u, err := user.Lookup(name)
	require.NoError(t, err)
	lu := &localUser{Name: name, Home: home}
	lu.UID, _ = strconv.Atoi(u.Uid)
	lu.GID, _ = strconv.Atoi(u.Gid)
	require.NoError(t, os.Mkdir(lu.Home, 0o700))
	require.NoError(t, os.Chown(lu.Home, lu.UID, lu.GID))
	return lu
}

func newLocalGroup(t *testing.T) string {
	t.Helper()
	name := randomName("dtlsg")
	out, err := exec.Command("groupadd", name).CombinedOutput()
	require.NoError(t, err, "groupadd %s: %s", name, out)
	t.Cleanup(func() {
		if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v: %s", name, err, out)
		}
	})
	return name
}

// command runs a program as u, as a login would (setpriv: its uid, gid
// and groups from the group database; the gateway reads the account's
// groups from that database too, never from the process).
func (u *localUser) command(ctx context.Context, prog string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + strconv.Itoa(u.UID), "--regid=" + strconv.Itoa(u.GID),
		"--init-groups", "--", prog}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + u.Home, "DOCKER_CONFIG=" + filepath.Join(u.Home, ".docker")}, env...)
	return cmd
}

// docker runs the Docker CLI as u on the local socket.
func (u *localUser) docker(t *testing.T, docker, sock string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := u.command(ctx, docker, []string{"DOCKER_HOST=unix://" + sock}, args...).CombinedOutput()
	return string(out), err
}

// apiClientBinary builds a static Docker API client of a few calls:
// "apiclient SOCKET list|create" (SOCKET "fd3": the connection the
// process was given as fd 3). It prints the status and the body, and
// exits 1 on an answer that is not 2xx.
func apiClientBinary(t *testing.T) string {
	return buildStatic(t, "apiclient", `package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	dial := func() (net.Conn, error) { return net.Dial("unix", os.Args[1]) }
	if os.Args[1] == "fd3" {
		dial = func() (net.Conn, error) { return net.FileConn(os.NewFile(3, "conn")) }
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return dial() }}
	var req *http.Request
	switch os.Args[2] {
	case "list":
		req, _ = http.NewRequest("GET", "http://docker/v1.41/containers/json?all=1", nil)
	case "create":
		req, _ = http.NewRequest("POST", "http://docker/v1.41/containers/create", strings.NewReader(`+"`"+`{"Image": "tiny:1", "Cmd": ["/x"]}`+"`"+`))
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s\n", resp.StatusCode, b)
	if resp.StatusCode/100 != 2 {
		os.Exit(1)
	}
}
`)
}

// localRecords are the audit records of user, once there are some that
// match.
func localRecords(t *testing.T, audit, user string, match func(authz.AuditRecord) bool) []authz.AuditRecord {
	t.Helper()
	var got []authz.AuditRecord
	waitFor(t, 10*time.Second, "the audit records of "+user, func() bool {
		recs, err := authz.ReadAudit(audit, authz.AuditFilter{User: user})
		require.NoError(t, err)
		got = got[:0]
		for _, r := range recs {
			if match(r) {
				got = append(got, r)
			}
		}
		return len(got) > 0
	})
	return got
}

// TestGatewayLocalUsersWithRealDocker: the gateway's local socket, with a
// real dockerd behind it and two accounts made by the test. The one whose
// group the policy maps to developer runs the Docker CLI on the socket
// and gets the developer role: it lists, runs a container, execs in its
// own and not in another identity's, is refused --privileged; the account
// the policy does not name, and root, are denied; the audit trail names
// each with its uid and the socket. A connection opened by one account and
// handed to another's process keeps the first account's identity. A
// symbolic link at the socket's path stops a gateway from starting,
// naming the path, and is left as it was.
func TestGatewayLocalUsersWithRealDocker(t *testing.T) {
	t.Parallel()
	requireLocalTools(t)
	sandbox.Require(t)
	pub, sock := publicSocketDir(t)
	devs := newLocalGroup(t)
	dev := newLocalUser(t, pub, devs)
	stranger := newLocalUser(t, pub)

	h := newGatewayHost(t, "--local-socket", sock)
	d, ctx := h.Daemon, context.Background()
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "admin"}`+"\n"), 0o644))
	_, stderr, code := h.dtls(t, "role", "--unix-group", devs, "developer", "--policy", h.Policy)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, fmt.Sprintf("unix group %s has role developer on the local socket", devs))
	out, _, code := h.dtls(t, "role", "--unix-group", devs, "--policy", h.Policy)
	require.Equal(t, 0, code)
	assert.Equal(t, "developer\n", out)
	fi, err := os.Lstat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666)|os.ModeSocket, fi.Mode())
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	importImage(t, d, "sleeper:1", map[string]string{"sleep": sleeperBinary(t)})
	h.issue(t, "root-admin", "admin")

	// The policy file is reloaded within a second.
	waitFor(t, 10*time.Second, "the developer's first call", func() bool {
		_, err := dev.docker(t, h.docker, sock, "ps")
		return err == nil
	})
	devName, strangerName := "unix:"+dev.Name, "unix:"+stranger.Name
	allowed := func(args ...string) string {
		t.Helper()
		out, err := dev.docker(t, h.docker, sock, args...)
		require.NoError(t, err, "docker %s: %s", strings.Join(args, " "), out)
		return out
	}
	denied := func(u *localUser, want string, args ...string) {
		t.Helper()
		out, err := u.docker(t, h.docker, sock, args...)
		require.Error(t, err, "%s: docker %s was allowed: %s", u.Name, strings.Join(args, " "), out)
		assert.Contains(t, out, "dtls-gateway", "%s: docker %s", u.Name, strings.Join(args, " "))
		assert.Contains(t, out, want, "%s: docker %s", u.Name, strings.Join(args, " "))
	}
	allowed("run", "-d", "--name", "devbox", "sleeper:1", "/sleep")
	assert.Contains(t, allowed("ps"), "devbox")
	allowed("exec", "-d", "devbox", "/sleep")
	denied(dev, devName+" (role developer)", "create", "--privileged", "tiny:1", "/x")
	denied(dev, devName+" (role developer)", "create", "-v", "/:/host", "tiny:1", "/x")
	// The gateway's own sockets are under /run, a protected path.
	denied(dev, devName+" (role developer)", "create", "-v", "/run/dtls:/x", "tiny:1", "/x")
	// The owners' book knows the local identity as it knows a
	// certificate's holder.
	out, err = h.as(t, "root-admin", "run", "-d", "--name", "adminbox", "sleeper:1", "/sleep")
	require.NoError(t, err, out)
	denied(dev, "was created by someone else", "exec", "-d", "adminbox", "/sleep")
	allowed("rm", "-f", "devbox")

	// An exec stream (hijacked) through the local socket, recorded under
	// the account's name.
	importImage(t, d, "tool:1", map[string]string{"t": toolBinary(t)})
	allowed("run", "-d", "--name", "toolbox", "tool:1", "/t", "sleep")
	ectx, ecancel := context.WithTimeout(ctx, 60*time.Second)
	defer ecancel()
	exe := dev.command(ectx, h.docker, []string{"DOCKER_HOST=unix://" + sock}, "exec", "-i", "toolbox", "/t", "cat")
	exe.Stdin = strings.NewReader("hello from a local account\n")
	b, err := exe.CombinedOutput()
	require.NoError(t, err, "%s", b)
	assert.Equal(t, "hello from a local account\n", string(b))
	waitFor(t, 10*time.Second, "the exec's recording", func() bool {
		out, _, code := h.dtls(t, "sessions", "ls", "--user", devName, "--sessions-dir", h.Sessions)
		return code == 0 && strings.Contains(out, "toolbox")
	})

	denied(stranger, fmt.Sprintf("local user %q has no role", stranger.Name), "ps")
	// Root is not admin on this socket (the policy's default_role is
	// admin: a certificate holder's default, never a local account's).
	out, err = runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + sock}, "ps")
	require.Error(t, err, out)
	assert.Contains(t, out, `local user "root" has no role`)

	recs := localRecords(t, h.Audit, devName, func(r authz.AuditRecord) bool {
		return r.Phase == authz.PhaseRequest && r.Path == "/containers/create" && r.Decision == authz.DecisionDeny
	})
	r := recs[0]
	assert.Equal(t, strconv.Itoa(dev.UID), r.UID)
	assert.Equal(t, sock, r.Socket)
	assert.Equal(t, "local", r.Source)
	assert.Equal(t, "developer", r.Role)
	assert.NotZero(t, r.PID)
	if sandbox.PeerPIDFDs() {
		assert.Equal(t, "docker", r.Comm, "the caller's command name, confirmed by its pidfd")
	}
	recs = localRecords(t, h.Audit, strangerName, func(r authz.AuditRecord) bool { return r.Phase == authz.PhaseRequest })
	assert.Equal(t, strconv.Itoa(stranger.UID), recs[0].UID)
	assert.Equal(t, authz.DecisionDeny, recs[0].Decision)
	assert.Equal(t, "gateway: local user without a role", recs[0].Rule)

	// A connection opened by the test (root) and handed to the
	// developer's process (fd 3) stays root's: denied, recorded as root
	// with the test's pid, although the developer itself may list.
	client := filepath.Join(pub, "apiclient")
	copyFile(t, apiClientBinary(t), client, 0o755)
	conn, err := net.Dial("unix", sock)
	require.NoError(t, err)
	f, err := conn.(*net.UnixConn).File()
	require.NoError(t, err)
	conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := dev.command(cctx, client, nil, "fd3", "list")
	cmd.ExtraFiles = []*os.File{f}
	b, err = cmd.CombinedOutput()
	f.Close()
	require.Error(t, err, "%s", b)
	assert.Contains(t, string(b), `403 `)
	assert.Contains(t, string(b), `local user \"root\" has no role`)
	recs = localRecords(t, h.Audit, "unix:root", func(r authz.AuditRecord) bool { return r.PID == os.Getpid() })
	assert.Equal(t, "0", recs[0].UID)
	b, err = dev.command(cctx, client, nil, sock, "list").CombinedOutput()
	assert.NoError(t, err, "%s", b)
	assert.Contains(t, string(b), "adminbox")

	// A symbolic link where a gateway's local socket goes: refused.
	target := filepath.Join(pub, "elsewhere")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	link := filepath.Join(pub, "run", "link.sock")
	require.NoError(t, os.Symlink(target, link))
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	args := append([]string(nil), h.cmd.Args[1:]...)
	for i, a := range args {
		if a == "--listen" {
			args[i+1] = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		}
	}
	// A gateway that started in spite of the link would serve until
	// killed: the deadline ends it, and the test fails.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	second := exec.CommandContext(sctx, h.exe, append(args, "--local-socket", link)...)
	var errOut strings.Builder
	second.Stderr = &errOut
	err = second.Run()
	stderr = errOut.String()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stderr)
	assert.Equal(t, 1, ee.ExitCode(), stderr)
	assert.Contains(t, stderr, fmt.Sprintf("dtls: error: listen on %q: a symbolic link stands there", link))
	dest, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, target, dest)
}

// TestGatewayLocalContainerSocketWithRealDocker: 'dtls gateway socket
// add' makes a per-container socket the running gateway serves; a
// container that mounts it where /var/run/docker.sock goes runs an API
// client that may list containers and is refused a create, every call
// recorded as socket:NAME; ls lists it, rm closes it; a bad name is
// refused, naming it, and nothing is written.
func TestGatewayLocalContainerSocketWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	d, ctx := h.Daemon, context.Background()
	socketsDir := filepath.Join(h.Dir, "sockets")
	flags := []string{"--state-dir", h.State, "--sockets-dir", socketsDir}
	addFlags := append([]string{"--policy", h.Policy}, flags...)
	book := filepath.Join(h.State, "gateway-sockets.json")

	_, stderr, code := h.dtls(t, append([]string{"gateway", "socket", "add", "bad/name", "--role", "readonly"}, addFlags...)...)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `dtls: error: invalid socket name "bad/name"`)
	_, stderr, code = h.dtls(t, append([]string{"gateway", "socket", "add", "proxy", "--role", "ghost"}, addFlags...)...)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `role "ghost" is not defined by the policy`)
	_, err := os.Lstat(book)
	assert.True(t, os.IsNotExist(err), "a refused add wrote the book")

	out, stderr, code := h.dtls(t, append([]string{"gateway", "socket", "add", "proxy", "--role", "readonly"}, addFlags...)...)
	require.Equal(t, 0, code, stderr)
	path := filepath.Join(socketsDir, "proxy.sock")
	assert.Equal(t, "-v "+path+":/var/run/docker.sock\n", out)
	waitFor(t, 10*time.Second, "the socket", func() bool { _, err := os.Lstat(path); return err == nil })
	out, stderr, code = h.dtls(t, append([]string{"gateway", "socket", "ls"}, flags...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "proxy  readonly  "+path)

	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	importImage(t, d, "apiclient:1", map[string]string{"apiclient": apiClientBinary(t)})
	root := []string{"DOCKER_HOST=unix://" + d.Socket}
	id, err := runDocker(t, h.docker, root, "create", "--name", "existing", "tiny:1", "/x")
	require.NoError(t, err, id)
	run := []string{"run", "--rm", "--network", "none", "-v", path + ":/var/run/docker.sock", "apiclient:1", "/apiclient", "/var/run/docker.sock"}
	out, err = runDocker(t, h.docker, root, append(run, "list")...)
	require.NoError(t, err, out)
	assert.Contains(t, out, "200 ")
	assert.Contains(t, out, "/existing")
	out, err = runDocker(t, h.docker, root, append(run, "create")...)
	require.Error(t, err, out)
	assert.Contains(t, out, "403 ")
	assert.Contains(t, out, "socket:proxy (role readonly)")

	recs := localRecords(t, h.Audit, "socket:proxy", func(r authz.AuditRecord) bool { return r.Phase == authz.PhaseRequest })
	var list, create bool
	for _, r := range recs {
		assert.Equal(t, path, r.Socket)
		assert.Equal(t, "readonly", r.Role)
		list = list || r.Path == "/containers/json" && r.Decision == authz.DecisionAllow
		create = create || r.Path == "/containers/create" && r.Decision == authz.DecisionDeny
	}
	assert.True(t, list, "no allowed list of socket:proxy in %v", recs)
	assert.True(t, create, "no denied create of socket:proxy in %v", recs)

	_, stderr, code = h.dtls(t, append([]string{"gateway", "socket", "rm", "proxy"}, flags...)...)
	require.Equal(t, 0, code, stderr)
	waitFor(t, 10*time.Second, "the socket's removal", func() bool { _, err := os.Lstat(path); return os.IsNotExist(err) })
	_, stderr, code = h.dtls(t, append([]string{"gateway", "socket", "rm", "proxy"}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, fmt.Sprintf(`dtls: error: no socket "proxy" in %s`, book))
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, mode))
	require.NoError(t, os.Chmod(to, mode))
}

// requireSSHD stops the test without OpenSSH's server and client (apt-get
// install -y openssh-server); outside CI it skips.
func requireSSHD(t *testing.T) {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	for _, tool := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen", "usermod"} {
		if _, err := exec.LookPath(tool); err != nil {
			stop("%s: %v (apt-get install -y openssh-server)", tool, err)
		}
	}
	// sshd's privilege separation directory: made at boot by the
	// package's tmpfiles.d or init script, neither of which has run where
	// the package was installed with services kept stopped (scripts/deps.sh)
	// or /run was emptied since. Made here if missing, and removed after.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			stop("sshd: %v", err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	} else if err != nil {
		stop("sshd: %v", err)
	}
}

// startSSHD runs a real sshd on a free loopback port, with its own host
// key, config and pid file in dir, that lets u in with a key of the test
// and sets DOCKER_HOST to the gateway's local socket for its sessions
// (sshd_config SetEnv): 'docker -H ssh://u@...' runs 'docker system
// dial-stdio' there, which dials that socket as u. It writes u's ssh
// client config (the key, no host key check) and returns the port.
func startSSHD(t *testing.T, dir, sock string, u *localUser) int {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	}
	// An account whose password is "!" (useradd's) is locked for sshd
	// without PAM: "*" is no password, and not locked.
	run("usermod", "-p", "*", u.Name)
	ssh := filepath.Join(u.Home, ".ssh")
	require.NoError(t, os.Mkdir(ssh, 0o700))
	key := filepath.Join(ssh, "id_ed25519")
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", u.Name, "-f", key)
	require.NoError(t, os.WriteFile(filepath.Join(ssh, "config"), []byte("Host *\n  IdentityFile "+key+
		"\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n"), 0o600))
	for _, f := range []string{ssh, key, key + ".pub", filepath.Join(ssh, "config")} {
		require.NoError(t, os.Chown(f, u.UID, u.GID))
	}
	sd := filepath.Join(dir, "sshd")
	// sshd reads authorized_keys as the user.
	require.NoError(t, os.Mkdir(sd, 0o755))
	hostKey := filepath.Join(sd, "host_ed25519")
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	pub, err := os.ReadFile(key + ".pub")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sd, "authorized_keys"), pub, 0o644))
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	cfg := filepath.Join(sd, "sshd_config")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers %s
SetEnv DOCKER_HOST=unix://%s
`, port, hostKey, filepath.Join(sd, "sshd.pid"), filepath.Join(sd, "authorized_keys"), u.Name, sock)), 0o600))
	var out strings.Builder
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd output:\n%s", tailString(out.String(), 4000))
		}
	})
	waitFor(t, 20*time.Second, "sshd listens", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// TestGatewayLocalSSHWithRealDocker: an account reaches the gateway's
// local socket over ssh with its own uid: 'docker -H ssh://dev@host'
// (the Docker CLI runs 'docker system dial-stdio' through a real sshd,
// whose sessions have DOCKER_HOST set to the local socket) gets the
// developer role the policy gives the account, and the audit trail names
// it.
func TestGatewayLocalSSHWithRealDocker(t *testing.T) {
	t.Parallel()
	requireLocalTools(t)
	requireSSHD(t)
	sandbox.Require(t)
	pub, sock := publicSocketDir(t)
	dev := newLocalUser(t, pub)
	h := newGatewayHost(t, "--local-socket", sock)
	_, stderr, code := h.dtls(t, "role", "--unix-user", dev.Name, "developer", "--policy", h.Policy)
	require.Equal(t, 0, code, stderr)
	require.NoError(t, h.Daemon.TinyImage(context.Background(), "tiny:1"))
	port := startSSHD(t, pub, sock, dev)

	host := fmt.Sprintf("ssh://%s@127.0.0.1:%d", dev.Name, port)
	docker := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := dev.command(ctx, h.docker, []string{"DOCKER_HOST=" + host}, args...).CombinedOutput()
		return string(out), err
	}
	var out string
	var err error
	// The policy file is reloaded within a second.
	waitFor(t, 20*time.Second, "the developer's first call over ssh", func() bool {
		out, err = docker("create", "--name", "overssh", "tiny:1", "/x")
		return err == nil
	})
	out, err = docker("ps", "-a")
	require.NoError(t, err, out)
	assert.Contains(t, out, "overssh")
	out, err = docker("create", "--privileged", "tiny:1", "/x")
	require.Error(t, err, out)
	assert.Contains(t, out, "unix:"+dev.Name+" (role developer)")
	recs := localRecords(t, h.Audit, "unix:"+dev.Name, func(r authz.AuditRecord) bool {
		return r.Phase == authz.PhaseRequest && r.Path == "/containers/create"
	})
	assert.Equal(t, strconv.Itoa(dev.UID), recs[0].UID)
	assert.Equal(t, sock, recs[0].Socket)
}

// TestGatewayInitLocalWithRealDocker: 'dtls init --gateway --local' on a
// sandboxed dockerd whose socket has a group of the test's: daemon.json's
// "group" becomes root, the profile snippet is written, and init names
// the group's member; once dockerd restarts the member loses the raw
// socket and keeps working through the gateway's, with the role the
// policy gives it. 'dtls init --gateway' without --local gives the group
// the socket back.
func TestGatewayInitLocalWithRealDocker(t *testing.T) {
	t.Parallel()
	requireLocalTools(t)
	sandbox.Require(t)
	pub, sock := publicSocketDir(t)
	group := newLocalGroup(t)
	member := newLocalUser(t, pub, group)
	h := newGatewayHost(t, "--local-socket", sock)
	ctx := context.Background()
	// The member must reach dockerd's socket in the sandbox directory.
	require.NoError(t, os.Chmod(h.Dir, 0o711))
	daemonJSON := filepath.Join(h.Dir, "daemon.json")
	setDaemonGroup(t, daemonJSON, group)
	restart := func() {
		t.Helper()
		require.NoError(t, h.Daemon.Stop())
		d, err := sandbox.Start(ctx, h.Dir, daemonJSON)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, d.Stop()) })
		h.Daemon = d
	}
	restart()
	raw := h.Daemon.Socket
	out, err := member.docker(t, h.docker, raw, "ps")
	if err != nil {
		fi, _ := os.Stat(raw)
		t.Logf("socket %s: %v %+v", raw, fi.Mode(), fi.Sys())
	}
	require.NoError(t, err, "the group's member cannot use dockerd's socket: %s", out)

	profileDir := filepath.Join(h.Dir, "profile.d")
	initArgs := []string{"init", "--gateway", "--state-dir", h.State, "--certs-dir", h.Certs, "--daemon-json", daemonJSON,
		"--systemd-dir", filepath.Join(h.Dir, "systemd"), "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", h.Port),
		"--host", "localhost", "--host", "127.0.0.1", "--profile-dir", profileDir}
	_, stderr, code := h.dtls(t, "init", "--local", "--state-dir", h.State, "--dry-run")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "dtls: error: --local needs --gateway")
	_, stderr, code = h.dtls(t, append(initArgs, "--local")...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, fmt.Sprintf("group %s no longer reaches it", group))
	assert.Contains(t, stderr, "its members, root-equivalent until now: "+member.Name)
	assert.Contains(t, stderr, "sudo dtls role --unix-user "+member.Name+" developer")
	assert.Contains(t, daemonGroup(t, daemonJSON), "root")
	b, err := os.ReadFile(filepath.Join(profileDir, "dtls-docker-host.sh"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "export DOCKER_HOST=unix:///run/dtls/docker.sock")
	_, stderr, code = h.dtls(t, "role", "--unix-user", member.Name, "developer", "--policy", h.Policy)
	require.Equal(t, 0, code, stderr)
	restart()

	out, err = member.docker(t, h.docker, raw, "ps")
	require.Error(t, err, "the member still reaches dockerd's socket: %s", out)
	assert.Contains(t, out, "permission denied")
	waitFor(t, 10*time.Second, "the member through the gateway", func() bool {
		_, err := member.docker(t, h.docker, sock, "ps")
		return err == nil
	})

	// Undo.
	_, stderr, code = h.dtls(t, initArgs...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, fmt.Sprintf("dockerd's socket has group %s again", group))
	assert.Equal(t, group, daemonGroup(t, daemonJSON))
	_, err = os.Lstat(filepath.Join(profileDir, "dtls-docker-host.sh"))
	assert.True(t, os.IsNotExist(err), "the profile snippet stays")
	restart()
	out, err = member.docker(t, h.docker, raw, "ps")
	assert.NoError(t, err, "the group did not get the socket back: %s", out)
}

func setDaemonGroup(t *testing.T, path, group string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v))
	v["group"] = group
	b, err = json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func daemonGroup(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var v struct {
		Group string `json:"group"`
	}
	require.NoError(t, json.Unmarshal(b, &v))
	return v.Group
}

// publicSocketDir is a sandbox directory the test's accounts may traverse
// (a sandbox directory is 0700), and the path of a local socket in it.
func publicSocketDir(t *testing.T) (dir, sock string) {
	t.Helper()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir, filepath.Join(dir, "run", "docker.sock")
}
