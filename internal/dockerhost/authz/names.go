package authz

import (
	"crypto/x509"
	"sync"
)

// certNames keeps, for the certificates an engine has seen, the serial
// (as the inventory writes it) and the issuer (RFC 2253) that every
// request's identity and audit record carry, keyed by the certificate's
// DER bytes, from which crypto/x509 parsed both. A client makes all its
// requests with one certificate; the map is emptied when it reaches
// maxCertNames, so that many certificates cost memory for a while only.
type certNames struct {
	mu sync.Mutex
	m  map[string]certName
}

type certName struct{ serial, issuer string }

const maxCertNames = 1024

func (c *certNames) of(leaf *x509.Certificate) certName {
	if len(leaf.Raw) == 0 {
		// Not parsed from DER (built in a test): nothing to key on.
		return certName{serial(leaf), leaf.Issuer.String()}
	}
	c.mu.Lock()
	n, ok := c.m[string(leaf.Raw)]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = certName{serial(leaf), leaf.Issuer.String()}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCertNames {
		c.m = make(map[string]certName)
	}
	c.m[string(leaf.Raw)] = n
	c.mu.Unlock()
	return n
}
