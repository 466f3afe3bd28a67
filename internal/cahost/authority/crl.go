package authority

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// CRLResult is what writing STATE_DIR/crl.pem did.
type CRLResult struct {
	Path    string
	Revoked int // entries, over every CA's CRL
}

// CRL signs the revocation list again (a new thisUpdate and nextUpdate and
// a higher number), for proxies that refuse every client once nextUpdate
// has passed.
func (a *Authority) CRL(now time.Time) (*CRLResult, error) {
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	old, err := a.OldCA()
	if err != nil {
		return nil, err
	}
	t := newTxn("crl")
	res, err := a.addCRL(t, []*pki.CA{ca, old}, nil, now)
	if err != nil {
		return nil, err
	}
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return res, nil
}

// addCRL adds to t the write of STATE_DIR/crl.pem: one CRL per CA in cas
// (nil entries skipped), each signed by its own CA, listing the revoked
// records of the inventory plus pending (revocations t is about to make).
// The entries and the numbers are the engine's (engine.Entries,
// engine.SignCRL): the numbers are kept in the inventory, so they grow
// across a clock set back and a change that was undone.
func (a *Authority) addCRL(t *txn, cas []*pki.CA, pending []store.Record, now time.Time) (*CRLResult, error) {
	p := a.path(CRLFile)
	prev, _ := os.ReadFile(p)
	var out []byte
	total := 0
	for _, c := range cas {
		if c == nil {
			continue
		}
		entries, err := engine.Entries(a.Store, engine.ListScope{CASerial: pki.Serial(c.Cert), KeepExpired: true, Pending: pending}, now)
		if err != nil {
			return nil, err
		}
		b, _, err := engine.SignCRL(a.Store, c, entries, crlFloor(prev, c, now), now, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		total += len(entries)
	}
	t.Write(p, out, MetaMode)
	return &CRLResult{Path: p, Revoked: total}, nil
}

// crlFloor is the least number of ca's next CRL: the time in seconds, and
// above the number of the CRL it replaces in prev, for a crl.pem written
// before the inventory kept the numbers (RFC 5280 5.2.3: CRL numbers
// increase monotonically).
func crlFloor(prev []byte, ca *pki.CA, now time.Time) int64 {
	n := now.Unix()
	for {
		var b *pem.Block
		b, prev = pem.Decode(prev)
		if b == nil {
			return n
		}
		crl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil || crl.Number == nil || !bytes.Equal(crl.RawIssuer, ca.Cert.RawSubject) || crl.CheckSignatureFrom(ca.Cert) != nil {
			continue
		}
		if crl.Number.IsInt64() && crl.Number.Int64() >= n {
			n = crl.Number.Int64() + 1
		}
	}
}
