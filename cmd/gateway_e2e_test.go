package cmd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

// gatewayHost is a Docker host in gateway mode, every path under one
// sandbox directory: dockerd listens on its unix socket only, and 'dtls
// gateway serve' (a process of its own) owns 127.0.0.1:Port with the
// certificates 'dtls init' made.
type gatewayHost struct {
	Dir, State, Certs, Policy, Audit, Bundles string
	Sessions                                  string
	Port                                      int
	Daemon                                    *sandbox.Daemon
	docker                                    string
	exe                                       string
	cmd                                       *exec.Cmd
	out                                       *bytes.Buffer
}

func newGatewayHost(t *testing.T, extra ...string) *gatewayHost {
	t.Helper()
	docker := dockerCLI(t)
	sandbox.Require(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	h := &gatewayHost{Dir: dir, State: filepath.Join(dir, "state"), Certs: filepath.Join(dir, "certs"),
		Policy: filepath.Join(dir, "authz-policy.json"), Audit: filepath.Join(dir, "gateway.log"),
		Bundles: filepath.Join(dir, "bundles"), Sessions: filepath.Join(dir, "sessions"), Port: port, docker: docker, out: &bytes.Buffer{}}
	// dtls init writes its TCP listener into a daemon.json of its own:
	// the daemon's keeps its unix socket only.
	daemonJSON, initJSON, systemd := filepath.Join(dir, "daemon.json"), filepath.Join(dir, "init-daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, atomicfile.Write(initJSON, []byte("{}\n"), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	h.exe = dtlsExe(t)
	_, stderr, code := h.dtls(t, "init", "--state-dir", h.State, "--certs-dir", h.Certs, "--daemon-json", initJSON,
		"--systemd-dir", systemd, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1")
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	h.Daemon = d
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	h.cmd = exec.Command(h.exe, "gateway", "serve", "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port),
		"--docker", "unix://"+d.Socket, "--state-dir", h.State, "--certs-dir", h.Certs, "--policy", h.Policy,
		"--audit-log", h.Audit, "--daemon-json", daemonJSON, "--sessions-dir", h.Sessions,
		// The gateway's own sockets stay in the sandbox: none by default
		// (gateway_local_e2e_test.go's tests add one), per-container
		// ones under the sandbox.
		"--local-socket=", "--sockets-dir", filepath.Join(dir, "sockets"))
	h.cmd.Args = append(h.cmd.Args, extra...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	require.NoError(t, h.cmd.Start())
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		_ = h.cmd.Wait()
		// Under go test -race the gateway is race-checked too.
		assert.NotContains(t, h.out.String(), "WARNING: DATA RACE")
		if t.Failed() {
			t.Logf("gateway output:\n%s", tailString(h.out.String(), 6000))
		}
	})
	waitFor(t, 20*time.Second, "the gateway listens", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return h
}

// dtls runs a dtls command as a process of its own: the tests run in
// parallel, and the command's in-process entry sets globals (cfssl's log
// level).
func (h *gatewayHost) dtls(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(h.exe, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errOut.String(), code
}

func (h *gatewayHost) issue(t *testing.T, name, role string, extra ...string) string {
	t.Helper()
	out, stderr, code := h.dtls(t, append([]string{"issue-client", name, "--role", role, "--state-dir", h.State,
		"--out", filepath.Join(h.Bundles, name)}, extra...)...)
	require.Equal(t, 0, code, stderr)
	return out
}

func (h *gatewayHost) env(name string) []string {
	return []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", h.Port), "DOCKER_TLS_VERIFY=1",
		"DOCKER_CERT_PATH=" + filepath.Join(h.Bundles, name), "DOCKER_BUILDKIT=0"}
}

func (h *gatewayHost) as(t *testing.T, name string, args ...string) (string, error) {
	return runDocker(t, h.docker, h.env(name), args...)
}

// command is the Docker CLI as name, to run with pipes of the test's.
func (h *gatewayHost) command(t *testing.T, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.docker, args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir()}, h.env(name)...)
	return cmd
}

// toolBinary builds a static program of a few commands for the streams'
// tests: cat (stdin to stdout), sleep, ticker (a line every 50 ms), tty
// (says whether stdin is a terminal, then echoes one line in upper case).
func toolBinary(t *testing.T) string {
	return buildStatic(t, "tool", `package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	switch os.Args[1] {
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "sleep":
		time.Sleep(time.Hour)
	case "ticker":
		for i := 0; ; i++ {
			fmt.Printf("tick %d\n", i)
			time.Sleep(50 * time.Millisecond)
		}
	case "tty":
		var t syscall.Termios
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
		fmt.Printf("tty=%v\n", e == 0)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("got %s\n", strings.ToUpper(strings.TrimSpace(line)))
	}
}
`)
}

// TestGatewayRolesWithRealDocker: the role table of
// TestAuthzPluginWithRealDocker, through the gateway in front of a dockerd
// without the plugin, gets the same answers: each role gets what it may
// and is refused the rest with the gateway's message; a revoked client is
// refused from its next call; a --for-container bundle lists containers
// and cannot create one; every decision is in the audit trail; a broken
// policy denies every request.
func TestGatewayRolesWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	d, ctx := h.Daemon, context.Background()
	h.issue(t, "root-admin", "admin")
	h.issue(t, "rita", "readonly")
	h.issue(t, "dev", "developer")
	h.issue(t, "bob", "developer")
	containerFlags := h.issue(t, "ci", "readonly", "--for-container")
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	importImage(t, d, "dockercli:1", map[string]string{"docker": h.docker})

	as := func(name string, args ...string) (string, error) { return h.as(t, name, args...) }
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
		assert.Contains(t, out, "dtls-gateway", "%s: docker %s: not the gateway's refusal", name, strings.Join(args, " "))
		assert.Contains(t, out, want, "%s: docker %s", name, strings.Join(args, " "))
	}

	id := strings.TrimSpace(allowed("root-admin", "create", "tiny:1", "/x"))
	require.NotEmpty(t, id)
	assert.Contains(t, allowed("rita", "ps", "-a"), id[:12])
	denied("rita", "rita", "create", "tiny:1", "/x")
	denied("rita", "rita", "export", id)
	denied("rita", "rita", "cp", id+":/x", "-")
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
	importImage(t, d, "sleeper:1", map[string]string{"sleep": sleeperBinary(t)})
	allowed("dev", "run", "-d", "--name", "devbox", "sleeper:1", "/sleep")
	allowed("root-admin", "run", "-d", "--name", "privbox", "-v", "/etc:/host-etc:ro", "sleeper:1", "/sleep")
	allowed("dev", "exec", "-d", "-u", "0", "devbox", "/sleep")
	allowed("dev", "exec", "-d", "devbox", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "privbox", "/sleep")
	denied("dev", "was created by someone else", "exec", "-d", "-u", "0", "privbox", "/sleep")
	denied("dev", "privileged exec", "exec", "-d", "--privileged", "devbox", "/sleep")
	// The plugin's table of roles, with the gateway's policy file (the
	// unix socket's part is the plugin's alone: dockerd's socket does not
	// go through the gateway).
	rolesWithRealDocker(t, d, &authzPlugin{Policy: h.Policy}, h.Dir, allowed, denied, as)

	allowed("bob", "ps")
	_, stderr, code := h.dtls(t, "revoke", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	denied("bob", "revoked", "ps")
	allowed("dev", "ps")

	flags := strings.Fields(strings.TrimSpace(containerFlags))
	require.Contains(t, flags, "DOCKER_TLS_VERIFY=1", containerFlags)
	run := append(append([]string{"run", "--rm", "--network", "host"}, flags...), "dockercli:1")
	assert.Contains(t, allowed("root-admin", append(run, "/docker", "ps", "-a")...), id[:12])
	out, err := as("root-admin", append(run, "/docker", "create", "tiny:1", "/x")...)
	require.Error(t, err, out)
	assert.Contains(t, out, "dtls-gateway")

	// A request's record is written before it goes on, its response's
	// (status, duration, bytes) when it ends: the last may be a moment
	// behind.
	seen := map[string]bool{}
	waitFor(t, 5*time.Second, "the ci's denied create is recorded", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{})
		require.NoError(t, err)
		for _, r := range recs {
			seen[r.User+" "+r.Decision+" "+r.Method+" "+r.Path] = true
			if r.User == "dev" && r.Path == "/containers/create" && r.Decision == "allow" && r.Phase == authz.PhaseResponse {
				assert.Equal(t, http.StatusCreated, r.Status)
				assert.NotEmpty(t, r.Issuer)
				assert.Positive(t, r.BytesIn)
			}
		}
		return seen["ci deny POST /containers/create"]
	})
	for _, want := range []string{
		"root-admin allow POST /containers/create",
		"rita allow GET /containers/json",
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

	// A broken policy denies every request, saying why.
	require.NoError(t, os.WriteFile(h.Policy, []byte("{ not json"), 0o644))
	waitFor(t, 5*time.Second, "the broken policy denies", func() bool {
		out, err := as("root-admin", "ps")
		return err != nil && strings.Contains(out, "policy")
	})
}

// TestGatewayStreamsWithRealDocker: the streams the plugin never sees go
// through the gateway whole: 'docker exec -i' echoes 10 MB of stdin byte
// for byte, 'docker exec -it' runs with a terminal, attach, logs -f,
// events, cp both ways, and a classic build.
func TestGatewayStreamsWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "root-admin", "admin")
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	allowed := func(name string, args ...string) string {
		t.Helper()
		out, err := h.as(t, name, args...)
		require.NoError(t, err, "%s: docker %s: %s", name, strings.Join(args, " "), out)
		return out
	}
	allowed("dev", "run", "-d", "--name", "box", "tool:1", "/t", "sleep")

	// 10 MB through exec's stdin and back.
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	cmd := h.command(t, "dev", "exec", "-i", "box", "/t", "cat")
	cmd.Stdin = bytes.NewReader(data)
	var got, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &got, &errOut
	start := time.Now()
	require.NoError(t, cmd.Run(), errOut.String())
	t.Logf("10 MB through docker exec -i: %v", time.Since(start))
	require.Equal(t, len(data), got.Len())
	assert.True(t, bytes.Equal(data, got.Bytes()), "the echo differs from stdin")

	// A terminal: script(1) gives the CLI a pty.
	cmd = exec.Command("script", "-qec", h.docker+" exec -it box /t tty", "/dev/null")
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir()}, h.env("dev")...)
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "tty=true")
	assert.Contains(t, string(out), "got HELLO")

	// logs -f: lines arrive while the container runs.
	allowed("dev", "run", "-d", "--name", "tick", "tool:1", "/t", "ticker")
	cmd = h.command(t, "dev", "logs", "-f", "tick")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	for i := range 5 {
		require.True(t, sc.Scan(), "logs -f ended: %v", sc.Err())
		assert.Equal(t, fmt.Sprintf("tick %d", i), sc.Text())
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// events: a start arrives as it happens.
	cmd = h.command(t, "dev", "events", "--filter", "type=container", "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}")
	stdout, err = cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitFor(t, 10*time.Second, "the events stream is open", func() bool { return eventsOpen(h) })
	allowed("dev", "run", "-d", "--name", "late", "tool:1", "/t", "sleep")
	select {
	case name := <-lines:
		assert.Equal(t, "late", name)
	case <-time.After(10 * time.Second):
		t.Fatal("no start event within 10s")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// attach: stdin in, stdout out.
	allowed("dev", "run", "-d", "-i", "--name", "att", "tool:1", "/t", "cat")
	cmd = h.command(t, "dev", "attach", "att")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err = cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	_, err = io.WriteString(stdin, "through attach\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "through attach\n", line)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// cp both ways (admin: docker cp is admin's only).
	src := filepath.Join(t.TempDir(), "f.txt")
	require.NoError(t, os.WriteFile(src, []byte("copied in and out\n"), 0o644))
	allowed("root-admin", "cp", src, "box:/f.txt")
	back := filepath.Join(t.TempDir(), "back.txt")
	allowed("root-admin", "cp", "box:/f.txt", back)
	b, err := os.ReadFile(back)
	require.NoError(t, err)
	assert.Equal(t, "copied in and out\n", string(b))

	// A classic build: the context streams after the decision.
	ctxDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM tool:1\nCOPY f.txt /f.txt\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "f.txt"), []byte("built\n"), 0o644))
	assert.Contains(t, allowed("root-admin", "build", "-t", "built:1", ctxDir), "Successfully tagged built:1")
	out2, err := h.as(t, "dev", "build", "-t", "built:2", ctxDir)
	require.Error(t, err, out2)
	assert.Contains(t, out2, "needs the build capability")
}

// eventsOpen reports whether dockerd has an events listener (GET /info
// NEventsListener): the gateway's forwarded GET /events.
func eventsOpen(h *gatewayHost) bool {
	resp, err := h.Daemon.Client().Get("http://docker/info")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var info struct{ NEventsListener int }
	return json.NewDecoder(resp.Body).Decode(&info) == nil && info.NEventsListener > 0
}

// TestGatewayRevocationCutsStreams: 'dtls revoke' ends the revoked
// holder's open 'docker exec -i ... cat' within a second, and another
// holder's stream goes on.
// catStream is a 'docker exec -i NAMEbox /t cat' through the gateway,
// open: a line written comes back.
type catStream struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	ended chan time.Time
}

// openCat opens name's cat stream in its container NAMEbox.
func (h *gatewayHost) openCat(t *testing.T, name string) *catStream {
	t.Helper()
	s := &catStream{cmd: h.command(t, name, "exec", "-i", name+"box", "/t", "cat"), ended: make(chan time.Time, 1)}
	var err error
	s.in, err = s.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	s.out = bufio.NewReader(stdout)
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	// The stream is open when a line comes back.
	s.echo(t, "ping\n")
	go func() { _ = s.cmd.Wait(); s.ended <- time.Now() }()
	return s
}

// echo writes line and checks that it comes back.
func (s *catStream) echo(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(s.in, line)
	require.NoError(t, err)
	got, err := s.out.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, line, got)
}

// endsWithin fails unless the stream ends within d of since.
func (s *catStream) endsWithin(t *testing.T, who string, since time.Time, d time.Duration) {
	t.Helper()
	select {
	case at := <-s.ended:
		t.Logf("%s's stream ended %v after the revocation", who, at.Sub(since))
		assert.Less(t, at.Sub(since), d)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s's stream still open 5s after the revocation", who)
	}
}

// catStreams gives each name a developer's bundle, a container NAMEbox
// of the tool image, and an open cat stream in it.
func (h *gatewayHost) catStreams(t *testing.T, names ...string) []*catStream {
	t.Helper()
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	var out []*catStream
	for _, n := range names {
		h.issue(t, n, "developer")
		o, err := h.as(t, n, "run", "-d", "--name", n+"box", "tool:1", "/t", "sleep")
		require.NoError(t, err, o)
	}
	for _, n := range names {
		out = append(out, h.openCat(t, n))
	}
	return out
}

// waitRevokedCut waits for the audit record of the cut of a connection
// of user's for a revoked certificate.
func (h *gatewayHost) waitRevokedCut(t *testing.T, user string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the cut of "+user+"'s revoked certificate's connection is recorded", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: user})
		require.NoError(t, err)
		for _, r := range recs {
			if r.Phase == "session" && r.Decision == "deny" && strings.Contains(r.Reason, "revoked") {
				return true
			}
		}
		return false
	})
}

func TestGatewayRevocationCutsStreams(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	s := h.catStreams(t, "bob", "dev")
	bob, dev := s[0], s[1]
	_, stderr, code := h.dtls(t, "revoke", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	bob.endsWithin(t, "bob", time.Now(), time.Second)
	dev.echo(t, "still here\n")
	select {
	case <-dev.ended:
		t.Fatal("dev's stream ended")
	default:
	}
	h.waitRevokedCut(t, "bob")
}

// TestGatewayRenewalKeepsStreams: a renewal supersedes bob's certificate,
// which is refused from its next request on, but his open stream goes on
// (his holder renewed, nobody took access away); carl's revocation, cut
// in the watcher's pass after it, shows the superseded certificate was
// looked at. Revoking bob by name then revokes the superseded
// certificate too, and cuts the stream it holds.
func TestGatewayRenewalKeepsStreams(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	s := h.catStreams(t, "bob", "carl")
	bob, carl := s[0], s[1]
	// The certificate bob's stream holds, kept aside: the renewal
	// replaces the bundle's files.
	old := filepath.Join(h.Bundles, "bob-old")
	require.NoError(t, os.CopyFS(old, os.DirFS(filepath.Join(h.Bundles, "bob"))))
	_, stderr, code := h.dtls(t, "renew", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	oldEnv := append(h.env("bob"), "DOCKER_CERT_PATH="+old)
	waitFor(t, 5*time.Second, "bob's superseded certificate is refused", func() bool {
		out, err := runDocker(t, h.docker, oldEnv, "ps")
		return err != nil && strings.Contains(out, "superseded")
	})
	out, err := h.as(t, "bob", "ps")
	require.NoError(t, err, "bob's renewed certificate: %s", out)
	_, stderr, code = h.dtls(t, "revoke", "carl", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	carl.endsWithin(t, "carl", time.Now(), time.Second)
	bob.echo(t, "still here after the renewal\n")
	select {
	case <-bob.ended:
		t.Fatal("bob's stream ended after his renewal")
	default:
	}

	_, stderr, code = h.dtls(t, "revoke", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	bob.endsWithin(t, "bob", time.Now(), time.Second)
	h.waitRevokedCut(t, "bob")
}

// TestGatewayReloadsCertificates: 'dtls renew --server' replaces the
// server certificate files; a new connection gets the new certificate
// within a second, and a connection opened before keeps working, without
// a restart of anything.
func TestGatewayReloadsCertificates(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	bundle := filepath.Join(h.Bundles, "dev")
	pair, err := tls.LoadX509KeyPair(filepath.Join(bundle, "cert.pem"), filepath.Join(bundle, "key.pem"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(bundle, "ca.pem"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"}
	addr := fmt.Sprintf("127.0.0.1:%d", h.Port)
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", addr, cfg)
		require.NoError(t, err)
		return c
	}
	ping := func(c *tls.Conn) int {
		_, err := io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	serialOf := func(c *tls.Conn) string { return pki.Serial(c.ConnectionState().PeerCertificates[0]) }

	old := dial()
	defer old.Close()
	require.Equal(t, http.StatusOK, ping(old))
	before := serialOf(old)
	require.Equal(t, serialOfFile(t, filepath.Join(h.Certs, "server-cert.pem")), before)

	_, stderr, code := h.dtls(t, "renew", "--server", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	renewed := time.Now()
	after := serialOfFile(t, filepath.Join(h.Certs, "server-cert.pem"))
	require.NotEqual(t, before, after)
	took := waitFor(t, 5*time.Second, "a new connection gets the renewed certificate", func() bool {
		c := dial()
		defer c.Close()
		return serialOf(c) == after
	})
	t.Logf("the renewed certificate served %v after the renewal", took)
	assert.Less(t, time.Since(renewed), 2*time.Second)
	assert.Less(t, took, time.Second)
	// The connection opened before goes on, with its certificate.
	assert.Equal(t, http.StatusOK, ping(old))
	assert.Equal(t, before, serialOf(old))
}

// TestGatewayProtectsItsOwnPaths: wherever the gateway's per-container
// sockets, local socket and recordings are (here in a directory under
// /tmp, which no default rule protects), a developer may not bind-mount
// them, nor a directory holding them: the one would hand a container
// another role, the other what people typed.
func TestGatewayProtectsItsOwnPaths(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	require.NoError(t, h.Daemon.TinyImage(t.Context(), "tiny:1"))
	// Outside h.Dir, which holds the trail and so is protected already,
	// each a bind root, as an admin could have made them: a developer may
	// mount a bind root, but not the gateway's own paths.
	other := t.TempDir()
	local := filepath.Join(other, "local", "docker.sock")
	free := filepath.Join(filepath.Dir(other), "free")
	mounts := []string{filepath.Dir(local), filepath.Join(other, "sockets"), filepath.Join(other, "sessions"), other}
	roots, err := json.Marshal(append([]string{free}, mounts...))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly", "bind_roots": `+string(roots)+`}`+"\n"), 0o644))
	g := secondGateway(t, h, "--local-socket", local, "--audit-log", filepath.Join(h.Dir, "second.log"),
		"--sockets-dir", filepath.Join(other, "sockets"), "--sessions-dir", filepath.Join(other, "sessions"))
	// A bind root beside them is not protected: it is refused only as
	// any bind root on a file system without nosuid,nodev is (the sandbox's
	// /tmp), which also shows the policy with them is read.
	require.NoError(t, os.Mkdir(free, 0o755))
	waitFor(t, 5*time.Second, "the policy with the bind roots is read", func() bool {
		out, _ := g.as(t, "dev", "create", "-v", free+":/x", "tiny:1")
		return strings.Contains(out, "the bind root "+free+" cannot be mounted: its file system is not mounted nosuid,nodev")
	})
	for _, src := range mounts {
		out, err := g.as(t, "dev", "run", "--rm", "-v", src+":/x", "tiny:1")
		require.Error(t, err, "-v %s:/x: %s", src, out)
		assert.Contains(t, out, "authorization denied by dtls-gateway", src)
		assert.Contains(t, out, "a protected host path", src)
	}
}
