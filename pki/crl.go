package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Revocation reasons (RFC 5280 5.3.1) that dtls accepts.
var Reasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"privilegeWithdrawn":   9,
}

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	Reason int
}

// DefaultCRLValidity is how long a CRL is valid: proxies such as nginx
// refuse every client once the CRL's nextUpdate has passed, so it lasts as
// long as a client certificate; every revoke writes a fresh one.
const DefaultCRLValidity = DefaultClientValidity

// CRL signs a version 2 certificate revocation list (RFC 5280 5) for
// revoked, with a CRL number (5.2.3, required) of number and the
// authority key identifier taken from the CA certificate, and returns it as
// PEM ("X509 CRL", what nginx's ssl_crl and HAProxy's crl-file read).
// cfssl's crl package builds version 1 lists through the deprecated
// Certificate.CreateCRL with time.Now; this takes the time as a value.
func (ca *CA) CRL(revoked []Revoked, number int64, now time.Time, validity time.Duration) ([]byte, error) {
	if validity == 0 {
		validity = DefaultCRLValidity
	}
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		entries[i] = x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At.UTC(), ReasonCode: r.Reason}
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now.Add(-backdate),
		NextUpdate:                now.Add(validity),
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
