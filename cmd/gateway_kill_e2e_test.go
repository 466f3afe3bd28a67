package cmd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
)

// tlsConfig is the TLS configuration of name's bundle, as the Docker CLI
// makes it from DOCKER_CERT_PATH.
func (h *gatewayHost) tlsConfig(t *testing.T, name string) *tls.Config {
	t.Helper()
	bundle := filepath.Join(h.Bundles, name)
	pair, err := tls.LoadX509KeyPair(filepath.Join(bundle, "cert.pem"), filepath.Join(bundle, "key.pem"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(bundle, "ca.pem"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"}
}

// client is an HTTP client of the gateway with name's bundle.
func (h *gatewayHost) client(t *testing.T, name string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: h.tlsConfig(t, name)}}
}

// url is the gateway's URL of an API path.
func (h *gatewayHost) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", h.Port, path)
}

// startGatewayAgain starts 'dtls gateway serve' again with the flags it
// was first started with and extra ones (a flag given twice: the last
// wins), once the process before has exited, and waits until it listens.
// The harness's cleanup stops the new one.
func (h *gatewayHost) startGatewayAgain(t *testing.T, extra ...string) {
	t.Helper()
	require.NotNil(t, h.cmd.ProcessState, "the gateway before is still running")
	h.launch(t, exec.Command(h.exe, append(append([]string{}, h.cmd.Args[1:]...), extra...)...))
}

// launch starts cmd as the host's gateway, its output in h.out, and
// waits until the port accepts connections.
func (h *gatewayHost) launch(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = h.out, h.out
	require.NoError(t, cmd.Start())
	h.cmd = cmd
	waitFor(t, 20*time.Second, "the gateway listens", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stopGateway stops the gateway process (SIGTERM) and waits for it.
func (h *gatewayHost) stopGateway(t *testing.T) {
	t.Helper()
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGTERM))
	_ = h.cmd.Wait()
}

// killLoad is what the parallel callers of TestGatewayKillMidCalls did:
// calls answered before the kill, by kind.
type killLoad struct {
	answered atomic.Int64
	byStatus sync.Map // "kind status" -> *atomic.Int64
	echoes   atomic.Int64
	// streamsEchoing is how many streams have had a line echoed: each
	// has a recording once it has.
	streamsEchoing atomic.Int64
}

func (l *killLoad) count(kind string, status int) {
	v, _ := l.byStatus.LoadOrStore(fmt.Sprintf("%s %d", kind, status), new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	l.answered.Add(1)
}

func (l *killLoad) seen(key string) int64 {
	if v, ok := l.byStatus.Load(key); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// TestGatewayKillMidCalls: the gateway killed with SIGKILL in the middle
// of 50 parallel callers (allowed and denied lists, allowed and
// privileged creates, 'docker exec -i ... cat' streams): every container
// dockerd holds was created by a call the trail shows as allowed before it
// went on, no denied create reached dockerd, dockerd is untouched (same
// pid, answering on its socket, 'docker ps' on it works), the trail's
// chain holds (a line cut by the kill is marked when the gateway starts
// again), and the gateway started again with the same flags serves.
func TestGatewayKillMidCalls(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	// "blind" may not list containers: a denied GET.
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly", "roles": {"blind": {"base": "readonly", "deny": ["GET /containers/json"]}}}`+"\n"), 0o644))
	h.issue(t, "dev", "developer")
	h.issue(t, "rita", "readonly")
	h.issue(t, "blind", "blind", "--policy", h.Policy)
	require.NoError(t, h.Daemon.TinyImage(t.Context(), "tiny:1"))
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	out, err := h.as(t, "dev", "run", "-d", "--name", "box", "tool:1", "/t", "sleep")
	require.NoError(t, err, out)
	dockerdPid := h.Daemon.Pid
	before := dockerContainers(t, h)
	// (Events have whole seconds: box's create may be among them.)
	creates := watchCreates(t, h, "box")
	require.Len(t, before, 1)
	clients := map[string]*http.Client{"dev": h.client(t, "dev"), "rita": h.client(t, "rita"), "blind": h.client(t, "blind")}
	waitFor(t, 5*time.Second, "the policy with the blind role is read", func() bool {
		resp, err := clients["blind"].Get(h.url("/v1.41/containers/json"))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode == http.StatusForbidden
	})

	plain, priv := `{"Image":"tiny:1","Cmd":["/x"]}`, `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":{"Privileged":true}}`
	type caller struct {
		kind, who, method, body, prefix string
		n                               int
	}
	callers := []caller{
		{"list", "dev", http.MethodGet, "", "", 10},
		{"list", "rita", http.MethodGet, "", "", 8},
		{"list-denied", "blind", http.MethodGet, "", "", 6},
		{"create", "dev", http.MethodPost, plain, "k", 10},
		{"create-privileged", "dev", http.MethodPost, priv, "p", 8},
		{"create-readonly", "rita", http.MethodPost, plain, "r", 4},
	}
	const streams = 4
	load := &killLoad{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The streams: each echoes a line at a time until the gateway dies.
	ended := make(chan error, streams)
	for s := range streams {
		cmd := h.command(t, "dev", "exec", "-i", "box", "/t", "cat")
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		go func() {
			br := bufio.NewReader(stdout)
			for i := 0; ; i++ {
				want := fmt.Sprintf("stream %d line %d\n", s, i)
				if _, err := io.WriteString(in, want); err != nil {
					break
				}
				got, err := br.ReadString('\n')
				if err != nil {
					break
				}
				if got != want {
					ended <- fmt.Errorf("stream %d: got %q, want %q", s, got, want)
					_ = cmd.Wait()
					return
				}
				if i == 0 {
					load.streamsEchoing.Add(1)
				}
				load.echoes.Add(1)
			}
			_ = cmd.Wait()
			ended <- nil
		}()
	}
	// The load starts once every stream echoes: a stream's exec is slow
	// to start next to the load's thousands of calls a second.
	waitFor(t, 60*time.Second, "every stream echoes", func() bool { return load.streamsEchoing.Load() == streams })
	echoed := load.echoes.Load()
	workers := streams
	for _, c := range callers {
		for w := range c.n {
			workers++
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					uri, body := "/v1.41/containers/json?all=1", io.Reader(nil)
					if c.body != "" {
						uri, body = fmt.Sprintf("/v1.41/containers/create?name=%s-%d-%d", c.prefix, w, i), strings.NewReader(c.body)
					}
					req, err := http.NewRequest(c.method, h.url(uri), body)
					if err != nil {
						panic(err)
					}
					req.Header.Set("Content-Type", "application/json")
					resp, err := clients[c.who].Do(req)
					if err != nil {
						// The gateway is gone: no answer to this call.
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					load.count(c.kind, resp.StatusCode)
				}
			})
		}
	}
	require.Equal(t, 50, workers)

	// Killed in the middle: once creates of both kinds and more of the
	// streams' echoes went through, while every caller is still calling.
	waitFor(t, 60*time.Second, "calls of every kind answered", func() bool {
		return load.seen("create 201") >= 5 && load.seen("create-privileged 403") >= 5 && load.seen("list-denied 403") >= 5 &&
			load.seen("list 200") >= 10 && load.seen("create-readonly 403") >= 2 && load.echoes.Load() >= echoed+2*streams
	})
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	_ = h.cmd.Wait()
	answered := load.answered.Load()
	close(stop)
	wg.Wait()
	t.Logf("killed after %d answered calls and %d echoes; callers all stopped %v after the kill", answered, load.echoes.Load(), time.Since(killed))
	// Every answer before the kill was the one its kind should get.
	want := map[string]bool{"list 200": true, "list-denied 403": true, "create 201": true, "create-privileged 403": true, "create-readonly 403": true}
	load.byStatus.Range(func(k, v any) bool {
		assert.Truef(t, want[k.(string)], "%d calls answered %s", v.(*atomic.Int64).Load(), k)
		return true
	})
	for range streams {
		select {
		case err := <-ended:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("an exec stream still runs 10s after the gateway was killed")
		}
	}

	// Every container dockerd holds was created by an allowed call,
	// recorded before it went on; no denied create is there.
	allowed := allowedCreates(t, h.Audit)
	// dockerd finishes the creates that were on their way when the
	// gateway died: its list and its create events agree once it has.
	var after map[string]dockerContainer
	var events []string
	waitFor(t, 10*time.Second, "dockerd's list of containers and its create events agree", func() bool {
		events = creates()
		after = dockerContainers(t, h)
		return len(after)-len(before) == len(events)
	})
	created := 0
	for id, c := range after {
		if _, ok := before[id]; ok {
			continue
		}
		created++
		assert.Truef(t, allowed[c.Name], "container %s (%s) is in dockerd without an allow record of its create", c.Name, id)
		assert.Truef(t, strings.HasPrefix(c.Name, "k-"), "container %s: a denied kind of create reached dockerd", c.Name)
		assert.False(t, c.Privileged, "container %s is privileged", c.Name)
	}
	assert.GreaterOrEqual(t, created, 5)
	// dockerd's own account, its events: every container it created
	// since the load began is one the trail allowed.
	for _, name := range events {
		assert.Truef(t, allowed[name], "dockerd's create event of %s has no allow record", name)
	}
	for name := range allowed {
		if name == "box" {
			continue // the streams' container, made before the load
		}
		assert.Truef(t, strings.HasPrefix(name, "k-"), "the trail allowed the create of %s", name)
	}
	t.Logf("%d containers created, %d creates allowed in the trail", created, len(allowed))

	// dockerd is untouched: the same process, answering on its socket,
	// and the Docker CLI works there directly.
	assert.Equal(t, dockerdPid, h.Daemon.Pid)
	assert.NoError(t, syscall.Kill(dockerdPid, 0), "dockerd (pid %d) is gone", dockerdPid)
	out, err = runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, "ps", "--format", "{{.Names}}")
	require.NoError(t, err, out)
	assert.Contains(t, out, "box")

	// The chain holds; a last line cut by the kill is the only thing
	// --verify may find, until the gateway marks it at its next start.
	verify := func() (authz.Verification, int) {
		stdout, stderr, code := h.dtls(t, "authz", "log", "--verify", "--audit-log", h.Audit, "--output", "json")
		var v authz.Verification
		require.NoError(t, json.Unmarshal([]byte(stdout), &v), "%s\n%s", stdout, stderr)
		return v, code
	}
	v, code := verify()
	if v.Break != nil {
		assert.Equal(t, "torn", v.Break.Kind, "the trail's chain is broken: %+v", v.Break)
		assert.Equal(t, lineCount(t, h.Audit), v.Break.At.Line, "a break before the last line: %+v", v.Break)
		assert.Equal(t, 1, code)
	} else {
		assert.Equal(t, 0, code)
	}
	t.Logf("trail after the kill: %d records, break %+v", v.Records, v.Break)

	// The streams' recordings, cut by the kill, are listed and play up to
	// where they were cut.
	stdout, stderr, code := h.dtls(t, "sessions", "ls", "--sessions-dir", h.Sessions, "--output", "json")
	require.Equal(t, 0, code, stderr)
	var recordings []recording.Summary
	require.NoError(t, json.Unmarshal([]byte(stdout), &recordings), stdout)
	require.Len(t, recordings, streams, stdout)
	for _, r := range recordings {
		_, stderr, code := h.dtls(t, "sessions", "play", r.DTLS.ID, "--sessions-dir", h.Sessions, "--speed", "0")
		assert.Equal(t, 0, code, "sessions play %s: %s", r.DTLS.ID, stderr)
	}

	// Started again with the same flags, it serves, and the chain holds.
	h.startGatewayAgain(t)
	resp, err := h.client(t, "dev").Get(h.url("/v1.41/containers/json"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	out, err = h.as(t, "dev", "exec", "box", "/t", "tty")
	require.NoError(t, err, out)
	assert.Contains(t, out, "tty=false")
	v, code = verify()
	assert.Nil(t, v.Break)
	assert.Equal(t, 0, code)
}

// dockerContainer is what TestGatewayKillMidCalls checks of a container,
// asked of dockerd on its socket.
type dockerContainer struct {
	Name       string
	Privileged bool
}

func dockerContainers(t *testing.T, h *gatewayHost) map[string]dockerContainer {
	t.Helper()
	resp, err := h.Daemon.Client().Get("http://docker/containers/json?all=1")
	require.NoError(t, err)
	defer resp.Body.Close()
	var list []struct {
		ID    string `json:"Id"`
		Names []string
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	out := map[string]dockerContainer{}
	for _, c := range list {
		r, err := h.Daemon.Client().Get("http://docker/containers/" + c.ID + "/json")
		require.NoError(t, err)
		var in struct {
			Name       string
			HostConfig struct{ Privileged bool }
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		r.Body.Close()
		out[c.ID] = dockerContainer{Name: strings.TrimPrefix(in.Name, "/"), Privileged: in.HostConfig.Privileged}
	}
	return out
}

// watchCreates follows dockerd's create events from now on, and returns
// the names of the containers they say it created so far, but skip's.
// Followed live, not asked for afterwards: dockerd keeps only its last
// 256 events (moby daemon/events, eventsLimit), and a fast run creates
// more. Since now, to the nanosecond, rather than from the subscription:
// dockerd answers before it subscribes (moby
// api/server/router/system, getEvents).
func watchCreates(t *testing.T, h *gatewayHost, skip string) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	q := url.Values{"since": {fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())},
		"filters": {`{"type":["container"],"event":["create"]}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?"+q.Encode(), nil)
	require.NoError(t, err)
	resp, err := h.Daemon.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var (
		mu    sync.Mutex
		names []string
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Actor struct{ Attributes map[string]string }
			}
			if dec.Decode(&ev) != nil {
				return
			}
			if n := ev.Actor.Attributes["name"]; n != skip {
				mu.Lock()
				names = append(names, n)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}

// allowedCreates are the names of the containers whose create the trail
// at path shows as allowed, in a request record (written before the
// request went on).
func allowedCreates(t *testing.T, path string) map[string]bool {
	t.Helper()
	recs, err := authz.ReadAudit(path, authz.AuditFilter{})
	require.NoError(t, err)
	out := map[string]bool{}
	for _, r := range recs {
		if r.Phase != authz.PhaseRequest || r.Decision != authz.DecisionAllow || r.Path != "/containers/create" {
			continue
		}
		u, err := url.ParseRequestURI(r.URI)
		require.NoError(t, err)
		out[u.Query().Get("name")] = true
	}
	return out
}

// lineCount is the number of lines of a file, a last one without an end
// included.
func lineCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// startGatewayActivated starts 'dtls gateway serve' with the flags it
// was first started with, as systemd's socket activation does: the
// listening socket f is its file descriptor 3, LISTEN_FDS=1 and
// LISTEN_PID its own pid (sh's exec keeps the pid).
func (h *gatewayHost) startGatewayActivated(t *testing.T, f *os.File, args []string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, h.exe}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	require.NoError(t, cmd.Start())
	h.cmd = cmd
}

// TestGatewaySocketActivationKillRestart: with the port held by systemd's
// socket (here the test's listener, passed as LISTEN_FDS), a gateway
// killed with SIGKILL leaves the port accepting: a client that connects
// while no gateway runs waits in the backlog, and its request is decided
// and answered by the gateway started again on the same socket; dockerd
// never notices.
func TestGatewaySocketActivationKillRestart(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	args := append([]string{}, h.cmd.Args[1:]...)
	h.stopGateway(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port))
	require.NoError(t, err)
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	require.NoError(t, err)
	defer f.Close()
	dev := h.client(t, "dev")
	ping := func() (int, error) {
		resp, err := dev.Get(h.url("/_ping"))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	h.startGatewayActivated(t, f, args)
	waitFor(t, 20*time.Second, "the activated gateway answers", func() bool {
		code, err := ping()
		return err == nil && code == http.StatusOK
	})
	assert.Contains(t, h.out.String(), "serving on 127.0.0.1:")
	dockerd := h.Daemon.Pid

	require.NoError(t, h.cmd.Process.Signal(syscall.SIGKILL))
	_ = h.cmd.Wait()
	// No gateway runs: the connection is accepted all the same (the
	// socket's backlog), the TLS handshake waits.
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), 5*time.Second)
	require.NoError(t, err, "the port refused a connection while the gateway was down")
	defer c.Close()
	answered := make(chan error, 1)
	go func() {
		tc := tls.Client(c, h.tlsConfig(t, "dev"))
		code, err := pingOn(tc, bufio.NewReader(tc))
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /_ping: %d", code)
		}
		answered <- err
	}()
	h.startGatewayActivated(t, f, args)
	select {
	case err := <-answered:
		assert.NoError(t, err, "the request made while the gateway was down")
	case <-time.After(30 * time.Second):
		t.Fatal("the request made while the gateway was down was not answered within 30s of its restart")
	}
	assert.Equal(t, dockerd, h.Daemon.Pid)
	assert.NoError(t, syscall.Kill(dockerd, 0))
	recs := readTrail(t, h.Audit)
	require.NotEmpty(t, recs)
	last := recs[len(recs)-1]
	assert.Equal(t, "dev", last.User)
	assert.Equal(t, "/_ping", last.Path)
}

// TestGatewayUnreadableInventoryDenies: a gateway whose inventory cannot
// be read (its state directory's database is not a database) starts and
// denies every request, saying why; dockerd is not asked.
func TestGatewayUnreadableInventoryDenies(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "root-admin", "admin")
	out, err := h.as(t, "root-admin", "ps")
	require.NoError(t, err, out)
	h.stopGateway(t)
	dbs, err := filepath.Glob(filepath.Join(h.State, "*.db"))
	require.NoError(t, err)
	require.NotEmpty(t, dbs, "no inventory database in %s", h.State)
	for _, db := range dbs {
		require.NoError(t, os.WriteFile(db, []byte("not a database\n"), 0o600))
	}
	trailBefore := len(readTrail(t, h.Audit))
	h.startGatewayAgain(t)
	out, err = h.as(t, "root-admin", "ps")
	require.Error(t, err, out)
	assert.Contains(t, out, "dtls-gateway")
	assert.Contains(t, out, "inventory")
	t.Logf("with its inventory unreadable: %s", strings.TrimSpace(out))
	for _, r := range readTrail(t, h.Audit)[trailBefore:] {
		assert.NotEqual(t, authz.DecisionAllow, r.Decision, "%s %s allowed", r.Method, r.URI)
	}
}
