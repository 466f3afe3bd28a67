package authz

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Engine is the front-end-neutral half of authorization: the policy file
// and its reloads, the identification of a client certificate through the
// Inventory, the decision, warn mode, the audit trail and the owners'
// book. The plugin (dockerd's authorization protocol) and the gateway (a
// mutual TLS proxy in front of dockerd) are its two faces; a decision
// never depends on which of them asked.
type Engine struct {
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
	prefix string
	logged map[string]time.Time

	// names keeps the serial and issuer strings of the certificates
	// seen (names.go): formatting them was a third of what identifying
	// a caller cost the gateway on every request.
	names certNames

	// creating are the network names a create was allowed for and not
	// answered yet (networkClaims).
	creating networkClaims

	// denials bounds what each caller's denied calls write to the
	// trail (denials.go).
	denials denials
}

// networkClaims are the names of networks being created. The policy
// refuses a name a network has (checkNetworkNameFree), but two creates
// of one name at once both find none, and dockerd 20.10 makes both: the
// name is then ambiguous to it, its first owner's included. A create
// claims its name before the policy looks it up and keeps it until its
// answer (its refusal gives it back), or for claimTTL when the answer
// never comes back (a gateway observes only successful answers); a
// create of a claimed name is refused.
type networkClaims struct {
	mu sync.Mutex
	at map[string]time.Time
}

// claimTTL bounds how long a create's claim on a name lasts unanswered.
const claimTTL = 30 * time.Second

// claim takes name for a create at now; false when another holds it.
func (n *networkClaims) claim(name string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.at[name]; ok && now.Sub(t) < claimTTL {
		return false
	}
	if n.at == nil {
		n.at = map[string]time.Time{}
	}
	for k, t := range n.at {
		if now.Sub(t) >= claimTTL {
			delete(n.at, k)
		}
	}
	n.at[name] = now
	return true
}

// release gives name back: its create is answered, or refused.
func (n *networkClaims) release(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.at, name)
}

// networkName is the Name of a network create's body ("" when none).
func networkName(body []byte) string {
	var b struct{ Name string }
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Name
}

// NewEngine makes an engine. An invalid or missing policy file is not an
// error: the engine logs why and denies every TCP request with a message
// saying why (fail closed) until the file is fixed; the local unix socket
// is then decided by the built-in policy. Only an invalid Mode is an
// error.
func NewEngine(c Config) (*Engine, error) {
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
	e := &Engine{cfg: c, now: c.Now, every: c.ReloadEvery, builtin: DefaultPolicy(), log: c.Log, prefix: c.LogPrefix, logged: map[string]time.Time{}}
	if e.now == nil {
		e.now = time.Now
	}
	if e.every <= 0 {
		e.every = defaultReloadEvery
	}
	if e.log == nil {
		e.log = io.Discard
	}
	if e.prefix == "" {
		e.prefix = "dtls-authz: "
	}
	if c.PolicyPath == "" {
		e.state.Store(&policyState{policy: e.builtin})
	} else {
		e.state.Store(&policyState{})
		e.reload()
		e.lastCheck.Store(e.now().UnixNano())
	}
	return e, nil
}

// Mode is the engine's mode (ModeEnforce or ModeWarn).
func (e *Engine) Mode() Mode { return e.cfg.Mode }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.now() }

// Caller is who sent a request, and why they are refused, if they are.
type Caller struct {
	ID Identity
	// Refused says why the caller is refused before any policy ("" when
	// accepted); Rule names that refusal.
	Refused string
	Rule    string
	// Superseded: Refused only because a renewal replaced the
	// certificate (the inventory's error has a Superseded method that
	// says so); its holder is not revoked.
	Superseded bool
	// CN and Issuer are the client certificate's subject common name and
	// issuer (its RFC 2253 string), for the audit record; empty without
	// a certificate.
	CN, Issuer string
	// UID, PID and Socket are a local caller's peer credentials and the
	// gateway's socket it called (IdentifyLocal), for the audit record.
	UID    string
	PID    int
	Comm   string
	Socket string
}

// Unix is the caller of dockerd's local unix socket.
func Unix() Caller { return Caller{ID: Identity{Source: SourceUnix}} }

// Identify works out who holds a client certificate (the first peer
// certificate: crypto/tls puts the leaf first). The inventory, not the
// CA signature TLS checked, says whether it is still good, so that a
// revoked or superseded certificate is refused at its next request
// although neither dockerd nor crypto/tls checks a CRL (moby#27778).
func (e *Engine) Identify(leaf *x509.Certificate) Caller {
	n := e.names.of(leaf)
	c := Caller{ID: Identity{User: leaf.Subject.CommonName, Serial: n.serial, Source: SourceTCP},
		CN: leaf.Subject.CommonName, Issuer: n.issuer}
	if e.cfg.Inventory == nil {
		c.Rule, c.Refused = ruleNoInventory, "the certificate inventory could not be opened: every TCP request is denied"
		return c
	}
	user, role, err := e.cfg.Inventory.Identify(leaf)
	if err != nil {
		c.Rule, c.Refused = ruleNotAccepted, err.Error()
		var s interface{ Superseded() bool }
		c.Superseded = errors.As(err, &s) && s.Superseded()
		e.logf("identify "+c.ID.Serial, "certificate %q serial %s refused: %v", leaf.Subject.CommonName, c.ID.Serial, err)
		return c
	}
	if user == "" || strings.ContainsRune(user, ':') {
		// The owners' book and the audit trail tell a certificate holder
		// from a local account ("unix:alice", "uid:1000"), a
		// per-container socket ("socket:traefik") and dockerd's own
		// socket ("unix:") by the ':' no certificate name has
		// (pki.ValidateName), and from the unknown owner ("") by a
		// name at all. dtls's issuers check the name, but a fleet host
		// takes any certificate its CA signed: one signed outside dtls
		// as "socket:traefik" or "unix:" would own what those created.
		c.Rule, c.Refused = ruleNotAccepted, fmt.Sprintf("certificate serial %s names %q, which is not a client name dtls issues (letters, digits, '.', '_', '@', '-'): it could pass for a local account or socket", c.ID.Serial, user)
		e.logf("identify "+c.ID.Serial, "certificate %q serial %s refused: its name is not a client name", leaf.Subject.CommonName, c.ID.Serial)
		return c
	}
	c.ID.User, c.ID.Role = user, role
	return c
}

// Verdict is the engine's answer to one request: Msg says why a denial
// is one ("denied for NAME (role R): REASON (rule RULE)").
type Verdict struct {
	Allow bool
	Msg   string
}

// Decide decides one API request for c and returns the answer and its
// request-phase audit record (not yet written: Audit). Body is the
// request's whole body where the policy reads one (nil where it does not),
// Headers the request's headers (last value wins).
func (e *Engine) Decide(c Caller, method, uri string, body []byte, headers map[string]string) (Verdict, AuditRecord) {
	rec := AuditRecord{Time: e.now(), Phase: PhaseRequest, Method: method, URI: uri}
	rec.User, rec.Serial, rec.Source = c.ID.User, c.ID.Serial, string(c.ID.Source)
	rec.CN, rec.Issuer = c.CN, c.Issuer
	rec.UID, rec.PID, rec.Comm, rec.Socket = c.UID, c.PID, c.Comm, c.Socket
	if method == "" || uri == "" {
		rec.Rule, rec.Reason = ruleMalformed, "malformed request: no method or no URI"
		e.logf("malformed", "request phase: %s", rec.Reason)
		return e.verdict(&rec, false, "", rec.Reason), rec
	}
	rec.Path, _ = CanonicalPath(uri)
	if c.Refused != "" {
		rec.Rule, rec.Reason = c.Rule, c.Refused
		return e.verdict(&rec, false, "", rec.Reason), rec
	}
	st := e.policy()
	pol := st.policy
	if pol == nil {
		if c.ID.Source != SourceUnix {
			rec.Rule = rulePolicyInvalid
			rec.Reason = fmt.Sprintf("every TCP request is denied until the policy is fixed: %v", st.err)
			return e.verdict(&rec, false, e.subject(c.ID, nil), rec.Reason), rec
		}
		pol = e.builtin
	}
	if c.ID.Source == SourceLocal {
		rec.Role = c.ID.Role
	}
	if c.ID.Source == SourceTCP {
		rec.Role = c.ID.Role
		if rec.Role == "" {
			rec.Role = pol.DefaultRole()
		}
	}
	if c.ID.Source == SourceUnix && e.cfg.Objects != nil && e.cfg.Objects.docker.isLookup(headers) &&
		(method == "GET" || method == "HEAD") {
		// The plugin's own lookup of an object, through dockerd's
		// socket: allowed whatever the policy says of that socket.
		rec.Rule, rec.Reason = ruleLookup, "the plugin looks an object up"
		return e.verdict(&rec, true, "", rec.Reason), rec
	}
	preq := Request{Method: method, URI: uri, Body: body, Headers: headers, Env: &Env{Protected: e.cfg.Protected, HostCgroupns: HostCgroupnsDefault()}}
	if e.cfg.Objects != nil {
		preq.Env.Objects = e.cfg.Objects
	}
	// A network create claims its name before the policy looks it up,
	// and keeps it until its answer: another create of the name looks
	// it up only after the first's network exists, or is refused.
	netName, claimed := "", false
	if method == "POST" && rec.Path == "/networks/create" {
		if netName = networkName(body); netName != "" {
			claimed = e.creating.claim(netName, e.now())
		}
	}
	d := pol.Decide(c.ID, preq)
	if d.Path != "" {
		rec.Path = d.Path
	}
	switch {
	case netName == "":
	case d.Allow && !claimed:
		d.Allow, d.Rule = false, d.Rule+": Name"
		d.Reason = fmt.Sprintf("a network named %q is being created by another call: a second one would make the name ambiguous to dockerd", netName)
	case !d.Allow && claimed:
		e.creating.release(netName)
	}
	rec.Fields, rec.Rule, rec.Reason = d.Fields, d.Rule, d.Reason
	reason := d.Reason
	if reason == "" {
		reason = "not allowed by the policy"
	}
	return e.verdict(&rec, d.Allow, e.subject(c.ID, pol), reason), rec
}

// Internal is the answer to a request whose handling panicked: a denial
// (allowed and recorded as warn in warn mode), with the stack logged.
func (e *Engine) Internal(v any, stack []byte) (Verdict, AuditRecord) {
	e.logf("", "internal error in the request phase: %v\n%s", v, stack)
	rec := AuditRecord{Time: e.now(), Phase: PhaseRequest, Rule: ruleInternal, Reason: fmt.Sprintf("internal error: %v", v)}
	return e.verdict(&rec, false, "", rec.Reason), rec
}

// verdict sets rec.Decision and makes the answer: in warn mode a denial
// is recorded as DecisionWarn and allowed.
func (e *Engine) verdict(rec *AuditRecord, allow bool, subject, reason string) Verdict {
	switch {
	case allow:
		rec.Decision = DecisionAllow
		return Verdict{Allow: true}
	case e.cfg.Mode == ModeWarn:
		rec.Decision = DecisionWarn
		return Verdict{Allow: true}
	}
	rec.Decision = DecisionDeny
	msg := "denied"
	if subject != "" {
		msg += " for " + subject
	}
	msg += ": " + reason
	if rec.Rule != "" {
		msg += " (rule " + rec.Rule + ")"
	}
	return Verdict{Msg: msg}
}

// subject names who a denial is for, as the Docker user reads it.
func (e *Engine) subject(id Identity, pol *Policy) string {
	if id.Source == SourceUnix {
		return "the local unix socket"
	}
	role := id.Role
	if role == "" && pol != nil && id.Source == SourceTCP {
		role = pol.DefaultRole()
	}
	if role == "" {
		return id.User
	}
	return fmt.Sprintf("%s (role %s)", id.User, role)
}

// RoleOf is the role a caller's requests are decided for: its own, else
// (a certificate holder's) the policy's default; "" for dockerd's unix
// socket or a refused caller.
func (e *Engine) RoleOf(c Caller) string {
	if c.ID.Source == SourceUnix || c.Refused != "" {
		return ""
	}
	if c.ID.Role != "" || c.ID.Source == SourceLocal {
		return c.ID.Role
	}
	if pol := e.state.Load().policy; pol != nil {
		return pol.DefaultRole()
	}
	return ""
}

// Observe follows one answered API call in the owners' book: creates
// record their caller as the owner, renames and removals follow. A
// refused caller's calls are not followed.
func (e *Engine) Observe(c Caller, method, uri string, status int, reqBody, respBody []byte) {
	if c.Refused != "" || e.cfg.Objects == nil {
		return
	}
	p, _ := CanonicalPath(uri)
	if method == "POST" && p == "/networks/create" {
		e.creating.release(networkName(reqBody))
	}
	req := &authzRequest{RequestMethod: method, RequestURI: uri, RequestBody: reqBody, ResponseStatusCode: status, ResponseBody: respBody}
	if err := e.cfg.Objects.observe(ownerOf(c.ID), req, p); err != nil {
		e.logf("owners", "%v", err)
	}
}

// Observes reports whether the answer to method on the canonical path p
// feeds the owners' book (Observe): a create, an exec, a rename, a
// removal, a build (its tags' namespace). ObservesBody says whether
// Observe needs the answer's body: a build's, a stream, it does not.
func Observes(method, p string) bool {
	return ObservesBody(method, p) || method == "POST" && p == "/build"
}

// ObservesBody reports whether Observe reads the answer to method on p:
// the IDs creates answer with.
func ObservesBody(method, p string) bool {
	switch method {
	case "DELETE":
		return strings.HasPrefix(p, "/containers/") || strings.HasPrefix(p, "/volumes/") || strings.HasPrefix(p, "/networks/")
	case "POST":
		return p == "/containers/create" || p == "/volumes/create" || p == "/networks/create" ||
			strings.HasPrefix(p, "/containers/") && (strings.HasSuffix(p, "/exec") || strings.HasSuffix(p, "/rename"))
	}
	return false
}

// ReadsBody reports whether the policy decides method on uri by its JSON
// body (a create, an exec, a network connect ...): a front end that reads
// bodies itself must give Decide the whole body of those, and forward
// exactly what was decided on.
func ReadsBody(method, uri string) bool {
	u, err := parseURI(uri)
	if err != nil {
		return false
	}
	rt := routes().resolve(method, splitPath(u.path))
	if rt == nil {
		return false
	}
	switch rt.body {
	case bodyCreate, bodyExec, bodyService, bodyVolume, bodyNetwork, bodyConnect:
		return true
	}
	return false
}

// Audit writes a record that decides nothing (a response, a session cut)
// to the audit trail; a failure is logged and counted (Record).
func (e *Engine) Audit(rec AuditRecord) { e.Record(rec, false) }

// RecordsInput reports whether the policy in force has the gateway record
// what holders of role type into exec and attach streams (a role's
// "record_input"). A policy that cannot be read denies every request,
// so no stream opens to be recorded.
func (e *Engine) RecordsInput(role string) bool {
	st := e.policy()
	return st.policy != nil && st.policy.RecordsInput(role)
}

// Logf writes one operational message to Log; messages with the same
// non-empty key are written at most once a minute.
func (e *Engine) Logf(key, format string, args ...any) { e.logf(key, format, args...) }

// ErrorLog is Log for an http.Server's ErrorLog, serialised with Logf.
func (e *Engine) ErrorLog() io.Writer { return lockedWriter{e} }

// serial is a certificate's serial as the inventory writes it (pki.Serial).
func serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

// policy returns the policy state, first reloading the file if it is time
// to check it. One caller checks at a time; the others go on with the
// state in force.
func (e *Engine) policy() *policyState {
	if e.cfg.PolicyPath != "" {
		now, last := e.now().UnixNano(), e.lastCheck.Load()
		if (now-last >= int64(e.every) || now < last) && e.lastCheck.CompareAndSwap(last, now) && e.reloadMu.TryLock() {
			e.reload()
			e.reloadMu.Unlock()
		}
	}
	return e.state.Load()
}

// reload loads the policy file if it changed since it was last loaded.
func (e *Engine) reload() {
	path, old := e.cfg.PolicyPath, e.state.Load()
	st, err := statPolicy(path)
	if err != nil && e.cfg.PolicyOptional && errors.Is(err, fs.ErrNotExist) {
		if !old.absent {
			if old.exists || old.err != nil {
				e.logf("", "policy %q removed: the built-in policy applies", path)
			} else {
				e.logf("", "policy %q absent: the built-in policy applies until it is created", path)
			}
		}
		e.state.Store(&policyState{policy: e.builtin, absent: true})
		return
	}
	if err != nil {
		next := &policyState{err: fmt.Errorf("policy %q cannot be read: %w", path, unwrapPath(err))}
		if old.err == nil || old.err.Error() != next.err.Error() {
			e.logf("", "%v: every TCP request is denied until the policy is fixed", next.err)
		}
		e.state.Store(next)
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
		e.logf("", "%v: every TCP request is denied until the policy is fixed", next.err)
	} else if old.absent {
		e.logf("", "policy %q created: loaded in place of the built-in policy", path)
	} else if old.exists || old.err != nil {
		e.logf("", "policy %q reloaded", path)
	} else {
		e.logf("", "policy %q loaded", path)
	}
	e.state.Store(next)
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
func (e *Engine) logf(key, format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if key != "" {
		now := e.now()
		if t, ok := e.logged[key]; ok && now.Sub(t) < logEvery && !now.Before(t) {
			return
		}
		if len(e.logged) > 1000 {
			clear(e.logged)
		}
		e.logged[key] = now
	}
	fmt.Fprintf(e.log, e.prefix+format+"\n", args...)
}

// lockedWriter serialises http.Server's error log with logf.
type lockedWriter struct{ e *Engine }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.e.logMu.Lock()
	defer w.e.logMu.Unlock()
	return w.e.log.Write(b)
}
