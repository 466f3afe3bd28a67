package engine

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// The files of a rotation's steps, both faces'. Each step is one change
// of the journal (journal.go): its files, the face's own files and the
// inventory change, all or nothing, so that a kill at any instant leaves
// the step before or the step after:
//
//   - begin: the next CA's key and certificate are written, beside the
//     current CA or in its place (RotationFiles.OldAside), and the step
//     recorded;
//   - switch: the step recorded;
//   - finish: the next CA takes the CA's names when it waited aside, the
//     files kept aside are removed, and so is the step's record.
//
// The two state directories name these files differently, and existing
// installations keep their names: RotationFiles says which.

// RotationFiles names a state directory's files of a rotation.
type RotationFiles struct {
	Dir string
	// CACert and CAKey are the CA that signs clients.
	CACert, CAKey string
	// AsideCert and AsideKey hold the other CA during a rotation, and
	// exist only then.
	AsideCert, AsideKey string
	// OldAside: the next CA takes CACert and CAKey at the begin, and the
	// old one is copied aside until the finish drops it (the CA host:
	// clients are signed by the next CA from step 1). Otherwise the next
	// CA waits aside and takes CACert and CAKey at the finish (the online
	// CA: the current CA signs until the switch, and serves its listener
	// until the finish).
	OldAside bool
	// StepFile, when not "", records the step and when the trust step
	// began (RotationRecord); "" when the face reads the step from other
	// files (the CA host: the daemon's server certificate).
	StepFile string
	// Modes of the certificates, the CA keys and StepFile.
	CertMode, KeyMode, StepMode fs.FileMode
	// Changes are the journal's names of the steps' changes (fail
	// points and crash tests know them by these).
	Changes RotationChanges
}

// RotationChanges names the changes of a rotation's steps.
type RotationChanges struct{ Begin, Switch, Finish string }

func (f RotationFiles) path(name string) string { return filepath.Join(f.Dir, name) }

// RotationRecord is a StepFile.
type RotationRecord struct {
	Step string `json:"step"`
	// TrustBegan is when the trust step began: the switch counts the
	// clients issued before it (OldOnlyClients). Absent from a file
	// written before it was kept.
	TrustBegan time.Time `json:"trust_began,omitzero"`
}

// ReadStep reads StepFile.
func (f RotationFiles) ReadStep() (RotationRecord, error) {
	var rec RotationRecord
	p := f.path(f.StepFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("read %q: %w", p, err)
	}
	return rec, nil
}

// writeStep adds the write of StepFile, when there is one, to t.
func (f RotationFiles) writeStep(t *Txn, step string, began time.Time) error {
	if f.StepFile == "" {
		return nil
	}
	b, err := json.Marshal(RotationRecord{Step: step, TrustBegan: began.UTC()})
	if err != nil {
		return err
	}
	t.Write(f.path(f.StepFile), append(b, '\n'), f.StepMode)
	return nil
}

// A RotationChange is a face's own part of a step, made in the same
// change as the step's files: the inventory change, and Files adds the
// face's other files (the CA host's daemon ca.pem, bundles and CRL, the
// online CA's listener) to t.
type RotationChange struct {
	DB    store.Change
	Files func(t *Txn) error
}

// commit adds c to t and runs t through j.
func (c RotationChange) commit(j *Journal, t *Txn) error {
	if err := c.add(t); err != nil {
		return err
	}
	return j.Commit(t)
}

func (c RotationChange) add(t *Txn) error {
	t.DB = c.DB
	if c.Files == nil {
		return nil
	}
	return c.Files(t)
}

// RotationBegin is what step 1 writes.
type RotationBegin struct {
	// Cur is the current CA, its KeyPEM as it is on disk (encrypted or
	// not): with OldAside, it is copied aside as it is.
	Cur  *pki.CA
	Next *pki.CA
	// NextKey is the next CA's key as it is written (the CA host
	// encrypts it when its CA key is); nil writes Next.KeyPEM.
	NextKey []byte
	// Began is when the trust step began (StepFile).
	Began time.Time
}

// BeginRotation is step 1 (trust): the next CA's files, the step and c,
// in one change through j.
func BeginRotation(j *Journal, f RotationFiles, b RotationBegin, c RotationChange) error {
	key := b.NextKey
	if key == nil {
		key = b.Next.KeyPEM
	}
	t := NewTxn(f.Changes.Begin)
	if f.OldAside {
		t.Write(f.path(f.AsideKey), b.Cur.KeyPEM, f.KeyMode)
		t.Write(f.path(f.AsideCert), b.Cur.CertPEM, f.CertMode)
		t.Write(f.path(f.CAKey), key, f.KeyMode)
		t.Write(f.path(f.CACert), b.Next.CertPEM, f.CertMode)
	} else {
		t.Write(f.path(f.AsideKey), key, f.KeyMode)
		t.Write(f.path(f.AsideCert), b.Next.CertPEM, f.CertMode)
	}
	if err := f.writeStep(t, fleet.RotateTrust, b.Began); err != nil {
		return err
	}
	return c.commit(j, t)
}

// SwitchRotation is step 2 (switch): the step, kept with the time the
// trust step began, and c, in one change through j.
func SwitchRotation(j *Journal, f RotationFiles, c RotationChange) error {
	t := NewTxn(f.Changes.Switch)
	if f.StepFile != "" {
		rec, err := f.ReadStep()
		if err != nil {
			return err
		}
		if err := f.writeStep(t, fleet.RotateSwitch, rec.TrustBegan); err != nil {
			return err
		}
	}
	return c.commit(j, t)
}

// FinishRotation is step 3: the next CA is the only one (FinishChange),
// in one change through j.
func FinishRotation(j *Journal, f RotationFiles, c RotationChange) error {
	t, err := FinishChange(f, c)
	if err != nil {
		return err
	}
	return j.Commit(t)
}

// FinishChange is the change of a finish: the next CA in the CA's files
// when it waited aside, the files kept aside and StepFile removed, and c.
func FinishChange(f RotationFiles, c RotationChange) (*Txn, error) {
	t := NewTxn(f.Changes.Finish)
	if !f.OldAside {
		cert, err := os.ReadFile(f.path(f.AsideCert))
		if err != nil {
			return nil, err
		}
		key, err := os.ReadFile(f.path(f.AsideKey))
		if err != nil {
			return nil, err
		}
		t.Write(f.path(f.CAKey), key, f.KeyMode)
		t.Write(f.path(f.CACert), cert, f.CertMode)
	}
	t.Remove(f.path(f.AsideKey))
	t.Remove(f.path(f.AsideCert))
	if f.StepFile != "" {
		t.Remove(f.path(f.StepFile))
	}
	if err := c.add(t); err != nil {
		return nil, err
	}
	return t, nil
}
