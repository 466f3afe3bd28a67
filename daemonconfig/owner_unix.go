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
// than root could have written or replaced, and returns the path to run:
// the program's real path, with no symbolic link left, which is what was
// checked (running the path given would follow its links again). Both
// the path as given and the real one are judged: every directory on them
// must be root's and writable by no group or other, but for a sticky
// directory above the last one (/tmp), where no one else can replace
// root's entries; the program must be root's and not writable by others.
// As sudo's secure_path and OpenSSH's checks of its files. Only as root:
// another account runs what it can write anyway.
//
// Why: DTLS_DOCKERD named the dockerd that checks a merged daemon.json,
// and a sudo rule that keeps DTLS_* (to point dtls at other paths) let
// whoever set it run a program of theirs as root (found by a red team);
// then a link in their own directory, flipped between the check and the
// run (a second round).
func CheckProgram(path string) (string, error) {
	return checkRootOwned("program", path, "run it as root")
}

// CheckRootDir refuses, as root, a directory root writes secrets or
// trusted files into that another account could change or replace under
// it, by the rules of CheckProgram: the certs directory, where a red
// team's symbolic link, swapped in after init's check, had root chmod a
// file of its choice; a bundle directory in its holder's home, which they
// could swap for a link to any directory after the check.
func CheckRootDir(path string) error {
	_, err := checkRootOwned("directory", path, "write into it as root")
	return err
}

func checkRootOwned(what, path, doing string) (string, error) {
	if os.Geteuid() != 0 {
		return path, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", what, path, err)
	}
	// As given: a link in a directory another account can write is
	// theirs to point elsewhere after this check.
	if err := checkChain(abs); err != nil {
		return "", fmt.Errorf("%s %q: %w: refusing to %s", what, path, err, doing)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", what, path, err)
	}
	if err := checkChain(real); err != nil {
		return "", fmt.Errorf("%s %q: %w: refusing to %s", what, path, err, doing)
	}
	return real, nil
}

// checkChain checks p and every directory above it, as they are named
// (a link on the way is followed by the next Lstat). Each entry, a link
// included, must be root's: in a sticky directory (/tmp) its owner may
// replace it, and a link of another account's there, pointing at root's
// directory, passed and was flipped while root wrote (a third red team
// round). A link's own mode means nothing; the others' must not let a
// group or others write.
func checkChain(p string) error {
	for q := p; ; q = filepath.Dir(q) {
		fi, err := os.Lstat(q)
		if err != nil {
			return err
		}
		uid, _, ok := statOwner(fi)
		link := fi.Mode()&fs.ModeSymlink != 0
		sticky := fi.IsDir() && fi.Mode()&fs.ModeSticky != 0
		switch {
		case !ok || uid != 0:
			return fmt.Errorf("%s is not root's (uid %d)", q, uid)
		case !link && fi.Mode().Perm()&0o022 != 0 && !(sticky && q != p):
			return fmt.Errorf("%s is writable by group or others (%v)", q, fi.Mode().Perm())
		}
		if q == filepath.Dir(q) {
			return nil
		}
	}
}
