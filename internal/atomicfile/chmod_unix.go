//go:build unix

package atomicfile

import (
	"fmt"
	"os"
	"syscall"
)

// Chmod sets the mode of the file or directory path itself, never of
// what a symbolic link there names: it is opened without following one
// (O_NOFOLLOW; O_NONBLOCK so that a FIFO put there does not block), and
// changed through the descriptor (fchmod). A file swapped for a link
// between a caller's check and its chmod had root chmod the link's
// target, any file (found by a red team).
func Chmod(path string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return fmt.Errorf("chmod %q: not a regular file or directory (%v)", path, fi.Mode().Type())
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	return nil
}
