package cafront

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/pki"
)

// HostRenewal is what Local.Renew did.
type HostRenewal struct {
	// RenewResult is nil when nothing was due.
	*authority.RenewResult
	// CAURL is the online CA this host's server certificate was renewed
	// through, or would have been; "" when this host is its own CA.
	CAURL string
	// ServerNotAfter is the end of the server certificate of an online
	// CA's host that the window (Expiring) left alone.
	ServerNotAfter time.Time
	// DaemonCA is the daemon's ca.pem when a renewal through the online
	// CA changed it (the online CA is rotating its CA), and NewCAs what it
	// holds now; "" when it did not change.
	DaemonCA string
	NewCAs   []*x509.Certificate
}

// ErrValidityOnline is a validity asked of a renewal through an online
// CA, which sets the validity of what it signs.
var ErrValidityOnline = errors.New("the online CA sets the validity of the certificates it signs")

// Renew renews with the CA that signs for this host: on a host enrolled
// with an online CA ('dtls init --ca-url'), the server certificate (for
// Server, or Expiring when it is within the window; client certificates
// there are renewed by 'dtls agent' on each laptop) through that CA
// (authority.RenewServerFromCA); anywhere else, and for a NAME, with the
// state directory's own CA (authority.Authority.Renew).
func (l *Local) Renew(ctx context.Context, req authority.RenewRequest) (*HostRenewal, error) {
	a := l.Authority
	srv, _ := a.Server()
	if srv == nil || srv.CAURL == "" || req.Name != "" {
		res, err := a.Renew(req)
		return &HostRenewal{RenewResult: res}, err
	}
	out := &HostRenewal{CAURL: srv.CAURL}
	if req.Validity > 0 {
		return nil, fmt.Errorf("%w (the CA at %s)", ErrValidityOnline, srv.CAURL)
	}
	if req.Expiring > 0 {
		b, err := os.ReadFile(filepath.Join(srv.CertsDir, authority.ServerCertFile))
		if err == nil {
			if c, err := pki.ParseCertificate(b); err == nil && !c.NotAfter.Before(req.Now.Add(req.Expiring)) {
				out.ServerNotAfter = c.NotAfter
				return out, nil
			}
		}
	}
	caPath := filepath.Join(srv.CertsDir, authority.CACertFile)
	before, _ := os.ReadFile(caPath)
	res, err := a.RenewServerFromCA(ctx, req.Now, 0)
	if err != nil {
		return nil, err
	}
	out.RenewResult = res
	// The answer's CA certificates become the daemon's ca.pem: during a
	// rotation of the online CA both CAs, after it the new one alone.
	if after, err := os.ReadFile(caPath); err == nil && !bytes.Equal(before, after) {
		out.DaemonCA = caPath
		out.NewCAs, _ = pki.ParseCertificates(after)
	}
	return out, nil
}
