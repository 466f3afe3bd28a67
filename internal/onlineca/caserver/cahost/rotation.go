package cahost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Files of a rotation of the CA (`dtls rotate-ca --ca-url`), in the state
// directory while one is in progress.
//
// The order of the writes makes a kill at any instant recoverable, and
// OpenHost recovers:
//
//   - trust: NextCAKeyFile, then NextCACertFile, then RotationFile (step
//     "trust") is the commit point. Next CA files without RotationFile are
//     a trust that was never answered: OpenHost removes them (the next
//     trust makes a new CA).
//   - switch: RotationFile is rewritten (step "switch").
//   - finish: the new listener certificate and key (NextTLSCertFile,
//     NextTLSKeyFile), then RotationFile step "finishing" is the commit
//     point, the journal; then ca.pem, ca-key.pem, tls-cert.pem and
//     tls-key.pem are rewritten from the next files, the next files
//     removed, and RotationFile last. OpenHost finds "finishing" and does
//     the rest again (each write is atomic and the same). Before
//     "finishing", next listener files are removed.
//
// The old CA is not kept: its key signs nothing any more, and its
// certificate is in the inventory.
const (
	RotationFile    = "rotation.json"
	NextCACertFile  = "ca-next.pem"
	NextCAKeyFile   = "ca-next-key.pem"
	NextTLSCertFile = "tls-next-cert.pem"
	NextTLSKeyFile  = "tls-next-key.pem"

	// stepFinishing is RotationFile's journal of a finish.
	stepFinishing = "finishing"
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
type rotation struct{ dir string }

func (r rotation) path(name string) string { return filepath.Join(r.dir, name) }

func (r rotation) writeStep(step string, began time.Time) error {
	b, err := json.Marshal(rotationRecord{Step: step, TrustBegan: began})
	if err != nil {
		return err
	}
	return atomicfile.Write(r.path(RotationFile), append(b, '\n'), ConfigMode)
}

// BeginRotation implements caserver.RotationStore.
func (r rotation) BeginRotation(next *pki.CA, began time.Time) error {
	if err := atomicfile.Write(r.path(NextCAKeyFile), next.KeyPEM, CAKeyMode); err != nil {
		return err
	}
	if err := atomicfile.Write(r.path(NextCACertFile), next.CertPEM, CertMode); err != nil {
		return err
	}
	return r.writeStep(fleet.RotateTrust, began.UTC())
}

// SwitchRotation implements caserver.RotationStore. The time the trust
// step began is kept.
func (r rotation) SwitchRotation() error {
	rec, err := r.read()
	if err != nil {
		return err
	}
	return r.writeStep(fleet.RotateSwitch, rec.TrustBegan)
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
	if err := atomicfile.Write(r.path(NextTLSKeyFile), keyPEM, KeyMode); err != nil {
		return err
	}
	if err := atomicfile.Write(r.path(NextTLSCertFile), certPEM, CertMode); err != nil {
		return err
	}
	if err := r.writeStep(stepFinishing, time.Time{}); err != nil {
		return err
	}
	return r.rollForward()
}

// rollForward does the rest of a finish whose journal is written.
func (r rotation) rollForward() error {
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
			// Moved by a finish killed after this file's removal:
			// every copy was made before the first removal.
			continue
		} else if err != nil {
			return err
		}
		if err := atomicfile.Write(r.path(f.to), b, f.mode); err != nil {
			return err
		}
	}
	if err := removeAll(r.path(NextCACertFile), r.path(NextCAKeyFile), r.path(NextTLSCertFile), r.path(NextTLSKeyFile)); err != nil {
		return err
	}
	return removeAll(r.path(RotationFile))
}

func removeAll(paths ...string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %q: %w", p, err)
		}
	}
	if len(paths) > 0 {
		return atomicfile.SyncDir(filepath.Dir(paths[0]))
	}
	return nil
}

// recoverRotation brings the state directory to a committed step after a
// kill (see RotationFile), and returns the step ("" outside a rotation),
// the next CA and when the trust step began.
func recoverRotation(dir string) (string, *pki.CA, time.Time, error) {
	step, next, rec, err := recoverRotationRecord(dir)
	return step, next, rec.TrustBegan, err
}

func recoverRotationRecord(dir string) (string, *pki.CA, rotationRecord, error) {
	r := rotation{dir}
	rec, err := r.read()
	if errors.Is(err, fs.ErrNotExist) {
		// A trust that was never committed: nothing signed by this
		// CA, nothing told to trust it.
		return "", nil, rec, removeAll(r.path(NextCACertFile), r.path(NextCAKeyFile), r.path(NextTLSCertFile), r.path(NextTLSKeyFile))
	} else if err != nil {
		return "", nil, rec, err
	}
	switch rec.Step {
	case stepFinishing:
		return "", nil, rec, r.rollForward()
	case fleet.RotateTrust, fleet.RotateSwitch:
	default:
		return "", nil, rec, fmt.Errorf("read %q: unknown step %q", r.path(RotationFile), rec.Step)
	}
	// A finish killed before its journal: it is done again.
	if err := removeAll(r.path(NextTLSCertFile), r.path(NextTLSKeyFile)); err != nil {
		return "", nil, rec, err
	}
	certPEM, err := os.ReadFile(r.path(NextCACertFile))
	if err != nil {
		return "", nil, rec, fmt.Errorf("CA rotation at step %s: %w", rec.Step, err)
	}
	keyPEM, err := os.ReadFile(r.path(NextCAKeyFile))
	if err != nil {
		return "", nil, rec, fmt.Errorf("CA rotation at step %s: %w", rec.Step, err)
	}
	next, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return "", nil, rec, fmt.Errorf("next CA in %q: %w", dir, err)
	}
	return rec.Step, next, rec, nil
}
