// Package engine is dtls's one CA engine: the rules by which a CA host
// issues, renews and revokes certificates, builds its revocation list and
// steps through a rotation, over an inventory. Both faces use it: package
// authority (the command line on the CA host, its state directory and
// journal) and package caserver (the online CA's HTTP server, its tokens
// and who may call what), as smallstep's `ca` is a face over its
// `authority`. A rule fixed here is fixed for both.
//
// The engine takes values and an Inventory and returns results and the
// inventory change to make; the files it writes are those of a change
// given to its Journal (journal.go), which makes a change of several
// files and the inventory all-or-nothing for both faces (each face's
// opening of its state directory finishes or undoes a killed run's change
// by Recover, and reads its CAs by LoadCA), and the files
// of a rotation's steps, which it writes through the journal over each
// face's names (rotatefiles.go), or, for a new state directory, built
// whole next to its place (NewState, state.go). It never prints
// and speaks no HTTP; internal/codecheck enforces that it imports neither
// face.
package engine

import (
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// Inventory is what the engine reads and changes: package store's
// inventory, on SQLite (the CA host's dtls.db, the online CA's
// dtls-ca.db) or PostgreSQL (an online CA's --db-url).
type Inventory interface {
	Get(serial string) (*store.Record, error)
	// Find is the records a key names: a name, a serial or a unique
	// serial prefix.
	Find(key string) ([]store.Record, error)
	ByName(name string) ([]store.Record, error)
	ByStatus(st store.Status) ([]store.Record, error)
	ByKind(k store.Kind) ([]store.Record, error)
	Role(name string) (string, error)
	Roles() (map[string]string, error)
	Apply(c store.Change) error
	// NextCRLNumber records and returns the next revocation list's
	// number, above every one returned before on this inventory and at
	// least atLeast.
	NextCRLNumber(atLeast int64) (int64, error)
}

// The inventory of both faces is a *store.Store.
var _ Inventory = (*store.Store)(nil)

// expired reports whether r's certificate is past its NotAfter at now.
func expired(r store.Record, now time.Time) bool { return !now.Before(r.NotAfter) }
