package cmd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// recordingSocket is a unix socket between the gateway and dockerd: it
// relays each connection to dockerd's socket and keeps every byte the
// gateway sent upstream, and dockerd's answers, per connection, with the
// order of the gateway's writes across connections.
type recordingSocket struct {
	Path string
	l    net.Listener
	mu   sync.Mutex
	// sent and answered are each connection's bytes, from the gateway
	// and from dockerd; marks where each of the gateway's writes began,
	// numbered across connections.
	sent, answered []*bytes.Buffer
	marks          [][]mark
	writes         int
	open           int
	conns          []net.Conn // both ends of every relayed connection
	wg             sync.WaitGroup
}

// mark is where a write of the gateway began in its connection's bytes,
// and its number among all the gateway's writes.
type mark struct{ off, seq int }

func newRecordingSocket(t *testing.T, path, upstream string) *recordingSocket {
	t.Helper()
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	r := &recordingSocket{Path: path, l: l}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", upstream)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			i := len(r.sent)
			r.sent, r.answered = append(r.sent, &bytes.Buffer{}), append(r.answered, &bytes.Buffer{})
			r.marks = append(r.marks, nil)
			r.conns = append(r.conns, c, up)
			r.open++
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.relay(c, up, i)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		// A test that ended early leaves the gateway's kept-alive
		// connections open: cut.
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// recordWriter keeps what one side of connection i wrote, under the
// recording socket's lock; the gateway's side (sent) with its marks.
type recordWriter struct {
	r    *recordingSocket
	i    int
	sent bool
}

func (w recordWriter) Write(b []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if !w.sent {
		return w.r.answered[w.i].Write(b)
	}
	w.r.marks[w.i] = append(w.r.marks[w.i], mark{off: w.r.sent[w.i].Len(), seq: w.r.writes})
	w.r.writes++
	return w.r.sent[w.i].Write(b)
}

// relay copies connection i both ways until both sides are done, keeping
// what each sent: the gateway's bytes before dockerd gets them, so that
// their order across connections is the order dockerd got them in.
func (r *recordingSocket) relay(gw, up net.Conn, i int) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(io.MultiWriter(recordWriter{r, i, true}, up), gw)
		_ = up.(*net.UnixConn).CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(io.MultiWriter(gw, recordWriter{r, i, false}), up)
		_ = gw.(*net.UnixConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
	gw.Close()
	up.Close()
	r.mu.Lock()
	r.open--
	r.mu.Unlock()
}

// idle reports whether every relayed connection has ended.
func (r *recordingSocket) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open == 0
}

// forwarded is one request dockerd received.
type forwarded struct {
	Method, URI string
	Body        []byte
	Lookup      bool // the policy engine's own lookup (X-Dtls-Authz-Lookup)
	// Stream is what followed on the connection once dockerd answered
	// 101: the bytes of the hijacked stream, which dockerd reads as a
	// stream, never as requests.
	Stream []byte
	seq    int // the number of the gateway's write that began it
}

// countingBytes is a reader of bytes that says how many it gave.
type countingBytes struct {
	r *bytes.Reader
	n int
}

func (c *countingBytes) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// requests parses every connection's bytes as HTTP/1.1 requests, one
// after the other, each with dockerd's answer: anything that is not a
// whole request is an error; after a 101 the rest is the stream's. They
// come in the order dockerd got them.
func (r *recordingSocket) requests(t *testing.T) []forwarded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []forwarded
	for i, buf := range r.sent {
		cb := &countingBytes{r: bytes.NewReader(buf.Bytes())}
		br := bufio.NewReader(cb)
		answers := bufio.NewReader(bytes.NewReader(r.answered[i].Bytes()))
		for {
			if _, err := br.Peek(1); errors.Is(err, io.EOF) {
				break
			}
			at := cb.n - br.Buffered()
			seq := 0
			for _, m := range r.marks[i] {
				if m.off <= at {
					seq = m.seq
				}
			}
			req, err := http.ReadRequest(br)
			require.NoError(t, err, "connection %d: bytes that are not a request reached dockerd: %q", i, tailString(buf.String(), 2000))
			body, err := io.ReadAll(req.Body)
			require.NoError(t, err, "connection %d: %s %s: a body cut short", i, req.Method, req.RequestURI)
			f := forwarded{Method: req.Method, URI: req.RequestURI, Body: body, Lookup: req.Header.Get("X-Dtls-Authz-Lookup") != "", seq: seq}
			resp, err := http.ReadResponse(answers, req)
			require.NoError(t, err, "connection %d: %s %s: dockerd's answer", i, req.Method, req.RequestURI)
			if resp.StatusCode == http.StatusSwitchingProtocols {
				f.Stream, _ = io.ReadAll(br)
				out = append(out, f)
				break
			}
			_, err = io.ReadAll(resp.Body)
			require.NoError(t, err, "connection %d: %s %s: dockerd's answer", i, req.Method, req.RequestURI)
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].seq < out[b].seq })
	return out
}

// rawExchange sends data on a new TLS connection to the gateway as name
// and reads up to n answers, until the gateway closes the connection;
// it returns their status codes.
func (h *gatewayHost) rawExchange(t *testing.T, name, data string, n int) []int {
	t.Helper()
	c, err := tlsDial(h, t, name)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	// Written on its own: the gateway may answer, and close, before it
	// has read everything.
	go func() { _, _ = io.WriteString(c, data) }()
	br := bufio.NewReader(c)
	var got []int
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	return got
}

func tlsDial(h *gatewayHost, t *testing.T, name string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), h.tlsConfig(t, name))
}

// TestGatewaySmugglingDifferential: hostile framings sent to the gateway
// over TLS (CL.TE and TE.CL with a hidden second request, two
// Content-Lengths, obfuscated Transfer-Encodings, pipelined requests, an
// HTTP/2 preface, absolute-form, "*" and authority-form targets, NUL and
// CR in a header, bodies over the limit or that dockerd reads as
// privileged, a stream start that dockerd refuses followed by a request,
// a request pipelined after an allowed exec start) while a recording
// socket sits between the gateway and dockerd: what dockerd received
// parses as whole requests, and they are exactly those the audit trail
// shows as allowed (method and request-target), each create's body
// exactly the one decided on; the policy engine's own lookups aside,
// nothing else, and no client bytes but an allowed stream's, after
// dockerd's 101.
func TestGatewaySmugglingDifferential(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	require.NoError(t, h.Daemon.TinyImage(t.Context(), "tiny:1"))
	// An exec already running, to start again: dockerd answers 409 on
	// the gateway's stream connection, which is then no stream.
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	out, err := h.as(t, "dev", "run", "-d", "--name", "box", "tool:1", "/t", "sleep")
	require.NoError(t, err, out)
	dev := h.client(t, "dev")
	resp, err := dev.Post(h.url("/v1.41/containers/box/exec"), "application/json", strings.NewReader(`{"Cmd":["/t","sleep"]}`))
	require.NoError(t, err)
	var execID struct {
		ID string `json:"Id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&execID))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	resp, err = dev.Post(h.url("/v1.41/exec/"+execID.ID+"/start"), "application/json", strings.NewReader(`{"Detach":true}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// And one to attach to, whose stdin cat echoes.
	resp, err = dev.Post(h.url("/v1.41/containers/box/exec"), "application/json",
		strings.NewReader(`{"Cmd":["/t","cat"],"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}`))
	require.NoError(t, err)
	var catExec struct {
		ID string `json:"Id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&catExec))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	rec := newRecordingSocket(t, filepath.Join(h.Dir, "rec.sock"), h.Daemon.Socket)
	h.stopGateway(t)
	trailBefore := len(readTrail(t, h.Audit))
	h.startGatewayAgain(t, "--docker", "unix://"+rec.Path, "--max-body", "65536")

	plain := `{"Image":"tiny:1","Cmd":["/x"]}`
	priv := `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":{"Privileged":true}}`
	chunked := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }
	create := func(name, framing, body string) string {
		return "POST /v1.41/containers/create?name=" + name + " HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n" + framing + "\r\n" + body
	}
	withCL := func(name, body string) string {
		return create(name, fmt.Sprintf("Content-Length: %d\r\n", len(body)), body)
	}
	hidden := withCL("smuggled", priv)
	list := "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
	// The body decided on, by the name of each create expected to reach
	// dockerd.
	bodies := map[string]string{"clte": plain, "pipelined": plain, "tabte": plain, "twoequal": plain, "foldte": plain, "chunkext": plain}
	for _, c := range []struct {
		name, data string
		want       []int
	}{
		// CL.TE: a front end that took Content-Length would read the
		// chunk's size line as the body and the rest as a request.
		{"CL.TE", create("clte", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunked(plain)) + hidden, []int{201, 403}},
		// TE.CL: a back end that took Content-Length would read the
		// size line as the body and the chunk's data, a privileged
		// create, as the next request.
		{"TE.CL", create("tecl", fmt.Sprintf("Transfer-Encoding: chunked\r\nContent-Length: %d\r\n", len(fmt.Sprintf("%x\r\n", len(hidden)))), chunked(hidden)), []int{403}},
		{"two Content-Lengths", create("twocl", fmt.Sprintf("Content-Length: %d\r\nContent-Length: 4\r\n", len(plain)), plain+hidden), []int{400}},
		{"chunked, identity", create("chunkid", "Transfer-Encoding: chunked, identity\r\n", chunked(plain)) + hidden, []int{501}},
		{"two Transfer-Encodings", create("twote", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", chunked(plain)) + hidden, []int{501}},
		{"xchunked", create("xchunked", "Transfer-Encoding: xchunked\r\n", chunked(plain)) + hidden, []int{501}},
		{"space before the colon", create("spacete", "Transfer-Encoding : chunked\r\n", chunked(plain)) + hidden, []int{400}},
		{"tab in Transfer-Encoding", create("tabte", "Transfer-Encoding:\tchunked\r\n", chunked(plain)), []int{201}},
		{"two equal Content-Lengths", create("twoequal", fmt.Sprintf("Content-Length: %d\r\nContent-Length: %d\r\n", len(plain), len(plain)), plain), []int{201}},
		{"a list in Content-Length", create("listcl", fmt.Sprintf("Content-Length: %d, %d\r\n", len(plain), len(plain)), plain+hidden), []int{400}},
		// net/http unfolds an obs-fold line (RFC 9112 section 5.2 allows
		// a server to): chunked; the request after it is one of its own.
		{"obs-fold Transfer-Encoding", create("foldte", "Transfer-Encoding:\r\n chunked\r\n", chunked(plain)) + hidden, []int{201, 403}},
		{"chunk extension", create("chunkext", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x;a=b\r\n%s\r\n0\r\n\r\n", len(plain), plain)), []int{201}},
		{"bad chunk size", create("badchunk", "Transfer-Encoding: chunked\r\n", "zz\r\n"+plain+"\r\n0\r\n\r\n") + hidden, []int{400}},
		// HTTP/1.0 has no chunked coding: net/http reads no body, the
		// create without one is denied, and the connection ends.
		{"chunked on HTTP/1.0", strings.Replace(create("http10", "Transfer-Encoding: chunked\r\n", chunked(plain)), "HTTP/1.1", "HTTP/1.0", 1) + hidden, []int{403}},
		{"Content-Length with a sign", create("signcl", fmt.Sprintf("Content-Length: +%d\r\n", len(plain)), plain), []int{400}},
		{"pipelined: allowed then denied", list + withCL("pipelined", plain) + withCL("pipepriv", priv) + list, []int{200, 201, 403, 200}},
		// An allowed stream that dockerd refuses (409: the exec runs
		// already): no stream, the next bytes are a request of their own.
		{"exec start refused by dockerd, then a request", "POST /v1.41/exec/" + execID.ID + "/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"Detach\":true}" + hidden, []int{409, 403}},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hidden, []int{400}},
		{"absolute-form", "GET http://docker/v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n", []int{400}},
		{"asterisk-form", "GET * HTTP/1.1\r\nHost: docker\r\n\r\n", []int{400}},
		// net/http answers "OPTIONS *" itself unless told not to: the
		// gateway refuses it, with a record, as any target not a path.
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: docker\r\n\r\n" + hidden, []int{400}},
		{"authority-form", "CONNECT docker:2375 HTTP/1.1\r\nHost: docker\r\n\r\n" + hidden, []int{400}},
		{"NUL in a header", "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nX-A: a\x00b\r\n\r\n" + hidden, []int{400}},
		{"CR in a header", "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nX-A: a\rb\r\n\r\n" + hidden, []int{400}},
		// Bodies that dockerd's encoding/json reads as privileged or
		// host-networked: field names in any case, under Unicode simple
		// folding (U+017F "ſ" is "s", U+212A Kelvin "K" is "k": dockerd
		// 20.10 here creates a privileged container from "HoſtConfig"),
		// escaped, the last of duplicate keys.
		{"lower-case keys", withCL("lower", `{"image":"tiny:1","cmd":["/x"],"hostconfig":{"privileged":true}}`), []int{403}},
		{"long s in HostConfig", withCL("longs", `{"Image":"tiny:1","Cmd":["/x"],"HoſtConfig":{"Privileged":true}}`), []int{403}},
		{"Kelvin sign in NetworkMode", withCL("kelvin", `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":{"NetworKMode":"host"}}`), []int{403}},
		{"escaped key", withCL("escaped", `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":{"Privil\u0065ged":true}}`), []int{403}},
		{"duplicate keys", withCL("dupkey", `{"Image":"tiny:1","Cmd":["/x"],"HostConfig":{"Privileged":false,"Privileged":true}}`), []int{403}},
		{"Expect: 100-continue", create("expect", fmt.Sprintf("Expect: 100-continue\r\nContent-Length: %d\r\n", len(priv)), priv), []int{100, 403}},
		// A body the policy does not read streams after the decision,
		// inside its own framing: dockerd reads it as the GET's body.
		{"a request in a GET's body", fmt.Sprintf("GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\n\r\n", len(hidden)) + hidden, []int{200}},
		{"bare LF lines", "GET /v1.41/containers/json HTTP/1.1\nHost: docker\n\n", []int{200}},
		{"body over the limit", withCL("big", `{"Image":"tiny:1","Env":["`+strings.Repeat("x", 70<<10)+`"]}`), []int{413}},
		{"chunked body over the limit", create("bigchunked", "Transfer-Encoding: chunked\r\n", chunked(`{"Image":"tiny:1","Env":["`+strings.Repeat("x", 70<<10)+`"]}`)), []int{413}},
	} {
		assert.Equal(t, c.want, h.rawExchange(t, "dev", c.data, len(c.want)), c.name)
	}

	// A request pipelined right after an allowed exec start goes into the
	// stream, as stdin: cat echoes it, dockerd never reads it as a
	// request.
	start := `{"Detach":false,"Tty":false}`
	c, err := tlsDial(h, t, "dev")
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(c, fmt.Sprintf("POST /v1.41/exec/%s/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"+
		"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s", catExec.ID, len(start), start)+list)
	require.NoError(t, err)
	cbr := bufio.NewReader(c)
	resp, err = http.ReadResponse(cbr, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.NoError(t, c.(*tls.Conn).CloseWrite())
	echoed, err := io.ReadAll(cbr)
	require.NoError(t, err)
	assert.Equal(t, list, demux(t, echoed), "cat's echo of the bytes after the exec start")
	c.Close()

	// The gateway stops (its connections to dockerd end): then the
	// recording is whole.
	h.stopGateway(t)
	waitFor(t, 10*time.Second, "the gateway's connections to dockerd end", rec.idle)
	var sent []string
	own := 0
	for _, f := range rec.requests(t) {
		if f.Lookup || gatewayInspect.MatchString(f.Method+" "+f.URI) {
			own++
			assert.Equal(t, http.MethodGet, f.Method, "a lookup that is not a GET: %s", f.URI)
			assert.Empty(t, f.Body, f.URI)
			continue
		}
		sent = append(sent, f.Method+" "+f.URI)
		if f.Method == http.MethodGet {
			// Only the GET sent with one has a body, its own, framed.
			want := ""
			if f.URI == "/v1.41/containers/json?all=1" {
				want = hidden
			}
			assert.Equal(t, want, string(f.Body), f.URI)
		}
		switch {
		case f.URI == "/v1.41/exec/"+catExec.ID+"/start":
			assert.Equal(t, start, string(f.Body), f.URI)
			assert.Equal(t, list, string(f.Stream), "the stream's bytes: the pipelined request, as stdin")
			continue
		case len(f.Stream) > 0:
			t.Errorf("%s %s: a stream: %q", f.Method, f.URI, f.Stream)
		}
		if strings.HasSuffix(f.URI, "/start") {
			assert.Equal(t, `{"Detach":true}`, string(f.Body), f.URI)
		} else if f.Method == http.MethodPost {
			name := strings.TrimPrefix(f.URI, "/v1.41/containers/create?name=")
			want, ok := bodies[name]
			if assert.True(t, ok, "a create reached dockerd: %s", f.URI) {
				assert.Equal(t, want, string(f.Body), "%s: not the body decided on", f.URI)
			}
		}
	}
	var allowed []string
	optionsRefused := false
	for _, r := range readTrail(t, h.Audit)[trailBefore:] {
		if r.Phase == authz.PhaseRequest && r.Decision == authz.DecisionAllow {
			allowed = append(allowed, r.Method+" "+r.URI)
		}
		optionsRefused = optionsRefused || (r.Method == http.MethodOptions && r.URI == "*" && r.Decision == authz.DecisionDeny)
	}
	assert.True(t, optionsRefused, "no record of the refused OPTIONS *")
	assert.Equal(t, allowed, sent, "dockerd received other requests than the gateway allowed, or in another order")
	t.Logf("dockerd received %d requests of the gateway's own (lookups, a recording's inspections) and %d of clients, all allowed in the trail:\n%s",
		own, len(sent), strings.Join(sent, "\n"))
}

// demux is the payload of Docker's multiplexed stream (8-byte frame
// headers: stream, 0, 0, 0, big-endian length), stdout and stderr
// together.
func demux(t *testing.T, b []byte) string {
	t.Helper()
	var out []byte
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 8, "a frame header cut short: %q", b)
		n := int(binary.BigEndian.Uint32(b[4:8]))
		require.GreaterOrEqual(t, len(b)-8, n, "a frame cut short: %q", b)
		out, b = append(out, b[8:8+n]...), b[8+n:]
	}
	return string(out)
}

// gatewayInspect is a request of the gateway's own: the inspection of an
// allowed exec or attach stream's exec and container for its recording
// (record.go streamMeta), unversioned, unlike every request the test
// sends.
var gatewayInspect = regexp.MustCompile(`^GET /(exec|containers)/[0-9a-f]{64}/json$`)

func readTrail(t *testing.T, path string) []authz.AuditRecord {
	t.Helper()
	recs, err := authz.ReadAudit(path, authz.AuditFilter{})
	require.NoError(t, err)
	return recs
}
