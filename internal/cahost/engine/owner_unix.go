//go:build unix

package engine

import (
	"io/fs"
	"syscall"
)

func fileOwnerGroup(fi fs.FileInfo) (uid, gid int, ok bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid), true
	}
	return 0, 0, false
}
