//go:build unix

package audit

import (
	"io/fs"
	"syscall"
)

// owner returns the uid and gid of a file.
func owner(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}
