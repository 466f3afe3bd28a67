package daemonconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// Result of Apply.
type Result struct {
	// Path is the daemon.json that was merged.
	Path string
	// Existed reports whether Path existed before Apply.
	Existed bool
	// Changed reports whether the merged content differs from the old one
	// (on a dry run: whether it would have been written).
	Changed bool
	// Backup is the copy of the old file Apply wrote before replacing it;
	// empty when nothing was written or Path did not exist.
	Backup string
	// Changes describe what Merge changed, one line each.
	Changes []string
	// Old and New are the content before and after the merge. Old is nil
	// when the file did not exist.
	Old, New []byte

	// What Restore needs to put the old file back as it was.
	mode     fs.FileMode
	uid, gid int
	written  bool
}

// BackupSuffix is inserted between the path and the time stamp of a backup:
// /etc/docker/daemon.json.dtls-backup-20240102T150405Z.
const BackupSuffix = ".dtls-backup-"

// Apply reads the daemon.json at path, merges s into it and, unless dryRun,
// writes a backup of the old file and then the merged one.
//
// The backup is path + BackupSuffix + now in UTC ("20060102T150405Z"), with
// the mode and owner of the original; should that name be taken (two runs in
// one second), ".1", ".2"... is appended rather than losing the older
// backup. The merged file is written atomically (see package atomicfile) with
// the original's mode and owner. A missing file is created 0644, owned by
// the caller, in a directory created 0755 when missing (the modes Docker's
// packages use for /etc/docker and daemon.json).
//
// Apply refuses, naming path and leaving it untouched: a directory or other
// non-regular file, a symbolic link (replacing it would turn the link into a
// file and leave its target stale), a file it cannot read, malformed JSON
// (with line and column) and values of the wrong type. When nothing needs to
// change nothing is written and Result.Changed is false.
func Apply(path string, s Settings, now time.Time, dryRun bool) (*Result, error) {
	r := &Result{Path: path, mode: 0o644, uid: -1, gid: -1}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read daemon config %q: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return nil, fmt.Errorf("daemon config %q is a symlink to %q; point --daemon-json at the real file", path, target)
	case fi.IsDir():
		return nil, fmt.Errorf("daemon config %q is a directory", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("daemon config %q is not a regular file", path)
	default:
		r.Existed = true
		r.mode = fi.Mode().Perm()
		if uid, gid, ok := statOwner(fi); ok {
			r.uid, r.gid = uid, gid
		}
		if r.Old, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read daemon config %q: %w", path, err)
		}
	}

	r.New, r.Changes, err = Merge(r.Old, s)
	if err != nil {
		return nil, fmt.Errorf("read daemon config %q: %w", path, err)
	}
	r.Changed = !r.Existed || !bytes.Equal(r.Old, r.New)
	if !r.Changed || dryRun {
		return r, nil
	}

	if r.Existed {
		if r.Backup, err = BackupName(path, now); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteWith(r.Backup, r.Old, r.mode, r.owner()); err != nil {
			return nil, fmt.Errorf("back up daemon config: %w", err)
		}
	} else if err := mkdirIfMissing(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteWith(path, r.New, r.mode, r.owner()); err != nil {
		return nil, fmt.Errorf("write daemon config: %w", err)
	}
	r.written = true
	return r, nil
}

// FileMode is the mode the merged file gets: the original's, or 0644 for a
// new file.
func (r *Result) FileMode() fs.FileMode { return r.mode }

// Owner is the original file's owner; ok is false for a new file, which
// gets the caller's.
func (r *Result) Owner() (uid, gid int, ok bool) { return r.uid, r.gid, r.uid >= 0 }

func (r *Result) owner() atomicfile.Options {
	if r.uid < 0 {
		return atomicfile.Options{}
	}
	return atomicfile.Options{Chown: true, UID: r.uid, GID: r.gid}
}

// BackupName is the name of a new backup of path: path + BackupSuffix +
// now in UTC, with ".1", ".2"... appended when that name is taken (two
// runs in one second), so that an older backup is never lost.
func BackupName(path string, now time.Time) (string, error) {
	base := path + BackupSuffix + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", fmt.Errorf("back up daemon config %q: %w", path, err)
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
}

// mkdirIfMissing creates dir 0755. An existing directory is left alone: its
// mode is the administrator's choice.
func mkdirIfMissing(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	return atomicfile.MkdirAll(dir, 0o755)
}
