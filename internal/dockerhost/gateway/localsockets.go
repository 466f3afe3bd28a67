package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// localSockets are the gateway's own unix sockets: the local socket, and
// the per-container sockets of the book, followed while the gateway runs.
type localSockets struct {
	main       *localListener // nil without a local socket
	dir, file  string
	logf       func(key, format string, args ...any)
	mu         sync.Mutex
	byName     map[string]*containerSocket
	stamp      bookStamp
	closed     bool
	serveSock  func(*containerSocket)
	removeSock func(*containerSocket)
}

type containerSocket struct {
	l    *localListener
	role string
}

// bookStamp tells whether the book changed: atomicfile replaces it, a
// new file each time; an edit in place changes its time or size.
type bookStamp struct{ fi os.FileInfo }

func stampOf(path string) (bookStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return bookStamp{}, nil
	}
	return bookStamp{fi}, err
}

func (a bookStamp) same(b bookStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}

// hardlinksFile is the kernel's fs.protected_hardlinks setting.
const hardlinksFile = "/proc/sys/fs/protected_hardlinks"

// warnHardlinks says when the kernel lets anyone hard-link a file they do
// not own (fs.protected_hardlinks=0): the local socket (0666) could then
// be linked into a directory a container may mount, such as a bind root
// on the same file system, outside the protected paths, and a container
// running as another account's uid would speak as that account.
func warnHardlinks(path string, logf func(string, string, ...any)) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == "0" {
		logf("", "warning: %s is 0: anyone may hard-link the local socket where a container can mount it; "+
			"set fs.protected_hardlinks = 1 (sysctl(8))", path)
	}
}

// openLocal makes the local socket and the book's sockets; any that
// cannot be made is an error naming its path (the gateway does not
// start), and what was made is closed.
func openLocal(c Config, logf func(string, string, ...any)) (*localSockets, error) {
	s := &localSockets{dir: c.SocketsDir, file: c.SocketsFile, logf: logf, byName: map[string]*containerSocket{}}
	if c.LocalSocket != "" {
		l, err := listenLocal(c.LocalSocket, "", localDirMode, logf)
		if err != nil {
			return nil, err
		}
		s.main = l
		warnHardlinks(hardlinksFile, logf)
	}
	if s.file == "" {
		return s, nil
	}
	st, err := stampOf(s.file)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("read the gateway's sockets %q: %w", s.file, err)
	}
	list, err := ReadSockets(s.file)
	if err != nil {
		s.close()
		return nil, err
	}
	s.stamp = st
	s.sweep(list)
	for _, cs := range list {
		l, err := listenLocal(SocketPath(s.dir, cs.Name), cs.Name, socketsDirMode, logf)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("socket %q: %w", cs.Name, err)
		}
		s.byName[cs.Name] = &containerSocket{l: l, role: cs.Role}
	}
	return s, nil
}

// sweep removes the stale sockets a gateway that did not stop cleanly
// left in the sockets directory: those of sockets removed from the book
// since, and temporary ones (listenLocal's ".s..."). Only sockets nothing
// answers on go; nothing else in the directory is touched.
func (s *localSockets) sweep(keep []ContainerSocket) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return // none yet, or made and checked by listenLocal
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type() != fs.ModeSocket || slices.ContainsFunc(keep, func(x ContainerSocket) bool { return x.Name+".sock" == name }) {
			continue
		}
		if !strings.HasSuffix(name, ".sock") {
			continue
		}
		if err := authz.RemoveStale(filepath.Join(s.dir, name)); err == nil {
			s.logf("", "removed the stale socket %s", filepath.Join(s.dir, name))
		}
	}
}

// role is the role of the per-container socket name, false once it is
// removed.
func (s *localSockets) role(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.byName[name]
	if !ok {
		return "", false
	}
	return cs.role, true
}

// start serves every per-container socket and then those the book adds.
func (s *localSockets) start(serve, remove func(*containerSocket)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveSock, s.removeSock = serve, remove
	for _, cs := range s.byName {
		go serve(cs)
	}
}

// follow reloads the book every interval until ctx ends.
func (s *localSockets) follow(ctx context.Context, every time.Duration) {
	if s.file == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reload()
	}
}

// reload applies a changed book: new sockets are made and served,
// removed ones closed (their connections cut), roles changed from the
// next request. A book that cannot be read changes nothing (logged); a
// socket that cannot be made is logged, and tried again at the next
// change.
func (s *localSockets) reload() {
	st, err := stampOf(s.file)
	if err != nil {
		s.logf("book", "read the gateway's sockets %q: %v", s.file, err)
		return
	}
	s.mu.Lock()
	same := st.same(s.stamp)
	s.mu.Unlock()
	if same {
		return
	}
	list, err := ReadSockets(s.file)
	if err != nil {
		s.logf("book", "%v: the sockets in use are kept", err)
		return
	}
	add := s.apply(st, list)
	// Made without the lock: a stale socket's probe may take a second,
	// and requests on the other sockets ask for their roles meanwhile.
	for _, x := range add {
		l, err := listenLocal(SocketPath(s.dir, x.Name), x.Name, socketsDirMode, s.logf)
		if err != nil {
			s.logf("", "socket %q: %v", x.Name, err)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			l.Close()
			return
		}
		cs := &containerSocket{l: l, role: x.Role}
		s.byName[x.Name] = cs
		s.mu.Unlock()
		s.logf("", "socket %q (%s) added with role %s", x.Name, l.Path(), x.Role)
		go s.serveSock(cs)
	}
}

// apply closes the sockets the book no longer lists and gives the others
// their roles; it returns the sockets to make. reload is its only caller,
// from one goroutine: nothing else adds sockets meanwhile.
func (s *localSockets) apply(st bookStamp, list []ContainerSocket) []ContainerSocket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.stamp = st
	for name, cs := range s.byName {
		if !slices.ContainsFunc(list, func(x ContainerSocket) bool { return x.Name == name }) {
			delete(s.byName, name)
			cs.l.Close()
			go s.removeSock(cs)
			s.logf("", "socket %q (%s) removed", name, cs.l.Path())
		}
	}
	var add []ContainerSocket
	for _, x := range list {
		cs, ok := s.byName[x.Name]
		switch {
		case !ok:
			add = append(add, x)
		case cs.role != x.Role:
			s.logf("", "socket %q: role %s, was %s", x.Name, x.Role, cs.role)
			cs.role = x.Role
		}
	}
	return add
}

// close closes every socket (their files removed).
func (s *localSockets) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.main != nil {
		s.main.Close()
	}
	for _, cs := range s.byName {
		cs.l.Close()
	}
}

// serveSocket serves a per-container socket until it is closed.
func (g *Gateway) serveSocket(cs *containerSocket) {
	err := g.srv.Serve(cs.l)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		g.cfg.Engine.Logf("", "socket %q: %v", cs.l.name, err)
	}
}

// socketRemoved cuts the connections of a removed per-container socket,
// with an audit record each.
func (g *Gateway) socketRemoved(cs *containerSocket) {
	n := g.sess.cutSocket(cs.l.Path(), "the socket was removed")
	if n == 0 {
		return
	}
	g.cfg.Engine.Audit(authz.AuditRecord{Time: g.cfg.Engine.Now(), Phase: PhaseSession, Decision: authz.DecisionDeny,
		User: authz.SocketPrefix + cs.l.name, Source: string(authz.SourceLocal), Socket: cs.l.Path(), Rule: RuleSocketRemoved,
		Reason: fmt.Sprintf("%d open connection(s) closed: the socket was removed", n)})
}
