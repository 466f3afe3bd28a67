package authority

import (
	"errors"
	"fmt"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
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
var ErrAlreadyRevoked = engine.ErrAlreadyRevoked

// Revoke marks every certificate of a name (or the one with a serial, or a
// unique serial prefix) revoked with an RFC 5280 5.3.1 reason, and writes
// the CRL in the same change: the inventory never says revoked while
// crl.pem does not list it. Which certificates is the engine's rule
// (engine.Revoke), the online CA's too.
func (a *Authority) Revoke(key string, reason int, now time.Time) (*RevokeResult, error) {
	rv, err := engine.Revoke(a.Store, engine.RevokeRequest{Key: key, Reason: reason, Now: now})
	var caErr *engine.CAError
	var amb *engine.AmbiguousError
	switch {
	case errors.Is(err, engine.ErrNoSuchCertificate):
		return nil, hint(fmt.Errorf("no certificate named %q or with that serial", key), "run 'dtls list' to see names and serials")
	case errors.As(err, &caErr):
		return nil, hint(err, "replace it with 'dtls rotate-ca'")
	case errors.As(err, &amb):
		return nil, hint(err, "revoke by serial: 'dtls list' shows them")
	case err != nil:
		return nil, err
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
	t.DB = rv.Change
	res := &RevokeResult{Revoked: rv.Targets, LastExpiry: rv.LastExpiry}
	if res.CRL, err = a.addCRL(t, []*pki.CA{ca, old}, rv.Targets, now); err != nil {
		return nil, err
	}
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return res, nil
}
