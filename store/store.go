// Package store owns dtls's inventory: a record of every certificate dtls
// issued (CA, server, client) in an SQLite database in the state directory.
//
// The table is cfssl's certdb schema (certdb/sqlite/migrations 001 and 002),
// written through cfssl's certdb/sql accessor, so that cfssl's own tools can
// read it. SQLite is reached through modernc.org/sqlite, a pure-Go driver:
// cfssl's binaries use the cgo driver, which breaks CGO_ENABLED=0 and cross
// builds (cfssl#545).
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
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/certdb"
	certsql "github.com/cloudflare/cfssl/certdb/sql"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

func init() {
	// sqlx knows the cgo driver's name ("sqlite3"), not the pure-Go one's.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Statuses. "good" and "revoked" are cfssl's; "superseded" marks a
// certificate replaced by a renewal or a CA rotation.
const (
	StatusGood       = "good"
	StatusRevoked    = "revoked"
	StatusSuperseded = "superseded"
)

// caLabel is the ca_label of every record dtls writes.
const caLabel = "dtls"

// SchemaVersion is the schema this package creates and migrates to; it is
// kept in SQLite's user_version.
const SchemaVersion = 3

// Record is one issued certificate.
type Record struct {
	Serial    string // lowercase hex, as openssl x509 -serial prints it
	AKI       string // hex authority key identifier
	Kind      string // "ca", "server" or "client"
	Name      string // the common name
	SANs      []string
	NotBefore time.Time
	NotAfter  time.Time
	Status    string
	Reason    int
	RevokedAt time.Time
	PEM       string
	// CASerial is the hex serial of the CA that signed it (its own serial
	// for a CA).
	CASerial string
	// Path is where the certificate was written: a bundle directory, or
	// the daemon's server-cert.pem.
	Path string
}

// Cert parses the record's PEM.
func (r Record) Cert() (*x509.Certificate, error) {
	return parsePEM(r.PEM)
}

// FromCert builds a good record for a freshly issued certificate.
func FromCert(cert *x509.Certificate, certPEM []byte, kind, caSerial, path string) Record {
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

// Store is an open inventory database.
type Store struct {
	db  *sqlx.DB
	acc *certsql.Accessor
	// Created is true when Open made a new, empty database.
	Created bool
}

// Open opens (creating it when absent) the database at path, and creates or
// migrates its schema in place: an older database (cfssl's schema 001, or
// an older dtls) is upgraded, never dropped. A file that is not an SQLite
// database is an error and is left untouched.
func Open(path string) (*Store, error) {
	created := false
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		created = true
	} else if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	} else if fi.Size() > 0 {
		// Check the header before SQLite touches the file: it would
		// create -wal and -shm files next to a file it cannot read.
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open database %q: %w", path, err)
		}
		hdr := make([]byte, 16)
		_, err = f.Read(hdr)
		f.Close()
		if err != nil || string(hdr) != "SQLite format 3\x00" {
			return nil, fmt.Errorf("open database %q: not an SQLite database", path)
		}
	}
	// WAL lets readers go on while a writer commits; busy_timeout makes
	// a second process wait for the lock instead of failing at once
	// (callers also hold a flock, see cmd/state.go); synchronous FULL
	// makes a commit durable before a bundle is renamed into place.
	dsn := "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	// One connection: Batch runs BEGIN and COMMIT around the accessor's
	// statements, which must all go through the same connection.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, acc: certsql.NewAccessor(db), Created: created}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	if created {
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
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
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

type meta struct {
	Kind     string `json:"kind"`
	CASerial string `json:"ca_serial,omitempty"`
	Path     string `json:"path,omitempty"`
}

func decimal(hexSerial string) (string, error) {
	n, ok := new(big.Int).SetString(hexSerial, 16)
	if !ok {
		return "", fmt.Errorf("invalid serial %q", hexSerial)
	}
	return n.String(), nil
}

func toCertdb(r Record) (certdb.CertificateRecord, error) {
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
		Status:     r.Status,
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
		Status:    cr.Status,
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
			r.Kind = kindOf(c)
		}
	}
	return r, nil
}

func kindOf(c *x509.Certificate) string {
	if c.IsCA {
		return "ca"
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth {
			return "server"
		}
	}
	return "client"
}

// KindOf says whether a certificate is a CA, server or client certificate.
func KindOf(c *x509.Certificate) string { return kindOf(c) }

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

// Insert records certificates in one transaction through cfssl's accessor.
// Changes lists status updates (serial -> status) applied in the same
// transaction, e.g. the certificates a renewal supersedes.
func (s *Store) Insert(recs []Record, changes map[string]string) error {
	return s.batch(func() error {
		for _, r := range recs {
			cr, err := toCertdb(r)
			if err != nil {
				return err
			}
			if err := s.acc.InsertCertificate(cr); err != nil {
				return fmt.Errorf("record %s serial %s: %w", r.Name, r.Serial, err)
			}
		}
		for serial, status := range changes {
			if err := s.setStatus(serial, status); err != nil {
				return err
			}
		}
		return nil
	})
}

// batch runs f between BEGIN IMMEDIATE and COMMIT on the store's single
// connection, so that the accessor's statements commit together (one fsync
// for a bulk issuance) or not at all.
func (s *Store) batch(f func() error) error {
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

func (s *Store) setStatus(serial, status string) error {
	dec, err := decimal(serial)
	if err != nil {
		return err
	}
	res, err := s.db.Exec("UPDATE certificates SET status = ? WHERE serial_number = ? AND status = ?", status, dec, StatusGood)
	if err != nil {
		return fmt.Errorf("mark %s %s: %w", serial, status, err)
	}
	_ = res
	return nil
}

// SetStatus changes the status of a good certificate (superseded).
func (s *Store) SetStatus(serial, status string) error {
	return s.batch(func() error { return s.setStatus(serial, status) })
}

// Revoke marks certificates revoked at time at with an RFC 5280 5.3.1
// reason code, in one transaction: all or none. cfssl's accessor stamps
// revoked_at with the database's CURRENT_TIMESTAMP, which is neither the
// caller's clock nor a time zone Go reads back reliably, hence the UPDATE
// here. A certificate already revoked, or not recorded, is an error.
func (s *Store) Revoke(recs []Record, reason int, at time.Time) error {
	return s.batch(func() error {
		for _, r := range recs {
			dec, err := decimal(r.Serial)
			if err != nil {
				return err
			}
			res, err := s.db.Exec(`UPDATE certificates SET status = ?, reason = ?, revoked_at = ?
				WHERE serial_number = ? AND authority_key_identifier = ? AND status != ?`,
				StatusRevoked, reason, at.UTC(), dec, r.AKI, StatusRevoked)
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

var kindOrder = map[string]int{"ca": 0, "server": 1, "client": 2}

// All returns every record, oldest first.
func (s *Store) All() ([]Record, error) {
	var crs []certdb.CertificateRecord
	err := s.db.Select(&crs, `SELECT serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at, pem,
		issued_at, not_before, metadata, sans, common_name FROM certificates`)
	if err != nil {
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
	return recs, nil
}

// Has reports whether a certificate with this hex serial is recorded.
func (s *Store) Has(serial string) (bool, error) {
	dec, err := decimal(serial)
	if err != nil {
		return false, err
	}
	var n int
	if err := s.db.Get(&n, "SELECT count(*) FROM certificates WHERE serial_number = ?", dec); err != nil {
		return false, err
	}
	return n > 0, nil
}

// Find returns the records whose name is key, or whose hex serial is key
// (the full serial, or a prefix of at least 8 digits that only one serial
// has), newest first. A serial is read the way 'openssl x509 -serial' and
// 'dtls list' print it: any case, with or without colons, "0x" or leading
// zeros (openssl pads to whole bytes). A prefix that several serials share
// is an error.
func (s *Store) Find(key string) ([]Record, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	k := strings.ToLower(strings.ReplaceAll(key, ":", ""))
	k = strings.TrimLeft(strings.TrimPrefix(k, "0x"), "0")
	var out, prefixed []Record
	serials := map[string]bool{}
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		switch {
		case r.Name == key || (k != "" && r.Serial == k):
			out = append(out, r)
		case len(k) >= 8 && strings.HasPrefix(r.Serial, k):
			prefixed = append(prefixed, r)
			serials[r.Serial] = true
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(serials) > 1 {
		return nil, fmt.Errorf("serial prefix %q matches %d certificates: give more digits", key, len(serials))
	}
	return prefixed, nil
}

// Revoked returns the revoked records signed by the CA with this serial, for
// its CRL.
func (s *Store) Revoked(caSerial string) ([]Record, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, r := range all {
		if r.Status == StatusRevoked && r.CASerial == caSerial {
			out = append(out, r)
		}
	}
	return out, nil
}

// PEMBytes is the record's certificate PEM.
func (r Record) PEMBytes() []byte { return []byte(r.PEM) }
