package pki_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/dtls-tool/dtls/pki"
)

// webPKISources are the zlint lint sources that are not run on dtls's
// certificates, except for their key usage lints (keyUsageLint). They are
// the rules of the public web PKI and of trust programmes, which a private
// CA for dockerd is not part of:
//
//   - CABF_BR, CABF_EV (CA/Browser Forum Baseline Requirements and EV
//     Guidelines): they ask for subject country, locality and province,
//     certificate policies, an authority information access extension with
//     an OCSP URL, SANs with public top-level domains and no reserved IPs
//     (dockerd is reached at localhost and 127.0.0.1), no path length on a
//     root, and refuse Ed25519 keys; zlint v3.7 adds a CRL distribution
//     point and at most 200 days of validity for server certificates.
//     None of this means anything to Go's crypto/tls in dockerd and the
//     Docker CLI.
//   - Mozilla, Apple: the root store policies of those browser vendors
//     (Apple's asks for Certificate Transparency SCTs).
//   - ETSI_ESI: EU qualified certificates (eIDAS).
//
// Every other source runs in full: RFC5280, RFC5480, RFC3279, RFC5891,
// RFC8813 and Community (encoding and key sanity checks that hold for any
// X.509 certificate).
var webPKISources = lint.SourceList{
	lint.CABFBaselineRequirements,
	lint.CABFEVGuidelines,
	lint.MozillaRootStorePolicy,
	lint.AppleRootStorePolicy,
	lint.EtsiEsi,
}

// keyUsageLint matches the names of zlint's key usage and extended key
// usage lints, such as e_ecdsa_allowed_ku, e_rsa_allowed_ku_ee,
// e_sub_cert_key_usage_cert_sign_bit_set, w_sub_cert_eku_extra_values and
// e_ca_crl_sign_not_set. They run whatever their source: what a key may be
// used for is the same question in a private PKI as in the web PKI. Their
// warnings and notices fail the test too.
var keyUsageLint = regexp.MustCompile(`key_usage|(^|_)e?ku(_|$)|_sign_not_set|digital_signature`)

// acceptedLints are results at Notice level that dtls accepts, by lint
// name, with the reason.
var acceptedLints = map[string]string{
	// CA/Browser Forum BR 7.1.2.1: digitalSignature is for a CA whose key
	// signs OCSP responses. A dtls CA signs certificates and CRLs
	// (keyCertSign, cRLSign; RFC 5280 4.2.1.3) and no OCSP responses.
	"n_ca_digital_signature_not_set": "the CA signs no OCSP responses",
}

// lintRegistry returns the zlint lints run on dtls's certificates: every
// lint but those of webPKISources, plus the key usage lints of those.
func lintRegistry(t testing.TB) lint.Registry {
	t.Helper()
	excluded := map[lint.LintSource]bool{}
	for _, s := range webPKISources {
		excluded[s] = true
	}
	global := lint.GlobalRegistry()
	var names []string
	for _, l := range global.CertificateLints().Lints() {
		if !excluded[l.Source] || keyUsageLint.MatchString(l.Name) {
			names = append(names, l.Name)
		}
	}
	reg, err := global.Filter(lint.FilterOptions{IncludeNames: names})
	require.NoError(t, err)
	// The registry really holds the lints this test is about; a renamed
	// lint or a filter gone wrong must not make the test pass vacuously.
	for _, name := range []string{
		"e_ecdsa_allowed_ku", "n_ecdsa_ee_invalid_ku", "e_rsa_allowed_ku_ee", "e_rsa_allowed_ku_ca",
		"e_rsa_allowed_ku_no_encipherment_ca", "e_ext_key_usage_cert_sign_without_ca",
		"e_sub_cert_key_usage_cert_sign_bit_set", "e_sub_cert_key_usage_crl_sign_bit_set",
		"e_ca_key_cert_sign_not_set", "e_ca_crl_sign_not_set", "e_ca_key_usage_not_critical",
		"e_sub_cert_eku_missing", "w_sub_cert_eku_extra_values",
		"e_basic_constraints_not_critical", "e_serial_number_not_positive",
	} {
		require.NotNil(t, reg.CertificateLints().ByName(name), "lint %s is run", name)
	}
	for _, s := range webPKISources {
		for _, l := range reg.CertificateLints().BySource(s) {
			require.Regexp(t, keyUsageLint, l.Name, "only key usage lints of %s run", s)
		}
	}
	return reg
}

// lintProblems runs reg on the DER certificate der and returns the results
// that fail it: Error and Fatal from any lint, and Warn and Notice from key
// usage lints unless acceptedLints names them. zlint parses with zmap's
// zcrypto fork of crypto/x509.
func lintProblems(t testing.TB, reg lint.Registry, der []byte) []string {
	t.Helper()
	c, err := zx509.ParseCertificate(der)
	require.NoError(t, err)
	res := zlint.LintCertificateEx(c, reg)
	var problems []string
	for name, r := range res.Results {
		bad := r.Status >= lint.Error ||
			r.Status >= lint.Notice && keyUsageLint.MatchString(name) && acceptedLints[name] == ""
		if bad {
			problems = append(problems, fmt.Sprintf("%s: %s %s", name, r.Status, r.Details))
		}
	}
	sort.Strings(problems)
	return problems
}

// ekuKeyUsages are the key usage bits that RFC 5280 4.2.1.12 lists as
// consistent with the extended key usages dtls sets; keyEncipherment and
// keyAgreement are alternatives for serverAuth. zlint v3.6.0 checks this as
// e_key_usage_and_extended_key_usage_inconsistent; v3.5.0, the version
// cfssl v1.6.5 requires, does not have that lint yet, so keyUsageProblems
// checks it here.
var ekuKeyUsages = map[x509.ExtKeyUsage]x509.KeyUsage{
	x509.ExtKeyUsageServerAuth: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
	x509.ExtKeyUsageClientAuth: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
}

// keyUsageProblems checks what zlint v3.5.0 does not: that c's key usage
// is consistent with each of its extended key usages (RFC 5280 4.2.1.12)
// and, for an Ed25519 key, is among the bits RFC 8410 5 allows.
func keyUsageProblems(c *x509.Certificate) []string {
	var problems []string
	for _, eku := range c.ExtKeyUsage {
		allowed, ok := ekuKeyUsages[eku]
		if !ok {
			problems = append(problems, fmt.Sprintf("unexpected extended key usage %d", eku))
			continue
		}
		both := x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
		if c.KeyUsage == 0 || c.KeyUsage&^allowed != 0 || c.KeyUsage&both == both {
			problems = append(problems, fmt.Sprintf("key usage %09b inconsistent with extended key usage %d (RFC 5280 4.2.1.12)", c.KeyUsage, eku))
		}
	}
	const ed25519Usages = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	if c.PublicKeyAlgorithm == x509.Ed25519 && c.KeyUsage&^ed25519Usages != 0 {
		problems = append(problems, fmt.Sprintf("key usage %09b not allowed for an Ed25519 key (RFC 8410 5)", c.KeyUsage))
	}
	return problems
}

// TestLintCatches shows that lintProblems and keyUsageProblems fail the
// certificates they are there to fail, by linting certificates that
// crypto/x509 signs with a dtls CA's key and bad key usages.
func TestLintCatches(t *testing.T) {
	reg := lintRegistry(t)
	now := testNow()
	tests := []struct {
		name string
		kt   pki.KeyType
		ku   x509.KeyUsage
		eku  x509.ExtKeyUsage
		// lint is a zlint lint that must report it, if the registry has
		// it; "" means zlint must pass it.
		lint    string
		ownFail bool // keyUsageProblems must report it
	}{
		{"ECDSA server with keyEncipherment", pki.ECDSAP256, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, x509.ExtKeyUsageServerAuth, "e_ecdsa_allowed_ku", false},
		// What dtls issued before: zlint v3.6.0 and later fail it.
		{"RSA client with keyEncipherment", pki.RSA2048, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, x509.ExtKeyUsageClientAuth, "e_key_usage_and_extended_key_usage_inconsistent", true},
		{"leaf with certSign", pki.ECDSAP256, x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, x509.ExtKeyUsageServerAuth, "e_sub_cert_key_usage_cert_sign_bit_set", true},
		{"Ed25519 client with keyAgreement", pki.Ed25519, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement, x509.ExtKeyUsageClientAuth, "", true},
		{"RSA server with keyEncipherment passes", pki.RSA2048, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, x509.ExtKeyUsageServerAuth, "", false},
	}
	cas := map[pki.KeyType]*pki.CA{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := cas[tt.kt]
			if ca == nil {
				var err error
				ca, err = pki.NewCA(pki.CARequest{KeyType: tt.kt, Now: now})
				require.NoError(t, err)
				cas[tt.kt] = ca
			}
			key, err := pki.ParsePrivateKey(ca.KeyPEM)
			require.NoError(t, err)
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(now.UnixNano()),
				Subject:      pkix.Name{CommonName: "localhost"},
				DNSNames:     []string{"localhost"},
				NotBefore:    now,
				NotAfter:     now.Add(time.Hour),
				KeyUsage:     tt.ku,
				ExtKeyUsage:  []x509.ExtKeyUsage{tt.eku},
			}
			// The CA's own key stands for the subject's: only the key
			// type matters here.
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), key)
			require.NoError(t, err)
			c, err := x509.ParseCertificate(der)
			require.NoError(t, err)

			problems := lintProblems(t, reg, der)
			switch {
			case tt.lint == "":
				assert.Empty(t, problems)
			case reg.CertificateLints().ByName(tt.lint) == nil:
				// zlint v3.5.0 has no e_key_usage_and_extended_key_usage_
				// inconsistent; keyUsageProblems stands in for it.
				t.Logf("zlint has no lint %s", tt.lint)
			default:
				assert.Condition(t, func() bool {
					for _, p := range problems {
						if regexp.MustCompile(`^` + tt.lint + `: `).MatchString(p) {
							return true
						}
					}
					return false
				}, "zlint %s must fail it: %v", tt.lint, problems)
			}
			if tt.ownFail {
				assert.NotEmpty(t, keyUsageProblems(c))
			} else {
				assert.Empty(t, keyUsageProblems(c))
			}
		})
	}
}
