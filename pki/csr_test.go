package pki

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignCSR(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(CARequest{Now: now})
	require.NoError(t, err)
	for _, kt := range keyTypeList() {
		t.Run(string(kt), func(t *testing.T) {
			csrPEM, keyPEM, err := NewCSR("ignored", kt)
			require.NoError(t, err)
			cert, _, err := ca.SignCSR(CSRRequest{Kind: KindClient, CommonName: "alice", OrganizationalUnit: []string{"dtls-role:developer"}, CSR: csrPEM, Now: now, Validity: time.Hour})
			require.NoError(t, err)
			require.Equal(t, "alice", cert.Subject.CommonName, "the CA sets the subject, not the CSR")
			require.Equal(t, []string{"dtls-role:developer"}, cert.Subject.OrganizationalUnit)
			require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage)
			require.WithinDuration(t, now.Add(time.Hour), cert.NotAfter, time.Second)
			key, err := ParsePrivateKey(keyPEM)
			require.NoError(t, err)
			require.True(t, KeyMatches(cert, key))
			require.NoError(t, Verify(cert, []*x509.Certificate{ca.Cert}, KindClient, now))
		})
	}
	csrPEM, _, err := NewCSR("h", "")
	require.NoError(t, err)
	cert, _, err := ca.SignCSR(CSRRequest{Kind: KindServer, Hosts: []string{"h.example", "10.0.0.1"}, CSR: csrPEM, Now: now})
	require.NoError(t, err)
	require.Equal(t, []string{"h.example"}, cert.DNSNames)
	require.Len(t, cert.IPAddresses, 1)

	_, _, err = ca.SignCSR(CSRRequest{Kind: KindClient, CommonName: "a/b", CSR: csrPEM, Now: now})
	require.ErrorContains(t, err, "invalid client name")
	_, _, err = ca.SignCSR(CSRRequest{Kind: KindClient, CommonName: "a", CSR: []byte("junk"), Now: now})
	require.ErrorContains(t, err, "no PEM certificate request")
	bad := append([]byte{}, csrPEM...)
	bad[len(bad)/2] ^= 1
	_, _, err = ca.SignCSR(CSRRequest{Kind: KindClient, CommonName: "a", CSR: bad, Now: now})
	require.Error(t, err)
}
