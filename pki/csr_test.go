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

// TestIssuedAt: the time of issue read back from a certificate's NotBefore
// and NotAfter is never later than the real one, and within the second
// x509 keeps, for SignCSR's validities short and long and for Issue; a
// NotAfter cut at the CA's own end only makes it earlier.
func TestIssuedAt(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(CARequest{Now: now, Validity: 30 * 24 * time.Hour})
	require.NoError(t, err)
	csrPEM, _, err := NewCSR("alice", "")
	require.NoError(t, err)
	at := now.Add(time.Hour + 123*time.Millisecond)
	for _, v := range []time.Duration{20 * time.Second, 10 * time.Minute, 50 * time.Minute, 24 * time.Hour, 90 * 24 * time.Hour} {
		cert, _, err := ca.SignCSR(CSRRequest{Kind: KindClient, CommonName: "alice", CSR: csrPEM, Now: at, Validity: v})
		require.NoError(t, err)
		got := IssuedAt(cert.NotBefore, cert.NotAfter)
		require.False(t, got.After(at), "validity %s: %s after %s", v, got, at)
		if !cert.NotAfter.Before(ca.Cert.NotAfter) {
			continue // cut at the CA's end: earlier, the safe side
		}
		require.WithinDuration(t, at, got, time.Second, "validity %s", v)
	}
	iss, err := ca.Issue(Request{Kind: KindServer, CommonName: "h", Hosts: []string{"h"}, Now: at, Validity: 30 * time.Second})
	require.NoError(t, err)
	require.False(t, IssuedAt(iss.Cert.NotBefore, iss.Cert.NotAfter).After(at), "Issue backdates five minutes whatever the validity")
}
