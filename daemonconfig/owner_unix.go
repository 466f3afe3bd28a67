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
	return checkRootOwned("program", path, "run it as root")
}

// CheckRootDir refuses, as root, a directory root writes secrets or
// trusted files into that another account could change under it, by the
// rules of CheckProgram: the certs directory, where a red team's
// symbolic link, swapped in after init's check, had root chmod a file
// of its choice.
func CheckRootDir(path string) error {
	return checkRootOwned("directory", path, "write into it as root")
}

func checkRootOwned(what, path, doing string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, path, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return fmt.Errorf("%s %q: %w", what, path, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, path, err)
		}
		uid, _, ok := statOwner(fi)
		sticky := fi.IsDir() && fi.Mode()&fs.ModeSticky != 0
		switch {
		case !ok || uid != 0:
			return fmt.Errorf("%s %q: %s is not root's (uid %d): refusing to %s", what, path, p, uid, doing)
		case fi.Mode().Perm()&0o022 != 0 && !(sticky && p != real):
			return fmt.Errorf("%s %q: %s is writable by group or others (%v): refusing to %s", what, path, p, fi.Mode().Perm(), doing)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
