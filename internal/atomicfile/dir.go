package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReplaceDir puts the complete directory tmp (a sibling of dir) in place of
// dir, and removes what dir held before. A reader sees the old directory
// or the new one: where the kernel can, the two are swapped in one step
// (renameat2 RENAME_EXCHANGE, Linux 3.15), so dir never goes missing, even
// for a moment. Elsewhere dir is first moved to tmp+".old" and put back if
// the second rename fails; a crash between the two leaves the old directory
// at tmp+".old" for the caller's recovery to restore.
func ReplaceDir(tmp, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("rename %q into place: %w", dir, err)
		}
		return nil
	}
	if err := exchange(tmp, dir); err == nil {
		// tmp now holds the old directory.
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove replaced %q: %w", dir, err)
		}
		return nil
	} else if !errors.Is(err, errNoExchange) {
		return fmt.Errorf("swap %q into place: %w", dir, err)
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("move %q aside: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.Rename(old, dir)
		return fmt.Errorf("rename %q into place: %w", dir, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove replaced %q: %w", old, err)
	}
	return nil
}

// errNoExchange means the platform or filesystem cannot swap two paths.
var errNoExchange = errors.New("atomic exchange not supported")

// File is one file of a directory WriteDir writes.
type File struct {
	// Name is the path inside the directory, slash-separated; its
	// parents are made with the directory's mode.
	Name string
	Data []byte
	Mode fs.FileMode
}

// TempPrefix is the name prefix of the temporary directories WriteDir
// makes next to dir: what RecoverDir removes.
func TempPrefix(dir string) string { return "." + filepath.Base(dir) + ".tmp-" }

// WriteDir writes files as the directory dir, whole: into a fresh
// temporary directory next to dir (TempPrefix, mode dirMode), which then
// takes dir's place in one step (ReplaceDir), so that a reader, or a
// crash at any instant, sees the old directory or the new one and never a
// mix of the two: a certificate of the new one beside a key of the old.
// Anything else the old directory held goes with it. dir's parent must
// exist. A killed run leaves at most the temporary directory, which
// RecoverDir removes (it may hold a key).
func WriteDir(dir string, files []File, dirMode fs.FileMode) (err error) {
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, TempPrefix(dir))
	if err != nil {
		return fmt.Errorf("write %q: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, dirMode); err != nil {
		return fmt.Errorf("write %q: %w", dir, err)
	}
	synced := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Name))
		if err := MkdirAll(filepath.Dir(p), dirMode); err != nil {
			return err
		}
		if err := Write(p, f.Data, f.Mode); err != nil {
			return err
		}
		synced[filepath.Dir(p)] = true
	}
	for d := range synced {
		if d != tmp {
			if err := SyncDir(d); err != nil {
				return err
			}
		}
	}
	if err := SyncDir(tmp); err != nil {
		return err
	}
	if err := ReplaceDir(tmp, dir); err != nil {
		return fmt.Errorf("write %q: %w", dir, err)
	}
	return SyncDir(parent)
}

// RecoverDir finishes or undoes what a killed WriteDir left next to dir.
// Where the platform cannot swap two directories in one step, ReplaceDir
// moves dir to TMP.old first: when dir is missing, that is the directory
// as it was, and it is put back. Then every temporary directory of dir's
// (TempPrefix) is removed: one may hold a private key. The caller keeps
// other writers of dir out.
func RecoverDir(dir string) error {
	parent := filepath.Dir(dir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("recover %q: %w", dir, err)
	}
	var temps []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix(dir)) {
			temps = append(temps, filepath.Join(parent, e.Name()))
		}
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		for _, t := range temps {
			if strings.HasSuffix(t, ".old") {
				if err := os.Rename(t, dir); err != nil {
					return fmt.Errorf("put back %q from %q: %w", dir, t, err)
				}
				if err := SyncDir(parent); err != nil {
					return err
				}
				break
			}
		}
	}
	for _, t := range temps {
		if err := os.RemoveAll(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %q left by an interrupted run: %w", t, err)
		}
	}
	return nil
}
