package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
