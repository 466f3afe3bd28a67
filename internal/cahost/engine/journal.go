package engine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/failpoint"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
)

// The journal makes every change of more than one file (or of a file and
// the inventory) all-or-nothing, on the CA host (package authority:
// STATE_DIR/journal) and on the online CA host (its rotation's steps,
// rotatefiles.go), whatever instant a run is killed at. It is
// a redo log with before-images, the classic write-ahead scheme (Gray and
// Reuter, "Transaction Processing", ch. 9):
//
//  1. Everything the change writes is computed first: keys, certificates,
//     bundles, the CRL, daemon.json. Nothing is on disk yet.
//  2. The journal (Journal.Dir/NAME-ID.json, 0600, written atomically)
//     lists every file operation with the content it writes and the
//     content it replaces, and the inventory change.
//  3. The operations run in order, each one atomic (atomicfile); then the
//     inventory change commits in one transaction.
//  4. The journal is removed.
//
// A run killed after 2 is finished by the next run that opens the state
// directory (Recover; every operation is idempotent: it writes a given
// content, or removes a given file). A run killed before 2 changed
// nothing. A step that fails
// (a certs directory that cannot be written, a full disk) is undone at once
// from the before-images and leaves no journal. The journal holds private
// keys (new server keys, the CA key it replaces) only for the run that wrote
// it, or until the next run finishes that run's work.

type opKind string

const (
	opWrite  opKind = "write"  // Path gets Data with Mode (and Owner)
	opRemove opKind = "remove" // Path is removed
	opBundle opKind = "bundle" // directory Path is replaced whole by Files
	opMkdir  opKind = "mkdir"  // directory Path is created with Mode when missing
	opChmod  opKind = "chmod"  // Path gets Mode
)

type owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

type fileOp struct {
	Op     opKind        `json:"op"`
	Path   string        `json:"path"`
	Data   []byte        `json:"data,omitempty"`
	Mode   fs.FileMode   `json:"mode,omitempty"`
	Owner  *owner        `json:"owner,omitempty"`
	Files  []bundle.File `json:"files,omitempty"`
	Before *image        `json:"before,omitempty"`
}

// image is what a path held before the change.
type image struct {
	Exists bool          `json:"exists"`
	Data   []byte        `json:"data,omitempty"`
	Mode   fs.FileMode   `json:"mode,omitempty"`
	Owner  *owner        `json:"owner,omitempty"`
	Files  []bundle.File `json:"files,omitempty"`
}

// Txn is one change: file operations and the inventory change.
type Txn struct {
	Name string       `json:"name"`
	Ops  []*fileOp    `json:"ops"`
	DB   store.Change `json:"db"`
}

// NewTxn starts a change; name is its journal's and fail points' prefix.
func NewTxn(name string) *Txn { return &Txn{Name: name} }

func (t *Txn) Write(path string, data []byte, mode fs.FileMode) {
	t.Ops = append(t.Ops, &fileOp{Op: opWrite, Path: path, Data: data, Mode: mode})
}

func (t *Txn) WriteOwned(path string, data []byte, mode fs.FileMode, uid, gid int) {
	t.Ops = append(t.Ops, &fileOp{Op: opWrite, Path: path, Data: data, Mode: mode, Owner: &owner{uid, gid}})
}

func (t *Txn) Remove(path string) { t.Ops = append(t.Ops, &fileOp{Op: opRemove, Path: path}) }

func (t *Txn) Bundle(dir string, files []bundle.File) {
	t.Ops = append(t.Ops, &fileOp{Op: opBundle, Path: dir, Files: files})
}

// Mkdir creates dir with mode, and its missing parents 0755, each as an
// operation of its own so that an undo removes every directory the change
// made.
func (t *Txn) Mkdir(dir string, mode fs.FileMode) {
	missing := missingDirs(dir, absent)
	for i := len(missing) - 1; i >= 1; i-- {
		t.Ops = append(t.Ops, &fileOp{Op: opMkdir, Path: missing[i], Mode: 0o755})
	}
	t.Ops = append(t.Ops, &fileOp{Op: opMkdir, Path: dir, Mode: mode})
}

func (t *Txn) Chmod(path string, mode fs.FileMode) {
	t.Ops = append(t.Ops, &fileOp{Op: opChmod, Path: path, Mode: mode})
}

func (t *Txn) Empty() bool {
	return len(t.Ops) == 0 && len(t.DB.Insert) == 0 && len(t.DB.Supersede) == 0 && len(t.DB.Revoke) == 0 && len(t.DB.Roles) == 0
}

// capture records what op's path holds now.
func (op *fileOp) capture() error {
	fi, err := os.Lstat(op.Path)
	if absent(err) {
		// ENOTDIR: a file where a parent directory should be; applying
		// the operation will fail and say so.
		op.Before = &image{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op.Path, err)
	}
	im := &image{Exists: true, Mode: fi.Mode().Perm()}
	if uid, gid, ok := fileOwnerGroup(fi); ok {
		im.Owner = &owner{uid, gid}
	}
	switch {
	case op.Op == opMkdir:
	case op.Op == opBundle:
		if !fi.IsDir() {
			return fmt.Errorf("bundle directory %q exists and is not a directory", op.Path)
		}
		entries, err := os.ReadDir(op.Path)
		if err != nil {
			return fmt.Errorf("read %q: %w", op.Path, err)
		}
		for _, e := range entries {
			p := filepath.Join(op.Path, e.Name())
			efi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if !efi.Mode().IsRegular() {
				return fmt.Errorf("bundle directory %q holds %q, which is not a regular file", op.Path, e.Name())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %q: %w", p, err)
			}
			im.Files = append(im.Files, bundle.File{Name: e.Name(), Data: b, Mode: efi.Mode().Perm()})
		}
	default:
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%q exists and is not a regular file", op.Path)
		}
		if im.Data, err = os.ReadFile(op.Path); err != nil {
			return fmt.Errorf("read %q: %w", op.Path, err)
		}
	}
	op.Before = im
	return nil
}

func (o *owner) options() atomicfile.Options {
	if o == nil {
		return atomicfile.Options{}
	}
	return atomicfile.Options{Chown: true, UID: o.UID, GID: o.GID}
}

// apply does op; doing it twice gives the same result.
func (op *fileOp) apply() error {
	switch op.Op {
	case opWrite:
		return atomicfile.WriteWith(op.Path, op.Data, op.Mode, op.Owner.options())
	case opRemove:
		return RemoveFile(op.Path)
	case opBundle:
		return writeBundle(op.Path, op.Files)
	case opMkdir:
		return MkdirMissing(op.Path, op.Mode)
	case opChmod:
		return atomicfile.Chmod(op.Path, op.Mode)
	}
	return fmt.Errorf("journal: unknown operation %q", op.Op)
}

// undo puts back what op's path held before.
func (op *fileOp) undo() error {
	b := op.Before
	if b == nil {
		return nil
	}
	switch op.Op {
	case opMkdir:
		if !b.Exists {
			// Only when empty: what else is there was not ours.
			if err := os.Remove(op.Path); err != nil && !absent(err) && !isNotEmpty(err) {
				return fmt.Errorf("remove %q: %w", op.Path, err)
			}
		}
		return nil
	case opBundle:
		if !b.Exists {
			if err := os.RemoveAll(op.Path); err != nil {
				return fmt.Errorf("remove %q: %w", op.Path, err)
			}
			return nil
		}
		return writeBundle(op.Path, b.Files)
	}
	if !b.Exists {
		return RemoveFile(op.Path)
	}
	return atomicfile.WriteWith(op.Path, b.Data, b.Mode, b.Owner.options())
}

func isNotEmpty(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not empty")
}

// RemoveFile removes path, when it is there, and syncs its directory.
func RemoveFile(path string) error {
	if err := os.Remove(path); err != nil {
		if absent(err) {
			return nil
		}
		return fmt.Errorf("remove %q: %w", path, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// absent reports whether err says a path is not there: missing, or under
// something that is not a directory.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// MkdirMissing creates dir with mode when it is missing (parents 0755), and
// never touches the mode of a directory that exists: a 0700 directory is not
// loosened and a sticky 1777 one keeps its bit.
func MkdirMissing(dir string, mode fs.FileMode) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%q exists and is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create directory %q: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory %q: %w", dir, err)
	}
	// The umask may have taken bits away; it never adds any.
	if err := atomicfile.Chmod(dir, mode); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}

// writeBundle puts files in place of the bundle directory dir, whole
// (bundle.WriteDir), making its parent (0755) when missing.
func writeBundle(dir string, files []bundle.File) error {
	if err := MkdirMissing(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	return bundle.WriteDir(dir, files)
}

// JournalDir is the journal's directory in a state directory, the same on
// both hosts.
const JournalDir = "journal"

// A Journal runs changes in its directory Dir (made 0700 when missing),
// recording them in the inventory Inv.
type Journal struct {
	Dir string
	Inv Inventory
	// Journaled is set once a change's journal is durable: from then on
	// a failure may leave it for the next run to finish.
	Journaled bool
}

// StateJournal is the journal of the state directory dir (JournalDir in
// it), recording in inv.
func StateJournal(dir string, inv Inventory) *Journal {
	return &Journal{Dir: filepath.Join(dir, JournalDir), Inv: inv}
}

// RecordMode is a journal's: it holds private keys.
const RecordMode fs.FileMode = 0o600

// Commit runs t as described at the top of this file.
func (j *Journal) Commit(t *Txn) error {
	if t.Empty() {
		return nil
	}
	for _, op := range t.Ops {
		if err := op.capture(); err != nil {
			return err
		}
	}
	dir := j.Dir
	if err := MkdirMissing(dir, 0o700); err != nil {
		return err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	jpath := filepath.Join(dir, t.Name+"-"+hex.EncodeToString(id)+".json")
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(jpath, b, RecordMode); err != nil {
		return err
	}
	j.Journaled = true
	if err := failpoint.Inject("journal:" + t.Name + ":written"); err != nil {
		RemoveFile(jpath)
		j.Journaled = false
		return &ChangeError{Err: err}
	}
	for i, op := range t.Ops {
		err := op.apply()
		if err == nil {
			err = failpoint.Inject(fmt.Sprintf("journal:%s:%d", t.Name, i))
		}
		if err != nil {
			return j.abort(t, t.Ops[:i+1], jpath, err)
		}
	}
	if err := j.Inv.Apply(t.DB); err != nil {
		return j.abort(t, t.Ops, jpath, fmt.Errorf("record in the inventory: %w", err))
	}
	if err := failpoint.Inject("journal:" + t.Name + ":recorded"); err != nil {
		return err
	}
	if err := RemoveFile(jpath); err != nil {
		return err
	}
	j.Journaled = false
	return nil
}

// abort undoes ops (newest first) after err, and removes the journal when
// everything was put back.
func (j *Journal) abort(t *Txn, ops []*fileOp, jpath string, err error) error {
	if uerr := undo(ops); uerr != nil {
		return hintf(fmt.Errorf("%w; putting back what was already written failed too: %v", err, uerr),
			"fix the cause, then run any dtls command on this state directory: it finishes the change from %s", jpath)
	}
	if rerr := RemoveFile(jpath); rerr != nil {
		return fmt.Errorf("%w (and removing the journal: %v)", err, rerr)
	}
	j.Journaled = false
	return &ChangeError{Err: err}
}

// ChangeError is a step that failed and was undone: nothing was changed.
type ChangeError struct{ Err error }

func (e *ChangeError) Error() string { return e.Err.Error() + "; nothing was changed" }
func (e *ChangeError) Unwrap() error { return e.Err }

func undo(ops []*fileOp) error {
	var errs []error
	for i := len(ops) - 1; i >= 0; i-- {
		if err := ops[i].undo(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Recovery says what the next run did with a change a killed run left.
type Recovery struct {
	Change   string // the operation: init, issue, renew, revoke...
	Finished bool   // finished (true) or undone (false)
	Journal  string
	Recorded []store.Record
}

// Recover is what each face does first with its state directory dir, once
// its inventory inv is open (the CA host's under its lock), before it
// reads a file there: it removes the temporary files a killed run left in
// dir and in its journal (cleanTemps), then finishes every change a killed
// run left in the journal (StateJournal), or, when a step cannot be
// redone and the inventory change was not made, undoes it. A face's own
// leftovers (the online CA's rotation files from before the journal) are
// its own to finish after this.
func Recover(dir string, inv Inventory) ([]Recovery, error) {
	j := StateJournal(dir, inv)
	// Those of a run killed before its journal was durable, which
	// changed nothing else; a journaled run's are removed with its
	// change (Txn.cleanTemps).
	cleanTemps(dir, j.Dir)
	return j.replay()
}

// replay finishes or undoes each change in the journal (Recover).
func (j *Journal) replay() ([]Recovery, error) {
	dir := j.Dir
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(paths)
	var out []Recovery
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return out, fmt.Errorf("read journal %q: %w", p, err)
		}
		var t Txn
		if err := json.Unmarshal(b, &t); err != nil {
			// A journal is written atomically: this one is not ours.
			return out, hintf(fmt.Errorf("read journal %q: %w", p, err), "move the file out of %s", dir)
		}
		t.cleanTemps()
		var ferr error
		for _, op := range t.Ops {
			if ferr = op.apply(); ferr != nil {
				break
			}
		}
		r := Recovery{Change: t.Name, Journal: p}
		if ferr == nil {
			if err := j.Inv.Apply(t.DB); err != nil {
				return out, fmt.Errorf("finish the interrupted %s from %q: %w", t.Name, p, err)
			}
			r.Finished, r.Recorded = true, t.DB.Insert
		} else {
			applied, err := j.dbApplied(t.DB)
			if err != nil {
				return out, err
			}
			if applied {
				return out, hintf(fmt.Errorf("finish the interrupted %s from %q: %w", t.Name, p, ferr),
					"fix the cause (a full disk, a read-only mount), then run the command again")
			}
			if err := undo(t.Ops); err != nil {
				return out, hintf(fmt.Errorf("undo the interrupted %s from %q: %w (finishing it failed: %v)", t.Name, p, err, ferr),
					"fix the cause (a full disk, a read-only mount), then run the command again")
			}
		}
		t.cleanTemps()
		if err := RemoveFile(p); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// dbApplied reports whether an inventory change is already in the
// database.
func (j *Journal) dbApplied(c store.Change) (bool, error) {
	switch {
	case len(c.Insert) > 0:
		r, err := j.Inv.Get(c.Insert[0].Serial)
		return r != nil, err
	case len(c.Revoke) > 0:
		r, err := j.Inv.Get(c.Revoke[0].Serial)
		return r != nil && r.Status == store.StatusRevoked, err
	case len(c.Supersede) > 0:
		r, err := j.Inv.Get(c.Supersede[0])
		return r != nil && r.Status == store.StatusSuperseded, err
	}
	return false, nil
}

// cleanTemps removes what atomicfile and writeBundle left for the paths
// the change writes: ".NAME.tmp-*" next to each (a bundle's temporary
// directory and its ".old" included), which a killed run leaves and one of
// which may hold a whole private key. Only those of the change's own
// names: another program's temporary files next to them (in /etc/docker,
// or beside the state directory) are left alone.
func (t *Txn) cleanTemps() {
	for _, op := range t.Ops {
		CleanTempsOf(op.Path)
	}
}

// CleanTempsOf removes atomicfile's and writeBundle's temporary files and
// directories of path (".NAME.tmp-*" next to it, ".old" included).
func CleanTempsOf(path string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

// cleanTemps removes the temporary files and directories that atomicfile
// and writeBundle name ".NAME.tmp-*" (and ".NAME.tmp-*.old"), which a killed
// run leaves behind: one may hold a whole private key. They are created 0600
// (directories 0700), so none was ever readable by others.
func cleanTemps(dirs ...string) {
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
				os.RemoveAll(filepath.Join(d, n))
			}
		}
	}
}

// Error is an error with the command that fixes it (age's errorWithHint).
type Error struct {
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// HintText is what the command line prints as "hint:".
func (e *Error) HintText() string { return e.Hint }

func hintf(err error, format string, a ...any) error {
	return &Error{Err: err, Hint: fmt.Sprintf(format, a...)}
}
