package authority

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/pki"
)

// ErrNoPassphrase is returned when a CA key is encrypted and no
// Passphraser was given.
var ErrNoPassphrase = engine.ErrNoPassphrase

func (a *Authority) passphrase(confirm bool) ([]byte, error) {
	if a.pass != nil {
		return a.pass, nil
	}
	if a.opts.Passphrase == nil {
		return nil, hint(ErrNoPassphrase, "pass --passphrase-file FILE or --passphrase-env VAR")
	}
	p, err := a.opts.Passphrase.Passphrase(confirm)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	a.pass = p
	return p, nil
}

// HasCA reports whether the state directory holds a CA certificate.
func (a *Authority) HasCA() bool {
	_, err := os.Stat(a.path(CACertFile))
	return err == nil
}

// CACert reads the CA's certificate (the new one during a rotation); it
// needs no key.
func (a *Authority) CACert() (*x509.Certificate, error) {
	return readCertFile(a.path(CACertFile))
}

// CA loads the current CA, decrypting its key with the passphrase when it
// is encrypted. Its KeyPEM stays the on-disk form, so that a copy
// (rotate-ca) is never written in the clear.
func (a *Authority) CA() (*pki.CA, error) {
	if a.ca != nil {
		return a.ca, nil
	}
	if !a.HasCA() {
		if err := a.remoteCA(); err != nil {
			return nil, err
		}
		return nil, hint(fmt.Errorf("no CA in %q", a.Dir), "run 'sudo dtls init' first, on the CA's host ('dtls init --ca-from' keeps no CA key)")
	}
	ca, err := a.loadCA(CACertFile, CAKeyFile)
	if err != nil {
		return nil, err
	}
	a.ca = ca
	return ca, nil
}

// OldCA loads the CA being replaced, or returns nil outside a rotation.
func (a *Authority) OldCA() (*pki.CA, error) {
	if !a.InRotation() {
		return nil, nil
	}
	return a.loadCA(OldCACertFile, OldCAKeyFile)
}

func (a *Authority) loadCA(certFile, keyFile string) (*pki.CA, error) {
	ca, err := engine.LoadCA(a.Dir, certFile, keyFile, func() ([]byte, error) { return a.passphrase(false) })
	switch {
	case errors.Is(err, engine.ErrNoCAKey):
		return nil, hint(err, "sign on the CA's host: this one has no CA key")
	case errors.Is(err, pki.ErrWrongPassphrase):
		a.pass = nil
	}
	return ca, err
}

// Encrypted reports whether a CA key in the state directory is encrypted:
// once one is, every CA key written there is (the current one, a new one
// from init --force or rotate-ca, the one a rotation keeps).
func (a *Authority) Encrypted() bool {
	for _, f := range []string{CAKeyFile, OldCAKeyFile} {
		if b, err := os.ReadFile(a.path(f)); err == nil && pki.IsEncryptedKey(b) {
			return true
		}
	}
	return false
}

// protect encrypts keyPEM (a plaintext PEM key) when encrypt is set, and
// returns an already encrypted key as it is.
func (a *Authority) protect(keyPEM []byte, encrypt, confirm bool) ([]byte, error) {
	if !encrypt || pki.IsEncryptedKey(keyPEM) {
		return keyPEM, nil
	}
	pass, err := a.passphrase(confirm)
	if err != nil {
		return nil, err
	}
	return pki.EncryptKey(keyPEM, pass)
}

// DaemonCAPEM is what a daemon's ca.pem holds: the CA, followed during a
// rotation by the CA being replaced, so that clients of both connect.
func (a *Authority) DaemonCAPEM(ca *pki.CA) []byte {
	out := append([]byte{}, ca.CertPEM...)
	if b, err := os.ReadFile(a.path(OldCACertFile)); err == nil {
		out = append(out, b...)
	}
	return out
}
