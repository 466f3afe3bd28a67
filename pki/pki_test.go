package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/cfssl/log"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

func TestMain(m *testing.M) {
	// cfssl logs every CSR at info level; keep test output readable.
	log.Level = log.LevelError
	os.Exit(m.Run())
}

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}

	// Signature algorithms no certificate of ours may use (SHA-1 is broken
	// for signatures: SHAttered, and Go refuses it since 1.18).
	sha1Algorithms = []x509.SignatureAlgorithm{x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1}

	serverHosts = []string{"docker.example.com", "localhost", "127.0.0.1", "::1"}
)

// now is the time every certificate in these tests is issued at. It is the
// real time (openssl verifies at the real time) truncated to the second,
// which is the precision of a certificate's validity dates.
func testNow() time.Time { return time.Now().UTC().Truncate(time.Second) }

func extension(t *testing.T, c *x509.Certificate, oid asn1.ObjectIdentifier) pkix.Extension {
	t.Helper()
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e
		}
	}
	require.Failf(t, "missing extension", "certificate %q has no extension %s", c.Subject.CommonName, oid)
	return pkix.Extension{}
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}

// TestKeyTypes issues a CA, a server and a client certificate for every key
// type, once (an RSA-4096 key takes a while), and checks everything about
// them against that one set.
func TestKeyTypes(t *testing.T) {
	keys := map[pki.KeyType]struct {
		algo x509.PublicKeyAlgorithm
		desc string // as Describe prints it
		rsa  bool
	}{
		pki.ECDSAP256: {x509.ECDSA, "ECDSA P-256", false},
		pki.ECDSAP384: {x509.ECDSA, "ECDSA P-384", false},
		pki.RSA2048:   {x509.RSA, "RSA 2048", true},
		pki.RSA3072:   {x509.RSA, "RSA 3072", true},
		pki.RSA4096:   {x509.RSA, "RSA 4096", true},
		pki.Ed25519:   {x509.Ed25519, "Ed25519", false},
	}
	require.Len(t, keys, len(pki.KeyTypes), "every key type has an expectation")
	lints := lintRegistry(t)

	for _, kt := range pki.KeyTypes {
		want, ok := keys[kt]
		require.True(t, ok, "no expectation for key type %s", kt)
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			now := testNow()

			ca, err := pki.NewCA(pki.CARequest{KeyType: kt, Now: now})
			require.NoError(t, err)
			server, err := ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: serverHosts, KeyType: kt, Now: now})
			require.NoError(t, err)
			client, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: kt, Now: now})
			require.NoError(t, err)

			t.Run("CA", func(t *testing.T) {
				c := ca.Cert
				assert.Equal(t, "dtls CA", c.Subject.CommonName)
				assert.Equal(t, []string{"dtls"}, c.Subject.Organization)
				assert.Equal(t, want.algo, c.PublicKeyAlgorithm)
				assert.Contains(t, pki.Describe(c), ", "+want.desc+", ")
				assert.True(t, c.IsCA, "IsCA")
				assert.True(t, c.BasicConstraintsValid, "BasicConstraintsValid")
				assert.Equal(t, 0, c.MaxPathLen)
				assert.True(t, c.MaxPathLenZero, "MaxPathLenZero")
				assert.True(t, extension(t, c, oidBasicConstraints).Critical, "basicConstraints critical")
				assert.True(t, extension(t, c, oidKeyUsage).Critical, "keyUsage critical")
				assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, c.KeyUsage)
				assert.Empty(t, c.ExtKeyUsage)
				assert.NotEmpty(t, c.SubjectKeyId)
				assert.Equal(t, now.Add(-5*time.Minute), c.NotBefore.UTC())
				assert.Equal(t, now.Add(pki.DefaultCAValidity), c.NotAfter.UTC())
				assert.NotContains(t, sha1Algorithms, c.SignatureAlgorithm)
				assert.NotEqual(t, x509.UnknownSignatureAlgorithm, c.SignatureAlgorithm)
				assert.NoError(t, c.CheckSignatureFrom(c), "self-signed")
				assert.Equal(t, ca.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
			})

			t.Run("server", func(t *testing.T) {
				c := server.Cert
				assert.Equal(t, "docker.example.com", c.Subject.CommonName, "CN defaults to the first host")
				assert.Equal(t, want.algo, c.PublicKeyAlgorithm)
				assert.False(t, c.IsCA, "IsCA")
				assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, c.ExtKeyUsage)
				assert.Empty(t, c.UnknownExtKeyUsage)
				assert.Equal(t, []string{"docker.example.com", "localhost"}, c.DNSNames)
				assert.Equal(t, []string{"127.0.0.1", "::1"}, ipStrings(c.IPAddresses))
				assert.Empty(t, c.EmailAddresses)
				assert.Empty(t, c.URIs)
				assert.Equal(t, ca.Cert.SubjectKeyId, c.AuthorityKeyId)
				assert.GreaterOrEqual(t, c.SerialNumber.BitLen(), 64)
				assert.Equal(t, 1, c.SerialNumber.Sign(), "serial is positive")
				assert.NotEqual(t, pki.Serial(c), pki.Serial(client.Cert))
				assert.NotEqual(t, pki.Serial(c), pki.Serial(ca.Cert))
				if want.rsa {
					assert.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, c.KeyUsage)
				} else {
					// RFC 5480 3: keyEncipherment is not for ECDSA keys.
					assert.Equal(t, x509.KeyUsageDigitalSignature, c.KeyUsage)
				}
				assert.Equal(t, now.Add(-5*time.Minute), c.NotBefore.UTC())
				assert.Equal(t, now.Add(pki.DefaultServerValidity), c.NotAfter.UTC())
				assert.NotContains(t, sha1Algorithms, c.SignatureAlgorithm)
				assert.NoError(t, c.CheckSignatureFrom(ca.Cert))
			})

			t.Run("server validity capped at the CA's", func(t *testing.T) {
				long, err := ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost"}, KeyType: kt, Now: now, Validity: 2 * pki.DefaultCAValidity})
				require.NoError(t, err)
				assert.Equal(t, ca.Cert.NotAfter, long.Cert.NotAfter)
				assert.NotEqual(t, pki.Serial(server.Cert), pki.Serial(long.Cert))
				assert.NoError(t, pki.Verify(long.Cert, []*x509.Certificate{ca.Cert}, pki.KindServer, now))
			})

			t.Run("client", func(t *testing.T) {
				c := client.Cert
				assert.Equal(t, "alice", c.Subject.CommonName)
				assert.Equal(t, want.algo, c.PublicKeyAlgorithm)
				assert.False(t, c.IsCA, "IsCA")
				assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage)
				assert.Empty(t, c.UnknownExtKeyUsage)
				assert.Empty(t, c.DNSNames)
				assert.Empty(t, c.IPAddresses)
				assert.Empty(t, c.EmailAddresses)
				assert.Empty(t, c.URIs)
				assert.Equal(t, ca.Cert.SubjectKeyId, c.AuthorityKeyId)
				assert.GreaterOrEqual(t, c.SerialNumber.BitLen(), 64)
				// Whatever the key: RFC 5280 4.2.1.12 allows only
				// digitalSignature and keyAgreement beside clientAuth
				// (zlint's e_key_usage_and_extended_key_usage_inconsistent).
				assert.Equal(t, x509.KeyUsageDigitalSignature, c.KeyUsage)
				assert.Equal(t, now.Add(-5*time.Minute), c.NotBefore.UTC())
				assert.Equal(t, now.Add(pki.DefaultClientValidity), c.NotAfter.UTC())
				assert.NotContains(t, sha1Algorithms, c.SignatureAlgorithm)
			})

			// zlint on each certificate: see lintRegistry for which lints
			// run and lintProblems for which results fail.
			t.Run("zlint", func(t *testing.T) {
				for name, c := range map[string]*x509.Certificate{"ca": ca.Cert, "server": server.Cert, "client": client.Cert} {
					assert.Empty(t, lintProblems(t, lints, c.Raw), "zlint on the %s certificate", name)
					assert.Empty(t, keyUsageProblems(c), "key usage of the %s certificate", name)
					assert.Equal(t, kt, pki.KeyTypeOf(c), "KeyTypeOf the %s certificate", name)
				}
			})

			t.Run("keys", func(t *testing.T) {
				for name, pair := range map[string]struct {
					cert *x509.Certificate
					key  []byte
				}{"ca": {ca.Cert, ca.KeyPEM}, "server": {server.Cert, server.KeyPEM}, "client": {client.Cert, client.KeyPEM}} {
					b, _ := pem.Decode(pair.key)
					require.NotNil(t, b, name)
					assert.Equal(t, "PRIVATE KEY", b.Type, "%s key is PKCS #8", name)
					k, err := pki.ParsePrivateKey(pair.key)
					require.NoError(t, err, name)
					assert.True(t, pki.KeyMatches(pair.cert, k), "%s key matches its certificate", name)
				}
				k, err := pki.ParsePrivateKey(client.KeyPEM)
				require.NoError(t, err)
				assert.False(t, pki.KeyMatches(server.Cert, k), "client key must not match the server certificate")
			})

			otherCA, err := pki.NewCA(pki.CARequest{KeyType: kt, Now: now})
			require.NoError(t, err)
			stranger, err := otherCA.Issue(pki.Request{Kind: pki.KindServer, Hosts: serverHosts, KeyType: kt, Now: now})
			require.NoError(t, err)
			// Valid from 48 to 46 hours ago.
			expired, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "expired", KeyType: kt,
				NotBefore: now.Add(-48 * time.Hour), Now: now.Add(-47 * time.Hour), Validity: time.Hour})
			require.NoError(t, err)
			require.Equal(t, now.Add(-48*time.Hour), expired.Cert.NotBefore.UTC())
			require.Equal(t, now.Add(-46*time.Hour), expired.Cert.NotAfter.UTC())

			t.Run("Verify", func(t *testing.T) {
				roots := []*x509.Certificate{ca.Cert}
				tests := []struct {
					name    string
					cert    *x509.Certificate
					roots   []*x509.Certificate
					kind    pki.Kind
					at      time.Time
					wantErr func(t *testing.T, err error)
				}{
					{name: "server as server", cert: server.Cert, roots: roots, kind: pki.KindServer, at: now},
					{name: "client as client", cert: client.Cert, roots: roots, kind: pki.KindClient, at: now},
					{name: "server among two roots", cert: server.Cert, roots: []*x509.Certificate{otherCA.Cert, ca.Cert}, kind: pki.KindServer, at: now},
					{
						name: "client as server", cert: client.Cert, roots: roots, kind: pki.KindServer, at: now,
						wantErr: func(t *testing.T, err error) {
							assert.EqualError(t, err, `certificate "alice" (serial `+pki.Serial(client.Cert)+`) does not verify as a server certificate: x509: certificate specifies an incompatible key usage`)
						},
					},
					{
						name: "server as client", cert: server.Cert, roots: roots, kind: pki.KindClient, at: now,
						wantErr: func(t *testing.T, err error) {
							assert.EqualError(t, err, `certificate "docker.example.com" (serial `+pki.Serial(server.Cert)+`) does not verify as a client certificate: x509: certificate specifies an incompatible key usage`)
						},
					},
					{
						name: "another CA's server", cert: stranger.Cert, roots: roots, kind: pki.KindServer, at: now,
						wantErr: func(t *testing.T, err error) {
							var uae x509.UnknownAuthorityError
							assert.ErrorAs(t, err, &uae)
							assert.ErrorContains(t, err, `certificate "docker.example.com" (serial `+pki.Serial(stranger.Cert)+`) does not verify as a server certificate: x509: certificate signed by unknown authority`)
						},
					},
					{
						name: "expired client", cert: expired.Cert, roots: roots, kind: pki.KindClient, at: now,
						wantErr: func(t *testing.T, err error) {
							var cie x509.CertificateInvalidError
							if assert.ErrorAs(t, err, &cie) {
								assert.Equal(t, x509.Expired, cie.Reason)
								assert.True(t, cie.Cert.Equal(expired.Cert), "the leaf is the expired one, not the CA")
							}
							assert.ErrorContains(t, err, `certificate "expired" (serial `+pki.Serial(expired.Cert)+`) does not verify as a client certificate: x509: certificate has expired`)
						},
					},
					{
						name: "server before it is valid", cert: server.Cert, roots: roots, kind: pki.KindServer, at: now.Add(-time.Hour),
						wantErr: func(t *testing.T, err error) {
							var cie x509.CertificateInvalidError
							if assert.ErrorAs(t, err, &cie) {
								assert.Equal(t, x509.Expired, cie.Reason)
								assert.True(t, cie.Cert.Equal(server.Cert), "the leaf is not yet valid")
							}
						},
					},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						err := pki.Verify(tt.cert, tt.roots, tt.kind, tt.at)
						if tt.wantErr == nil {
							assert.NoError(t, err)
							return
						}
						require.Error(t, err)
						tt.wantErr(t, err)
					})
				}
			})

			t.Run("openssl", func(t *testing.T) {
				openssl := requireOpenSSL(t)
				dir := t.TempDir()
				write := func(name string, data []byte) string {
					p := filepath.Join(dir, name)
					require.NoError(t, os.WriteFile(p, data, 0o600))
					return p
				}
				caPEM := write("ca.pem", ca.CertPEM)
				serverPEM := write("server.pem", server.CertPEM)
				clientPEM := write("client.pem", client.CertPEM)
				strangerPEM := write("stranger.pem", stranger.CertPEM)
				expiredPEM := write("expired.pem", expired.CertPEM)

				tests := []struct {
					purpose, cert string
					// wantErr is in openssl's output; "" means it verifies.
					// The codes are X509_V_ERR_* (openssl verify(1)), stable
					// across versions where the texts are not.
					wantErr string
				}{
					{"sslserver", serverPEM, ""},
					{"sslclient", clientPEM, ""},
					{"sslserver", clientPEM, "error 26 at 0 depth"}, // INVALID_PURPOSE
					{"sslclient", serverPEM, "error 26 at 0 depth"},
					{"sslserver", strangerPEM, "error 20 at 0 depth"}, // UNABLE_TO_GET_ISSUER_CERT_LOCALLY
					{"sslclient", expiredPEM, "error 10 at 0 depth"},  // CERT_HAS_EXPIRED
				}
				for _, tt := range tests {
					t.Run(tt.purpose+" "+filepath.Base(tt.cert), func(t *testing.T) {
						out, err := exec.Command(openssl, "verify", "-purpose", tt.purpose, "-CAfile", caPEM, tt.cert).CombinedOutput()
						if tt.wantErr == "" {
							assert.NoError(t, err, "%s", out)
							assert.Equal(t, tt.cert+": OK\n", string(out))
							return
						}
						assert.Error(t, err, "openssl must refuse it: %s", out)
						assert.Contains(t, string(out), tt.wantErr)
					})
				}

				for name, key := range map[string][]byte{"ca": ca.KeyPEM, "server": server.KeyPEM, "client": client.KeyPEM} {
					p := write(name+"-key.pem", key)
					out, err := exec.Command(openssl, "pkey", "-in", p, "-noout").CombinedOutput()
					assert.NoError(t, err, "openssl pkey %s: %s", name, out)
				}
			})

			t.Run("LoadCA", func(t *testing.T) {
				loaded, err := pki.LoadCA(ca.CertPEM, ca.KeyPEM)
				require.NoError(t, err)
				assert.True(t, loaded.Cert.Equal(ca.Cert))
				assert.Equal(t, ca.CertPEM, loaded.CertPEM)
				assert.Equal(t, ca.KeyPEM, loaded.KeyPEM)
				// The loaded CA signs with the same key: what it issues
				// verifies against the original certificate.
				c, err := loaded.Issue(pki.Request{Kind: pki.KindClient, CommonName: "bob", Now: now})
				require.NoError(t, err)
				assert.NoError(t, pki.Verify(c.Cert, []*x509.Certificate{ca.Cert}, pki.KindClient, now))

				_, err = pki.LoadCA(ca.CertPEM, otherCA.KeyPEM)
				assert.EqualError(t, err, "CA private key does not match the CA certificate")
				_, err = pki.LoadCA(server.CertPEM, server.KeyPEM)
				assert.EqualError(t, err, "certificate is not a CA certificate")
				_, err = pki.LoadCA(ca.KeyPEM, ca.KeyPEM)
				assert.EqualError(t, err, "no PEM certificate found")
			})
		})
	}
}

// requireOpenSSL returns the path of openssl. It fails the test in CI when
// openssl is missing and skips it elsewhere.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
	return p
}

func TestNewCAOptions(t *testing.T) {
	now := testNow()
	ca, err := pki.NewCA(pki.CARequest{CommonName: "Example Docker CA", Now: now, Validity: 48 * time.Hour})
	require.NoError(t, err)
	assert.Equal(t, "Example Docker CA", ca.Cert.Subject.CommonName)
	assert.Equal(t, x509.ECDSA, ca.Cert.PublicKeyAlgorithm, "ECDSA P-256 is the default key type")
	assert.Equal(t, now.Add(48*time.Hour), ca.Cert.NotAfter.UTC())

	// A default-length client certificate outlives this CA: it is capped.
	c, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", Now: now})
	require.NoError(t, err)
	assert.Equal(t, ca.Cert.NotAfter, c.Cert.NotAfter)
	assert.Equal(t, "ECDSA P-256", strings.Split(pki.Describe(c.Cert), ", ")[1])
}

func TestIssueRefuses(t *testing.T) {
	now := testNow()
	ca, err := pki.NewCA(pki.CARequest{Now: now})
	require.NoError(t, err)
	tests := []struct {
		name    string
		req     pki.Request
		wantErr string
	}{
		{"server without hosts", pki.Request{Kind: pki.KindServer, Now: now}, "server certificate needs at least one host"},
		{"server with a bad host", pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost", "http://x"}, Now: now}, `invalid host "http://x": neither an IP address nor a DNS name`},
		{"client with a bad name", pki.Request{Kind: pki.KindClient, CommonName: "../root", Now: now}, `invalid client name "../root": must not start with '.'`},
		{"client without a name", pki.Request{Kind: pki.KindClient, Now: now}, `invalid client name "": empty`},
		{"CA kind", pki.Request{Kind: pki.KindCA, CommonName: "x", Now: now}, `cannot issue a certificate of kind "ca"`},
		{"no kind", pki.Request{CommonName: "x", Now: now}, `cannot issue a certificate of kind ""`},
		{"unknown key type", pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: "dsa-1024", Now: now}, `unknown key type "dsa-1024" (want one of ` + keyTypeNames + `)`},
		{"key type in the wrong case", pki.Request{Kind: pki.KindServer, Hosts: []string{"localhost"}, KeyType: "RSA-2048", Now: now}, `unknown key type "RSA-2048" (want one of ` + keyTypeNames + `)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.Issue(tt.req)
			assert.EqualError(t, err, tt.wantErr)
			assert.Nil(t, got)
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		return b
	}

	t.Run("accepted", func(t *testing.T) {
		tests := []struct {
			name string
			pem  []byte
			want crypto.Signer
		}{
			{"PKCS #1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), rsaKey},
			{"SEC 1 P-256", sec1(p256), p256},
			{"SEC 1 P-384", sec1(p384), p384},
			{"PKCS #8 RSA", pkcs8(rsaKey), rsaKey},
			{"PKCS #8 P-256", pkcs8(p256), p256},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := pki.ParsePrivateKey(tt.pem)
				require.NoError(t, err)
				assert.True(t, got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want.Public()))
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name    string
			pem     []byte
			wantErr string
		}{
			// Both made by openssl (passphrase "dtls-test"): genpkey
			// -aes-256-cbc, and ec -aes256 (legacy PEM encryption).
			{"encrypted PKCS #8", read("encrypted-pkcs8.pem"), "private key is encrypted"},
			{"legacy encrypted SEC 1", read("encrypted-sec1.pem"), "private key is encrypted"},
			{"empty", nil, "no PEM private key found"},
			{"not PEM", []byte("-----BEGIN nothing"), "no PEM private key found"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := pki.ParsePrivateKey(tt.pem)
				assert.EqualError(t, err, tt.wantErr)
				assert.Nil(t, got)
			})
		}
		t.Run("garbage in a PRIVATE KEY block", func(t *testing.T) {
			_, err := pki.ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}))
			assert.ErrorContains(t, err, "parse private key: ")
		})
	})
}

func TestMissing(t *testing.T) {
	now := testNow()
	ca, err := pki.NewCA(pki.CARequest{Now: now})
	require.NoError(t, err)
	server, err := ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: serverHosts, Now: now})
	require.NoError(t, err)

	tests := []struct {
		name string
		want []string
		miss []string
	}{
		{"covered host", []string{"docker.example.com"}, nil},
		{"all hosts", serverHosts, nil},
		{"uncovered host", []string{"other.example.com"}, []string{"other.example.com"}},
		{"subdomain is not covered", []string{"a.docker.example.com"}, []string{"a.docker.example.com"}},
		{"DNS is case-insensitive", []string{"Docker.EXAMPLE.com", "LOCALHOST"}, nil},
		{"IPv4", []string{"127.0.0.1"}, nil},
		{"IPv6 compared by value", []string{"0:0:0:0:0:0:0:1"}, nil},
		{"uncovered IPs", []string{"10.0.0.1", "::2"}, []string{"10.0.0.1", "::2"}},
		{"mixed, order kept", []string{"nope.example.com", "localhost", "192.168.1.1"}, []string{"nope.example.com", "192.168.1.1"}},
		{"nothing wanted", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.miss, pki.Missing(server.Cert, tt.want))
		})
	}
}

func TestValidateName(t *testing.T) {
	const allowed = " not allowed (use letters, digits, '.', '_', '@', '-')"
	long := strings.Repeat("a", 65)
	tests := []struct {
		name    string
		wantErr string
	}{
		{"alice", ""},
		{"alice.smith", ""},
		{"bob@example.com", ""},
		{"ci-runner_1", ""},
		{"A1", ""},
		{strings.Repeat("a", 64), ""},
		{"", `invalid client name "": empty`},
		{"a/b", `invalid client name "a/b": character '/'` + allowed},
		{"..", `invalid client name "..": must not start with '.'`},
		{"../x", `invalid client name "../x": must not start with '.'`},
		{"a..b", `invalid client name "a..b": must not contain ".."`},
		{"a b", `invalid client name "a b": character ' '` + allowed},
		{"a\x00", `invalid client name "a\x00": character '\x00'` + allowed},
		{"a\nb", `invalid client name "a\nb": character '\n'` + allowed},
		{".hidden", `invalid client name ".hidden": must not start with '.'`},
		{"-x", `invalid client name "-x": must not start with '-'`},
		{long, `invalid client name "` + long + `": longer than 64 characters`},
		{"é", `invalid client name "é": character 'é'` + allowed},
		{"a\x7f", `invalid client name "a\x7f": character '\x7f'` + allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.ValidateName(tt.name)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestValidateHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"example.com", true},
		{"localhost", true},
		{"10.0.0.1", true},
		{"::1", true},
		{"*.example.com", true},
		{"example.com.", true},
		{"Docker-1.Example.com", true},
		{"", false},
		{"exa mple.com", false},
		{"-bad.com", false},
		{"bad-.com", false},
		{"a..b", false},
		{"http://x", false},
		{"1.2.3.4:22", false},
		{"*.", false},
		{"*", false},
		{"a.*.example.com", false},
		{"[::1]", false},
		{strings.Repeat("a", 64) + ".com", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			err := pki.ValidateHost(tt.host)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, `invalid host "`+tt.host+`": neither an IP address nor a DNS name`)
		})
	}
}

// keyTypeNames is what KeyTypeNames must return, spelled out so that a
// change to the table shows here.
const keyTypeNames = "ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519"

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		name string
		want pki.KeyType
		help string
	}{
		{"ecdsa-p256", pki.ECDSAP256, "ECDSA P-256 (default; fast, small)"},
		{"ecdsa-p384", pki.ECDSAP384, "ECDSA P-384 (for policies that require it, e.g. CNSA)"},
		{"rsa-2048", pki.RSA2048, "RSA 2048-bit (for peers without ECDSA)"},
		{"rsa-3072", pki.RSA3072, "RSA 3072-bit (RSA beyond 2030, NIST SP 800-57)"},
		{"rsa-4096", pki.RSA4096, "RSA 4096-bit (the Docker docs' recipe; slow to generate)"},
		{"ed25519", pki.Ed25519, "Ed25519 (fast, small; Go and OpenSSL 1.1.1+ peers only)"},
	}
	require.Len(t, pki.KeyTypes, len(tests), "every key type is tested")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kt, err := pki.ParseKeyType(tt.name)
			require.NoError(t, err)
			assert.Equal(t, tt.want, kt)
			assert.Equal(t, tt.want, pki.KeyTypes[i], "KeyTypes is in table order")
			assert.Equal(t, tt.help, kt.Help())
		})
	}
	assert.Equal(t, pki.DefaultKeyType, pki.KeyTypes[0], "the default comes first")
	assert.Equal(t, pki.ECDSAP256, pki.DefaultKeyType)
	assert.Equal(t, keyTypeNames, pki.KeyTypeNames())
	assert.Empty(t, pki.KeyType("dsa").Help())
	for _, bad := range []string{"dsa", "", "ECDSA-P256", "rsa-1024", "ecdsa-p521", " ed25519"} {
		t.Run("refused "+bad, func(t *testing.T) {
			kt, err := pki.ParseKeyType(bad)
			assert.EqualError(t, err, `unknown key type "`+bad+`" (want one of `+keyTypeNames+`)`)
			assert.Empty(t, kt)
		})
	}
}

// TestNewCARefusesUnknownKeyType checks that an unknown key type is an
// error, not the default: only the empty KeyType stands for the default.
func TestNewCARefusesUnknownKeyType(t *testing.T) {
	for _, kt := range []pki.KeyType{"dsa", "ECDSA-P256", "rsa-1024"} {
		t.Run(string(kt), func(t *testing.T) {
			ca, err := pki.NewCA(pki.CARequest{KeyType: kt, Now: testNow()})
			assert.EqualError(t, err, `unknown key type "`+string(kt)+`" (want one of `+keyTypeNames+`)`)
			assert.Nil(t, ca)
		})
	}
}

func TestParseCertificates(t *testing.T) {
	now := testNow()
	a, err := pki.NewCA(pki.CARequest{CommonName: "a", Now: now})
	require.NoError(t, err)
	b, err := pki.NewCA(pki.CARequest{CommonName: "b", Now: now})
	require.NoError(t, err)

	// During a rotation ca.pem holds two CAs; a key block in between is
	// skipped.
	bundle := append(append(append([]byte{}, a.CertPEM...), a.KeyPEM...), b.CertPEM...)
	certs, err := pki.ParseCertificates(bundle)
	require.NoError(t, err)
	require.Len(t, certs, 2)
	assert.Equal(t, "a", certs[0].Subject.CommonName)
	assert.Equal(t, "b", certs[1].Subject.CommonName)

	first, err := pki.ParseCertificate(bundle)
	require.NoError(t, err)
	assert.Equal(t, "a", first.Subject.CommonName)

	_, err = pki.ParseCertificates(a.KeyPEM)
	assert.EqualError(t, err, "no PEM certificate found")
	_, err = pki.ParseCertificate(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
	assert.ErrorContains(t, err, "parse certificate: ")
}

func BenchmarkIssueClientECDSA(b *testing.B) {
	now := time.Now()
	ca, err := pki.NewCA(pki.CARequest{KeyType: pki.ECDSAP256, Now: now})
	require.NoError(b, err)
	for b.Loop() {
		if _, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "bench", KeyType: pki.ECDSAP256, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewCAECDSA(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		if _, err := pki.NewCA(pki.CARequest{KeyType: pki.ECDSAP256, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
}
