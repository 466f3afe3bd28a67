package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/youmark/pkcs8"
)

// ErrWrongPassphrase is returned when an encrypted key does not decrypt.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// keyOpts encrypts with PBES2 (RFC 8018): scrypt (RFC 7914) as the key
// derivation function with N=2^14, r=8, p=1 (what 'openssl pkcs8 -scrypt'
// writes; N=2^15 needs more than the 32 MB OpenSSL allows scrypt by
// default, so openssl could not read the key), and AES-256-CBC, which every
// OpenSSL since 1.1.0 reads ('openssl pkey -in ca-key.pem').
// Go's x509.EncryptPEMBlock is deprecated because its legacy PEM encryption
// derives the key with a single MD5 round.
var keyOpts = &pkcs8.Opts{
	Cipher: pkcs8.AES256CBC,
	KDFOpts: pkcs8.ScryptOpts{
		SaltSize:                 16,
		CostParameter:            1 << 14,
		BlockSize:                8,
		ParallelizationParameter: 1,
	},
}

// IsEncryptedKey reports whether a PEM key is an encrypted PKCS #8 key.
func IsEncryptedKey(keyPEM []byte) bool {
	b, _ := pem.Decode(keyPEM)
	return b != nil && b.Type == "ENCRYPTED PRIVATE KEY"
}

// EncryptKey encrypts a PEM private key with passphrase into an "ENCRYPTED
// PRIVATE KEY" PEM block (PKCS #8, RFC 5958 section 3).
func EncryptKey(keyPEM, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("empty passphrase")
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, keyOpts)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// DecryptKey decrypts an "ENCRYPTED PRIVATE KEY" PEM block and returns the
// key as unencrypted PKCS #8 PEM. A passphrase that does not decrypt it is
// ErrWrongPassphrase.
func DecryptKey(keyPEM, passphrase []byte) ([]byte, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("not an encrypted PKCS #8 key")
	}
	key, err := pkcs8.ParsePKCS8PrivateKey(b.Bytes, passphrase)
	if err != nil {
		// A wrong passphrase shows as bad padding or as garbage that
		// does not parse; the library does not tell them apart from a
		// damaged file, which the checks above have ruled out.
		return nil, ErrWrongPassphrase
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
