package cahost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Files of a rotation of the CA (`dtls rotate-ca --ca-url`), in the state
// directory while one is in progress.
//
// Each step is the engine's (engine.BeginRotation, SwitchRotation,
// FinishRotation): one journaled change (engine.Journal, in
// STATE_DIR/journal, the CA host's journal too) of the files below and
// the step's inventory change, so a kill at any instant leaves the step
// before or the step after, and OpenHost finishes a step whose journal is
// written:
//
//   - trust: NextCAKeyFile, NextCACertFile and RotationFile (step
//     "trust"), and the next CA's inventory record.
//   - switch: RotationFile (step "switch").
//   - finish: ca.pem and ca-key.pem from the next CA, tls-cert.pem and
//     tls-key.pem the new listener certificate (the online CA's own part);
//     the next CA's files and RotationFile removed.
//
// The old CA is not kept: its key signs nothing any more, and its
// certificate is in the inventory.
const (
	RotationFile   = "rotation.json"
	NextCACertFile = "ca-next.pem"
	NextCAKeyFile  = "ca-next-key.pem"
	// JournalDir holds the journal of a step in progress.
	JournalDir = engine.JournalDir
	// NextTLSCertFile and NextTLSKeyFile were the listener's next files
	// of a finish before the steps were journaled: moved into place by
	// such a finish left interrupted (legacyFinish), removed otherwise.
	NextTLSCertFile = "tls-next-cert.pem"
	NextTLSKeyFile  = "tls-next-key.pem"
)

// rotation is the state directory as a caserver.RotationStore.
type rotation struct {
	dir string
	inv engine.Inventory
}

// files are the state directory's files of a rotation, for the engine:
// the next CA waits aside until the finish.
func (r rotation) files() engine.RotationFiles {
	return engine.RotationFiles{
		Dir:    r.dir,
		CACert: CACertFile, CAKey: CAKeyFile,
		AsideCert: NextCACertFile, AsideKey: NextCAKeyFile,
		StepFile: RotationFile,
		CertMode: CertMode, KeyMode: CAKeyMode, StepMode: ConfigMode,
		Changes: engine.RotationChanges{Begin: "ca-rotate-trust", Switch: "ca-rotate-switch", Finish: "ca-rotate-finish"},
	}
}

func (r rotation) path(name string) string { return filepath.Join(r.dir, name) }

func (r rotation) journal() *engine.Journal {
	return engine.StateJournal(r.dir, r.inv)
}

// locked runs a step's change under the state directory's lock, which
// OpenHost's recovery takes too: a 'dtls ca token' run opening the state
// directory while the server makes a step waits for it, rather than
// removing its temporary files or replaying its journal half written.
func (r rotation) locked(change func() error) error {
	l, err := engine.AcquireLock(r.dir, 0, nil)
	if err != nil {
		return err
	}
	defer l.Release()
	return change()
}

// BeginRotation implements caserver.RotationStore.
func (r rotation) BeginRotation(next *pki.CA, began time.Time, db store.Change) error {
	return r.locked(func() error {
		return engine.BeginRotation(r.journal(), r.files(), engine.RotationBegin{Next: next, Began: began}, engine.RotationChange{DB: db})
	})
}

// SwitchRotation implements caserver.RotationStore.
func (r rotation) SwitchRotation() error {
	return r.locked(func() error { return engine.SwitchRotation(r.journal(), r.files(), engine.RotationChange{}) })
}

// FinishRotation implements caserver.RotationStore.
func (r rotation) FinishRotation(certPEM, keyPEM []byte, db store.Change) error {
	return r.locked(func() error {
		t, err := r.finishChange(certPEM, keyPEM, db)
		if err != nil {
			return err
		}
		return r.journal().Commit(t)
	})
}

// finishChange is the change of a finish: the engine's, with the
// listener's certificate of the next CA.
func (r rotation) finishChange(certPEM, keyPEM []byte, db store.Change) (*engine.Txn, error) {
	return engine.FinishChange(r.files(), engine.RotationChange{DB: db, Files: func(t *engine.Txn) error {
		t.Write(r.path(TLSKeyFile), keyPEM, KeyMode)
		t.Write(r.path(TLSCertFile), certPEM, CertMode)
		return nil
	}})
}

// legacyFinishing is RotationFile's step of a finish journaled by a dtls
// from before the engine's journal: the next CA and listener files are
// all written, and are moved into place by legacyFinish.
const legacyFinishing = "finishing"

// legacyFinish finishes such a finish as one journaled change: each next
// file still there is written into place (the old roll-forward removed
// them only once every copy was made), then the rotation's files are
// removed.
func (r rotation) legacyFinish() error {
	t := engine.NewTxn(r.files().Changes.Finish)
	for _, f := range []struct {
		from, to string
		mode     fs.FileMode
	}{
		{NextCAKeyFile, CAKeyFile, CAKeyMode},
		{NextCACertFile, CACertFile, CertMode},
		{NextTLSKeyFile, TLSKeyFile, KeyMode},
		{NextTLSCertFile, TLSCertFile, CertMode},
	} {
		b, err := os.ReadFile(r.path(f.from))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		t.Write(r.path(f.to), b, f.mode)
		t.Remove(r.path(f.from))
	}
	t.Remove(r.path(RotationFile))
	return r.journal().Commit(t)
}

func removeAll(paths ...string) error {
	for _, p := range paths {
		if err := engine.RemoveFile(p); err != nil {
			return err
		}
	}
	return nil
}

// recoverRotation finishes a step whose journal was written (see
// RotationFile; engine.Recover, which removes the temporary files a killed
// run left too), then what a dtls from before the journal left, and
// returns the step ("" outside a rotation), the next CA and when the trust
// step began.
func recoverRotation(dir string, inv engine.Inventory) (string, *pki.CA, time.Time, error) {
	r := rotation{dir, inv}
	if _, err := engine.Recover(dir, inv); err != nil {
		return "", nil, time.Time{}, err
	}
	rec, err := r.files().ReadStep()
	if err == nil && rec.Step == legacyFinishing {
		if err := r.legacyFinish(); err != nil {
			return "", nil, time.Time{}, err
		}
		rec, err = r.files().ReadStep()
	}
	// Left by a dtls from before the journal.
	if err := removeAll(r.path(NextTLSCertFile), r.path(NextTLSKeyFile)); err != nil {
		return "", nil, time.Time{}, err
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Next CA files without a step: nothing signed by that CA,
		// nothing told to trust it.
		return "", nil, time.Time{}, removeAll(r.path(NextCACertFile), r.path(NextCAKeyFile))
	} else if err != nil {
		return "", nil, time.Time{}, err
	}
	if rec.Step != fleet.RotateTrust && rec.Step != fleet.RotateSwitch {
		return "", nil, time.Time{}, fmt.Errorf("read %q: unknown step %q", r.path(RotationFile), rec.Step)
	}
	next, err := engine.LoadCA(dir, NextCACertFile, NextCAKeyFile, nil)
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("CA rotation at step %s: next CA: %w", rec.Step, err)
	}
	return rec.Step, next, rec.TrustBegan, nil
}
