package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

func parseToken(t *testing.T, s string) fleet.Token {
	t.Helper()
	tok, err := fleet.ParseToken(s)
	require.NoError(t, err)
	return tok
}

func roots(ca *catest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.CACert)
	return p
}

// TestEnrollAndRenew: a client enrols with a token and only a CSR, gets a
// certificate for the CSR's key with the token's name and role, renews it
// with a new key over mutual TLS, and the old one is superseded.
func TestEnrollAndRenew(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ctx := context.Background()
	tok := parseToken(t, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"}))

	csrPEM, keyPEM, err := pki.NewCSR("ignored", "")
	require.NoError(t, err)
	c := &fleet.Client{URL: ca.URL}
	resp, err := c.Enroll(ctx, tok, csrPEM)
	require.NoError(t, err)
	assert.Equal(t, store.KindClient, resp.Kind)
	assert.Equal(t, "alice", resp.Name)
	assert.Equal(t, "developer", resp.Role)
	cert, err := pki.ParseCertificate([]byte(resp.Certificate))
	require.NoError(t, err)
	key, err := pki.ParsePrivateKey(keyPEM)
	require.NoError(t, err)
	require.True(t, pki.KeyMatches(cert, key), "the certificate is for the key made here")
	require.NoError(t, pki.Verify(cert, []*x509.Certificate{ca.CACert}, pki.KindClient, time.Now()))

	// The same token again, with another key: refused, with the CA's
	// message.
	csr2, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	_, err = c.Enroll(ctx, tok, csr2)
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, 403, fe.Status)
	assert.Contains(t, err.Error(), "enrolment token already used")
	assert.False(t, fleet.Retryable(err))

	// Renewal: mutual TLS with the current certificate, a new key.
	pair, err := tls.X509KeyPair([]byte(resp.Certificate), keyPEM)
	require.NoError(t, err)
	rc := &fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &pair}
	newCSR, newKeyPEM, err := pki.NewCSR("ignored", "")
	require.NoError(t, err)
	renewed, err := rc.Renew(ctx, newCSR)
	require.NoError(t, err)
	ncert, err := pki.ParseCertificate([]byte(renewed.Certificate))
	require.NoError(t, err)
	nkey, err := pki.ParsePrivateKey(newKeyPEM)
	require.NoError(t, err)
	assert.True(t, pki.KeyMatches(ncert, nkey))
	assert.Equal(t, "alice", ncert.Subject.CommonName)
	assert.NotEqual(t, pki.Serial(cert), pki.Serial(ncert))
	old, err := ca.Store.Get(pki.Serial(cert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, old.Status)

	// The superseded certificate asks again for the same key (an agent
	// that crashed before installing): the same successor. For another
	// key: refused.
	again, err := rc.Renew(ctx, newCSR)
	require.NoError(t, err)
	assert.Equal(t, renewed.Certificate, again.Certificate)
	other, _, err := pki.NewCSR("ignored", "")
	require.NoError(t, err)
	_, err = rc.Renew(ctx, other)
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, err.Error(), "superseded")
}

// TestEnrollWrongFingerprint: a token whose fingerprint is not the
// server's CA is refused before the token is sent, with an error that
// names the fingerprint expected.
func TestEnrollWrongFingerprint(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	other := catest.Start(t, catest.Options{})
	tok := parseToken(t, other.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"}))
	csrPEM, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: ca.URL}).Enroll(context.Background(), tok, csrPEM)
	var fe *fleet.FingerprintError
	require.ErrorAs(t, err, &fe)
	want := fleet.Fingerprint(other.CACert)
	assert.Contains(t, err.Error(), "is not the CA of the token")
	assert.Contains(t, err.Error(), hex.EncodeToString(want[:]))
	assert.False(t, fleet.Retryable(err))

	// The token was never sent: the right CA still takes it.
	_, err = (&fleet.Client{URL: other.URL}).Enroll(context.Background(), tok, csrPEM)
	require.NoError(t, err)
}

// TestUnreachable: a CA that does not listen is "cannot reach", and
// retryable.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	tok, err := fleet.NewToken(&x509.Certificate{Raw: []byte("x")})
	require.NoError(t, err)
	csrPEM, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: url}).Enroll(context.Background(), tok, csrPEM)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "cannot reach the CA at "+url+": "), err.Error())
	assert.True(t, fleet.Retryable(err))
	var ue *fleet.UnreachableError
	assert.True(t, errors.As(err, &ue))
}

// TestOperatorCalls: an operator lists the inventory, makes a token and
// revokes; a client without the role is refused; the CRL lists the
// revoked serial and is signed by the CA; a revoked certificate cannot
// renew.
func TestOperatorCalls(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ctx := context.Background()
	certPEM, keyPEM := ca.Operator(t)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	op := &fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &pair}

	tr, err := op.NewToken(ctx, fleet.TokenRequest{Kind: store.KindClient, Name: "carol", Role: "developer"})
	require.NoError(t, err)
	csrPEM, keyC, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	resp, err := (&fleet.Client{URL: ca.URL}).Enroll(ctx, parseToken(t, tr.Token), csrPEM)
	require.NoError(t, err)
	carol, err := pki.ParseCertificate([]byte(resp.Certificate))
	require.NoError(t, err)

	recs, err := op.Certs(ctx)
	require.NoError(t, err)
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	assert.Contains(t, names, "carol")

	// carol is no operator.
	cpair, err := tls.X509KeyPair([]byte(resp.Certificate), keyC)
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &cpair}).Certs(ctx)
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, 403, fe.Status)
	assert.Contains(t, fe.Message, fleet.OperatorRole)

	rv, err := op.Revoke(ctx, fleet.RevokeRequest{Key: "carol", Reason: 1})
	require.NoError(t, err)
	require.Len(t, rv.Revoked, 1)
	assert.Equal(t, pki.Serial(carol), rv.Revoked[0].Serial)

	der, err := op.CRL(ctx)
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(ca.CACert))
	var serials []string
	for _, e := range crl.RevokedCertificateEntries {
		serials = append(serials, e.SerialNumber.Text(16))
	}
	assert.Contains(t, serials, pki.Serial(carol))

	caPEM, err := op.CA(ctx)
	require.NoError(t, err)
	assert.Equal(t, string(ca.CAPEM), string(caPEM))

	newCSR, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &cpair}).Renew(ctx, newCSR)
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, err.Error(), "revoked")
	assert.False(t, fleet.Retryable(err))
}

// TestServerNotTrusted: with Roots of another CA, the server's
// certificate does not verify: a clear error, not "cannot reach".
func TestServerNotTrusted(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	other := catest.Start(t, catest.Options{})
	_, err := (&fleet.Client{URL: ca.URL, Roots: roots(other)}).CA(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "presented a TLS certificate that does not verify")
	assert.False(t, fleet.Retryable(err))
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://ca.example.com":       "https://ca.example.com",
		"https://ca.example.com:8443/": "https://ca.example.com:8443",
		"https://[::1]:8443":           "https://[::1]:8443",
	} {
		got, err := fleet.ParseURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"http://ca.example.com", "ca.example.com", "https://", "https://u@ca", "https://ca/x", "https://ca?x=1"} {
		_, err := fleet.ParseURL(in)
		assert.Error(t, err, in)
	}
}
