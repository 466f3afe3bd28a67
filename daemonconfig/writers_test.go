package daemonconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// Restore and WriteDropIn are the direct writers the tests check Apply
// and PlanDropIn with; dtls itself writes and undoes these files through
// the journal of package authority, so they live with the tests.

// Restore undoes what Apply wrote, for a rollback when dockerd rejects the
// new file: it puts the old content back atomically with its mode and owner,
// or removes the file when Apply created it. The backup file is kept. It is
// a no-op when Apply wrote nothing (no change, or a dry run).
func (r *Result) Restore() error {
	if !r.written {
		return nil
	}
	if !r.Existed {
		if err := os.Remove(r.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore daemon config: %w", err)
		}
		return nil
	}
	if err := atomicfile.WriteWith(r.Path, r.Old, r.mode, r.owner()); err != nil {
		return fmt.Errorf("restore daemon config from %q: %w", r.Backup, err)
	}
	return nil
}

// WriteDropIn writes u.DropIn() to dir/docker.service.d/dtls-tls.conf, 0644
// in a directory created 0755, atomically; dir is normally
// /etc/systemd/system. It returns the path and whether it wrote: a drop-in
// that is already up to date is not rewritten. Callers need it only when
// u.Hosts is not empty, and must run `systemctl daemon-reload` afterwards.
//
// It refuses when ExecStart comes from a drop-in that sorts after
// dtls-tls.conf (systemd applies drop-ins in name order, so that one would
// still win), or when the unit has no ExecStart.
func WriteDropIn(dir string, u *Unit) (string, bool, error) {
	path, want, changed, err := PlanDropIn(dir, u)
	if err != nil || !changed {
		return path, false, err
	}
	if err := mkdirIfMissing(filepath.Dir(path)); err != nil {
		return path, false, err
	}
	if err := atomicfile.Write(path, want, 0o644); err != nil {
		return path, false, fmt.Errorf("write drop-in: %w", err)
	}
	return path, true, nil
}
