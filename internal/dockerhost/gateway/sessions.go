package gateway

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// sessions are the client connections open through the gateway, by
// certificate: a certificate revoked while its holder has a connection
// open (a kept-alive client, a 'docker exec -it' shell, 'docker logs -f')
// gets that connection closed, hijacked streams included, rather than
// only its next request refused.
type sessions struct {
	mu    sync.Mutex
	conns map[net.Conn]*session
}

type session struct {
	// leaf is the client certificate; nil on one of the gateway's own
	// unix sockets, whose caller is peer.
	leaf *x509.Certificate
	peer *authz.Peer
	// also are closed with the connection: the other end of a hijacked
	// stream, on dockerd's socket.
	also []io.Closer
	cut  bool
	// why the connection was cut, for its stream's recording.
	why string
}

func newSessions() *sessions { return &sessions{conns: map[net.Conn]*session{}} }

// track records that c carries requests of leaf's holder.
func (s *sessions) track(c net.Conn, leaf *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		s.conns[c] = &session{leaf: leaf}
	}
}

// attach closes x with c's session; it reports false (and x is to be
// closed by the caller) when the session was cut already.
func (s *sessions) attach(c net.Conn, x io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.conns[c]
	if !ok || ss.cut {
		return false
	}
	ss.also = append(ss.also, x)
	return true
}

func (s *sessions) forget(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// cutWhere closes every connection whose certificate refuse refuses
// (refuse is asked once per certificate), and returns what it cut.
func (s *sessions) cutWhere(refuse func(*x509.Certificate) authz.Caller) []cut {
	s.mu.Lock()
	list := make(map[net.Conn]*x509.Certificate, len(s.conns))
	for c, ss := range s.conns {
		if !ss.cut && ss.leaf != nil {
			list[c] = ss.leaf
		}
	}
	s.mu.Unlock()
	// One question per certificate (issuer and serial), however many
	// connections it has open.
	verdicts := map[string]authz.Caller{}
	var out []cut
	for c, leaf := range list {
		key := string(leaf.RawIssuer) + "/" + leaf.SerialNumber.String()
		v, ok := verdicts[key]
		if !ok {
			v = refuse(leaf)
			verdicts[key] = v
		}
		// A certificate a renewal superseded is refused from its next
		// request on, but what it has open goes on: its holder renewed
		// (a laptop agent does every day), nobody took access away. A
		// revocation, an expiry or an inventory that cannot be read cuts.
		if v.Refused == "" || v.Superseded {
			continue
		}
		s.closeFor(c, v.Refused)
		out = append(out, cut{caller: v, leaf: leaf, remote: c.RemoteAddr().String()})
	}
	return out
}

type cut struct {
	caller authz.Caller
	leaf   *x509.Certificate
	remote string
}

// close closes c and what is attached to it.
func (s *sessions) close(c net.Conn) {
	s.mu.Lock()
	ss, ok := s.conns[c]
	var also []io.Closer
	if ok {
		ss.cut = true
		also, ss.also = ss.also, nil
	}
	s.mu.Unlock()
	c.Close()
	for _, x := range also {
		x.Close()
	}
}

// closeAll closes every connection (the gateway stops).
func (s *sessions) closeAll() {
	s.mu.Lock()
	var all []net.Conn
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		s.closeFor(c, "the gateway stopped")
	}
}

// watch checks every open connection's certificate every interval until
// ctx ends, cutting those the engine no longer accepts, each with an
// audit record.
func (g *Gateway) watch(ctx context.Context) {
	t := time.NewTicker(g.cfg.WatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.cutLocal()
		for _, c := range g.sess.cutWhere(g.cfg.Engine.Identify) {
			g.cfg.Engine.Logf("", "closed a connection of %q (serial %s) from %s: %s", c.caller.ID.User, c.caller.ID.Serial, c.remote, c.caller.Refused)
			g.cfg.Engine.Audit(authz.AuditRecord{Time: g.cfg.Engine.Now(), Phase: PhaseSession, Decision: authz.DecisionDeny,
				User: c.caller.ID.User, Serial: c.caller.ID.Serial, CN: c.caller.CN, Issuer: c.caller.Issuer, Source: string(authz.SourceTCP),
				Rule: RuleSessionCut, Reason: "open connection closed: " + c.caller.Refused})
		}
	}
}
