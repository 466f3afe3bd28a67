package caserver

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/api"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// operator lets h run only for the holder of a good, unexpired client
// certificate whose holder has the role fleet.OperatorRole in the
// inventory now (not merely in the certificate: a role taken away takes
// effect at once).
func (s *Server) operator(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		_, rec, err := s.peer(r)
		if err != nil {
			return err
		}
		if rec.Status != store.StatusGood {
			return refusedStatus(rec)
		}
		if rec.Kind != store.KindClient {
			return forbidden("certificate %q (serial %s) is a %s certificate, not an operator's", rec.Name, rec.Serial, rec.Kind)
		}
		role, err := s.st.Role(rec.Name)
		if err != nil {
			return internal(err)
		}
		if role != fleet.OperatorRole {
			return forbidden("client %q does not have the role %q that this call needs", rec.Name, fleet.OperatorRole)
		}
		return h(w, r)
	}
}

// certs answers the inventory (fleet.PathCerts), oldest first.
func (s *Server) certs(w http.ResponseWriter, r *http.Request) error {
	recs, err := s.st.All()
	if err != nil {
		return internal(err)
	}
	if recs == nil {
		recs = []store.Record{}
	}
	return api.SendResponse(w, recs)
}

// revoke revokes certificates (fleet.PathRevoke): every good certificate
// named Key, or the one certificate with serial Key (whatever its status
// but revoked), and answers the revoked records.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	var req fleet.RevokeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Key == "" {
		return badRequest("no key: give a name or a serial")
	}
	if !slices.Contains(reasonCodes(), req.Reason) {
		return badRequest("reason %d: want one of %s (RFC 5280 5.3.1)", req.Reason, reasonList())
	}
	// Which certificates is the engine's rule, the CA host's too: a
	// name revokes its superseded, unexpired certificates as well, which
	// the list then names as revoked, not superseded (a gateway cuts the
	// open connections of the one, not of the other).
	//
	// The targets are chosen before the change that revokes them: a
	// renewal committed in between (the holder of a stolen bundle racing
	// the operator) would leave its new certificate good while the answer
	// says the name is revoked. This process's renewals wait (renewMu);
	// another instance's on the same database are caught by choosing
	// again until nothing of the key is left standing.
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	var targets []store.Record
	for round := 0; ; round++ {
		rv, err := engine.Revoke(s.st, engine.RevokeRequest{Key: req.Key, Reason: req.Reason, Now: s.now()})
		if round > 0 && errors.Is(err, engine.ErrAlreadyRevoked) {
			break
		}
		if err != nil {
			return revokeError(req.Key, err)
		}
		if round == maxRevokeRounds {
			return internal(fmt.Errorf("revoke %q: certificates of it were still being issued after %d rounds", req.Key, round))
		}
		if err := s.st.Apply(rv.Change); err != nil {
			return internal(err)
		}
		s.crl.invalidate()
		targets = append(targets, rv.Targets...)
	}
	out := make([]store.Record, 0, len(targets))
	for _, t := range targets {
		rec, err := s.st.Get(t.Serial)
		if err != nil {
			return internal(err)
		}
		if rec != nil {
			out = append(out, *rec)
		}
	}
	return api.SendResponse(w, fleet.RevokeResponse{Revoked: out})
}

// checkNameCase refuses a name that differs only in the case of its
// letters from one the inventory has, as the CA host's issue does: two
// holders told apart by case alone are one person to a reader of the
// audit trail, two identities to the policy.
func (s *Server) checkNameCase(name string) error {
	have, err := s.st.HolderNames(s.now())
	if err != nil {
		return err
	}
	for _, h := range have {
		if h != name && strings.EqualFold(h, name) {
			return invalidf("%q differs only in case from %q, a name the inventory has: use that name, or one that differs in more than case", name, h)
		}
	}
	return nil
}

// checkNotListener refuses hosts of a server certificate that would
// also cover one of the listener's own names: the host holding it could
// then answer as this CA to agents and hosts that reach it by that name
// (a DNS answer or a route away), take their enrolment tokens, and give
// them a CA to trust (fleet pins the CA, not which of its server
// certificates answers). A wildcard counts as the TLS client matches it
// (x509's VerifyHostname). Loopback names are the exception: one reaches
// the machine it is on, where the host would have to be already.
func (s *Server) checkNotListener(hosts []string) error {
	names := s.listenerNames.Load()
	if names == nil {
		return nil
	}
	// A name and its fully qualified spelling ("ca.example.com.") reach
	// the same address, and a TLS client matches each against a name
	// spelt the same way: both sides are compared without the trailing
	// dot, in lower case.
	cover := &x509.Certificate{}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			cover.IPAddresses = append(cover.IPAddresses, ip)
		} else {
			cover.DNSNames = append(cover.DNSNames, strings.ToLower(strings.TrimSuffix(h, ".")))
		}
	}
	for _, n := range *names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if ip := net.ParseIP(n); n == "localhost" || ip != nil && ip.IsLoopback() {
			continue
		}
		if cover.VerifyHostname(n) == nil {
			return fmt.Errorf("hosts %s cover %q, a name of the CA's own listener: the host could answer as the CA", strings.Join(hosts, ", "), n)
		}
	}
	return nil
}

// maxRevokeRounds bounds the choices of a revocation's targets again
// (revoke): each round revokes what renewals made meanwhile.
const maxRevokeRounds = 8

// revokeError is the answer to a revocation engine.Revoke refused.
func revokeError(key string, err error) error {
	var caErr *engine.CAError
	switch {
	case errors.Is(err, engine.ErrNoSuchCertificate), errors.Is(err, engine.ErrAlreadyRevoked):
		return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("no certificate named %q, or with that serial, that is not already revoked", key)}
	case errors.As(err, &caErr):
		return badRequest("%q is a CA certificate: the online CA does not revoke itself", key)
	}
	// Find's refusal of a key, or a key of more than one holder.
	return badRequest("%v", err)
}

func reasonCodes() []int {
	var codes []int
	for _, c := range pki.Reasons {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

func reasonList() string {
	var parts []string
	for name, c := range pki.Reasons {
		parts = append(parts, fmt.Sprintf("%d (%s)", c, name))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// validRole is authority.ValidateRole's syntax, and its message. Not
// imported: package authority's tests start this server (internal/catest),
// and a test may not import a package that imports the one under test.
var validRole = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// tokens makes an enrolment token (fleet.PathTokens).
func (s *Server) tokens(w http.ResponseWriter, r *http.Request) error {
	var req fleet.TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	resp, err := s.NewToken(req)
	var inv *invalidTokenRequest
	switch {
	case errors.As(err, &inv):
		return badRequest("%v", err)
	case err != nil:
		return internal(err)
	}
	return api.SendResponse(w, resp)
}

// invalidTokenRequest is a TokenRequest that NewToken refuses.
type invalidTokenRequest struct{ err error }

func (e *invalidTokenRequest) Error() string { return e.err.Error() }
func (e *invalidTokenRequest) Unwrap() error { return e.err }

func invalidf(format string, a ...any) error {
	return &invalidTokenRequest{fmt.Errorf(format, a...)}
}

// NewToken makes and records a one-time enrolment token: for a client
// certificate (Name a client name as pki.ValidateName takes it, Role an
// authorization role, DefaultClientRole when empty) or a server
// certificate (Name the host's name, Hosts its DNS names and IP
// addresses; Name alone when empty, Name first otherwise), valid for TTL
// seconds (fleet.DefaultTokenTTL when zero, at most MaxTokenTTL). Only the
// token's hash is recorded; the token itself is in the answer, once.
func (s *Server) NewToken(req fleet.TokenRequest) (fleet.TokenResponse, error) {
	if err := fleet.CheckKind(req.Kind); err != nil {
		return fleet.TokenResponse{}, invalidf("%v", err)
	}
	ttl := time.Duration(req.TTL) * time.Second
	switch {
	case req.TTL < 0:
		return fleet.TokenResponse{}, invalidf("token ttl %d s: negative", req.TTL)
	case req.TTL == 0:
		ttl = fleet.DefaultTokenTTL
	case req.TTL > int64(MaxTokenTTL/time.Second):
		return fleet.TokenResponse{}, invalidf("token ttl %s: longer than the maximum %s (a token is a secret to use at once, not to keep)",
			fleet.Duration(ttl), fleet.Duration(MaxTokenTTL))
	}
	t := store.Token{Kind: req.Kind, Name: req.Name}
	switch req.Kind {
	case store.KindClient:
		if err := pki.ValidateName(req.Name); err != nil {
			return fleet.TokenResponse{}, invalidf("%v", err)
		}
		if len(req.Hosts) > 0 {
			return fleet.TokenResponse{}, invalidf("token for client %q: hosts are for server tokens", req.Name)
		}
		t.Role = req.Role
		if t.Role == "" {
			t.Role = DefaultClientRole
		}
		if !validRole.MatchString(t.Role) {
			return fleet.TokenResponse{}, invalidf("invalid role %q: want lowercase letters, digits, '-' and '_', starting with a letter", t.Role)
		}
	case store.KindServer:
		if err := pki.ValidateHost(req.Name); err != nil {
			return fleet.TokenResponse{}, invalidf("%v", err)
		}
		if req.Role != "" {
			return fleet.TokenResponse{}, invalidf("token for server %q: a role is for client tokens", req.Name)
		}
		t.Hosts = []string{req.Name}
		for _, h := range req.Hosts {
			if err := pki.ValidateHost(h); err != nil {
				return fleet.TokenResponse{}, invalidf("%v", err)
			}
			if !slices.ContainsFunc(t.Hosts, func(x string) bool { return strings.EqualFold(x, h) }) {
				t.Hosts = append(t.Hosts, h)
			}
		}
		if err := s.checkNotListener(t.Hosts); err != nil {
			return fleet.TokenResponse{}, invalidf("%v", err)
		}
	}
	if err := s.checkNameCase(t.Name); err != nil {
		return fleet.TokenResponse{}, err
	}
	// The current CA until a rotation's finish: it is the one the
	// listener's certificate chains to, which the host checks the
	// token's fingerprint against (fleet.Client.Enroll).
	tok, err := fleet.NewToken(s.state.Load().cur.Cert)
	if err != nil {
		return fleet.TokenResponse{}, fmt.Errorf("make token: %w", err)
	}
	now := s.now()
	t.Hash, t.CreatedAt, t.ExpiresAt = tok.Hash(), now, now.Add(ttl)
	if err := s.st.AddToken(t); err != nil {
		return fleet.TokenResponse{}, err
	}
	return fleet.TokenResponse{Token: tok.String(), ExpiresAt: t.ExpiresAt}, nil
}
