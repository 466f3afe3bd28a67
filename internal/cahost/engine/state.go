package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// A CA's state directory, as both inits make it. `dtls init` (package
// authority) makes it in place, one journaled change (Journal.Commit),
// because it runs again on a state that exists and changes files outside
// it (the daemon's certificates, daemon.json, units). `dtls ca init`
// (package caserver/cahost) makes a new one, or replaces one whole, and
// builds it next to its place (NewState). Either way the face plans the
// state as one Txn, the CA's part by PlanCA; what the two share is here.

// The CA's files in a state directory, the same on both hosts, and the
// modes that are part of their security.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
	// CAKeyMode is the CA key's: whoever reads it can mint root access to
	// every daemon that trusts the CA (CIS Docker Benchmark 3.14 wants
	// 0400 for keys).
	CAKeyMode fs.FileMode = 0o400
	// StateDirMode is a state directory's: it holds the CA key.
	StateDirMode fs.FileMode = 0o700
)

// The online CA's state directory is told from a Docker host's by its
// configuration file: each face refuses to take the other's for its own
// (a Docker host's commands would give an online CA a second inventory;
// `dtls ca init --force` would replace a Docker host's CA).
const (
	OnlineCAConfigFile  = "ca.json"
	OnlineCAOperatorDir = "operator" // the first operator's bundle
)

// PlanCA adds ca to t as the CA of the state directory dir: its key
// (keyPEM: ca.KeyPEM, or that encrypted) CAKeyFile with CAKeyMode, its
// certificate CACertFile with certMode, and its inventory row.
func PlanCA(t *Txn, dir string, ca *pki.CA, keyPEM []byte, certMode fs.FileMode) {
	t.Write(filepath.Join(dir, CAKeyFile), keyPEM, CAKeyMode)
	t.Write(filepath.Join(dir, CACertFile), ca.CertPEM, certMode)
	t.DB.Insert = append(t.DB.Insert, CARecord(ca, dir))
}

// CheckStateDir refuses a state directory that someone else could read or
// write: it holds the CA key. It returns fs.ErrNotExist (wrapped) when the
// directory does not exist yet.
func CheckStateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state directory %q does not exist: %w", dir, err)
		}
		return fmt.Errorf("state directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %q is not a directory", dir)
	}
	if uid, _, ok := fileOwnerGroup(fi); ok && uid != os.Geteuid() {
		return hintf(fmt.Errorf("state directory %q is owned by uid %d, not by uid %d running dtls", dir, uid, os.Geteuid()),
			"run dtls as the directory's owner (sudo), or chown it")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return hintf(fmt.Errorf("state directory %q has mode %04o: others could read the CA key", dir, perm),
			"chmod 700 %s", dir)
	}
	// Lstat and the owner check pass for root even when the directory is
	// unreadable through an ACL or a read-only mount: try it.
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state directory %q: %w", dir, err)
	}
	f.Close()
	return nil
}

// MakeStateDir makes the state directory dir (StateDirMode) and its
// missing parents (0755) in place, when it is missing. It returns the
// topmost directory it made ("" when dir existed), which a first init
// that fails removes again; on an error it has removed it already. An
// existing directory's mode is never changed: CheckStateDir refuses a
// loose one.
func MakeStateDir(dir string) (top string, err error) {
	// Only what is not there: a path under a file is left to fail
	// CheckStateDir, with its message.
	if missing := missingDirs(dir, func(err error) bool { return errors.Is(err, fs.ErrNotExist) }); len(missing) > 0 {
		top = missing[len(missing)-1]
	}
	if top == "" {
		return "", nil
	}
	if err := MkdirMissing(dir, StateDirMode); err != nil {
		os.RemoveAll(top)
		return "", err
	}
	return top, nil
}

// missingDirs is dir and those of its parents that are missing (an
// error of Lstat's that missing accepts), dir first.
func missingDirs(dir string, missing func(error) bool) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !missing(err) || d == filepath.Dir(d) {
			break
		}
		out = append(out, d)
	}
	return out
}

// ErrStateExists is NewState's error for an existing state directory
// without Force.
var ErrStateExists = errors.New("state directory exists")

// NewState is a state directory made whole: built in a temporary directory
// next to Dir (atomicfile.TempPrefix, StateDirMode) and put in place by one
// rename, so that a kill at any instant leaves no Dir (or the old one) or
// a complete one, and a leftover temporary directory, which the next
// Begin removes. Begin checks the target and makes the temporary
// directory; Commit builds a Txn planned for Dir in it, records its
// inventory change and renames it into place; Abort removes what is left.
type NewState struct {
	Dir string
	// Force replaces an existing Dir, but only one that holds Marker:
	// never another directory given by mistake. Kind names what such a
	// directory is in the refusal ("an online CA's").
	Force        bool
	Marker, Kind string
	// Recorder names what records the state in the inventory when the
	// inventory's commit fails after the rename (see Commit).
	Recorder string
	// BeforeRename, when set, is called just before the rename (tests
	// make it fail).
	BeforeRename func(tmp, dir string)

	tmp    string
	placed bool
}

// Begin removes what a killed run left next to Dir, refuses an existing
// Dir without Force (ErrStateExists), or one without Marker with it, and
// makes the temporary directory.
func (s *NewState) Begin() error {
	parent := filepath.Dir(s.Dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create directory %q: %w", parent, err)
	}
	// Leftovers of a killed run, first: a state directory moved aside by
	// a replacement (ReplaceDir without an exchange) is put back, and
	// what may hold a key removed; never the live state.
	if err := atomicfile.RecoverDir(s.Dir); err != nil {
		return err
	}
	if _, err := os.Lstat(s.Dir); err == nil {
		if !s.Force {
			return fmt.Errorf("%w: %q (--force makes a new CA in its place)", ErrStateExists, s.Dir)
		}
		if _, err := os.Stat(filepath.Join(s.Dir, s.Marker)); err != nil {
			return fmt.Errorf("refusing to replace %q: it has no %s, so it is not %s state directory", s.Dir, s.Marker, s.Kind)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.MkdirTemp(parent, atomicfile.TempPrefix(s.Dir))
	if err != nil {
		return fmt.Errorf("create a temporary directory next to %q: %w", s.Dir, err)
	}
	s.tmp = tmp
	if err := os.Chmod(tmp, StateDirMode); err != nil {
		return err
	}
	return nil
}

// Abort removes the temporary directory, unless Commit put it in place.
func (s *NewState) Abort() {
	if s.tmp != "" && !s.placed {
		os.RemoveAll(s.tmp)
	}
}

// Commit builds t in the temporary directory and puts it in place of Dir.
// t's operations on paths under Dir are applied to the temporary
// directory; the others (a unit file) where they are, in t's order,
// before the rename: a kill after them leaves them without the state, and
// the next init writes them again. Nothing is journaled: until the rename
// nothing is Dir's.
//
// open opens the inventory t.DB is recorded in, given the temporary
// directory. One inside it (SQLite) goes with the directory: the change is
// recorded before the rename. One outside it (shared, PostgreSQL)
// outlives it: the rename is done inside the change's transaction, just
// before its COMMIT, so that a failure before or at the rename rolls the
// records back and a failed init leaves nothing in a database that
// outlives it. A kill between the rename and the COMMIT (or a COMMIT that
// fails) leaves the state without its records, which Recorder writes.
func (s *NewState) Commit(t *Txn, open func(tmp string) (*store.Store, error), shared bool) error {
	for _, op := range t.Ops {
		if err := s.rebase(op).apply(); err != nil {
			return err
		}
	}
	st, err := open(s.tmp)
	if err != nil {
		return err
	}
	change := t.DB
	if shared {
		change.BeforeCommit = s.place
	}
	err = st.Apply(change)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.place()
	}
	if err != nil {
		if s.placed {
			return fmt.Errorf("%w (the CA's state is in %q; %s records it in the inventory)", err, s.Dir, s.Recorder)
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(s.Dir))
}

// rebase is op on the temporary directory when its path is under Dir.
func (s *NewState) rebase(op *fileOp) *fileOp {
	rel, err := filepath.Rel(s.Dir, op.Path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return op
	}
	o := *op
	o.Path = filepath.Join(s.tmp, rel)
	return &o
}

// place renames the complete temporary directory into place; it may run
// again after PostgreSQL aborted a commit.
func (s *NewState) place() error {
	if s.placed {
		return nil
	}
	if err := atomicfile.SyncDir(s.tmp); err != nil {
		return err
	}
	if s.BeforeRename != nil {
		s.BeforeRename(s.tmp, s.Dir)
	}
	if s.Force {
		if err := atomicfile.ReplaceDir(s.tmp, s.Dir); err != nil {
			return err
		}
	} else if err := os.Rename(s.tmp, s.Dir); err != nil {
		// rename(2) fails onto a directory that is not empty: one
		// that appeared since Begin is not replaced.
		return fmt.Errorf("rename %q into place: %w", s.Dir, err)
	}
	s.placed = true
	return nil
}
