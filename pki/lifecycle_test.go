package pki

import (
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncryptKey(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, Ed25519, RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			ca, err := NewCA(CARequest{KeyType: kt, Now: time.Now()})
			require.NoError(t, err)
			enc, err := EncryptKey(ca.KeyPEM, []byte("s3cret"))
			require.NoError(t, err)
			assert.True(t, IsEncryptedKey(enc))
			assert.False(t, IsEncryptedKey(ca.KeyPEM))
			_, err = ParsePrivateKey(enc)
			assert.EqualError(t, err, "private key is encrypted")

			_, err = DecryptKey(enc, []byte("wrong"))
			assert.ErrorIs(t, err, ErrWrongPassphrase)
			plain, err := DecryptKey(enc, []byte("s3cret"))
			require.NoError(t, err)
			_, err = LoadCA(ca.CertPEM, plain)
			require.NoError(t, err)
		})
	}
	_, err := EncryptKey([]byte("x"), nil)
	assert.EqualError(t, err, "empty passphrase")
}

func TestCRL(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(CARequest{Now: now})
	require.NoError(t, err)
	c, err := ca.Issue(Request{Kind: KindClient, CommonName: "alice", Now: now})
	require.NoError(t, err)
	crlPEM, err := ca.CRL([]Revoked{{Serial: c.Cert.SerialNumber, At: now, Reason: 1}}, 7, now, 0)
	require.NoError(t, err)
	crl, err := ParseCRL(crlPEM)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(ca.Cert))
	assert.Equal(t, big.NewInt(7), crl.Number)
	require.Len(t, crl.RevokedCertificateEntries, 1)
	assert.Equal(t, c.Cert.SerialNumber, crl.RevokedCertificateEntries[0].SerialNumber)
	assert.Equal(t, 1, crl.RevokedCertificateEntries[0].ReasonCode)
	assert.True(t, crl.NextUpdate.After(now.Add(89*24*time.Hour)))
}

func TestKeyTypeOf(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048, Ed25519} {
		ca, err := NewCA(CARequest{KeyType: kt, Now: time.Now()})
		require.NoError(t, err)
		assert.Equal(t, kt, KeyTypeOf(ca.Cert))
	}
}
