package authz

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// dirIdentity is what tells one directory from another made later at the
// same path: its device, inode and birth time (statx(2) STATX_BTIME, in
// nanoseconds). An inode number alone is reused once freed; a birth time
// never changes and a directory made again is born again. "" when the
// file system does not record a birth time: then nothing can be bound to
// the directory (closed).
func dirIdentity(path string) string {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME|unix.STATX_TYPE, &st); err != nil {
		return ""
	}
	if st.Mask&unix.STATX_BTIME == 0 || st.Mask&unix.STATX_INO == 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d.%09d", st.Dev_major, st.Dev_minor, st.Ino, st.Btime.Sec, st.Btime.Nsec)
}
