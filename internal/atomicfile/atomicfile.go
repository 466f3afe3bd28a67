// Package atomicfile writes files that matter (keys, certificates, daemon.json,
// records) so that a reader sees either the old content or the new one, never
// a half-written file, and so that the new file never inherits a looser mode
// from the one it replaces.
//
// The sequence is the classic one: create a temporary file in the target
// directory (rename(2) is only atomic within one filesystem), write, fsync,
// set the mode and owner, rename over the target, then fsync the directory so
// that the rename itself survives a crash (see the rename(2) and fsync(2) man
// pages; ext4 data=ordered does not order directory entries for us).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Options tune a write. The zero value writes a file owned by the caller.
type Options struct {
	// UID and GID, when Chown is true, set the owner of the new file. Used to
	// keep the owner of a file that is being replaced (daemon.json).
	Chown    bool
	UID, GID int
}

// Write replaces path with data, with exactly the given mode. On any error
// the target is left as it was and the temporary file is removed.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteWith(path, data, mode, Options{})
}

// WriteWith is Write with owner options.
func WriteWith(path string, data []byte, mode os.FileMode, o Options) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600, so secrets are never exposed while
	// they are being written, whatever the umask.
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", path, err)
	}
	if o.Chown {
		if err = f.Chown(o.UID, o.GID); err != nil {
			return fmt.Errorf("chown %q: %w", path, err)
		}
	}
	// Chmod after Chown: chown(2) may clear the setuid/setgid bits.
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into %q: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// MkdirAll creates dir (and parents) and makes sure dir itself has exactly
// mode, tightening an existing looser directory.
func MkdirAll(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("create directory %q: %w", dir, err)
	}
	return Chmod(dir, mode)
}
