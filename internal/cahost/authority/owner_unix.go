//go:build unix

package authority

import (
	"io/fs"
	"syscall"
)

// fileID is a file's device and inode: what tells a file replaced under
// the same name (renamed over, or removed and made again) from one
// changed in place.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}
