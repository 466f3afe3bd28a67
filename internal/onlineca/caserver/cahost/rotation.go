package cahost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Files of a rotation of the CA (`dtls rotate-ca --ca-url`), in the state
// directory while one is in progress.
//
// Each step is one journaled change of the engine (engine.Journal, in
// STATE_DIR/journal, the CA host's journal too), so a kill at any instant
// leaves the step before or the step after, and OpenHost finishes a step
// whose journal is written:
//
//   - trust: NextCAKeyFile, NextCACertFile and RotationFile (step
//     "trust").
//   - switch: RotationFile (step "switch").
//   - finish: ca.pem, ca-key.pem, tls-cert.pem and tls-key.pem from the
//     next CA and the new listener certificate; the next CA's files and
//     RotationFile removed.
//
// The old CA is not kept: its key signs nothing any more, and its
// certificate is in the inventory.
const (
	RotationFile   = "rotation.json"
	NextCACertFile = "ca-next.pem"
	NextCAKeyFile  = "ca-next-key.pem"
	// JournalDir holds the journal of a step in progress.
	JournalDir = "journal"
	// NextTLSCertFile and NextTLSKeyFile were the listener's next files
	// of a finish before the steps were journaled: moved into place by
	// such a finish left interrupted (legacyFinish), removed otherwise.
	NextTLSCertFile = "tls-next-cert.pem"
	NextTLSKeyFile  = "tls-next-key.pem"
)

// rotationRecord is RotationFile.
type rotationRecord struct {
	Step string `json:"step"`
	// TrustBegan is when the trust step began: the switch counts the
	// clients issued before it (caserver.SwitchRotation). Absent from a
	// file written before it was kept.
	TrustBegan time.Time `json:"trust_began,omitzero"`
}

// rotation is the state directory as a caserver.RotationStore.
type rotation struct {
	dir string
	inv engine.Inventory
}

func (r rotation) path(name string) string { return filepath.Join(r.dir, name) }

func (r rotation) journal() *engine.Journal {
	return &engine.Journal{Dir: r.path(JournalDir), Inv: r.inv}
}

// writeStep adds the write of RotationFile to t.
func (r rotation) writeStep(t *engine.Txn, step string, began time.Time) error {
	b, err := json.Marshal(rotationRecord{Step: step, TrustBegan: began})
	if err != nil {
		return err
	}
	t.Write(r.path(RotationFile), append(b, '\n'), ConfigMode)
	return nil
}

// BeginRotation implements caserver.RotationStore.
func (r rotation) BeginRotation(next *pki.CA, began time.Time) error {
	t := engine.NewTxn("ca-rotate-trust")
	t.Write(r.path(NextCAKeyFile), next.KeyPEM, CAKeyMode)
	t.Write(r.path(NextCACertFile), next.CertPEM, CertMode)
	if err := r.writeStep(t, fleet.RotateTrust, began.UTC()); err != nil {
		return err
	}
	return r.journal().Commit(t)
}

// SwitchRotation implements caserver.RotationStore. The time the trust
// step began is kept.
func (r rotation) SwitchRotation() error {
	rec, err := r.read()
	if err != nil {
		return err
	}
	t := engine.NewTxn("ca-rotate-switch")
	if err := r.writeStep(t, fleet.RotateSwitch, rec.TrustBegan); err != nil {
		return err
	}
	return r.journal().Commit(t)
}

func (r rotation) read() (rotationRecord, error) {
	var rec rotationRecord
	b, err := os.ReadFile(r.path(RotationFile))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("read %q: %w", r.path(RotationFile), err)
	}
	return rec, nil
}

// FinishRotation implements caserver.RotationStore.
func (r rotation) FinishRotation(certPEM, keyPEM []byte) error {
	t, err := r.finishTxn(certPEM, keyPEM)
	if err != nil {
		return err
	}
	return r.journal().Commit(t)
}

// finishTxn is the change of a finish: the next CA and the listener's
// certificate of it in place, the rotation's files removed.
func (r rotation) finishTxn(certPEM, keyPEM []byte) (*engine.Txn, error) {
	nextCert, err := os.ReadFile(r.path(NextCACertFile))
	if err != nil {
		return nil, err
	}
	nextKey, err := os.ReadFile(r.path(NextCAKeyFile))
	if err != nil {
		return nil, err
	}
	t := engine.NewTxn("ca-rotate-finish")
	t.Write(r.path(CAKeyFile), nextKey, CAKeyMode)
	t.Write(r.path(CACertFile), nextCert, CertMode)
	t.Write(r.path(TLSKeyFile), keyPEM, KeyMode)
	t.Write(r.path(TLSCertFile), certPEM, CertMode)
	t.Remove(r.path(NextCACertFile))
	t.Remove(r.path(NextCAKeyFile))
	t.Remove(r.path(RotationFile))
	return t, nil
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
	t := engine.NewTxn("ca-rotate-finish")
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
// RotationFile), and returns the step ("" outside a rotation), the next
// CA and when the trust step began.
func recoverRotation(dir string, inv engine.Inventory) (string, *pki.CA, time.Time, error) {
	r := rotation{dir, inv}
	engine.CleanTemps(dir, r.path(JournalDir))
	if _, err := r.journal().Recover(); err != nil {
		return "", nil, time.Time{}, err
	}
	rec, err := r.read()
	if err == nil && rec.Step == legacyFinishing {
		if err := r.legacyFinish(); err != nil {
			return "", nil, time.Time{}, err
		}
		rec, err = r.read()
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
	certPEM, err := os.ReadFile(r.path(NextCACertFile))
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("CA rotation at step %s: %w", rec.Step, err)
	}
	keyPEM, err := os.ReadFile(r.path(NextCAKeyFile))
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("CA rotation at step %s: %w", rec.Step, err)
	}
	next, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("next CA in %q: %w", dir, err)
	}
	return rec.Step, next, rec.TrustBegan, nil
}
