package caserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/cloudflare/cfssl/api"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

func pemOfCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// parseCSR parses the request's CSR and checks its signature: the
// requester holds the key the certificate will be for (RFC 2986 3).
func parseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	if csrPEM == "" {
		return nil, badRequest("no certificate request (csr)")
	}
	req, err := pki.ParseCSR([]byte(csrPEM))
	if err != nil {
		return nil, badRequest("csr: %v", err)
	}
	return req, nil
}

// enroll signs a CSR for the holder of a one-time token (fleet.PathEnroll).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	var req fleet.EnrollRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	tok, err := fleet.ParseToken(req.Token)
	if err != nil {
		return forbidden("%v", err)
	}
	s.issueMu.RLock()
	defer s.issueMu.RUnlock()
	now := s.now()
	st := s.state.Load()
	// A token made before a rotation's finish names the old CA, one
	// made after it the new one: each is good while its CA is this
	// server's.
	if !slices.ContainsFunc(st.cas(), func(ca *pki.CA) bool { return fleet.MatchesFingerprint(ca.Cert, tok.CAFingerprint) }) {
		return forbidden("the enrolment token is for another CA (its CA fingerprint is not this CA's)")
	}
	// The token is known before the request is read further: a stranger
	// with a made-up token costs a lookup, not the check of a CSR's
	// signature.
	hash := tok.Hash()
	t, err := s.st.Token(hash)
	switch {
	case errors.Is(err, store.ErrTokenUnknown):
		return forbidden("unknown enrolment token: ask the CA's operator for one (dtls ca token)")
	case err != nil:
		return internal(err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	if t.UsedSerial != "" {
		// A retry by the host that used it (it crashed before saving
		// the answer, with its key saved first): the same key gets
		// the same certificate again. Anyone else gets nothing.
		if rec, err := s.st.Get(t.UsedSerial); err != nil {
			return internal(err)
		} else if rec != nil && rec.Status == store.StatusGood && engine.SamePublicKey(*rec, csr) {
			return s.sendCert(w, st, *rec)
		}
		return forbidden("enrolment token already used (at %s): ask the CA's operator for a new one", t.UsedAt.Format(time.RFC3339))
	}
	if !now.Before(t.ExpiresAt) {
		return forbidden("enrolment token expired at %s: ask the CA's operator for a new one", t.ExpiresAt.Format(time.RFC3339))
	}

	// A token made before the check existed, or before the listener
	// took a name its hosts cover.
	if err := s.checkNotListener(t.Hosts); err != nil {
		return forbidden("%v", err)
	}
	// Two tokens for names apart by case alone, made before either
	// enrolled (or before the check existed): the second enrols nothing.
	if err := s.checkNameCase(t.Name); err != nil {
		return forbidden("%v", err)
	}
	h := engine.Holder{Kind: t.Kind, Name: t.Name, Role: t.Role, Hosts: t.Hosts}
	var roles map[string]string
	if t.Kind == store.KindClient {
		roles = map[string]string{t.Name: t.Role}
	}
	rec, err := engine.SignCSR(st.signer(), h, []byte(req.CSR), st.issueTime(now), s.validity)
	if err != nil {
		return badRequest("%v", err)
	}
	// What it supersedes is chosen and superseded with no renewal of
	// this process in between (renewMu), which would leave a successor
	// of the name good beside the new certificate: enrolling a name again
	// is the remedy for a lost laptop, whose thief may be renewing.
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	older, err := engine.SameName(s.st, t.Kind, t.Name, st.listenerSerial)
	if err != nil {
		return internal(err)
	}
	err = s.st.Apply(store.Change{Insert: []store.Record{rec}, Supersede: older, Roles: roles, UseToken: hash, UseTokenAt: now})
	switch {
	case errors.Is(err, store.ErrTokenUsed):
		// Another request used it between the check and here.
		return forbidden("enrolment token already used: ask the CA's operator for a new one")
	case errors.Is(err, store.ErrTokenExpired):
		return forbidden("enrolment token expired: ask the CA's operator for a new one")
	case errors.Is(err, store.ErrTokenUnknown):
		return forbidden("unknown enrolment token: ask the CA's operator for one (dtls ca token)")
	case err != nil:
		return internal(err)
	}
	s.crl.invalidate()
	if len(older) > 0 {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "enrolment superseded older certificates of the same name",
			slog.String("kind", string(t.Kind)), slog.String("name", t.Name), slog.String("serial", rec.Serial), slog.Any("superseded", older))
	}
	return s.sendCert(w, st, rec, older...)
}

// sendCert answers a certificate (fleet.CertResponse), with the role
// the certificate carries, and the CA certificates of st (both during a
// rotation: the holder's ca.pem then trusts the next CA before anything
// it must verify is signed by it).
//
// superseded are the serials an enrolment superseded (engine.SameName).
func (s *Server) sendCert(w http.ResponseWriter, st *caState, rec store.Record, superseded ...string) error {
	c, err := rec.Cert()
	if err != nil {
		return internal(fmt.Errorf("record %q serial %s: %w", rec.Name, rec.Serial, err))
	}
	role, _ := fleet.CertRole(c)
	return api.SendResponse(w, fleet.CertResponse{
		Certificate: rec.PEM,
		CA:          string(st.caPEM()),
		Kind:        rec.Kind,
		Name:        rec.Name,
		Role:        role,
		NotAfter:    rec.NotAfter,
		Superseded:  superseded,
	})
}

// peer returns the TLS client certificate of r when one of this server's
// CAs (either during a rotation) signed it and it is valid now, with its inventory record: it must be there, with
// the same certificate. Its status is the caller's to check. The
// certificate may be a client or a server certificate (see TLSConfig).
func (s *Server) peer(r *http.Request) (*x509.Certificate, store.Record, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, store.Record{}, forbidden("this call needs a client certificate from this CA (none was presented)")
	}
	c := r.TLS.PeerCertificates[0]
	if _, err := c.Verify(x509.VerifyOptions{
		Roots:       s.state.Load().roots,
		CurrentTime: s.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, store.Record{}, forbidden("client certificate %q (serial %s) does not verify against this CA: %v", c.Subject.CommonName, pki.Serial(c), err)
	}
	if k := store.KindOf(c); k != store.KindClient && k != store.KindServer {
		return nil, store.Record{}, forbidden("client certificate %q (serial %s) is a %s certificate", c.Subject.CommonName, pki.Serial(c), k)
	}
	rec, err := s.st.Get(pki.Serial(c))
	if err != nil {
		return nil, store.Record{}, internal(err)
	}
	if rec == nil || rec.PEM == "" || !samePEM(rec.PEM, c) {
		return nil, store.Record{}, forbidden("client certificate %q (serial %s) is not in this CA's inventory", c.Subject.CommonName, pki.Serial(c))
	}
	return c, *rec, nil
}

func samePEM(recPEM string, c *x509.Certificate) bool {
	b, _ := pem.Decode([]byte(recPEM))
	return b != nil && bytes.Equal(b.Bytes, c.Raw)
}

// refusedStatus is the 403 for a certificate that is not good.
func refusedStatus(rec store.Record) *httpError {
	switch rec.Status {
	case store.StatusRevoked:
		return forbidden("client certificate %q (serial %s) is revoked (reason %d at %s): enrol again with a new token",
			rec.Name, rec.Serial, rec.Reason, rec.RevokedAt.Format(time.RFC3339))
	case store.StatusSuperseded:
		return forbidden("client certificate %q (serial %s) is superseded by a renewal: use the newest certificate, or enrol again with a new token",
			rec.Name, rec.Serial)
	}
	return forbidden("client certificate %q (serial %s) has status %q", rec.Name, rec.Serial, rec.Status)
}

// renew signs a CSR for the holder of a current, good certificate
// (fleet.PathRenew): same kind, name and hosts, the role the inventory
// has now, a new key.
func (s *Server) renew(w http.ResponseWriter, r *http.Request) error {
	var req fleet.RenewRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	_, old, err := s.peer(r)
	if err != nil {
		return err
	}
	s.issueMu.RLock()
	defer s.issueMu.RUnlock()
	now := s.now()
	st := s.state.Load()
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	// Read again under the lock: a renewal that ran while this one
	// waited may have superseded it.
	cur, err := s.st.Get(old.Serial)
	if err != nil {
		return internal(err)
	}
	if cur == nil {
		return forbidden("client certificate %q (serial %s) is not in this CA's inventory", old.Name, old.Serial)
	}
	old = *cur
	role := ""
	if old.Kind == store.KindClient {
		if role, err = s.st.Role(old.Name); err != nil {
			return internal(err)
		}
	}
	switch old.Status {
	case store.StatusGood:
	case store.StatusSuperseded:
		// The agent's retry: it saved its new key, asked, and
		// crashed before installing the answer. The successor for
		// that key is answered again.
		succ, err := engine.Successor(s.st, old, csr)
		if err != nil {
			return internal(err)
		}
		if succ != nil {
			return s.sendCert(w, st, *succ)
		}
		return refusedStatus(old)
	default:
		return refusedStatus(old)
	}
	if !now.Before(old.NotAfter) {
		return forbidden("client certificate %q (serial %s) expired at %s: enrol again with a new token", old.Name, old.Serial, old.NotAfter.Format(time.RFC3339))
	}
	var limit *engine.RenewLimitError
	if err := engine.RenewalAllowed(s.st, old, s.maxListed, now); errors.As(err, &limit) {
		return &httpError{status: http.StatusTooManyRequests, msg: err.Error(), retryAfter: limit.At.Sub(now)}
	} else if err != nil {
		return internal(err)
	}
	if old.Kind != store.KindClient && old.Kind != store.KindServer {
		return forbidden("certificate %q (serial %s) is a %s certificate", old.Name, old.Serial, old.Kind)
	}
	if err := s.checkNotListener(old.SANs); old.Kind == store.KindServer && err != nil {
		return forbidden("%v", err)
	}
	rec, err := engine.SignCSR(st.signer(), engine.Holder{Kind: old.Kind, Name: old.Name, Role: role, Hosts: old.SANs}, []byte(req.CSR), st.issueTime(now), s.validity)
	if err != nil {
		return badRequest("%v", err)
	}
	// Required good at commit: another CA instance on the same
	// PostgreSQL database may have renewed it meanwhile (renewMu is per
	// process).
	err = s.st.Apply(store.Change{Insert: []store.Record{rec}, Supersede: []string{old.Serial}, Require: []string{old.Serial}})
	switch {
	case errors.Is(err, store.ErrNotGood):
		if succ, serr := engine.Successor(s.st, old, csr); serr == nil && succ != nil {
			return s.sendCert(w, st, *succ)
		}
		return forbidden("client certificate %q (serial %s) was renewed or revoked by another request meanwhile: %v", old.Name, old.Serial, err)
	case err != nil:
		return internal(err)
	}
	s.crl.invalidate()
	return s.sendCert(w, st, rec)
}

// MaxListedRenewals bounds the renewals of a certificate's holder
// (engine.MaxListedRenewals, Config.MaxListedRenewals changes it). Beyond,
// the answer is 429 with Retry-After (RFC 9110 10.2.3), "renewed too
// recently: next renewal allowed after T": fleet.Retryable takes it for a
// refusal that passes, and the agent tries again later.
const MaxListedRenewals = engine.MaxListedRenewals

// serveCA answers the CA certificates, PEM, current first (fleet.PathCA):
// two during a rotation.
func (s *Server) serveCA(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(s.state.Load().caPEM())
	return err
}
