//go:build unix

package daemonconfig

import (
	"io/fs"
	"syscall"
)

// statOwner is a file's owner, kept when daemon.json is rewritten.
func statOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid), true
	}
	return 0, 0, false
}
