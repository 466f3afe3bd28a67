package caserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/cloudflare/cfssl/api"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// RotationStore makes a rotation of the CA durable: package cahost keeps
// it in the state directory, each step one change of the engine's journal
// (engine.BeginRotation, SwitchRotation, FinishRotation) with the step's
// inventory change db. Each method returns once the step is on disk and
// in the inventory; the Server changes what it signs with only after
// that, so a CA killed at any instant restarts in the step it last
// answered (or the one before, when it answered nothing).
type RotationStore interface {
	// BeginRotation records next as the next CA (step trust), begun at
	// began (see caState.trustBegan), and db (the next CA's record).
	BeginRotation(next *pki.CA, began time.Time, db store.Change) error
	// SwitchRotation records step switch.
	SwitchRotation() error
	// FinishRotation makes the next CA the only one, and certPEM and
	// keyPEM (from it) the listener's certificate, and records db (the
	// listener's record, the certificates cut).
	FinishRotation(certPEM, keyPEM []byte, db store.Change) error
}

// memoryRotation keeps a rotation in memory only, and its inventory
// changes in the inventory: a Server without a RotationStore (tests,
// internal/catest).
type memoryRotation struct{ inv engine.Inventory }

func (m memoryRotation) BeginRotation(_ *pki.CA, _ time.Time, db store.Change) error {
	return m.inv.Apply(db)
}
func (memoryRotation) SwitchRotation() error { return nil }
func (m memoryRotation) FinishRotation(_, _ []byte, db store.Change) error {
	return m.inv.Apply(db)
}

// caState is what the Server signs with and trusts; it is replaced whole
// (Server.state), never changed, so a request sees one step throughout.
type caState struct {
	step     string // fleet.RotateNone, RotateTrust or RotateSwitch
	cur      *pki.CA
	next     *pki.CA // nil outside a rotation
	roots    *x509.CertPool
	listener *tls.Certificate // nil until TLSConfig
	// listenerSerial is the listener certificate's serial: it is not a
	// holder's certificate, and the finish replaces it.
	listenerSerial string
	// trustBegan is when the trust step began (zero outside a
	// rotation): a certificate issued before it came with a ca.pem of
	// the current CA alone (engine.OldOnlyClients).
	trustBegan time.Time
}

func newState(step string, cur, next *pki.CA, listener *tls.Certificate, listenerSerial string, trustBegan time.Time) *caState {
	st := &caState{step: step, cur: cur, next: next, roots: x509.NewCertPool(), listener: listener, listenerSerial: listenerSerial, trustBegan: trustBegan}
	st.roots.AddCert(cur.Cert)
	if next != nil {
		st.roots.AddCert(next.Cert)
	}
	return st
}

// issueTime is the time of issue of a certificate signed at now: not
// before trustBegan during a rotation. x509 keeps whole seconds, and
// trustBegan is the whole second after the trust step's clock reading, so
// a certificate answered with both CAs has a time of issue
// (pki.IssuedAt) not before trustBegan, and one answered before the step,
// with the current CA alone, one before it.
func (st *caState) issueTime(now time.Time) time.Time {
	if st.next != nil && now.Before(st.trustBegan) {
		return st.trustBegan
	}
	return now
}

// signer is the CA that signs new certificates and the revocation list.
func (st *caState) signer() *pki.CA {
	if st.step == fleet.RotateSwitch {
		return st.next
	}
	return st.cur
}

// cas are the CA certificates, current first.
func (st *caState) cas() []*pki.CA {
	if st.next != nil {
		return []*pki.CA{st.cur, st.next}
	}
	return []*pki.CA{st.cur}
}

// caPEM is PathCA and every CertResponse.CA: during a rotation both CAs,
// so that every bundle renewed then trusts the next CA before anything
// is signed by it.
func (st *caState) caPEM() []byte {
	var b []byte
	for _, ca := range st.cas() {
		b = append(b, ca.CertPEM...)
	}
	return b
}

func describeCA(ca *pki.CA) fleet.RotationCA {
	fp := fleet.Fingerprint(ca.Cert)
	return fleet.RotationCA{Subject: ca.Cert.Subject.CommonName, Serial: pki.Serial(ca.Cert), Fingerprint: hex.EncodeToString(fp[:]), NotAfter: ca.Cert.NotAfter.UTC()}
}

func certOf(r store.Record) fleet.RotationCert {
	return fleet.RotationCert{Kind: r.Kind, Name: r.Name, Serial: r.Serial, NotAfter: r.NotAfter}
}

// engineStep is the step as the engine numbers it.
func engineStep(step string) engine.Step {
	switch step {
	case fleet.RotateTrust:
		return engine.StepTrust
	case fleet.RotateSwitch:
		return engine.StepSwitched
	}
	return engine.NotRotating
}

// What is on which CA at the steps, online: the CA signs with the old CA
// until the switch.
var (
	errNotSwitched     = errors.New("the CA still signs with the old CA")
	errAlreadySwitched = errors.New("the CA already signs with the new CA")
)

// stepRefused is the 409 of a step refused by the engine's rules
// (engine.CheckBegin, CheckSwitch, CheckFinish), its hint in the message.
func stepRefused(err error) *httpError {
	var e *engine.Error
	if !errors.As(err, &e) {
		return internal(err)
	}
	sep := "; "
	if errors.Is(err, engine.ErrRotationInProgress) {
		sep = ": "
	}
	return conflict("%v%s%s", e.Err, sep, e.Hint)
}

func conflict(format string, a ...any) *httpError {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf(format, a...)}
}

// rotate runs a step of the rotation (fleet.PathRotate). The wording of
// its refusals is the local rotation's (authority/rotate.go).
func (s *Server) rotate(w http.ResponseWriter, r *http.Request) error {
	var req fleet.RotateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	var resp *fleet.RotateResponse
	var err error
	switch req.Step {
	case fleet.RotateStatus:
		resp, err = s.RotationStatus()
	case fleet.RotateTrust:
		resp, err = s.BeginRotation()
	case fleet.RotateSwitch:
		resp, err = s.SwitchRotation(req.Force)
	case fleet.RotateFinish:
		resp, err = s.FinishRotation(req.Force)
	default:
		return badRequest("rotation step %q: want %q, %q, %q or %q", req.Step, fleet.RotateTrust, fleet.RotateSwitch, fleet.RotateFinish, fleet.RotateStatus)
	}
	if err != nil {
		return err
	}
	return api.SendResponse(w, resp)
}

// serveRotation answers where the rotation is (fleet.PathRotation).
func (s *Server) serveRotation(w http.ResponseWriter, r *http.Request) error {
	st := s.state.Load()
	return api.SendResponse(w, fleet.RotationState{Step: st.step, CA: string(st.caPEM()), Signer: pki.Serial(st.signer().Cert), TrustBegan: st.trustBegan.UTC()})
}

// RotationStatus is the rotation now: its step, the CAs, the good
// certificates by CA and kind, and those that hold up a finish.
func (s *Server) RotationStatus() (*fleet.RotateResponse, error) {
	return s.rotationStatus(s.state.Load(), nil)
}

func (s *Server) rotationStatus(st *caState, cut []store.Record) (*fleet.RotateResponse, error) {
	resp := &fleet.RotateResponse{Step: st.step, Current: describeCA(st.cur), Signer: pki.Serial(st.signer().Cert), CA: string(st.caPEM()), Counts: []fleet.RotationCount{}}
	if st.next != nil {
		n := describeCA(st.next)
		resp.Next = &n
	}
	good, err := s.st.ByStatus(store.StatusGood)
	if err != nil {
		return nil, internal(err)
	}
	now := s.now()
	counts := map[[2]string]int{}
	for _, rec := range good {
		if rec.Kind != store.KindCA && now.Before(rec.NotAfter) {
			counts[[2]string{rec.CASerial, string(rec.Kind)}]++
		}
	}
	if st.next != nil {
		old, err := engine.OldCertificates(s.st, pki.Serial(st.cur.Cert), st.listenerSerial, now)
		if err != nil {
			return nil, internal(err)
		}
		for _, rec := range old {
			resp.Blocking = append(resp.Blocking, certOf(rec))
		}
	}
	for _, ca := range st.cas() {
		for _, k := range []store.Kind{store.KindServer, store.KindClient} {
			resp.Counts = append(resp.Counts, fleet.RotationCount{CASerial: pki.Serial(ca.Cert), Kind: k, Good: counts[[2]string{pki.Serial(ca.Cert), string(k)}]})
		}
	}
	for _, rec := range cut {
		resp.Cut = append(resp.Cut, certOf(rec))
	}
	if st.step == fleet.RotateTrust {
		resp.TrustBegan = st.trustBegan.UTC()
		left, err := s.switchBlocking(st)
		if err != nil {
			return nil, internal(err)
		}
		for _, rec := range left {
			resp.SwitchBlocking = append(resp.SwitchBlocking, certOf(rec))
		}
	}
	return resp, nil
}

// NextCAName is the common name of a next CA made on day now.
func NextCAName(now time.Time) string {
	return "dtls online CA " + now.UTC().Format("2006-01-02")
}

// BeginRotation is step 1 (trust): a next CA of the current one's key
// type is made and recorded (RotationStore, then the inventory); the
// current CA still signs, and every answer's CA certificates hold both.
func (s *Server) BeginRotation() (*fleet.RotateResponse, error) {
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	st := s.state.Load()
	if err := engine.CheckBegin(engineStep(st.step)); err != nil {
		return nil, stepRefused(err)
	}
	now := s.now()
	next, _, err := engine.NextCA(st.cur, pki.CARequest{CommonName: NextCAName(now), Now: now}, "")
	if err != nil {
		return nil, internal(err)
	}
	// No certificate is issued from here to the new state (issueMu):
	// each one issued before has a time of issue before began (see
	// caState.issueTime).
	s.issueMu.Lock()
	defer s.issueMu.Unlock()
	began := s.now().Truncate(time.Second).Add(time.Second)
	// The next CA is recorded in the same change, so that `dtls list`
	// shows it.
	if err := s.rotation.BeginRotation(next, began, store.Change{Insert: []store.Record{engine.CARecord(next, "")}}); err != nil {
		return nil, internal(err)
	}
	nst := newState(fleet.RotateTrust, st.cur, next, st.listener, st.listenerSerial, began)
	s.state.Store(nst)
	s.crl.invalidate()
	return s.rotationStatus(nst, nil)
}

// SwitchRotation is step 2 (switch): new certificates, enrolled or
// renewed, are signed by the next CA, and the Docker hosts' server
// certificates of the next CA reach laptops as the hosts renew. It is
// refused, as the local switch is (engine.OldOnlyClients), while a good
// client certificate was handed out before the trust step with a ca.pem
// of the current CA alone, unless force: those clients are then listed as
// cut (Cut), they will not verify a host renewed from now on. Operators
// are not counted: they talk only to this CA, whose listener keeps its
// certificate of the current CA until the finish, and 'dtls rotate-ca
// --finish' renews the operator's own certificate first.
func (s *Server) SwitchRotation(force bool) (*fleet.RotateResponse, error) {
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	st := s.state.Load()
	if err := engine.CheckSwitch(engineStep(st.step), errAlreadySwitched); err != nil {
		return nil, stepRefused(err)
	}
	left, err := s.switchBlocking(st)
	if err != nil {
		return nil, internal(err)
	}
	if len(left) > 0 && !force {
		e := &engine.SwitchBlockingError{Left: left}
		return nil, conflict("%v: %s; let each renew first (its 'dtls agent' renews at its next run during a rotation, 'dtls agent --now' at once; see 'dtls rotate-ca --status'), or pass --force to switch anyway",
			e, e.Holders(20))
	}
	if err := s.rotation.SwitchRotation(); err != nil {
		return nil, internal(err)
	}
	nst := newState(fleet.RotateSwitch, st.cur, st.next, st.listener, st.listenerSerial, st.trustBegan)
	s.state.Store(nst)
	s.crl.invalidate()
	return s.rotationStatus(nst, left)
}

// switchBlocking are the clients that hold up the switch (SwitchRotation).
func (s *Server) switchBlocking(st *caState) ([]store.Record, error) {
	if st.next == nil {
		return nil, nil
	}
	return engine.SwitchBlocking(s.st, pki.Serial(st.cur.Cert), st.trustBegan, s.now())
}

// FinishRotation is step 3: the next CA becomes the only one. It refuses
// before the switch, and while good, unexpired certificates of the old
// CA remain (unless force: they are marked superseded, so that every
// plugin refuses them). The listener's certificate is issued again from
// the new CA, recorded, and written (RotationStore) before it is served.
func (s *Server) FinishRotation(force bool) (*fleet.RotateResponse, error) {
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	st := s.state.Load()
	if err := engine.CheckFinish(engineStep(st.step), errNotSwitched); err != nil {
		return nil, stepRefused(err)
	}
	if st.listener == nil || st.listener.Leaf == nil {
		return nil, internal(errors.New("finish the rotation: the server has no listener certificate to issue again"))
	}
	now := s.now()
	left, err := engine.OldCertificates(s.st, pki.Serial(st.cur.Cert), st.listenerSerial, now)
	if err != nil {
		return nil, internal(err)
	}
	if len(left) > 0 && !force {
		e := &engine.BlockingError{Left: left}
		return nil, conflict("cannot drop the old CA yet: %v: %s; renew them (dtls agent, dtls renew --server) or revoke them, see 'dtls rotate-ca --status', or pass --force to cut them off",
			e, e.Holders(20))
	}
	old := st.listener.Leaf
	hosts := slices.Clone(old.DNSNames)
	for _, ip := range old.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	listener, listenerRec, err := engine.IssueListener(st.next, old.Subject.CommonName, hosts, now)
	if err != nil {
		return nil, internal(fmt.Errorf("listener certificate from the new CA: %w", err))
	}
	pair, err := s.listenerPair(st.next, listener.CertPEM, listener.KeyPEM)
	if err != nil {
		return nil, internal(err)
	}
	ch := store.Change{Insert: []store.Record{listenerRec}}
	if rec, err := s.st.Get(st.listenerSerial); err != nil {
		return nil, internal(err)
	} else if rec != nil && rec.Status == store.StatusGood {
		ch.Supersede = append(ch.Supersede, rec.Serial)
	}
	for _, r := range left {
		ch.Supersede = append(ch.Supersede, r.Serial)
	}
	// Recorded in the change that writes it, before it is served.
	if err := s.rotation.FinishRotation(listener.CertPEM, listener.KeyPEM, ch); err != nil {
		return nil, internal(err)
	}
	nst := newState(fleet.RotateNone, st.next, nil, pair, pki.Serial(listener.Cert), time.Time{})
	s.state.Store(nst)
	s.crl.invalidate()
	return s.rotationStatus(nst, left)
}

// recordCA records a CA certificate in the inventory when it is not there
// yet, so that `dtls list` shows it.
func (s *Server) recordCA(ca *pki.CA) error {
	serial := pki.Serial(ca.Cert)
	rec, err := s.st.Get(serial)
	if err != nil || rec != nil {
		return err
	}
	return s.st.Apply(store.Change{Insert: []store.Record{engine.CARecord(ca, "")}})
}
