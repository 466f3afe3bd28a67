package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
)

// Recording configures the recording of exec and attach streams.
type Recording struct {
	// Dir holds the recordings (created 0700).
	Dir string
	// Input records what the client sends ("i" events) too, for every
	// role; a role's "record_input" in the policy does for its holders.
	Input bool
	// Continue lets a stream go on unrecorded, with an audit record, when
	// its recording cannot be written; otherwise (the default) the stream
	// is refused before it starts, and cut if a write fails on the way.
	Continue bool
	// Retention bounds the recordings kept; applied at start and before
	// each new recording.
	Retention recording.Retention
}

// RuleRecording names a stream refused, cut or let go on unrecorded
// because its recording could not be written.
const RuleRecording = "gateway: session recording"

// recordings are the recordings being written, by ID (retention keeps
// them), and the bytes they may write together: the retention's MaxSize,
// which bounds the finished ones (recording.Budget).
type recordings struct {
	mu     sync.Mutex
	open   map[string]bool
	budget *recording.Budget
	once   sync.Once
}

// bound is the budget of the open recordings, made once from rc.
func (rs *recordings) bound(rc *Recording) *recording.Budget {
	rs.once.Do(func() { rs.budget = recording.NewBudget(rc.Retention.MaxSize) })
	return rs.budget
}

func (rs *recordings) add(id string, on bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.open == nil {
		rs.open = map[string]bool{}
	}
	if on {
		rs.open[id] = true
	} else {
		delete(rs.open, id)
	}
}

func (rs *recordings) snapshot() map[string]bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make(map[string]bool, len(rs.open))
	for k := range rs.open {
		out[k] = true
	}
	return out
}

// RuleRetention is the rule of the record of a recording retention
// removed.
const RuleRetention = "gateway: session recording removed by retention"

// prune applies the retention, logging what fails, and writes a record of
// each recording it removes: with --sessions-max-size, a holder's later
// streams push out the recordings of earlier ones, theirs or another's,
// and nothing said so (found by a red team).
func (g *Gateway) prune() {
	rc := g.cfg.Recording
	if rc == nil {
		return
	}
	removed, err := recording.Prune(rc.Dir, rc.Retention, g.cfg.Engine.Now(), g.recs.snapshot())
	for _, r := range removed {
		why := fmt.Sprintf("recording %s (%d bytes) removed: the recordings took more than --sessions-max-size (%d bytes)", r.ID, r.Size, rc.Retention.MaxSize)
		if r.Old {
			why = fmt.Sprintf("recording %s (%d bytes) removed: older than --sessions-max-age (%s)", r.ID, r.Size, rc.Retention.MaxAge)
		}
		// Named after whose session it was (the exec's own record may be
		// gone: a second red team round).
		g.cfg.Engine.Audit(authz.AuditRecord{Time: g.cfg.Engine.Now(), Phase: PhaseSession, Decision: authz.DecisionAllow,
			User: r.User, Rule: RuleRetention, Reason: why, Fields: map[string]any{"recording": r.ID, "bytes": r.Size, "command": r.Command}})
	}
	if err != nil {
		g.cfg.Engine.Logf("prune", "sessions retention: %v", err)
	}
}

// streamRecord is one stream's recording in progress.
type streamRecord struct {
	g    *Gateway
	rec  *recording.Recorder
	id   string
	c    *call
	cut  func() // closes both ends: a failed write in refuse mode
	once sync.Once
	// input: the client's bytes are recorded too (Recording.Input, or
	// the caller's role's record_input).
	input bool
}

// startRecording opens the recording of an exec or attach stream before
// dockerd is asked for it. It returns nil when the stream is not
// recorded; false when the stream was refused (answered already).
func (g *Gateway) startRecording(w http.ResponseWriter, r *http.Request, c *call) (*streamRecord, bool) {
	rc := g.cfg.Recording
	if rc == nil {
		return nil, true
	}
	meta, ok := g.streamMeta(r.Context(), c.rec.Path)
	if !ok {
		// BuildKit's session, attach over a websocket: not recorded.
		return nil, g.unrecordedInput(w, r, c)
	}
	start := g.cfg.Engine.Now()
	meta.ID, meta.Start = recording.NewID(start), start.UTC()
	meta.Input = rc.Input || g.cfg.Engine.RecordsInput(c.rec.Role)
	meta.User, meta.Serial, meta.Issuer = c.rec.User, c.rec.Serial, c.rec.Issuer
	meta.Remote = r.RemoteAddr
	g.prune()
	h := recording.Header{DTLS: meta, Title: fmt.Sprintf("%s: docker %s %s", meta.User, meta.Kind, strings.Join(meta.Command, " "))}
	rec, err := recording.Create(rc.Dir, h, g.cfg.Engine.Now, g.recs.bound(rc))
	if err != nil {
		if !rc.Continue {
			c.rec.Rule = RuleRecording
			c.rec.Reason = fmt.Sprintf("the stream cannot be recorded, refused: %v", err)
			g.refuse(w, c, http.StatusServiceUnavailable, c.rec.Reason)
			return nil, false
		}
		g.unrecorded(c, fmt.Sprintf("the stream goes on unrecorded: %v", err))
		return nil, true
	}
	g.recs.add(meta.ID, true)
	// The request's audit record names its recording.
	if c.rec.Fields == nil {
		c.rec.Fields = map[string]any{}
	}
	c.rec.Fields["recording"] = meta.ID
	return &streamRecord{g: g, rec: rec, id: meta.ID, c: c, input: meta.Input}, true
}

// unrecordedInput lets a stream the gateway does not record go on, but
// for a websocket attach with stdin: an interactive session whose output
// (and, for a role with record_input, input) the gateway records through
// 'docker attach' would go unrecorded, an easy way around the recording.
// It is refused (answered: false), as a stream whose recording cannot be
// written is, or with --sessions-on-failure continue let go with an
// audit record. Without stdin it is output only, as logs, and goes on:
// which only API 1.42 and later can ask (wsStdin).
func (g *Gateway) unrecordedInput(w http.ResponseWriter, r *http.Request, c *call) bool {
	rc := g.cfg.Recording
	if !strings.HasSuffix(c.rec.Path, "/attach/ws") || !wsStdin(r) {
		return true
	}
	why := "a websocket attach (attach/ws) with stdin cannot be recorded, and the gateway records interactive sessions: use docker attach, or attach/ws without stdin"
	if !rc.Continue {
		c.rec.Rule, c.rec.Reason = RuleRecording, why+": refused"
		g.refuse(w, c, http.StatusServiceUnavailable, c.rec.Reason)
		return false
	}
	g.unrecorded(c, why+": the stream goes on unrecorded")
	return true
}

// wsStdin reports whether a websocket attach takes stdin, as dockerd
// reads it. dockerd reads the query's "stdin" only when the request
// speaks API 1.42 or later (moby api/server/router/container
// container_routes.go, wsContainersAttach: before 1.42 stdin, stdout and
// stderr are attached whatever the query says), and dockerd 20.10 speaks
// 1.41: a target with an older version, or none (the daemon's own, which
// may be older), takes stdin. From 1.42: the first "stdin" of the query,
// false only when "", "0", "no", "false" or "none" in any case (moby
// api/server/httputils BoolValue). A query that does not parse counts as
// asking.
func wsStdin(r *http.Request) bool {
	if !authz.APIVersionAtLeast(r.RequestURI, 1, 42) {
		return true
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(q.Get("stdin"))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// unrecorded writes the audit record of a stream going on unrecorded.
func (g *Gateway) unrecorded(c *call, why string) {
	g.cfg.Engine.Logf("", "%s %s of %q: %s", c.rec.Method, c.rec.Path, c.rec.User, why)
	g.cfg.Engine.Audit(authz.AuditRecord{Time: g.cfg.Engine.Now(), Phase: PhaseSession, Decision: authz.DecisionAllow,
		User: c.rec.User, Serial: c.rec.Serial, Issuer: c.rec.Issuer, Source: c.rec.Source, UID: c.rec.UID, PID: c.rec.PID, Socket: c.rec.Socket,
		Method: c.rec.Method, Path: c.rec.Path, URI: c.rec.URI, Rule: RuleRecording, Reason: why})
}

// wrap tees the client's and dockerd's bytes into the recording; cut
// closes both ends.
func (s *streamRecord) wrap(client, docker io.Reader, cut func()) (io.Reader, io.Reader) {
	s.cut = cut
	out := &recordingReader{r: docker, record: s.rec.Output, s: s}
	if !s.input {
		return client, out
	}
	return &recordingReader{r: client, record: s.rec.Input, s: s}, out
}

// failed handles a write that failed on the way: the stream is cut
// (refuse) or goes on unrecorded with an audit record (continue).
func (s *streamRecord) failed(err error) error {
	s.once.Do(func() {
		if s.g.cfg.Recording.Continue {
			s.g.unrecorded(s.c, fmt.Sprintf("recording %s failed, the stream goes on unrecorded: %v", s.id, err))
			return
		}
		s.g.cfg.Engine.Logf("", "cut %s %s of %q: recording %s failed: %v", s.c.rec.Method, s.c.rec.Path, s.c.rec.User, s.id, err)
		s.g.cfg.Engine.Audit(authz.AuditRecord{Time: s.g.cfg.Engine.Now(), Phase: PhaseSession, Decision: authz.DecisionDeny,
			User: s.c.rec.User, Serial: s.c.rec.Serial, Issuer: s.c.rec.Issuer, Source: s.c.rec.Source, UID: s.c.rec.UID, PID: s.c.rec.PID, Socket: s.c.rec.Socket,
			Method: s.c.rec.Method, Path: s.c.rec.Path, URI: s.c.rec.URI, Rule: RuleRecording,
			Reason: fmt.Sprintf("recording %s failed, the stream is cut: %v", s.id, err)})
		if s.cut != nil {
			s.cut()
		}
	})
	if s.g.cfg.Recording.Continue {
		return nil
	}
	return err
}

// end closes the recording with why the stream ended; dropped is true
// when no stream began (an error or a detached exec's answer): the file
// is removed.
func (s *streamRecord) end(why string, dropped bool) {
	defer s.g.recs.add(s.id, false)
	err := s.rec.Close(why)
	if dropped {
		removeFile(s.rec.Path())
		delete(s.c.rec.Fields, "recording")
		return
	}
	if err != nil {
		_ = s.failed(err)
	}
}

// recordingReader records what is read through it.
type recordingReader struct {
	r      io.Reader
	record func([]byte) error
	s      *streamRecord
	off    bool // continue mode after a failure
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if n > 0 && !rr.off {
		if rerr := rr.record(p[:n]); rerr != nil {
			rr.off = true
			if ferr := rr.s.failed(rerr); ferr != nil {
				return n, ferr
			}
		}
	}
	return n, err
}

// endReason is the closing marker of a stream on conn: the cut's reason,
// or that the stream ended.
func (g *Gateway) endReason(conn net.Conn) string {
	if conn != nil {
		if why := g.sess.why(conn); why != "" {
			return "cut: " + why
		}
	}
	return recording.EndedStream
}

// streamMeta asks dockerd what a stream runs: the exec's command, user
// and tty (GET /exec/{id}/json), the container's name (and for attach its
// command and tty: GET /containers/{id}/json). It reports false for
// streams that are not recorded.
func (g *Gateway) streamMeta(ctx context.Context, p string) (recording.Meta, bool) {
	var m recording.Meta
	switch {
	case strings.HasPrefix(p, "/exec/") && strings.HasSuffix(p, "/start"):
		m.Kind, m.ExecID = "exec", strings.TrimSuffix(strings.TrimPrefix(p, "/exec/"), "/start")
		var ex struct {
			ContainerID   string
			ProcessConfig struct {
				TTY        bool `json:"tty"`
				Entrypoint string
				Arguments  []string
				User       string
			}
		}
		if g.inspect(ctx, "/exec/"+m.ExecID+"/json", &ex) {
			m.Container, m.TTY, m.RunAs = ex.ContainerID, ex.ProcessConfig.TTY, ex.ProcessConfig.User
			m.Command = append([]string{ex.ProcessConfig.Entrypoint}, ex.ProcessConfig.Arguments...)
		}
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/attach"):
		m.Kind, m.Container = "attach", strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/attach")
	default:
		return m, false
	}
	if m.Container == "" {
		return m, true
	}
	var ct struct {
		ID, Name, Path string
		Args           []string
		Config         struct{ Tty bool }
	}
	if g.inspect(ctx, "/containers/"+m.Container+"/json", &ct) {
		m.Container, m.ContainerName = ct.ID, strings.TrimPrefix(ct.Name, "/")
		if m.Kind == "attach" {
			m.TTY, m.Command = ct.Config.Tty, append([]string{ct.Path}, ct.Args...)
		}
	}
	return m, true
}

// inspectTimeout bounds a question to dockerd before a stream.
const inspectTimeout = 5 * time.Second

// inspect GETs path from dockerd into v; false when it could not.
func (g *Gateway) inspect(ctx context.Context, path string, v any) bool {
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return false
	}
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return false
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxObserved)).Decode(v) == nil
}

func removeFile(p string) { _ = os.Remove(p) }

// closeFor closes c as close does, keeping why for its stream's
// recording.
func (s *sessions) closeFor(c net.Conn, why string) {
	s.mu.Lock()
	if ss, ok := s.conns[c]; ok && ss.why == "" {
		ss.why = why
	}
	s.mu.Unlock()
	s.close(c)
}

// why is the reason c was cut, empty when it was not.
func (s *sessions) why(c net.Conn) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.conns[c]; ok {
		return ss.why
	}
	return ""
}
