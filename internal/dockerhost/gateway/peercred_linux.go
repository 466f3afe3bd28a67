//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
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

// peerProcess is what the gateway learns of the process that connected
// c, whose pid SO_PEERCRED gave: its command name (/proc/PID/comm), and
// whether it runs in the gateway's own PID namespace (/proc/PID/ns/pid
// against /proc/self/ns/pid, as nsenter(1) and lsns(8) compare them: the
// same device and inode). Both are kept only when the connection's pidfd
// (SO_PEERPIDFD, Linux 6.5) shows, after the reads, that this process is
// still alive, so that they are not those of another process which took
// the pid after the caller exited; without a pidfd (an older kernel) the
// name is "" and the namespace is the pid's. err when the namespace
// cannot be read: the caller cannot be placed, and is refused. The pidfd
// (-1 without one) is the caller's to close: a per-container socket
// keeps it, to ask again at each request (connectorProblem).
func peerProcess(c *net.UnixConn, pid int32) (comm string, ns peerNS, pidfd int, err error) {
	pidfd = -1
	if pid <= 0 {
		// SO_PEERCRED gives 0 for a process the reader's PID namespace
		// cannot see: one of a parent or sibling namespace.
		return "", ns, -1, errors.New("its process is not visible in the gateway's PID namespace")
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return "", ns, -1, err
	}
	if err := raw.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			pidfd = v
		}
	}); err != nil {
		return "", ns, -1, err
	}
	comm, ns, err = placeProcess(pid, pidfd)
	if err != nil {
		closePidfd(pidfd)
		pidfd = -1
	}
	return comm, ns, pidfd, err
}

// placeProcess reads what peerProcess says of pid, confirmed by pidfd.
func placeProcess(pid int32, pidfd int) (comm string, ns peerNS, err error) {
	b, commErr := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	for _, n := range []struct {
		kind string
		same *bool
	}{{"pid", &ns.samePID}, {"user", &ns.sameUser}} {
		theirs, err := nsID(fmt.Sprintf("/proc/%d/ns/%s", pid, n.kind))
		if err != nil {
			return "", ns, fmt.Errorf("read its %s namespace: %w", n.kind, err)
		}
		own, err := ownNamespace(n.kind)
		if err != nil {
			return "", ns, fmt.Errorf("read the gateway's %s namespace: %w", n.kind, err)
		}
		*n.same = theirs == own
	}
	if pidfd < 0 {
		return "", ns, nil
	}
	// Signal 0 checks the process without signalling it
	// (pidfd_send_signal(2)): ESRCH once it has exited. EPERM says it is
	// alive but another user's, which root without CAP_KILL (the packaged
	// unit's bounding set) may not signal.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil && err != unix.EPERM {
		return "", peerNS{}, fmt.Errorf("it exited before the gateway could place it: %w", err)
	}
	if commErr == nil {
		comm = strings.TrimSuffix(string(b), "\n")
	}
	return comm, ns, nil
}

// connectorProblem says why the process that made a per-container
// socket's connection no longer stands for it ("" when it does): it has
// exited, or it no longer runs as root in its container (every one of
// its real, effective, saved and file-system uids 0). Any other uid's
// process is a host process's to trace, with no capability, when their
// uids are the same (ptrace(2)), and so to take the connection from
// (pidfd_getfd(2)); root's only host root may trace. Asked at each
// request: a process that connected as root and then dropped to another
// uid, keeping the connection (su-exec, gosu), is caught at its next.
func connectorProblem(pidfd int, pid int32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if pidfd >= 0 {
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil && err != unix.EPERM {
			return fmt.Sprintf("the process that made this connection (pid %d) has exited: the connection is nobody's now", pid)
		}
	}
	if err != nil {
		return fmt.Sprintf("the process that made this connection (pid %d) cannot be read: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		for _, u := range strings.Fields(rest) {
			if u != "0" {
				return fmt.Sprintf("the process that made this connection (pid %d) runs as uid %s now, not root: any process of that uid on the host could take the connection", pid, u)
			}
		}
		return ""
	}
	return fmt.Sprintf("the process that made this connection (pid %d) has no uids in its status", pid)
}

// peerNS is where a caller's process runs, next to the gateway.
type peerNS struct {
	// samePID: in the gateway's PID namespace (the host's), not a
	// container's.
	samePID bool
	// sameUser: in the gateway's user namespace. A process in another
	// PID namespace but this user namespace was put there with
	// CAP_SYS_ADMIN (dockerd's containers, without userns-remap); an
	// account makes its own PID namespace only inside a user namespace
	// of its own ('unshare -Urp', unprivileged).
	sameUser bool
}

// ownNamespaces are the gateway's PID and user namespaces, read once: a
// process does not change its own PID namespace (setns(2) changes its
// children's), and the gateway joins no user namespace.
var ownNamespaces = sync.OnceValue(func() map[string][2]string {
	m := map[string][2]string{}
	for _, kind := range []string{"pid", "user"} {
		id, err := nsID("/proc/self/ns/" + kind)
		e := ""
		if err != nil {
			e = err.Error()
		}
		m[kind] = [2]string{id, e}
	}
	return m
})

// ownNamespace is the gateway's namespace of kind ("pid", "user").
func ownNamespace(kind string) (string, error) {
	v := ownNamespaces()[kind]
	if v[1] != "" {
		return "", errors.New(v[1])
	}
	return v[0], nil
}

// nsID identifies the namespace a /proc/PID/ns file names: its device and
// inode (namespaces(7)).
func nsID(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%s: no inode", path)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// fileOwner is the uid owning a file.
func fileOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// closePidfd closes a pidfd peerProcess returned (-1: none).
func closePidfd(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
