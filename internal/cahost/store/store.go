// Package store owns dtls's inventory: a record of every certificate dtls
// issued (CA, server, client) in an SQLite database in the state directory.
//
// The table is cfssl's certdb schema (certdb/sqlite/migrations 001 and 002),
// written through cfssl's certdb/sql accessor, so that cfssl's own tools can
// read it. SQLite is reached through modernc.org/sqlite, a pure-Go driver:
// cfssl's binaries use the cgo driver, which breaks CGO_ENABLED=0 and cross
// builds (cfssl#545).
//
// Every write is a Change, applied in one transaction and idempotent, so
// that a crash-recovery journal can replay it. A Store is safe for use by
// several goroutines. OpenReadOnly serves a long-running reader (the
// authorization plugin) next to the dtls commands that write, in the same
// or another process: the database is in WAL mode, where readers and one
// writer do not block each other (https://www.sqlite.org/wal.html).
//
// OpenPostgres opens the same inventory on PostgreSQL, for an online CA
// that many hosts share (postgres.go). The online CA also keeps its
// one-time enrolment tokens here (token.go).
//
// The database is an index, never the only copy of something dockerd needs:
// the PEM files in the certificates directory and in the bundles stay the
// source for the daemon and the clients.
package store

import (
	"crypto/sha1"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/cfssl/certdb"
	certsql "github.com/cloudflare/cfssl/certdb/sql"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/dtls-tool/dtls/pki"
)

func init() {
	// sqlx knows the cgo driver's name ("sqlite3"), not the pure-Go one's.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Kind is what a certificate is for: pki.Kind, kept under this name for
// the inventory's callers. Its values are stored in the "kind" key of the
// metadata column.
type Kind = pki.Kind

// Kinds, as stored in the "kind" key of the metadata column.
const (
	KindCA     = pki.KindCA
	KindServer = pki.KindServer
	KindClient = pki.KindClient
)

// Status is a record's status, as stored in the status column (pki.Status).
type Status = pki.Status

// Statuses (see pki.Status).
const (
	StatusGood       = pki.StatusGood
	StatusRevoked    = pki.StatusRevoked
	StatusSuperseded = pki.StatusSuperseded
)

// caLabel is the ca_label of every record dtls writes.
const caLabel = "dtls"

// SchemaVersion is the schema this package creates and migrates to; it is
// kept in SQLite's user_version (on PostgreSQL, in dtls_schema_version).
const SchemaVersion = 7

// minReadVersion is the oldest schema OpenReadOnly reads: 3 has every
// column and index the queries use; 4 only adds an index.
const minReadVersion = 3

// Record is one issued certificate (pki.Record: the wire protocol and the
// laptop agent carry records without linking the database).
type Record = pki.Record

// FromCert builds a good record for a freshly issued certificate.
func FromCert(cert *x509.Certificate, certPEM []byte, kind Kind, caSerial, path string) Record {
	aki := cert.AuthorityKeyId
	if len(aki) == 0 {
		aki = cert.SubjectKeyId
	}
	if len(aki) == 0 {
		h := sha1.Sum(cert.RawSubjectPublicKeyInfo)
		aki = h[:]
	}
	var sans []string
	sans = append(sans, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	return Record{
		Serial:    fmt.Sprintf("%x", cert.SerialNumber),
		AKI:       hex.EncodeToString(aki),
		Kind:      kind,
		Name:      cert.Subject.CommonName,
		SANs:      sans,
		NotBefore: cert.NotBefore.UTC(),
		NotAfter:  cert.NotAfter.UTC(),
		Status:    StatusGood,
		PEM:       string(certPEM),
		CASerial:  caSerial,
		Path:      path,
	}
}

// KindOf says whether a certificate is a CA, server or client certificate
// (pki.KindOf).
func KindOf(c *x509.Certificate) Kind { return pki.KindOf(c) }

// Revocation marks one certificate revoked.
type Revocation struct {
	Serial string    `json:"serial"` // hex, as Record.Serial
	Reason int       `json:"reason"` // RFC 5280 5.3.1 reason code
	At     time.Time `json:"at"`
}

// Change is a set of writes applied in one transaction: all or none. It is
// idempotent, so that a journal can replay it after a crash: applying it
// again gives the same database and no error. Its JSON form round-trips
// exactly.
type Change struct {
	// Insert records certificates. A record whose serial is already
	// there is left as it is.
	Insert []Record `json:"insert,omitzero"`
	// Supersede turns these hex serials from good to superseded; other
	// statuses, and serials not recorded, are left as they are.
	Supersede []string `json:"supersede,omitzero"`
	// Require makes the change conditional: these hex serials must be
	// good when it commits, or it fails with ErrNotGood and writes
	// nothing. A renewal requires the certificate it supersedes, so that
	// two CA instances renewing one certificate at once (on one
	// PostgreSQL database) cannot both issue a successor. A replay of a
	// change that committed (every Insert record there already) passes.
	Require []string `json:"require,omitzero"`
	// Revoke revokes certificates, whatever their status, with the given
	// reason and time. One already revoked is left as it is (its first
	// reason and time stand); one not recorded is an error.
	Revoke []Revocation `json:"revoke,omitzero"`
	// CancelTokens ends the unused enrolment tokens of these holders:
	// their expiry becomes their creation, so that no later enrolment
	// uses them (a revoked name's pending token would enrol it again).
	CancelTokens []TokenHolder `json:"cancel_tokens,omitzero"`
	// Roles sets the authorization role of certificate holders, by name
	// (the client certificate's CN); "" removes it (the policy's default
	// role applies).
	Roles map[string]string `json:"roles,omitzero"`
	// UseToken is the hash of an enrolment token (Token.Hash) that the
	// one record of Insert is issued for, used at UseTokenAt: the token
	// is marked used by that record's serial in the same transaction
	// that inserts it. Apply fails, changing nothing, with an error
	// wrapping ErrTokenUnknown, ErrTokenExpired (UseTokenAt is not
	// before the token's expiry) or ErrTokenUsed (by another serial).
	// A replay after success finds the token used by the same serial
	// and is no error, whenever it runs.
	UseToken   string    `json:"use_token,omitzero"`
	UseTokenAt time.Time `json:"use_token_at,omitzero"`
	// BeforeCommit, when set, runs inside the change's transaction after
	// everything else, just before COMMIT: its error rolls the change
	// back. `dtls ca init` renames its state directory into place there,
	// so that a failed init leaves no records in a shared database. It
	// may run again when PostgreSQL aborts the transaction for a
	// conflict (pgBatch); it is never journaled.
	BeforeCommit func() error `json:"-"`
}

// Store is an open inventory database.
type Store struct {
	path     string // the file, or the redacted DSN on PostgreSQL
	readOnly bool
	// pg is set on PostgreSQL (OpenPostgres): placeholders, the JSON
	// functions and the transactions differ.
	pg  bool
	db  *sqlx.DB
	acc *certsql.Accessor
	// mu is held for every batch and every read. The pool has a single
	// connection and a batch is BEGIN, the accessor's statements, COMMIT
	// on it: without mu, another goroutine's statement would run inside
	// that transaction (a read would see uncommitted rows, a BEGIN would
	// fail with "cannot start a transaction within a transaction").
	// cfssl's accessor takes a *sqlx.DB, not a *sql.Tx or *sql.Conn, so
	// a transaction cannot be handed to it.
	mu sync.Mutex
	// retries counts the batches run again after PostgreSQL aborted
	// them (pgBatch); mu is held.
	retries int
	// Created is true when the database is new: Open created the file,
	// or found it empty (a run killed before its first commit).
	Created bool
}

// Open opens (creating it when absent, mode 0600) the database at path,
// and creates or migrates its schema in place: an older database (cfssl's
// schema 001, or an older dtls) is upgraded, never dropped. A file that is
// not an SQLite database is an error and is left untouched.
func Open(path string) (*Store, error) {
	// Create the file here rather than let SQLite do it: SQLite creates
	// it 0644 (SQLITE_DEFAULT_FILE_PERMISSIONS) and its -wal and -shm
	// files take the database's mode (os_unix.c, findCreateFileMode), so
	// creating it 0600 makes all three 0600 from the start. SQLite reads
	// an empty file as an empty database.
	created := false
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		created = true
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("open database %q: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("open database %q: %w", path, err)
	default:
		size, err := checkHeader(path)
		if err != nil {
			return nil, err
		}
		created = size == 0
	}
	// WAL lets readers go on while a writer commits; busy_timeout makes
	// a second process wait for the lock instead of failing at once
	// (callers also hold a flock, see cmd/state.go); synchronous FULL
	// makes a commit durable before a bundle is renamed into place;
	// _txlock makes migrate's transaction BEGIN IMMEDIATE, like batch's.
	dsn, err := fileURI(path, "_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	s, err := open(path, dsn)
	if err != nil {
		return nil, err
	}
	s.Created = created
	if err := s.migrate(); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	return s, nil
}

// OpenReadOnly opens the database at path for reading only, for a
// long-running reader such as the authorization plugin while dtls commands
// write. It never creates the database (a missing file is an error wrapping
// fs.ErrNotExist), never migrates it, and never writes to it: Apply and
// Revoke fail. Each query sees what writers had committed when it started.
//
// The database must have been migrated by dtls (schema 3 or later) and not
// by a newer dtls than this one. As any WAL reader, it needs the -shm and
// -wal files next to the database, and SQLite creates them (empty, with
// the database's mode) if no writer has them open
// (https://www.sqlite.org/wal.html#readonly).
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open database %q: %w", path, fs.ErrNotExist)
	} else if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	if _, err := checkHeader(path); err != nil {
		return nil, err
	}
	// mode=ro is SQLITE_OPEN_READONLY (https://www.sqlite.org/uri.html),
	// which also means SQLite never creates a missing database; query_only
	// refuses writes at the statement level as well. A WAL reader waits
	// for a lock only while a writer recovers or restarts the WAL: a few
	// seconds, not the writers' 30, so that a request is not held long.
	dsn, err := fileURI(path, "mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	s, err := open(path, dsn)
	if err != nil {
		return nil, err
	}
	s.readOnly = true
	var v int
	if err := s.db.Get(&v, "PRAGMA user_version"); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	if v > SchemaVersion {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: schema version %d is newer than this dtls knows (%d): upgrade dtls", path, v, SchemaVersion)
	}
	if v < minReadVersion {
		s.db.Close()
		return nil, fmt.Errorf("open database %q: schema version %d is older than this dtls reads (%d): run a dtls command that opens it read-write to migrate it", path, v, minReadVersion)
	}
	return s, nil
}

func open(path, dsn string) (*Store, error) {
	db, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	// One connection: batch runs BEGIN and COMMIT around the accessor's
	// statements, which must all go through the same connection. It is
	// never closed under a batch: no lifetime or idle limit is set, and
	// modernc discards a connection only after an interrupt (conn.go,
	// usable), which needs a cancelled context, and none is used here.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	return &Store{path: path, db: db, acc: certsql.NewAccessor(db)}, nil
}

// checkHeader returns the size of the database file at path, and an error
// if it has content that is not an SQLite database. It runs before SQLite
// opens the file: SQLite would create -wal and -shm files next to a file
// it cannot read.
func checkHeader(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open database %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("open database %q: %w", path, err)
	}
	if fi.Size() == 0 {
		return 0, nil
	}
	// https://www.sqlite.org/fileformat.html#the_database_header
	hdr := make([]byte, 16)
	if _, err := f.Read(hdr); err != nil || string(hdr) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("open database %q: not an SQLite database", path)
	}
	return fi.Size(), nil
}

// fileURI is the DSN for the database at path with the query query: an
// SQLite URI filename (https://www.sqlite.org/uri.html), "file://" and the
// absolute path with '%', '?', '#', spaces and any other character outside
// RFC 3986's path characters percent-encoded, which SQLite decodes. A raw
// path in the DSN would be cut short at a '?' (modernc's newConn splits
// its DSN there, and SQLite starts the query there) or a '#' (SQLite's
// fragment), and a '%' followed by two hex digits would be decoded: the
// database would land elsewhere.
func fileURI(path, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: query}
	return u.String(), nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrate brings the schema to SchemaVersion. Each step is idempotent and
// the whole runs in one transaction.
func (s *Store) migrate() error {
	var v int
	if err := s.db.Get(&v, "PRAGMA user_version"); err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this dtls knows (%d): upgrade dtls", v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	tx, err := s.db.Beginx()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// 1: cfssl certdb/sqlite/migrations/001_CreateCertificates.sql.
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE IF NOT EXISTS ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);`); err != nil {
		return fmt.Errorf("migrate to schema 1: %w", err)
	}
	// 2: cfssl's 002_AddMetadataToCertificates.sql, column by column so
	// that a database where some exist is completed.
	var cols []struct {
		Name string `db:"name"`
	}
	if err := tx.Select(&cols, "SELECT name FROM pragma_table_info('certificates')"); err != nil {
		return fmt.Errorf("migrate to schema 2: %w", err)
	}
	have := map[string]bool{}
	for _, c := range cols {
		have[c.Name] = true
	}
	for _, c := range []struct{ name, typ string }{
		{"issued_at", "timestamp"}, {"not_before", "timestamp"}, {"metadata", "text"}, {"sans", "text"}, {"common_name", "text"},
	} {
		if !have[c.name] {
			if _, err := tx.Exec(fmt.Sprintf("ALTER TABLE certificates ADD COLUMN %q %s", c.name, c.typ)); err != nil {
				return fmt.Errorf("migrate to schema 2: %w", err)
			}
		}
	}
	// 3: dtls looks certificates up by name.
	if _, err := tx.Exec(`CREATE INDEX IF NOT EXISTS certificates_common_name ON certificates(common_name)`); err != nil {
		return fmt.Errorf("migrate to schema 3: %w", err)
	}
	// 4: the revoked records (Revoked, for CRLs and the authorization
	// plugin) are found through an index on status. The signing CA's
	// serial stays in the metadata JSON and is read with json_extract on
	// those few rows: an index on that expression would put a JSON
	// function into the schema, which an SQLite without JSON (before
	// 3.38, when it became built in) could not even open for cfssl.
	if _, err := tx.Exec(`CREATE INDEX IF NOT EXISTS certificates_status ON certificates(status)`); err != nil {
		return fmt.Errorf("migrate to schema 4: %w", err)
	}
	// 5: the authorization role of each certificate holder, by name,
	// read by the authorization plugin (dtls authz serve); a role
	// outlives the certificates of its holder (renewals keep it).
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS dtls_roles (name TEXT PRIMARY KEY, role TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate to schema 5: %w", err)
	}
	// 6: the online CA's enrolment tokens (token.go). Hosts are a JSON
	// list in text, as cfssl keeps sans.
	if _, err := tx.Exec(sqliteTokensTable); err != nil {
		return fmt.Errorf("migrate to schema 6: %w", err)
	}
	// 7: the online CA's last CRL number (crlnumber.go).
	if _, err := tx.Exec(sqliteCRLNumberTable); err != nil {
		return fmt.Errorf("migrate to schema 7: %w", err)
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

type meta struct {
	Kind     Kind   `json:"kind"`
	CASerial string `json:"ca_serial,omitempty"`
	Path     string `json:"path,omitempty"`
}

// metaField is the SQL for a string in the metadata column, NULL where the
// column is NULL or not JSON (cfssl stores whatever a sign request's
// metadata held): json_extract raises an error on malformed JSON, and CASE
// evaluates its result only when json_valid holds
// (https://www.sqlite.org/json1.html).
func (s *Store) metaField(key string) string {
	if s.pg {
		return pgMetaField(key)
	}
	return "CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$." + key + "') END"
}

func decimal(hexSerial string) (string, error) {
	n, ok := new(big.Int).SetString(hexSerial, 16)
	if !ok || n.Sign() < 0 {
		return "", fmt.Errorf("invalid serial %q", hexSerial)
	}
	return n.String(), nil
}

func validKind(k Kind) bool {
	return k == KindCA || k == KindServer || k == KindClient
}

func validStatus(s Status) bool {
	return s == StatusGood || s == StatusRevoked || s == StatusSuperseded
}

func toCertdb(r Record) (certdb.CertificateRecord, error) {
	if !validKind(r.Kind) {
		return certdb.CertificateRecord{}, fmt.Errorf("invalid kind %q", r.Kind)
	}
	if !validStatus(r.Status) {
		return certdb.CertificateRecord{}, fmt.Errorf("invalid status %q", r.Status)
	}
	// cfssl's signer records serials in decimal (SerialNumber.String());
	// so do we, so that cfssl's crl and ocsp tools read this database.
	dec, err := decimal(r.Serial)
	if err != nil {
		return certdb.CertificateRecord{}, err
	}
	nb, issued := r.NotBefore, r.NotBefore
	cr := certdb.CertificateRecord{
		Serial:     dec,
		AKI:        r.AKI,
		CALabel:    caLabel,
		Status:     string(r.Status),
		Reason:     r.Reason,
		Expiry:     r.NotAfter,
		RevokedAt:  r.RevokedAt,
		PEM:        r.PEM,
		IssuedAt:   &issued,
		NotBefore:  &nb,
		CommonName: sql.NullString{String: r.Name, Valid: true},
	}
	if err := cr.SetMetadata(map[string]any{"kind": r.Kind, "ca_serial": r.CASerial, "path": r.Path}); err != nil {
		return cr, err
	}
	sans := r.SANs
	if sans == nil {
		sans = []string{}
	}
	if err := cr.SetSANs(sans); err != nil {
		return cr, err
	}
	return cr, nil
}

func fromCertdb(cr certdb.CertificateRecord) (Record, error) {
	n, ok := new(big.Int).SetString(cr.Serial, 10)
	if !ok {
		return Record{}, fmt.Errorf("record with invalid serial %q", cr.Serial)
	}
	r := Record{
		Serial:    fmt.Sprintf("%x", n),
		AKI:       cr.AKI,
		Status:    Status(cr.Status),
		Reason:    cr.Reason,
		RevokedAt: cr.RevokedAt,
		NotAfter:  cr.Expiry.UTC(),
		PEM:       cr.PEM,
		Name:      cr.CommonName.String,
	}
	if cr.NotBefore != nil {
		r.NotBefore = cr.NotBefore.UTC()
	}
	var m meta
	if len(cr.MetadataJSON) > 0 {
		_ = json.Unmarshal(cr.MetadataJSON, &m)
	}
	r.Kind, r.CASerial, r.Path = m.Kind, m.CASerial, m.Path
	if len(cr.SANsJSON) > 0 {
		_ = json.Unmarshal(cr.SANsJSON, &r.SANs)
	}
	// Records written by cfssl itself carry no dtls metadata: derive
	// what is missing from the certificate.
	if r.Kind == "" || r.Name == "" || r.NotBefore.IsZero() {
		if c, err := parsePEM(r.PEM); err == nil {
			r.Name, r.NotBefore = c.Subject.CommonName, c.NotBefore.UTC()
			r.Kind = KindOf(c)
		}
	}
	return r, nil
}

func parsePEM(s string) (*x509.Certificate, error) {
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate in record")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// Apply applies c in one transaction: first the use of its token, then its
// inserts, then its supersessions, then its revocations. It fails, changing
// nothing, on an invalid serial, kind or status, a revocation without a
// time, a revocation of a serial that is not recorded (nor inserted by c),
// or a token that cannot be used (Change.UseToken).
func (s *Store) Apply(c Change) error {
	if len(c.Insert) == 0 && len(c.Supersede) == 0 && len(c.Revoke) == 0 && len(c.Roles) == 0 && c.UseToken == "" && len(c.CancelTokens) == 0 {
		return nil
	}
	p, err := s.prepare(c)
	if err != nil {
		return err
	}
	var keys []string
	if s.pg {
		keys = lockKeys(p.crs, p.sup, p.rev, p.req)
		for _, name := range p.names {
			keys = append(keys, "role "+name)
		}
		if c.UseToken != "" {
			keys = append(keys, tokenLockKey(c.UseToken))
		}
	}
	return s.batch(keys, func() error { return s.write(p) })
}

// preparedChange is a Change checked and converted for the database: the
// serials in decimal, the records as cfssl's, the roles' names sorted.
type preparedChange struct {
	c             Change
	req, sup, rev []string
	crs           []certdb.CertificateRecord
	names         []string
}

// prepare checks c and converts it, before any transaction starts.
func (s *Store) prepare(c Change) (*preparedChange, error) {
	p := &preparedChange{c: c}
	var err error
	if p.req, err = decimals(c.Require, "require"); err != nil {
		return nil, err
	}
	if c.UseToken != "" {
		if len(c.Insert) != 1 {
			return nil, fmt.Errorf("use token: want the one record issued for it, got %d records to insert", len(c.Insert))
		}
		if c.UseTokenAt.IsZero() {
			return nil, errors.New("use token: no time of use")
		}
	}
	p.crs = make([]certdb.CertificateRecord, len(c.Insert))
	for i, r := range c.Insert {
		cr, err := toCertdb(r)
		if err != nil {
			return nil, fmt.Errorf("record %q serial %s: %w", r.Name, r.Serial, err)
		}
		if s.pg {
			cr.Expiry, cr.RevokedAt = pgTime(cr.Expiry), pgTime(cr.RevokedAt)
			*cr.IssuedAt, *cr.NotBefore = pgTime(*cr.IssuedAt), pgTime(*cr.NotBefore)
		}
		p.crs[i] = cr
	}
	if p.sup, err = decimals(c.Supersede, "supersede"); err != nil {
		return nil, err
	}
	p.rev = make([]string, len(c.Revoke))
	for i, rv := range c.Revoke {
		dec, err := decimal(rv.Serial)
		if err != nil {
			return nil, fmt.Errorf("revoke: %w", err)
		}
		if rv.At.IsZero() {
			return nil, fmt.Errorf("revoke serial %s: no revocation time", rv.Serial)
		}
		p.rev[i] = dec
	}
	p.names = make([]string, 0, len(c.Roles))
	for name := range c.Roles {
		p.names = append(p.names, name)
	}
	// Sorted, so that a Change that fails fails the same way each time.
	sort.Strings(p.names)
	return p, nil
}

// decimals converts serials to decimal; an error names what they are for.
func decimals(serials []string, what string) ([]string, error) {
	out := make([]string, len(serials))
	for i, serial := range serials {
		dec, err := decimal(serial)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[i] = dec
	}
	return out, nil
}

// write writes p in the transaction of Apply, in Apply's order.
func (s *Store) write(p *preparedChange) error {
	c := p.c
	// The token first: when it is refused, nothing else is
	// written (the transaction rolls back anyway).
	if c.UseToken != "" {
		if err := s.useToken(c.UseToken, c.UseTokenAt, c.Insert[0]); err != nil {
			return err
		}
	}
	if err := s.require(c.Require, p.req, p.crs); err != nil {
		return err
	}
	if err := s.insertNew(c, p.crs); err != nil {
		return err
	}
	for i, dec := range p.sup {
		if _, err := s.exec("UPDATE certificates SET status = ? WHERE serial_number = ? AND status = ?",
			string(StatusSuperseded), dec, string(StatusGood)); err != nil {
			return fmt.Errorf("supersede serial %s: %w", c.Supersede[i], err)
		}
	}
	if err := s.revoke(c, p.rev); err != nil {
		return err
	}
	if err := s.cancelTokens(c.CancelTokens); err != nil {
		return err
	}
	if err := s.setRoles(c, p.names); err != nil {
		return err
	}
	if c.BeforeCommit != nil {
		return c.BeforeCommit()
	}
	return nil
}

// insertNew inserts the records of crs that are not recorded yet.
func (s *Store) insertNew(c Change, crs []certdb.CertificateRecord) error {
	for i, cr := range crs {
		n, err := s.count(cr.Serial)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if err := s.acc.InsertCertificate(cr); err != nil {
			return fmt.Errorf("record %q serial %s: %w", c.Insert[i].Name, c.Insert[i].Serial, err)
		}
	}
	return nil
}

// revoke marks c.Revoke revoked (rev: their serials in decimal), each of
// which must be recorded.
func (s *Store) revoke(c Change, rev []string) error {
	for i, dec := range rev {
		rv := c.Revoke[i]
		// cfssl's accessor (RevokeCertificate) stamps revoked_at
		// with the database's CURRENT_TIMESTAMP, which is neither
		// the caller's clock nor replayable; hence this UPDATE.
		if _, err := s.exec(`UPDATE certificates SET status = ?, reason = ?, revoked_at = ?
				WHERE serial_number = ? AND status != ?`,
			string(StatusRevoked), rv.Reason, s.timeArg(rv.At), dec, string(StatusRevoked)); err != nil {
			return fmt.Errorf("revoke serial %s: %w", rv.Serial, err)
		}
		n, err := s.count(dec)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("revoke serial %s: not recorded", rv.Serial)
		}
	}
	return nil
}

// setRoles sets (or, for "", removes) the roles of c.Roles, in names'
// order.
func (s *Store) setRoles(c Change, names []string) error {
	for _, name := range names {
		role := c.Roles[name]
		var err error
		if role == "" {
			_, err = s.exec(`DELETE FROM dtls_roles WHERE name = ?`, name)
		} else {
			_, err = s.exec(`INSERT INTO dtls_roles(name, role) VALUES(?, ?)
					ON CONFLICT(name) DO UPDATE SET role = excluded.role`, name, role)
		}
		if err != nil {
			return fmt.Errorf("set the role of %q: %w", name, err)
		}
	}
	return nil
}

// ErrNotGood is the error of a Change whose Require names a certificate
// that is not good (any more) when it commits.
var ErrNotGood = errors.New("certificate not good")

// require checks c.Require (decimal serials dec) inside the change's
// transaction; crs are its inserts, all present on a replay.
func (s *Store) require(hex, dec []string, crs []certdb.CertificateRecord) error {
	if len(dec) == 0 {
		return nil
	}
	replay := len(crs) > 0
	for _, cr := range crs {
		n, err := s.count(cr.Serial)
		if err != nil {
			return err
		}
		if n == 0 {
			replay = false
			break
		}
	}
	if replay {
		return nil
	}
	for i, d := range dec {
		recs, err := s.query("serial_number = ?", d)
		if err != nil {
			return err
		}
		switch {
		case len(recs) == 0:
			return fmt.Errorf("%w: serial %s is not recorded", ErrNotGood, hex[i])
		case recs[0].Status != StatusGood:
			return fmt.Errorf("%w: serial %s is %s", ErrNotGood, hex[i], recs[0].Status)
		}
	}
	return nil
}

// Role returns the authorization role recorded for a certificate holder,
// or "" when none is (the policy's default role applies). A database from
// before roles (schema 4 or older, read-only) has none.
func (s *Store) Role(name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var role string
	err := s.db.Get(&role, s.db.Rebind(`SELECT role FROM dtls_roles WHERE name = ?`), name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil && s.missingTable(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the role of %q: %w", name, err)
	}
	return role, nil
}

// Roles returns every recorded role, by holder name.
func (s *Store) Roles() (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []struct {
		Name string `db:"name"`
		Role string `db:"role"`
	}
	err := s.db.Select(&rows, `SELECT name, role FROM dtls_roles`)
	if err != nil && !s.missingTable(err) {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Name] = r.Role
	}
	return out, nil
}

// Revoke marks certificates revoked at time at with an RFC 5280 5.3.1
// reason code, in one transaction: all or none. Unlike Apply it is strict:
// a certificate already revoked, or not recorded (by serial and AKI), is
// an error.
func (s *Store) Revoke(recs []Record, reason int, at time.Time) error {
	var keys []string
	if s.pg {
		decs := make([]string, 0, len(recs))
		for _, r := range recs {
			if dec, err := decimal(r.Serial); err == nil {
				decs = append(decs, dec)
			}
		}
		keys = lockKeys(nil, decs)
	}
	return s.batch(keys, func() error {
		for _, r := range recs {
			dec, err := decimal(r.Serial)
			if err != nil {
				return err
			}
			res, err := s.exec(`UPDATE certificates SET status = ?, reason = ?, revoked_at = ?
				WHERE serial_number = ? AND authority_key_identifier = ? AND status != ?`,
				string(StatusRevoked), reason, s.timeArg(at), dec, r.AKI, string(StatusRevoked))
			if err != nil {
				return fmt.Errorf("revoke %s serial %s: %w", r.Name, r.Serial, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("revoke %s serial %s: no such certificate that is not already revoked", r.Name, r.Serial)
			}
		}
		return nil
	})
}

// batch runs f between BEGIN IMMEDIATE and COMMIT on the store's single
// connection, holding mu, so that the accessor's statements commit together
// (one fsync for a bulk issuance) or not at all, and no other goroutine's
// statement runs in between. On PostgreSQL it is pgBatch, which first locks
// keys (what lockKeys returns); SQLite's BEGIN IMMEDIATE locks the whole
// database.
func (s *Store) batch(keys []string, f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return fmt.Errorf("write database %q: opened read-only", s.path)
	}
	if s.pg {
		return s.pgBatch(keys, f)
	}
	if _, err := s.db.Exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := f(); err != nil {
		_, _ = s.db.Exec("ROLLBACK")
		return err
	}
	if _, err := s.db.Exec("COMMIT"); err != nil {
		_, _ = s.db.Exec("ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lockKeys are the keys of the locks that a batch writing these records
// and these decimal serials takes on PostgreSQL (pgBatch).
func lockKeys(crs []certdb.CertificateRecord, decs ...[]string) []string {
	var keys []string
	for _, cr := range crs {
		keys = append(keys, "serial "+cr.Serial)
	}
	for _, l := range decs {
		for _, dec := range l {
			keys = append(keys, "serial "+dec)
		}
	}
	return keys
}

// exec runs a statement written with ? placeholders, in the database's
// own placeholder syntax (sqlx's Rebind changes nothing on SQLite).
func (s *Store) exec(query string, args ...any) (sql.Result, error) {
	return s.db.Exec(s.db.Rebind(query), args...)
}

// timeArg is a time as Apply and Revoke store it: UTC, and on PostgreSQL
// rounded to the microsecond (pgTime).
func (s *Store) timeArg(t time.Time) time.Time {
	if s.pg {
		return pgTime(t)
	}
	return t.UTC()
}

// missingTable reports whether err says that a table does not exist.
func (s *Store) missingTable(err error) bool {
	if s.pg {
		return pgMissingTable(err)
	}
	return strings.Contains(err.Error(), "no such table")
}

// count is the number of rows with this decimal serial; mu must be held.
func (s *Store) count(dec string) (int, error) {
	var n int
	if err := s.db.Get(&n, s.db.Rebind("SELECT count(*) FROM certificates WHERE serial_number = ?"), dec); err != nil {
		return 0, fmt.Errorf("read records: %w", err)
	}
	return n, nil
}

const selectRecords = `SELECT serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at, pem,
	issued_at, not_before, metadata, sans, common_name FROM certificates`

// query returns the records matching the SQL condition where, in no
// particular order; mu must be held.
func (s *Store) query(where string, args ...any) ([]Record, error) {
	var crs []certdb.CertificateRecord
	if err := s.db.Select(&crs, s.db.Rebind(selectRecords+" WHERE "+where), args...); err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	recs := make([]Record, 0, len(crs))
	for _, cr := range crs {
		r, err := fromCertdb(cr)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// read runs query holding mu and sorts the result oldest first.
func (s *Store) read(where string, args ...any) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.query(where, args...)
	if err != nil {
		return nil, err
	}
	sortRecords(recs)
	return recs, nil
}

var kindOrder = map[Kind]int{KindCA: 0, KindServer: 1, KindClient: 2}

// sortRecords sorts oldest first; of certificates issued in one run, the
// CA comes before the server before the clients.
func sortRecords(recs []Record) {
	sort.SliceStable(recs, func(i, j int) bool {
		if !recs[i].NotBefore.Equal(recs[j].NotBefore) {
			return recs[i].NotBefore.Before(recs[j].NotBefore)
		}
		if ki, kj := kindOrder[recs[i].Kind], kindOrder[recs[j].Kind]; ki != kj {
			return ki < kj
		}
		if recs[i].Name != recs[j].Name {
			return recs[i].Name < recs[j].Name
		}
		return recs[i].Serial < recs[j].Serial
	})
}

func filter(recs []Record, keep func(Record) bool) []Record {
	out := recs[:0]
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// All returns every record, oldest first.
func (s *Store) All() ([]Record, error) {
	return s.read("1 = 1")
}

// Get returns the record with this hex serial, or nil when there is none.
// Two records with one serial (signed by different CAs; dtls never writes
// that, cfssl might) are an error.
func (s *Store) Get(serial string) (*Record, error) {
	dec, err := decimal(serial)
	if err != nil {
		return nil, err
	}
	recs, err := s.read("serial_number = ?", dec)
	if err != nil {
		return nil, err
	}
	switch len(recs) {
	case 0:
		return nil, nil
	case 1:
		return &recs[0], nil
	}
	return nil, fmt.Errorf("serial %s is recorded %d times, by different CAs", serial, len(recs))
}

// Has reports whether a certificate with this hex serial is recorded.
func (s *Store) Has(serial string) (bool, error) {
	dec, err := decimal(serial)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.count(dec)
	return n > 0, err
}

// byName is the condition for the records named name: through the
// common_name index, plus the rows without a common_name (cfssl's schema
// 001), whose name fromCertdb reads from the PEM and the caller checks.
const byName = "(common_name = ? OR common_name = '' OR common_name IS NULL)"

// ByName returns the records whose common name is name, oldest first.
func (s *Store) ByName(name string) ([]Record, error) {
	recs, err := s.read(byName, name)
	if err != nil {
		return nil, err
	}
	return filter(recs, func(r Record) bool { return r.Name == name }), nil
}

// HolderNames returns the names certificates are recorded under (rows
// without a common_name, cfssl's schema 001, aside) and those of the
// enrolment tokens still usable at now, each once, unsorted: every name
// that has, or may get without another word from an operator, a
// certificate.
func (s *Store) HolderNames(now time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	if err := s.db.Select(&names, s.db.Rebind(`SELECT common_name FROM certificates WHERE common_name IS NOT NULL AND common_name != ''
		UNION SELECT name FROM dtls_tokens WHERE used_at IS NULL AND expires_at > ?`), s.timeArg(now)); err != nil {
		return nil, fmt.Errorf("read names: %w", err)
	}
	return names, nil
}

// ByStatus returns the records with status st, oldest first.
func (s *Store) ByStatus(st Status) ([]Record, error) {
	return s.read("status = ?", string(st))
}

// ByKind returns the records of kind k, oldest first.
func (s *Store) ByKind(k Kind) ([]Record, error) {
	// Rows without a kind in their metadata (written by cfssl) are
	// candidates too: fromCertdb derives their kind from the PEM.
	recs, err := s.read("coalesce("+s.metaField("kind")+", '') IN (?, '')", string(k))
	if err != nil {
		return nil, err
	}
	return filter(recs, func(r Record) bool { return r.Kind == k }), nil
}

// Revoked returns the revoked records signed by the CA with this hex serial
// (Record.CASerial), oldest first: what its CRL lists.
func (s *Store) Revoked(caSerial string) ([]Record, error) {
	return s.read("status = ? AND "+s.metaField("ca_serial")+" = ?", string(StatusRevoked), caSerial)
}

// normalSerial reads key as a hex serial the way 'openssl x509 -serial' and
// 'dtls list' print it: any case, with or without colons, "0x" or leading
// zeros (openssl pads to whole bytes). It returns "" when key is not one.
func normalSerial(key string) string {
	k := strings.ToLower(strings.ReplaceAll(key, ":", ""))
	k = strings.TrimLeft(strings.TrimPrefix(k, "0x"), "0")
	if k == "" || strings.Trim(k, "0123456789abcdef") != "" {
		return ""
	}
	return k
}

// Find returns the records whose name is key, or whose hex serial is key
// (the full serial, or a prefix of at least 8 digits that only one serial
// has), newest first. A serial is read the way 'openssl x509 -serial' and
// 'dtls list' print it: any case, with or without colons, "0x" or leading
// zeros (openssl pads to whole bytes). A prefix that several serials share
// is an error.
func (s *Store) Find(key string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.query(byName, key)
	if err != nil {
		return nil, err
	}
	out = filter(out, func(r Record) bool { return r.Name == key })
	k := normalSerial(key)
	if k != "" {
		dec, _ := decimal(k)
		bySerial, err := s.query("serial_number = ?", dec)
		if err != nil {
			return nil, err
		}
		for _, r := range bySerial {
			if r.Name != key { // not already found by name
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 && len(k) >= 8 {
		// Serials are stored in decimal, where a hex prefix is no
		// range SQLite can compare (they exceed its 64-bit integers):
		// read the serial column alone and match in Go.
		var decs []string
		if err := s.db.Select(&decs, "SELECT DISTINCT serial_number FROM certificates"); err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		var match []string
		for _, d := range decs {
			if n, ok := new(big.Int).SetString(d, 10); ok && strings.HasPrefix(fmt.Sprintf("%x", n), k) {
				match = append(match, d)
			}
		}
		if len(match) > 1 {
			return nil, fmt.Errorf("serial prefix %q matches %d certificates: give more digits", key, len(match))
		}
		if len(match) == 1 {
			if out, err = s.query("serial_number = ?", match[0]); err != nil {
				return nil, err
			}
		}
	}
	sortRecords(out)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
