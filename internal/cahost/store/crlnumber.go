package store

// The online CA's last CRL number (RFC 5280 5.2.3: "monotonically
// increasing"), kept in the inventory so that it survives a restart,
// a clock set back, and is shared by every CA instance on one PostgreSQL
// database: the authorization plugin (package revlist) refuses a list
// whose number is below that of the list it enforces.

import (
	"errors"
	"fmt"
)

const (
	sqliteCRLNumberTable = `CREATE TABLE IF NOT EXISTS dtls_crl_number (
  one    INTEGER PRIMARY KEY CHECK (one = 1),
  number INTEGER NOT NULL
)`
	pgCRLNumberTable = `CREATE TABLE IF NOT EXISTS dtls_crl_number (
  one    boolean PRIMARY KEY DEFAULT true CHECK (one),
  number bigint NOT NULL
)`
)

// NextCRLNumber records and returns the number of the next revocation
// list: above every number it returned before on this database, and at
// least atLeast (the caller's time-based number, so that the numbers of
// an inventory made before this record keep growing). It is committed
// before it returns: a list is signed with a number only once that
// number is durable, so a CA killed after serving a list never serves a
// lower one after its restart.
func (s *Store) NextCRLNumber(atLeast int64) (int64, error) {
	if atLeast < 1 {
		atLeast = 1
	}
	var keys []string
	if s.pg {
		keys = []string{"crl number"}
	}
	// One statement: an upsert that takes the row's lock on PostgreSQL
	// (two instances cannot both get one number), in the batch's
	// BEGIN IMMEDIATE on SQLite.
	q := `INSERT INTO dtls_crl_number(one, number) VALUES(1, ?)
		ON CONFLICT(one) DO UPDATE SET number = MAX(dtls_crl_number.number + 1, excluded.number)
		RETURNING number`
	if s.pg {
		q = `INSERT INTO dtls_crl_number(one, number) VALUES(true, $1)
		ON CONFLICT(one) DO UPDATE SET number = GREATEST(dtls_crl_number.number + 1, excluded.number)
		RETURNING number`
	}
	var n int64
	err := s.batch(keys, func() error {
		return s.db.Get(&n, q, atLeast)
	})
	if err != nil {
		if s.missingTable(err) {
			return 0, fmt.Errorf("next CRL number in %q: %w", s.path, errors.New("the inventory's schema is older than this dtls: open it read-write to migrate it"))
		}
		return 0, fmt.Errorf("next CRL number in %q: %w", s.path, err)
	}
	return n, nil
}
