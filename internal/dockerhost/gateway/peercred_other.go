//go:build !linux

package gateway

import (
	"errors"
	"io/fs"
	"net"
)

// peerCred: the local socket's identities are Linux's SO_PEERCRED; on
// other systems every local connection is refused.
func peerCred(*net.UnixConn) (uid, gid uint32, pid int32, err error) {
	return 0, 0, 0, errors.New("peer credentials (SO_PEERCRED) are read on Linux only")
}

// peerProcess: Linux's only (the local socket is refused anyway).
func peerProcess(*net.UnixConn, int32) (string, peerNS, int, error) {
	return "", peerNS{}, -1, errors.New("a caller's namespaces are read on Linux only")
}

// connectorProblem: Linux's only.
func connectorProblem(int, int32) string { return "a caller's process is read on Linux only" }

// peerNS: Linux's only.
type peerNS struct{ samePID, sameUser bool }

// fileOwner: not checked outside Linux (the local socket is refused
// there anyway).
func fileOwner(fs.FileInfo) (uint32, bool) { return 0, false }

// closePidfd: no pidfds outside Linux.
func closePidfd(int) {}
