package cmd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// redTeam2 is a sandboxed dockerd behind the plugin, with an admin, a
// readonly and a developer bundle, and the developer's workspace (a bind
// root on a nosuid,nodev tmpfs, as README asks).
type redTeam2 struct {
	t      *testing.T
	docker string
	port   int
	bundle string
	work   string // the bind roots' parent, "/srv/work" of README
	ws     string // dev's bind root, owned by uid 65534 (dev's host account)
	secret string // a host file outside every bind root
	base   string
	client map[string]*http.Client
}

func (r *redTeam2) as(name string, args ...string) (string, error) {
	return runDocker(r.t, r.docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", r.port), "DOCKER_TLS_VERIFY=1",
		"DOCKER_CERT_PATH=" + filepath.Join(r.bundle, name)}, args...)
}

func (r *redTeam2) must(name string, args ...string) string {
	r.t.Helper()
	out, err := r.as(name, args...)
	require.NoError(r.t, err, "%s: docker %s: %s", name, strings.Join(args, " "), out)
	return strings.TrimSpace(out)
}

func (r *redTeam2) raw(name, method, path, ctype, body string) (int, string) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	require.NoError(r.t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := r.client[name].Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// startRedTeam2 sets up what TestRedTeamAuthz does: dtls init, three
// bundles, the plugin as a process, dockerd, the images tiny:1 and tool:1,
// a policy with the bind root WORK/{user}. The workspaces' mount is shared,
// as every mount is on a systemd host (systemd makes "/" rshared, and
// README's "mount --bind /srv/work /srv/work" under it is shared too).
func startRedTeam2(t *testing.T) *redTeam2 {
	docker := dockerCLI(t)
	sandbox.Require(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	state, certs, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	now := time.Now()
	initArgs := []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd,
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1"}
	_, stderr, code := dtls(t, now, initArgs...)
	require.Equal(t, 0, code, stderr)
	r := &redTeam2{t: t, docker: docker, port: port, bundle: filepath.Join(dir, "bundles"), client: map[string]*http.Client{}}
	for name, role := range map[string]string{"root-admin": "admin", "rita": "readonly", "dev": "developer"} {
		_, stderr, code := dtls(t, now, "issue-client", name, "--role", role, "--state-dir", state, "--out", filepath.Join(r.bundle, name))
		require.Equal(t, 0, code, stderr)
	}
	hidden, err := os.MkdirTemp("", "dtls-redteam2-hidden-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(hidden) })
	r.work, err = os.MkdirTemp("", "dtls-redteam2-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(r.work) })
	require.NoError(t, unix.Mount("tmpfs", r.work, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,mode=0755"))
	// MNT_DETACH takes the mounts below it too (those propagated there).
	t.Cleanup(func() { _ = unix.Unmount(r.work, unix.MNT_DETACH) })
	require.NoError(t, unix.Mount("", r.work, "", unix.MS_SHARED, ""))
	r.ws = filepath.Join(r.work, "dev")
	require.NoError(t, os.MkdirAll(r.ws, 0o700))
	require.NoError(t, os.Chown(r.ws, 65534, 65534))
	plugin := startAuthzPluginHiding(t, state, dir, hidden)
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))
	importImage(t, d, "tool:1", map[string]string{"tool": buildTool(t)})

	secretDir, err := os.MkdirTemp("", "dtls-redteam2-secret-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(secretDir) })
	r.secret = filepath.Join(secretDir, "shadow")
	require.NoError(t, os.WriteFile(r.secret, []byte("host-secret-42\n"), 0o600))

	pol := fmt.Sprintf(`{"default_role": "readonly", "bind_roots": [%q]}`, filepath.Join(r.work, "{user}"))
	require.NoError(t, atomicfile.Write(plugin.Policy, []byte(pol), 0o644))
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := r.as("dev", "create", "-v", r.ws+":/ws", "tiny:1", "/x")
		if err == nil {
			r.must("dev", "rm", strings.TrimSpace(out))
			break
		}
		require.True(t, time.Now().Before(deadline), "the policy with bind roots was not loaded: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range []string{"root-admin", "rita", "dev"} {
		r.client[n] = rawClient(t, filepath.Join(r.bundle, n))
	}
	r.base = fmt.Sprintf("https://127.0.0.1:%d", port)
	return r
}

// asUser runs a host program as uid/gid 65534, dev's host account.
func asUser(path string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(b)), err
}

// waitFile polls for path until the deadline.
func waitFile(path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Lstat(path); err == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// mountedAt reports whether a mount point is at path in this process's
// mount namespace (the host's, where dockerd runs).
func mountedAt(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// TestRedTeamAuthz2 is the second round against the developer role after
// the fixes TestRedTeamAuthz holds: a bind root mounted whole, on a
// nosuid,nodev file system under root's directories; hexadecimal
// references; networks; rmi -f; the fields of a mount. Refused shapes are
// regression checks; each way in that is still open fails its own subtest
// named Bypass_*.
func TestRedTeamAuthz2(t *testing.T) {
	r := startRedTeam2(t)
	adminBox := r.must("root-admin", "run", "-d", "--name", "adminbox", "tool:1", "/tool", "sleep")
	r.must("root-admin", "network", "create", "adminnet")
	r.must("dev", "run", "-d", "--name", "devbox", "tool:1", "/tool", "sleep")

	// Bypass: the bind root is mounted whole, but with
	// bind-propagation=rshared (Binds mode "rshared", or BindOptions of a
	// --mount, which the plugin lets through as "anyValue"), every mount
	// dockerd makes below it in the container propagates back to the
	// host's workspace, where the developer's host account sees it. A
	// --tmpfs below the workspace, with the options "exec,suid,dev"
	// (HostConfig.Tmpfs, also "anyValue"), is a suid file system in the
	// nosuid,nodev workspace: a set-user-ID root file the container's root
	// writes there is root for the developer's host account.
	//
	// Reproducer (host with systemd, /srv/work shared as every mount is;
	// bind_roots ["/srv/work/{user}"]):
	//
	//	docker run -d --name p -v /srv/work/alice:/ws:rshared \
	//	    --tmpfs /ws/t:exec,suid,dev alpine sleep 1d
	//	docker exec p sh -c 'cp /bin/busybox /ws/t/sh && chmod 4755 /ws/t/sh'
	//	# on the host, as alice:
	//	/srv/work/alice/t/sh -c id     # euid=0
	//
	// The same with a named volume (its data-root file system has suid
	// and dev) or a --mount type=bind,...,bind-propagation=rshared.
	// Fix direction: refuse a propagation other than private/rprivate
	// (and rslave) for non-admin binds: Binds modes "shared", "rshared",
	// "slave"... and BindOptions.Propagation; or mount bind roots only
	// from a mount that is private on the host.
	t.Run("Bypass_rshared_bind_root_propagates_suid_tmpfs_to_host", func(t *testing.T) {
		out, err := r.as("dev", "run", "-d", "-v", r.ws+":/ws:rshared", "--tmpfs", "/ws/t:exec,suid,dev", "tool:1", "/tool", "sleep")
		if err != nil {
			t.Logf("dev: docker run -v %s:/ws:rshared --tmpfs /ws/t:exec,suid,dev: %s", r.ws, tailString(out, 300))
			assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin")
			return
		}
		box := strings.TrimSpace(out)
		defer func() { _, _ = r.as("dev", "rm", "-f", box) }()
		t.Logf("host: a mount at %s: %v", filepath.Join(r.ws, "t"), mountedAt(filepath.Join(r.ws, "t")))
		out, err = r.as("dev", "exec", box, "/tool", "suid", "/ws/t/rootsh")
		require.NoError(t, err, out)
		rootsh := filepath.Join(r.ws, "t", "rootsh")
		require.True(t, waitFile(rootsh, 5*time.Second), "the container's tmpfs did not reach the host")
		euid, err := asUser(rootsh, "euid")
		t.Logf("host: uid 65534 runs %s: err=%v euid=%s", rootsh, err, euid)
		assert.NotEqual(t, "0", euid, "uid 65534 (the developer's host account) ran a file of its workspace as root: the container's suid tmpfs propagated into the nosuid workspace")
	})

	// Bypass (same hole): a named volume of the developer mounted below
	// the rshared workspace appears in the host's workspace as a bind of
	// dockerd's data-root, a file system with suid: the volume's set-user-ID
	// root file is root for the developer's host account.
	//
	// Reproducer:
	//
	//	docker volume create v
	//	docker run -d --name p -v /srv/work/alice:/ws:rshared -v v:/ws/v alpine sleep 1d
	//	docker exec p sh -c 'cp /bin/busybox /ws/v/sh && chmod 4755 /ws/v/sh'
	//	# on the host, as alice:  /srv/work/alice/v/sh -c id   # euid=0
	t.Run("Bypass_rshared_bind_root_propagates_named_volume_to_host", func(t *testing.T) {
		r.must("dev", "volume", "create", "devvol")
		out, err := r.as("dev", "run", "-d", "--mount", "type=bind,src="+r.ws+",dst=/ws,bind-propagation=rshared",
			"-v", "devvol:/ws/v", "tool:1", "/tool", "sleep")
		if err != nil {
			t.Logf("dev: docker run --mount type=bind,...,bind-propagation=rshared -v devvol:/ws/v: %s", tailString(out, 300))
			assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin")
			return
		}
		box := strings.TrimSpace(out)
		defer func() { _, _ = r.as("dev", "rm", "-f", box) }()
		out, err = r.as("dev", "exec", box, "/tool", "suid", "/ws/v/rootsh")
		require.NoError(t, err, out)
		rootsh := filepath.Join(r.ws, "v", "rootsh")
		require.True(t, waitFile(rootsh, 5*time.Second), "the volume did not reach the host")
		euid, err := asUser(rootsh, "euid")
		t.Logf("host: uid 65534 runs %s: err=%v euid=%s", rootsh, err, euid)
		assert.NotEqual(t, "0", euid, "uid 65534 ran a file of its workspace as root: the container's volume propagated into the nosuid workspace")
	})

	_ = adminBox
	_ = net.Listen
}
