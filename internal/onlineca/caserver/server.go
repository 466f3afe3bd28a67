// Package caserver is dtls's online CA: the HTTPS server behind `dtls ca
// serve` that speaks package fleet's protocol. It enrols hosts and
// developers with one-time tokens (only a CSR travels: the key is made
// where it is used), renews certificates for the holder of a current, good
// one over mutual TLS, serves the CA certificate and the signed revocation
// list every authorization plugin follows, and gives operators (role
// fleet.OperatorRole) the inventory, revocation and new tokens.
//
// It is built from cfssl's packages: answers are cfssl's API envelope
// (api.Response, written with api.SendResponse and api.NewErrorResponse),
// cfssl's own info handler is mounted at /api/v1/cfssl/info, certificates
// are signed by pki (cfssl's local signer) and recorded in the store
// (cfssl's certdb schema, SQLite or PostgreSQL).
//
// Every certificate is recorded, in the same transaction that uses its
// token or supersedes its predecessor, before it is sent: a CA killed at
// any instant has never handed out a certificate that is missing from the
// inventory (and so could not be revoked).
//
// The CA is rotated in the local rotation's three steps (trust, switch,
// finish) through the operator path fleet.PathRotate (rotate.go); each
// step is made durable by the Config's RotationStore before it is in
// force.
//
// It is the HTTP face of the CA engine (package engine), which the CA
// host's command line (package authority) uses too: signing from a CSR,
// the renewal limit, revocation, the revocation list's entries and
// numbers, a rotation's rules, its steps' files and their journal are the
// engine's. This package keeps HTTP, tokens and who may call what.
//
// The package never prints: it logs one line per request to the
// slog.Logger of its Config.
package caserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/cfssl/api"
	"github.com/cloudflare/cfssl/api/info"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Limits and timeouts of the server.
const (
	// MaxBodyBytes bounds a request body: a CSR is about 1 KiB (a
	// 4096-bit RSA one under 2 KiB), every JSON body is smaller.
	MaxBodyBytes = 64 << 10
	// MaxTokenTTL bounds the lifetime of an enrolment token: a token is a
	// secret that enrols whoever has it, so it should be used within
	// hours, not stored.
	MaxTokenTTL = 7 * 24 * time.Hour
	// DefaultClientRole is the role of a client token that names none:
	// the least one of the built-in policy (authz.RoleReadonly), so that
	// a forgotten --role never gives more, whatever a host's
	// default_role is.
	DefaultClientRole = "readonly"
)

// Config is what a Server runs with.
type Config struct {
	// Store is the inventory: every certificate the CA signs, the roles
	// and the enrolment tokens. It must be writable.
	Store *store.Store
	// CA signs the certificates and the revocation list.
	CA *pki.CA
	// Next is the next CA during a rotation (nil outside one), and Step
	// the rotation's step: fleet.RotateTrust (CA still signs, both are
	// trusted) or fleet.RotateSwitch (Next signs). See BeginRotation.
	Next *pki.CA
	Step string
	// TrustBegan is when the rotation's trust step began (see
	// RotationStore.BeginRotation).
	TrustBegan time.Time
	// Rotation makes the steps of a rotation made through the API
	// durable (package cahost's state directory); nil keeps them in
	// memory only.
	Rotation RotationStore
	// ClientValidity is the lifetime of a client certificate
	// (fleet.DefaultClientValidity when zero).
	ClientValidity time.Duration
	// ServerValidity is the lifetime of a server certificate
	// (pki.DefaultServerValidity when zero).
	ServerValidity time.Duration
	// MaxListedRenewals bounds a holder's renewals by its superseded
	// certificates still in the revocation list (the package's
	// MaxListedRenewals when zero; no bound when negative, for tests
	// that renew in a loop on purpose).
	MaxListedRenewals int
	// Now is the clock of certificates, tokens and revocations (time.Now
	// when nil).
	Now func() time.Time
	// Log gets one line per request and the server's errors (none when
	// nil).
	Log *slog.Logger
	// Listener is the listener's certificate (PEM), whose names a host's
	// server certificate may not cover (checkNotListener), for a server
	// that issues tokens without serving ('dtls ca token'); TLSConfig's
	// certificate stands for it once serving.
	Listener []byte
}

// Server is the online CA. It is safe for use by several goroutines.
type Server struct {
	st *store.Store
	// state is the CAs, the rotation's step and the listener's
	// certificate: replaced whole by a step of the rotation, so that a
	// request sees one of them throughout.
	state    atomic.Pointer[caState]
	rotation RotationStore
	// rotMu makes the steps of the rotation one at a time.
	rotMu sync.Mutex
	// issueMu is held for reading by each enrolment and renewal, from
	// its clock reading to its answer, and for writing by the trust
	// step: a certificate is then issued either wholly before the step,
	// answered with the current CA alone, or wholly after it, answered
	// with both (engine.OldOnlyClients counts the first).
	issueMu   sync.RWMutex
	validity  engine.Validity
	maxListed int
	now       func() time.Time
	log       *slog.Logger
	info      http.Handler
	crl       crlCache
	// renewMu makes the renewals of one process one at a time, so that
	// an agent's two concurrent retries with one certificate get one
	// successor (the second finds the first's and answers it again);
	// a revocation and an enrolment's supersession hold it too, so
	// that no renewal lands between their choice of certificates and
	// their change. Renewals are rare (one per holder per day); a few
	// milliseconds each. Taken after issueMu.
	renewMu sync.Mutex
	// listenerNames are the DNS names and IP addresses of the listener's
	// certificate (checkNotListener); nil when unknown.
	listenerNames atomic.Pointer[[]string]
}

// setListener records the names of the listener's certificate.
func (s *Server) setListener(leaf *x509.Certificate) {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	s.listenerNames.Store(&names)
}

// New makes a Server. It records the CA certificate in the inventory when
// it is not there yet, so that `dtls list` shows it.
func New(c Config) (*Server, error) {
	if c.Store == nil {
		return nil, errors.New("online CA: no inventory")
	}
	if c.CA == nil {
		return nil, errors.New("online CA: no CA")
	}
	if c.ClientValidity < 0 || c.ServerValidity < 0 {
		return nil, errors.New("online CA: negative certificate validity")
	}
	step := c.Step
	switch {
	case step == "" && c.Next == nil:
		step = fleet.RotateNone
	case (step == fleet.RotateTrust || step == fleet.RotateSwitch) && c.Next != nil:
	default:
		return nil, fmt.Errorf("online CA: rotation step %q with next CA %v: want %q or %q with a next CA, or neither", c.Step, c.Next != nil, fleet.RotateTrust, fleet.RotateSwitch)
	}
	s := &Server{
		st: c.Store, rotation: c.Rotation,
		validity:  engine.Validity{Client: c.ClientValidity, Server: c.ServerValidity},
		maxListed: c.MaxListedRenewals, now: c.Now, log: c.Log,
	}
	if s.maxListed == 0 {
		s.maxListed = MaxListedRenewals
	}
	if s.validity.Client == 0 {
		s.validity.Client = fleet.DefaultClientValidity
	}
	if s.validity.Server == 0 {
		s.validity.Server = pki.DefaultServerValidity
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rotation == nil {
		s.rotation = memoryRotation{c.Store}
	}
	began := c.TrustBegan
	if c.Next != nil && began.IsZero() {
		// A rotation recorded without the time it began: the next
		// CA was made then, with pki's backdate of five minutes.
		began = c.Next.Cert.NotBefore.Add(5 * time.Minute)
	}
	s.state.Store(newState(step, c.CA, c.Next, nil, "", began))
	if c.Listener != nil {
		leaf, err := pki.ParseCertificate(c.Listener)
		if err != nil {
			return nil, fmt.Errorf("online CA: listener certificate: %w", err)
		}
		s.setListener(leaf)
	}

	// cfssl's info handler takes a signer.Signer; pki keeps its own
	// unexported. This one answers info requests only (the CA
	// certificate and a profile's usages) and never signs.
	key, err := pki.ParsePrivateKey(c.CA.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("online CA: %w", err)
	}
	infoSigner, err := local.NewSigner(key, c.CA.Cert, signer.DefaultSigAlgo(key), nil)
	if err != nil {
		return nil, fmt.Errorf("online CA: cfssl info signer: %w", err)
	}
	if s.info, err = info.NewHandler(infoSigner); err != nil {
		return nil, fmt.Errorf("online CA: cfssl info handler: %w", err)
	}

	// The next CA too: a dtls from before the trust step recorded it
	// in the change that writes it may have been killed in between;
	// this start records it.
	for _, ca := range s.state.Load().cas() {
		if err := s.recordCA(ca); err != nil {
			return nil, fmt.Errorf("online CA: record the CA certificate: %w", err)
		}
	}
	return s, nil
}

// CfsslInfoPath is where cfssl's own info handler is mounted (cfssl's
// client, `cfssl info -remote`, POSTs there).
const CfsslInfoPath = "/api/v1/cfssl/info"

// Handler serves package fleet's paths and cfssl's info. Answers are
// cfssl's JSON envelope, errors too; the CRL is DER and the CA PEM.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(fleet.PathEnroll, s.endpoint(http.MethodPost, s.enroll))
	mux.Handle(fleet.PathRenew, s.endpoint(http.MethodPost, s.renew))
	mux.Handle(fleet.PathCRL, s.endpoint(http.MethodGet, s.serveCRL))
	mux.Handle(fleet.PathCA, s.endpoint(http.MethodGet, s.serveCA))
	mux.Handle(fleet.PathRotation, s.endpoint(http.MethodGet, s.serveRotation))
	mux.Handle(fleet.PathCerts, s.endpoint(http.MethodGet, s.operator(s.certs)))
	mux.Handle(fleet.PathRevoke, s.endpoint(http.MethodPost, s.operator(s.revoke)))
	mux.Handle(fleet.PathTokens, s.endpoint(http.MethodPost, s.operator(s.tokens)))
	mux.Handle(fleet.PathRotate, s.endpoint(http.MethodPost, s.operator(s.rotate)))
	mux.Handle(CfsslInfoPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		s.info.ServeHTTP(w, r)
	}))
	mux.Handle("/", s.endpoint("", func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("no such path %q", r.URL.Path)}
	}))
	return s.logged(mux)
}

// TLSConfig is the listener's TLS configuration: certPEM and keyPEM are its
// server certificate from this CA (the CA certificate is sent after it, so
// that a client that has only the token's fingerprint can check the
// chain), TLS 1.2 or later, and a client certificate requested, with this
// CA as the acceptable issuer (both CAs during a rotation).
//
// The certificate is chosen at each handshake (GetCertificate): the finish
// of a rotation issues the listener's certificate again from the new CA,
// and it is served at once, without a restart. Until the finish the
// listener keeps its certificate of the old CA: every bundle, renewed or
// not, trusts the old CA, and those renewed during the rotation trust
// both, so either certificate verifies for them.
//
// The client certificate is requested (tls.RequestClientCert), not
// verified by the handshake (tls.VerifyClientCertIfGiven): crypto/tls
// verifies a client certificate for the clientAuth extended key usage
// only (handshake_server.go, processCertsFromClient), and a host renews
// its server certificate, which has serverAuth alone (pki signs one usage
// per certificate), with that certificate. Each handler that needs a
// client certificate verifies it against the CAs itself (peer), and
// checks the inventory besides; enrolment and the CRL need none.
func (s *Server) TLSConfig(certPEM, keyPEM []byte) (*tls.Config, error) {
	leaf, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("listener certificate: %w", err)
	}
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	st := s.state.Load()
	var issuer *pki.CA
	for _, ca := range st.cas() {
		if leaf.CheckSignatureFrom(ca.Cert) == nil {
			issuer = ca
		}
	}
	if issuer == nil {
		issuer = st.cur
	}
	pair, err := s.listenerPair(issuer, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	s.setListener(leaf)
	s.state.Store(newState(st.step, st.cur, st.next, pair, pki.Serial(leaf), st.trustBegan))
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.state.Load().listener, nil }
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		ClientAuth:     tls.RequestClientCert,
		ClientCAs:      st.roots,
		// The acceptable issuers follow the rotation's CAs.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: getCert,
				ClientAuth:     tls.RequestClientCert,
				ClientCAs:      s.state.Load().roots,
			}, nil
		},
	}, nil
}

// listenerPair checks the listener's certificate against its CA and
// makes the TLS certificate, with the CA certificate after it.
func (s *Server) listenerPair(ca *pki.CA, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	leaf, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("listener certificate: %w", err)
	}
	if err := pki.Verify(leaf, []*x509.Certificate{ca.Cert}, pki.KindServer, s.now()); err != nil {
		return nil, fmt.Errorf("listener certificate: %w", err)
	}
	chain := append(bytes.TrimSpace(pemOfCert(leaf)), '\n')
	chain = append(chain, ca.CertPEM...)
	pair, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("listener certificate and key: %w", err)
	}
	return &pair, nil
}

// Timeouts of HTTPServer: a client that sends its headers or body slowly
// cannot hold a connection (slowloris); a handler signs and commits one
// transaction, well within WriteTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 2 * time.Minute
)

// HTTPServer is an http.Server for Handler with tc (from TLSConfig), the
// timeouts above and its errors (TLS handshakes that fail) logged.
func (s *Server) HTTPServer(tc *tls.Config) *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tc,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxBodyBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// httpError is an answer other than 200: its message goes to the client
// in cfssl's envelope; err, when set, goes to the log only.
type httpError struct {
	status int
	msg    string
	err    error
	// retryAfter, when set, is sent as Retry-After (RFC 9110 10.2.3).
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, a ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func forbidden(format string, a ...any) *httpError {
	return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf(format, a...)}
}

// internal is an error of the server itself (the database, signing): the
// client learns only that it failed, the log has why.
func internal(err error) *httpError {
	return &httpError{status: http.StatusInternalServerError, msg: "internal error of the online CA (its log has the cause)", err: err}
}

// endpoint adapts h: the method is checked, the body bounded, and an error
// answered in cfssl's envelope. method "" takes any.
func (s *Server) endpoint(method string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		if method != "" && r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			err = &httpError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s not allowed: use %s", r.Method, method)}
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			err = h(w, r)
		}
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			he = internal(err)
		}
		if rec, ok := w.(*recorder); ok {
			rec.err = he
		}
		if he.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((he.retryAfter+time.Second-1)/time.Second), 10))
		}
		sendError(w, he.status, he.msg)
	})
}

// sendError writes cfssl's error envelope (api.NewErrorResponse; its code
// is the HTTP status, as cfssl's api.HandleError gives for an HTTPError)
// as JSON. api.HandleError itself answers with http.Error, whose
// Content-Type is text/plain.
func sendError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.NewErrorResponse(msg, status))
}

// decode reads a JSON body into v, refusing anything after the object.
// Unknown keys are ignored, as cfssl's handlers do: during a rolling
// upgrade of the fleet a newer agent may send a field this CA does not
// know yet.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)}
		}
		return badRequest("invalid JSON request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid JSON request body: data after the object")
	}
	return nil
}

// recorder keeps what logged reports of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	err    *httpError
	peer   string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// logged logs one line per request: who (address, and the client
// certificate's name and serial when one was presented), what, the
// status, how long, and for an error its cause (which the client does
// not see for internal errors).
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		attrs := []slog.Attr{
			slog.String("remote", r.RemoteAddr),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)),
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			c := r.TLS.PeerCertificates[0]
			attrs = append(attrs, slog.String("client", c.Subject.CommonName), slog.String("client_serial", pki.Serial(c)))
		}
		level := slog.LevelInfo
		if rec.err != nil {
			attrs = append(attrs, slog.String("error", rec.err.Error()))
			if rec.status >= 500 {
				level = slog.LevelError
			}
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}
