package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// TestRotateCalls: an operator runs the CA's rotation through Rotate; at
// its switch step a holder whose roots are only the old CA (it did not
// renew during the trust step, and the switch was forced) takes a
// certificate of the next CA, which
// the answer's CA certificates introduce next to the old one, and a host
// enrols with a token of the old CA.
func TestRotateCalls(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ctx := context.Background()
	opCert, opKey := ca.Operator(t)
	opPair, err := tls.X509KeyPair(opCert, opKey)
	require.NoError(t, err)
	op := &fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &opPair}
	tok := parseToken(t, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1"}))
	aliceCert, aliceKey := ca.Client(t, "alice", "developer")

	_, err = op.Rotate(ctx, fleet.RotateRequest{Step: fleet.RotateFinish})
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, 409, fe.Status)
	assert.False(t, fleet.Retryable(err))

	st, err := op.Rotate(ctx, fleet.RotateRequest{Step: fleet.RotateTrust})
	require.NoError(t, err)
	require.NotNil(t, st.Next)
	// alice did not renew: the switch is refused (409) unless forced.
	_, err = op.Rotate(ctx, fleet.RotateRequest{Step: fleet.RotateSwitch})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, 409, fe.Status)
	assert.Contains(t, fe.Message, `"alice"`)
	st, err = op.Rotate(ctx, fleet.RotateRequest{Step: fleet.RotateSwitch, Force: true})
	require.NoError(t, err)
	require.Len(t, st.Cut, 1)
	assert.Equal(t, "alice", st.Cut[0].Name)
	assert.Equal(t, st.Next.Serial, st.Signer)

	pair, err := tls.X509KeyPair(aliceCert, aliceKey)
	require.NoError(t, err)
	csr, _, err := pki.NewCSR("alice", "")
	require.NoError(t, err)
	resp, err := (&fleet.Client{URL: ca.URL, Roots: roots(ca), Certificate: &pair}).Renew(ctx, csr)
	require.NoError(t, err)
	cert, err := pki.ParseCertificate([]byte(resp.Certificate))
	require.NoError(t, err)
	assert.Equal(t, st.Next.Serial, hexSerialOfIssuer(t, cert, resp.CA))

	csr, _, err = pki.NewCSR("docker1", "")
	require.NoError(t, err)
	resp, err = (&fleet.Client{URL: ca.URL}).Enroll(ctx, tok, csr)
	require.NoError(t, err)
	cert, err = pki.ParseCertificate([]byte(resp.Certificate))
	require.NoError(t, err)
	assert.Equal(t, st.Next.Serial, hexSerialOfIssuer(t, cert, resp.CA))
}

// hexSerialOfIssuer is the serial of the CA of caPEM that signed cert.
func hexSerialOfIssuer(t *testing.T, cert *x509.Certificate, caPEM string) string {
	t.Helper()
	cas, err := pki.ParseCertificates([]byte(caPEM))
	require.NoError(t, err)
	for _, ca := range cas {
		if cert.CheckSignatureFrom(ca) == nil {
			return pki.Serial(ca)
		}
	}
	return ""
}
