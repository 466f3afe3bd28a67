//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// PeerPIDFDs reports whether this kernel gives a unix socket's peer as a
// pidfd (SO_PEERPIDFD, Linux 6.5 and later), for the tests of what the
// gateway records of a local caller.
func PeerPIDFDs() bool {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pidfd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return false
	}
	unix.Close(pidfd)
	return true
}
