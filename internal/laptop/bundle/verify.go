package bundle

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// Checked is what Verify learnt about a bundle.
type Checked struct {
	// Meta is the bundle's dtls.json.
	Meta clientenv.Meta
	// Cert is the client certificate.
	Cert *x509.Certificate
}

// Verify checks the files of a bundle before it is installed, so that a
// bundle that cannot work is refused on import rather than failing later
// in the middle of a `docker` command with a TLS error:
//
//   - dtls.json parses and names a daemon URL tcp://HOST:PORT and
//     nothing else (clientenv.ParseDockerHost), and an online CA's URL,
//     if any, as strictly (clientenv.CheckCAURL);
//   - cert.pem is a certificate valid at now (not expired, not yet valid);
//   - key.pem is the private key of cert.pem (crypto/tls.X509KeyPair);
//   - cert.pem chains to a certificate of ca.pem, for client
//     authentication (the extended key usage dockerd requires).
func Verify(files []File, now time.Time) (*Checked, error) {
	var meta clientenv.Meta
	if err := json.Unmarshal(Get(files, clientenv.MetaFile), &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", clientenv.MetaFile, err)
	}
	if meta.DockerHost == "" {
		return nil, fmt.Errorf("%s records no daemon URL (docker_host)", clientenv.MetaFile)
	}
	// Strictly a host and a port: 'dtls env' prints it into a shell.
	if _, _, err := clientenv.ParseDockerHost(meta.DockerHost); err != nil {
		return nil, fmt.Errorf("%s: docker_host: %w", clientenv.MetaFile, err)
	}
	if meta.CAURL != "" {
		if err := clientenv.CheckCAURL(meta.CAURL); err != nil {
			return nil, fmt.Errorf("%s: ca_url: %w", clientenv.MetaFile, err)
		}
	}
	certPEM, keyPEM := Get(files, clientenv.CertFile), Get(files, clientenv.KeyFile)
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cert.pem: %w", err)
	}
	switch {
	case !now.Before(cert.NotAfter):
		return nil, fmt.Errorf("cert.pem: the certificate of %q expired on %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	case now.Before(cert.NotBefore):
		return nil, fmt.Errorf("cert.pem: the certificate of %q is not valid before %s", cert.Subject.CommonName, cert.NotBefore.UTC().Format("2006-01-02 15:04 MST"))
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("key.pem does not match cert.pem: %w", err)
	}
	cas, err := pki.ParseCertificates(Get(files, clientenv.CAFile))
	if err != nil {
		return nil, fmt.Errorf("ca.pem: %w", err)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("cert.pem does not chain to ca.pem: %w", err)
	}
	// dtls.json's not_after is what `dtls env` and `dtls ls` show; it
	// must be the certificate's.
	meta.NotAfter = cert.NotAfter.UTC()
	return &Checked{Meta: meta, Cert: cert}, nil
}

// ServerName returns the name a bundle is installed under by default: the
// host of the daemon URL ("docker.example.com" for
// tcp://docker.example.com:2376), which is how its user knows the server;
// when that is an IP address, the server's hostname recorded in dtls.json
// if it makes a valid name, else the address.
func (c *Checked) ServerName() string {
	host, err := clientenv.DaemonHost(c.Meta.DockerHost)
	if err != nil {
		return clientenv.SanitizeBundleName(c.Meta.Server)
	}
	if net.ParseIP(host) == nil {
		if n := clientenv.SanitizeBundleName(host); n != "" {
			return n
		}
	}
	if n := clientenv.SanitizeBundleName(c.Meta.Server); n != "" {
		return n
	}
	return clientenv.SanitizeBundleName(host)
}

// WithMeta returns files with dtls.json replaced by m.
func WithMeta(files []File, m clientenv.Meta) ([]File, error) {
	data, err := clientenv.MarshalMeta(m)
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		if f.Name == clientenv.MetaFile {
			if bytes.Equal(f.Data, data) {
				return files, nil
			}
			f.Data = data
		}
		out = append(out, f)
	}
	return out, nil
}
