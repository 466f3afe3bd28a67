package authority

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// A CA rotation has three steps, each one journaled change of the engine
// (engine.BeginRotation, SwitchRotation, FinishRotation: the CA files,
// ca-old.pem and ca-old-key.pem) with this host's part (the daemon's
// ca.pem and server certificate, the bundles, the CRL), so that no
// client whose bundle is elsewhere than its recorded path (a laptop's
// imported copy, a Docker context, a fleet daemon's ca.pem) is ever cut off
// by surprise.
//
// The old CA was made with pathlen:0 (ca.go), so it cannot cross-sign the
// new one the way RFC 4210 4.4 rolls a root over ("OldWithNew" and
// "NewWithOld" certificates): a bundle that trusts only the old CA can
// verify nothing the new CA signs. The order is therefore the one of a
// manual root rotation without cross-signing (Kubernetes, "Manual Rotation
// of CA Certificates": trust both, then move the serving certificates,
// then drop the old CA):
//
//  1. trust ('rotate-ca'): a new CA; the daemon's ca.pem trusts both, and
//     the daemon keeps presenting its server certificate of the old CA,
//     which every bundle verifies. Clients are issued and renewed from the
//     new CA with a ca.pem of both CAs; server certificates (this
//     daemon's, issue-server's) are still signed by the old CA.
//  2. switch ('rotate-ca --switch'): the daemon's server certificate is
//     issued from the new CA. Refused while a good client certificate of
//     the old CA remains: it was issued before step 1, and its bundle,
//     wherever it was copied, trusts only the old CA.
//  3. finish ('rotate-ca --finish'): the old CA is dropped.
//
// The step is not recorded anywhere but in the files themselves: outside a
// rotation there is no ca-old.pem; at step 1 the daemon's server
// certificate is signed by the old CA, at step 2 by the new one. A run
// killed inside a step's change is finished or undone by the next run
// before it reads them (engine.Journal), so every run sees one step or the
// next.

// RotationStep is where a CA rotation is: at step 1 (StepTrust) the
// daemon's server certificate is still of the old CA, at step 2
// (StepSwitched) of the new one.
type RotationStep = engine.Step

// The steps of a rotation (see above).
const (
	NotRotating  = engine.NotRotating
	StepTrust    = engine.StepTrust
	StepSwitched = engine.StepSwitched
)

// The refusals of the three steps.
var (
	ErrRotationInProgress = engine.ErrRotationInProgress
	ErrNoRotation         = engine.ErrNoRotation
	ErrNotSwitched        = errors.New("the daemon still presents a server certificate of the old CA")
	ErrAlreadySwitched    = errors.New("the daemon already presents a server certificate of the new CA")
)

// rotationFiles are the state directory's files of a rotation, for the
// engine's steps: the old CA is copied aside at the begin, and the step
// is read from the daemon's server certificate (RotationStep), so there
// is no step file.
func (a *Authority) rotationFiles() engine.RotationFiles {
	return engine.RotationFiles{
		Dir:    a.Dir,
		CACert: CACertFile, CAKey: CAKeyFile,
		AsideCert: OldCACertFile, AsideKey: OldCAKeyFile,
		OldAside: true,
		CertMode: CertMode, KeyMode: KeyMode,
		Changes: engine.RotationChanges{Begin: "rotate-ca", Switch: "rotate-switch", Finish: "rotate-finish"},
	}
}

// RotationStep derives the step from the files (see the top of this file).
func (a *Authority) RotationStep() RotationStep {
	if !a.InRotation() {
		return NotRotating
	}
	ca, _ := readCertFile(a.path(CACertFile))
	srv, _ := a.serverCert()
	if ca != nil && srv != nil && srv.CheckSignatureFrom(ca) == nil {
		return StepSwitched
	}
	return StepTrust
}

// serverCA is the CA that signs server certificates (this daemon's and
// issue-server's): the old one at step 1 of a rotation, so that every
// bundle, even one that trusts only the old CA, keeps verifying every
// daemon; the current one otherwise.
func (a *Authority) serverCA() (*pki.CA, error) {
	if a.RotationStep() == StepTrust {
		return a.OldCA()
	}
	return a.CA()
}

func readCertFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := pki.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return c, nil
}

// serverCert is the daemon's server certificate, and its path.
func (a *Authority) serverCert() (*x509.Certificate, string) {
	srv, err := a.Server()
	if err != nil {
		return nil, ""
	}
	p := filepath.Join(srv.CertsDir, ServerCertFile)
	c, _ := readCertFile(p)
	return c, p
}

// RotateRequest asks for a new CA.
type RotateRequest struct {
	// KeyType of the new CA; "" keeps the current CA's.
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
	// Server is the daemon's server certificate, of the old CA, kept.
	Server     *x509.Certificate
	ServerPath string
	// BundlesUpdated of BundlesTotal good client bundles of the old CA,
	// those still at their recorded path, got ca.pem with both CAs.
	BundlesUpdated, BundlesTotal int
	// BundlesLeft are the bundle directories (client or server) left as
	// they were, with why: another account than root could change them,
	// and root writes nothing there (daemonconfig.CheckRootDir).
	BundlesLeft []string
	// Fleet are the other daemons (issue-server); the bundles still at
	// their recorded path got ca.pem with both CAs too.
	Fleet []FleetDaemon
}

// FleetDaemon is another daemon of the fleet: a good issue-server
// certificate, and what its bundle directory on this host holds.
type FleetDaemon struct {
	Record store.Record
	// OldCA is true when its certificate is from the CA being replaced
	// (or, after FinishRotation, the one just dropped).
	OldCA bool
	// Bundle is true when the bundle directory (Record.Path) still holds
	// that certificate, and TrustsNew when its ca.pem holds the current
	// CA: installed with 'dtls init --ca-from', the daemon accepts
	// clients of the new CA.
	Bundle, TrustsNew bool
}

// Rotate is step 1: it makes a new CA and keeps the old one (ca-old.pem,
// ca-old-key.pem) until FinishRotation. The daemon's ca.pem holds both,
// its server certificate is kept, and the client and issue-server bundles
// of the old CA still at their recorded path get ca.pem with both CAs.
// Everything, the CRL included, is one change.
func (a *Authority) Rotate(r RotateRequest) (*RotateResult, error) {
	if err := engine.CheckBegin(a.RotationStep()); err != nil {
		return nil, err
	}
	old, err := a.CA()
	if err != nil {
		return nil, err
	}
	srv, err := a.Server()
	if err != nil {
		return nil, hint(fmt.Errorf("no server recorded in %q: %w", a.Dir, err), "run 'dtls init' first")
	}
	ca, caRec, err := engine.NextCA(old, pki.CARequest{CommonName: r.CAName, KeyType: r.KeyType, Now: r.Now, Validity: r.Validity}, a.Dir)
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
	res := &RotateResult{CA: ca, CAPath: a.path(CACertFile), DaemonCA: filepath.Join(srv.CertsDir, CACertFile)}
	res.Server, res.ServerPath = a.serverCert()
	oldSerial := pki.Serial(old.Cert)
	// The engine copies the old CA aside and writes the new one in its
	// place; the daemon's ca.pem, the bundles and the CRLs are this
	// host's part of the same change.
	err = engine.BeginRotation(a.journal(), a.rotationFiles(), engine.RotationBegin{Cur: old, Next: ca, NextKey: newKey, Began: r.Now},
		engine.RotationChange{
			DB: store.Change{Insert: []store.Record{caRec}, Supersede: []string{oldSerial}},
			Files: func(t *txn) error {
				t.Write(res.DaemonCA, both, CertMode)
				if err := a.rotateBundles(t, res, both, oldSerial); err != nil {
					return err
				}
				// The CRLs: the new CA's (empty) and the old one's.
				_, err := a.addCRL(t, []*pki.CA{ca, old}, nil, r.Now)
				return err
			},
		})
	if err != nil {
		return nil, err
	}
	a.ca = nil
	if res.Fleet, err = a.fleet(ca.Cert, oldSerial); err != nil {
		return nil, err
	}
	return res, nil
}

// rotateBundles adds to t the ca.pem of both CAs (both) to the bundles
// still where they were written: clients verify the daemon after
// --switch, fleet daemons accept clients of the new CA once they install
// it.
func (a *Authority) rotateBundles(t *txn, res *RotateResult, both []byte, oldSerial string) error {
	recs, err := a.Store.ByStatus(store.StatusGood)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		// Only bundles of the CA being replaced: one of an older CA
		// (before an init --force) keeps the ca.pem that verifies its own
		// chain.
		if rec.Path == "" || rec.CASerial != oldSerial || rec.Path == res.ServerPath {
			continue
		}
		var certFile string
		switch rec.Kind {
		case store.KindClient:
			certFile = ClientCertFile
			res.BundlesTotal++
		case store.KindServer:
			certFile = ServerCertFile
		default:
			continue
		}
		// A bundle written into its holder's directory is theirs: the
		// cert.pem there is public, and they could swap the directory
		// for a link to any other after this check and have root write
		// ca.pem there (found by a red team), or hold root's read of a
		// FIFO while they do (a second round). Judged before anything
		// there is read.
		if _, err := os.Lstat(rec.Path); err != nil {
			continue
		}
		if err := daemonconfig.CheckRootDir(rec.Path); err != nil {
			res.BundlesLeft = append(res.BundlesLeft, err.Error())
			continue
		}
		if cur, err := os.ReadFile(filepath.Join(rec.Path, certFile)); err == nil && bytes.Equal(cur, []byte(rec.PEM)) {
			t.Write(filepath.Join(rec.Path, CACertFile), both, CertMode)
			if rec.Kind == store.KindClient {
				res.BundlesUpdated++
			}
		}
	}
	return nil
}

// fleet lists the other daemons: good server certificates recorded with a
// bundle directory, which is not this daemon's certificate.
func (a *Authority) fleet(current *x509.Certificate, oldSerial string) ([]FleetDaemon, error) {
	servers, err := a.Store.ByKind(store.KindServer)
	if err != nil {
		return nil, err
	}
	_, local := a.serverCert()
	var out []FleetDaemon
	for _, rec := range servers {
		if rec.Status != store.StatusGood || rec.Path == "" || rec.Path == local {
			continue
		}
		f := FleetDaemon{Record: rec, OldCA: oldSerial != "" && rec.CASerial == oldSerial}
		if cur, err := os.ReadFile(filepath.Join(rec.Path, ServerCertFile)); err == nil && bytes.Equal(cur, []byte(rec.PEM)) {
			f.Bundle = true
		}
		if b, err := os.ReadFile(filepath.Join(rec.Path, CACertFile)); err == nil && current != nil {
			if roots, err := pki.ParseCertificates(b); err == nil {
				for _, c := range roots {
					f.TrustsNew = f.TrustsNew || c.Equal(current)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// oldCASerial is the serial of ca-old.pem, or "".
func (a *Authority) oldCASerial() string { return currentSerial(a.path(OldCACertFile)) }

// oldOnlyClients are the good, unexpired client certificates of the old
// CA. Every one was issued before step 1 (from then on clients are signed
// by the new CA), so its bundle, wherever it was copied, trusts only the
// old CA: it cannot verify a server certificate of the new CA. The rule is
// the engine's (engine.SwitchBlocking), which the online CA's switch
// follows too.
func (a *Authority) oldOnlyClients(oldSerial string, now time.Time) ([]store.Record, error) {
	return engine.SwitchBlocking(a.Store, oldSerial, time.Time{}, now)
}

// oldCertificates are the good, unexpired certificates of the old CA,
// clients and servers: what still depends on it (engine.OldCertificates).
func (a *Authority) oldCertificates(oldSerial string, now time.Time) ([]store.Record, error) {
	return engine.OldCertificates(a.Store, oldSerial, "", now)
}

// SwitchResult is what SwitchServer did.
type SwitchResult struct {
	// Server is the daemon's new server certificate, of the new CA.
	Server   *Issued
	DaemonCA string
	// Cut are the clients whose bundles trust only the old CA (with
	// force): they no longer verify the daemon.
	Cut []store.Record
	// Fleet are the other daemons; those of the old CA are renewed next.
	Fleet []FleetDaemon
}

// SwitchBlockingError lists the clients whose bundles trust only the old
// CA (engine.OldOnlyClients).
type SwitchBlockingError = engine.SwitchBlockingError

// SwitchServer is step 2: the daemon's server certificate is issued from
// the new CA (same name, hosts and key type), in one change. It refuses
// while a good client certificate of the old CA remains (its bundle trusts
// only the old CA), unless force.
func (a *Authority) SwitchServer(force bool, now time.Time) (*SwitchResult, error) {
	if err := engine.CheckSwitch(a.RotationStep(), ErrAlreadySwitched); err != nil {
		return nil, err
	}
	srv, err := a.Server()
	if err != nil {
		return nil, hint(fmt.Errorf("no server recorded in %q: %w", a.Dir, err), "run 'dtls init' first")
	}
	oldSerial := a.oldCASerial()
	blocking, err := a.oldOnlyClients(oldSerial, now)
	if err != nil {
		return nil, err
	}
	if len(blocking) > 0 && !force {
		return nil, hint(&SwitchBlockingError{Left: blocking},
			"give each a renewed bundle ('dtls renew NAME --archive FILE', then 'dtls import FILE' on their machine), or pass --force to switch anyway")
	}
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	cur, certPath := a.serverCert()
	if cur == nil {
		return nil, hint(fmt.Errorf("read server certificate %q: missing or unreadable", certPath), "run 'dtls init' to issue one")
	}
	s, rec, err := engine.Issue(ca, pki.Request{Kind: pki.KindServer, CommonName: cur.Subject.CommonName, Hosts: pki.Hosts(cur), KeyType: pki.KeyTypeOf(cur), Now: now}, certPath)
	if err != nil {
		return nil, err
	}
	res := &SwitchResult{
		Server: &Issued{
			Record:     rec,
			Path:       certPath,
			Supersedes: pki.Serial(cur),
		},
		DaemonCA: filepath.Join(srv.CertsDir, CACertFile),
	}
	if force {
		res.Cut = blocking
	}
	// The step is the daemon's server certificate: this host's part of
	// the engine's switch.
	err = engine.SwitchRotation(a.journal(), a.rotationFiles(), engine.RotationChange{Files: func(t *txn) error {
		// Step 1 made the daemon's ca.pem trust both CAs; a copy that
		// lost one is put right in the same change.
		if b, err := os.ReadFile(res.DaemonCA); err != nil || !bytes.Equal(b, a.DaemonCAPEM(ca)) {
			t.Write(res.DaemonCA, a.DaemonCAPEM(ca), CertMode)
		}
		t.Write(filepath.Join(srv.CertsDir, ServerKeyFile), s.KeyPEM, KeyMode)
		t.Write(certPath, s.CertPEM, CertMode)
		addRecords(t, []*Issued{res.Server})
		return nil
	}})
	if err != nil {
		return nil, err
	}
	if res.Fleet, err = a.fleet(ca.Cert, oldSerial); err != nil {
		return nil, err
	}
	return res, nil
}

// FinishResult is what FinishRotation did.
type FinishResult struct {
	OldSerial string
	DaemonCA  string
	// Cut are the certificates of the old CA still good and unexpired,
	// now superseded (with force).
	Cut []store.Record
	// Fleet are the other daemons: each still trusts the old CA until it
	// installs a bundle renewed from now on.
	Fleet []FleetDaemon
}

// BlockingError lists the certificates that still chain to the old CA.
type BlockingError = engine.BlockingError

// FinishRotation is step 3: it drops the old CA. The daemon's ca.pem holds
// only the new one, certificates of the old CA are marked superseded,
// ca-old.pem and ca-old-key.pem are removed and the CRL rewritten, in one
// change. It refuses before SwitchServer (the daemon's own certificate is
// of the old CA), and while good certificates of the old CA remain, unless
// force.
func (a *Authority) FinishRotation(force bool, now time.Time) (*FinishResult, error) {
	if err := engine.CheckFinish(a.RotationStep(), ErrNotSwitched); err != nil {
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
	res := &FinishResult{OldSerial: a.oldCASerial(), DaemonCA: filepath.Join(srv.CertsDir, CACertFile)}
	if res.Cut, err = a.oldCertificates(res.OldSerial, now); err != nil {
		return nil, err
	}
	if len(res.Cut) > 0 && !force {
		return nil, hint(&BlockingError{Left: res.Cut},
			"renew them ('dtls renew NAME', 'dtls renew --expiring 10000d'), or pass --force to cut them off")
	}
	var db store.Change
	for _, r := range res.Cut {
		db.Supersede = append(db.Supersede, r.Serial)
	}
	if res.Fleet, err = a.fleet(ca.Cert, res.OldSerial); err != nil {
		return nil, err
	}
	// The engine removes the old CA's files; the daemon's ca.pem and
	// the CRL are this host's part of the same change.
	err = engine.FinishRotation(a.journal(), a.rotationFiles(), engine.RotationChange{DB: db, Files: func(t *txn) error {
		t.Write(res.DaemonCA, ca.CertPEM, CertMode)
		_, err := a.addCRL(t, []*pki.CA{ca}, nil, now)
		return err
	}})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// RotationStatus is where a rotation is and what holds it up.
type RotationStatus struct {
	Step RotationStep
	// CA is the current CA; OldCA the one being replaced (nil outside a
	// rotation).
	CA, OldCA *x509.Certificate
	// Server is the daemon's server certificate (nil when unreadable).
	Server     *x509.Certificate
	ServerPath string
	// Blocking hold up the next step: at step 1 the clients whose
	// bundles trust only the old CA (--switch), at step 2 every good
	// certificate of the old CA (--finish).
	Blocking []store.Record
	// Fleet are the other daemons (issue-server), during a rotation.
	Fleet []FleetDaemon
}

// RotationStatus reads where a rotation is; it needs no CA key.
func (a *Authority) RotationStatus(now time.Time) (*RotationStatus, error) {
	st := &RotationStatus{Step: a.RotationStep()}
	var err error
	if st.CA, err = readCertFile(a.path(CACertFile)); err != nil {
		return nil, hint(fmt.Errorf("no CA in %q: %w", a.Dir, err), "run 'sudo dtls init' first")
	}
	st.Server, st.ServerPath = a.serverCert()
	if st.Step == NotRotating {
		return st, nil
	}
	if st.OldCA, err = readCertFile(a.path(OldCACertFile)); err != nil {
		return nil, err
	}
	oldSerial := pki.Serial(st.OldCA)
	if st.Step == StepTrust {
		st.Blocking, err = a.oldOnlyClients(oldSerial, now)
	} else {
		st.Blocking, err = a.oldCertificates(oldSerial, now)
	}
	if err != nil {
		return nil, err
	}
	if st.Fleet, err = a.fleet(st.CA, oldSerial); err != nil {
		return nil, err
	}
	return st, nil
}
