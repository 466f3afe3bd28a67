package authority

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// RevokeResult is what Revoke did.
type RevokeResult struct {
	Revoked []store.Record
	CRL     *CRLResult
	// LastExpiry is when the last revoked certificate expires: dockerd
	// checks no CRL (moby#27778) and accepts it until then.
	LastExpiry time.Time
}

// ErrAlreadyRevoked is returned when every certificate a key names is
// already revoked or expired.
var ErrAlreadyRevoked = errors.New("every matching certificate is already revoked or expired")

// Revoke marks every certificate of a name (or the one with a serial, or a
// unique serial prefix) revoked with an RFC 5280 5.3.1 reason, and writes
// the CRL in the same change: the inventory never says revoked while
// crl.pem does not list it.
func (a *Authority) Revoke(key string, reason int, now time.Time) (*RevokeResult, error) {
	found, err := a.Store.Find(key)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, hint(fmt.Errorf("no certificate named %q or with that serial", key), "run 'dtls list' to see names and serials")
	}
	var targets []store.Record
	names := map[string]bool{}
	for _, r := range found {
		if r.Kind == store.KindCA {
			return nil, hint(fmt.Errorf("%q is the CA (serial %s): a CA cannot be revoked", r.Name, r.Serial), "replace it with 'dtls rotate-ca'")
		}
		names[fmt.Sprintf("%s %q", r.Kind, r.Name)] = true
		if r.Status != store.StatusRevoked && now.Before(r.NotAfter) {
			targets = append(targets, r)
		}
	}
	if len(names) > 1 {
		// A client and a server certificate of one name (or a name that
		// is also a serial prefix): revoking all would cut more than
		// was meant.
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		return nil, hint(fmt.Errorf("%q names more than one certificate holder: %s", key, strings.Join(list, ", ")),
			"revoke by serial: 'dtls list' shows them")
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%q: %w", key, ErrAlreadyRevoked)
	}
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	old, err := a.OldCA()
	if err != nil {
		return nil, err
	}
	t := newTxn("revoke")
	res := &RevokeResult{}
	for i := range targets {
		targets[i].Status, targets[i].Reason, targets[i].RevokedAt = store.StatusRevoked, reason, now.UTC()
		t.DB.Revoke = append(t.DB.Revoke, store.Revocation{Serial: targets[i].Serial, Reason: reason, At: now.UTC()})
		if targets[i].NotAfter.After(res.LastExpiry) {
			res.LastExpiry = targets[i].NotAfter
		}
	}
	if res.CRL, err = a.addCRL(t, []*pki.CA{ca, old}, targets, now); err != nil {
		return nil, err
	}
	if err := a.commit(t); err != nil {
		return nil, err
	}
	res.Revoked = targets
	return res, nil
}
