package engine

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Holder is who a certificate is signed for from a CSR: an enrolment
// token's kind, name, role and hosts, or those of the certificate being
// renewed (the role the inventory has now).
type Holder struct {
	Kind  store.Kind
	Name  string
	Role  string   // a client's, "" for none
	Hosts []string // a server's DNS names and addresses
}

// Validity is the lifetime of the certificates signed from a CSR, by kind.
type Validity struct{ Client, Server time.Duration }

// SignCSR signs csrPEM for h with signer, issued at now, and returns the
// certificate as the inventory records it. The CSR's signature is checked
// (pki.CSRRequest): the requester holds the key.
func SignCSR(signer *pki.CA, h Holder, csrPEM []byte, now time.Time, v Validity) (store.Record, error) {
	sr := pki.CSRRequest{Kind: pki.Kind(h.Kind), CommonName: h.Name, CSR: csrPEM, Now: now}
	switch h.Kind {
	case store.KindClient:
		sr.Validity = v.Client
		if h.Role != "" {
			sr.OrganizationalUnit = []string{fleet.RoleOU(h.Role)}
		}
	case store.KindServer:
		sr.Validity = v.Server
		sr.Hosts = h.Hosts
	default:
		return store.Record{}, fmt.Errorf("certificate %q: a %s certificate is not signed from a request", h.Name, h.Kind)
	}
	cert, certPEM, err := signer.SignCSR(sr)
	if err != nil {
		return store.Record{}, err
	}
	return store.FromCert(cert, certPEM, h.Kind, pki.Serial(signer.Cert), ""), nil
}

// SameName are the serials of the good certificates of kind and name
// that a new enrolment for that name supersedes: a holder enrolled again
// (a new laptop, a reinstalled one, a lost bundle) has abandoned them, and
// left good they would hold up a rotation's switch and finish until they
// expire. except (the online CA's own listener certificate) is not a
// holder's.
func SameName(inv Inventory, kind store.Kind, name, except string) ([]string, error) {
	recs, err := inv.ByName(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.Kind == kind && r.Status == store.StatusGood && r.Serial != except {
			out = append(out, r.Serial)
		}
	}
	return out, nil
}

// SamePublicKey reports whether rec's certificate is for the key of csr.
func SamePublicKey(rec store.Record, csr *x509.CertificateRequest) bool {
	c, err := rec.Cert()
	return err == nil && bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo)
}

// Successor is the good certificate that superseded old and is for the
// key of csr, or nil: a renewal asked again (the holder saved its new key,
// asked, and crashed before installing the answer) gets it again.
func Successor(inv Inventory, old store.Record, csr *x509.CertificateRequest) (*store.Record, error) {
	recs, err := inv.ByName(old.Name)
	if err != nil {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		r := recs[i]
		// Of either CA: during a rotation the successor of a
		// certificate of the old CA is signed by the next one.
		if r.Serial != old.Serial && r.Kind == old.Kind &&
			r.Status == store.StatusGood && !r.NotBefore.Before(old.NotBefore) && SamePublicKey(r, csr) {
			return &r, nil
		}
	}
	return nil, nil
}

// MaxListedRenewals bounds the renewals of a certificate's holder: a
// renewal is refused while MaxListedRenewals superseded certificates of
// the same name and kind (per good one: a name enrolled on two machines
// has two lineages) have not expired.
//
// Why: every superseded certificate stays in the revocation list until it
// expires (its key may have been stolen: it must stay refused), so a
// holder renewing in a loop would grow the list without bound, until the
// plugins refuse it for its size (revlist.MaxCRLBytes, 32 MiB) and
// enforce their last list. Counting what the list holds bounds it
// directly, whatever the lifetimes and the clock: at most
// MaxListedRenewals entries per good certificate, 300 000 for 100 000
// clients, 15.9 MB at 53 bytes each (caserver's TestCRLSizeBound), under
// the plugins' limit. A rule on the certificate's age (no renewal before
// a third of its lifetime) would refuse the renewals a rotation needs
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
// predecessor expires. Beyond, the renewal is refused with a
// RenewLimitError until the oldest listed one expires (for a client at
// most its 24 hours); it is no revocation.
const MaxListedRenewals = 3

// RenewLimitError is a renewal refused by MaxListedRenewals: the holder
// may renew again after At.
type RenewLimitError struct {
	Old    store.Record
	At     time.Time
	Listed int
	Limit  int
}

func (e *RenewLimitError) Error() string {
	return fmt.Sprintf("%s %q (serial %s) renewed too recently: next renewal allowed after %s (%d superseded certificates of %q are still in the revocation list, at most %d)",
		e.Old.Kind, e.Old.Name, e.Old.Serial, e.At.UTC().Format(time.RFC3339), e.Listed, e.Old.Name, e.Limit)
}

// RenewalAllowed returns nil when old's holder may renew at now, and
// otherwise a *RenewLimitError. maxListed is MaxListedRenewals, or
// another bound; below zero, none.
func RenewalAllowed(inv Inventory, old store.Record, maxListed int, now time.Time) error {
	if maxListed < 0 {
		return nil
	}
	recs, err := inv.ByName(old.Name)
	if err != nil {
		return err
	}
	good := 0
	var listed []time.Time
	for _, r := range recs {
		if r.Kind != old.Kind || expired(r, now) {
			continue
		}
		switch r.Status {
		case store.StatusGood:
			good++
		case store.StatusSuperseded:
			listed = append(listed, r.NotAfter)
		}
	}
	limit := maxListed * max(good, 1)
	if len(listed) < limit {
		return nil
	}
	// One more is allowed once len(listed)-limit+1 of them have expired.
	slices.SortFunc(listed, time.Time.Compare)
	return &RenewLimitError{Old: old, At: listed[len(listed)-limit], Listed: len(listed), Limit: limit}
}

// Issue makes a key and a certificate for it, signed by ca (pki's
// CA.Issue: the CA host's bundles and server certificates, the online
// CA's listener), and the record the inventory keeps of it at path.
func Issue(ca *pki.CA, r pki.Request, path string) (*pki.Issued, store.Record, error) {
	is, err := ca.Issue(r)
	if err != nil {
		return nil, store.Record{}, err
	}
	return is, store.FromCert(is.Cert, is.CertPEM, r.Kind, pki.Serial(ca.Cert), path), nil
}
