//go:build !unix

package authz

import (
	"fmt"
	"io/fs"
	"net"
	"runtime"
)

// systemdListener: there is no systemd socket activation outside unix.
func systemdListener(fd int, name string, tcp bool) (net.Listener, error) {
	return nil, fmt.Errorf("socket activation: fd %d (%s): not supported on %s", fd, name, runtime.GOOS)
}

// fileID: without inodes, a policy file is compared by size and
// modification time only.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
