package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
)

// DirMode is the mode of the store root and of every bundle directory.
const DirMode fs.FileMode = 0o700

// ExistsError reports a bundle that is already installed under the name.
type ExistsError struct{ Dir string }

func (e *ExistsError) Error() string { return fmt.Sprintf("bundle %q already exists", e.Dir) }

// Install writes files as the bundle name in the store root (made 0700
// when missing) with InstallDir, and returns the bundle directory. An
// existing bundle is an *ExistsError unless replace.
func Install(root, name string, files []File, replace bool) (dir string, err error) {
	if err := clientenv.ValidateBundleName(name); err != nil {
		return "", err
	}
	if err := atomicfile.MkdirAll(root, DirMode); err != nil {
		return "", fmt.Errorf("create bundle store %q: %w", root, err)
	}
	dir = filepath.Join(root, name)
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && !replace {
		return "", &ExistsError{Dir: dir}
	}
	if err := InstallDir(dir, files); err != nil {
		return "", fmt.Errorf("install bundle: %w", err)
	}
	return dir, nil
}

// InstallDir is the one installer of a bundle: it writes files as the
// bundle directory dir, whole, each with the store's mode (Allowed: key
// 0600, the rest 0644) whatever the archive said, with WriteDir. A shell
// starting while a bundle is replaced sees the old bundle or the new one,
// never none and never a mix; anything else the old directory held, a
// renewal's pending key included, goes with it. The parent directory is
// made 0700 when missing; an existing one is left as it is.
func InstallDir(dir string, files []File) error {
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.MkdirAll(parent, DirMode); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("bundle %q exists and is not a directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bundle %q: %w", dir, err)
	}
	own := make([]File, len(files))
	for i, f := range files {
		mode, ok := Allowed[f.Name]
		if !ok {
			return fmt.Errorf("write bundle %q: unexpected file %q", dir, f.Name)
		}
		own[i] = File{Name: f.Name, Data: f.Data, Mode: mode}
	}
	return WriteDir(dir, own)
}

// WriteDir writes files, each with its Mode, as the directory dir, whole
// (atomicfile.WriteDir, DirMode): a reader sees the old directory or the
// new one, never a half-written one. dir's parent must exist. A killed run
// leaves at most the temporary directory, which atomicfile.RecoverDir
// removes (it may hold a key).
func WriteDir(dir string, files []File) error {
	af := make([]atomicfile.File, len(files))
	for i, f := range files {
		af[i] = atomicfile.File{Name: f.Name, Data: f.Data, Mode: f.Mode}
	}
	if err := atomicfile.WriteDir(dir, af, DirMode); err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	return nil
}

// Files are a bundle's four files, with the modes of Allowed.
func Files(caPEM, certPEM, keyPEM []byte, m clientenv.Meta) ([]File, error) {
	metaJSON, err := clientenv.MarshalMeta(m)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: clientenv.CAFile, Data: caPEM},
		{Name: clientenv.CertFile, Data: certPEM},
		{Name: clientenv.KeyFile, Data: keyPEM},
		{Name: clientenv.MetaFile, Data: metaJSON},
	}
	for i := range files {
		files[i].Mode = Allowed[files[i].Name]
	}
	return files, nil
}

// ContextSource is what the Docker contexts made from the bundle in dir
// hold once files (with dtls.json m) are installed there: for
// dockercontext.Refresh.
func ContextSource(dir string, files []File, m clientenv.Meta) dockercontext.Source {
	return dockercontext.Source{Dir: dir, Host: m.DockerHost,
		CA: Get(files, clientenv.CAFile), Cert: Get(files, clientenv.CertFile), Key: Get(files, clientenv.KeyFile)}
}
