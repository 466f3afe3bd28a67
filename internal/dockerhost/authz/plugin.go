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
	"log"
	"net"
	"net/http"
	"runtime/debug"
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
	// LogPrefix starts each message in Log ("dtls-authz: " when empty).
	LogPrefix string
}

// Plugin is the authorization plugin: an http.Handler for dockerd's calls
// and the server that runs it, a face of the Engine.
type Plugin struct {
	e *Engine

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
	e, err := NewEngine(c)
	if err != nil {
		return nil, err
	}
	p := &Plugin{e: e}
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
		ErrorLog:          log.New(e.ErrorLog(), "dtls-authz: http: ", 0),
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
		writeJSON(w, http.StatusOK, p.record(rec, resp))
	case pathAuthZRes:
		resp, rec := p.safely(PhaseResponse, func() (authzResponse, AuditRecord) { return p.authZRes(r) })
		writeJSON(w, http.StatusOK, p.record(rec, resp))
	default:
		writeJSON(w, http.StatusNotFound, authzResponse{Err: fmt.Sprintf("dtls-authz: unknown method %q", r.URL.Path)})
	}
}

// safely runs f, turning a panic into a denial (request phase) or an
// allowance (response phase, which never blocks) with a logged stack.
// record writes rec before resp goes to dockerd, and returns the answer
// that stands (a denial when the trail cannot be written: Engine.Record).
func (p *Plugin) record(rec AuditRecord, resp authzResponse) authzResponse {
	if ok, msg := p.e.Record(rec, resp.Allow); !ok && resp.Allow {
		return authzResponse{Msg: msg}
	}
	return resp
}

func (p *Plugin) safely(phase string, f func() (authzResponse, AuditRecord)) (resp authzResponse, rec AuditRecord) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if phase == PhaseResponse {
			p.e.logf("", "internal error in the %s phase: %v\n%s", phase, v, debug.Stack())
			rec = AuditRecord{Time: p.e.now(), Phase: phase, Rule: ruleInternal, Reason: fmt.Sprintf("internal error: %v", v),
				Decision: DecisionAllow}
			resp = authzResponse{Allow: true}
			return
		}
		var vd Verdict
		vd, rec = p.e.Internal(v, debug.Stack())
		resp = answer(vd)
	}()
	return f()
}

// answer is a verdict as dockerd reads it. dockerd shows a denial as
// "authorization denied by plugin NAME: MSG" (moby
// pkg/authorization/authz.go): the plugin's name is there already.
func answer(v Verdict) authzResponse { return authzResponse{Allow: v.Allow, Msg: v.Msg} }

// authZReq decides an API request.
func (p *Plugin) authZReq(r *http.Request) (authzResponse, AuditRecord) {
	req, err := readCall(r)
	if err != nil {
		rec := AuditRecord{Time: p.e.now(), Phase: PhaseRequest, Rule: ruleMalformed, Reason: err.Error()}
		p.e.logf("malformed", "request phase: %v", err)
		return answer(p.e.verdict(&rec, false, "", rec.Reason)), rec
	}
	c := p.identify(req)
	if req.RequestMethod == "" || req.RequestURI == "" {
		rec := AuditRecord{Time: p.e.now(), Phase: PhaseRequest, Method: req.RequestMethod, URI: req.RequestURI,
			User: c.ID.User, Serial: c.ID.Serial, Source: string(c.ID.Source), Rule: ruleMalformed,
			Reason: "malformed request from dockerd: no RequestMethod or no RequestUri"}
		p.e.logf("malformed", "request phase: %s", rec.Reason)
		return answer(p.e.verdict(&rec, false, "", rec.Reason)), rec
	}
	v, rec := p.e.Decide(c, req.RequestMethod, req.RequestURI, req.RequestBody, req.RequestHeaders)
	return answer(v), rec
}

// authZRes records an API response; it always allows (the request was
// decided already, and blocking now would only hide a done deed).
func (p *Plugin) authZRes(r *http.Request) (authzResponse, AuditRecord) {
	rec := AuditRecord{Time: p.e.now(), Phase: PhaseResponse, Decision: DecisionAllow}
	req, err := readCall(r)
	if err != nil {
		rec.Rule, rec.Reason = ruleMalformed, err.Error()
		p.e.logf("malformed", "response phase: %v", err)
		return authzResponse{Allow: true}, rec
	}
	c := p.identify(req)
	rec.User, rec.Serial, rec.Source = c.ID.User, c.ID.Serial, string(c.ID.Source)
	rec.CN, rec.Issuer = c.CN, c.Issuer
	rec.Method, rec.URI, rec.Status = req.RequestMethod, req.RequestURI, req.ResponseStatusCode
	rec.Path, _ = CanonicalPath(req.RequestURI)
	p.e.Observe(c, req.RequestMethod, req.RequestURI, req.ResponseStatusCode, req.RequestBody, req.ResponseBody)
	rec.Role = p.e.RoleOf(c)
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

// identify works out who sent the API call. dockerd derives User from
// the first peer certificate's CN, so a User that differs is refused
// rather than trusted. No certificate and no user is the local unix
// socket: dockerd sends no identity for it (middleware.go WrapHandler).
// The rest is the engine's (Engine.Identify).
func (p *Plugin) identify(req *authzRequest) Caller {
	if len(req.RequestPeerCertificates) == 0 {
		if req.User == "" && req.UserAuthNMethod == "" {
			return Unix()
		}
		return Caller{ID: Identity{User: req.User, Source: SourceTCP}, Rule: ruleNoCertificate,
			Refused: fmt.Sprintf("TCP request without a client certificate (user %q, authentication %q)", req.User, req.UserAuthNMethod)}
	}
	c := Caller{ID: Identity{User: req.User, Source: SourceTCP}}
	certs := make([]*x509.Certificate, len(req.RequestPeerCertificates))
	for i, pc := range req.RequestPeerCertificates {
		cert, err := p.certs.parse(pc)
		if err != nil {
			c.Rule, c.Refused = ruleBadCertificate, fmt.Sprintf("peer certificate %d of %d does not parse: %v", i+1, len(certs), err)
			return c
		}
		certs[i] = cert
	}
	leaf := certs[0]
	if req.User != leaf.Subject.CommonName {
		c.ID.User, c.ID.Serial = leaf.Subject.CommonName, serial(leaf)
		c.CN, c.Issuer = leaf.Subject.CommonName, leaf.Issuer.String()
		c.Rule, c.Refused = ruleUserMismatch, fmt.Sprintf("dockerd sent user %q but the client certificate (serial %s) is %q", req.User, c.ID.Serial, leaf.Subject.CommonName)
		return c
	}
	return p.e.Identify(leaf)
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
