package pki_test

import (
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

// rsaCSR is a PEM certificate request whose RSA public key has a modulus
// of nBytes*8 bits and exponent e, with a garbage signature: nobody holds
// its key, and it only has to parse (an attacker helper's request to the
// online CA, whose signature check took seconds of CPU).
func rsaCSR(t *testing.T, nBytes, e int) []byte {
	t.Helper()
	type publicKeyInfo struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	type tbs struct {
		Version       int
		Subject       asn1.RawValue
		PublicKey     publicKeyInfo
		RawAttributes []asn1.RawValue `asn1:"tag:0"`
	}
	type csr struct {
		TBS  tbs
		Algo pkix.AlgorithmIdentifier
		Sig  asn1.BitString
	}
	nb := make([]byte, nBytes)
	_, err := rand.Read(nb)
	require.NoError(t, err)
	nb[0] |= 0x80
	nb[len(nb)-1] |= 1
	pub, err := asn1.Marshal(struct {
		N *big.Int
		E int
	}{new(big.Int).SetBytes(nb), e})
	require.NoError(t, err)
	subj, err := asn1.Marshal(pkix.Name{CommonName: "x"}.ToRDNSequence())
	require.NoError(t, err)
	sig := make([]byte, nBytes)
	der, err := asn1.Marshal(csr{
		TBS: tbs{Subject: asn1.RawValue{FullBytes: subj}, PublicKey: publicKeyInfo{
			Algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, Parameters: asn1.NullRawValue},
			PublicKey: asn1.BitString{Bytes: pub, BitLength: len(pub) * 8}}, RawAttributes: []asn1.RawValue{}},
		Algo: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Parameters: asn1.NullRawValue},
		Sig:  asn1.BitString{Bytes: sig, BitLength: len(sig) * 8},
	})
	require.NoError(t, err)
	return []byte("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END CERTIFICATE REQUEST-----\n")
}

// TestParseCSRKeyBeforeSignature: a request's key must be one dtls
// issues before its signature is checked, which for a huge RSA modulus
// with a large exponent costs seconds: the errors name the key, never the
// signature, whose check was not reached.
func TestParseCSRKeyBeforeSignature(t *testing.T) {
	for name, c := range map[string]struct {
		bytes, e int
		want     string
	}{
		"a 192,000-bit modulus, e 2^31-1": {24000, 1<<31 - 1, "exponent 2147483647: want 65537"},
		"a 192,000-bit modulus, e 65537":  {24000, 65537, "not one of the key types dtls issues"},
		"RSA-1024":                        {128, 65537, "not one of the key types dtls issues"},
		"RSA-2048 with e 3":               {256, 3, "exponent 3: want 65537"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pki.ParseCSR(rsaCSR(t, c.bytes, c.e))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "signature")
		})
	}
	// A key of a type dtls issues, with a garbage signature: now the
	// signature is checked, and refused.
	_, err := pki.ParseCSR(rsaCSR(t, 256, 65537))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signature")
}
