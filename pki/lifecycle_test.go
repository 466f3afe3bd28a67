package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"encoding/pem"
	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/signer"
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
	blk, _ := pem.Decode(crlPEM)
	require.NotNil(t, blk)
	assert.Equal(t, "X509 CRL", blk.Type)
	crl, err := x509.ParseRevocationList(blk.Bytes)
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
	// Keys dtls cannot generate give the default.
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	assert.Equal(t, DefaultKeyType, KeyTypeOf(&x509.Certificate{PublicKey: p521.Public()}))
	assert.Equal(t, DefaultKeyType, KeyTypeOf(&x509.Certificate{PublicKey: nil}))
}

// TestPolicy checks the signing policy against the key type table: a
// profile per kind and key type with keyUsages' usages, and no way to
// reach cfssl's default profile.
func TestPolicy(t *testing.T) {
	p := policy()
	require.True(t, p.Valid())
	// CA, server and client; server and client again for SignCSR.
	assert.Len(t, p.Profiles, 5*len(keyTypes))
	for _, ki := range keyTypes {
		for _, kind := range []Kind{KindCA, KindServer, KindClient} {
			prof := p.Profiles[profileName(kind, ki.kt)]
			if assert.NotNil(t, prof, "profile %s", profileName(kind, ki.kt)) {
				assert.Equal(t, ki.keyUsages(kind), prof.Usage)
				assert.Equal(t, kind == KindCA, prof.CAConstraint.IsCA)
				_, _, unknown := prof.Usages()
				assert.Empty(t, unknown, "cfssl knows every usage of %s", profileName(kind, ki.kt))
			}
		}
		for _, kind := range []Kind{KindServer, KindClient} {
			prof := p.Profiles[csrProfileName(kind, ki.kt)]
			if assert.NotNil(t, prof, "profile %s", csrProfileName(kind, ki.kt)) {
				assert.Equal(t, ki.keyUsages(kind), prof.Usage)
				assert.False(t, prof.CAConstraint.IsCA)
				assert.Equal(t, &config.CSRWhitelist{PublicKey: true, PublicKeyAlgorithm: true, SignatureAlgorithm: true}, prof.CSRWhitelist)
			}
		}
		// RFC 5480 3, RFC 8410 5: keyEncipherment only for RSA keys.
		assert.Equal(t, ki.algo == "rsa", ki.keyEncipherment, ki.kt)
	}

	ca, err := NewCA(CARequest{Now: time.Now()})
	require.NoError(t, err)
	_, err = sign(ca.signer, signer.SignRequest{Profile: "server-dsa"})
	assert.EqualError(t, err, `no signing profile "server-dsa"`)
	_, err = sign(ca.signer, signer.SignRequest{})
	assert.EqualError(t, err, `no signing profile ""`)
}
