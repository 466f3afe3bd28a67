// Package authz owns dtls's Docker authorization plugin: the policy that
// decides what each role may do through the Docker API, the plugin server
// dockerd asks before and after every API call (Docker's legacy plugin
// protocol over a unix socket), and the audit trail of its decisions.
package authz

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Inventory says who a client certificate belongs to (implemented by
// package authority over the read-only inventory).
type Inventory interface {
	// Identify returns the certificate holder's name and role ("" for the
	// policy's default), or an error saying why the certificate is not
	// accepted: not in the inventory, revoked, superseded, expired, not a
	// client certificate, or another issuer's certificate with the same
	// serial.
	Identify(cert *x509.Certificate) (user, role string, err error)
}

// Mode is how the plugin applies its decisions.
type Mode string

const (
	// ModeEnforce denies what the policy denies.
	ModeEnforce Mode = "enforce"
	// ModeWarn allows every request and records what enforce would have
	// denied as DecisionWarn: a trial run of a policy.
	ModeWarn Mode = "warn"
)

const (
	// maxRequestBytes bounds what the plugin reads of one call. dockerd
	// sends at most 4 MiB of request body (moby pkg/authorization/authz.go
	// maxBodySize: it refuses larger bodies itself), 6 MiB once base64
	// encoded, and in the response phase the same again plus at most 64 KiB
	// of response body (response.go maxBufferSize).
	maxRequestBytes = 16 << 20
	// drainBytes is how much more of an oversized call the plugin reads and
	// discards, so that it can answer on a connection that stays usable; a
	// larger one gets its answer and a closed connection.
	drainBytes = 64 << 20

	// defaultReloadEvery is how often the policy file is checked for
	// changes.
	defaultReloadEvery = time.Second

	// logEvery is how often the same operational message (a revoked
	// certificate knocking, an audit write failing) is repeated in Log.
	logEvery = time.Minute
)

// Rules of decisions the plugin takes before (or instead of) the policy.
const (
	ruleMalformed      = "plugin: malformed request"
	ruleNoCertificate  = "plugin: no client certificate"
	ruleBadCertificate = "plugin: unparsable certificate"
	ruleUserMismatch   = "plugin: user is not the certificate's name"
	ruleNoInventory    = "plugin: no inventory"
	ruleNotAccepted    = "plugin: certificate not accepted"
	rulePolicyInvalid  = "plugin: policy invalid"
	ruleInternal       = "plugin: internal error"
	ruleLookup         = "plugin: own lookup"
)

// Config configures a Plugin.
type Config struct {
	// PolicyPath is the policy file; "" is DefaultPolicy(). The file is
	// checked for changes (modification time, size, inode) at most every
	// ReloadEvery and reloaded when it changed, without a restart.
	PolicyPath string
	// PolicyOptional makes a missing PolicyPath mean DefaultPolicy()
	// instead of an error: the default path, which the policy may be
	// created at, or removed from, while the plugin runs (followed like
	// any change).
	PolicyOptional bool
	// Inventory identifies client certificates; nil denies every TCP
	// request (fail closed), saying why.
	Inventory Inventory
	// Mode is ModeEnforce (the default when empty) or ModeWarn.
	Mode Mode
	// Audit receives one record per decision, before dockerd hears it;
	// may be nil.
	Audit *AuditLog
	// AuditFailure is what is denied while Audit cannot be written:
	// AuditDenyWrites (the default when empty) or AuditDenyAll.
	AuditFailure AuditFailure
	// Log receives operational messages (policy reloaded or invalid,
	// inventory and audit errors, malformed calls); may be nil.
	Log io.Writer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ReloadEvery is how often PolicyPath is checked (1s when <= 0).
	ReloadEvery time.Duration
	// Objects records who created which container, volume, network and
	// exec, and resolves references through dockerd; nil knows none, and
	// what needs it is denied to every role but admin.
	Objects *Registry
	// Protected are host paths of this host no role but admin may mount
	// (dtls's state, certs and log directories, the policy file,
	// dockerd's data-root, exec-root and sockets).
	Protected []string
}

// Plugin is the authorization plugin: an http.Handler for dockerd's calls
// and the server that runs it.
type Plugin struct {
	cfg   Config
	now   func() time.Time
	every time.Duration
	// builtin decides for the unix socket while the policy file is
	// invalid, so that a broken file never locks the host's admin out.
	builtin *Policy

	state     atomic.Pointer[policyState]
	lastCheck atomic.Int64 // UnixNano of the last check of PolicyPath
	reloadMu  sync.Mutex

	logMu  sync.Mutex
	log    io.Writer
	logged map[string]time.Time

	// certs keeps parsed peer certificates: dockerd sends the same few
	// again and again, twice per API call.
	certs certCache

	srv *http.Server
}

// policyState is the policy in force, or why there is none.
type policyState struct {
	policy *Policy // nil when the file is missing or invalid
	err    error   // why policy is nil
	stamp  fileStamp
	exists bool // stamp is valid
	absent bool // the optional file is missing: policy is the built-in one
}

// NewPlugin makes a plugin. An invalid or missing policy file is not an
// error: the plugin starts, logs why, and denies every TCP request with a
// message saying why (fail closed) until the file is fixed; the local unix
// socket is then decided by the built-in policy. Only an invalid Mode is
// an error.
func NewPlugin(c Config) (*Plugin, error) {
	switch c.Mode {
	case "":
		c.Mode = ModeEnforce
	case ModeEnforce, ModeWarn:
	default:
		return nil, fmt.Errorf("invalid authorization mode %q: want %q or %q", c.Mode, ModeEnforce, ModeWarn)
	}
	if err := c.AuditFailure.Check(); err != nil {
		return nil, err
	}
	p := &Plugin{cfg: c, now: c.Now, every: c.ReloadEvery, builtin: DefaultPolicy(), log: c.Log, logged: map[string]time.Time{}}
	if p.now == nil {
		p.now = time.Now
	}
	if p.every <= 0 {
		p.every = defaultReloadEvery
	}
	if p.log == nil {
		p.log = io.Discard
	}
	if c.PolicyPath == "" {
		p.state.Store(&policyState{policy: p.builtin})
	} else {
		p.state.Store(&policyState{})
		p.reload()
		p.lastCheck.Store(p.now().UnixNano())
	}
	p.srv = &http.Server{
		Handler: p,
		// dockerd is local and writes each call at once: these bound only
		// a stuck or hostile client. Idle connections are kept long, as
		// dockerd's plugin client keeps them without limit.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       10 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(lockedWriter{p}, "dtls-authz: http: ", 0),
	}
	return p, nil
}

// Serve answers dockerd on l until Close; it may be called for several
// listeners at once. It returns nil after Close.
func (p *Plugin) Serve(l net.Listener) error {
	err := p.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the listeners, lets the calls in progress finish (5 s at
// most) and closes the connections.
func (p *Plugin) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
		return fmt.Errorf("stop the authorization plugin: %w", err)
	}
	return nil
}

// ServeHTTP answers Plugin.Activate, AuthZPlugin.AuthZReq and
// AuthZPlugin.AuthZRes. An authorization call always gets HTTP 200 and an
// answer, whatever it holds: anything else makes dockerd fail the API call
// with a less clear message (see authzResponse).
func (p *Plugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, authzResponse{Err: fmt.Sprintf("dtls-authz: %s %s: want POST", r.Method, r.URL.Path)})
		return
	}
	switch r.URL.Path {
	case pathActivate:
		io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBytes))
		writeJSON(w, http.StatusOK, activateResponse{Implements: []string{implementsAuthz}})
	case pathAuthZReq:
		resp, rec := p.safely(PhaseRequest, func() (authzResponse, AuditRecord) { return p.authZReq(r) })
		// The record is written before dockerd hears the answer (trail.go).
		writeJSON(w, http.StatusOK, p.audit(rec, resp))
	case pathAuthZRes:
		resp, rec := p.safely(PhaseResponse, func() (authzResponse, AuditRecord) { return p.authZRes(r) })
		writeJSON(w, http.StatusOK, p.audit(rec, resp))
	default:
		writeJSON(w, http.StatusNotFound, authzResponse{Err: fmt.Sprintf("dtls-authz: unknown method %q", r.URL.Path)})
	}
}

// safely runs f, turning a panic into a denial (request phase) or an
// allowance (response phase, which never blocks) with a logged stack.
func (p *Plugin) safely(phase string, f func() (authzResponse, AuditRecord)) (resp authzResponse, rec AuditRecord) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		p.logf("", "internal error in the %s phase: %v\n%s", phase, v, debug.Stack())
		rec = AuditRecord{Time: p.now(), Phase: phase, Rule: ruleInternal, Reason: fmt.Sprintf("internal error: %v", v)}
		if phase == PhaseResponse {
			rec.Decision, resp = DecisionAllow, authzResponse{Allow: true}
			return
		}
		resp = p.verdict(&rec, false, "", rec.Reason)
	}()
	return f()
}

// verdict sets rec.Decision and makes the answer: in warn mode a denial
// is recorded as DecisionWarn and allowed.
func (p *Plugin) verdict(rec *AuditRecord, allow bool, subject, reason string) authzResponse {
	switch {
	case allow:
		rec.Decision = DecisionAllow
		return authzResponse{Allow: true}
	case p.cfg.Mode == ModeWarn:
		rec.Decision = DecisionWarn
		return authzResponse{Allow: true}
	}
	rec.Decision = DecisionDeny
	// dockerd shows it as "authorization denied by plugin NAME: MSG"
	// (moby pkg/authorization/authz.go): the plugin's name is there
	// already.
	msg := "denied"
	if subject != "" {
		msg += " for " + subject
	}
	msg += ": " + reason
	if rec.Rule != "" {
		msg += " (rule " + rec.Rule + ")"
	}
	return authzResponse{Msg: msg}
}

// authZReq decides an API request.
func (p *Plugin) authZReq(r *http.Request) (authzResponse, AuditRecord) {
	rec := AuditRecord{Time: p.now(), Phase: PhaseRequest}
	req, err := readCall(r)
	if err != nil {
		rec.Rule, rec.Reason = ruleMalformed, err.Error()
		p.logf("malformed", "request phase: %v", err)
		return p.verdict(&rec, false, "", rec.Reason), rec
	}
	rec.Method, rec.URI = req.RequestMethod, req.RequestURI
	who := p.identify(req)
	rec.User, rec.Serial, rec.Source = who.id.User, who.id.Serial, string(who.id.Source)
	rec.CN, rec.Issuer = who.cn, who.issuer
	if req.RequestMethod == "" || req.RequestURI == "" {
		rec.Rule, rec.Reason = ruleMalformed, "malformed request from dockerd: no RequestMethod or no RequestUri"
		p.logf("malformed", "request phase: %s", rec.Reason)
		return p.verdict(&rec, false, "", rec.Reason), rec
	}
	rec.Path, _ = CanonicalPath(req.RequestURI)
	if who.refused != "" {
		rec.Rule, rec.Reason = who.rule, who.refused
		return p.verdict(&rec, false, "", rec.Reason), rec
	}

	st := p.policy()
	pol := st.policy
	if pol == nil {
		if who.id.Source != SourceUnix {
			rec.Rule = rulePolicyInvalid
			rec.Reason = fmt.Sprintf("every TCP request is denied until the policy is fixed: %v", st.err)
			return p.verdict(&rec, false, p.subject(who.id, nil), rec.Reason), rec
		}
		pol = p.builtin
	}
	if who.id.Source == SourceTCP {
		rec.Role = who.id.Role
		if rec.Role == "" {
			rec.Role = pol.DefaultRole()
		}
	}
	if who.id.Source == SourceUnix && p.cfg.Objects != nil && p.cfg.Objects.docker.isLookup(req.RequestHeaders) &&
		(req.RequestMethod == "GET" || req.RequestMethod == "HEAD") {
		// The plugin's own lookup of an object, through dockerd's
		// socket: allowed whatever the policy says of that socket.
		rec.Rule, rec.Reason = ruleLookup, "the plugin looks an object up"
		return p.verdict(&rec, true, "", rec.Reason), rec
	}
	preq := Request{Method: req.RequestMethod, URI: req.RequestURI, Body: req.RequestBody, Headers: req.RequestHeaders,
		Env: &Env{Protected: p.cfg.Protected}}
	if p.cfg.Objects != nil {
		preq.Env.Objects = p.cfg.Objects
	}
	d := pol.Decide(who.id, preq)
	if d.Path != "" {
		rec.Path = d.Path
	}
	rec.Fields, rec.Rule, rec.Reason = d.Fields, d.Rule, d.Reason
	reason := d.Reason
	if reason == "" {
		reason = "not allowed by the policy"
	}
	return p.verdict(&rec, d.Allow, p.subject(who.id, pol), reason), rec
}

// subject names who a denial is for, as the Docker user reads it.
func (p *Plugin) subject(id Identity, pol *Policy) string {
	if id.Source == SourceUnix {
		return "the local unix socket"
	}
	role := id.Role
	if role == "" && pol != nil {
		role = pol.DefaultRole()
	}
	if role == "" {
		return id.User
	}
	return fmt.Sprintf("%s (role %s)", id.User, role)
}

// authZRes records an API response; it always allows (the request was
// decided already, and blocking now would only hide a done deed).
func (p *Plugin) authZRes(r *http.Request) (authzResponse, AuditRecord) {
	rec := AuditRecord{Time: p.now(), Phase: PhaseResponse, Decision: DecisionAllow}
	req, err := readCall(r)
	if err != nil {
		rec.Rule, rec.Reason = ruleMalformed, err.Error()
		p.logf("malformed", "response phase: %v", err)
		return authzResponse{Allow: true}, rec
	}
	who := p.identify(req)
	rec.User, rec.Serial, rec.Source = who.id.User, who.id.Serial, string(who.id.Source)
	rec.CN, rec.Issuer = who.cn, who.issuer
	rec.Method, rec.URI, rec.Status = req.RequestMethod, req.RequestURI, req.ResponseStatusCode
	rec.Path, _ = CanonicalPath(req.RequestURI)
	if who.refused == "" {
		if err := p.cfg.Objects.observe(ownerOf(who.id), req, rec.Path); err != nil {
			p.logf("owners", "%v", err)
		}
	}
	if who.id.Source == SourceTCP && who.refused == "" {
		rec.Role = who.id.Role
		if pol := p.state.Load().policy; rec.Role == "" && pol != nil {
			rec.Role = pol.DefaultRole()
		}
	}
	return authzResponse{Allow: true}, rec
}

// readCall reads and decodes one authorization call, bounded.
func readCall(r *http.Request) (*authzRequest, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("malformed request from dockerd: read: %w", err)
	}
	if len(b) > maxRequestBytes {
		io.CopyN(io.Discard, r.Body, drainBytes)
		return nil, fmt.Errorf("malformed request from dockerd: more than %d MiB", maxRequestBytes>>20)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		// dockerd resends a call whose connection failed with the same,
		// already drained, buffer (plugins/client.go callWithRetry), so
		// an empty call can be a retry of a real one.
		return nil, errors.New("malformed request from dockerd: empty body")
	}
	var req authzRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("malformed request from dockerd: invalid JSON: %w", err)
	}
	return &req, nil
}

// who is the identity behind a call, and why it is refused, if it is.
type who struct {
	id      Identity
	refused string // reason; "" when the identity is accepted
	rule    string
	// cn and issuer are the client certificate's, for the audit record.
	cn, issuer string
}

// identify works out who sent the API call. The first peer certificate is
// the client's (crypto/tls: leaf first); the inventory, not the CA
// signature dockerd checked, says whether it is still good, so that a
// revoked or superseded certificate is refused at its next call although
// dockerd checks no CRL (moby#27778). dockerd derives User from that
// certificate's CN, so a User that differs is refused rather than
// trusted. No certificate and no user is the local unix socket: dockerd
// sends no identity for it (middleware.go WrapHandler).
func (p *Plugin) identify(req *authzRequest) who {
	if len(req.RequestPeerCertificates) == 0 {
		if req.User == "" && req.UserAuthNMethod == "" {
			return who{id: Identity{Source: SourceUnix}}
		}
		return who{id: Identity{User: req.User, Source: SourceTCP}, rule: ruleNoCertificate,
			refused: fmt.Sprintf("TCP request without a client certificate (user %q, authentication %q)", req.User, req.UserAuthNMethod)}
	}
	w := who{id: Identity{User: req.User, Source: SourceTCP}}
	certs := make([]*x509.Certificate, len(req.RequestPeerCertificates))
	for i, pc := range req.RequestPeerCertificates {
		c, err := p.certs.parse(pc)
		if err != nil {
			w.rule, w.refused = ruleBadCertificate, fmt.Sprintf("peer certificate %d of %d does not parse: %v", i+1, len(certs), err)
			return w
		}
		certs[i] = c
	}
	leaf := certs[0]
	w.cn, w.issuer = leaf.Subject.CommonName, leaf.Issuer.String()
	w.id.User, w.id.Serial = leaf.Subject.CommonName, serial(leaf)
	if req.User != leaf.Subject.CommonName {
		w.rule, w.refused = ruleUserMismatch, fmt.Sprintf("dockerd sent user %q but the client certificate (serial %s) is %q", req.User, w.id.Serial, leaf.Subject.CommonName)
		return w
	}
	if p.cfg.Inventory == nil {
		w.rule, w.refused = ruleNoInventory, "the certificate inventory could not be opened: every TCP request is denied"
		return w
	}
	user, role, err := p.cfg.Inventory.Identify(leaf)
	if err != nil {
		w.rule, w.refused = ruleNotAccepted, err.Error()
		p.logf("identify "+w.id.Serial, "certificate %q serial %s refused: %v", leaf.Subject.CommonName, w.id.Serial, err)
		return w
	}
	w.id.User, w.id.Role = user, role
	return w
}

// serial is a certificate's serial as the inventory writes it (pki.Serial).
func serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

// policy returns the policy state, first reloading the file if it is time
// to check it. One caller checks at a time; the others go on with the
// state in force.
func (p *Plugin) policy() *policyState {
	if p.cfg.PolicyPath != "" {
		now, last := p.now().UnixNano(), p.lastCheck.Load()
		if (now-last >= int64(p.every) || now < last) && p.lastCheck.CompareAndSwap(last, now) && p.reloadMu.TryLock() {
			p.reload()
			p.reloadMu.Unlock()
		}
	}
	return p.state.Load()
}

// reload loads the policy file if it changed since it was last loaded.
func (p *Plugin) reload() {
	path, old := p.cfg.PolicyPath, p.state.Load()
	st, err := statPolicy(path)
	if err != nil && p.cfg.PolicyOptional && errors.Is(err, fs.ErrNotExist) {
		if !old.absent {
			if old.exists || old.err != nil {
				p.logf("", "policy %q removed: the built-in policy applies", path)
			} else {
				p.logf("", "policy %q absent: the built-in policy applies until it is created", path)
			}
		}
		p.state.Store(&policyState{policy: p.builtin, absent: true})
		return
	}
	if err != nil {
		next := &policyState{err: fmt.Errorf("policy %q cannot be read: %w", path, unwrapPath(err))}
		if old.err == nil || old.err.Error() != next.err.Error() {
			p.logf("", "%v: every TCP request is denied until the policy is fixed", next.err)
		}
		p.state.Store(next)
		return
	}
	if old.exists && st == old.stamp {
		return
	}
	// Stamped before reading: a write that lands during the load changes
	// the stamp again, and the next check loads it.
	next := &policyState{stamp: st, exists: true}
	// LoadPolicy's errors name the file and the place in it.
	next.policy, next.err = LoadPolicy(path)
	if next.err != nil {
		next.policy = nil
		p.logf("", "%v: every TCP request is denied until the policy is fixed", next.err)
	} else if old.absent {
		p.logf("", "policy %q created: loaded in place of the built-in policy", path)
	} else if old.exists || old.err != nil {
		p.logf("", "policy %q reloaded", path)
	} else {
		p.logf("", "policy %q loaded", path)
	}
	p.state.Store(next)
}

// fileStamp tells whether a file changed: editors that write in place
// change the size or the modification time, those that replace the file
// change the inode.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func statPolicy(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileStamp{}, fmt.Errorf("not a regular file (%s)", describeType(fi.Mode()))
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	s.dev, s.ino = fileID(fi)
	return s, nil
}

// logf writes one operational message to Log; messages with the same
// non-empty key are written at most once per logEvery, so that a client
// retrying with a revoked certificate does not flood the log.
func (p *Plugin) logf(key, format string, args ...any) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if key != "" {
		now := p.now()
		if t, ok := p.logged[key]; ok && now.Sub(t) < logEvery && !now.Before(t) {
			return
		}
		if len(p.logged) > 1000 {
			clear(p.logged)
		}
		p.logged[key] = now
	}
	fmt.Fprintf(p.log, "dtls-authz: "+format+"\n", args...)
}

// lockedWriter serialises http.Server's error log with logf.
type lockedWriter struct{ p *Plugin }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.logMu.Lock()
	defer w.p.logMu.Unlock()
	return w.p.log.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain structs are marshalled.
		b, status = []byte(`{"Err":"dtls-authz: internal error"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
