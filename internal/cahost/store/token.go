package store

// Enrolment tokens of the online CA (package caserver): the CA keeps only
// the SHA-256 hash of each token's secret (fleet.Token.Hash), what the
// token allows (one certificate of a kind, for a name, with a role or
// hosts), until when, and whether a certificate has been handed out for it.
// A token is used in the same transaction that records the certificate
// (Change.UseToken), so that a token cannot give two certificates, even to
// two CA instances on one PostgreSQL database, and a certificate handed
// out is never missing from the inventory.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Token is what the CA records about an enrolment token.
type Token struct {
	// Hash is the hex SHA-256 of the token's secret: the secret itself
	// is never stored, so a copy of the database enrols nobody.
	Hash string `json:"hash"`
	// Kind is KindServer or KindClient.
	Kind Kind `json:"kind"`
	// Name is the client's name, or the server's (its first host).
	Name string `json:"name"`
	// Role is a client's authorization role.
	Role string `json:"role,omitzero"`
	// Hosts are a server certificate's DNS names and IP addresses.
	Hosts     []string  `json:"hosts,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the token stops being usable, if unused.
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt and UsedSerial are set when a certificate was recorded for
	// the token: when, and its hex serial.
	UsedAt     time.Time `json:"used_at,omitzero"`
	UsedSerial string    `json:"used_serial,omitzero"`
}

// Errors of a Change that uses a token (Apply) and of Store.Token, for
// errors.Is. Their text never holds the token nor its hash.
var (
	ErrTokenUnknown = errors.New("unknown enrolment token")
	ErrTokenUsed    = errors.New("enrolment token already used")
	ErrTokenExpired = errors.New("enrolment token expired")
)

// AddToken records a new, unused token. A token whose hash is already
// recorded is an error (a fresh 32-byte secret never collides).
func (s *Store) AddToken(t Token) error {
	if t.Hash == "" {
		return errors.New("add token: no hash")
	}
	if t.Kind != KindServer && t.Kind != KindClient {
		return fmt.Errorf("add token for %q: invalid kind %q", t.Name, t.Kind)
	}
	if t.Name == "" {
		return errors.New("add token: no name")
	}
	if t.ExpiresAt.IsZero() || t.CreatedAt.IsZero() {
		return fmt.Errorf("add token for %q: no creation or expiry time", t.Name)
	}
	if !t.UsedAt.IsZero() || t.UsedSerial != "" {
		return fmt.Errorf("add token for %q: a new token cannot be used already", t.Name)
	}
	hosts := t.Hosts
	if hosts == nil {
		hosts = []string{}
	}
	hj, err := json.Marshal(hosts)
	if err != nil {
		return fmt.Errorf("add token for %q: %w", t.Name, err)
	}
	var keys []string
	if s.pg {
		keys = []string{tokenLockKey(t.Hash)}
	}
	return s.batch(keys, func() error {
		var n int
		if err := s.db.Get(&n, s.db.Rebind(`SELECT count(*) FROM dtls_tokens WHERE hash = ?`), t.Hash); err != nil {
			return fmt.Errorf("add token for %q: %w", t.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("add token for %q: a token with this hash is already recorded", t.Name)
		}
		if _, err := s.exec(`INSERT INTO dtls_tokens(hash, kind, name, role, hosts, created_at, expires_at)
			VALUES(?, ?, ?, ?, ?, ?, ?)`,
			t.Hash, string(t.Kind), t.Name, t.Role, string(hj), s.timeArg(t.CreatedAt), s.timeArg(t.ExpiresAt)); err != nil {
			return fmt.Errorf("add token for %q: %w", t.Name, err)
		}
		// Tokens never used and expired for a day are of no use to
		// anyone: they go, so that the table does not grow forever. Used
		// ones stay: they say which token enrolled which certificate.
		if _, err := s.exec(`DELETE FROM dtls_tokens WHERE used_at IS NULL AND expires_at < ?`,
			s.timeArg(t.CreatedAt.Add(-tokenKeep))); err != nil {
			return fmt.Errorf("add token for %q: purge expired tokens: %w", t.Name, err)
		}
		return nil
	})
}

// TokenHolder names the holder enrolment tokens are for.
type TokenHolder struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
}

// cancelTokens ends the unused tokens of holders, inside Apply's
// transaction: expired since their creation, they are refused as any
// expired token (useToken), and purged with them.
func (s *Store) cancelTokens(holders []TokenHolder) error {
	for _, h := range holders {
		if _, err := s.exec(`UPDATE dtls_tokens SET expires_at = created_at
			WHERE used_at IS NULL AND kind = ? AND name = ? AND expires_at > created_at`, string(h.Kind), h.Name); err != nil {
			return fmt.Errorf("cancel the tokens of %s %q: %w", h.Kind, h.Name, err)
		}
	}
	return nil
}

// tokenKeep is how long an unused token is kept after it expired: long
// enough for an operator to see why an enrolment was refused.
const tokenKeep = 24 * time.Hour

// Token returns the token with this hash, used or not, expired or not; an
// error wrapping ErrTokenUnknown when none is recorded. The online CA
// reads it to check a request before it signs; Apply with
// Change.UseToken checks again, in the transaction that counts.
func (s *Store) Token(hash string) (*Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token(hash)
}

// tokenRow is a dtls_tokens row.
type tokenRow struct {
	Hash       string         `db:"hash"`
	Kind       string         `db:"kind"`
	Name       string         `db:"name"`
	Role       string         `db:"role"`
	Hosts      string         `db:"hosts"`
	CreatedAt  time.Time      `db:"created_at"`
	ExpiresAt  time.Time      `db:"expires_at"`
	UsedAt     sql.NullTime   `db:"used_at"`
	UsedSerial sql.NullString `db:"used_serial"`
}

// token reads a token; mu must be held.
func (s *Store) token(hash string) (*Token, error) {
	var row tokenRow
	err := s.db.Get(&row, s.db.Rebind(`SELECT hash, kind, name, role, hosts, created_at, expires_at, used_at, used_serial
		FROM dtls_tokens WHERE hash = ?`), hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrTokenUnknown
	case err != nil && s.missingTable(err):
		// A database from before tokens (read-only, schema 5 or
		// older) has none.
		return nil, ErrTokenUnknown
	case err != nil:
		return nil, fmt.Errorf("read token: %w", err)
	}
	t := &Token{
		Hash: row.Hash, Kind: Kind(row.Kind), Name: row.Name, Role: row.Role,
		CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(),
		UsedSerial: row.UsedSerial.String,
	}
	if row.UsedAt.Valid {
		t.UsedAt = row.UsedAt.Time.UTC()
	}
	if err := json.Unmarshal([]byte(row.Hosts), &t.Hosts); err != nil {
		return nil, fmt.Errorf("read token for %q: hosts: %w", t.Name, err)
	}
	if len(t.Hosts) == 0 {
		t.Hosts = nil
	}
	return t, nil
}

// useToken marks the token hash used at at by the certificate r, inside
// Apply's transaction (mu held). The same certificate using it again is a
// replay and changes nothing; anything else that finds it used, an
// expired token, an unknown one, or a record that is not what the token
// allows, is an error and Apply rolls back.
func (s *Store) useToken(hash string, at time.Time, r Record) error {
	// Compared as stored: PostgreSQL keeps microseconds (pgTime).
	at = s.timeArg(at)
	t, err := s.token(hash)
	if err != nil {
		return err
	}
	if !t.UsedAt.IsZero() || t.UsedSerial != "" {
		if t.UsedSerial == r.Serial {
			return nil // a replay of the Change that used it
		}
		return ErrTokenUsed
	}
	if !at.Before(t.ExpiresAt) {
		return ErrTokenExpired
	}
	if r.Kind != t.Kind || r.Name != t.Name {
		return fmt.Errorf("use token: it is for the %s certificate %q, not for the %s certificate %q", t.Kind, t.Name, r.Kind, r.Name)
	}
	// "used_at IS NULL" again: on PostgreSQL the advisory lock already
	// orders two uses, this makes the write itself conditional too.
	res, err := s.exec(`UPDATE dtls_tokens SET used_at = ?, used_serial = ? WHERE hash = ? AND used_at IS NULL`,
		at, r.Serial, hash)
	if err != nil {
		return fmt.Errorf("use token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("use token: %w", err)
	} else if n != 1 {
		return ErrTokenUsed
	}
	return nil
}

// tokenLockKey is the PostgreSQL advisory lock key of a token (pgBatch).
func tokenLockKey(hash string) string { return "token " + hash }

// The dtls_tokens table (schema 6), in each database's types.
const (
	sqliteTokensTable = `CREATE TABLE IF NOT EXISTS dtls_tokens (
  hash        TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  name        TEXT NOT NULL,
  role        TEXT NOT NULL DEFAULT '',
  hosts       TEXT NOT NULL DEFAULT '[]',
  created_at  timestamp NOT NULL,
  expires_at  timestamp NOT NULL,
  used_at     timestamp,
  used_serial TEXT
)`
	pgTokensTable = `CREATE TABLE IF NOT EXISTS dtls_tokens (
  hash        TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  name        TEXT NOT NULL,
  role        TEXT NOT NULL DEFAULT '',
  hosts       TEXT NOT NULL DEFAULT '[]',
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  used_serial TEXT
)`
)
