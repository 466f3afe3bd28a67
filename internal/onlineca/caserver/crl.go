package caserver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/pki"
)

// The revocation list's timing.
//
// A revocation reaches a daemon within fleet.DefaultCRLRefresh (5 s, the
// plugin's poll) plus CRLMaxAge (1 s, the longest this server serves a
// list without reading the inventory again) plus a round trip: under 10 s.
// A revocation made through this server (PathRevoke) is in the very next
// list; CRLMaxAge covers the ones another process made: `dtls revoke` on
// the CA host, or another CA instance on the same PostgreSQL database.
const (
	// CRLMaxAge is how long a list is served before the inventory is
	// read again; the list is signed again only when what it lists
	// changed, or when its nextUpdate comes near.
	CRLMaxAge = time.Second
	// CRLNextUpdate is the list's nextUpdate after its thisUpdate (RFC
	// 5280 5.1.2.5): how long a plugin may keep using the last list it
	// fetched while the CA is unreachable. An hour rides out a CA restart
	// or a database failover; a plugin polls every 5 s, so a list is
	// never near its nextUpdate while the CA is up.
	CRLNextUpdate = time.Hour
)

// crlCache is the last list signed.
type crlCache struct {
	mu sync.Mutex
	// signer is the serial of the CA that signed der: a rotation's
	// switch and finish sign the list again with the new CA.
	signer string
	// der is the list; read is when (monotonic clock) the inventory was
	// last read for it; sum identifies what it lists.
	der        []byte
	read       time.Time
	sum        [32]byte
	number     int64
	nextUpdate time.Time
}

// invalidate makes the next request read the inventory: this server just
// changed it.
func (c *crlCache) invalidate() {
	c.mu.Lock()
	c.read = time.Time{}
	c.mu.Unlock()
}

// CRL returns the DER revocation list (RFC 5280 5), signed by the CA that
// signs certificates at the moment: every certificate in the inventory
// that is revoked (with its reason) or superseded (reason superseded, 4)
// and has not expired, whichever of this server's CAs (past or present)
// signed it; an expired certificate is refused by every verifier anyway
// (RFC 5280 3.3 lets a CRL drop it). Its CRL number (5.2.3) is above
// that of every list signed before on this inventory (Store.NextCRLNumber),
// across a rotation, a restart and a clock set back too, and at least the
// signing time in milliseconds. It is at most CRLMaxAge old.
//
// Listing the certificates of both CAs of a rotation in one list is
// dtls's own semantics, read by dtls's authorization plugin (package
// revlist), which looks entries up by serial: serials are 159 random bits
// (pki), so the serials of two CAs do not collide. It is not an RFC 5280
// indirect CRL (5.2.4 and 5.3.3, certificate issuer entries): a generic
// verifier would read the list as speaking for its signer only.
func (s *Server) CRL() ([]byte, error) {
	c := &s.crl
	c.mu.Lock()
	defer c.mu.Unlock()
	// The cache's age is measured on the real, monotonic clock: it is
	// about what other processes wrote meanwhile, not about the
	// certificates' clock (Config.Now).
	signer := s.state.Load().signer()
	signerSerial := pki.Serial(signer.Cert)
	if c.der != nil && c.signer == signerSerial && !c.read.IsZero() && time.Since(c.read) < CRLMaxAge {
		return c.der, nil
	}
	read := time.Now()
	now := s.now()
	entries, err := engine.Entries(s.st, engine.ListScope{Superseded: true}, now)
	if err != nil {
		return nil, err
	}
	sum := entriesSum(entries)
	// Signed again when the entries changed, and when less than half
	// of the validity is left, so a plugin always has a list that is
	// good for a while.
	if c.der != nil && c.signer == signerSerial && sum == c.sum && c.nextUpdate.Sub(now) > CRLNextUpdate/2 {
		c.read = read
		return c.der, nil
	}
	// The time in milliseconds is only a floor of the number (see
	// engine.SignCRL).
	crlPEM, number, err := engine.SignCRL(s.st, signer, entries, max(now.UnixMilli(), c.number+1), now, CRLNextUpdate)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(crlPEM)
	if b == nil {
		return nil, fmt.Errorf("sign CRL: no PEM block")
	}
	c.der, c.read, c.sum, c.number, c.nextUpdate, c.signer = b.Bytes, read, sum, number, now.Add(CRLNextUpdate), signerSerial
	return c.der, nil
}

// entriesSum identifies a list's entries.
func entriesSum(entries []pki.Revoked) [32]byte {
	h := sha256.New()
	for _, e := range entries {
		b := e.Serial.Bytes()
		_ = binary.Write(h, binary.BigEndian, uint32(len(b)))
		h.Write(b)
		_ = binary.Write(h, binary.BigEndian, e.At.UnixNano())
		_ = binary.Write(h, binary.BigEndian, int64(e.Reason))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// serveCRL answers the DER list as application/pkix-crl (RFC 2585 4.2).
func (s *Server) serveCRL(w http.ResponseWriter, r *http.Request) error {
	der, err := s.CRL()
	if err != nil {
		return internal(err)
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Content-Length", strconv.Itoa(len(der)))
	// A cache between the plugin and the CA must not hold the list
	// longer than the CA does.
	w.Header().Set("Cache-Control", "max-age=1")
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(der)
	return err
}
