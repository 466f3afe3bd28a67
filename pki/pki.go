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
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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

// KeyType names a key algorithm and size, as the --key-type flag spells it.
// The zero value stands for DefaultKeyType in CARequest and Request; any
// other value not in KeyTypes is refused.
type KeyType string

// The key types dtls can generate.
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

// DefaultKeyType is the key type used when none is given. ECDSA P-256 is
// what mkcert and Let's Encrypt use by default, every TLS stack dockerd and
// the Docker CLI have been built with supports it, and a key is generated in
// microseconds where RSA-4096 (the Docker documentation's recipe) takes
// seconds.
const DefaultKeyType = ECDSAP256

// keyTypeInfo is everything dtls knows about one key type.
type keyTypeInfo struct {
	kt KeyType
	// help is the short text of shell completion and flag help.
	help string
	// algo and size are cfssl's csr.KeyRequest A and S; size is 0 for
	// Ed25519, whose key size the algorithm fixes.
	algo string
	size int
	// keyEncipherment: a server certificate for this key also asserts
	// keyEncipherment, for TLS 1.2's RSA key exchange, in which the client
	// encrypts the premaster secret to the server's public key (RFC 5246
	// 7.4.7.1). Only an RSA key can do that. See keyUsages.
	keyEncipherment bool
}

// keyTypes is the one table of key types: KeyTypes, ParseKeyType, Help,
// KeyTypeNames, KeyTypeOf, key generation and key usages are all derived
// from it. The default comes first.
var keyTypes = []keyTypeInfo{
	{ECDSAP256, "ECDSA P-256 (default; fast, small)", "ecdsa", 256, false},
	{ECDSAP384, "ECDSA P-384 (for policies that require it, e.g. CNSA)", "ecdsa", 384, false},
	{RSA2048, "RSA 2048-bit (for peers without ECDSA)", "rsa", 2048, true},
	// NIST SP 800-57 part 1 rev. 5, table 4: 2048-bit RSA is acceptable
	// through 2030, 3072-bit beyond.
	{RSA3072, "RSA 3072-bit (RSA beyond 2030, NIST SP 800-57)", "rsa", 3072, true},
	{RSA4096, "RSA 4096-bit (the Docker docs' recipe; slow to generate)", "rsa", 4096, true},
	// RFC 8410; TLS 1.2 and 1.3 signatures per RFC 8422 and RFC 8446.
	{Ed25519, "Ed25519 (fast, small; Go and OpenSSL 1.1.1+ peers only)", "ed25519", 0, false},
}

// KeyTypes lists every supported key type, DefaultKeyType first. Callers
// must not modify it.
var KeyTypes = keyTypeList()

func keyTypeList() []KeyType {
	kts := make([]KeyType, len(keyTypes))
	for i, ki := range keyTypes {
		kts[i] = ki.kt
	}
	return kts
}

// KeyTypeNames returns the names of every supported key type, default
// first, separated by ", ", for flag usage and error messages.
func KeyTypeNames() string {
	names := make([]string, len(keyTypes))
	for i, ki := range keyTypes {
		names[i] = string(ki.kt)
	}
	return strings.Join(names, ", ")
}

// ParseKeyType parses a --key-type value. The names are case-sensitive;
// the error for an unknown one lists the valid names.
func ParseKeyType(s string) (KeyType, error) {
	ki, err := lookupKeyType(KeyType(s))
	if err != nil {
		return "", err
	}
	return ki.kt, nil
}

// Help returns a short description of k for shell completion and flag
// help, such as "ECDSA P-256 (default; fast, small)", or "" for a key type
// dtls does not know.
func (k KeyType) Help() string {
	ki, err := lookupKeyType(k)
	if err != nil {
		return ""
	}
	return ki.help
}

// lookupKeyType returns the table row of k, or an error that lists the
// valid names.
func lookupKeyType(k KeyType) (keyTypeInfo, error) {
	for _, ki := range keyTypes {
		if ki.kt == k {
			return ki, nil
		}
	}
	return keyTypeInfo{}, fmt.Errorf("unknown key type %q (want one of %s)", k, KeyTypeNames())
}

// keyTypeOrDefault is lookupKeyType with the zero value standing for
// DefaultKeyType, as it does in CARequest and Request.
func keyTypeOrDefault(k KeyType) (keyTypeInfo, error) {
	if k == "" {
		k = DefaultKeyType
	}
	return lookupKeyType(k)
}

// request is the cfssl key request that generates a key of this type.
func (ki keyTypeInfo) request() *csr.KeyRequest {
	return &csr.KeyRequest{A: ki.algo, S: ki.size}
}

// keyUsages returns the key usages and extended key usages, in cfssl's
// spelling (config.KeyUsage, config.ExtKeyUsage), of a certificate of kind
// for a key of this type. Each is the least its purpose needs, and every
// combination passes zlint's key usage lints (e_ecdsa_allowed_ku,
// e_rsa_allowed_ku_*, and from zlint v3.6.0 on
// e_key_usage_and_extended_key_usage_inconsistent; see zlint_test.go):
//
//   - CA: keyCertSign and cRLSign (RFC 5280 4.2.1.3: the bits for signing
//     certificates and CRLs), no extended key usage. No digitalSignature:
//     the CA key signs no OCSP responses, which is the one case where the
//     CA/Browser Forum BR 7.1.2.1 asks for it (zlint's
//     n_ca_digital_signature_not_set is only a notice). RFC 5480 3 and
//     RFC 8410 5 allow these two bits for ECDSA and Ed25519 keys.
//   - Server: digitalSignature and serverAuth; keyEncipherment as well for
//     RSA keys (see keyTypeInfo.keyEncipherment). RFC 5280 4.2.1.12 lists
//     digitalSignature, keyEncipherment or keyAgreement as consistent with
//     serverAuth; RFC 5480 3 forbids keyEncipherment for ECDSA keys, and
//     RFC 8410 5 allows an Ed25519 key only digitalSignature,
//     nonRepudiation, keyCertSign and cRLSign.
//   - Client: digitalSignature and clientAuth, whatever the key: a TLS
//     client proves its key with a signature (CertificateVerify, RFC 5246
//     7.4.8, RFC 8446 4.4.3), and RFC 5280 4.2.1.12 lists only
//     digitalSignature and/or keyAgreement as consistent with clientAuth,
//     so keyEncipherment there is an error.
//
// Each leaf profile sets exactly one extended key usage, so that a client
// certificate can never be used as a server certificate, nor the reverse.
func (ki keyTypeInfo) keyUsages(kind Kind) []string {
	switch kind {
	case KindCA:
		return []string{"cert sign", "crl sign"}
	case KindServer:
		if ki.keyEncipherment {
			return []string{"digital signature", "key encipherment", "server auth"}
		}
		return []string{"digital signature", "server auth"}
	case KindClient:
		return []string{"digital signature", "client auth"}
	}
	return nil
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

// policy is the cfssl signing policy: one profile for each certificate kind
// and key type (profileName), with the usages keyUsages gives and the kind's
// default validity (every Sign call sets NotAfter anyway). The CA profiles
// set basicConstraints CA:TRUE with path length 0: a dtls CA signs leaf
// certificates only.
func policy() *config.Signing {
	s := &config.Signing{Profiles: map[string]*config.SigningProfile{}}
	for _, ki := range keyTypes {
		s.Profiles[profileName(KindCA, ki.kt)] = &config.SigningProfile{
			Usage:        ki.keyUsages(KindCA),
			Expiry:       DefaultCAValidity,
			CAConstraint: config.CAConstraint{IsCA: true, MaxPathLen: 0, MaxPathLenZero: true},
		}
		s.Profiles[profileName(KindServer, ki.kt)] = &config.SigningProfile{
			Usage:  ki.keyUsages(KindServer),
			Expiry: DefaultServerValidity,
		}
		s.Profiles[profileName(KindClient, ki.kt)] = &config.SigningProfile{
			Usage:  ki.keyUsages(KindClient),
			Expiry: DefaultClientValidity,
		}
		// The profiles of SignCSR take the public key alone from a
		// request made elsewhere. Without a whitelist cfssl copies the
		// CSR's subject fields that the sign request leaves empty (its
		// OU: a role; C, ST, L, serialNumber) and, for a request
		// without hosts, its SANs of every type
		// (signer/local/local.go Sign, PopulateSubjectFromCSR).
		for _, kind := range []Kind{KindServer, KindClient} {
			p := *s.Profiles[profileName(kind, ki.kt)]
			p.CSRWhitelist = &config.CSRWhitelist{PublicKey: true, PublicKeyAlgorithm: true, SignatureAlgorithm: true}
			s.Profiles[csrProfileName(kind, ki.kt)] = &p
		}
	}
	// cfssl requires a default profile and signs with it when a request
	// names a profile it does not have (signer.Profile); sign refuses
	// such requests, so this one is never used.
	s.Default = s.Profiles[profileName(KindCA, DefaultKeyType)]
	return s
}

// profileName names the signing profile of a certificate of kind for a key
// of type kt, such as "client-rsa-2048".
func profileName(kind Kind, kt KeyType) string {
	return string(kind) + "-" + string(kt)
}

// csrProfileName names the profile of SignCSR for a key of type kt, such
// as "csr-client-rsa-2048".
func csrProfileName(kind Kind, kt KeyType) string {
	return "csr-" + profileName(kind, kt)
}

// sign signs req with s. It refuses a profile that the policy does not
// have, where cfssl would silently use the default (CA) profile.
func sign(s *local.Signer, req signer.SignRequest) ([]byte, error) {
	if _, ok := s.Policy().Profiles[req.Profile]; !ok {
		return nil, fmt.Errorf("no signing profile %q", req.Profile)
	}
	return s.Sign(req)
}

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate // the CA certificate
	CertPEM []byte            // Cert as PEM
	KeyPEM  []byte            // the CA's private key as unencrypted PEM
	key     crypto.Signer
	signer  *local.Signer
}

// CARequest describes a new CA.
type CARequest struct {
	CommonName string  // "dtls CA" when empty
	KeyType    KeyType // DefaultKeyType when empty; unknown ones are refused
	// Now is the time of issue: NotBefore is Now minus five minutes.
	Now      time.Time
	Validity time.Duration // DefaultCAValidity when zero
}

// NewCA generates a key and a self-signed CA certificate: basicConstraints
// CA:TRUE with path length 0 (it signs leaf certificates only), keyUsage
// certSign and cRLSign, both critical (RFC 5280 4.2.1.9, 4.2.1.3), and a
// subject key identifier. An unknown KeyType is an error.
func NewCA(r CARequest) (*CA, error) {
	ki, err := keyTypeOrDefault(r.KeyType)
	if err != nil {
		return nil, err
	}
	if r.Validity == 0 {
		r.Validity = DefaultCAValidity
	}
	if r.CommonName == "" {
		r.CommonName = "dtls CA"
	}
	key, keyPEM, err := generate(ki)
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
	certPEM, err := sign(s, signer.SignRequest{
		Request:   string(csrPEM),
		Profile:   profileName(KindCA, ki.kt),
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
	Hosts   []string
	KeyType KeyType // DefaultKeyType when empty; unknown ones are refused
	// Now is the time of issue: NotBefore is Now minus five minutes, and
	// NotAfter is Now plus Validity, capped at the CA's NotAfter.
	Now      time.Time
	Validity time.Duration // the kind's default when zero
	// NotBefore, when set, replaces Now minus the backdate (tests use it
	// to make expired certificates).
	NotBefore time.Time
}

// Issued is a freshly issued certificate and its private key.
type Issued struct {
	Cert    *x509.Certificate // the certificate
	CertPEM []byte            // Cert as PEM
	KeyPEM  []byte            // its private key as unencrypted PKCS #8 PEM
}

// Issue generates a key and signs a leaf certificate for it. A server
// certificate gets keyUsage digitalSignature (and keyEncipherment for an
// RSA key, for TLS 1.2's RSA key exchange) and extKeyUsage serverAuth; a
// client certificate gets digitalSignature and clientAuth, whatever its key
// (RFC 5280 4.2.1.3 and 4.2.1.12, RFC 5480 3, RFC 8410 5). An unknown
// KeyType is an error. Serials are 159 random bits (cfssl's local signer,
// RFC 5280 4.1.2.2 and CA/Browser Forum BR 7.1 ask for at least 64).
func (ca *CA) Issue(r Request) (*Issued, error) {
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
	case KindClient:
		if err := ValidateName(r.CommonName); err != nil {
			return nil, err
		}
		r.Hosts = nil
	default:
		return nil, fmt.Errorf("cannot issue a certificate of kind %q", r.Kind)
	}
	ki, err := keyTypeOrDefault(r.KeyType)
	if err != nil {
		return nil, err
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
	key, keyPEM, err := generate(ki)
	if err != nil {
		return nil, err
	}
	req := &csr.CertificateRequest{CN: r.CommonName, Names: []csr.Name{{O: "dtls"}}, Hosts: r.Hosts}
	csrPEM, err := csr.Generate(key, req)
	if err != nil {
		return nil, fmt.Errorf("create request for %q: %w", r.CommonName, err)
	}
	certPEM, err := sign(ca.signer, signer.SignRequest{
		Request:   string(csrPEM),
		Hosts:     r.Hosts,
		Profile:   profileName(r.Kind, ki.kt),
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
func generate(ki keyTypeInfo) (crypto.Signer, []byte, error) {
	kt := ki.kt
	priv, err := ki.request().Generate()
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

// ErrNoCertificate is what ParseCertificates returns for data that holds
// no CERTIFICATE block at all.
var ErrNoCertificate = errors.New("no PEM certificate found")

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
		return nil, ErrNoCertificate
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

// Fingerprint is "sha256:" and the hex SHA-256 of a certificate's DER, as
// 'openssl x509 -fingerprint -sha256' prints it (without colons, in lower
// case): what a holder compares with their admin's copy to trust a CA.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseFingerprint checks a fingerprint as Fingerprint writes it (the
// "sha256:" prefix optional, hex in either case) and returns it as
// Fingerprint writes it.
func ParseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:"))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want sha256: and 64 hexadecimal digits", s)
	}
	return "sha256:" + h, nil
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
// renewal keeps the algorithm and size. A key that dtls cannot generate
// (say P-521 or RSA-8192, from an imported certificate) gives
// DefaultKeyType.
func KeyTypeOf(c *x509.Certificate) KeyType {
	if kt, err := keyTypeOfPublic(c.PublicKey); err == nil {
		return kt
	}
	return DefaultKeyType
}

// Hosts returns the DNS names and IP addresses a certificate covers.
func Hosts(c *x509.Certificate) []string {
	hosts := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}
