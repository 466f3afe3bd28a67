package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/signer"
)

// NewCSR generates a key of type kt (DefaultKeyType when empty) and a PKCS
// #10 request for it with common name cn. The online CA takes only the
// public key from the request; the key stays where it was made (RFC 2986).
func NewCSR(cn string, kt KeyType) (csrPEM, keyPEM []byte, err error) {
	ki, err := keyTypeOrDefault(kt)
	if err != nil {
		return nil, nil, err
	}
	key, keyPEM, err := generate(ki)
	if err != nil {
		return nil, nil, err
	}
	csrPEM, err = csr.Generate(key, &csr.CertificateRequest{CN: cn, Names: []csr.Name{{O: "dtls"}}})
	if err != nil {
		return nil, nil, fmt.Errorf("create request for %q: %w", cn, err)
	}
	return csrPEM, keyPEM, nil
}

// ParseCSR parses a PEM certificate request and checks its signature (proof
// that the requester holds the key).
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, errors.New("no PEM certificate request found")
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	// The key is one dtls issues before its signature is checked: an RSA
	// modulus of 200,000 bits with a large exponent parses, and its check
	// costs seconds of CPU (crypto/x509 bounds RSA keys for TLS peers,
	// not for requests).
	if _, err := keyTypeOfPublic(req.PublicKey); err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return req, nil
}

// CSRRequest is a certificate to sign for a key the CA does not hold.
type CSRRequest struct {
	Kind       Kind // KindServer or KindClient
	CommonName string
	Hosts      []string // server certificates
	// OrganizationalUnit values for the subject (the online CA records a
	// client's role there).
	OrganizationalUnit []string
	// CSR is the PEM request; only its public key is used (and its
	// signature checked): the subject, names, extensions and lifetime
	// come from this request, never from the CSR.
	CSR      []byte
	Now      time.Time
	Validity time.Duration // the kind's default when zero
}

// SignCSR signs a leaf certificate for the public key of r.CSR, with the
// same profiles, usages and serials as Issue. A key type dtls does not
// issue (P-521, RSA below 2048 bits) is refused.
func (ca *CA) SignCSR(r CSRRequest) (*x509.Certificate, []byte, error) {
	req, err := ParseCSR(r.CSR)
	if err != nil {
		return nil, nil, err
	}
	kt, err := keyTypeOfPublic(req.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	switch r.Kind {
	case KindServer:
		if len(r.Hosts) == 0 {
			return nil, nil, errors.New("server certificate needs at least one host")
		}
		for _, h := range r.Hosts {
			if err := ValidateHost(h); err != nil {
				return nil, nil, err
			}
		}
		if r.CommonName == "" {
			r.CommonName = r.Hosts[0]
		}
	case KindClient:
		if err := ValidateName(r.CommonName); err != nil {
			return nil, nil, err
		}
		r.Hosts = nil
	default:
		return nil, nil, fmt.Errorf("cannot sign a certificate of kind %q", r.Kind)
	}
	if r.Validity == 0 {
		r.Validity = DefaultServerValidity
		if r.Kind == KindClient {
			r.Validity = DefaultClientValidity
		}
	}
	notAfter := r.Now.Add(r.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	name := csr.Name{O: "dtls"}
	var names []csr.Name
	if len(r.OrganizationalUnit) == 0 {
		names = []csr.Name{name}
	}
	for _, ou := range r.OrganizationalUnit {
		n := name
		n.OU = ou
		names = append(names, n)
	}
	certPEM, err := sign(ca.signer, signer.SignRequest{
		Request:   string(r.CSR),
		Hosts:     r.Hosts,
		Profile:   csrProfileName(r.Kind, kt),
		NotBefore: r.Now.Add(-csrBackdate(r.Validity)),
		NotAfter:  notAfter,
		// The subject is the CA's to set: a CSR's own is ignored.
		Subject: &signer.Subject{CN: r.CommonName, Names: names},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", r.CommonName, err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, nil, err
	}
	return cert, certPEM, nil
}

// csrBackdate is the backdate of a certificate of the given validity: five
// minutes, but at most a tenth of the validity, so that an agent that
// renews at two thirds of the lifetime (NotBefore to NotAfter) does not
// find a certificate of a few minutes already due.
func csrBackdate(validity time.Duration) time.Duration {
	return min(backdate, validity/10)
}

// keyTypeOfPublic is the key type of a public key, or an error for one
// dtls does not issue.
func keyTypeOfPublic(pub crypto.PublicKey) (KeyType, error) {
	var algo string
	var size int
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		algo, size = "ecdsa", k.Curve.Params().BitSize
	case *rsa.PublicKey:
		if k.E != 65537 {
			// Every key generator dtls meets (Go's, OpenSSL's) uses F4.
			return "", fmt.Errorf("certificate request key: RSA public exponent %d: want 65537", k.E)
		}
		algo, size = "rsa", k.N.BitLen()
	case ed25519.PublicKey:
		algo = "ed25519"
	}
	for _, ki := range keyTypes {
		if ki.algo == algo && ki.size == size {
			return ki.kt, nil
		}
	}
	return "", fmt.Errorf("certificate request key (%T) is not one of the key types dtls issues: %s", pub, KeyTypeNames())
}

// IssuedAt is the earliest instant at which a certificate this package
// signed with notBefore and notAfter can have been issued. NotBefore is
// the time of issue less the backdate: five minutes for Issue, at most a
// tenth of the validity for SignCSR (csrBackdate), where the lifetime
// notAfter-notBefore is the validity plus that backdate, so a tenth of the
// validity is an eleventh of the lifetime. A NotAfter cut at the CA's own
// shortens the lifetime, never lengthens it, and x509 keeps whole
// seconds: the result is never later than the real time of issue.
func IssuedAt(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(min(backdate, notAfter.Sub(notBefore)/11))
}
