// Package cafront is the one face of a CA that the commands which can act
// on either kind call: the CA of this host's state directory
// (internal/cahost/authority) or an online CA through its operator API
// (internal/onlineca/fleet's client, authenticated with an operator's
// bundle). As cfssl's signer.Signer has a local and a remote
// implementation (cfssl signer/local, signer/remote), CA has Local and
// Remote; Open picks one from the flags' values, so that a command parses
// its flags, opens, calls one method and renders the result.
//
// Like every library of dtls it never prints: results say what happened,
// and whether it happened at an online CA (Online), which the command's
// message depends on.
package cafront

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// CA is a CA a command acts on, local or online.
type CA interface {
	// Where names the CA: its state directory, or its URL.
	Where() string
	// Inventory is every certificate the CA issued, with its clients'
	// roles. now dates the rotation in progress (local).
	Inventory(ctx context.Context, now time.Time) (*Inventory, error)
	// Revoke revokes every good certificate of a name, or the one with
	// a serial (or a unique prefix of one), with an RFC 5280 5.3.1
	// reason, and has the CA sign a new revocation list.
	Revoke(ctx context.Context, key string, reason int, now time.Time) (*Revocation, error)
	// Close releases the state directory's lock, or the client's idle
	// connections.
	Close() error
}

// Config is what Open needs: the values of a command's --state-dir,
// --ca-url and --operator.
type Config struct {
	// StateDir is the local CA's state directory.
	StateDir string
	// CAURL is the online CA's URL; with Operator, Open returns a Remote.
	CAURL string
	// Operator is the operator's bundle directory: ca.pem, cert.pem and
	// key.pem of a certificate with the role fleet.OperatorRole.
	Operator string
	// OpenLocal opens the state directory the way the command wants (its
	// passphrase source, its report of a recovery); nil opens it with
	// authority.Options{}.
	OpenLocal func(stateDir string) (*authority.Authority, error)
}

// Open returns the CA the configuration names: the online CA at CAURL
// (Remote, with Operator's bundle) when CAURL is set, else the CA of
// StateDir (Local).
func Open(c Config) (CA, error) {
	if c.CAURL != "" {
		return OpenRemote(c.CAURL, c.Operator)
	}
	open := c.OpenLocal
	if open == nil {
		open = func(dir string) (*authority.Authority, error) { return authority.Open(dir, authority.Options{}) }
	}
	a, err := open(c.StateDir)
	if err != nil {
		return nil, err
	}
	return &Local{Authority: a}, nil
}

// Inventory is a CA's certificates.
type Inventory struct {
	Records []pki.Record
	// Roles are the clients' authorization roles, by name.
	Roles map[string]string
	// CurrentCA is the serial of the CA that signs now.
	CurrentCA string
	// Rotation is where the local CA's rotation is; nil outside one, and
	// for an online CA.
	Rotation *authority.RotationStatus
	// Online is true for an online CA's inventory.
	Online bool
}

// RenewBefore is how close to its end a certificate of the inventory is
// "expiring": a local CA's are renewed by 'dtls renew --expiring' within
// authority.RenewBefore; an online CA's by 'dtls agent' (or 'dtls renew
// --server') once two thirds of their lifetime have passed, so one with
// less than a third left was not renewed when it should have been.
func (inv *Inventory) RenewBefore(r pki.Record) time.Duration {
	if inv.Online {
		return r.NotAfter.Sub(r.NotBefore) / 3
	}
	return authority.RenewBefore
}

// Revocation is what Revoke did.
type Revocation struct {
	// Revoked are the certificates revoked now.
	Revoked []pki.Record
	// LastExpiry is when the last of them expires: a daemon without the
	// authorization plugin checks no CRL (moby#27778) and accepts it until
	// then.
	LastExpiry time.Time
	// CRL is the local CA's crl.pem written in the same change; nil for
	// an online CA, which serves its list at fleet.PathCRL.
	CRL *authority.CRLResult
	// Online is true when an online CA revoked.
	Online bool
}

// Local is the CA of a state directory.
type Local struct {
	Authority *authority.Authority
}

// Where is the state directory.
func (l *Local) Where() string { return l.Authority.Dir }

// Inventory reads the inventory, its roles and, during a rotation, where
// it is (an unreadable status leaves it out).
func (l *Local) Inventory(_ context.Context, now time.Time) (*Inventory, error) {
	recs, err := l.Authority.Store.All()
	if err != nil {
		return nil, err
	}
	roles, err := l.Authority.Store.Roles()
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Records: recs, Roles: roles, CurrentCA: authority.CurrentCASerial(l.Authority.Dir)}
	if l.Authority.InRotation() {
		inv.Rotation, _ = l.Authority.RotationStatus(now)
	}
	return inv, nil
}

// Revoke revokes in the inventory and writes crl.pem in the same change
// (authority.Authority.Revoke).
func (l *Local) Revoke(_ context.Context, key string, reason int, now time.Time) (*Revocation, error) {
	res, err := l.Authority.Revoke(key, reason, now)
	if err != nil {
		return nil, err
	}
	return &Revocation{Revoked: res.Revoked, LastExpiry: res.LastExpiry, CRL: res.CRL}, nil
}

// Close releases the state directory.
func (l *Local) Close() error {
	l.Authority.Close()
	return nil
}

// Remote is an online CA, called through its operator API.
type Remote struct {
	Client *fleet.Client
	// Operator is the operator's bundle directory the client
	// authenticates with.
	Operator string
}

// OpenRemote is the online CA at url, called with the operator's bundle
// in dir, which it authenticates with and whose ca.pem alone it trusts.
func OpenRemote(url, dir string) (*Remote, error) {
	id, err := bundle.LoadIdentity(dir)
	if err != nil {
		return nil, &OperatorError{Dir: dir, Err: err}
	}
	c, err := agent.ClientFor(id, url)
	if err != nil {
		return nil, fmt.Errorf("operator %w", err)
	}
	return &Remote{Client: c, Operator: dir}, nil
}

// OperatorError is an operator's bundle that cannot be read.
type OperatorError struct {
	Dir string
	Err error
}

func (e *OperatorError) Error() string { return "operator " + e.Err.Error() }
func (e *OperatorError) Unwrap() error { return e.Err }

// Where is the CA's URL.
func (r *Remote) Where() string { return r.Client.URL }

// Inventory asks the CA for its inventory (fleet.PathCerts); the roles
// and the current CA are read from the certificates (fleet.InventoryRoles).
func (r *Remote) Inventory(ctx context.Context, _ time.Time) (*Inventory, error) {
	recs, err := r.Client.Certs(ctx)
	if err != nil {
		return nil, err
	}
	roles, current := fleet.InventoryRoles(recs)
	// Oldest first, as the local inventory lists them.
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].NotBefore.Before(recs[j].NotBefore) })
	return &Inventory{Records: recs, Roles: roles, CurrentCA: current, Online: true}, nil
}

// Revoke asks the CA to revoke (fleet.PathRevoke): it signs a new list at
// once.
func (r *Remote) Revoke(ctx context.Context, key string, reason int, _ time.Time) (*Revocation, error) {
	res, err := r.Client.Revoke(ctx, fleet.RevokeRequest{Key: key, Reason: reason})
	if err != nil {
		return nil, err
	}
	rev := &Revocation{Revoked: res.Revoked, Online: true}
	for _, rec := range res.Revoked {
		if rec.NotAfter.After(rev.LastExpiry) {
			rev.LastExpiry = rec.NotAfter
		}
	}
	return rev, nil
}

// Close closes the client's idle connections.
func (r *Remote) Close() error {
	r.Client.CloseIdleConnections()
	return nil
}

// ErrNoOperatorCA is an operator's bundle whose dtls.json records no CA.
var ErrNoOperatorCA = errors.New("the operator's bundle records no CA URL (dtls.json ca_url)")

// OperatorCAURL is the online CA an operator's bundle was made by or
// enrolled with: its dtls.json's ca_url.
func OperatorCAURL(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile))
	if err != nil {
		return "", err
	}
	var m clientenv.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dir, clientenv.MetaFile), err)
	}
	if m.CAURL == "" {
		return "", ErrNoOperatorCA
	}
	return m.CAURL, nil
}
