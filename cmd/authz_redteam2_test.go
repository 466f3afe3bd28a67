package cmd

import (
	"context"
	"encoding/json"
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

	"github.com/dtls-tool/dtls/internal/atomicfile"
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
	state  string // dtls's state directory (the owners' book)
	audit  string // the plugin's audit log
	d      *sandbox.Daemon
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
	dir, port, initArgs := authzSandbox(t)
	state, daemonJSON := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json")
	now := time.Now()
	var stderr string
	var code int
	r := &redTeam2{t: t, docker: docker, port: port, bundle: filepath.Join(dir, "bundles"), state: state, client: map[string]*http.Client{}}
	for name, role := range map[string]string{"root-admin": "admin", "rita": "readonly", "dev": "developer"} {
		_, stderr, code := dtls(t, now, "issue-client", name, "--role", role, "--state-dir", state, "--out", filepath.Join(r.bundle, name))
		require.Equal(t, 0, code, stderr)
	}
	// A developer whose name is the owners' book's key for the local unix
	// socket (authz/objects.go unixOwner), which pki.ValidateName allows.
	if _, stderr, code := dtls(t, now, "issue-client", "@unix", "--role", "developer", "--state-dir", state, "--out", filepath.Join(r.bundle, "@unix")); code != 0 {
		t.Logf("dtls issue-client @unix: %s", stderr)
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
	r.audit = plugin.Audit
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	r.d = d
	// Before dockerd stops: its networks' bridges outlive it.
	t.Cleanup(func() {
		if ids := strings.Fields(func() string { out, _ := r.as("root-admin", "ps", "-aq"); return out }()); len(ids) > 0 {
			_, _ = r.as("root-admin", append([]string{"rm", "-f"}, ids...)...)
		}
		// A container removed while connected by "network connect" may
		// leave its endpoint: disconnect what is left, then remove.
		left, _ := r.as("root-admin", "network", "ls", "-q", "--filter", "type=custom")
		for _, n := range strings.Fields(left) {
			eps, _ := r.as("root-admin", "network", "inspect", "-f", `{{range $k, $v := .Containers}}{{$k}} {{end}}`, n)
			for _, ep := range strings.Fields(eps) {
				_, _ = r.as("root-admin", "network", "disconnect", "-f", n, ep)
			}
			if out, err := r.as("root-admin", "network", "rm", n); err != nil {
				t.Logf("network %s left after the test: %s", n, tailString(out, 200))
			}
		}
	})
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))
	importImage(t, d, "tool:1", map[string]string{"tool": buildTool(t), "tool2": buildTool2(t)})

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
	if _, err := os.Stat(filepath.Join(r.bundle, "@unix")); err == nil {
		r.client["@unix"] = rawClient(t, filepath.Join(r.bundle, "@unix"))
	}
	r.base = fmt.Sprintf("https://127.0.0.1:%d", port)
	return r
}

// tool2Source is a second static program for the attack containers:
// serve answers TCP connections with a text, sched asks for real-time
// scheduling and gives it up at once.
const tool2Source = `package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	switch os.Args[1] {
	case "serve": // serve ADDR TEXT
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			_, _ = c.Write([]byte(os.Args[3] + "\n"))
			c.Close()
		}
	case "sched": // sched: SCHED_FIFO priority 1, then back to SCHED_OTHER
		prio := int32(1)
		_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, 0, 1, uintptr(unsafe.Pointer(&prio)))
		zero := int32(0)
		_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, 0, 0, uintptr(unsafe.Pointer(&zero)))
		if e != 0 {
			fmt.Println("sched_setscheduler:", e)
			os.Exit(1)
		}
		fmt.Println("SCHED_FIFO granted")
	}
}
`

func buildTool2(t *testing.T) string { return buildStatic(t, "tool2", tool2Source) }

// dialRead connects to addr and reads the first line, polling until the
// deadline.
func dialRead(addr string, d time.Duration) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 256))
			c.Close()
			if len(b) > 0 {
				return strings.TrimSpace(string(b))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
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
// named Attack_* (its comment has the reproducer; each is closed now);
// Checked_* are shapes the plugin lets through but the kernel, runc or
// dockerd stops; Finding_* log what reaches the host or other users by
// design. Shapes tried: rshared binds of the root with a tmpfs, a volume
// or a bind volume below it; a network's subnet and IPv6; a join by a
// hexadecimal network name raced against its removal; names of a
// megabyte in the owners' book and the audit trail; a readonly search; a
// certificate named @unix; ports on the host's loopback; --ulimit rtprio;
// a global net.* sysctl; an nfs volume; hexadecimal, uppercase, "/"- and
// space-decorated references in links, volumes-from, namespaces, connect,
// rm and rename; a body not forwarded for a URI ending in /auth; a volume
// mount whose Source is a host path; macvlan on the host's subnet.
func TestRedTeamAuthz2(t *testing.T) {
	t.Parallel()
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
	t.Run("Attack_rshared_bind_root_propagates_suid_tmpfs_to_host", func(t *testing.T) {
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
		_, _ = r.as("dev", "rm", "-f", box)
		t.Logf("host: once the container is removed, the tmpfs is still mounted at %s: %v", filepath.Join(r.ws, "t"), mountedAt(filepath.Join(r.ws, "t")))
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
	t.Run("Attack_rshared_bind_root_propagates_named_volume_to_host", func(t *testing.T) {
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

	// Checked (same hole, through a volume): a local volume that binds
	// the root itself (o=bind, device=the root: allowed) mounted with the
	// Binds mode "rshared". The plugin lets it through; dockerd refuses a
	// propagation mode on a volume ("field BindOptions must not be
	// specified"), so nothing propagates. Should dockerd accept it, this
	// fails like the bypasses above.
	//
	//	docker volume create -o type=none -o o=bind -o device=/srv/work/alice wsvol
	//	docker run -d --name p -v wsvol:/ws:rshared --tmpfs /ws/t:exec,suid,dev alpine sleep 1d
	t.Run("Checked_rshared_mode_on_a_bind_volume", func(t *testing.T) {
		r.must("dev", "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device="+r.ws, "wsvol")
		out, err := r.as("dev", "run", "-d", "-v", "wsvol:/ws:rshared", "--tmpfs", "/ws/t2:exec,suid,dev", "tool:1", "/tool", "sleep")
		if err != nil {
			t.Logf("dev: docker run -v wsvol:/ws:rshared --tmpfs /ws/t2:exec,suid,dev: %s", tailString(out, 300))
			return
		}
		box := strings.TrimSpace(out)
		defer func() { _, _ = r.as("dev", "rm", "-f", box) }()
		out, err = r.as("dev", "exec", box, "/tool", "suid", "/ws/t2/rootsh")
		require.NoError(t, err, out)
		rootsh := filepath.Join(r.ws, "t2", "rootsh")
		if !waitFile(rootsh, 5*time.Second) {
			t.Logf("the tmpfs below the volume did not reach the host: %s is not there", rootsh)
			return
		}
		euid, err := asUser(rootsh, "euid")
		t.Logf("host: uid 65534 runs %s: err=%v euid=%s", rootsh, err, euid)
		assert.NotEqual(t, "0", euid, "uid 65534 ran a file of its workspace as root: the container's suid tmpfs propagated into the nosuid workspace")
	})

	// Bypass: a developer's network takes any subnet (IPAM Config is not
	// read by the plugin); the host routes it to the network's bridge, a
	// route more specific than the host's own. A container of the
	// developer given an address in it (--ip) receives the host's traffic
	// to that address: a DNS resolver, the cloud metadata service
	// (169.254.169.254: cloud-init's user-data, instance credentials), the
	// online CA, a database; with the host's gateway in the subnet, the
	// host loses its network.
	//
	// Reproducer (198.51.100.0/29 stands for the host's metadata, DNS or
	// CA address):
	//
	//	docker network create --subnet 198.51.100.0/29 --gateway 198.51.100.1 grab
	//	docker run -d --network grab --ip 198.51.100.2 alpine nc -lk -p 80 -e echo hijacked
	//	# on the host: curl http://198.51.100.2/   -> the developer's container answers
	//
	// Fix direction: a developer's network takes only a subnet from the
	// daemon's default address pools (IPAM.Config empty, or inside
	// "default-address-pools"), never one that overlaps a host route or
	// address; no --ip/--ip-range outside it.
	t.Run("Attack_network_subnet_takes_host_traffic", func(t *testing.T) {
		out, err := r.as("dev", "network", "create", "--subnet", "198.51.100.0/29", "--gateway", "198.51.100.1", "grab")
		if err != nil {
			assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin: %s", out)
			t.Logf("dev: docker network create --subnet 198.51.100.0/29: %s", tailString(out, 300))
			return
		}
		defer func() { _, _ = r.as("dev", "network", "rm", "grab") }()
		out, err = r.as("dev", "run", "-d", "--network", "grab", "--ip", "198.51.100.2", "tool:1", "/tool2", "serve", ":80", "hijacked-by-dev")
		require.NoError(t, err, out)
		box := strings.TrimSpace(out)
		defer func() { _, _ = r.as("dev", "rm", "-f", box) }()
		got := dialRead("198.51.100.2:80", 10*time.Second)
		t.Logf("host: connect 198.51.100.2:80 -> %q", got)
		assert.NotEqual(t, "hijacked-by-dev", got, "the host's connection to 198.51.100.2 reached the developer's container: a developer's network rerouted the host's traffic")
	})

	// Refused: a developer published a port on the host's loopback, a
	// privileged one too: dockerd binds it as root, and with iptables
	// its NAT rules take the host's traffic to that port before a host
	// service listening there sees it. A host service or client that
	// trusts a port only root may bind (a resolver on 127.0.0.1:53, SSH,
	// a web server's 443) would talk to the developer's container. Ports
	// below the host's first unprivileged port are admin's; above it,
	// what any local user may bind stays a developer's.
	t.Run("Refused_developer_listens_on_host_loopback_privileged_port", func(t *testing.T) {
		// The sandbox's dockerd has no default bridge ("bridge": "none").
		r.must("dev", "network", "create", "pubnet")
		defer func() { _, _ = r.as("dev", "network", "rm", "pubnet") }()
		out, err := r.as("dev", "run", "-d", "--network", "pubnet", "-p", "127.0.0.1:81:80", "tool:1", "/tool2", "serve", ":80", "dev-on-loopback")
		require.Error(t, err, out)
		assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin: %s", out)
		assert.Contains(t, out, "first unprivileged port")
		port, err := sandbox.FreePort()
		require.NoError(t, err)
		out, err = r.as("dev", "run", "-d", "--network", "pubnet", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "tool:1", "/tool2", "serve", ":80", "dev-on-loopback")
		require.NoError(t, err, "an unprivileged port stays a developer's: %s", out)
		box := strings.TrimSpace(out)
		defer func() { _, _ = r.as("dev", "rm", "-f", box) }()
		assert.Equal(t, "dev-on-loopback", dialRead(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second))
	})

	// Refused: --ulimit rtprio lets a process ask for real-time
	// scheduling without CAP_SYS_NICE, what CpuRealtime* are refused for:
	// with RT group scheduling in the kernel a container's cgroup has no
	// real-time time and the kernel refuses, but a kernel without
	// CONFIG_RT_GROUP_SCHED (Ubuntu's, Debian's) grants it, and no cgroup
	// weight bounds it. rtprio is allowed at 0 only, in a run and in a
	// build's RUN steps.
	t.Run("Refused_ulimit_rtprio_asks_for_realtime", func(t *testing.T) {
		out, err := r.as("dev", "run", "--rm", "--ulimit", "rtprio=99", "tool:1", "/tool2", "sched")
		require.Error(t, err, out)
		assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin: %s", out)
		assert.Contains(t, out, "real-time scheduling")
		assert.NotContains(t, out, "SCHED_FIFO granted")
		out, err = r.as("dev", "run", "--rm", "--ulimit", "nofile=1024:2048", "tool:1", "/tool", "euid")
		assert.NoError(t, err, "a limit that stays in the container: %s", out)
	})

	// Checked: Sysctls net.* that are global to the kernel (not per
	// network namespace) are not in a container's /proc/sys: runc fails.
	t.Run("Checked_global_net_sysctl", func(t *testing.T) {
		before, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		require.NoError(t, err)
		out, err := r.as("dev", "run", "--rm", "--sysctl", "net.core.rmem_max=4194305", "tool:1", "/tool", "euid")
		after, _ := os.ReadFile("/proc/sys/net/core/rmem_max")
		if string(after) != string(before) {
			_ = os.WriteFile("/proc/sys/net/core/rmem_max", before, 0o644)
		}
		t.Logf("dev: docker run --sysctl net.core.rmem_max=...: err=%v %s; host %s -> %s", err, tailString(out, 200), strings.TrimSpace(string(before)), strings.TrimSpace(string(after)))
		assert.Equal(t, string(before), string(after), "a developer's container changed a host-wide sysctl")
	})

	// Bypass: the rule "a reference that reads as an ID prefix but names by
	// name is refused" is applied to containers and to a network's
	// removal, not to the networks a container joins (checkNetworkName:
	// NetworkMode, EndpointsConfig, POST /networks/{id}/connect). The
	// developer names its network after a prefix of the admin's network's
	// ID and asks to connect its container to it by that name while it
	// removes the network by its full ID: judged on its own network (by
	// name), the connect is done by dockerd after the removal, by ID
	// prefix, on the admin's network (FindNetwork: full ID, name, ID
	// prefix).
	//
	// Reproducer (P is a prefix of the admin's network's ID, 12 hex):
	//
	//	docker network create P                       # N, the developer's
	//	curl ... -X POST /networks/P/connect -d '{"Container":"devbox"}' &
	//	curl ... -X DELETE /networks/N
	//	docker inspect devbox    # on the admin's network (won within tries)
	//
	// Fix direction: checkNetworkName does what owned does: a hex
	// reference that does not prefix the ID of the network it names is
	// refused.
	t.Run("Attack_network_join_by_hex_name_races_its_removal", func(t *testing.T) {
		adminNet := r.must("root-admin", "network", "inspect", "-f", "{{.Id}}", "adminnet")
		prefix := adminNet[:12]
		try := func(method, path, body string) (int, string) {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, r.base+path, rd)
			if err != nil {
				return 0, err.Error()
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := r.client["dev"].Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			return resp.StatusCode, string(b)
		}
		deadline := time.Now().Add(40 * time.Second)
		tries, allowed, won := 0, 0, false
		for !won && time.Now().Before(deadline) {
			tries++
			st, out := try("POST", "/networks/create", `{"Name":"`+prefix+`"}`)
			if st != 201 {
				// Closed: the name is refused.
				assert.Contains(t, out, "hexadecimal digits only", "create network %s: %d", prefix, st)
				return
			}
			var n struct {
				ID string `json:"Id"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &n))
			done := make(chan struct{})
			var cst int
			var cout string
			go func() {
				cst, cout = try("POST", "/networks/"+prefix+"/connect", `{"Container":"devbox"}`)
				close(done)
			}()
			time.Sleep(time.Duration(tries%12) * 200 * time.Microsecond)
			try("DELETE", "/networks/"+n.ID, "")
			<-done
			if cst/100 == 2 {
				allowed++
			} else if strings.Contains(cout, "reads as an ID prefix") {
				t.Logf("closed: %s", tailString(cout, 200))
				try("DELETE", "/networks/"+n.ID, "")
				return
			}
			ins := r.must("root-admin", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$v.NetworkID}} {{end}}", "devbox")
			if strings.Contains(ins, adminNet) {
				won = true
				t.Logf("try %d: connect %s answered %d; devbox is on the admin's network %s", tries, prefix, cst, adminNet[:12])
				_, _ = r.as("root-admin", "network", "disconnect", "-f", adminNet, "devbox")
			}
			_, _ = r.as("root-admin", "network", "disconnect", "-f", n.ID, "devbox")
			_, _ = r.as("root-admin", "network", "rm", n.ID)
		}
		t.Logf("%d tries, %d connects allowed", tries, allowed)
		assert.False(t, won, "the developer's container joined the admin's network")
	})

	// Denial of service: every create the plugin observes rewrites the
	// owners' book whole (Registry.save), and a name is recorded as given,
	// of any length. A developer who makes a few networks (or containers,
	// volumes) with names of a megabyte makes every create of every
	// identity write that many megabytes, under the lock every lookup
	// takes.
	t.Run("Finding_owners_book_huge_names", func(t *testing.T) {
		timeCreate := func() time.Duration {
			start := time.Now()
			id := r.must("root-admin", "create", "tiny:1", "/x")
			d := time.Since(start)
			r.must("root-admin", "rm", id)
			return d
		}
		before := timeCreate()
		big := strings.Repeat("n", 1000*1000)
		made := 0
		for i := 0; i < 16; i++ {
			st, out := r.raw("dev", "POST", "/networks/create", "application/json", fmt.Sprintf(`{"Name":"%s%d"}`, big, i))
			if st != 201 {
				t.Logf("dev: network create with a name of 1 MB: %d %s", st, tailString(out, 200))
				break
			}
			made++
		}
		after := timeCreate()
		fi, err := os.Stat(filepath.Join(r.state, "authz-owners.json"))
		size := int64(-1)
		if err == nil {
			size = fi.Size()
		}
		t.Logf("dev made %d networks named with 1 MB; the owners' book is %d bytes; an admin's create took %v before, %v after", made, size, before, after)
	})

	// Bypass: the audit trail keeps 10 MiB x 6 files (authz.log and
	// authz.log.1..5) and each record carries the body fields that
	// decided, whole: a network's name of a megabyte, in a create the
	// plugin refuses (driver macvlan) and dockerd never sees. About sixty
	// such calls push every earlier record out of the trail: the
	// developer erases what it did before (and what everyone else did).
	//
	// Reproducer:
	//
	//	N=$(head -c 1000000 /dev/zero | tr '\\0' n)
	//	for i in $(seq 70); do curl ... -X POST /networks/create \
	//	    -H 'Content-Type: application/json' -d "{\"Name\":\"$N\",\"Driver\":\"macvlan\"}"; done
	//	dtls authz log --since 24h      # only the flood is left
	//
	// Fix direction: bound every recorded value (a name to its first
	// hundred bytes, a list to its first items, with the total length),
	// and a record to a few KiB; or rotate by age, not only by size.
	t.Run("Attack_audit_trail_flushed_by_huge_denied_calls", func(t *testing.T) {
		marker := fmt.Sprintf("evidence-%d", time.Now().UnixNano())
		out, err := r.as("dev", "run", "--rm", "--name", marker, "tool:1", "/tool", "euid")
		require.NoError(t, err, out)
		inTrail := func() bool {
			for i := 0; i <= 8; i++ {
				name := r.audit
				if i > 0 {
					name = fmt.Sprintf("%s.%d", r.audit, i)
				}
				b, err := os.ReadFile(name)
				if err == nil && strings.Contains(string(b), marker) {
					return true
				}
			}
			return false
		}
		require.True(t, inTrail(), "the developer's run is not in the audit trail")
		// Each refused call adds at most 64 KiB to the trail, so pushing
		// its 60 MiB out takes about a thousand of them, each a record
		// of its own (the rate shows): three calls measure it.
		before, err := os.Stat(r.audit)
		require.NoError(t, err)
		big := strings.Repeat("n", 1000*1000)
		const sent = 3
		for range sent {
			st, out := r.raw("dev", "POST", "/networks/create", "application/json", `{"Name":"`+big+`","Driver":"macvlan"}`)
			require.Equal(t, 403, st, tailString(out, 200))
		}
		after, err := os.Stat(r.audit)
		require.NoError(t, err)
		grew := after.Size() - before.Size()
		if grew < 0 {
			grew = after.Size() // rotated
		}
		t.Logf("%d refused calls with a name of 1 MB wrote %d bytes to the audit trail", sent, grew)
		assert.Less(t, grew, int64(sent*64<<10), "a refused call with a huge name wrote %d bytes to the audit trail: about %d calls erase it", grew/sent, int64(60<<20)/max(grew/sent, 1))
		assert.True(t, inTrail(), "the developer erased its earlier records from the audit trail")
	})

	// Bypass (same hole, readonly): a record carries the request's path;
	// a GET of a path of most of a megabyte (dockerd reads request heads
	// up to 1 MiB) by a readonly holder writes that much per call.
	//
	// Reproducer:
	//
	//	P=$(head -c 900000 /dev/zero | tr '\\0' n)
	//	for i in $(seq 10); do curl ... "https://host:2376/containers/$P/json"; done   # ~7 MB of records each
	t.Run("Attack_audit_trail_flushed_by_readonly_long_paths", func(t *testing.T) {
		before, err := os.Stat(r.audit)
		require.NoError(t, err)
		st, out := r.raw("rita", "GET", "/containers/"+strings.Repeat("n", 900*1000)+"/json", "", "")
		after, err := os.Stat(r.audit)
		require.NoError(t, err)
		grew := after.Size() - before.Size()
		if grew < 0 {
			grew = after.Size() // rotated
		}
		t.Logf("readonly GET /containers/<900 kB>/json: %d %s; the audit log grew by %d bytes", st, tailString(out, 100), grew)
		assert.Less(t, grew, int64(64<<10), "one readonly call wrote %d bytes to the audit trail: about %d calls erase it", grew, int64(60<<20)/max(grew, 1))
	})

	// Refused: a readonly holder made dockerd send HTTP requests to an
	// address it names: GET /images/search?term=HOST:PORT/x asks that
	// registry's /v1/search (plain HTTP for 127.0.0.0/8, an insecure
	// registry by default), from the host's network, loopback included.
	// Reaching a registry is a developer's (pull, login, search), and a
	// refused request reaches nothing: the server, which records a hit
	// before it answers, must have none once the answer is back.
	t.Run("Refused_readonly_search_reaches_host_addresses", func(t *testing.T) {
		hits := make(chan string, 16)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			select {
			case hits <- q.Method + " " + q.URL.String():
			default:
			}
			http.Error(w, "nope", http.StatusNotFound)
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		st, out := r.raw("rita", "GET", "/images/search?term="+ln.Addr().String()+"/probe", "", "")
		assert.Equal(t, http.StatusForbidden, st, out)
		assert.Contains(t, out, "readonly", out)
		assert.Empty(t, hits, "dockerd fetched, for readonly, from %s", ln.Addr())
		// A developer may: what the refusal is measured against.
		st, out = r.raw("dev", "GET", "/images/search?term="+ln.Addr().String()+"/probe", "", "")
		assert.NotEqual(t, http.StatusForbidden, st, out)
		assert.NotEmpty(t, hits, "a developer's search reached no registry (%d %s): the readonly case proves nothing", st, tailString(out, 120))
	})

	// Bypass: a developer's network with IPv6 (--ipv6, EnableIPv6: not
	// read by the plugin) makes dockerd switch on IPv6 forwarding for the
	// whole host (net.ipv6.conf.all.forwarding=1, libnetwork's bridge
	// driver): a host-wide sysctl, and a forwarding host ignores router
	// advertisements (accept_ra=1), so it loses its IPv6 default route
	// when the advertised one expires.
	//
	// Reproducer:
	//
	//	sysctl net.ipv6.conf.all.forwarding          # 0
	//	docker network create --ipv6 --subnet fd00:dead:beef::/64 v6
	//	sysctl net.ipv6.conf.all.forwarding          # 1
	//
	// Fix direction: EnableIPv6 (and IPAM Config) of a developer's network
	// stay zero unless the policy allows them; or run dockerd with
	// "ip-forward": false on hosts that route.
	t.Run("Attack_ipv6_network_turns_on_host_forwarding", func(t *testing.T) {
		const fwd = "/proc/sys/net/ipv6/conf/all/forwarding"
		before, err := os.ReadFile(fwd)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("no IPv6 on this host: %v (CI's machines have it)", err)
			}
			t.Skipf("no IPv6 on this host: %v", err)
		}
		out, err := r.as("dev", "network", "create", "--ipv6", "--subnet", "fd00:dead:beef::/64", "v6")
		after, _ := os.ReadFile(fwd)
		if string(after) != string(before) {
			t.Cleanup(func() { _ = os.WriteFile(fwd, before, 0o644) })
		}
		if err != nil {
			t.Logf("dev: docker network create --ipv6: %s", tailString(out, 300))
			return
		}
		defer func() { _, _ = r.as("dev", "network", "rm", "v6") }()
		t.Logf("host: net.ipv6.conf.all.forwarding %s -> %s", strings.TrimSpace(string(before)), strings.TrimSpace(string(after)))
		assert.Equal(t, string(before), string(after), "a developer's network changed a host-wide sysctl")
	})

	// Refused: a local volume of type nfs, with any address, the host's
	// own loopback or LAN included, was allowed ("its device is remote").
	// dockerd mounts it as root, from the host's address and a reserved
	// port: NFS's AUTH_SYS trusts exactly that, so a developer mounted
	// every export the host may mount (a backup server's exports to the
	// Docker host), and its container's root picked any uid the export
	// does not squash. Network file systems are admin's only now. No NFS
	// server answers here: the plugin's decision is what is checked, and
	// that dockerd made no volume.
	t.Run("Refused_nfs_volume_with_the_hosts_identity", func(t *testing.T) {
		out, err := r.as("dev", "volume", "create", "-o", "type=nfs", "-o", "o=addr=127.0.0.1,vers=4,soft,timeo=1,retrans=0", "-o", "device=:/", "hostnfs")
		require.Error(t, err, out)
		assert.Contains(t, out, "dtls-authz", "refused, but not by the plugin: %s", out)
		assert.Contains(t, out, "network file system")
		_, err = r.as("root-admin", "volume", "inspect", "hostnfs")
		assert.Error(t, err, "dockerd made the refused volume")
	})

	// Bypass: the owners' book records what is made over dockerd's local
	// unix socket (root, systemd units, scripts on the host) as owned by
	// "@unix", a key the code says no certificate name can be
	// (authz/objects.go), but pki.ValidateName allows a name that starts
	// with "@": "dtls issue-client @unix --role developer" works, and that
	// developer owns every container made locally: it execs into them,
	// stops, removes them.
	//
	// Reproducer:
	//
	//	sudo docker run -d --name local-db -e PGPASSWORD=s3cret postgres   # on the host, unix socket
	//	sudo dtls issue-client @unix --role developer
	//	DOCKER_CERT_PATH=./@unix docker exec local-db env    # allowed
	//
	// Fix direction: refuse "@" as a first character in pki.ValidateName
	// (and for names already in the inventory, in the plugin), or key the
	// book by source and name so no name can equal the socket's key.
	t.Run("Attack_certificate_named_at_unix_owns_local_socket_containers", func(t *testing.T) {
		if r.client["@unix"] == nil {
			t.Log("closed: dtls issue-client refused the name @unix")
			return
		}
		resp, err := r.d.Client().Post("http://docker/containers/create?name=localbox", "application/json",
			strings.NewReader(`{"Image":"tool:1","Cmd":["/tool","sleep"],"Env":["DB_PASSWORD=local-secret-5"]}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 201, resp.StatusCode)
		resp, err = r.d.Client().Post("http://docker/containers/localbox/start", "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 204, resp.StatusCode)
		st, out := r.raw("@unix", "GET", "/containers/localbox/json", "", "")
		t.Logf("@unix (developer): GET /containers/localbox/json: %d, the environment shows: %v", st, strings.Contains(out, "local-secret-5"))
		st2, out2 := r.raw("@unix", "POST", "/containers/localbox/exec", "application/json", `{"Cmd":["/tool","euid"]}`)
		t.Logf("@unix (developer): POST /containers/localbox/exec: %d %s", st2, tailString(out2, 160))
		st3, out3 := r.raw("dev", "GET", "/containers/localbox/json", "", "")
		t.Logf("dev (developer): GET /containers/localbox/json: %d %s", st3, tailString(out3, 120))
		assert.NotEqual(t, 200, st, "a developer's certificate named @unix inspects a container made over the local socket")
		assert.NotEqual(t, 201, st2, "a developer's certificate named @unix makes an exec in a container made over the local socket")
	})

	// Refused shapes (regression): references that read as ID prefixes
	// but name the developer's own container or network, in every place
	// a container names another.
	hexBox := adminBox[:12]
	adminNet := r.must("root-admin", "network", "inspect", "-f", "{{.Id}}", "adminnet")
	hexNet := adminNet[:12]
	// A name of hex digits only is refused to the developer: it would
	// capture another's reference to an ID prefix.
	for _, s := range [][]string{{"create", "--name", hexBox, "tool:1", "/tool", "sleep"}, {"network", "create", hexNet}} {
		out, err := r.as("dev", s...)
		require.Error(t, err, "dev: docker %s was allowed: %s", strings.Join(s, " "), out)
		assert.Contains(t, out, "hexadecimal digits only")
	}
	for _, s := range [][]string{
		{"create", "--link", hexBox + ":db", "tool:1", "/x"},
		{"create", "--volumes-from", hexBox, "tool:1", "/x"},
		{"create", "--network", "container:" + hexBox, "tool:1", "/x"},
		{"create", "--pid", "container:" + hexBox, "tool:1", "/x"},
		{"network", "connect", "adminnet", hexBox},
		{"network", "rm", hexNet},
		{"rename", hexBox, "x"},
		{"rm", hexBox},
	} {
		out, err := r.as("dev", s...)
		if !assert.Error(t, err, "BYPASS dev: docker %s was allowed: %s", strings.Join(s, " "), out) {
			continue
		}
		assert.Contains(t, out, "dtls-authz", "dev: docker %s refused, but not by the plugin: %s", strings.Join(s, " "), out)
		t.Logf("denied  docker %-60s %s", strings.Join(s, " "), tailString(strings.TrimSpace(out), 160))
	}
	// Raw shapes: uppercase hex, a leading "/", an exec on the
	// developer's container by an uppercase ID prefix.
	for _, s := range []struct{ name, method, path, body string }{
		{"kill admin's by uppercase ID prefix", "POST", "/containers/" + strings.ToUpper(adminBox[:12]) + "/kill", ""},
		{"kill admin's by /ID prefix", "POST", "/containers//" + adminBox[:12] + "/kill", ""},
		{"kill admin's by full ID with /", "POST", "/containers/%2F" + adminBox + "/kill", ""},
		{"exec in admin's by ID prefix with trailing space", "POST", "/containers/" + adminBox[:12] + "%20/exec", `{"Cmd":["/tool","euid"]}`},
		{"Mounts bind with Propagation rshared of a path below the root", "POST", "/containers/create",
			`{"Image":"tool:1","HostConfig":{"Mounts":[{"Type":"bind","Source":"` + r.ws + `/real","Target":"/x","BindOptions":{"Propagation":"rshared"}}]}}`},
		{"Tmpfs on a host path target", "POST", "/containers/create", `{"Image":"tool:1","HostConfig":{"Tmpfs":{"/x":"exec,suid,dev"},"Binds":["/etc:/y"]}}`},
		// dockerd does not send the body of a request whose URI ends in
		// "/auth" (moby pkg/authorization sendBody), query included.
		{"create with a query ending in /auth (body not forwarded)", "POST", "/containers/create?x=/auth",
			`{"Image":"tool:1","HostConfig":{"Privileged":true}}`},
		{"exec with a query ending in /auth (body not forwarded)", "POST", "/containers/devbox/exec?x=/auth",
			`{"Cmd":["/tool","euid"],"Privileged":true}`},
		{"volume mount whose Source is a host path", "POST", "/containers/create",
			`{"Image":"tool:1","HostConfig":{"Mounts":[{"Type":"volume","Source":"/etc","Target":"/x"}]}}`},
		{"network create with the host's own gateway subnet", "POST", "/networks/create",
			`{"Name":"gw","Driver":"macvlan","IPAM":{"Config":[{"Subnet":"192.0.2.0/24"}]}}`},
	} {
		ctype := ""
		if s.body != "" {
			ctype = "application/json"
		}
		status, out := r.raw("dev", s.method, s.path, ctype, s.body)
		if status/100 == 2 {
			t.Errorf("BYPASS %s: %s %s answered %d: %s", s.name, s.method, s.path, status, tailString(out, 300))
			continue
		}
		t.Logf("refused %-55s %d %s", s.name, status, tailString(out, 160))
	}

	// Bypass: dockerd resolves a reference by full ID, then by name, then
	// by ID prefix, for the admin too. A developer names its container
	// after the 12-character ID prefix "docker ps" shows for the admin's
	// container (a create the plugin allows); the admin's "docker cp
	// FILE 5a6a715da87a:/tmp", "docker exec -it 5a6a715da87a sh" (and what
	// is typed there) go to the developer's container, which the developer
	// then reads.
	//
	// Reproducer (P is the admin's container's ID prefix from docker ps):
	//
	//	docker create --name P alpine sleep 1d                 # developer
	//	docker cp ./db-backup.sql P:/tmp/                     # admin, meaning its own container
	//	docker start P-ID && docker exec P-ID cat /tmp/db-backup.sql   # developer, by its ID
	//	docker network create Q                                # developer, Q the admin's network's ID prefix
	//	docker network connect Q adminbox                      # admin: joins the developer's network
	//
	// Fix direction: a role that is not admin may not create, rename or
	// name a container or network with a name that reads as an ID prefix
	// (lowercase hexadecimal), the same rule the plugin already applies to
	// references.
	t.Run("Attack_container_named_after_admins_id_prefix_takes_admins_cp", func(t *testing.T) {
		// Closed: the developer could not take the name (above), so the
		// admin's reference by ID prefix names the admin's own objects.
		got := r.must("root-admin", "inspect", "-f", "{{.Id}}", hexBox)
		assert.Equal(t, adminBox, got, "the admin's ID prefix names another container")
		got = r.must("root-admin", "network", "inspect", "-f", "{{.Id}}", hexNet)
		assert.Equal(t, adminNet, got, "the admin's network ID prefix names another network")
	})
}
