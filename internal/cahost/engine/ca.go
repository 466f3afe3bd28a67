package engine

import (
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// CARecord is the inventory row of a CA: its own issuer, recorded at path
// (its state directory; "" when the record names none), so that `dtls
// list` shows it and a rotation can supersede it.
func CARecord(ca *pki.CA, path string) store.Record {
	return store.FromCert(ca.Cert, ca.CertPEM, store.KindCA, pki.Serial(ca.Cert), path)
}

// NewCA makes a CA (pki.NewCA) and its inventory row, for a change that
// writes its files itself (a rotation's next CA; an init's is PlanCA's).
func NewCA(r pki.CARequest, path string) (*pki.CA, store.Record, error) {
	ca, err := pki.NewCA(r)
	if err != nil {
		return nil, store.Record{}, err
	}
	return ca, CARecord(ca, path), nil
}

// NextCA makes the CA that replaces cur in a rotation, and its inventory
// row. A CA's key type is a choice (RSA for old peers, P-384 for a
// policy): the next CA keeps cur's unless r names one.
func NextCA(cur *pki.CA, r pki.CARequest, path string) (*pki.CA, store.Record, error) {
	if r.KeyType == "" {
		r.KeyType = pki.KeyTypeOf(cur.Cert)
	}
	return NewCA(r, path)
}

// IssueListener issues the online CA's listener certificate (server,
// named cn, covering hosts) from ca: at `dtls ca init` and at a
// rotation's finish. It lasts as long as the CA: its key lies next to
// the CA's, so whoever could steal it could steal both, and a shorter
// life would only make the CA stop answering one day.
func IssueListener(ca *pki.CA, cn string, hosts []string, now time.Time) (*pki.Issued, store.Record, error) {
	return Issue(ca, pki.Request{Kind: pki.KindServer, CommonName: cn, Hosts: hosts, Now: now, Validity: pki.DefaultCAValidity}, "")
}
