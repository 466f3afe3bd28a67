package bundle

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// Identity is a bundle directory read as a TLS client's identity: the PEM
// of its three files, the client certificate parsed, and, from
// Credentials, the key pair and the pool of its CA certificates. It is
// the one reader of a bundle for a TLS connection: to the online CA (the
// agent, an operator's commands) and into a Docker context.
type Identity struct {
	Dir                    string
	CAPEM, CertPEM, KeyPEM []byte
	// Cert is the client certificate (the first of cert.pem).
	Cert *x509.Certificate
}

// LoadIdentity reads the bundle in dir: ca.pem, cert.pem and key.pem, and
// parses cert.pem. An error is a *FileError naming the bundle and the
// file.
func LoadIdentity(dir string) (*Identity, error) {
	id := &Identity{Dir: dir}
	for _, f := range []struct {
		name string
		p    *[]byte
	}{{clientenv.CAFile, &id.CAPEM}, {clientenv.CertFile, &id.CertPEM}, {clientenv.KeyFile, &id.KeyPEM}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, &FileError{Dir: dir, File: f.name, Err: err}
		}
		*f.p = b
	}
	var err error
	if id.Cert, err = pki.ParseCertificate(id.CertPEM); err != nil {
		return nil, &FileError{Dir: dir, File: clientenv.CertFile, Err: err}
	}
	return id, nil
}

// FileError is a file of a bundle that cannot be read (Err is then an
// *fs.PathError) or does not parse.
type FileError struct {
	Dir, File string
	Err       error
}

func (e *FileError) Error() string {
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		return fmt.Sprintf("bundle %q: %v", e.Dir, e.Err)
	}
	return fmt.Sprintf("bundle %q: %s: %v", e.Dir, e.File, e.Err)
}
func (e *FileError) Unwrap() error { return e.Err }

// KeyMismatchError is a bundle whose key.pem is not the key of cert.pem.
type KeyMismatchError struct {
	Dir string
	Err error
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("bundle %q: %s does not match %s: %v", e.Dir, clientenv.KeyFile, clientenv.CertFile, e.Err)
}
func (e *KeyMismatchError) Unwrap() error { return e.Err }

// Credentials are what a TLS client presents and trusts: the key pair of
// cert.pem and key.pem (a *KeyMismatchError when they do not match), and
// the pool of ca.pem's certificates, the only roots of the connection.
func (id *Identity) Credentials() (*tls.Certificate, *x509.CertPool, error) {
	pair, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		return nil, nil, &KeyMismatchError{Dir: id.Dir, Err: err}
	}
	cas, err := pki.ParseCertificates(id.CAPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle %q: %s: %w", id.Dir, clientenv.CAFile, err)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	return &pair, roots, nil
}
