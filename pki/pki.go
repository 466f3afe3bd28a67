// Package pki owns dtls's certificate authority: key generation, the CA
// certificate, and the server and client certificates it signs for dockerd's
// mutual TLS. Keys are generated and certificates signed through cfssl's
// library packages (csr, config, signer/local); nothing here touches the
// filesystem: callers get PEM bytes and write them with package atomicfile.
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
	"strings"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

// KeyType names a key algorithm and size.
type KeyType string

// The key types dtls can generate. ECDSA P-256 is the default: it is what
// mkcert and Let's Encrypt use by default, every TLS stack dockerd and the
// Docker CLI have been built with supports it, and a key is generated in
// microseconds where RSA-4096 (the Docker documentation's recipe) takes
// seconds.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
	// Ed25519 certificates are accepted by Go's crypto/tls, which both
	// dockerd and the Docker CLI use (tested end to end against dockerd).
	Ed25519 KeyType = "ed25519"
)

// KeyTypes lists every supported key type, default first.
var KeyTypes = []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519}

// ParseKeyType parses a --key-type value.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
}

func (k KeyType) request() *csr.KeyRequest {
	switch k {
	case ECDSAP384:
		return &csr.KeyRequest{A: "ecdsa", S: 384}
	case RSA2048:
		return &csr.KeyRequest{A: "rsa", S: 2048}
	case RSA3072:
		return &csr.KeyRequest{A: "rsa", S: 3072}
	case RSA4096:
		return &csr.KeyRequest{A: "rsa", S: 4096}
	case Ed25519:
		return &csr.KeyRequest{A: "ed25519"}
	default:
		return &csr.KeyRequest{A: "ecdsa", S: 256}
	}
}

// Default validity periods.
//
// The CA lives long because replacing it means re-issuing every client and
// server certificate. Server certificates last a year (browsers cap public
// ones at 398 days, CA/Browser Forum BR 6.3.2; dockerd must be restarted to
// load a new one, moby#23936, so much shorter would be a chore). Client
// certificates last 90 days: dockerd checks no CRL (moby#27778), so expiry is
// the revocation mechanism that always works, and 90 days is what ACME CAs
// issue.
const (
	DefaultCAValidity     = 10 * 365 * 24 * time.Hour
	DefaultServerValidity = 365 * 24 * time.Hour
	DefaultClientValidity = 90 * 24 * time.Hour
)

// backdate moves NotBefore into the past so that a peer whose clock lags a
// little still accepts a fresh certificate; cfssl's own default
// (signer.FillTemplate) is five minutes.
const backdate = 5 * time.Minute

// Kind is the purpose of a certificate.
type Kind string

// Certificate kinds.
const (
	KindCA     Kind = "ca"
	KindServer Kind = "server"
	KindClient Kind = "client"
)

// policy is the cfssl signing policy. Each profile sets exactly the extended
// key usage its purpose needs, so that a client certificate can never be used
// as a server certificate, nor the reverse (RFC 5280 4.2.1.12). Key
// encipherment is only for RSA keys (RFC 5480 3 forbids it for ECDSA keys),
// hence the separate RSA profiles.
func policy() *config.Signing {
	p := func(usages ...string) *config.SigningProfile {
		return &config.SigningProfile{Usage: usages, Expiry: DefaultServerValidity, ExpiryString: "8760h"}
	}
	return &config.Signing{
		Profiles: map[string]*config.SigningProfile{
			"server":     p("digital signature", "server auth"),
			"server-rsa": p("digital signature", "key encipherment", "server auth"),
			"client":     p("digital signature", "client auth"),
			"client-rsa": p("digital signature", "key encipherment", "client auth"),
		},
		Default: &config.SigningProfile{
			// Only the self-signed CA certificate uses the default profile.
			Usage:        []string{"cert sign", "crl sign"},
			Expiry:       DefaultCAValidity,
			ExpiryString: "87600h",
			CAConstraint: config.CAConstraint{IsCA: true, MaxPathLen: 0, MaxPathLenZero: true},
		},
	}
}

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	key     crypto.Signer
	signer  *local.Signer
}

// CARequest describes a new CA.
type CARequest struct {
	CommonName string
	KeyType    KeyType
	Now        time.Time
	Validity   time.Duration // DefaultCAValidity when zero
}

// NewCA generates a key and a self-signed CA certificate: basicConstraints
// CA:TRUE with path length 0 (it signs leaf certificates only), keyUsage
// certSign and cRLSign, both critical (RFC 5280 4.2.1.9, 4.2.1.3), and a
// subject key identifier.
func NewCA(r CARequest) (*CA, error) {
	if r.Validity == 0 {
		r.Validity = DefaultCAValidity
	}
	if r.CommonName == "" {
		r.CommonName = "dtls CA"
	}
	key, keyPEM, err := generate(r.KeyType)
	if err != nil {
		return nil, err
	}
	req := &csr.CertificateRequest{
		CN:    r.CommonName,
		Names: []csr.Name{{O: "dtls"}},
		CA:    &csr.CAConfig{PathLength: 0, PathLenZero: true},
	}
	csrPEM, err := csr.Generate(key, req)
	if err != nil {
		return nil, fmt.Errorf("create CA request: %w", err)
	}
	s, err := local.NewSigner(key, nil, signer.DefaultSigAlgo(key), policy())
	if err != nil {
		return nil, fmt.Errorf("create CA signer: %w", err)
	}
	certPEM, err := s.Sign(signer.SignRequest{
		Request:   string(csrPEM),
		NotBefore: r.Now.Add(-backdate),
		NotAfter:  r.Now.Add(r.Validity),
	})
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	return LoadCA(certPEM, keyPEM)
}

// LoadCA parses a CA certificate and its private key (PEM) and checks that
// they belong together and that the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("certificate is not a CA certificate")
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !KeyMatches(cert, key) {
		return nil, errors.New("CA private key does not match the CA certificate")
	}
	s, err := local.NewSigner(key, cert, signer.DefaultSigAlgo(key), policy())
	if err != nil {
		return nil, fmt.Errorf("create signer: %w", err)
	}
	return &CA{Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM, key: key, signer: s}, nil
}

// Request describes a leaf certificate to issue.
type Request struct {
	Kind       Kind // KindServer or KindClient
	CommonName string
	// Hosts are the DNS names and IP addresses a server certificate covers.
	// Ignored for client certificates.
	Hosts    []string
	KeyType  KeyType
	Now      time.Time
	Validity time.Duration // the kind's default when zero
	// NotBefore, when set, replaces Now minus the backdate (tests use it
	// to make expired certificates).
	NotBefore time.Time
}

// Issued is a freshly issued certificate and its private key.
type Issued struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Issue generates a key and signs a leaf certificate for it. Serials are 159
// random bits (cfssl's local signer, RFC 5280 4.1.2.2 and CA/Browser Forum BR
// 7.1 ask for at least 64).
func (ca *CA) Issue(r Request) (*Issued, error) {
	var profile string
	switch r.Kind {
	case KindServer:
		if len(r.Hosts) == 0 {
			return nil, errors.New("server certificate needs at least one host")
		}
		for _, h := range r.Hosts {
			if err := ValidateHost(h); err != nil {
				return nil, err
			}
		}
		profile = "server"
	case KindClient:
		if err := ValidateName(r.CommonName); err != nil {
			return nil, err
		}
		r.Hosts = nil
		profile = "client"
	default:
		return nil, fmt.Errorf("cannot issue a certificate of kind %q", r.Kind)
	}
	if r.CommonName == "" {
		r.CommonName = r.Hosts[0]
	}
	if r.Validity == 0 {
		r.Validity = DefaultServerValidity
		if r.Kind == KindClient {
			r.Validity = DefaultClientValidity
		}
	}
	notBefore := r.NotBefore
	if notBefore.IsZero() {
		notBefore = r.Now.Add(-backdate)
	}
	notAfter := r.Now.Add(r.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		// A certificate cannot outlive its issuer (RFC 5280 6.1.3 checks
		// every certificate's validity on the path).
		notAfter = ca.Cert.NotAfter
	}
	key, keyPEM, err := generate(r.KeyType)
	if err != nil {
		return nil, err
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		profile += "-rsa"
	}
	req := &csr.CertificateRequest{CN: r.CommonName, Names: []csr.Name{{O: "dtls"}}, Hosts: r.Hosts}
	csrPEM, err := csr.Generate(key, req)
	if err != nil {
		return nil, fmt.Errorf("create request for %q: %w", r.CommonName, err)
	}
	certPEM, err := ca.signer.Sign(signer.SignRequest{
		Request:   string(csrPEM),
		Hosts:     r.Hosts,
		Profile:   profile,
		NotBefore: notBefore,
		NotAfter:  notAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", r.CommonName, err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// generate makes a key with cfssl and encodes it as PKCS #8 ("PRIVATE
// KEY"), which Go's crypto/tls (dockerd, the Docker CLI) and openssl read for
// every key type; cfssl's own encoding of Ed25519 keys uses a PEM type that
// openssl does not know.
func generate(kt KeyType) (crypto.Signer, []byte, error) {
	if kt == "" {
		kt = ECDSAP256
	}
	if _, err := ParseKeyType(string(kt)); err != nil {
		return nil, nil, err
	}
	priv, err := kt.request().Generate()
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", kt, err)
	}
	key, ok := priv.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("generate %s key: not a signer", kt)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s key: %w", kt, err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertificate parses the first CERTIFICATE block of a PEM file.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertificates parses every CERTIFICATE block of a PEM file (a ca.pem
// holds two CAs during a rotation).
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParsePrivateKey parses a PEM private key in PKCS #8, PKCS #1 or SEC 1
// form (the last two are what openssl recipes and older tools write).
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM private key found")
	}
	if strings.Contains(b.Type, "ENCRYPTED") || b.Headers["Proc-Type"] != "" {
		return nil, errors.New("private key is encrypted")
	}
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key type")
	}
	return s, nil
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// Serial formats a certificate serial number as lowercase hex, the form
// `openssl x509 -serial` and cfssl's certdb use.
func Serial(c *x509.Certificate) string {
	return fmt.Sprintf("%x", c.SerialNumber)
}

// Verify checks that cert chains to one of roots and may be used for kind
// at time now. A client certificate is not accepted as a server certificate,
// nor the reverse: the check is on the extended key usage, as crypto/tls does.
func Verify(cert *x509.Certificate, roots []*x509.Certificate, kind Kind, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	eku := x509.ExtKeyUsageServerAuth
	if kind == KindClient {
		eku = x509.ExtKeyUsageClientAuth
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}})
	if err != nil {
		return fmt.Errorf("certificate %q (serial %s) does not verify as a %s certificate: %w", cert.Subject.CommonName, Serial(cert), kind, err)
	}
	return nil
}

// Missing returns the hosts of want that cert does not cover, comparing
// DNS names case-insensitively and IPs by value.
func Missing(cert *x509.Certificate, want []string) []string {
	var missing []string
	for _, h := range want {
		if cert.VerifyHostname(h) != nil {
			missing = append(missing, h)
		}
	}
	return missing
}

// Describe returns a one-line description of a certificate for status
// output.
func Describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q serial %s, %s, expires %s", c.Subject.CommonName, Serial(c), keyDescription(c), c.NotAfter.UTC().Format("2006-01-02"))
}

func keyDescription(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// KeyTypeOf returns the key type of a certificate's public key, so that a
// renewal keeps the algorithm and size; ECDSAP256 for anything else.
func KeyTypeOf(c *x509.Certificate) KeyType {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 384 {
			return ECDSAP384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	case ed25519.PublicKey:
		return Ed25519
	}
	return ECDSAP256
}

// Hosts returns the DNS names and IP addresses a certificate covers.
func Hosts(c *x509.Certificate) []string {
	hosts := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}
