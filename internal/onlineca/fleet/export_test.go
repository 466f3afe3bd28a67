package fleet

import (
	"context"
	"crypto/x509"
)

// CRL fetches the revocation list (PathCRL), DER, and checks only that it
// parses: the caller checks its signature with the CA certificate it
// trusts, since the signature, not the connection, makes the list the
// CA's (RFC 5280 6.3.3).
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	der, err := c.getRaw(ctx, hc, PathCRL)
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseRevocationList(der); err != nil {
		return nil, c.answerError(PathCRL, "not a DER CRL: %v", err)
	}
	return der, nil
}
