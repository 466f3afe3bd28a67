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
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	hash := tok.Hash()
	t, err := s.st.Token(hash)
	switch {
	case errors.Is(err, store.ErrTokenUnknown):
		return forbidden("unknown enrolment token: ask the CA's operator for one (dtls ca token)")
	case err != nil:
		return internal(err)
	}
	if t.UsedSerial != "" {
		// A retry by the host that used it (it crashed before saving
		// the answer, with its key saved first): the same key gets
		// the same certificate again. Anyone else gets nothing.
		if rec, err := s.st.Get(t.UsedSerial); err != nil {
			return internal(err)
		} else if rec != nil && rec.Status == store.StatusGood && samePublicKey(*rec, csr) {
			return s.sendCert(w, st, *rec)
		}
		return forbidden("enrolment token already used (at %s): ask the CA's operator for a new one", t.UsedAt.Format(time.RFC3339))
	}
	if !now.Before(t.ExpiresAt) {
		return forbidden("enrolment token expired at %s: ask the CA's operator for a new one", t.ExpiresAt.Format(time.RFC3339))
	}

	sr := pki.CSRRequest{Kind: pki.Kind(t.Kind), CommonName: t.Name, CSR: []byte(req.CSR), Now: st.issueTime(now)}
	var roles map[string]string
	switch t.Kind {
	case store.KindClient:
		sr.Validity = s.clientValidity
		if t.Role != "" {
			sr.OrganizationalUnit = []string{fleet.RoleOU(t.Role)}
		}
		roles = map[string]string{t.Name: t.Role}
	case store.KindServer:
		sr.Validity = s.serverValidity
		sr.Hosts = t.Hosts
	default:
		return internal(fmt.Errorf("token for %q has kind %q", t.Name, t.Kind))
	}
	signer := st.signer()
	cert, certPEM, err := signer.SignCSR(sr)
	if err != nil {
		return badRequest("%v", err)
	}
	rec := store.FromCert(cert, certPEM, t.Kind, pki.Serial(signer.Cert), "")
	older, err := s.sameName(st, t.Kind, t.Name)
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

// sameName are the serials of the good certificates of kind and name
// that a new enrolment for that name supersedes: a holder enrolled again
// (a new laptop, a reinstalled one, a lost bundle) has abandoned them, and
// left good they would hold up a rotation's switch and finish until they
// expire. The CA's own listener certificate is not a holder's.
func (s *Server) sameName(st *caState, kind store.Kind, name string) ([]string, error) {
	recs, err := s.st.ByName(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.Kind == kind && r.Status == store.StatusGood && r.Serial != st.listenerSerial {
			out = append(out, r.Serial)
		}
	}
	return out, nil
}

// samePublicKey reports whether rec's certificate is for the key of csr.
func samePublicKey(rec store.Record, csr *x509.CertificateRequest) bool {
	c, err := rec.Cert()
	return err == nil && bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo)
}

// sendCert answers a certificate (fleet.CertResponse), with the role
// the certificate carries, and the CA certificates of st (both during a
// rotation: the holder's ca.pem then trusts the next CA before anything
// it must verify is signed by it).
//
// superseded are the serials an enrolment superseded (sameName).
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
		succ, err := s.successor(old, csr)
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
	if err := s.renewalAllowed(old, now); err != nil {
		return err
	}
	sr := pki.CSRRequest{Kind: pki.Kind(old.Kind), CommonName: old.Name, CSR: []byte(req.CSR), Now: st.issueTime(now)}
	switch old.Kind {
	case store.KindClient:
		sr.Validity = s.clientValidity
		if role != "" {
			sr.OrganizationalUnit = []string{fleet.RoleOU(role)}
		}
	case store.KindServer:
		sr.Validity = s.serverValidity
		sr.Hosts = old.SANs
	default:
		return forbidden("certificate %q (serial %s) is a %s certificate", old.Name, old.Serial, old.Kind)
	}
	signer := st.signer()
	cert, certPEM, err := signer.SignCSR(sr)
	if err != nil {
		return badRequest("%v", err)
	}
	rec := store.FromCert(cert, certPEM, old.Kind, pki.Serial(signer.Cert), "")
	// Required good at commit: another CA instance on the same
	// PostgreSQL database may have renewed it meanwhile (renewMu is per
	// process).
	err = s.st.Apply(store.Change{Insert: []store.Record{rec}, Supersede: []string{old.Serial}, Require: []string{old.Serial}})
	switch {
	case errors.Is(err, store.ErrNotGood):
		if succ, serr := s.successor(old, csr); serr == nil && succ != nil {
			return s.sendCert(w, st, *succ)
		}
		return forbidden("client certificate %q (serial %s) was renewed or revoked by another request meanwhile: %v", old.Name, old.Serial, err)
	case err != nil:
		return internal(err)
	}
	s.crl.invalidate()
	return s.sendCert(w, st, rec)
}

// MaxListedRenewals bounds the renewals of a certificate's holder: a
// renewal is refused while MaxListedRenewals superseded certificates of
// the same name and kind (per good one: a name enrolled on two machines
// has two lineages) have not expired (Config.MaxListedRenewals changes
// it).
//
// Why: every superseded certificate stays in the revocation list until it
// expires (its key may have been stolen: it must stay refused), so a
// holder renewing in a loop would grow the list without bound, until the
// plugins refuse it for its size (revlist.MaxCRLBytes, 32 MiB) and
// enforce their last list. Counting what the list holds bounds it
// directly, whatever the lifetimes and the clock: at most
// MaxListedRenewals entries per good certificate, 300 000 for 100 000
// clients, 15.9 MB at 53 bytes each (TestCRLSizeBound), under the
// plugins' limit. A rule on the certificate's age (no renewal before a
// third of its lifetime) would refuse the renewals a rotation needs
// right after one another.
//
// The agent renews at two thirds of the lifetime, when the previous
// certificate has expired, and its predecessor stays listed for the
// last third: one listed at most. That leaves two early renewals
// (`dtls agent --now`) at any time. A rotation needs two renewals (step
// trust for both CAs in ca.pem, step switch for a certificate of the
// next CA), and one after its finish drops the old CA from ca.pem: the
// three are allowed, but for a holder whose routine renewal is less than
// a third of a lifetime old, whose third then waits until that
// predecessor expires. Beyond, the answer
// is 429 with Retry-After, "renewed too recently: next renewal allowed
// after T", T being when the oldest listed one expires (for a client at
// most its 24 hours): fleet.Retryable takes it for a refusal that
// passes, and the agent tries again later; it is no revocation.
const MaxListedRenewals = 3

// renewalAllowed returns nil when old's holder may renew at now, and
// otherwise the 429 of MaxListedRenewals.
func (s *Server) renewalAllowed(old store.Record, now time.Time) error {
	if s.maxListed < 0 {
		return nil
	}
	recs, err := s.st.ByName(old.Name)
	if err != nil {
		return internal(err)
	}
	good := 0
	var listed []time.Time
	for _, r := range recs {
		if r.Kind != old.Kind || !now.Before(r.NotAfter) {
			continue
		}
		switch r.Status {
		case store.StatusGood:
			good++
		case store.StatusSuperseded:
			listed = append(listed, r.NotAfter)
		}
	}
	limit := s.maxListed * max(good, 1)
	if len(listed) < limit {
		return nil
	}
	// One more is allowed once len(listed)-limit+1 of them have expired.
	slices.SortFunc(listed, time.Time.Compare)
	at := listed[len(listed)-limit]
	return &httpError{
		status: http.StatusTooManyRequests,
		msg: fmt.Sprintf("%s %q (serial %s) renewed too recently: next renewal allowed after %s (%d superseded certificates of %q are still in the revocation list, at most %d)",
			old.Kind, old.Name, old.Serial, at.UTC().Format(time.RFC3339), len(listed), old.Name, limit),
		retryAfter: at.Sub(now),
	}
}

// successor is the good certificate that superseded old and is for the
// key of csr, or nil.
func (s *Server) successor(old store.Record, csr *x509.CertificateRequest) (*store.Record, error) {
	recs, err := s.st.ByName(old.Name)
	if err != nil {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		r := recs[i]
		// Of either CA: during a rotation the successor of a
		// certificate of the old CA is signed by the next one.
		if r.Serial != old.Serial && r.Kind == old.Kind &&
			r.Status == store.StatusGood && !r.NotBefore.Before(old.NotBefore) && samePublicKey(r, csr) {
			return &r, nil
		}
	}
	return nil, nil
}

// serveCA answers the CA certificates, PEM, current first (fleet.PathCA):
// two during a rotation.
func (s *Server) serveCA(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(s.state.Load().caPEM())
	return err
}
