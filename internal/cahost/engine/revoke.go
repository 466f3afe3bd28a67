package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// RevokeRequest asks to revoke the certificates a key names.
type RevokeRequest struct {
	// Key is a name (every certificate of that holder), a serial or a
	// unique serial prefix (that one certificate).
	Key string
	// Reason is an RFC 5280 5.3.1 reason code.
	Reason int
	Now    time.Time
}

// Errors of Revoke.
var (
	// ErrNoSuchCertificate: the key names no certificate.
	ErrNoSuchCertificate = errors.New("no certificate with that name or serial")
	// ErrAlreadyRevoked: every certificate the key names is already
	// revoked or expired.
	ErrAlreadyRevoked = errors.New("every matching certificate is already revoked or expired")
)

// CAError is a revocation refused because the key names a CA: a CA is
// replaced by a rotation, never revoked.
type CAError struct{ Record store.Record }

func (e *CAError) Error() string {
	return fmt.Sprintf("%q is the CA (serial %s): a CA cannot be revoked", e.Record.Name, e.Record.Serial)
}

// AmbiguousError is a revocation refused because the key names more than
// one holder (a client and a server certificate of one name, or a name
// that is also a serial prefix): revoking all would cut more than was
// meant.
type AmbiguousError struct {
	Key     string
	Holders []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q names more than one certificate holder: %s", e.Key, strings.Join(e.Holders, ", "))
}

// Revocation is what Revoke decided: the records to revoke (with their
// new status, reason and time) and the inventory change that does it.
type Revocation struct {
	Targets []store.Record
	Change  store.Change
	// LastExpiry is when the last target expires: dockerd checks no CRL
	// (moby#27778) and accepts a revoked certificate until then.
	LastExpiry time.Time
}

// Revoke decides a revocation: the certificates r.Key names that are not
// revoked yet nor expired. It changes nothing: the caller applies Change,
// with its revocation list (the CA host journals both as one change).
func Revoke(inv Inventory, r RevokeRequest) (*Revocation, error) {
	found, err := inv.Find(r.Key)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%q: %w", r.Key, ErrNoSuchCertificate)
	}
	names := map[string]bool{}
	var targets []store.Record
	for _, rec := range found {
		if rec.Kind == store.KindCA {
			return nil, &CAError{Record: rec}
		}
		names[fmt.Sprintf("%s %q", rec.Kind, rec.Name)] = true
		// A name revokes its superseded, unexpired certificates too, on
		// both faces of the CA: the CA host's crl.pem lists revoked ones
		// alone (dockerd would still accept a superseded one), and the
		// gateway keeps the open streams of a certificate a renewal
		// superseded, but cuts those of a revoked one.
		if rec.Status != store.StatusRevoked && !expired(rec, r.Now) {
			targets = append(targets, rec)
		}
	}
	if len(names) > 1 {
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		return nil, &AmbiguousError{Key: r.Key, Holders: list}
	}
	if targets, err = withPredecessors(inv, targets, r.Now); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%q: %w", r.Key, ErrAlreadyRevoked)
	}
	at := r.Now.UTC()
	res := &Revocation{}
	for i := range targets {
		targets[i].Status, targets[i].Reason, targets[i].RevokedAt = store.StatusRevoked, r.Reason, at
		res.Change.Revoke = append(res.Change.Revoke, store.Revocation{Serial: targets[i].Serial, Reason: r.Reason, At: at})
		if targets[i].NotAfter.After(res.LastExpiry) {
			res.LastExpiry = targets[i].NotAfter
		}
	}
	res.Targets = targets
	if targets[0].Name == r.Key {
		// The holder by name: its enrolment tokens not used yet would
		// enrol it again (the online CA's; the CA host has none).
		res.Change.CancelTokens = []store.TokenHolder{{Kind: targets[0].Kind, Name: targets[0].Name}}
	}
	return res, nil
}

// withPredecessors adds to targets the other unexpired, unrevoked
// certificates of each target's holder (same name and kind) that stand
// for the same access. A good target takes the certificates it
// superseded: a renewal's predecessors, whose open streams the gateway
// keeps while a successor stands for them (a shell on a superseded
// certificate outlived the revocation of its successor by serial). A
// superseded target takes those issued after it: the renewal that
// superseded it may be a thief's, made with the stolen certificate
// before the operator revoked the serial found in the owner's bundle.
func withPredecessors(inv Inventory, targets []store.Record, now time.Time) ([]store.Record, error) {
	seen := map[string]bool{}
	for _, t := range targets {
		seen[t.Serial] = true
	}
	out := targets
	for i := 0; i < len(out); i++ {
		t := out[i]
		if t.Status != store.StatusGood && t.Status != store.StatusSuperseded {
			continue
		}
		named, err := inv.ByName(t.Name)
		if err != nil {
			return nil, err
		}
		for _, rec := range named {
			if rec.Kind != t.Kind || seen[rec.Serial] || expired(rec, now) {
				continue
			}
			older := t.Status == store.StatusGood && rec.Status == store.StatusSuperseded
			later := t.Status == store.StatusSuperseded && (rec.Status == store.StatusGood || rec.Status == store.StatusSuperseded) && !rec.NotBefore.Before(t.NotBefore)
			if older || later {
				seen[rec.Serial] = true
				out = append(out, rec)
			}
		}
	}
	return out, nil
}
