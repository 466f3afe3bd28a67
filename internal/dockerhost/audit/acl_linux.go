//go:build linux

package audit

import (
	"errors"

	"golang.org/x/sys/unix"
)

// readACL reads the POSIX access ACL of path; nil, nil when it has none
// (ENODATA), or when its file system keeps none (ENOTSUP).
func readACL(path string) ([]aclEntry, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, aclXattr, buf)
		switch {
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 2*len(buf))
			continue
		case err != nil:
			return nil, err
		}
		return parseACL(buf[:n])
	}
}
