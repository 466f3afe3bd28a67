package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// The gateway's own unix sockets serve plain HTTP (no TLS): the kernel
// says who is calling (SO_PEERCRED), which dockerd's own socket never
// tells its authorization plugin (moby#35711). There are two kinds:
//
//   - the local socket (Config.LocalSocket, /run/dtls/docker.sock), for
//     the host's accounts: each connection is its caller's account,
//     "unix:alice", whose role the policy's unix_users and unix_groups
//     give (authz.Engine.IdentifyLocal). It has mode 0666, so every
//     account may connect, as a TLS port accepts every connection: the
//     policy, not the file mode, decides, and an account it does not name
//     is denied. Its directory is 0755 and the gateway's user's.
//   - per-container sockets (Config.SocketsDir/NAME.sock, listed in
//     Config.SocketsFile by 'dtls gateway socket add'): every caller is
//     "socket:NAME" with the socket's role, whoever it is, since a
//     container's uids mean nothing on the host. A container mounts one
//     where it would have mounted /var/run/docker.sock. The sockets are
//     0666, so that any uid in the container may use them, and their
//     directory 0700: the container gets the file through its bind mount.
//
// Which is which is checked on the caller's process, not only on the
// file's path, which a descriptor passed over another socket or a path
// through /proc/PID/root of a container escapes: the local socket's
// callers run in the gateway's PID namespace, the host's, and a
// per-container socket's in another, a container's (localListener.place).

// Defaults of the gateway's own sockets.
const (
	// DefaultLocalSocket is the local socket's path.
	DefaultLocalSocket = "/run/dtls/docker.sock"
	// DefaultSocketsDir holds the per-container sockets.
	DefaultSocketsDir = "/run/dtls/sockets"
	// localSocketMode lets every account connect: the policy decides.
	localSocketMode fs.FileMode = 0o666
	// localDirMode is the local socket's directory's; socketsDirMode the
	// per-container sockets' directory's.
	localDirMode   fs.FileMode = 0o755
	socketsDirMode fs.FileMode = 0o700
)

// Audit rules of the gateway's own sockets.
const (
	// RuleSocketRemoved names the cut of a connection to a per-container
	// socket that was removed.
	RuleSocketRemoved = "gateway: socket removed"
)

// localListener is one of the gateway's own unix sockets: each connection
// it accepts carries its peer credentials, read at accept. Closing it
// removes its socket file, unless another has replaced it since
// (authz.SocketListener).
type localListener struct {
	*authz.SocketListener
	// name is a per-container socket's name ("" for the local socket).
	name string
	logf func(key, format string, args ...any)
}

// listenLocal makes a unix socket at path with mode 0666, in a directory
// of mode dirMode (made when missing) that must be a real directory (not a
// symbolic link), the gateway's user's, and writable by nobody else:
// otherwise another account could put its own socket in the gateway's
// place. At path it replaces only a stale socket (one nothing answers
// on); a symbolic link, a regular file, a directory or a live socket is
// an error naming the path, and nothing is removed (authz.ListenSocket,
// which binds under a temporary name, sets the mode and renames, so the
// socket never shows at path with bind's mode, which would refuse the
// accounts it is for).
func listenLocal(path, name string, dirMode fs.FileMode, logf func(string, string, ...any)) (*localListener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket path %q is not absolute", path)
	}
	if err := socketDir(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	l, err := authz.ListenSocket(path, localSocketMode)
	if err != nil {
		return nil, err
	}
	return &localListener{SocketListener: l, name: name, logf: logf}, nil
}

// socketDir makes dir (mode mode) when missing and checks it: a directory,
// not a symbolic link, owned by the gateway's user, with no permission
// beyond mode.
func socketDir(dir string, mode fs.FileMode) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(dir, mode); err != nil {
			return err
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("its directory %q is a symbolic link: want a real directory", dir)
	case !fi.IsDir():
		return fmt.Errorf("its directory %q is not a directory", dir)
	case fi.Mode().Perm()&^mode != 0:
		return fmt.Errorf("its directory %q has mode %04o: want %04o or tighter (chmod %04o %s), so that no other account can replace the socket",
			dir, fi.Mode().Perm(), mode, mode, dir)
	}
	if uid, ok := fileOwner(fi); ok && int(uid) != os.Geteuid() {
		return fmt.Errorf("its directory %q is owned by uid %d, not by the gateway's uid %d: another account could replace the socket", dir, uid, os.Geteuid())
	}
	return nil
}

// Accept accepts the next connection whose peer credentials can be read;
// one whose cannot is closed (and logged): it would have no identity.
func (l *localListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, gid, pid, err := peerCred(c)
		if err != nil {
			l.logf("peercred "+l.Path(), "closed a connection to %s: %v", l.Path(), err)
			c.Close()
			continue
		}
		p := authz.Peer{UID: uid, GID: gid, PID: pid, Socket: l.Path(), Name: l.name}
		pc := &peerConn{Conn: c, pidfd: -1}
		p.Comm, p.Misplaced, pc.pidfd = l.place(c, uid, pid)
		pc.peer = p
		return pc, nil
	}
}

// place is the command name of the process that connected c, and why it
// is not one this socket is for ("" when it is: authz.Peer.Misplaced). A
// process that cannot be placed is refused.
// On a per-container socket it also returns the connection's pidfd
// (-1 without one), kept to ask at each request whether the process that
// connected still stands for it (connectorProblem); on the local socket
// none is kept.
func (l *localListener) place(c *net.UnixConn, uid uint32, pid int32) (comm, misplaced string, pidfd int) {
	comm, ns, pidfd, err := peerProcess(c, pid)
	if l.name == "" {
		closePidfd(pidfd)
		pidfd = -1
	}
	switch {
	case err != nil:
		return comm, fmt.Sprintf("the caller (pid %d) cannot be placed: %v", pid, err), pidfd
	case l.name == "" && !ns.samePID:
		return comm, fmt.Sprintf("the caller (pid %d) runs in another PID namespace than the gateway's, a container's: the local socket is for the host's accounts, and a container's uid is not one (give a container its own socket: dtls gateway socket add)", pid), pidfd
	case l.name != "" && ns.samePID:
		return comm, fmt.Sprintf("the caller (pid %d) runs in the host's PID namespace, not in a container: the socket %s is for the container that mounts it", pid, l.Path()), pidfd
	case l.name != "" && !ns.sameUser:
		// 'unshare -Urp' gives an account a PID namespace of its own;
		// dockerd's containers share the host's user namespace
		// (without userns-remap).
		return comm, fmt.Sprintf("the caller (pid %d) runs in a user namespace of its own, not in one of dockerd's containers: the socket %s is for the container that mounts it", pid, l.Path()), pidfd
	case l.name != "" && uid != 0:
		// A process of another uid is a host process's of that uid to
		// trace and take the connection from (connectorProblem): an
		// account's, a DynamicUser service's, an LDAP user's, whether
		// /etc/passwd names it or not.
		return comm, fmt.Sprintf("the caller (pid %d) runs as uid %d in its container: the socket %s takes its root's calls only, since any host process of uid %d could take its connection; run the container as root", pid, uid, l.Path(), uid), pidfd
	}
	return comm, "", pidfd
}

// account is uid's name and the names of its groups (primary and
// supplementary, from the group database, read once per connection: a
// change applies to the next connection). The process's own gid is not one of them: a
// setgid program does not make its caller a member.
func account(uid uint32) (string, []string) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", nil
	}
	ids, _ := u.GroupIds()
	groups := make([]string, 0, len(ids))
	for _, id := range ids {
		if g, err := user.LookupGroupId(id); err == nil {
			groups = append(groups, g.Name)
		}
	}
	return u.Username, groups
}

// peerConn is a connection to one of the gateway's own sockets, with its
// caller as the kernel gave it at connect.
type peerConn struct {
	net.Conn
	peer authz.Peer
	once sync.Once
	// pidfd is the connecting process's, on a per-container socket (-1
	// without one), closed with the connection.
	pidfd     int
	closeOnce sync.Once
}

// Close closes the connection and the connecting process's pidfd.
func (c *peerConn) Close() error {
	c.closeOnce.Do(func() { closePidfd(c.pidfd) })
	return c.Conn.Close()
}

// caller is the connection's peer, its account's name and groups read
// once, at its first request: not in Accept, where a slow user database
// (LDAP through NSS) would hold up every other connection.
func (c *peerConn) caller() *authz.Peer {
	c.once.Do(func() {
		if c.peer.Name == "" {
			c.peer.User, c.peer.Groups = account(c.peer.UID)
		}
	})
	return &c.peer
}

// identify is the caller of a request: by its client certificate on a TLS
// connection, by its peer credentials (or its socket's fixed identity)
// on one of the gateway's own sockets. The connection is tracked, so that
// Close and a revocation or a socket's removal can cut it.
func (g *Gateway) identify(r *http.Request) authz.Caller {
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if pc, ok := conn.(*peerConn); ok {
		p := pc.caller()
		g.sess.trackLocal(conn, p)
		c := g.identifyPeer(*p)
		if c.Refused == "" && p.Name != "" {
			if why := connectorProblem(pc.pidfd, p.PID); why != "" {
				c.Rule, c.Refused = authz.RuleMisplacedCaller, why
			}
		}
		return c
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		// crypto/tls required and verified one (RequireAndVerifyClientCert).
		panic("no client certificate on a TLS connection")
	}
	leaf := r.TLS.PeerCertificates[0]
	if conn != nil {
		g.sess.track(conn, leaf)
	}
	// The inventory is asked on every request, not once per connection.
	return g.cfg.Engine.Identify(leaf)
}

// identifyPeer is a caller of the gateway's own sockets: on a
// per-container socket, its fixed identity with the socket's role now
// (refused once the socket is removed); on the local socket, the account
// with the role the policy gives it now.
func (g *Gateway) identifyPeer(p authz.Peer) authz.Caller {
	if p.Name == "" {
		return g.cfg.Engine.IdentifyLocal(p)
	}
	role, ok := g.local.role(p.Name)
	p.Role = role
	c := g.cfg.Engine.IdentifyLocal(p)
	if !ok {
		c.Rule, c.Refused = RuleSocketRemoved, fmt.Sprintf("the socket %s was removed", p.Socket)
	}
	return c
}

// cutLocal closes the open connections of the gateway's own sockets
// whose caller is now refused, as a revoked certificate's are: an account
// whose role the policy took away, a removed socket's. Each cut has an
// audit record.
func (g *Gateway) cutLocal() {
	s := g.sess
	s.mu.Lock()
	list := map[net.Conn]authz.Peer{}
	for c, ss := range s.conns {
		// A misplaced caller's requests are each refused with the
		// reason: it never holds a stream to cut, and cutting it here
		// would race the answer of its refused request.
		if !ss.cut && ss.peer != nil && ss.peer.Misplaced == "" {
			list[c] = *ss.peer
		}
	}
	s.mu.Unlock()
	for c, p := range list {
		caller := g.identifyPeer(p)
		if caller.Refused == "" {
			continue
		}
		s.closeFor(c, caller.Refused)
		g.cfg.Engine.Logf("", "closed a connection of %q (uid %s, pid %d) to %s: %s", caller.ID.User, caller.UID, caller.PID, p.Socket, caller.Refused)
		rec := baseRecord(caller)
		rec.Time, rec.Phase, rec.Decision, rec.Rule, rec.Reason = g.cfg.Engine.Now(), PhaseSession, authz.DecisionDeny, RuleSessionCut, "open connection closed: "+caller.Refused
		g.cfg.Engine.Audit(rec)
	}
}

// baseRecord is the start of a request's audit record: who called.
func baseRecord(c authz.Caller) authz.AuditRecord {
	return authz.AuditRecord{User: c.ID.User, Serial: c.ID.Serial, CN: c.CN, Issuer: c.Issuer, Source: string(c.ID.Source),
		UID: c.UID, PID: c.PID, Socket: c.Socket}
}

// trackLocal records that c is a connection to one of the gateway's
// own sockets, of p (no certificate: cutLocal checks it again).
func (s *sessions) trackLocal(c net.Conn, p *authz.Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		s.conns[c] = &session{peer: p}
	}
}

// cutSocket closes every connection to the socket at path.
func (s *sessions) cutSocket(path, why string) int {
	s.mu.Lock()
	var list []net.Conn
	for c, ss := range s.conns {
		if ss.peer != nil && ss.peer.Socket == path && !ss.cut {
			list = append(list, c)
		}
	}
	s.mu.Unlock()
	for _, c := range list {
		s.closeFor(c, why)
	}
	return len(list)
}
