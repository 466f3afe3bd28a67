package store

// The inventory on PostgreSQL, for an online CA that many hosts share: the
// same Store, with cfssl's PostgreSQL schema (certdb/pg/migrations 001 and
// 002: bytea serials and keys, timestamptz times, jsonb metadata) plus
// dtls's indexes and tables, reached through lib/pq, the pure-Go driver
// cfssl itself registers (cmd/cfssl/cfssl.go), so CGO_ENABLED=0 builds
// keep working.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	certsql "github.com/cloudflare/cfssl/certdb/sql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// pgSchemaTable keeps the schema version of a PostgreSQL database, which
// has no user_version: one row, enforced by the primary key on a column
// that can only be true.
const pgSchemaTable = "dtls_schema_version"

const (
	// pgMigrateLock is the advisory lock (the one-bigint key space) that
	// serialises migrations: two processes opening a new database at once
	// would otherwise both run CREATE TABLE IF NOT EXISTS, and the second
	// can fail on pg_type's unique index instead of finding the table.
	pgMigrateLock int64 = 0x64746c73_6d696772 // "dtlsmigr"
	// pgLockClass is the first key of every writer's advisory lock (the
	// two-int4 key space, which does not overlap the bigint one:
	// https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
	pgLockClass int32 = 0x64746c73 // "dtls"
	// pgMaxAttempts bounds how often a batch runs when PostgreSQL aborts
	// it for a serialization failure or a deadlock.
	pgMaxAttempts = 5
)

// pgWriterSetup and pgReaderSetup run on every new connection.
//
// TimeZone UTC: lib/pq returns a timestamptz in the session's zone, and
// in time.UTC, which Record's times are in, only when that zone is "UTC"
// (the server's default is the zone initdb found, "Etc/UTC" for one).
//
// default_transaction_read_only on, also for a writer: the store runs a
// batch as BEGIN ... READ WRITE, the accessor's statements, COMMIT, on
// what it assumes is one connection (see Store.mu). If that connection
// dies in between, database/sql runs the next statement on a new one,
// outside any transaction; there a write fails ("cannot execute INSERT in
// a read-only transaction") instead of committing half a Change.
//
// lock_timeout: what SQLite's busy_timeout is in Open and OpenReadOnly. A
// writer waits at most 30 s for another writer's locks (a migration's, or
// those on the same serial); a reader waits at most 5 s, and only for a
// migration's ALTER TABLE: readers never wait for writers in PostgreSQL.
const (
	pgWriterSetup = "SET TimeZone = 'UTC'; SET default_transaction_read_only = on; SET lock_timeout = '30s'"
	pgReaderSetup = "SET TimeZone = 'UTC'; SET default_transaction_read_only = on; SET lock_timeout = '5s'"
)

// OpenPostgres opens the PostgreSQL database dsn (lib/pq's syntax: a
// postgres:// URL or key=value pairs, with the PG* environment variables
// as defaults), and creates or migrates its schema in place, in one
// transaction: a database with cfssl's schema (migration 001 alone, or
// 002 too, as 'cfssl serve' made it) is upgraded and keeps its rows. The
// schema version is kept in the table dtls_schema_version.
//
// The Store is the one Open returns, with the same methods and the same
// records. What differs:
//
//   - Times are kept to the microsecond (timestamptz); Apply rounds them
//     with time.Round(time.Microsecond), so a record reads back with its
//     times rounded.
//   - Writers in several processes (or Stores) apply Changes at the same
//     time. Apply and Revoke run at READ COMMITTED and first take, in
//     sorted order, a transaction-level advisory lock for each serial and
//     each role name they touch: two Changes that share a serial or a
//     name run one after the other, and the second sees what the first
//     committed; with every lock taken first and in one order, dtls's
//     writers cannot deadlock. A batch that PostgreSQL aborts anyway for
//     a serialization failure or a deadlock (with another program's
//     writes) is run again, up to 5 times; a Change is idempotent.
//   - Statements outside Apply and Revoke cannot write: the session is
//     read-only by default.
//
// Errors and the Store never show the DSN's password.
func OpenPostgres(dsn string) (*Store, error) {
	s, err := openPostgres(dsn, pgWriterSetup)
	if err != nil {
		return nil, err
	}
	if err := s.migratePostgres(); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: %w", s.path, scrub(err, dsn))
	}
	return s, nil
}

func openPostgres(dsn, setup string) (*Store, error) {
	name := redactDSN(dsn)
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", name, scrub(err, dsn))
	}
	// sqlx picks the placeholder style by driver name: "postgres" is
	// $1, $2 (sqlx.BindType), for the accessor's named statements and
	// for Rebind.
	db := sqlx.NewDb(sql.OpenDB(pgConnector{c, setup}), "postgres")
	// One connection, as for SQLite: a batch is BEGIN, the accessor's
	// statements, COMMIT, which must all run on it (Store.mu).
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		err = fmt.Errorf("open database %q: %w", name, scrub(err, dsn))
		if errors.Is(err, pq.ErrSSLNotSupported) {
			// lib/pq's default sslmode is require, and a server
			// installed by a distribution often has no certificate.
			return nil, &HintError{Err: err, Hint: SSLHint}
		}
		return nil, err
	}
	return &Store{path: name, pg: true, db: db, acc: certsql.NewAccessor(db)}, nil
}

// SSLHint is the hint of lib/pq's "SSL is not enabled on the server".
const SSLHint = "add ?sslmode=disable for a PostgreSQL on this host's loopback or unix socket, or enable SSL on the server; sslmode=verify-full for a remote one"

// HintError is an error with the command or setting that fixes it, which
// the command line prints as a hint.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string    { return e.Err.Error() }
func (e *HintError) Unwrap() error    { return e.Err }
func (e *HintError) HintText() string { return e.Hint }

// pgConnector runs setup on each connection lib/pq opens, whatever the
// DSN's form, before database/sql uses it.
type pgConnector struct {
	*pq.Connector
	setup string
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("set up the session: the driver cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, c.setup, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set up the session: %w", err)
	}
	return conn, nil
}

// pgQueryer is what pgVersion reads through: the store's DB or the
// migration's transaction.
type pgQueryer interface {
	Get(dest any, query string, args ...any) error
}

// pgVersion returns the schema version (0 when dtls never migrated the
// database) and whether the certificates table exists.
func (s *Store) pgVersion(q pgQueryer) (int, bool, error) {
	var have struct {
		Version bool `db:"version"`
		Certs   bool `db:"certs"`
	}
	if err := q.Get(&have, `SELECT to_regclass('`+pgSchemaTable+`') IS NOT NULL AS version,
		to_regclass('certificates') IS NOT NULL AS certs`); err != nil {
		return 0, false, fmt.Errorf("read the schema version: %w", err)
	}
	if !have.Version {
		return 0, have.Certs, nil
	}
	var v int
	err := q.Get(&v, `SELECT version FROM `+pgSchemaTable)
	if err != nil && !errors.Is(err, sql.ErrNoRows) { // no row: migrate again, it is idempotent
		return 0, have.Certs, fmt.Errorf("read the schema version: %w", err)
	}
	return v, have.Certs, nil
}

// migratePostgres brings the schema to SchemaVersion in one transaction,
// with the steps of migrate in PostgreSQL's types. Each step is idempotent
// and none drops anything.
func (s *Store) migratePostgres() error {
	// A transaction of its own (lib/pq sends BEGIN ... READ WRITE, which
	// the session's read-only default needs), at READ COMMITTED: after
	// waiting for another migration's lock, it reads what that one
	// committed.
	tx, err := s.db.BeginTxx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock($1)`, pgMigrateLock); err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	v, haveCerts, err := s.pgVersion(tx)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this dtls knows (%d): upgrade dtls", v, SchemaVersion)
	}
	s.Created = !haveCerts
	if v == SchemaVersion {
		return tx.Commit()
	}
	for _, step := range []struct {
		version int
		sql     string
	}{
		// 1: cfssl certdb/pg/migrations/001_CreateCertificates.sql.
		{1, `CREATE TABLE IF NOT EXISTS certificates (
  serial_number            bytea NOT NULL,
  authority_key_identifier bytea NOT NULL,
  ca_label                 bytea,
  status                   bytea NOT NULL,
  reason                   int,
  expiry                   timestamptz,
  revoked_at               timestamptz,
  pem                      bytea NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE IF NOT EXISTS ocsp_responses (
  serial_number            bytea NOT NULL,
  authority_key_identifier bytea NOT NULL,
  body                     bytea NOT NULL,
  expiry                   timestamptz,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
)`},
		// 2: cfssl's 002_AddMetadataToCertificates.sql, each column
		// only where it is missing, so that a database where some
		// exist is completed.
		{2, `ALTER TABLE certificates
  ADD COLUMN IF NOT EXISTS issued_at timestamptz,
  ADD COLUMN IF NOT EXISTS not_before timestamptz,
  ADD COLUMN IF NOT EXISTS metadata jsonb,
  ADD COLUMN IF NOT EXISTS sans jsonb,
  ADD COLUMN IF NOT EXISTS common_name TEXT`},
		// 3 to 6 as in migrate: the name and status indexes, the roles
		// and the enrolment tokens. The CA serial stays in the metadata, read with
		// ->> on the few rows the status index selects.
		{3, `CREATE INDEX IF NOT EXISTS certificates_common_name ON certificates(common_name)`},
		{4, `CREATE INDEX IF NOT EXISTS certificates_status ON certificates(status)`},
		{5, `CREATE TABLE IF NOT EXISTS dtls_roles (name TEXT PRIMARY KEY, role TEXT NOT NULL)`},
		{6, pgTokensTable},
		{7, pgCRLNumberTable},
	} {
		if _, err := tx.Exec(step.sql); err != nil {
			return fmt.Errorf("migrate to schema %d: %w", step.version, err)
		}
	}
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS ` + pgSchemaTable + ` (
  one     boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate to schema %d: %w", SchemaVersion, err)
	}
	if _, err := tx.Exec(`INSERT INTO `+pgSchemaTable+` (version) VALUES ($1)
		ON CONFLICT (one) DO UPDATE SET version = excluded.version`, SchemaVersion); err != nil {
		return fmt.Errorf("migrate to schema %d: %w", SchemaVersion, err)
	}
	return tx.Commit()
}

// pgBatch is batch on PostgreSQL: f runs in a READ COMMITTED transaction
// after the advisory locks for keys (serials and role names) are taken, in
// the order of their lock ids; a batch aborted for a serialization failure
// or a deadlock runs again, at most pgMaxAttempts times in all. mu is held.
func (s *Store) pgBatch(keys []string, f func() error) error {
	ids := pgLockIDs(keys)
	for attempt := 1; ; attempt++ {
		err := s.pgTry(ids, f)
		if err == nil || attempt == pgMaxAttempts || !pgRetryable(err) {
			return err
		}
		s.retries++
	}
}

func (s *Store) pgTry(ids []int32, f func() error) error {
	// Explicitly READ COMMITTED, whatever the server's
	// default_transaction_isolation: under REPEATABLE READ or SERIALIZABLE
	// the snapshot would be taken before the locks are granted, and a
	// Change would not see the one it waited for.
	if _, err := s.db.Exec("BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	err := func() error {
		for _, id := range ids {
			if _, err := s.db.Exec("SELECT pg_advisory_xact_lock($1, $2)", pgLockClass, id); err != nil {
				return fmt.Errorf("wait for other writers: %w", err)
			}
		}
		return f()
	}()
	if err != nil {
		_, _ = s.db.Exec("ROLLBACK")
		return err
	}
	if _, err := s.db.Exec("COMMIT"); err != nil {
		_, _ = s.db.Exec("ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pgLockIDs are the advisory lock ids of keys: a 32-bit FNV-1a hash of
// each, sorted, without repeats. Two keys with one hash share a lock,
// which costs only a wait; taking the locks in ascending order keeps two
// batches from each holding one the other waits for.
func pgLockIDs(keys []string) []int32 {
	ids := make([]int32, 0, len(keys))
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k))
		ids = append(ids, int32(h.Sum32()))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// pgRetryable reports whether PostgreSQL aborted the transaction for
// something that running it again can cure: serialization_failure
// (40001) or deadlock_detected (40P01)
// (https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html).
// cfssl's accessor keeps only the text of its errors (cfssl errors.Wrap),
// so an InsertCertificate aborted this way is not retried; with the locks
// taken first, dtls's own writers cannot cause either there.
func pgRetryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// pgMissingTable reports whether err is undefined_table (42P01).
func pgMissingTable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// pgTime is how a time is stored: timestamptz keeps microseconds, and
// PostgreSQL would round the nanoseconds lib/pq sends (half to even);
// rounding here makes what is stored what Go's time.Round says.
func pgTime(t time.Time) time.Time {
	return t.UTC().Round(time.Microsecond)
}

// pgMetaField is metaField on PostgreSQL: metadata is jsonb, always valid
// JSON, and ->> gives NULL for a key that is missing or a value that is
// not an object. (Not the ? operator, which Rebind would take for a
// placeholder.)
func pgMetaField(key string) string {
	return "(metadata ->> '" + key + "')"
}

var (
	// dsnURLPassword is the password in a URL's userinfo, also in one
	// that net/url cannot parse: from the first ':' to the last '@'
	// before the path, as net/url reads it.
	dsnURLPassword = regexp.MustCompile(`^(postgres(?:ql)?://[^:/?#@]*:)([^/?#]*)@`)
	// dsnPassword is the value of a password key: key=value (the value
	// quoted or not), or a URL's query parameter.
	dsnPassword = regexp.MustCompile(`((?:^|[\s?&])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)
)

// redactDSN is dsn with its password replaced by "xxxxx", for the name of
// the database in errors. The host, port, user and database name stay: an
// error must say which database it is about.
func redactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			if q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.Redacted()
		}
		dsn = dsnURLPassword.ReplaceAllString(dsn, "${1}xxxxx@")
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// scrub returns err, or when its text holds the DSN's password (net/url's
// parse errors quote the whole URL), an error with the same text where the
// password is replaced by "xxxxx", and nothing to unwrap that holds it.
func scrub(err error, dsn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var secrets []string
	for _, m := range dsnURLPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, m[2])
		if p, err := url.PathUnescape(m[2]); err == nil {
			secrets = append(secrets, p)
		}
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, m[2], strings.Trim(m[2], "'"))
		if p, err := url.QueryUnescape(m[2]); err == nil {
			secrets = append(secrets, p)
		}
	}
	// Longest first, so that a password's quoted or escaped form goes
	// whole rather than leaving its quotes.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	scrubbed := msg
	for _, p := range secrets {
		if p != "" {
			scrubbed = strings.ReplaceAll(scrubbed, p, "xxxxx")
		}
	}
	if scrubbed == msg {
		return err
	}
	return errors.New(scrubbed)
}
