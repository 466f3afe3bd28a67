package pki

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"time"
)

// Status is a record's status, as the inventory (package store) keeps it
// in its status column.
type Status string

// Statuses. "good" and "revoked" are cfssl's (certdb.CertificateRecord,
// and what its crl and ocsp tools select on); "superseded" marks a
// certificate replaced by a renewal or a CA rotation.
const (
	StatusGood       Status = "good"
	StatusRevoked    Status = "revoked"
	StatusSuperseded Status = "superseded"
)

// Record is one issued certificate, as the inventory (package store) keeps
// it and the online CA's protocol (package fleet) carries it. Its JSON
// form (snake_case keys, times in RFC 3339 with nanoseconds) is what
// journals keep and the protocol sends; zero fields are left out, and a
// record decodes to exactly what was encoded.
type Record struct {
	// Serial is lowercase hex without leading zeros, as
	// fmt.Sprintf("%x", cert.SerialNumber) prints it. The database keeps
	// it in decimal, as cfssl's signer does.
	Serial string `json:"serial"`
	// AKI is the hex authority key identifier.
	AKI       string    `json:"aki,omitzero"`
	Kind      Kind      `json:"kind,omitzero"`
	Name      string    `json:"name,omitzero"` // the common name
	SANs      []string  `json:"sans,omitzero"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Status    Status    `json:"status,omitzero"`
	// Reason is the RFC 5280 5.3.1 reason code of a revoked record.
	Reason    int       `json:"reason,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	PEM       string    `json:"pem,omitzero"`
	// CASerial is the hex serial of the CA that signed it (its own serial
	// for a CA).
	CASerial string `json:"ca_serial,omitzero"`
	// Path is where the certificate was written: a bundle directory, or
	// the daemon's server-cert.pem.
	Path string `json:"path,omitzero"`
}

// UnmarshalJSON decodes a record, also from the keys journals used before
// Record had json tags (Go's field names). encoding/json matches keys to
// names case-insensitively, which covers all fields but those whose tag
// has an underscore.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record // without this method
	var v struct {
		plain
		OldNotBefore time.Time `json:"NotBefore"`
		OldNotAfter  time.Time `json:"NotAfter"`
		OldRevokedAt time.Time `json:"RevokedAt"`
		OldCASerial  string    `json:"CASerial"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Record(v.plain)
	if r.NotBefore.IsZero() {
		r.NotBefore = v.OldNotBefore
	}
	if r.NotAfter.IsZero() {
		r.NotAfter = v.OldNotAfter
	}
	if r.RevokedAt.IsZero() {
		r.RevokedAt = v.OldRevokedAt
	}
	if r.CASerial == "" {
		r.CASerial = v.OldCASerial
	}
	return nil
}

// Cert parses the record's PEM.
func (r Record) Cert() (*x509.Certificate, error) {
	return firstCert(r.PEM)
}

// PEMBytes is the record's certificate PEM.
func (r Record) PEMBytes() []byte { return []byte(r.PEM) }

// KindOf says whether a certificate is a CA, server or client certificate:
// a CA has basicConstraints cA; a server certificate has the serverAuth
// extended key usage (RFC 5280 4.2.1.12), which dockerd's listener needs;
// anything else is a client certificate.
func KindOf(c *x509.Certificate) Kind {
	if c.IsCA {
		return KindCA
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth {
			return KindServer
		}
	}
	return KindClient
}

// firstCert parses the first CERTIFICATE block of s, skipping others.
func firstCert(s string) (*x509.Certificate, error) {
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate in record")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
