package authority

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// A fleet host is a Docker host enrolled with an online CA ('dtls init
// --ca-url URL --token T'): its server key is made here, only a
// certificate request goes to the CA, and the CA's answer is installed as
// a bundle from 'dtls issue-server' would be (planServerBundle), in the
// same journaled change as daemon.json. No CA key is ever on such a host:
// client certificates are made by the CA, and this host's certificate is
// renewed through it ('dtls renew --server', RenewServerFromCA).

// PendingServerKeyFile, in the state directory, is the journal of a
// server renewal through the online CA: the new key, written (0600,
// atomically) before the CA is asked to sign it. A renewal killed after
// that is finished by the next one, which asks again for that key: the CA
// answers the same successor (its renewal is idempotent for the key of
// the certificate that superseded the one presented). The change that
// installs the answer removes it.
const PendingServerKeyFile = "pending-server-key.pem"

// RemoteCAError is returned where a command needs the CA key on a host
// enrolled with an online CA, which has none.
type RemoteCAError struct{ URL string }

func (e *RemoteCAError) Error() string {
	return fmt.Sprintf("this host enrolled with the CA at %s: issue client certificates there with `dtls ca token --client NAME`", e.URL)
}

// HintText is what the command line prints as "hint:".
func (e *RemoteCAError) HintText() string {
	return fmt.Sprintf("on this host: 'dtls renew --server' renews its certificate through the CA; 'dtls certs|revoke --ca-url %s --operator DIR' work from anywhere", e.URL)
}

// remoteCA returns a *RemoteCAError when the state directory is a fleet
// host's.
func (a *Authority) remoteCA() error {
	if srv, err := a.Server(); err == nil && srv.CAURL != "" {
		return &RemoteCAError{URL: srv.CAURL}
	}
	return nil
}

// checkNoLocalCA refuses to make a host that is its own CA a fleet host:
// its CA key would stay, and the clients it issued would lose access.
func checkNoLocalCA(stateDir, url string) error {
	for _, f := range []string{CAKeyFile, OldCAKeyFile} {
		p := filepath.Join(stateDir, f)
		if _, err := os.Lstat(p); err == nil {
			return hint(fmt.Errorf("--ca-url %s: this host is a CA of its own (%s): a fleet host keeps no CA key", url, p),
				"keep it as it is, or move %s away (the clients it issued lose access) and run dtls init --ca-url again", stateDir)
		}
	}
	return nil
}

// EnrollKeyPath is the journal of an enrolment by 'dtls init --ca-url':
// the new server key, saved (0600, atomically) next to the state
// directory, which may not exist yet, before the CA is asked. A run killed
// while the CA answered is finished by running it again with the same
// token: the CA answers the token's certificate again to the holder of its
// key. The change that installs the answer removes it; so does a refusal.
func EnrollKeyPath(stateDir string) string {
	d := filepath.Clean(stateDir)
	return filepath.Join(filepath.Dir(d), "."+filepath.Base(d)+".enroll-key.pem")
}

// enrollServer makes the server key and asks the online CA for its
// certificate with r.Enroll; nothing is written but the key's journal
// (EnrollKeyPath).
func enrollServer(r InitRequest, hosts *[]string) (_ *serverBundle, err error) {
	pending := EnrollKeyPath(r.StateDir)
	// A killed atomic write of the key never reached its name: the key
	// in it was never sent.
	engine.CleanTempsOf(pending)
	var csrPEM, keyPEM []byte
	resumed := false
	switch b, rerr := os.ReadFile(pending); {
	case rerr == nil:
		if csrPEM, err = fleet.CSRFor(b); err != nil {
			return nil, fmt.Errorf("%s: %w (remove it, then enrol again with a new token)", pending, err)
		}
		keyPEM, resumed = b, true
	case errors.Is(rerr, fs.ErrNotExist):
		// The names and the common name are the CA's to set from the
		// token.
		if csrPEM, keyPEM, err = pki.NewCSR("dtls init", r.KeyType); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(pending, keyPEM, KeyMode); err != nil {
			return nil, fmt.Errorf("save the new server key: %w", err)
		}
	default:
		return nil, rerr
	}
	defer func() {
		// Kept when the CA may have signed it (the request went out and
		// the answer was lost, or a resumed run cannot reach the CA):
		// only its holder can have that certificate again.
		var ue *fleet.UnreachableError
		if err != nil && !(errors.As(err, &ue) && (ue.Sent || resumed)) {
			os.Remove(pending)
		}
	}()
	resp, err := r.Enroll(csrPEM)
	if err != nil {
		return nil, enrollError(r, err, resumed, pending)
	}
	if resp.Kind != store.KindServer {
		return nil, hint(fmt.Errorf("the token is for a %s certificate (and is used up now); nothing was changed", resp.Kind),
			"ask for a server token: dtls ca token --host NAME on the CA's host (a client token is for 'dtls enroll' on a laptop)")
	}
	sb := &serverBundle{caPEM: []byte(resp.CA), certPEM: []byte(resp.Certificate), keyPEM: keyPEM, from: "the CA at " + r.CAURL, pendingKey: pending}
	if err := sb.checkEnrolled(r, hosts); err != nil {
		return nil, err
	}
	return sb, nil
}

// enrollError is the error of r.Enroll's call, with what to do: run again
// (with the same token when the CA may have signed the saved key), or ask
// for a new token.
func enrollError(r InitRequest, err error, resumed bool, pending string) error {
	var fe *fleet.Error
	var ue *fleet.UnreachableError
	switch {
	case errors.As(err, &ue) && (ue.Sent || resumed):
		return hint(fmt.Errorf("%w; nothing was changed but the new key, saved as %s", err, pending),
			"run the same command again, with the same token, once the CA at %s answers: the CA may have signed that key", r.CAURL)
	case fleet.Retryable(err):
		return hint(fmt.Errorf("%w; nothing was changed", err), "run the same command again once the CA at %s answers", r.CAURL)
	case errors.As(err, &fe):
		return hint(fmt.Errorf("the CA at %s refused to enrol this host: %w; nothing was changed", r.CAURL, err),
			"ask the CA's operator for a new server token (dtls ca token --host NAME on the CA's host)")
	}
	return fmt.Errorf("%w; nothing was changed", err)
}

// checkEnrolled checks the CA's answer in sb (the certificate is the key's,
// verifies with the CA certificates, and covers the names asked for: hosts,
// filled from the certificate when empty) and sets sb's inventory record.
func (sb *serverBundle) checkEnrolled(r InitRequest, hosts *[]string) error {
	var err error
	if sb.cert, err = pki.ParseCertificate(sb.certPEM); err != nil {
		return err
	}
	cas, err := pki.ParseCertificates(sb.caPEM)
	if err != nil {
		return fmt.Errorf("the CA at %s: CA certificates: %w", r.CAURL, err)
	}
	key, err := pki.ParsePrivateKey(sb.keyPEM)
	if err != nil {
		return err
	}
	if !pki.KeyMatches(sb.cert, key) {
		return fmt.Errorf("the CA at %s answered a certificate that is not for the key made here", r.CAURL)
	}
	if err := pki.Verify(sb.cert, cas, pki.KindServer, r.Now); err != nil {
		return fmt.Errorf("the CA at %s: %w", r.CAURL, err)
	}
	if len(*hosts) == 0 {
		*hosts = pki.Hosts(sb.cert)
	} else if m := pki.Missing(sb.cert, *hosts); len(m) > 0 {
		return hint(fmt.Errorf("the certificate from the CA at %s covers %v, not %v (the token sets the names); nothing was changed", r.CAURL, pki.Hosts(sb.cert), m),
			"ask for a token with every name: dtls ca token --host NAME --san OTHER... on the CA's host, or leave out --host")
	}
	caSerial := ""
	for _, ca := range cas {
		if sb.cert.CheckSignatureFrom(ca) == nil {
			caSerial = pki.Serial(ca)
			break
		}
	}
	rec := store.FromCert(sb.cert, sb.certPEM, store.KindServer, caSerial, "")
	sb.record = &rec
	return nil
}

// keepEnrolled is init run again on a fleet host without a token: the
// server certificate installed from the CA is kept, and checked as a
// bundle from 'dtls issue-server' would be.
func keepEnrolled(r InitRequest, hosts *[]string) (*serverBundle, error) {
	if _, err := os.Stat(filepath.Join(r.CertsDir, ServerCertFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, hint(fmt.Errorf("--ca-url %s: no server certificate in %s yet, and no --token to enrol with", r.CAURL, r.CertsDir),
			"ask the CA's operator for a server token (dtls ca token --host NAME), then: dtls init --ca-url %s --token TOKEN", r.CAURL)
	}
	sb, err := readServerBundle(r, r.CertsDir, hosts)
	if err != nil {
		return nil, hint(fmt.Errorf("--ca-url %s: the server certificate installed in %s: %w", r.CAURL, r.CertsDir, errors.Unwrap(err)),
			"enrol again with a new server token: dtls init --ca-url %s --token TOKEN", r.CAURL)
	}
	sb.from = "the CA at " + r.CAURL
	return sb, nil
}

// RenewServerFromCA renews this fleet host's server certificate through
// its online CA: a new key, made here and journaled (PendingServerKeyFile)
// before the request goes out; the request over mutual TLS with the
// current server certificate and key, the certs directory's ca.pem the
// only trusted root; the answer checked (fleet.Client.Renew) and written,
// with the inventory record, in one journaled change. A renewal a killed
// run left is finished first. dockerd must be restarted to serve the new
// certificate (moby#23936).
func (a *Authority) RenewServerFromCA(ctx context.Context, now time.Time, timeout time.Duration) (*RenewResult, error) {
	srv, err := a.Server()
	if err != nil || srv.CAURL == "" {
		return nil, fmt.Errorf("no online CA recorded in %q: this host is not a fleet host", filepath.Join(a.Dir, ServerRecord))
	}
	certPath := filepath.Join(srv.CertsDir, ServerCertFile)
	keyPath := filepath.Join(srv.CertsDir, ServerKeyFile)
	caPath := filepath.Join(srv.CertsDir, CACertFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read server certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read server key: %w", err)
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate: %w", err)
	}
	old, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read server certificate %q: %w", certPath, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server certificate %q and key %q: %w", certPath, keyPath, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", caPath)
	}
	if !now.Before(old.NotAfter) {
		return nil, hint(fmt.Errorf("the server certificate %s expired on %s: the CA renews only a valid one", certPath, old.NotAfter.UTC().Format("2006-01-02")),
			"enrol again with a new server token: dtls init --ca-url %s --token TOKEN", srv.CAURL)
	}

	pendingPath := a.path(PendingServerKeyFile)
	newKey, err := os.ReadFile(pendingPath)
	var csrPEM []byte
	switch {
	case err == nil:
		if csrPEM, err = fleet.CSRFor(newKey); err != nil {
			return nil, fmt.Errorf("%s: %w (remove it to start the renewal again)", pendingPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if csrPEM, newKey, err = pki.NewCSR(old.Subject.CommonName, pki.KeyTypeOf(old)); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(pendingPath, newKey, RecordMode); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	c := &fleet.Client{URL: srv.CAURL, Roots: roots, Certificate: &pair, Timeout: timeout}
	defer c.CloseIdleConnections()
	resp, err := c.Renew(ctx, csrPEM)
	if err != nil {
		var fe *fleet.Error
		if errors.As(err, &fe) && fe.Status == http.StatusTooManyRequests {
			// The CA's bound on renewals (caserver.MaxListedRenewals):
			// its message says from when.
			return nil, hint(err, "run 'dtls renew --server' again after that time (the daily timer of examples/fleet-host does): it asks for the same key's certificate")
		}
		if fleet.Retryable(err) {
			return nil, hint(err, "run 'dtls renew --server' again once the CA answers: it asks for the same key's certificate")
		}
		// Refused: the key will never be signed.
		engine.RemoveFile(pendingPath)
		return nil, hint(fmt.Errorf("the CA at %s refused to renew the server certificate %s (serial %s): %w", srv.CAURL, certPath, pki.Serial(old), err),
			"enrol again with a new server token: dtls init --ca-url %s --token TOKEN", srv.CAURL)
	}
	cert, err := pki.ParseCertificate([]byte(resp.Certificate))
	if err != nil {
		return nil, err
	}
	caSerial := ""
	if cas, err := pki.ParseCertificates([]byte(resp.CA)); err == nil {
		for _, ca := range cas {
			if cert.CheckSignatureFrom(ca) == nil {
				caSerial = pki.Serial(ca)
				break
			}
		}
	}
	t := newTxn("renew")
	t.Write(keyPath, newKey, KeyMode)
	t.Write(certPath, []byte(resp.Certificate), CertMode)
	t.Write(caPath, []byte(resp.CA), CertMode)
	t.Remove(pendingPath)
	it := &Issued{Record: store.FromCert(cert, []byte(resp.Certificate), store.KindServer, caSerial, certPath), Path: certPath}
	replaced := store.FromCert(old, certPEM, store.KindServer, "", certPath)
	it.Replaced, it.Supersedes = &replaced, replaced.Serial
	t.DB.Insert = append(t.DB.Insert, it.Record)
	t.DB.Supersede = append(t.DB.Supersede, replaced.Serial)
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return &RenewResult{Renewed: []*Issued{it}, ServerRenewed: true}, nil
}
