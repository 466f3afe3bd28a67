package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tlsFiles serves the TLS configuration of the gateway's listener from its
// files, reloaded when they change: dockerd reads its TLS files only at
// start (moby#23936), so that every renewal of the server certificate and
// every step of a CA rotation restarts it; the gateway takes them for the
// next handshake instead (crypto/tls Config.GetConfigForClient), and the
// connections already open keep the certificates they were made with.
type tlsFiles struct {
	cert, key, ca string
	every         time.Duration
	logf          func(key, format string, args ...any)

	mu      sync.Mutex
	checked time.Time
	stamps  [3]stamp
	cfg     atomic.Pointer[tls.Config]
}

// stamp tells whether a file changed: atomic replacement (a new file
// renamed over the old) and writes in place both change the size or the
// modification time.
type stamp struct {
	size  int64
	mtime int64
	err   string
}

func newTLSFiles(cert, key, ca string, every time.Duration, logf func(key, format string, args ...any)) (*tlsFiles, error) {
	f := &tlsFiles{cert: cert, key: key, ca: ca, every: every, logf: logf}
	f.stamps = f.stat()
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cfg.Store(c)
	f.checked = time.Now()
	return f, nil
}

func (f *tlsFiles) stat() [3]stamp {
	var s [3]stamp
	for i, p := range []string{f.cert, f.key, f.ca} {
		fi, err := os.Stat(p)
		if err != nil {
			s[i].err = err.Error()
			continue
		}
		s[i].size, s[i].mtime = fi.Size(), fi.ModTime().UnixNano()
	}
	return s
}

// load reads the three files into a server configuration: the key pair
// must match (tls.LoadX509KeyPair), the CA bundle must hold a certificate.
func (f *tlsFiles) load() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("server certificate %q and key %q: %w", f.cert, f.key, err)
	}
	b, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %q: %w", f.ca, errors.New("no PEM certificate in it"))
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: the gateway parses every request itself with
		// net/http's HTTP/1 server, and the Docker API needs nothing else
		// (BuildKit's h2c runs inside an upgraded, opaque stream).
		NextProtos: []string{"http/1.1"},
		// No resumption: every connection proves its certificate again
		// against the CA bundle in force (resumed sessions skipped that
		// check in CVE-2025-68121's class of bugs).
		SessionTicketsDisabled: true,
	}, nil
}

// config is GetConfigForClient: the files are looked at most once per
// every; a change is loaded, and a set that cannot be loaded (half
// written, a key that does not match) leaves the last good one in force,
// logged.
func (f *tlsFiles) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	f.check(time.Now())
	return f.cfg.Load(), nil
}

func (f *tlsFiles) check(now time.Time) {
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	if now.Sub(f.checked) < f.every && !now.Before(f.checked) {
		return
	}
	f.checked = now
	s := f.stat()
	if s == f.stamps {
		return
	}
	f.stamps = s
	c, err := f.load()
	if err != nil {
		f.logf("tls", "TLS files changed but cannot be loaded, keeping the last good ones: %v", err)
		return
	}
	f.cfg.Store(c)
	f.logf("", "TLS files reloaded (%s, %s, %s)", f.cert, f.key, f.ca)
}
