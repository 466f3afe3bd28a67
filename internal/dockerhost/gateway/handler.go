package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// call is one request through the gateway, and its audit record.
type call struct {
	start    time.Time
	caller   authz.Caller
	rec      authz.AuditRecord
	body     []byte // the whole body the decision read; nil when streamed
	in       *countingReader
	out      int64
	status   int
	answered bool // a response (or a hijack) began: a panic can no longer answer
	// recorded: the request's record is in the trail (written before the
	// request went on); finish then adds the response's.
	recorded bool
	// trailFailed: the trail could not take the request's record, which
	// was refused and written where it could be; finish adds nothing.
	trailFailed bool
}

// ServeHTTP identifies the caller, decides, and forwards what is allowed.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{start: time.Now()}
	defer g.finish(c)
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		_, c.rec = g.cfg.Engine.Internal(v, debug.Stack())
		c.rec.Rule = ruleInternal
		if !c.answered {
			g.refuse(w, c, http.StatusInternalServerError, "internal error: the request was not forwarded")
		}
	}()
	c.caller = g.identify(r)
	c.rec = baseRecord(c.caller)
	c.rec.Time, c.rec.Phase, c.rec.Method, c.rec.URI, c.rec.Decision = g.cfg.Engine.Now(), authz.PhaseRequest, r.Method, r.RequestURI, authz.DecisionDeny
	c.rec.Path, _ = authz.CanonicalPath(r.RequestURI)
	if why := malformed(r); why != "" {
		c.rec.Rule, c.rec.Reason = ruleMalformed, why
		g.refuse(w, c, http.StatusBadRequest, why)
		return
	}
	if !g.readBody(w, r, c) {
		return
	}
	v, rec := g.cfg.Engine.Decide(c.caller, r.Method, r.RequestURI, c.body, flatten(r.Header, c.body, r.ContentLength))
	c.rec = rec
	if !v.Allow {
		g.refuse(w, c, http.StatusForbidden, v.Msg)
		return
	}
	if hijacked(r.Method, c.rec.Path) {
		// hijack opens the stream's recording first, so that the
		// request's record can name it, then calls recordRequest.
		g.hijack(w, r, c)
		return
	}
	if !g.recordRequest(w, c) {
		return
	}
	g.forward(w, r, c)
}

// recordRequest puts the allowed request's record in the trail before the
// request goes on; a trail that cannot be written denies what changes
// something (Engine.Record), and the caller answers nothing more.
func (g *Gateway) recordRequest(w http.ResponseWriter, c *call) bool {
	ok, msg := g.cfg.Engine.Record(c.rec, true)
	c.recorded = true
	if !ok {
		// Record wrote it where it could, as a denial: finish adds nothing.
		c.trailFailed = true
		c.rec.Decision, c.rec.Rule, c.rec.Reason = authz.DecisionDeny, ruleAuditFailure, msg
		g.refuse(w, c, http.StatusServiceUnavailable, msg)
	}
	return ok
}

// finish writes what the trail does not have yet: a refused request's
// record, or the response's of a request that went on (its status, how
// long it took and the bytes each way, and the recording it names), as
// the plugin's response phase.
func (g *Gateway) finish(c *call) {
	if c.trailFailed {
		return
	}
	rec := c.rec
	if c.recorded {
		rec.Phase, rec.Time, rec.Fields = authz.PhaseResponse, g.cfg.Engine.Now(), nil
		if id, ok := c.rec.Fields["recording"]; ok {
			rec.Fields = map[string]any{"recording": id}
		}
	}
	rec.Status = c.status
	rec.DurationUS = time.Since(c.start).Microseconds()
	rec.BytesIn, rec.BytesOut = int64(len(c.body)), c.out
	if c.in != nil {
		rec.BytesIn += c.in.n.Load()
	}
	g.cfg.Engine.Audit(rec)
}

// malformed says why a request is not forwarded whatever the policy: a
// request-target that is not a path (absolute-form, "*"); a form body,
// which dockerd's handlers read where no decision looked (net/http
// ParseForm puts a urlencoded body's values before the query's, and
// FormValue takes a multipart/form-data body's for a key the query
// lacks, a build's networkmode= or t=); or more than one Content-Type,
// since dockerd reads the first and the policy, as a plugin is given
// them, the last.
func malformed(r *http.Request) string {
	if !strings.HasPrefix(r.RequestURI, "/") || strings.HasPrefix(r.RequestURI, "//") {
		return fmt.Sprintf("request-target %q is not an absolute path", r.RequestURI)
	}
	if n := len(r.Header.Values("Content-Type")); n > 1 {
		return fmt.Sprintf("%d Content-Type headers: dockerd would read the first, the policy the last", n)
	}
	if r.ContentLength != 0 {
		if mt, ok := authz.FormMediaType(r.Header.Get("Content-Type")); ok {
			return fmt.Sprintf("a form body (%s) is not part of the Docker API: dockerd would read parameters from it that no decision looked at", mt)
		}
	}
	return ""
}

// readBody reads the whole body of a request the policy decides by its
// body (chunked included: net/http decodes it), bounded; it answers 413 and
// reports false over the bound.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, c *call) bool {
	if !authz.ReadsBody(r.Method, r.RequestURI) {
		return true
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBody+1))
	switch {
	case err != nil:
		c.rec.Rule, c.rec.Reason = ruleMalformed, fmt.Sprintf("reading the request body: %v", err)
		g.refuse(w, c, http.StatusBadRequest, c.rec.Reason)
		return false
	case int64(len(b)) > g.cfg.MaxBody:
		c.rec.Rule = ruleBodyTooLarge
		c.rec.Reason = fmt.Sprintf("the body of %s %s is over %d bytes: denied, the gateway decides on whole bodies only", r.Method, c.rec.Path, g.cfg.MaxBody)
		g.refuse(w, c, http.StatusRequestEntityTooLarge, c.rec.Reason)
		return false
	}
	c.body = b
	return true
}

// flatten gives the policy the request's headers as dockerd gives them to
// a plugin (last value wins), with the Content-Length of what will be
// forwarded.
func flatten(h http.Header, body []byte, length int64) map[string]string {
	out := make(map[string]string, len(h)+1)
	for k, v := range h {
		if len(v) > 0 {
			out[k] = v[len(v)-1]
		}
	}
	switch {
	case body != nil:
		out["Content-Length"] = strconv.Itoa(len(body))
	case length >= 0:
		out["Content-Length"] = strconv.FormatInt(length, 10)
	default:
		delete(out, "Content-Length")
	}
	return out
}

// refuse answers with dockerd's error format ({"message": ...}), which the
// Docker CLI prints as "Error response from daemon: MESSAGE".
func (g *Gateway) refuse(w http.ResponseWriter, c *call, status int, msg string) {
	c.answered, c.status = true, status
	c.rec.Decision = authz.DecisionDeny
	b, _ := json.Marshal(map[string]string{"message": "authorization denied by dtls-gateway: " + msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	n, _ := w.Write(append(b, '\n'))
	c.out += int64(n)
}

// hopHeaders are the hop-by-hop headers (RFC 9110 section 7.6.1, and
// those Go's httputil.ReverseProxy drops); never forwarded either way.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Content-Length"}

// cleanHeaders copies h without hop-by-hop headers, those Connection
// names, and any X-Dtls-* header (none may speak for the gateway).
func cleanHeaders(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			out.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range hopHeaders {
		out.Del(k)
	}
	for k := range out {
		if strings.HasPrefix(strings.ToLower(k), "x-dtls-") {
			delete(out, k)
		}
	}
	return out
}

// upstream builds the request to dockerd: the same method, request-target
// and headers (cleaned), and the body decided on or the client's, decoded
// by net/http and sent again with its own framing.
func (g *Gateway) upstream(r *http.Request, c *call) *http.Request {
	path, query, _ := strings.Cut(r.RequestURI, "?")
	out := (&http.Request{
		Method:     r.Method,
		URL:        &url.URL{Scheme: "http", Host: "docker", Opaque: path, RawQuery: query},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     cleanHeaders(r.Header),
		Host:       r.Host,
	}).WithContext(r.Context())
	switch {
	case c.body != nil:
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(c.body)), int64(len(c.body))
	case r.ContentLength == 0:
		out.Body = http.NoBody
	default:
		c.in = &countingReader{r: r.Body}
		out.Body, out.ContentLength = c.in, r.ContentLength
	}
	return out
}

// maxObserved bounds a response read for the owners' book.
const maxObserved = 1 << 20

// forward sends the request to dockerd and relays the answer, flushing as
// it comes (logs -f, events, stats and pulls stream).
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, c *call) {
	var resp *http.Response
	var err error
	if req := g.upstream(r, c); c.in == nil {
		resp, err = g.docker.roundTrip(req, c.body)
	} else {
		resp, err = g.transport.RoundTrip(req)
	}
	if err != nil {
		c.rec.Reason = c.rec.Reason + "; dockerd: " + err.Error()
		g.fail(w, c, fmt.Sprintf("dtls-gateway: dockerd did not answer: %v", err))
		return
	}
	defer resp.Body.Close()
	var head []byte
	if authz.Observes(r.Method, c.rec.Path) && resp.StatusCode/100 == 2 {
		if authz.ObservesBody(r.Method, c.rec.Path) {
			head, _ = io.ReadAll(io.LimitReader(resp.Body, maxObserved))
		}
		g.cfg.Engine.Observe(c.caller, r.Method, r.RequestURI, resp.StatusCode, c.body, head)
	}
	h := w.Header()
	for k, v := range cleanHeaders(resp.Header) {
		h[k] = v
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	c.answered, c.status = true, resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	n, _ := w.Write(head)
	c.out += int64(n)
	if resp.ContentLength >= 0 {
		// A whole answer of known length: written as one, not flushed
		// piece by piece.
		k, _ := io.Copy(w, resp.Body)
		c.out += k
		// Out before the response's audit record (finish) is written:
		// the client need not wait for it.
		_ = http.NewResponseController(w).Flush()
		return
	}
	// A stream: the head goes out at once, as dockerd answers some calls
	// with their headers long before the body (POST
	// /containers/{id}/wait, which 'docker run' waits on before it starts
	// the container; events), and then each piece as it comes.
	_ = http.NewResponseController(w).Flush()
	c.out += copyFlush(w, resp.Body)
}

// fail answers 502 in dockerd's error format.
func (g *Gateway) fail(w http.ResponseWriter, c *call, msg string) {
	c.answered, c.status = true, http.StatusBadGateway
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	n, _ := w.Write(append(b, '\n'))
	c.out += int64(n)
}

// copyFlush copies src to w, flushing after each read so that a stream
// reaches the client as dockerd writes it.
func copyFlush(w http.ResponseWriter, src io.Reader) int64 {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n
			}
			n += int64(k)
			_ = rc.Flush()
		}
		if err != nil {
			return n
		}
	}
}
