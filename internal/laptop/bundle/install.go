package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// DirMode is the mode of the store root and of every bundle directory.
const DirMode fs.FileMode = 0o700

// ExistsError reports a bundle that is already installed under the name.
type ExistsError struct{ Dir string }

func (e *ExistsError) Error() string { return fmt.Sprintf("bundle %q already exists", e.Dir) }

// Install writes files as the bundle name in the store root: the root is
// created 0700 if needed, the files go to a fresh temporary directory (0700,
// key 0600, the rest 0644) that is renamed into place, so the bundle is
// complete or absent. An existing bundle is an *ExistsError unless replace,
// in which case it is moved aside and removed once the new one is in place.
// It returns the bundle directory.
func Install(root, name string, files []File, replace bool) (dir string, err error) {
	if err := clientenv.ValidateBundleName(name); err != nil {
		return "", err
	}
	if err := atomicfile.MkdirAll(root, DirMode); err != nil {
		return "", fmt.Errorf("create bundle store %q: %w", root, err)
	}
	dir = filepath.Join(root, name)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("bundle %q: %w", dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("bundle %q exists and is not a directory", dir)
	case !replace:
		return "", &ExistsError{Dir: dir}
	}
	for _, f := range files {
		if _, ok := Allowed[f.Name]; !ok {
			return "", fmt.Errorf("install bundle %q: unexpected file %q", dir, f.Name)
		}
	}
	// The store's modes (Allowed), whatever the archive said.
	own := make([]File, len(files))
	for i, f := range files {
		own[i] = File{Name: f.Name, Data: f.Data, Mode: Allowed[f.Name]}
	}
	// A shell starting while a bundle is replaced sees the old bundle or the
	// new one, never none.
	if err := WriteDir(dir, own); err != nil {
		return "", fmt.Errorf("install bundle: %w", err)
	}
	return dir, nil
}

// WriteDir writes files, each with its Mode, as the directory dir, whole:
// into a fresh temporary directory next to dir (".NAME.tmp-*", DirMode),
// which then takes dir's place in one step (atomicfile.ReplaceDir), so a
// reader sees the old directory or the new one, never a half-written one;
// anything else the old directory held goes with it. dir's parent must
// exist. A killed run leaves at most the temporary directory, which the
// caller's recovery removes (it may hold a key).
func WriteDir(dir string, files []File) (err error) {
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, DirMode); err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(tmp, f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := atomicfile.ReplaceDir(tmp, dir); err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	return atomicfile.SyncDir(parent)
}
