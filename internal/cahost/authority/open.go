package authority

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// Passphraser supplies the CA key's passphrase: from a terminal, a file, an
// environment variable. Confirm asks for it twice (a new passphrase).
type Passphraser interface {
	Passphrase(confirm bool) ([]byte, error)
}

// Options for Open and Create.
type Options struct {
	// Passphrase is asked when a CA key is encrypted, or is to be; nil
	// makes an encrypted key an error.
	Passphrase Passphraser
	// LockTimeout bounds the wait for another run's lock
	// (DefaultLockTimeout when zero).
	LockTimeout time.Duration
	// OnLockWait is called once when the wait for the lock lasts.
	OnLockWait engine.LockWait
}

// Authority is an open state directory: its lock is held and its inventory
// open until Close.
type Authority struct {
	// Dir is the state directory.
	Dir   string
	Store *store.Store
	// Recovered lists what Open finished or undid of killed runs.
	Recovered []Recovery

	opts Options
	lock *engine.Lock
	pass []byte
	ca   *pki.CA
	// jr is the journal of the state directory's changes.
	jr *engine.Journal
}

// Open locks the state directory, opens the inventory (importing an install
// made before the inventory existed), and removes the temporary files a
// killed run left and finishes or undoes what it left in the journal
// (engine.Recover).
func Open(dir string, o Options) (*Authority, error) {
	if err := checkNotOnlineCA(dir); err != nil {
		return nil, err
	}
	if err := engine.CheckStateDir(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, hint(err, "run 'sudo dtls init' first, or point --state-dir at the directory it used")
		}
		return nil, err
	}
	l, err := engine.AcquireLock(dir, o.LockTimeout, o.OnLockWait)
	var busy *engine.LockBusyError
	if errors.As(err, &busy) {
		return nil, hint(err, "let that run finish (it may be waiting for a passphrase), or set DTLS_LOCK_TIMEOUT to wait longer")
	} else if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dir, DBFile))
	if err != nil {
		l.Release()
		return nil, hint(err, "restore %s from a backup; moved aside, it is replaced by a new inventory holding only the CA and the copies in %s/",
			filepath.Join(dir, DBFile), filepath.Join(dir, IssuedDir))
	}
	a := &Authority{Dir: dir, Store: st, opts: o, lock: l}
	// A new inventory first gets what the state directory held before it
	// existed: a change journaled since is recorded on top of that.
	if st.Created {
		if err := a.importExisting(); err != nil {
			a.Close()
			return nil, err
		}
	}
	if a.Recovered, err = engine.Recover(dir, st); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// OnlineCAConfigFile marks the state directory of an online CA ('dtls ca
// init': package caserver/cahost, ConfigFile). Its certificates are in
// the CA's own inventory (dtls-ca.db or PostgreSQL), which the CA's
// revocation list is made from. OnlineCAOperatorDir is where 'dtls ca
// init' writes the first operator's bundle (cahost.OperatorDir).
const (
	OnlineCAConfigFile  = engine.OnlineCAConfigFile
	OnlineCAOperatorDir = engine.OnlineCAOperatorDir
)

// ErrOnlineCA is returned by Open for an online CA's state directory.
var ErrOnlineCA = errors.New("is an online CA's state directory")

// checkNotOnlineCA refuses an online CA's state directory before anything
// is written to it: opened as a local CA it would get a second, empty
// inventory (dtls.db) and certificates signed with the fleet CA's key that
// the CA's revocation list never holds, so that they could not be
// revoked.
func checkNotOnlineCA(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, OnlineCAConfigFile)); err != nil {
		return nil
	}
	op := filepath.Join(dir, OnlineCAOperatorDir)
	return hint(fmt.Errorf("%q %w (it has %s): local commands would give it a second inventory the CA does not know", dir, ErrOnlineCA, OnlineCAConfigFile),
		"use dtls certs|revoke|rotate-ca --operator %s (the CA's operator bundle); issue certificates with 'dtls ca token'", op)
}

// create makes the state directory when it is missing
// (engine.MakeStateDir), then opens it. It also returns the topmost
// directory it made ("" when dir existed), for a first init that fails to
// remove again.
func create(dir string, o Options) (*Authority, string, error) {
	top, err := engine.MakeStateDir(dir)
	if err != nil {
		return nil, "", err
	}
	a, err := Open(dir, o)
	if err != nil && top != "" {
		os.RemoveAll(top)
	}
	return a, top, err
}

// Close releases the inventory and the lock.
func (a *Authority) Close() {
	if a.Store != nil {
		a.Store.Close()
		a.Store = nil
	}
	a.lock.Release()
}

// Server reads the daemon recorded by init.
func (a *Authority) Server() (*Server, error) { return ReadServer(a.Dir) }

func (a *Authority) path(name string) string { return filepath.Join(a.Dir, name) }

// InRotation reports whether a CA rotation is in progress.
func (a *Authority) InRotation() bool {
	_, err := os.Lstat(a.path(OldCACertFile))
	return err == nil
}

// importExisting records what an install from before the inventory holds:
// the CA (STATE_DIR/ca.pem) and the copies in STATE_DIR/issued/SERIAL.pem.
// Of several certificates of one kind and name, the newest is good and the
// others are superseded.
func (a *Authority) importExisting() error {
	var recs []store.Record
	var ca *pki.CA
	caSerial := ""
	if b, err := os.ReadFile(a.path(CACertFile)); err == nil {
		if c, err := pki.ParseCertificate(b); err == nil {
			caSerial = pki.Serial(c)
			ca = &pki.CA{Cert: c}
			recs = append(recs, store.FromCert(c, b, store.KindCA, caSerial, a.Dir))
		}
	}
	srv, _ := a.Server()
	paths, _ := filepath.Glob(filepath.Join(a.Dir, IssuedDir, "*.pem"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("import %q: %w", p, err)
		}
		c, err := pki.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("import %q: %w", p, err)
		}
		kind := store.KindOf(c)
		path := ""
		if kind == store.KindServer && srv != nil {
			path = filepath.Join(srv.CertsDir, ServerCertFile)
		}
		r := store.FromCert(c, b, kind, caSerial, path)
		if ca != nil && c.CheckSignatureFrom(ca.Cert) != nil {
			r.CASerial = ""
		}
		recs = append(recs, r)
	}
	newest := map[string]int{}
	for i, r := range recs {
		k := string(r.Kind) + "/" + r.Name
		if j, ok := newest[k]; !ok || r.NotBefore.After(recs[j].NotBefore) {
			newest[k] = i
		}
	}
	for i := range recs {
		if newest[string(recs[i].Kind)+"/"+recs[i].Name] != i {
			recs[i].Status = store.StatusSuperseded
		}
	}
	return a.Store.Apply(store.Change{Insert: recs})
}

// DefaultLockTimeout is how long a command waits for another run that
// holds the state directory's lock (engine.AcquireLock).
const DefaultLockTimeout = engine.DefaultLockTimeout
