// Package gateway owns dtls's gateway: a mutual TLS server in front of
// dockerd's unix socket that identifies the caller of every request by its
// client certificate, decides with the same engine as the authorization
// plugin (authz.Engine), and forwards what it allowed over its own
// connections to dockerd. dockerd sees every forwarded request as root on
// its unix socket, so the gateway's decision is the only one: nothing
// reaches dockerd that the gateway did not parse, decide and re-send
// whole, except the bytes of a hijacked stream (exec, attach, BuildKit's
// session) it allowed. Beside TLS it serves unix sockets of its own
// (local.go): the host's accounts, known by their peer credentials, and
// containers, each socket a fixed identity.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// Defaults of Config.
const (
	// DefaultMaxBody bounds the JSON bodies the gateway reads to decide
	// on: dockerd's plugin API takes at most 4 MiB (moby
	// pkg/authorization/authz.go maxBodySize).
	DefaultMaxBody = 4 << 20
	// defaultWatchEvery is how often open connections' certificates are
	// checked again (a revoked one is cut within a second).
	defaultWatchEvery = 250 * time.Millisecond
	// defaultTLSEvery is how often the TLS files are looked at.
	defaultTLSEvery = 500 * time.Millisecond
)

// Audit records the gateway writes besides the engine's.
const (
	// PhaseSession is the phase of a record of an open connection cut.
	PhaseSession = "session"
	// RuleSessionCut names the cut of a connection whose certificate is
	// no longer accepted.
	RuleSessionCut   = "gateway: session cut"
	ruleBodyTooLarge = "gateway: body too large"
	ruleMalformed    = "gateway: malformed request"
	ruleInternal     = "gateway: internal error"
	ruleAuditFailure = "gateway: audit trail not writable"
)

// Config configures a Gateway.
type Config struct {
	// Listeners are the TCP listeners to serve (TLS is the gateway's).
	Listeners []net.Listener
	// DockerSocket is dockerd's unix socket.
	DockerSocket string
	// CertFile, KeyFile and CAFile are the server certificate, its key and
	// the CA bundle client certificates must chain to; reloaded when they
	// change.
	CertFile, KeyFile, CAFile string
	// Engine identifies, decides, audits and keeps the owners' book.
	Engine *authz.Engine
	// MaxBody bounds a JSON body read to decide on (DefaultMaxBody when
	// <= 0); a larger one is refused with 413.
	MaxBody int64
	// WatchEvery is how often open connections are checked again (250ms
	// when <= 0); TLSEvery how often the TLS files are (500ms when <= 0).
	WatchEvery, TLSEvery time.Duration
	// Recording records exec and attach streams; nil records none.
	Recording *Recording
	// LocalSocket is the path of the gateway's local unix socket, whose
	// callers are known by their peer credentials (local.go); "" for
	// none. SocketsFile is the book of per-container sockets (""
	// for none), made in SocketsDir and followed every TLSEvery.
	LocalSocket, SocketsDir, SocketsFile string
}

// Gateway is the server.
type Gateway struct {
	cfg       Config
	tls       *tlsFiles
	srv       *http.Server
	transport *http.Transport
	docker    *dockerd
	sess      *sessions
	recs      recordings
	local     *localSockets

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type connKey struct{}

// New checks the configuration and loads the TLS files (which must be
// good at start).
func New(c Config) (*Gateway, error) {
	switch {
	case c.Engine == nil:
		return nil, errors.New("gateway: no authorization engine")
	case c.DockerSocket == "":
		return nil, errors.New("gateway: no dockerd socket")
	case len(c.Listeners) == 0 && c.LocalSocket == "" && c.SocketsFile == "":
		return nil, errors.New("gateway: no listener")
	case c.SocketsFile != "" && c.SocketsDir == "":
		return nil, errors.New("gateway: a sockets book without a sockets directory")
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.WatchEvery <= 0 {
		c.WatchEvery = defaultWatchEvery
	}
	if c.TLSEvery <= 0 {
		c.TLSEvery = defaultTLSEvery
	}
	g := &Gateway{cfg: c, sess: newSessions()}
	var err error
	if len(c.Listeners) > 0 {
		if g.tls, err = newTLSFiles(c.CertFile, c.KeyFile, c.CAFile, c.TLSEvery, c.Engine.Logf); err != nil {
			return nil, err
		}
	}
	// Last: what New fails on after this must close the sockets.
	if g.local, err = openLocal(c, c.Engine.Logf); err != nil {
		return nil, err
	}
	g.docker = &dockerd{socket: c.DockerSocket}
	g.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.DockerSocket)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	g.srv = &http.Server{
		Handler: g,
		// Streams (exec, attach, logs -f, events) last: no read or write
		// timeout, only for the headers and idle connections.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       10 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          log.New(c.Engine.ErrorLog(), "dtls-gateway: ", 0),
		// "OPTIONS *" goes to ServeHTTP too, to be refused and recorded
		// like any request-target that is not a path: net/http would
		// otherwise answer it itself, with no decision and no record.
		DisableGeneralOptionsHandler: true,
		// No HTTP/2 (a non-nil empty map disables it).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, conn)
		},
		ConnState: func(conn net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				g.sess.forget(conn)
			}
		},
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.prune()
	return g, nil
}

// Serve serves every listener until Close; it returns nil after Close, or
// the first listener's error.
func (g *Gateway) Serve() error {
	if g.cfg.Engine.Mode() == authz.ModeEnforce {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.watch(g.ctx) }()
	}
	ls := make([]net.Listener, 0, len(g.cfg.Listeners)+1)
	if len(g.cfg.Listeners) > 0 {
		outer := &tls.Config{GetConfigForClient: g.tls.config, MinVersion: tls.VersionTLS12}
		for _, l := range g.cfg.Listeners {
			ls = append(ls, tls.NewListener(l, outer))
		}
	}
	if g.local.main != nil {
		ls = append(ls, g.local.main)
	}
	errs := make(chan error, len(ls))
	for _, l := range ls {
		go func(l net.Listener) { errs <- g.srv.Serve(l) }(l)
	}
	g.local.start(g.serveSocket, g.socketRemoved)
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.local.follow(g.ctx, g.cfg.TLSEvery) }()
	var first error
	for range ls {
		err := <-errs
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil && first == nil {
			first = err
			g.Close()
		}
	}
	return first
}

// Close stops the listeners, lets requests in progress end (5 s at most)
// and closes every connection, hijacked streams included.
func (g *Gateway) Close() error {
	g.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := g.srv.Shutdown(ctx)
	g.local.close()
	g.sess.closeAll()
	g.srv.Close()
	g.wg.Wait()
	g.transport.CloseIdleConnections()
	g.docker.closeIdle()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop the gateway: %w", err)
	}
	return nil
}

// countingReader counts what is read through it; the transport may still
// be sending a body when the answer is in, hence the atomic count.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return nil }
