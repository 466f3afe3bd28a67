package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// EnrollRequest asks an online CA for a client certificate with a
// one-time token, for the bundle directory Dir.
type EnrollRequest struct {
	// Dir is the bundle directory to write.
	Dir string
	// Replace replaces a bundle already at Dir; without it one is an
	// *bundle.ExistsError, found before the CA is asked.
	Replace bool
	// CAURL is the CA's URL (fleet.ParseURL).
	CAURL string
	Token fleet.Token
	// DockerHost is the daemon the bundle is for, tcp://HOST:PORT: the CA
	// knows its clients, not where they connect (every daemon of the
	// fleet accepts the certificate).
	DockerHost string
	// KeyType of the new key (pki.DefaultKeyType when empty).
	KeyType pki.KeyType
	// Timeout bounds the call (fleet.DefaultTimeout when zero).
	Timeout time.Duration
	Now     time.Time
}

// Enrolled is the bundle Enroll wrote.
type Enrolled struct {
	Dir   string
	Files []bundle.File
	Cert  *x509.Certificate
	Meta  clientenv.Meta
	// Role is the authorization role the CA put in the certificate.
	Role string
	// CSR is the request that was sent: the public key, never the
	// private one, left this machine.
	CSR []byte
	// Resumed is true when the key was the one a killed enrolment had
	// saved (the CA answers the same certificate for it again).
	Resumed bool
	// Superseded are the serials of the older good certificates of the
	// same name that the CA marked superseded (fleet.CertResponse).
	Superseded []string
}

// enrollKeyName is the journal of an enrolment, next to the bundle
// directory (which does not exist yet, or is replaced whole): the new key,
// saved before the CA is asked. An enrolment killed after the CA answered
// and before the bundle was written is finished by running it again with
// the same token: the CA answers the token's certificate again to the
// holder of its key (and to no one else).
func enrollKeyName(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".enroll-key.pem")
}

// Enroll makes a key here, sends only its certificate request to the CA
// with the token (which checks the server against the token's CA
// fingerprint: fleet.Client.Enroll), checks the answer, and writes the
// bundle (ca.pem, cert.pem, key.pem 0600, dtls.json with the CA's URL) to
// Dir with bundle.InstallDir. A CA that cannot be reached, or refuses, leaves the
// machine as it was: the saved key is removed, and so is a parent
// directory Enroll made. Only a run killed during the call leaves the key,
// for the next run to finish with (which keeps it while the CA cannot be
// reached), and so does a run whose request reached the CA but whose
// answer was lost (MaySigned).
func Enroll(ctx context.Context, r EnrollRequest) (_ *Enrolled, err error) {
	caURL, server, err := checkEnrollURLs(r)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(r.Dir)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	made, err := mkdirTop(parent)
	if err != nil {
		return nil, err
	}
	keep := false // the saved key stays: so does its directory
	defer func() {
		if err != nil && made != "" && !keep {
			os.RemoveAll(made)
		}
	}()
	unlock, err := lockDir(ctx, parent)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := recoverDir(dir); err != nil {
		return nil, err
	}
	if err := checkBundleTarget(dir, r.Replace); err != nil {
		return nil, err
	}

	keyPath := enrollKeyName(dir)
	res := &Enrolled{Dir: dir}
	keyPEM, err := enrollKey(res, dir, keyPath, r.KeyType)
	if err != nil {
		return nil, err
	}
	// From here on, an error removes the saved key, so that nothing is
	// left; but the key of a killed run stays while the CA cannot be
	// reached: the CA may have signed it, and only its holder can have
	// that certificate again.
	defer func() {
		if err == nil {
			return
		}
		if keep = (res.Resumed && fleet.Retryable(err)) || MaySigned(err); !keep {
			removePending(keyPath)
		}
	}()

	c := &fleet.Client{URL: caURL, Timeout: r.Timeout}
	resp, err := c.Enroll(ctx, r.Token, res.CSR)
	if err != nil {
		return nil, err
	}
	if resp.Kind != pki.KindClient {
		return nil, fmt.Errorf("the token is for a %s certificate (and is used up now): dtls enroll makes client bundles; on a Docker host, run 'sudo dtls init --ca-url %s --token TOKEN' with a new server token", resp.Kind, caURL)
	}
	if err := res.fill(r, resp, caURL, server, keyPEM); err != nil {
		return nil, err
	}
	if err := bundle.InstallDir(dir, res.Files); err != nil {
		return nil, err
	}
	made = "" // the bundle is there: its parent stays
	if err := removePending(keyPath); err != nil {
		return nil, err
	}
	return res, nil
}

// checkEnrollURLs checks the CA's URL and the daemon's, and returns the
// CA's URL as fleet.ParseURL normalises it and the daemon's host name.
func checkEnrollURLs(r EnrollRequest) (caURL, server string, err error) {
	if caURL, err = fleet.ParseURL(r.CAURL); err != nil {
		return "", "", err
	}
	if server, err = clientenv.DaemonHost(r.DockerHost); err != nil {
		return "", "", err
	}
	if _, _, err := clientenv.ParseDockerHost(r.DockerHost); err != nil {
		return "", "", err
	}
	return caURL, server, nil
}

// checkBundleTarget refuses a dir that is not a directory, or that exists
// when replace is false.
func checkBundleTarget(dir string, replace bool) error {
	if fi, err := os.Lstat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("bundle %q exists and is not a directory", dir)
		}
		if !replace {
			return &bundle.ExistsError{Dir: dir}
		}
	}
	return nil
}

// enrollKey returns the key of the enrolment and sets res.CSR: the key a
// killed enrolment saved at keyPath (res.Resumed), or a new one of
// keyType, saved there before the CA is asked. A saved key that the
// bundle in dir already holds is of a run killed after it wrote the
// bundle: it is removed, and a new enrolment starts.
func enrollKey(res *Enrolled, dir, keyPath string, keyType pki.KeyType) ([]byte, error) {
	keyPEM, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
		if k, kerr := pki.ParsePrivateKey(keyPEM); kerr != nil {
			return nil, fmt.Errorf("%s: %w (remove it, then enrol again)", keyPath, kerr)
		} else if installedKeyIs(dir, k) {
			// A run killed after it wrote the bundle: done already.
			if err := removePending(keyPath); err != nil {
				return nil, err
			}
			keyPEM = nil
		} else {
			res.Resumed = true
			if res.CSR, err = fleet.CSRFor(keyPEM); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		keyPEM = nil
	default:
		return nil, err
	}
	if keyPEM == nil {
		// The common name is the CA's to set from the token; the
		// request carries only the key.
		if res.CSR, keyPEM, err = pki.NewCSR("dtls enroll", keyType); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(keyPath, keyPEM, PendingKeyMode); err != nil {
			return nil, err
		}
	}
	return keyPEM, nil
}

// fill checks the CA's answer and fills res with the bundle it makes.
func (res *Enrolled) fill(r EnrollRequest, resp *fleet.CertResponse, caURL, server string, keyPEM []byte) error {
	var err error
	if res.Cert, err = pki.ParseCertificate([]byte(resp.Certificate)); err != nil {
		return err
	}
	res.Meta = clientenv.Meta{
		Name:       res.Cert.Subject.CommonName,
		DockerHost: r.DockerHost,
		Server:     server,
		NotAfter:   res.Cert.NotAfter.UTC(),
		Serial:     pki.Serial(res.Cert),
		CAURL:      caURL,
	}
	if res.Files, err = bundle.Files([]byte(resp.CA), []byte(resp.Certificate), keyPEM, res.Meta); err != nil {
		return err
	}
	if _, err := bundle.Verify(res.Files, r.Now); err != nil {
		return fmt.Errorf("the bundle from the CA at %s does not work: %w", caURL, err)
	}
	res.Role, _ = fleet.CertRole(res.Cert)
	res.Superseded = resp.Superseded
	return nil
}

// MaySigned reports whether err is a call whose request reached the CA
// and whose answer was lost: the CA may have signed (and used the token).
// Enroll then keeps the saved key, so that running it again with the same
// token finishes the enrolment.
func MaySigned(err error) bool {
	var ue *fleet.UnreachableError
	return errors.As(err, &ue) && ue.Sent
}

// installedKeyIs reports whether the bundle in dir holds key.
func installedKeyIs(dir string, key crypto.Signer) bool {
	id, err := bundle.LoadIdentity(dir)
	return err == nil && pki.KeyMatches(id.Cert, key)
}

// mkdirTop makes dir (0700) and its missing parents, and returns the
// topmost directory it made ("" when dir existed), for an enrolment that
// fails to remove again.
func mkdirTop(dir string) (string, error) {
	top := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		top = d
	}
	if top == "" {
		return "", nil
	}
	if err := atomicfile.MkdirAll(dir, bundle.DirMode); err != nil {
		os.RemoveAll(top)
		return "", err
	}
	return top, nil
}
