//go:build unix

package authz

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// systemdListener turns a passed file descriptor into a listener, after
// checking that it is a listening unix socket.
func systemdListener(fd int, name string, tcp bool) (net.Listener, error) {
	syscall.CloseOnExec(fd)
	if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil {
		return nil, fmt.Errorf("socket activation: fd %d (%s) is not a socket: %w", fd, name, err)
	} else if v == 0 {
		return nil, fmt.Errorf("socket activation: fd %d (%s) is not a listening socket: the .socket unit needs Accept=no", fd, name)
	}
	f := os.NewFile(uintptr(fd), name)
	// FileListener dups the descriptor; the original is not needed.
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket activation: fd %d (%s): %w", fd, name, err)
	}
	if tcp {
		if _, ok := l.Addr().(*net.TCPAddr); !ok {
			l.Close()
			return nil, fmt.Errorf("socket activation: fd %d (%s) is a %s socket (%s), not a TCP socket", fd, name, l.Addr().Network(), l.Addr())
		}
		return l, nil
	}
	addr, ok := l.Addr().(*net.UnixAddr)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("socket activation: fd %d (%s) is a %s socket (%s), not a unix socket: the plugin must not listen on the network",
			fd, name, l.Addr().Network(), l.Addr())
	}
	if addr.Name == "" || addr.Name[0] == '@' {
		l.Close()
		return nil, fmt.Errorf("socket activation: fd %d (%s) is an abstract or unnamed unix socket, which any process may connect to: use a path", fd, name)
	}
	if fi, err := os.Stat(addr.Name); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(addr.Name, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("socket activation: socket %q has mode %#o: %w", addr.Name, fi.Mode().Perm(), unwrapPath(err))
		}
	}
	return l, nil
}

// fileID is the device and inode of a file, to tell a replaced file from
// the same file.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}
