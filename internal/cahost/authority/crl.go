package authority

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"

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
func (a *Authority) addCRL(t *txn, cas []*pki.CA, pending []store.Record, now time.Time) (*CRLResult, error) {
	p := a.path(CRLFile)
	prev, _ := os.ReadFile(p)
	var out []byte
	total := 0
	for _, c := range cas {
		if c == nil {
			continue
		}
		caSerial := pki.Serial(c.Cert)
		recs, err := a.Store.Revoked(caSerial)
		if err != nil {
			return nil, err
		}
		for _, r := range pending {
			if r.CASerial == caSerial {
				recs = append(recs, r)
			}
		}
		entries := make([]pki.Revoked, 0, len(recs))
		for _, r := range recs {
			n, ok := new(big.Int).SetString(r.Serial, 16)
			if !ok {
				return nil, fmt.Errorf("record %q has an invalid serial %q", r.Name, r.Serial)
			}
			at := r.RevokedAt
			if at.IsZero() {
				at = now
			}
			entries = append(entries, pki.Revoked{Serial: n, At: at, Reason: r.Reason})
		}
		b, err := c.CRL(entries, crlNumber(prev, c, now), now, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		total += len(entries)
	}
	t.write(p, out, MetaMode)
	return &CRLResult{Path: p, Revoked: total}, nil
}

// crlNumber is the number of ca's next CRL: the time in seconds, but always
// above the number of the CRL it replaces in prev (RFC 5280 5.2.3: CRL
// numbers increase monotonically), so that two revocations in one second,
// or a clock set back, never reuse a number.
func crlNumber(prev []byte, ca *pki.CA, now time.Time) int64 {
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
