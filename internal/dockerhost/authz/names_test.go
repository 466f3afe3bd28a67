package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func selfSigned(t *testing.T, issuer string, sn int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: issuer, Organization: []string{"dtls"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// TestCertNames: each certificate gets its own serial and issuer, kept
// across calls, also after the map was emptied; a certificate without
// DER bytes is formatted each time.
func TestCertNames(t *testing.T) {
	var names certNames
	a, b := selfSigned(t, "CA a", 0xa1), selfSigned(t, "CA b", 0xb2)
	for range 2 {
		assert.Equal(t, certName{"a1", "CN=CA a,O=dtls"}, names.of(a))
		assert.Equal(t, certName{"b2", "CN=CA b,O=dtls"}, names.of(b))
	}
	for i := range maxCertNames {
		c := *a
		c.Raw = append([]byte{byte(i), byte(i >> 8)}, a.Raw...)
		names.of(&c)
	}
	assert.LessOrEqual(t, len(names.m), maxCertNames)
	assert.Equal(t, certName{"b2", "CN=CA b,O=dtls"}, names.of(b))
	built := &x509.Certificate{SerialNumber: big.NewInt(0xc3), Issuer: pkix.Name{CommonName: "CA c"}}
	assert.Equal(t, certName{"c3", "CN=CA c"}, names.of(built))
	built.SerialNumber = big.NewInt(0xd4)
	assert.Equal(t, "d4", names.of(built).serial)
}
