package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// SetBundleCA makes caPEM the ca.pem of the bundle in dir (0644,
// atomically), and reports whether it changed: an operator's bundle
// trusts what the CA serves, both CAs during a rotation of the online CA.
func SetBundleCA(dir string, caPEM []byte) (bool, error) {
	p := filepath.Join(dir, clientenv.CAFile)
	if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, caPEM) {
		return false, nil
	}
	if err := atomicfile.Write(p, caPEM, bundle.Allowed[clientenv.CAFile]); err != nil {
		return false, err
	}
	return true, nil
}

// RenewNow renews the certificate of the bundle in dir at once, whatever
// its schedule, through c (which authenticates with that bundle): the
// steps of RenewIfDue, for a bundle that is no Docker client's (an online
// CA's operator, whose certificate must be of the CA that signs once a
// rotation has switched). The new key is journaled first (PendingKeyFile),
// so a run killed after the CA answered asks again for the same key and
// gets the same successor; the bundle directory is replaced whole. It
// returns the old and the new certificate.
func RenewNow(ctx context.Context, dir string, c *fleet.Client) (old, renewed *x509.Certificate, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %q: %w", dir, err)
	}
	unlock, err := lockDir(ctx, filepath.Dir(abs))
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if err := recoverDir(abs); err != nil {
		return nil, nil, err
	}
	id, err := bundle.LoadIdentity(abs)
	if err != nil {
		return nil, nil, err
	}
	old = id.Cert
	pendingPath := filepath.Join(abs, PendingKeyFile)
	keyPEM, err := os.ReadFile(pendingPath)
	var csrPEM []byte
	switch {
	case err == nil:
		if csrPEM, err = fleet.CSRFor(keyPEM); err != nil {
			return nil, nil, fmt.Errorf("bundle %q: %s: %w (remove it to start the renewal again)", abs, PendingKeyFile, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if csrPEM, keyPEM, err = pki.NewCSR(old.Subject.CommonName, pki.KeyTypeOf(old)); err != nil {
			return nil, nil, err
		}
		if err := atomicfile.Write(pendingPath, keyPEM, PendingKeyMode); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, err
	}
	resp, err := c.Renew(ctx, csrPEM)
	if err != nil {
		return old, nil, err
	}
	if renewed, err = pki.ParseCertificate([]byte(resp.Certificate)); err != nil {
		return old, nil, err
	}
	meta := clientenv.Meta{CAURL: c.URL}
	if b, err := os.ReadFile(filepath.Join(abs, clientenv.MetaFile)); err == nil {
		var m clientenv.Meta
		if json.Unmarshal(b, &m) == nil {
			meta = m
		}
	}
	meta.Name, meta.Serial, meta.NotAfter = renewed.Subject.CommonName, pki.Serial(renewed), renewed.NotAfter.UTC()
	files, err := bundle.Files([]byte(resp.CA), []byte(resp.Certificate), keyPEM, meta)
	if err != nil {
		return old, nil, err
	}
	// InstallDir drops the pending key with the old directory.
	if err := bundle.InstallDir(abs, files); err != nil {
		return old, nil, err
	}
	return old, renewed, nil
}
