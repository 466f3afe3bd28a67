package engine

import (
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// ListScope says which records a revocation list holds.
type ListScope struct {
	// CASerial keeps the certificates of that CA only: the CA host's
	// crl.pem holds one list per CA, each signed by its own CA (RFC 5280
	// 5: a list speaks for its issuer). "" keeps every CA's: the online
	// CA signs one list of both CAs of a rotation, which dtls's
	// authorization plugin reads by serial (package revlist).
	CASerial string
	// Superseded lists superseded certificates too, with reason
	// superseded (4): the online CA's renewals supersede certificates
	// whose keys may be lost, and its plugins must refuse them.
	Superseded bool
	// KeepExpired keeps revoked certificates past their NotAfter: the CA
	// host's crl.pem lists every revocation of its inventory (RFC 5280
	// 3.3 lets a list drop them; the online CA does, to bound the list).
	KeepExpired bool
	// Pending are records a change is about to revoke, listed before
	// the inventory has them: the CA host writes crl.pem in the same
	// journaled change.
	Pending []store.Record
}

// Entries are the entries of a revocation list at now, sorted by serial.
// A revocation with no time, or one after now, is dated now; a superseded
// certificate is dated its issue, a bound below its supersession, which
// the inventory does not keep (what a verifier acts on is the serial).
func Entries(inv Inventory, sc ListScope, now time.Time) ([]pki.Revoked, error) {
	recs, err := inv.ByStatus(store.StatusRevoked)
	if err != nil {
		return nil, err
	}
	if sc.Superseded {
		superseded, err := inv.ByStatus(store.StatusSuperseded)
		if err != nil {
			return nil, err
		}
		recs = append(recs, superseded...)
	}
	var entries []pki.Revoked
	for _, r := range append(recs, sc.Pending...) {
		if r.Kind == store.KindCA || (sc.CASerial != "" && r.CASerial != sc.CASerial) || (!sc.KeepExpired && expired(r, now)) {
			continue
		}
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("record %q has an invalid serial %q", r.Name, r.Serial)
		}
		e := pki.Revoked{Serial: n, At: r.RevokedAt, Reason: r.Reason}
		if r.Status == store.StatusSuperseded {
			e.At, e.Reason = r.NotBefore, pki.Reasons["superseded"]
		}
		if e.At.IsZero() || e.At.After(now) {
			e.At = now
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b pki.Revoked) int { return a.Serial.Cmp(b.Serial) })
	return entries, nil
}

// SignCRL signs a revocation list of entries with ca, valid from now for
// validity (pki's default when zero), and returns it (PEM) with its
// number. The number (RFC 5280 5.2.3: monotonically increasing) is
// committed to the inventory before the list is signed: a CA restarted
// with its clock set back, a CA host whose change was undone, or another
// online CA instance on the same PostgreSQL database never signs a lower
// one, which every plugin would refuse (package revlist). atLeast is a
// floor (the caller's time-based number), so that the numbers of an
// inventory from before that record keep growing.
func SignCRL(inv Inventory, ca *pki.CA, entries []pki.Revoked, atLeast int64, now time.Time, validity time.Duration) ([]byte, int64, error) {
	number, err := inv.NextCRLNumber(atLeast)
	if err != nil {
		return nil, 0, err
	}
	crlPEM, err := ca.CRL(entries, number, now, validity)
	if err != nil {
		return nil, 0, err
	}
	return crlPEM, number, nil
}
