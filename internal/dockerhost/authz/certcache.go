package authz

import (
	"crypto/x509"
	"sync"
)

// certCacheSize bounds the parsed certificates kept: about one per person
// or CI job that uses the daemon; when full, the cache starts over.
const certCacheSize = 1024

// certCache maps the PEM text dockerd sends to the parsed certificate, so
// that the plugin parses a client's certificate once rather than on each of
// the two calls of every API request. Parsing is pure: a cached answer is
// the answer parsing would give (revocation and roles are not cached here).
type certCache struct {
	mu sync.Mutex
	m  map[string]*x509.Certificate
}

func (c *certCache) parse(pc pemCertificate) (*x509.Certificate, error) {
	c.mu.Lock()
	cert, ok := c.m[string(pc)]
	c.mu.Unlock()
	if ok {
		return cert, nil
	}
	cert, err := pc.parse()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= certCacheSize {
		c.m = make(map[string]*x509.Certificate)
	}
	c.m[string(pc)] = cert
	c.mu.Unlock()
	return cert, nil
}
