package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// CARecord is the inventory row of a CA: its own issuer, recorded at path
// (its state directory; "" when the record names none), so that `dtls
// list` shows it and a rotation can supersede it.
func CARecord(ca *pki.CA, path string) store.Record {
	return store.FromCert(ca.Cert, ca.CertPEM, store.KindCA, pki.Serial(ca.Cert), path)
}

// NewCA makes a CA (pki.NewCA) and its inventory row, for a change that
// writes its files itself (a rotation's next CA; an init's is PlanCA's).
func NewCA(r pki.CARequest, path string) (*pki.CA, store.Record, error) {
	ca, err := pki.NewCA(r)
	if err != nil {
		return nil, store.Record{}, err
	}
	return ca, CARecord(ca, path), nil
}

// NextCA makes the CA that replaces cur in a rotation, and its inventory
// row. A CA's key type is a choice (RSA for old peers, P-384 for a
// policy): the next CA keeps cur's unless r names one.
func NextCA(cur *pki.CA, r pki.CARequest, path string) (*pki.CA, store.Record, error) {
	if r.KeyType == "" {
		r.KeyType = pki.KeyTypeOf(cur.Cert)
	}
	return NewCA(r, path)
}

// IssueListener issues the online CA's listener certificate (server,
// named cn, covering hosts) from ca: at `dtls ca init` and at a
// rotation's finish. It lasts as long as the CA: its key lies next to
// the CA's, so whoever could steal it could steal both, and a shorter
// life would only make the CA stop answering one day.
func IssueListener(ca *pki.CA, cn string, hosts []string, now time.Time) (*pki.Issued, store.Record, error) {
	return Issue(ca, pki.Request{Kind: pki.KindServer, CommonName: cn, Hosts: hosts, Now: now, Validity: pki.DefaultCAValidity}, "")
}

// ErrNoPassphrase is LoadCA's error for an encrypted CA key without a
// passphrase source.
var ErrNoPassphrase = errors.New("the CA key is encrypted and no passphrase source was given")

// ErrNoCAKey is LoadCA's error (wrapped) when the CA key cannot be read:
// a Docker host made by `dtls init --ca-from` holds the CA's certificate
// and not its key.
var ErrNoCAKey = errors.New("read CA key")

// LoadCA reads the CA whose certificate and key are the files certFile and
// keyFile of the state directory dir, on either host: the current CA, the
// one a rotation keeps aside. A key encrypted with a passphrase (`dtls
// init --encrypt-key`) is decrypted with what pass returns; pass nil makes
// it ErrNoPassphrase (the online CA runs unattended). The CA's KeyPEM is
// the key as it is on disk, so that a copy (a rotation's) is never written
// in the clear.
func LoadCA(dir, certFile, keyFile string, pass func() ([]byte, error)) (*pki.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPath := filepath.Join(dir, keyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCAKey, err)
	}
	plain := keyPEM
	if pki.IsEncryptedKey(keyPEM) {
		if pass == nil {
			return nil, fmt.Errorf("CA key %q: %w", keyPath, ErrNoPassphrase)
		}
		p, err := pass()
		if err != nil {
			return nil, err
		}
		// pki.ErrWrongPassphrase, wrapped: a face that keeps the
		// passphrase forgets it.
		if plain, err = pki.DecryptKey(keyPEM, p); err != nil {
			return nil, fmt.Errorf("CA key %q: %w", keyPath, err)
		}
	}
	ca, err := pki.LoadCA(certPEM, plain)
	if err != nil {
		return nil, fmt.Errorf("load CA from %q: %w", filepath.Join(dir, certFile), err)
	}
	ca.KeyPEM = keyPEM
	return ca, nil
}
