//go:build !unix

package daemonconfig

import "io/fs"

// statOwner: no uid and gid on this platform (Windows has ACLs).
func statOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// CheckProgram: no owner to check on this platform (dtls init, which runs
// dockerd, is for Linux hosts).
func CheckProgram(path string) (string, error) { return path, nil }

// CheckRootDir: no owner to check on this platform.
func CheckRootDir(string) error { return nil }
