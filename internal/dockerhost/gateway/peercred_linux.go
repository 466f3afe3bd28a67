//go:build linux

package gateway

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerCred reads a connected unix socket's SO_PEERCRED: the uid, gid and
// pid of the process that called connect(2), as the kernel recorded them
// then (unix(7)); they do not follow the socket to another process.
func peerCred(c *net.UnixConn) (uid, gid uint32, pid int32, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, 0, 0, err
	}
	if serr != nil {
		return 0, 0, 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred.Uid, cred.Gid, cred.Pid, nil
}

// peerComm is the command name of the process that connected c, whose
// pid SO_PEERCRED gave: read from /proc/PID/comm, and kept only when the
// connection's pidfd (SO_PEERPIDFD, Linux 6.5) shows, after the read, that
// this process is still alive, so that the name is not that of another
// process which took the pid after the caller exited. "" on an older
// kernel or when the caller is gone: the pid alone is recorded.
func peerComm(c *net.UnixConn, pid int32) string {
	raw, err := c.SyscallConn()
	if err != nil || pid <= 0 {
		return ""
	}
	pidfd := -1
	if err := raw.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			pidfd = v
		}
	}); err != nil || pidfd < 0 {
		return ""
	}
	defer unix.Close(pidfd)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	// Signal 0 checks the process without signalling it
	// (pidfd_send_signal(2)): ESRCH once it has exited. EPERM says it is
	// alive but another user's, which root without CAP_KILL (the packaged
	// unit's bounding set) may not signal.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil && err != unix.EPERM {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// fileOwner is the uid owning a file.
func fileOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
