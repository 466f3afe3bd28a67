// Package fleet is the protocol between dtls's online CA (package caserver,
// `dtls ca serve`) and the hosts and laptops that use it: enrolment with a
// one-time token, renewal with the current certificate over mutual TLS, the
// signed revocation list every authorization plugin follows, and the
// operator calls behind `dtls list|revoke --ca-url`.
//
// Every JSON call answers in cfssl's API envelope (cfssl api.Response:
// {"success", "result", "errors", "messages"}), so that cfssl's own
// clients and tools read the errors; the revocation list is a DER X.509
// CRL (RFC 5280 5), signed by the CA, served as application/pkix-crl
// (RFC 2585 4.2).
package fleet

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/pki"
)

// API paths, all under cfssl's /api/v1 prefix next to cfssl's own
// /api/v1/cfssl handlers.
const (
	// PathEnroll signs a CSR for the holder of a one-time token
	// (POST EnrollRequest → CertResponse). No client certificate.
	PathEnroll = "/api/v1/dtls/enroll"
	// PathRenew signs a CSR for the holder of a current, good certificate
	// presented as the TLS client certificate (POST RenewRequest →
	// CertResponse).
	PathRenew = "/api/v1/dtls/renew"
	// PathCRL is the revocation list (GET → DER CRL). No authentication:
	// the CA's signature is what a plugin trusts.
	PathCRL = "/api/v1/dtls/crl"
	// PathCA is the CA certificates, PEM, current first (GET).
	PathCA = "/api/v1/dtls/ca"
	// PathCerts lists the inventory (GET → []pki.Record; operator).
	PathCerts = "/api/v1/dtls/certs"
	// PathRevoke revokes certificates (POST RevokeRequest →
	// RevokeResponse; operator).
	PathRevoke = "/api/v1/dtls/revoke"
	// PathTokens makes an enrolment token (POST TokenRequest →
	// TokenResponse; operator).
	PathTokens = "/api/v1/dtls/tokens"
)

// OperatorRole is the role of the certificates that may call the operator
// paths. It is not a role of the authorization policy, so an operator
// certificate opens no Docker daemon.
const OperatorRole = "ca-operator"

// DefaultClientValidity is the lifetime of a client certificate from the
// online CA: with an agent renewing it, a day is enough, and a lost laptop
// is locked out within a day even by a daemon without the plugin (dockerd
// checks no CRL, moby#27778).
const DefaultClientValidity = 24 * time.Hour

// DefaultTokenTTL is how long an enrolment token stays usable.
const DefaultTokenTTL = time.Hour

// DefaultCRLRefresh is how often a plugin fetches the revocation list. With
// the CA re-signing the list on every change, a revocation reaches every
// daemon within DefaultCRLRefresh plus one round trip: under 10 s.
const DefaultCRLRefresh = 5 * time.Second

// EnrollRequest is the body of PathEnroll.
type EnrollRequest struct {
	Token string `json:"token"`
	// CSR is a PEM PKCS #10 request. Only its public key is used: the CA
	// sets the subject, names and lifetime from the token.
	CSR string `json:"csr"`
}

// RenewRequest is the body of PathRenew.
type RenewRequest struct {
	// CSR is a PEM PKCS #10 request for the new key. Only its public key
	// is used: the certificate keeps the current one's name, kind, hosts
	// and role (the role as the inventory has it now).
	CSR string `json:"csr"`
}

// CertResponse is the result of PathEnroll and PathRenew.
type CertResponse struct {
	Certificate string    `json:"certificate"` // PEM leaf
	CA          string    `json:"ca"`          // PEM CA certificates, current first
	Kind        pki.Kind  `json:"kind"`
	Name        string    `json:"name"`
	Role        string    `json:"role,omitempty"`
	NotAfter    time.Time `json:"not_after"`
	// Superseded are the serials of the good certificates of the same
	// kind and name that an enrolment superseded: the holder enrolled
	// again, and they stop working (marked superseded in the inventory,
	// listed in the revocation list).
	Superseded []string `json:"superseded,omitempty"`
}

// TokenRequest is the body of PathTokens.
type TokenRequest struct {
	Kind  pki.Kind `json:"kind"`            // KindServer or KindClient
	Name  string   `json:"name"`            // client name, or the host's name
	Role  string   `json:"role,omitempty"`  // clients: the authorization role
	Hosts []string `json:"hosts,omitempty"` // servers: DNS names and IPs
	// TTL is how long the token is valid, in seconds (DefaultTokenTTL when
	// zero).
	TTL int64 `json:"ttl,omitempty"`
}

// TokenResponse is the result of PathTokens.
type TokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RevokeRequest is the body of PathRevoke.
type RevokeRequest struct {
	Key    string `json:"key"`    // a name or a serial, as `dtls revoke` takes
	Reason int    `json:"reason"` // RFC 5280 5.3.1
}

// RevokeResponse is the result of PathRevoke.
type RevokeResponse struct {
	Revoked []pki.Record `json:"revoked"`
}

// tokenPrefix starts every token, so that one pasted into the wrong
// place is recognised.
const tokenPrefix = "dtls1"

// Token is an enrolment token: a random secret and the SHA-256
// fingerprint of the CA certificate. The fingerprint lets a host that has
// nothing yet check that it talks to the right CA (as kubeadm's
// --discovery-token-ca-cert-hash); the CA stores only the secret's hash.
type Token struct {
	Secret        [32]byte
	CAFingerprint [32]byte
}

// NewToken makes a token for the CA certificate ca.
func NewToken(ca *x509.Certificate) (Token, error) {
	var t Token
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return t, err
	}
	t.CAFingerprint = Fingerprint(ca)
	return t, nil
}

// String is the token as printed: dtls1.<secret, base64url>.<fingerprint, hex>.
func (t Token) String() string {
	return tokenPrefix + "." + base64.RawURLEncoding.EncodeToString(t.Secret[:]) + "." + hex.EncodeToString(t.CAFingerprint[:])
}

// Hash is what the CA stores for the token: hex SHA-256 of the secret.
func (t Token) Hash() string {
	h := sha256.Sum256(t.Secret[:])
	return hex.EncodeToString(h[:])
}

// ErrBadToken is returned by ParseToken; the message never repeats the
// token.
var ErrBadToken = errors.New("not a dtls enrolment token (want dtls1.<secret>.<fingerprint>, as `dtls ca token` prints)")

// ParseToken parses what Token.String printed.
func ParseToken(s string) (Token, error) {
	var t Token
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return t, ErrBadToken
	}
	sec, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(sec) != len(t.Secret) {
		return t, ErrBadToken
	}
	fp, err := hex.DecodeString(parts[2])
	if err != nil || len(fp) != len(t.CAFingerprint) {
		return t, ErrBadToken
	}
	copy(t.Secret[:], sec)
	copy(t.CAFingerprint[:], fp)
	return t, nil
}

// Fingerprint is the SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// MatchesFingerprint says whether c has fingerprint fp, in constant time.
func MatchesFingerprint(c *x509.Certificate, fp [32]byte) bool {
	got := Fingerprint(c)
	return subtle.ConstantTimeCompare(got[:], fp[:]) == 1
}

// rolePrefix marks the organizationalUnit that carries a client's role in
// a certificate from the online CA. A daemon host has no copy of the
// fleet's inventory, so its plugin reads the role from the certificate,
// which the CA signed; the role is refreshed at every renewal.
const rolePrefix = "dtls-role:"

// RoleOU is the organizationalUnit value that records role.
func RoleOU(role string) string { return rolePrefix + role }

// CertRole returns the role recorded in c by the online CA, and whether
// there is one.
func CertRole(c *x509.Certificate) (string, bool) {
	for _, ou := range c.Subject.OrganizationalUnit {
		if r, ok := strings.CutPrefix(ou, rolePrefix); ok {
			return r, true
		}
	}
	return "", false
}

// Duration formats d for messages ("24h0m0s" reads worse than "24h").
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// CheckKind refuses kinds a token cannot be for.
func CheckKind(k pki.Kind) error {
	if k != pki.KindServer && k != pki.KindClient {
		return fmt.Errorf("token kind %q: want %q or %q", k, pki.KindServer, pki.KindClient)
	}
	return nil
}

// PathRotate runs a step of the CA's rotation, or reports it (POST
// RotateRequest → RotateResponse; operator). A refused step is HTTP 409
// with what to do next.
const PathRotate = "/api/v1/dtls/rotate"

// Steps of RotateRequest and RotateResponse. The rotation is the local
// one's (dtls rotate-ca): trust (a next CA exists; certificates are still
// signed by the current one; every answer's CA certificates hold both),
// switch (new certificates are signed by the next CA), finish (the next
// CA becomes the only one). RotateNone is a CA that is not rotating.
const (
	RotateNone   = "none"
	RotateTrust  = "trust"
	RotateSwitch = "switch"
	RotateFinish = "finish"
	RotateStatus = "status"
)

// PathRotation is where the CA's rotation is, for every holder (GET →
// RotationState; no authentication: it holds CA certificates and a step,
// which PathCA and every answer disclose anyway). 'dtls agent' reads it
// at each look, to renew at once during a rotation.
const PathRotation = "/api/v1/dtls/rotation"

// RotationState is the result of PathRotation.
type RotationState struct {
	// Step is RotateNone, RotateTrust or RotateSwitch.
	Step string `json:"step"`
	// CA is the PEM CA certificates the CA serves now, current first:
	// what a bundle's ca.pem should hold.
	CA string `json:"ca"`
	// Signer is the serial of the CA that signs new certificates.
	Signer string `json:"signer"`
	// TrustBegan is when step trust began (zero outside a rotation): a
	// certificate issued before it came with a ca.pem of the old CA
	// alone, and holds up the switch (engine.OldOnlyClients).
	TrustBegan time.Time `json:"trust_began,omitzero"`
}

// RotateRequest is the body of PathRotate.
type RotateRequest struct {
	Step string `json:"step"` // RotateTrust, RotateSwitch, RotateFinish or RotateStatus
	// Force finishes although good certificates of the old CA remain
	// (they are marked superseded and stop working), or switches although
	// clients whose ca.pem trusts only the old CA remain (they cannot
	// verify a host renewed from then on).
	Force bool `json:"force,omitempty"`
}

// RotationCA describes one CA certificate of a rotation.
type RotationCA struct {
	Subject     string    `json:"subject"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"` // hex SHA-256 of the DER
	NotAfter    time.Time `json:"not_after"`
}

// RotationCount is how many good, unexpired certificates of a kind one CA
// signed.
type RotationCount struct {
	CASerial string   `json:"ca_serial"`
	Kind     pki.Kind `json:"kind"`
	Good     int      `json:"good"`
}

// RotationCert names a certificate that holds up the finish.
type RotationCert struct {
	Kind     pki.Kind  `json:"kind"`
	Name     string    `json:"name"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// RotateResponse is the result of PathRotate: the rotation after the step.
type RotateResponse struct {
	// Step is RotateNone, RotateTrust or RotateSwitch.
	Step string `json:"step"`
	// Current is the CA that signed the certificates until the rotation
	// (after a finish: the only one); Next the next CA during one.
	Current RotationCA  `json:"current"`
	Next    *RotationCA `json:"next,omitempty"`
	// Signer is the serial of the CA that signs new certificates.
	Signer string `json:"signer"`
	// CA is the PEM CA certificates the CA serves now (PathCA), current
	// first: what a bundle's ca.pem should hold.
	CA string `json:"ca"`
	// Counts are the good, unexpired certificates by CA and kind.
	Counts []RotationCount `json:"counts"`
	// Blocking are the good, unexpired certificates of the current CA
	// that hold up a finish (the CA's own listener certificate aside: the
	// finish replaces it).
	Blocking []RotationCert `json:"blocking,omitempty"`
	// SwitchBlocking are, at step trust, the good client certificates
	// handed out before it with a ca.pem of the current CA alone: they
	// hold up the switch (operators aside: they verify only the CA).
	SwitchBlocking []RotationCert `json:"switch_blocking,omitempty"`
	// TrustBegan is when step trust began (zero at the other steps).
	TrustBegan time.Time `json:"trust_began,omitzero"`
	// Cut are the certificates a forced finish marked superseded, or the
	// clients a forced switch left with a ca.pem of the old CA alone.
	Cut []RotationCert `json:"cut,omitempty"`
}

// InventoryRoles reads, from the online CA's inventory, the role of each
// client (the one in its good certificate: the CA writes it there at every
// enrolment and renewal), and the serial of the current CA, the good CA
// certificate issued last. A record whose certificate does not parse is
// skipped.
func InventoryRoles(recs []pki.Record) (roles map[string]string, currentCA string) {
	roles = map[string]string{}
	var newestCA time.Time
	for _, r := range recs {
		cert, err := r.Cert()
		if err != nil || r.Status != pki.StatusGood {
			continue
		}
		switch r.Kind {
		case pki.KindClient:
			if role, ok := CertRole(cert); ok {
				roles[r.Name] = role
			}
		case pki.KindCA:
			if r.NotBefore.After(newestCA) {
				currentCA, newestCA = r.Serial, r.NotBefore
			}
		}
	}
	return roles, currentCA
}
