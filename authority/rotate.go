package authority

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

// ErrRotationInProgress is returned by Rotate when a rotation is already
// in progress, and ErrNoRotation by FinishRotation when none is.
var (
	ErrRotationInProgress = errors.New("a CA rotation is already in progress")
	ErrNoRotation         = errors.New("no CA rotation in progress: nothing to finish")
)

// RotateRequest asks for a new CA.
type RotateRequest struct {
	KeyType  pki.KeyType
	Validity time.Duration
	CAName   string
	Now      time.Time
}

// RotateResult is what Rotate did.
type RotateResult struct {
	CA     *pki.CA
	CAPath string
	// DaemonCA is the daemon's ca.pem, which now holds both CAs.
	DaemonCA string
	Server   *Issued
	// BundlesUpdated of BundlesTotal good client bundles, those still at
	// their recorded path, got ca.pem with both CAs.
	BundlesUpdated, BundlesTotal int
}

// Rotate makes a new CA and keeps the old one (ca-old.pem, ca-old-key.pem)
// until FinishRotation: the daemon's ca.pem holds both, the server
// certificate is re-issued from the new CA, and client bundles still at
// their recorded path get ca.pem with both CAs. Everything, the CRL
// included, is one change.
func (a *Authority) Rotate(r RotateRequest) (*RotateResult, error) {
	if a.InRotation() {
		return nil, hint(ErrRotationInProgress, "finish it first: dtls rotate-ca --finish")
	}
	old, err := a.CA()
	if err != nil {
		return nil, err
	}
	srv, err := a.Server()
	if err != nil {
		return nil, hint(fmt.Errorf("no server recorded in %q: %w", a.Dir, err), "run 'dtls init' first")
	}
	ca, err := pki.NewCA(pki.CARequest{CommonName: r.CAName, KeyType: r.KeyType, Now: r.Now, Validity: r.Validity})
	if err != nil {
		return nil, err
	}
	// The new CA key is kept encrypted when the old one was, with the
	// same passphrase.
	newKey, err := a.protect(ca.KeyPEM, a.Encrypted(), false)
	if err != nil {
		return nil, err
	}
	both := append(append([]byte{}, ca.CertPEM...), old.CertPEM...)
	t := newTxn("rotate-ca")
	// The old CA is copied aside before the new one replaces it; the
	// journal makes the four writes one.
	t.write(a.path(OldCAKeyFile), old.KeyPEM, KeyMode)
	t.write(a.path(OldCACertFile), old.CertPEM, CertMode)
	t.write(a.path(CAKeyFile), newKey, KeyMode)
	t.write(a.path(CACertFile), ca.CertPEM, CertMode)
	t.DB.Insert = append(t.DB.Insert, store.FromCert(ca.Cert, ca.CertPEM, store.KindCA, pki.Serial(ca.Cert), a.Dir))
	t.DB.Supersede = append(t.DB.Supersede, pki.Serial(old.Cert))

	res := &RotateResult{CA: ca, CAPath: a.path(CACertFile), DaemonCA: filepath.Join(srv.CertsDir, CACertFile)}
	t.write(res.DaemonCA, both, CertMode)
	certPath := filepath.Join(srv.CertsDir, ServerCertFile)
	b, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read server certificate: %w", err)
	}
	oldSrv, err := pki.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("read server certificate %q: %w", certPath, err)
	}
	s, err := ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: oldSrv.Subject.CommonName, Hosts: pki.Hosts(oldSrv), KeyType: pki.KeyTypeOf(oldSrv), Now: r.Now})
	if err != nil {
		return nil, err
	}
	res.Server = &Issued{
		Record:     store.FromCert(s.Cert, s.CertPEM, store.KindServer, pki.Serial(ca.Cert), certPath),
		Path:       certPath,
		Supersedes: pki.Serial(oldSrv),
	}
	t.write(filepath.Join(srv.CertsDir, ServerKeyFile), s.KeyPEM, KeyMode)
	t.write(certPath, s.CertPEM, CertMode)
	addRecords(t, []*Issued{res.Server})

	// Client bundles still where they were written learn the new CA.
	clients, err := a.Store.ByKind(store.KindClient)
	if err != nil {
		return nil, err
	}
	oldSerial := pki.Serial(old.Cert)
	for _, rec := range clients {
		// Only bundles of the CA being replaced: one of an older CA (before
		// an init --force) keeps the ca.pem that verifies its own chain.
		if rec.Status != store.StatusGood || rec.Path == "" || rec.CASerial != oldSerial {
			continue
		}
		res.BundlesTotal++
		if cur, err := os.ReadFile(filepath.Join(rec.Path, ClientCertFile)); err == nil && bytes.Equal(cur, []byte(rec.PEM)) {
			t.write(filepath.Join(rec.Path, CACertFile), both, CertMode)
			res.BundlesUpdated++
		}
	}
	// The CRLs: the new CA's (empty) and the old one's.
	if _, err := a.addCRL(t, []*pki.CA{ca, old}, nil, r.Now); err != nil {
		return nil, err
	}
	if err := a.commit(t); err != nil {
		return nil, err
	}
	a.ca = nil
	return res, nil
}

// FinishResult is what FinishRotation did.
type FinishResult struct {
	OldSerial string
	DaemonCA  string
	// Cut are the certificates of the old CA still good and unexpired,
	// now superseded (with force).
	Cut []store.Record
}

// BlockingError lists the certificates that still chain to the old CA.
type BlockingError struct{ Left []store.Record }

func (e *BlockingError) Error() string {
	return fmt.Sprintf("%d certificates still chain to the old CA", len(e.Left))
}

// FinishRotation drops the old CA: the daemon's ca.pem holds only the new
// one, certificates of the old CA are marked superseded, ca-old.pem and
// ca-old-key.pem are removed and the CRL rewritten, in one change. It
// refuses while good certificates of the old CA remain, unless force.
func (a *Authority) FinishRotation(force bool, now time.Time) (*FinishResult, error) {
	if !a.InRotation() {
		return nil, hint(ErrNoRotation, "start one with 'dtls rotate-ca'")
	}
	old, err := a.OldCA()
	if err != nil {
		return nil, err
	}
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	srv, err := a.Server()
	if err != nil {
		return nil, fmt.Errorf("no server recorded in %q: %w", a.Dir, err)
	}
	good, err := a.Store.ByStatus(store.StatusGood)
	if err != nil {
		return nil, err
	}
	res := &FinishResult{OldSerial: pki.Serial(old.Cert), DaemonCA: filepath.Join(srv.CertsDir, CACertFile)}
	t := newTxn("rotate-finish")
	for _, r := range good {
		if r.CASerial == res.OldSerial && r.Kind != store.KindCA && now.Before(r.NotAfter) {
			t.DB.Supersede = append(t.DB.Supersede, r.Serial)
			res.Cut = append(res.Cut, r)
		}
	}
	if len(res.Cut) > 0 && !force {
		return nil, hint(&BlockingError{Left: res.Cut},
			"renew them ('dtls renew NAME' or 'dtls renew --expiring 10000d'), or pass --force to cut them off")
	}
	t.write(res.DaemonCA, ca.CertPEM, CertMode)
	if _, err := a.addCRL(t, []*pki.CA{ca}, nil, now); err != nil {
		return nil, err
	}
	t.remove(a.path(OldCAKeyFile))
	t.remove(a.path(OldCACertFile))
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return res, nil
}
