//go:build unix

package daemonconfig

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// statOwner is a file's owner, kept when daemon.json is rewritten.
func statOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid), true
	}
	return 0, 0, false
}

// CheckProgram refuses a program root would run that an account other
// than root could have written: the file and every directory above it
// (symbolic links resolved) must be root's and writable by no group or
// other, but for a sticky directory (/tmp), where no one else can replace
// root's entries. As sudo's secure_path and OpenSSH's checks of its files.
// Only when running as root: another account runs what it can write anyway.
//
// Why: DTLS_DOCKERD named the dockerd that checks a merged daemon.json,
// and a sudo rule that keeps DTLS_* (to point dtls at other paths) let
// whoever set it run a program of theirs as root (found by a red team).
func CheckProgram(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("program %q: %w", path, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return fmt.Errorf("program %q: %w", path, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("program %q: %w", path, err)
		}
		uid, _, ok := statOwner(fi)
		sticky := fi.IsDir() && fi.Mode()&fs.ModeSticky != 0
		switch {
		case !ok || uid != 0:
			return fmt.Errorf("program %q: %s is not root's (uid %d): refusing to run it as root", path, p, uid)
		case fi.Mode().Perm()&0o022 != 0 && !(sticky && p != real):
			return fmt.Errorf("program %q: %s is writable by group or others (%v): refusing to run it as root", path, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
