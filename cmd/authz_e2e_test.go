package cmd

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// pluginDir is where dockerd 20.10 looks for a legacy plugin's socket
// (moby pkg/plugins/discovery_unix.go); the tests place a uniquely named
// socket there and remove it.
const pluginDir = "/run/docker/plugins"

// authzPlugin is 'dtls authz serve' running as its own process.
type authzPlugin struct {
	Name, Socket, Policy, Audit string
	cmd                         *exec.Cmd
	out                         *bytes.Buffer
}

// startAuthzPlugin starts the plugin on a uniquely named socket under
// /run/docker/plugins, and stops it (SIGTERM to its pid) and removes the
// socket when t ends. extra are more flags of authz serve (the last of a
// flag given twice wins).
func startAuthzPlugin(t *testing.T, state, dir string, extra ...string) *authzPlugin {
	t.Helper()
	p := &authzPlugin{
		Policy: filepath.Join(dir, "authz-policy.json"),
		Audit:  filepath.Join(dir, "authz.log"),
		out:    &bytes.Buffer{},
	}
	p.Name, p.Socket = sandbox.PluginSocket("authz")
	// The host stays as the tests found it: the directories go when the
	// last test that uses them ends (sandbox.ClaimHostDirs).
	t.Cleanup(sandbox.ClaimHostDirs())
	require.NoError(t, os.MkdirAll(pluginDir, 0o755))
	require.NoError(t, os.WriteFile(p.Policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	p.cmd = exec.Command(dtlsExe(t), append([]string{"authz", "serve", "--socket", p.Socket, "--state-dir", state,
		"--policy", p.Policy, "--audit-log", p.Audit,
		"--daemon-json", filepath.Join(dir, "daemon.json"), "--systemd-dir", filepath.Join(dir, "systemd")}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
		os.Remove(p.Socket)
		if t.Failed() {
			t.Logf("plugin output:\n%s", tailString(p.out.String(), 4000))
		}
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

// authzSandbox makes a sandbox directory for a test daemon with TLS on a
// free loopback port and runs dtls init there (state, certs,
// daemon.json, systemd under DIR); it returns DIR, the port and the init
// arguments, which a test repeats with --authz.
func authzSandbox(t *testing.T) (dir string, port int, initArgs []string) {
	t.Helper()
	sandbox.Require(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err = sandbox.FreePort()
	require.NoError(t, err)
	state, certs, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	initArgs = []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd,
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1"}
	_, stderr, code := dtls(t, time.Now(), initArgs...)
	require.Equal(t, 0, code, stderr)
	return dir, port, initArgs
}

// sleeperBinary builds a static program that sleeps for an hour: a
// process to keep a container running, for docker exec.
func sleeperBinary(t *testing.T) string {
	return buildStatic(t, "sleep", "package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(time.Hour) }\n")
}

// builtStatic holds the programs buildStatic made in this test binary, by
// name and source, in staticDir (removed by TestMain): the red team tests
// need the same few, and go build links each time it is run. Each program
// has a lock of its own, so that tests waiting for different programs
// wait for one build each, not for every build queued before theirs.
var builtStatic = struct {
	sync.Mutex
	progs map[string]*staticProg
}{progs: map[string]*staticProg{}}

// staticProg is one program of builtStatic: path is empty until a build
// succeeds.
type staticProg struct {
	sync.Mutex
	path string
}

var staticDir string

// buildStatic builds a static program (CGO_ENABLED=0) named name from one
// Go source file, for an image made with importImage, once per test
// binary.
func buildStatic(t *testing.T, name, source string) string {
	t.Helper()
	key := name + "\x00" + source
	builtStatic.Lock()
	prog := builtStatic.progs[key]
	if prog == nil {
		prog = &staticProg{}
		builtStatic.progs[key] = prog
	}
	var err error
	if staticDir == "" {
		staticDir, err = os.MkdirTemp("", "dtls-static-")
	}
	parent := staticDir
	builtStatic.Unlock()
	require.NoError(t, err)

	prog.Lock()
	defer prog.Unlock()
	if prog.path != "" {
		return prog.path
	}
	dir, err := os.MkdirTemp(parent, name+"-")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(source), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/"+name+"\n\ngo 1.26\n"), 0o644))
	out := filepath.Join(dir, name)
	// Without the symbol table and DWARF (stack traces keep their
	// function names): a third smaller, and the sandboxes' vfs storage
	// driver copies an image's files into every container made of it.
	cmd := fixture.GoBuild(out, ".", "-trimpath", "-ldflags=-s -w")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s: %s", name, b)
	prog.path = out
	return out
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// importImage imports a root filesystem of files into the daemon as ref,
// through its unix socket (what `docker import -` does).
func importImage(t *testing.T, d *sandbox.Daemon, ref string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A world-writable sticky /tmp, as every distribution image has.
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}))
	for name, src := range files {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	repo, tag, _ := strings.Cut(ref, ":")
	q := url.Values{"fromSrc": {"-"}, "repo": {repo}, "tag": {tag}}
	resp, err := d.Client().Post("http://docker/images/create?"+q.Encode(), "application/x-tar", &buf)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var last bytes.Buffer
	_, _ = last.ReadFrom(resp.Body)
	require.NotContains(t, last.String(), `"error"`)
}

// TestAuthzPluginWithRealDocker: a sandboxed dockerd asks the dtls
// authorization plugin about every API call. Each role gets what it may and
// is refused the rest with the plugin's message; a revoked client is
// refused from its next call, without a restart of dockerd; a container
// with a --for-container bundle lists containers over TLS and cannot create
// one; every decision is in the audit trail; a broken policy denies TCP
// while the local socket works; an empty AuthZReq is denied.
func TestAuthzPluginWithRealDocker(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	dir, port, initArgs := authzSandbox(t)
	state, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	now := time.Now()
	var stderr string
	var code int

	bundles := filepath.Join(dir, "bundles")
	issue := func(name, role string, extra ...string) string {
		out, stderr, code := dtls(t, now, append([]string{"issue-client", name, "--role", role, "--state-dir", state,
			"--out", filepath.Join(bundles, name)}, extra...)...)
		require.Equal(t, 0, code, stderr)
		return out
	}
	issue("root-admin", "admin")
	issue("rita", "readonly")
	issue("dev", "developer")
	issue("bob", "developer")
	containerFlags := issue("ci", "readonly", "--for-container")

	// The plugin, then init --authz: daemon.json names it only now that
	// it answers.
	plugin := startAuthzPlugin(t, state, dir)
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	var cfg struct {
		Plugins []string `json:"authorization-plugins"`
	}
	b, err := os.ReadFile(daemonJSON)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.Equal(t, []string{plugin.Name}, cfg.Plugins)
	assert.FileExists(t, filepath.Join(systemd, "dtls-authz.socket"))
	assert.FileExists(t, filepath.Join(systemd, "dtls-authz.service"))

	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	ctx := context.Background()
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	importImage(t, d, "dockercli:1", map[string]string{"docker": docker})

	as := func(name string, args ...string) (string, error) {
		return runDocker(t, docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + filepath.Join(bundles, name)}, args...)
	}
	allowed := func(name string, args ...string) string {
		t.Helper()
		out, err := as(name, args...)
		require.NoError(t, err, "%s: docker %s: %s", name, strings.Join(args, " "), out)
		return out
	}
	denied := func(name, want string, args ...string) {
		t.Helper()
		out, err := as(name, args...)
		require.Error(t, err, "%s: docker %s was allowed: %s", name, strings.Join(args, " "), out)
		assert.Contains(t, out, "dtls-authz", "%s: docker %s: not the plugin's refusal", name, strings.Join(args, " "))
		assert.Contains(t, out, want, "%s: docker %s", name, strings.Join(args, " "))
	}

	// admin creates a container.
	id := strings.TrimSpace(allowed("root-admin", "create", "tiny:1", "/x"))
	require.NotEmpty(t, id)

	// readonly lists, but cannot create, export or copy out.
	assert.Contains(t, allowed("rita", "ps", "-a"), id[:12])
	denied("rita", "rita", "create", "tiny:1", "/x")
	denied("rita", "rita", "export", id)
	denied("rita", "rita", "cp", id+":/x", "-")

	// developer creates a plain container, and none of these.
	allowed("dev", "create", "tiny:1", "/x")
	for _, bad := range [][]string{
		{"--privileged"},
		{"-v", "/var/run/docker.sock:/var/run/docker.sock"},
		{"-v", "/:/host"},
		{"--pid", "host"},
		{"--cap-add", "SYS_ADMIN"},
	} {
		denied("dev", "dev", append(append([]string{"create"}, bad...), "tiny:1", "/x")...)
	}

	// Exec: into the developer's own container, as any user; never into
	// admin's (without -u it runs as that container's root, with its
	// mounts); never a privileged exec.
	importImage(t, d, "sleeper:1", map[string]string{"sleep": sleeperBinary(t)})
	allowed("dev", "run", "-d", "--name", "devbox", "sleeper:1", "/sleep")
	allowed("root-admin", "run", "-d", "--name", "privbox", "-v", "/etc:/host-etc:ro", "sleeper:1", "/sleep")
	allowed("dev", "exec", "-d", "-u", "0", "devbox", "/sleep")
	allowed("dev", "exec", "-d", "devbox", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "privbox", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "-u", "0", "privbox", "/sleep")
	denied("dev", "privileged exec", "exec", "-d", "--privileged", "devbox", "/sleep")
	rolesWithRealDocker(t, d, plugin, dir, allowed, denied, as)

	// Revocation: bob's next call is refused, without a restart of
	// dockerd; the others are not affected.
	allowed("bob", "ps")
	_, stderr, code = dtls(t, now, "revoke", "bob", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	revokedAt := time.Now()
	denied("bob", "revoked", "ps")
	t.Logf("bob refused %v after the revocation returned", time.Since(revokedAt))
	allowed("dev", "ps")

	// The inventory restored from a backup while the plugin runs (moved
	// aside with its -wal and -shm, a copy put back): a revocation in the
	// restored one is enforced through dockerd within a second.
	db := filepath.Join(state, authority.DBFile)
	aside := t.TempDir()
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if _, err := os.Stat(f); err == nil {
			require.NoError(t, os.Rename(f, filepath.Join(aside, filepath.Base(f))))
		}
	}
	b, err = os.ReadFile(filepath.Join(aside, authority.DBFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(db, b, 0o600))
	allowed("rita", "ps")
	_, stderr, code = dtls(t, now, "revoke", "rita", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	revokedAt = time.Now()
	for {
		out, err := as("rita", "ps")
		if err != nil {
			assert.Contains(t, out, "revoked")
			break
		}
		// The plugin looks at the file once a second
		// (TestAuthzFollowsReplacedInventory holds it to that); the
		// Docker CLI's own start adds to each try here.
		require.Less(t, time.Since(revokedAt), 2*time.Second, "rita still allowed after the restored inventory's revocation")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rita refused %v after the revocation in the restored inventory", time.Since(revokedAt))

	// A container with a --for-container bundle (readonly) lists
	// containers through TLS and cannot create one.
	flags := strings.Fields(strings.TrimSpace(containerFlags))
	require.Contains(t, flags, "DOCKER_TLS_VERIFY=1", containerFlags)
	run := append(append([]string{"run", "--rm", "--network", "host"}, flags...), "dockercli:1")
	out := allowed("root-admin", append(run, "/docker", "ps", "-a")...)
	assert.Contains(t, out, id[:12])
	out, err = as("root-admin", append(run, "/docker", "create", "tiny:1", "/x")...)
	require.Error(t, err, out)
	assert.Contains(t, out, "dtls-authz")

	// The audit trail holds each of these with the right user and
	// decision.
	recs, err := authz.ReadAudit(plugin.Audit, authz.AuditFilter{})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.User+" "+r.Decision+" "+r.Method+" "+r.Path] = true
	}
	for _, want := range []string{
		"root-admin allow POST /containers/create",
		"rita allow GET /containers/json",
		"rita deny GET /containers/json",
		"rita deny POST /containers/create",
		"rita deny GET /containers/" + id + "/export",
		"dev allow POST /containers/create",
		"dev deny POST /containers/create",
		"dev deny GET /containers/privbox/json",
		"dev deny DELETE /containers/privbox",
		"bob allow GET /containers/json",
		"bob deny GET /containers/json",
		"ci allow GET /containers/json",
		"ci deny POST /containers/create",
	} {
		assert.True(t, seen[want], "no audit record %q", want)
	}

	// A broken policy denies TCP requests, saying why; the local socket
	// still works.
	require.NoError(t, os.WriteFile(plugin.Policy, []byte("{ not json"), 0o644))
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := as("root-admin", "ps")
		if err != nil {
			assert.Contains(t, out, "policy")
			break
		}
		require.True(t, time.Now().Before(deadline), "the broken policy was not picked up: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := d.Client().Get("http://docker/containers/json")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the local socket is locked out")

	// An AuthZReq without a body, straight to the plugin's socket.
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", plugin.Socket)
	}}}
	resp, err = c.Post("http://plugin/AuthZPlugin.AuthZReq", "application/json", nil)
	require.NoError(t, err)
	var ans struct {
		Allow bool
		Msg   string
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
	resp.Body.Close()
	assert.False(t, ans.Allow)
	assert.NotEmpty(t, ans.Msg)
}

// TestCheckAndInspectWithRealDocker: 'dtls check' says a bundle works
// against a real dockerd, and exits 4 with the reason when the daemon's
// certificate is from another CA (a rotation the laptop missed); 'dtls
// inspect' describes the bundle and its archive.
func TestCheckAndInspectWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newTLSHost(t, time.Now())
	out := filepath.Join(h.Dir, "alice")
	archive := filepath.Join(h.Dir, "alice.tar.gz")
	_, stderr, code := dtls(t, time.Now(), "issue-client", "alice", "--state-dir", h.State, "--out", out, "--archive", archive,
		"--docker-host", fmt.Sprintf("tcp://localhost:%d", h.Port))
	require.Equal(t, 0, code, stderr)

	stdout, stderr, code := dtls(t, time.Now(), "check", "--cert-path", out)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "ok: tcp://localhost:")
	assert.Contains(t, stdout, "answers as Docker Engine 20.10")

	stdout, _, code = dtls(t, time.Now(), "inspect", archive, "-o", "json")
	require.Equal(t, 0, code, stdout)
	var info struct {
		Source string `json:"source"`
		Client struct {
			Subject string `json:"subject"`
		} `json:"client"`
		DockerHost string `json:"docker_host"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &info))
	assert.Equal(t, "archive", info.Source)
	assert.Contains(t, info.Client.Subject, "alice")
	assert.Equal(t, fmt.Sprintf("tcp://localhost:%d", h.Port), info.DockerHost)

	// The daemon moves to another CA: the bundle no longer trusts it.
	other := filepath.Join(h.Dir, "other")
	require.NoError(t, os.Mkdir(other, 0o700))
	_, stderr, code = dtls(t, time.Now(), "init", "--state-dir", filepath.Join(other, "state"), "--certs-dir", h.Certs,
		"--daemon-json", h.DaemonJSON, "--systemd-dir", h.Systemd, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", h.Port),
		"--host", "localhost", "--host", "127.0.0.1")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, h.Daemon.Restart(context.Background()))
	_, stderr, code = dtls(t, time.Now(), "check", "--cert-path", out)
	assert.Equal(t, exitUnusable, code, stderr)
	assert.Contains(t, stderr, "dtls: hint:")
	t.Logf("check says: %s", stderr)
}

// TestRenewalReachesTheLaptop: a bundle imported on a laptop (its own
// home, never the path recorded on the host) and a Docker context made
// from it keep working after 'dtls renew NAME --archive - | dtls import -':
// the bundle is replaced in place without --force and the context follows.
func TestRenewalReachesTheLaptop(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	h := newTLSHost(t, time.Now())
	host := fmt.Sprintf("tcp://localhost:%d", h.Port)
	archive := filepath.Join(h.Dir, "alice.tar.gz")
	_, stderr, code := dtls(t, time.Now(), "issue-client", "alice", "--state-dir", h.State, "--out", filepath.Join(h.Dir, "alice"),
		"--archive", archive, "--docker-host", host)
	require.Equal(t, 0, code, stderr)

	laptop := t.TempDir()
	env := map[string]string{"HOME": laptop, "DOCKER_CONFIG": filepath.Join(laptop, ".docker")}
	laptopRun := func(in []byte, args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := Run(args, IO{In: bytes.NewReader(in), Out: &out, ErrOut: &errOut, Now: time.Now, Getenv: func(k string) string { return env[k] }})
		return out.String(), errOut.String(), code
	}
	_, stderr, code = laptopRun(nil, "import", archive)
	require.Equal(t, 0, code, stderr)
	_, stderr, code = laptopRun(nil, "context", "create", "prod")
	require.Equal(t, 0, code, stderr)
	ctxDocker := func() (string, error) {
		return runDocker(t, docker, []string{"DOCKER_CONFIG=" + env["DOCKER_CONFIG"]}, "--context", "prod", "version", "--format", "{{.Server.Version}}")
	}
	out, err := ctxDocker()
	require.NoError(t, err, out)

	// The renewal travels through a pipe, as over ssh. (A minute later:
	// certificate times have whole seconds.)
	renewed, stderr, code := dtls(t, time.Now().Add(time.Minute), "renew", "alice", "--state-dir", h.State, "--archive", "-")
	require.Equal(t, 0, code, stderr)
	require.NotEmpty(t, renewed)
	_, stderr, code = laptopRun([]byte(renewed), "import", "-")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "renewed bundle")
	assert.Contains(t, stderr, `refreshed docker context "prod"`)

	// The context now holds the renewed certificate, and works.
	_, tlsDir := dockercontext.Paths(env["DOCKER_CONFIG"], "prod")
	ctxCert := serialOfFile(t, filepath.Join(tlsDir, "docker", "cert.pem"))
	recs := map[string]string{}
	listOut, _, code := dtls(t, time.Now(), "list", "--state-dir", h.State, "-o", "json")
	require.Equal(t, 0, code)
	var list []struct{ Name, Serial, Status string }
	require.NoError(t, json.Unmarshal([]byte(listOut), &list))
	for _, r := range list {
		if r.Name == "alice" {
			recs[r.Serial] = r.Status
		}
	}
	assert.Equal(t, "valid", recs[ctxCert], "the context does not hold the renewed certificate: %v", recs)
	out, err = ctxDocker()
	require.NoError(t, err, out)

	// An older archive (the first one) is not a renewal: refused without
	// --force, nothing changed.
	_, stderr, code = laptopRun(nil, "import", archive)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "not newer")
	assert.Equal(t, ctxCert, serialOfFile(t, filepath.Join(tlsDir, "docker", "cert.pem")))
}

// rolesWithRealDocker: the developer role is an allowlist against a real
// dockerd: host paths only under the policy's bind roots, judged where
// they resolve on the host (a planted symbolic link, a parent of a
// protected path, a local volume that binds, a named volume an admin made
// from a host path); namespace joins, volumes-from and links of the
// caller's own containers only; unchecked HostConfig fields refused; and
// ownership: another's containers and volumes cannot be removed, renamed,
// attached to or inspected, and a name reused by an admin is not the
// developer's any more.
func rolesWithRealDocker(t *testing.T, d *sandbox.Daemon, plugin *authzPlugin, dir string,
	allowed func(string, ...string) string, denied func(string, string, ...string), as func(string, ...string) (string, error)) {
	t.Helper()
	// The workspaces are outside the sandbox directory, which holds the
	// audit log's directory: protected.
	// Their file system is nosuid,nodev, as a bind root's must be.
	work, err := os.MkdirTemp("", "dtls-work-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	require.NoError(t, unix.Mount("tmpfs", work, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m,mode=0755"))
	t.Cleanup(func() { _ = unix.Unmount(work, unix.MNT_DETACH) })
	require.NoError(t, os.MkdirAll(filepath.Join(work, "dev", "src"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(work, "bob"), 0o755))
	pol := fmt.Sprintf(`{"default_role": "readonly", "bind_roots": [%q]}`, filepath.Join(work, "{user}"))
	require.NoError(t, atomicfile.Write(plugin.Policy, []byte(pol), 0o644))
	src := filepath.Join(work, "dev")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := as("dev", "create", "-v", src+":/src", "tiny:1", "/x")
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the policy with bind roots was not loaded: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	// A symbolic link planted in the workspace (as a container with it
	// mounted could), a parent of protected paths, another's workspace.
	require.NoError(t, os.Symlink("/etc", filepath.Join(work, "dev", "etc")))
	for _, c := range []struct{ want, bind string }{
		{"resolved on the host: /etc", filepath.Join(work, "dev", "etc") + ":/x"},
		{"only a bind root itself may be mounted", filepath.Join(work, "dev", "src") + ":/x"},
		{"contains /var/lib", "/var:/v"},
		{"is not a bind root", filepath.Join(work, "bob") + ":/b"},
		{"is not a bind root", work + ":/w"},
		{"not a clean absolute path", work + "/dev/src/../../bob:/b"},
		{"a protected host path", filepath.Join(dir, "state") + ":/s"},
	} {
		denied("dev", c.want, "create", "-v", c.bind, "tiny:1", "/x")
	}
	// Local volumes that bind, whatever their type; a named volume an
	// admin made from /etc; the developer's own plain volume.
	denied("dev", "binding /etc", "create", "--mount", "type=volume,dst=/x,volume-driver=local,volume-opt=type=ext4,volume-opt=o=bind,volume-opt=device=/etc", "tiny:1", "/x")
	denied("dev", "binding /etc", "volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=/etc", "devetc")
	allowed("root-admin", "volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=/etc", "adminetc")
	denied("dev", `volume "adminetc" was created by someone else`, "create", "-v", "adminetc:/x", "tiny:1", "/x")
	denied("dev", `volume "adminetc" was created by someone else`, "create", "--mount", "src=adminetc,dst=/x", "tiny:1", "/x")
	denied("dev", "exists and was not created by you", "volume", "create", "adminetc")
	denied("dev", "was created by someone else", "volume", "rm", "adminetc")
	allowed("dev", "volume", "create", "devdata")
	allowed("dev", "create", "-v", "devdata:/data", "tiny:1", "/x")
	// Namespaces: the caller's own container only, and one without the
	// host's; never an admin's.
	allowed("root-admin", "run", "-d", "--name", "hostpid", "--pid", "host", "sleeper:1", "/sleep")
	denied("dev", "was created by someone else", "create", "--pid", "container:hostpid", "tiny:1", "/x")
	denied("dev", "was created by someone else", "create", "--network", "container:privbox", "tiny:1", "/x")
	allowed("dev", "create", "--network", "container:devbox", "--pid", "container:devbox", "tiny:1", "/x")
	denied("dev", "was created by someone else", "create", "--volumes-from", "privbox", "tiny:1", "/x")
	// Unchecked fields that reach the host.
	for _, c := range []struct {
		want string
		args []string
	}{
		{`log driver "syslog"`, []string{"--log-driver", "syslog", "--log-opt", "syslog-address=unix:///dev/log"}},
		{"cgroup namespace", []string{"--cgroupns", "host"}},
		{"cgroup parent", []string{"--cgroup-parent", "/"}},
		{"negative OOM score", []string{"--oom-score-adj", "-1000"}},
		{"OOM killer", []string{"--oom-kill-disable"}},
		{"unlimited pids limit", []string{"--pids-limit", "-1"}},
		{"only net.*", []string{"--sysctl", "kernel.msgmax=65536"}},
	} {
		denied("dev", c.want, append(append([]string{"create"}, c.args...), "tiny:1", "/x")...)
	}
	// Ownership: admin's containers are out of reach; a removed name
	// reused by an admin is the admin's.
	denied("dev", "was created by someone else", "rm", "-f", "privbox")
	denied("dev", "was created by someone else", "rename", "privbox", "mine")
	denied("dev", "was created by someone else", "kill", "privbox")
	denied("dev", "was created by someone else", "logs", "privbox")
	denied("dev", "was created by someone else", "inspect", "privbox")
	denied("rita", "was created by someone else", "inspect", "devbox")
	allowed("dev", "inspect", "devbox")
	allowed("dev", "run", "-d", "--name", "reuse", "sleeper:1", "/sleep")
	allowed("dev", "rm", "-f", "reuse")
	allowed("root-admin", "run", "-d", "--name", "reuse", "--cap-add", "SYS_ADMIN", "sleeper:1", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "reuse", "/sleep")
	// A container the plugin did not see created by a certificate
	// holder (here over the unix socket) is not the developer's: the
	// plugin saw the unix socket create it, the gateway saw nothing.
	var resp *http.Response
	resp, err = d.Client().Post("http://docker/containers/create?name=before", "application/json", strings.NewReader(`{"Image":"sleeper:1","Cmd":["/sleep"]}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	denied("dev", "was created by", "start", "before")

	if plugin.Socket == "" {
		// The gateway: dockerd's unix socket does not go through it.
		return
	}
	// The plugin's own lookups go through dockerd's unix socket: they
	// pass even when the policy denies that socket to everyone else.
	pol = fmt.Sprintf(`{"default_role": "readonly", "unix": "deny", "bind_roots": [%q]}`, filepath.Join(work, "{user}"))
	require.NoError(t, atomicfile.Write(plugin.Policy, []byte(pol), 0o644))
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := d.Client().Get("http://docker/containers/json")
		require.NoError(t, err)
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			break
		}
		require.True(t, time.Now().Before(deadline), "the unix socket is still allowed: %s", resp.Status)
		time.Sleep(50 * time.Millisecond)
	}
	allowed("dev", "exec", "-d", "devbox", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "reuse", "/sleep")
	require.NoError(t, atomicfile.Write(plugin.Policy, []byte(`{"default_role": "readonly"}`), 0o644))
}

// TestAuthzLatePolicyWithRealDocker: a policy file created at the default
// path (/etc/dtls/authz-policy.json) after the plugin started is loaded,
// and its removal brings the built-in policy back, as dockerd's calls
// show. The plugin runs in a mount namespace of its own with an empty
// /etc, so that the host's /etc is never touched; the test writes the
// file through /proc/PID/root.
func TestAuthzLatePolicyWithRealDocker(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	dir, port, initArgs := authzSandbox(t)
	state, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	now := time.Now()
	var stderr string
	var code int
	_, stderr, code = dtls(t, now, "issue-client", "dana", "--state-dir", state, "--out", filepath.Join(dir, "dana"))
	require.Equal(t, 0, code, stderr)

	p := &authzPlugin{Audit: filepath.Join(dir, "authz.log"), out: &bytes.Buffer{}}
	p.Name, p.Socket = sandbox.PluginSocket("authz-late")
	t.Cleanup(sandbox.ClaimHostDirs())
	require.NoError(t, os.MkdirAll(pluginDir, 0o755))
	p.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount -t tmpfs -o mode=0755 late-etc /etc && mkdir -m 0755 /etc/dtls && exec "$@"`, "sh",
		dtlsExe(t), "authz", "serve", "--socket", p.Socket, "--state-dir", state, "--audit-log", p.Audit,
		"--daemon-json", daemonJSON, "--systemd-dir", systemd)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
		os.Remove(p.Socket)
		if t.Failed() {
			t.Logf("plugin output:\n%s", tailString(p.out.String(), 4000))
		}
	})
	waitFor(t, 20*time.Second, "the plugin answers", func() bool { return authority.ProbeAuthz(p.Socket, time.Second) == nil })
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", p.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))

	create := func() (string, error) {
		return runDocker(t, docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + filepath.Join(dir, "dana")}, "create", "tiny:1", "/x")
	}
	// The built-in policy: dana has no role, so readonly.
	out, err := create()
	require.Error(t, err, out)
	assert.Contains(t, out, "readonly")

	// Created at the default path, as the plugin sees it.
	policy := fmt.Sprintf("/proc/%d/root/etc/dtls/authz-policy.json", p.cmd.Process.Pid)
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": "developer"}`), 0o644))
	waitFor(t, 10*time.Second, "the policy created after the start is loaded", func() bool {
		_, err := create()
		return err == nil
	})
	// Removed: the built-in policy again.
	require.NoError(t, os.Remove(policy))
	waitFor(t, 10*time.Second, "the built-in policy is back", func() bool {
		out, err := create()
		return err != nil && strings.Contains(out, "readonly")
	})
}
