package store

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/fs"
	"math/big"
	mrand "math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/pgsandbox"
)

func testCert(t *testing.T, cn string, serial int64) (*x509.Certificate, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, SubjectKeyId: []byte{1, 2, 3},
		AuthorityKeyId: []byte{4, 5, 6},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

var base = time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)

// rec is a record without a real certificate: the store reads kind, name
// and dates from its columns and parses the PEM only when they are absent.
func rec(serial, name string, kind Kind, caSerial string, age int) Record {
	return Record{
		Serial: serial, AKI: "0a0b", Kind: kind, Name: name, SANs: []string{name + ".example"},
		NotBefore: base.Add(time.Duration(age) * time.Minute), NotAfter: base.Add(24 * time.Hour),
		Status: StatusGood, PEM: "pem of " + serial, CASerial: caSerial, Path: "/bundles/" + name,
	}
}

// backend is a kind of database the behavioural tests run against:
// SQLite (sqlite, here) or PostgreSQL (postgres_test.go). Each test takes
// one and asserts the same.
type backend struct {
	// newDB returns the address of a new database, a file path or a
	// DSN, that no Store has opened yet.
	newDB func(t *testing.T) string
	// open and openRO are Open and OpenReadOnly, or their PostgreSQL
	// equivalents.
	open, openRO func(addr string) (*Store, error)
	// name is how a Store on addr names its database in errors.
	name func(addr string) string
	// exec runs statements (no arguments) that write, on s's own
	// connection.
	exec func(t *testing.T, s *Store, query string)
	// count runs a query for one integer (? placeholders) on a
	// connection of its own.
	count func(t *testing.T, addr, query string, args ...any) int
	// version is the database's schema version.
	version func(t *testing.T, addr string) int
	// legacy gives addr cfssl's first schema only (what 'cfssl serve'
	// with goose migration 001 makes) holding one certificate, serial
	// 4660, named "legacy", without common_name or metadata.
	legacy func(t *testing.T, addr string)
	// toSchema3 makes a database of dtls's schema 3: no status index.
	toSchema3 string
	// indexCount counts the indexes named ?.
	indexCount string
	// notJSON is an SQL value of the metadata column that holds no
	// dtls metadata (cfssl keeps a sign request's as given).
	notJSON string
	// stored is a record, and storedTime a time, as the database keeps
	// it: PostgreSQL keeps microseconds.
	stored     func(Record) Record
	storedTime func(time.Time) time.Time
}

// openNew opens a new database, closed when t ends.
func (b backend) openNew(t *testing.T) *Store {
	t.Helper()
	s, err := b.open(b.newDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

var sqlite = backend{
	newDB:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "dtls.db") },
	open:   Open,
	openRO: OpenReadOnly,
	name:   func(p string) string { return p },
	exec: func(t *testing.T, s *Store, query string) {
		t.Helper()
		_, err := s.db.Exec(query)
		require.NoError(t, err)
	},
	count: func(t *testing.T, p, query string, args ...any) int {
		t.Helper()
		db, err := sql.Open("sqlite", p)
		require.NoError(t, err)
		defer db.Close()
		var n int
		require.NoError(t, db.QueryRow(query, args...).Scan(&n))
		return n
	},
	version:    func(t *testing.T, p string) int { t.Helper(); return userVersion(t, p) },
	legacy:     cfsslDB,
	toSchema3:  "DROP INDEX certificates_status; PRAGMA user_version = 3",
	indexCount: "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
	notJSON:    "'not json'",
	stored:     func(r Record) Record { return r },
	storedTime: func(t time.Time) time.Time { return t },
}

// cfsslDB makes a database with only cfssl's first schema (what 'cfssl
// serve' with goose migration 001 makes) holding one certificate, serial
// 4660, named "legacy", without common_name or metadata.
func cfsslDB(t *testing.T, p string) {
	t.Helper()
	db, err := sql.Open("sqlite", p)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE certificates (
  serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, ca_label blob, status blob NOT NULL,
  reason int, expiry timestamp, revoked_at timestamp, pem blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier));`)
	require.NoError(t, err)
	_, pemBytes := testCert(t, "legacy", 4660)
	_, err = db.Exec(`INSERT INTO certificates VALUES ('4660', '040506', 'x', 'good', 0, ?, ?, ?)`,
		time.Now().Add(time.Hour).UTC(), time.Time{}, string(pemBytes))
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

func userVersion(t *testing.T, p string) int {
	t.Helper()
	db, err := sql.Open("sqlite", p)
	require.NoError(t, err)
	defer db.Close()
	var v int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&v))
	return v
}

func serials(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Serial)
	}
	return out
}

// TestUpgradeCfsslSchema: a database with only cfssl's first schema is
// migrated in place and keeps its records; what its rows lack (name,
// kind) is read from the PEM, also by the lookups that query columns.
func TestUpgradeCfsslSchema(t *testing.T) { testUpgradeCfsslSchema(t, sqlite) }

func testUpgradeCfsslSchema(t *testing.T, b backend) {
	p := b.newDB(t)
	b.legacy(t, p)

	s, err := b.open(p)
	require.NoError(t, err)
	assert.False(t, s.Created)
	recs, err := s.All()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "1234", recs[0].Serial, "decimal 4660 in cfssl's column is hex 1234")
	assert.Equal(t, "legacy", recs[0].Name, "name derived from the PEM")
	assert.Equal(t, KindClient, recs[0].Kind)
	assert.Equal(t, SchemaVersion, b.version(t, p))
	byName, err := s.ByName("legacy")
	require.NoError(t, err)
	assert.Equal(t, []string{"1234"}, serials(byName), "a row without common_name is found by its PEM's name")
	byKind, err := s.ByKind(KindClient)
	require.NoError(t, err)
	assert.Equal(t, []string{"1234"}, serials(byKind), "a row without metadata is found by its PEM's kind")
	byKind, err = s.ByKind(KindServer)
	require.NoError(t, err)
	assert.Empty(t, byKind)

	// New records go in next to the old one.
	c, pb := testCert(t, "new", 99)
	require.NoError(t, s.Apply(Change{Insert: []Record{FromCert(c, pb, KindClient, "ab", "/x")}}))
	require.NoError(t, s.Close())

	// Reopening changes nothing.
	s, err = b.open(p)
	require.NoError(t, err)
	defer s.Close()
	recs, err = s.All()
	require.NoError(t, err)
	assert.Len(t, recs, 2)
	found, err := s.Find("new")
	require.NoError(t, err)
	require.Len(t, found, 1)
	assert.Equal(t, "/x", found[0].Path)
	assert.Equal(t, "63", found[0].Serial)
}

// TestMigrateSchema3: a database of the previous dtls (schema 3, without
// the status index) is readable read-only as it is, and Open migrates it
// to 4 in place, keeping its records.
func TestMigrateSchema3(t *testing.T) { testMigrateSchema3(t, sqlite) }

func testMigrateSchema3(t *testing.T, b backend) {
	p := b.newDB(t)
	s, err := b.open(p)
	require.NoError(t, err)
	r := rec("1f", "alice", KindClient, "ca", 0)
	require.NoError(t, s.Apply(Change{Insert: []Record{r}}))
	b.exec(t, s, b.toSchema3)
	require.NoError(t, s.Close())
	assert.Equal(t, 0, b.count(t, p, b.indexCount, "certificates_status"))

	ro, err := b.openRO(p)
	require.NoError(t, err)
	got, err := ro.Get("1f")
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, b.stored(r), *got)
	require.NoError(t, ro.Close())
	assert.Equal(t, 3, b.version(t, p), "OpenReadOnly does not migrate")

	s, err = b.open(p)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, SchemaVersion, b.version(t, p))
	assert.Equal(t, 1, b.count(t, p, b.indexCount, "certificates_status"))
	all, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, []Record{b.stored(r)}, all)
}

func TestRevokeAndSupersede(t *testing.T) { testRevokeAndSupersede(t, sqlite) }

func testRevokeAndSupersede(t *testing.T, b backend) {
	s, err := b.open(b.newDB(t))
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.Created)
	c1, p1 := testCert(t, "a", 1)
	c2, p2 := testCert(t, "a", 2)
	r1 := FromCert(c1, p1, KindClient, "ca", "/a")
	require.NoError(t, s.Apply(Change{Insert: []Record{r1}}))
	require.NoError(t, s.Apply(Change{Insert: []Record{FromCert(c2, p2, KindClient, "ca", "/a")}, Supersede: []string{"1"}}))
	other := r1
	other.Path, other.Name = "/elsewhere", "b"
	require.NoError(t, s.Apply(Change{Insert: []Record{other}}), "a serial already recorded is no error")
	got, err := s.Get("1")
	require.NoError(t, err)
	assert.Equal(t, "/a", got.Path, "a serial is recorded once: the first record stands")
	assert.Equal(t, StatusSuperseded, got.Status)

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, s.Revoke([]Record{r1}, 1, at))
	assert.EqualError(t, s.Revoke([]Record{r1}, 1, at), "revoke a serial 1: no such certificate that is not already revoked")
	recs, err := s.Find("a")
	require.NoError(t, err)
	st := map[string]Status{}
	for _, r := range recs {
		st[r.Serial] = r.Status
	}
	assert.Equal(t, map[string]Status{"1": StatusRevoked, "2": StatusGood}, st)
	rv, err := s.Revoked("ca")
	require.NoError(t, err)
	require.Len(t, rv, 1)
	assert.True(t, at.Equal(rv[0].RevokedAt), "revoked_at is the caller's time, got %v", rv[0].RevokedAt)
	assert.Equal(t, 1, rv[0].Reason)
}

// TestApplyIdempotent: a Change applied again, as a journal replays it,
// also after a round trip through JSON, is no error and changes nothing;
// a revocation keeps its first reason and time; a superseded or revoked
// certificate is not superseded again.
func TestApplyIdempotent(t *testing.T) { testApplyIdempotent(t, sqlite) }

func testApplyIdempotent(t *testing.T, b backend) {
	s := b.openNew(t)
	old1, old2 := rec("a1", "alice", KindClient, "ca", 0), rec("b1", "bob", KindClient, "ca", 0)
	require.NoError(t, s.Apply(Change{Insert: []Record{old1, old2}}))

	at := base.Add(time.Hour)
	c := Change{
		Insert:    []Record{rec("a2", "alice", KindClient, "ca", 1), rec("b2", "bob", KindClient, "ca", 1)},
		Supersede: []string{"a1", "b1"},
		Revoke:    []Revocation{{Serial: "b1", Reason: 4, At: at}, {Serial: "b2", Reason: 1, At: at}},
	}
	require.NoError(t, s.Apply(c))
	want, err := s.All()
	require.NoError(t, err)
	status := map[string]Status{}
	for _, r := range want {
		status[r.Serial] = r.Status
	}
	assert.Equal(t, map[string]Status{"a1": StatusSuperseded, "b1": StatusRevoked, "a2": StatusGood, "b2": StatusRevoked}, status,
		"superseded then revoked in one Change: revoked")

	require.NoError(t, s.Apply(c), "applied twice")
	js, err := json.Marshal(c)
	require.NoError(t, err)
	var replay Change
	require.NoError(t, json.Unmarshal(js, &replay))
	require.NoError(t, s.Apply(replay), "replayed from JSON")
	require.NoError(t, s.Apply(Change{Revoke: []Revocation{{Serial: "b1", Reason: 9, At: at.Add(time.Hour)}}}))
	got, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	b1, err := s.Get("b1")
	require.NoError(t, err)
	assert.Equal(t, 4, b1.Reason)
	assert.Equal(t, b.storedTime(at), b1.RevokedAt)
}

// TestApplyAtomic: a Change that fails changes nothing, and says why.
func TestApplyAtomic(t *testing.T) { testApplyAtomic(t, sqlite) }

func testApplyAtomic(t *testing.T, b backend) {
	s := b.openNew(t)
	require.NoError(t, s.Apply(Change{Insert: []Record{rec("a1", "alice", KindClient, "ca", 0)}}))
	bad := rec("b1", "bob", KindClient, "ca", 0)
	for _, tc := range []struct {
		c   Change
		err string
	}{
		{Change{Insert: []Record{bad}, Supersede: []string{"a1"}, Revoke: []Revocation{{Serial: "ff", At: base}}}, "revoke serial ff: not recorded"},
		{Change{Insert: []Record{bad, rec("c1", "carol", "robot", "ca", 0)}}, `record "carol" serial c1: invalid kind "robot"`},
		{Change{Insert: []Record{bad, {Serial: "d1", Kind: KindClient}}}, `record "" serial d1: invalid status ""`},
		{Change{Insert: []Record{bad}, Supersede: []string{"xyz"}}, `supersede: invalid serial "xyz"`},
		{Change{Insert: []Record{bad}, Revoke: []Revocation{{Serial: "a1"}}}, "revoke serial a1: no revocation time"},
	} {
		assert.EqualError(t, s.Apply(tc.c), tc.err)
	}
	all, err := s.All()
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.Equal(t, StatusGood, all[0].Status)
}

// TestChangeJSON: a Change round-trips through JSON exactly (times to the
// nanosecond, nil and empty lists), under snake_case keys; a record in a
// journal written before the json tags decodes too.
func TestChangeJSON(t *testing.T) {
	c, p := testCert(t, "alice", 7)
	c.IPAddresses = []net.IP{net.ParseIP("10.0.0.1")}
	fc := FromCert(c, p, KindClient, "ca", "/a")
	revoked := rec("2", "bob", KindServer, "ca", 0)
	revoked.Status, revoked.Reason, revoked.RevokedAt = StatusRevoked, 4, base.Add(time.Nanosecond)
	empty, bare := Record{Serial: "3", SANs: []string{}}, Record{Serial: "4"}
	in := Change{
		Insert:    []Record{fc, revoked, empty, bare},
		Supersede: []string{"1"},
		Revoke:    []Revocation{{Serial: "2", Reason: 0, At: base}},
	}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var out Change
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
	assert.NotNil(t, out.Insert[2].SANs, "empty stays empty")
	assert.Nil(t, out.Insert[3].SANs, "nil stays nil")

	b, err = json.Marshal(revoked)
	require.NoError(t, err)
	assert.JSONEq(t, `{"serial":"2","aki":"0a0b","kind":"server","name":"bob","sans":["bob.example"],
		"not_before":"2030-01-02T03:04:05.0000006Z","not_after":"2030-01-03T03:04:05.0000006Z",
		"status":"revoked","reason":4,"revoked_at":"2030-01-02T03:04:05.000000601Z",
		"pem":"pem of 2","ca_serial":"ca","path":"/bundles/bob"}`, string(b))
	b, err = json.Marshal(Change{Revoke: []Revocation{{Serial: "2", At: base}}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"revoke":[{"serial":"2","reason":0,"at":"2030-01-02T03:04:05.0000006Z"}]}`, string(b))

	var old Record
	require.NoError(t, json.Unmarshal([]byte(`{"Serial":"2","AKI":"0a0b","Kind":"server","Name":"bob","SANs":["bob.example"],
		"NotBefore":"2030-01-02T03:04:05.0000006Z","NotAfter":"2030-01-03T03:04:05.0000006Z",
		"Status":"revoked","Reason":4,"RevokedAt":"2030-01-02T03:04:05.000000601Z",
		"PEM":"pem of 2","CASerial":"ca","Path":"/bundles/bob"}`), &old))
	assert.Equal(t, revoked, old)
}

// TestLookups: each lookup returns what matches, oldest first, and nothing
// else.
func TestLookups(t *testing.T) { testLookups(t, sqlite) }

func testLookups(t *testing.T, b backend) {
	s := b.openNew(t)
	ca1, ca2 := rec("c1", "dtls CA", KindCA, "c1", 0), rec("c2", "dtls CA", KindCA, "c2", 5)
	srv := rec("51", "docker.example", KindServer, "c1", 1)
	a1, a2, a3 := rec("a1", "alice", KindClient, "c1", 2), rec("a2", "alice", KindClient, "c1", 3), rec("a3", "alice", KindClient, "c2", 6)
	b1 := rec("b1", "bob", KindClient, "c1", 4)
	require.NoError(t, s.Apply(Change{Insert: []Record{a3, b1, ca2, a2, srv, a1, ca1}}))
	require.NoError(t, s.Apply(Change{
		Supersede: []string{"c1", "a1"},
		Revoke:    []Revocation{{Serial: "a2", Reason: 1, At: base}, {Serial: "b1", Reason: 1, At: base}, {Serial: "a3", Reason: 1, At: base}},
	}))

	all, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, []string{"c1", "51", "a1", "a2", "b1", "c2", "a3"}, serials(all))
	for _, tc := range []struct {
		name string
		got  func() ([]Record, error)
		want []string
	}{
		{"ByName alice", func() ([]Record, error) { return s.ByName("alice") }, []string{"a1", "a2", "a3"}},
		{"ByName nobody", func() ([]Record, error) { return s.ByName("nobody") }, nil},
		{"ByKind ca", func() ([]Record, error) { return s.ByKind(KindCA) }, []string{"c1", "c2"}},
		{"ByKind server", func() ([]Record, error) { return s.ByKind(KindServer) }, []string{"51"}},
		{"ByKind client", func() ([]Record, error) { return s.ByKind(KindClient) }, []string{"a1", "a2", "b1", "a3"}},
		{"ByStatus good", func() ([]Record, error) { return s.ByStatus(StatusGood) }, []string{"51", "c2"}},
		{"ByStatus superseded", func() ([]Record, error) { return s.ByStatus(StatusSuperseded) }, []string{"c1", "a1"}},
		{"ByStatus revoked", func() ([]Record, error) { return s.ByStatus(StatusRevoked) }, []string{"a2", "b1", "a3"}},
		{"Revoked c1", func() ([]Record, error) { return s.Revoked("c1") }, []string{"a2", "b1"}},
		{"Revoked c2", func() ([]Record, error) { return s.Revoked("c2") }, []string{"a3"}},
		{"Revoked unknown", func() ([]Record, error) { return s.Revoked("99") }, nil},
		{"Find alice newest first", func() ([]Record, error) { return s.Find("alice") }, []string{"a3", "a2", "a1"}},
	} {
		got, err := tc.got()
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, serials(got), tc.name)
	}

	got, err := s.Get("A2")
	require.NoError(t, err)
	require.NotNil(t, got)
	want := a2
	want.Status, want.Reason, want.RevokedAt = StatusRevoked, 1, base
	assert.Equal(t, b.stored(want), *got, "a record reads back as written")
	got, err = s.Get("ff")
	require.NoError(t, err)
	assert.Nil(t, got)
	_, err = s.Get("alice")
	assert.EqualError(t, err, `invalid serial "alice"`)
	ok, err := s.Has("b1")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.Has("b2")
	require.NoError(t, err)
	assert.False(t, ok)

	// A metadata column that is not JSON (cfssl keeps a sign request's
	// metadata as given) does not break the queries that read it.
	// Without metadata or a parsable PEM, b1 has no kind and no CA.
	b.exec(t, s, "UPDATE certificates SET metadata = "+b.notJSON+" WHERE serial_number = '177'") // hex b1
	rv, err := s.Revoked("c1")
	require.NoError(t, err)
	assert.Equal(t, []string{"a2"}, serials(rv))
	cl, err := s.ByKind(KindClient)
	require.NoError(t, err)
	assert.Equal(t, []string{"a1", "a2", "a3"}, serials(cl))
}

// TestFindSerial: a serial is found the way openssl prints it (upper case,
// padded with a leading zero to whole bytes, with colons) and by a unique
// prefix; a prefix two serials share is an error, not both.
func TestFindSerial(t *testing.T) { testFindSerial(t, sqlite) }

func testFindSerial(t *testing.T, b backend) {
	s, err := b.open(b.newDB(t))
	require.NoError(t, err)
	defer s.Close()
	c1, p1 := testCert(t, "a", 0x0abcdef012345)
	c2, p2 := testCert(t, "b", 0x0abcdef019999)
	require.NoError(t, s.Apply(Change{Insert: []Record{FromCert(c1, p1, KindClient, "ca", "/a"), FromCert(c2, p2, KindClient, "ca", "/b")}}))
	for _, key := range []string{"abcdef012345", "0ABCDEF012345", "0x0abcdef012345", "0a:bc:de:f0:12:34:5", "abcdef012"} {
		got, err := s.Find(key)
		require.NoError(t, err, key)
		require.Len(t, got, 1, key)
		assert.Equal(t, "a", got[0].Name, key)
	}
	_, err = s.Find("0abcdef01")
	assert.EqualError(t, err, `serial prefix "0abcdef01" matches 2 certificates: give more digits`)
	got, err := s.Find("b")
	require.NoError(t, err)
	assert.Len(t, got, 1)
	got, err = s.Find("abcdef0")
	require.NoError(t, err)
	assert.Empty(t, got, "a prefix of fewer than 8 digits matches nothing")
}

func TestNotADatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.db")
	require.NoError(t, os.WriteFile(p, []byte("hello"), 0o600))
	_, err := Open(p)
	assert.EqualError(t, err, `open database "`+p+`": not an SQLite database`)
	_, err = OpenReadOnly(p)
	assert.EqualError(t, err, `open database "`+p+`": not an SQLite database`)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(b))
	entries, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no -wal or -shm next to it")
}

// TestConcurrentApply: two goroutines apply Changes to one Store while a
// third reads. Every Change lands whole, and no read sees one half done
// (each Change inserts a writer's two new records and retires its two
// previous ones, so a writer never has other than 0 or 2 good records).
// Run it with -race too.
func TestConcurrentApply(t *testing.T) { testConcurrentApply(t, sqlite, false) }

// TestConcurrentApplyStores: the same with a Store for each writer and a
// read-only one for the reader, as three processes would have.
func TestConcurrentApplyStores(t *testing.T) { testConcurrentApply(t, sqlite, true) }

func testConcurrentApply(t *testing.T, b backend, separate bool) {
	p := b.newDB(t)
	s, err := b.open(p)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	writers, reader := []*Store{s, s}, s
	if separate {
		w1, err := b.open(p)
		require.NoError(t, err)
		t.Cleanup(func() { w1.Close() })
		reader, err = b.openRO(p)
		require.NoError(t, err)
		t.Cleanup(func() { reader.Close() })
		writers[1] = w1
	}
	const n = 150
	serial := func(g, i, j int) string { return fmt.Sprintf("%x", (g+1)<<20|i<<1|j) }
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", g)
			for i := range n {
				c := Change{Insert: []Record{
					rec(serial(g, i, 0), name, KindClient, "ca", i),
					rec(serial(g, i, 1), name, KindClient, "ca", i),
				}}
				if i > 0 {
					c.Supersede = []string{serial(g, i-1, 0)}
					c.Revoke = []Revocation{{Serial: serial(g, i-1, 1), Reason: 1, At: base}}
				}
				if err := writers[g].Apply(c); err != nil {
					errs[g] = fmt.Errorf("change %d: %w", i, err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false // one last read after both are done
		default:
		}
		recs, err := reader.All()
		require.NoError(t, err)
		good := map[string]int{}
		for _, r := range recs {
			if r.Status == StatusGood {
				good[r.Name]++
			}
		}
		for name, k := range good {
			require.Equal(t, 2, k, "%s's good records after %d reads: a read saw half a Change", name, reads)
		}
	}
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	for g := range 2 {
		recs, err := s.ByName(fmt.Sprintf("w%d", g))
		require.NoError(t, err)
		count := map[Status]int{}
		for _, r := range recs {
			count[r.Status]++
		}
		assert.Equal(t, map[Status]int{StatusGood: 2, StatusSuperseded: n - 1, StatusRevoked: n - 1}, count, "writer %d", g)
	}
	t.Logf("%d reads", reads)
}

// TestConcurrentReplay: two Stores apply the same Change at the same
// moment, as two processes replaying one journal would. Both succeed, and
// each record is there once, with the first reason and time of its
// revocation.
func TestConcurrentReplay(t *testing.T) { testConcurrentReplay(t, sqlite) }

func testConcurrentReplay(t *testing.T, b backend) {
	p := b.newDB(t)
	var stores []*Store
	for range 2 {
		s, err := b.open(p)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	const n = 40
	for i := range n {
		c := Change{
			Insert: []Record{rec(fmt.Sprintf("%x", 2*i+0x100), "r", KindClient, "ca", i), rec(fmt.Sprintf("%x", 2*i+0x101), "r", KindClient, "ca", i)},
			Roles:  map[string]string{"r": fmt.Sprint(i), "s": fmt.Sprint(i)},
		}
		if i > 0 {
			c.Supersede = []string{fmt.Sprintf("%x", 2*i+0xfe)}
			c.Revoke = []Revocation{{Serial: fmt.Sprintf("%x", 2*i+0xff), Reason: 1, At: base.Add(time.Duration(i) * time.Second)}}
		}
		start := make(chan struct{})
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for g, s := range stores {
			wg.Go(func() {
				<-start
				errs[g] = s.Apply(c)
			})
		}
		close(start)
		wg.Wait()
		for g, err := range errs {
			require.NoError(t, err, "change %d, store %d", i, g)
		}
	}
	all, err := stores[0].All()
	require.NoError(t, err)
	require.Len(t, all, 2*n)
	count := map[Status]int{}
	for _, r := range all {
		count[r.Status]++
		if r.Status == StatusRevoked {
			i := (mustParseHex(t, r.Serial) - 0xff) / 2
			assert.Equal(t, b.storedTime(base.Add(time.Duration(i)*time.Second)), r.RevokedAt, r.Serial)
		}
	}
	assert.Equal(t, map[Status]int{StatusGood: 2, StatusSuperseded: n - 1, StatusRevoked: n - 1}, count)
	roles, err := stores[1].Roles()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"r": fmt.Sprint(n - 1), "s": fmt.Sprint(n - 1)}, roles)
}

func mustParseHex(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.ParseInt(s, 16, 64)
	require.NoError(t, err)
	return int(n)
}

// TestReadOnlySeesWrites: a read-only Store on the file a writer Store
// writes sees each Change as soon as Apply returns, and cannot write.
func TestReadOnlySeesWrites(t *testing.T) { testReadOnlySeesWrites(t, sqlite) }

func testReadOnlySeesWrites(t *testing.T, b backend) {
	p := b.newDB(t)
	w, err := b.open(p)
	require.NoError(t, err)
	defer w.Close()
	r, err := b.openRO(p)
	require.NoError(t, err)
	defer r.Close()
	assert.False(t, r.Created)

	ca, cl := rec("c1", "dtls CA", KindCA, "c1", 0), rec("a1", "alice", KindClient, "c1", 1)
	require.NoError(t, w.Apply(Change{Insert: []Record{ca, cl}}))
	got, err := r.Get("a1")
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, StatusGood, got.Status)
	rv, err := r.Revoked("c1")
	require.NoError(t, err)
	assert.Empty(t, rv)

	require.NoError(t, w.Apply(Change{Revoke: []Revocation{{Serial: "a1", Reason: 1, At: base}}}))
	rv, err = r.Revoked("c1")
	require.NoError(t, err)
	require.Len(t, rv, 1)
	assert.Equal(t, "a1", rv[0].Serial)
	assert.Equal(t, b.storedTime(base), rv[0].RevokedAt)
	got, err = r.Get("a1")
	require.NoError(t, err)
	assert.Equal(t, StatusRevoked, got.Status)

	assert.EqualError(t, r.Apply(Change{Insert: []Record{rec("b1", "bob", KindClient, "c1", 2)}}), `write database "`+b.name(p)+`": opened read-only`)
	assert.EqualError(t, r.Revoke([]Record{ca}, 1, base), `write database "`+b.name(p)+`": opened read-only`)
	_, err = r.db.Exec("DELETE FROM certificates")
	assert.Error(t, err, "the connection itself is read-only")
	all, err := w.All()
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

// TestOpenReadOnlyRefuses: OpenReadOnly creates nothing, migrates nothing,
// and refuses a database it cannot read.
func TestOpenReadOnlyRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	_, err := OpenReadOnly(missing)
	assert.EqualError(t, err, `open database "`+missing+`": file does not exist`)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)

	old := filepath.Join(dir, "cfssl.db")
	cfsslDB(t, old)
	_, err = OpenReadOnly(old)
	assert.EqualError(t, err, `open database "`+old+`": schema version 0 is older than this dtls reads (3): run a dtls command that opens it read-write to migrate it`)
	db, err := sql.Open("sqlite", old)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pragma_table_info('certificates')").Scan(&n))
	require.NoError(t, db.Close())
	assert.Equal(t, 8, n, "not migrated")

	newer := filepath.Join(dir, "newer.db")
	s, err := Open(newer)
	require.NoError(t, err)
	_, err = s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = OpenReadOnly(newer)
	assert.EqualError(t, err, fmt.Sprintf(`open database %q: schema version %d is newer than this dtls knows (%d): upgrade dtls`, newer, SchemaVersion+1, SchemaVersion))
}

// TestOpenOddPaths: a state directory whose name SQLite's URI syntax would
// otherwise read ('?' query, '#' fragment, '%' escape) holds the database
// at exactly DIR/dtls.db, 0600 from creation like its -wal and -shm, and
// nothing is created outside it.
func TestOpenOddPaths(t *testing.T) {
	for _, name := range []string{"a#b", "a?b", "a%20b", "a b", "a&b=c;d"} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, name)
			require.NoError(t, os.Mkdir(dir, 0o700))
			p := filepath.Join(dir, "dtls.db")
			s, err := Open(p)
			require.NoError(t, err)
			assert.True(t, s.Created)
			require.NoError(t, s.Apply(Change{Insert: []Record{rec("a1", "alice", KindClient, "ca", 0)}}))
			for _, f := range []string{"dtls.db", "dtls.db-wal", "dtls.db-shm"} {
				fi, err := os.Lstat(filepath.Join(dir, f))
				if assert.NoError(t, err, f) {
					assert.Equal(t, fs.FileMode(0o600), fi.Mode(), f)
				}
			}
			ro, err := OpenReadOnly(p)
			require.NoError(t, err)
			ok, err := ro.Has("a1")
			require.NoError(t, err)
			assert.True(t, ok, "the read-only store reads the same file")
			require.NoError(t, ro.Close())
			require.NoError(t, s.Close())

			s, err = Open(p)
			require.NoError(t, err)
			assert.False(t, s.Created)
			ok, err = s.Has("a1")
			require.NoError(t, err)
			assert.True(t, ok, "reopened, the record is there")
			require.NoError(t, s.Close())

			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			assert.Equal(t, []string{name}, names, "nothing next to the state directory")
			entries, err = os.ReadDir(dir)
			require.NoError(t, err)
			names = nil
			for _, e := range entries {
				names = append(names, e.Name())
			}
			sort.Strings(names)
			assert.Subset(t, []string{"dtls.db", "dtls.db-shm", "dtls.db-wal"}, names)
			assert.Contains(t, names, "dtls.db")
		})
	}
}

// TestOpenEmptyFile: an empty file (a run killed between creating and
// migrating the database) is a new database.
func TestOpenEmptyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dtls.db")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	s, err := Open(p)
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.Created)
	assert.Equal(t, SchemaVersion, userVersion(t, p))
}

// TestRoles: roles are set, changed and removed with Apply, outlive the
// records, and read as "" where none is set, also on a read-only store of
// a database from before roles.
func TestRoles(t *testing.T) { testRoles(t, sqlite) }

func testRoles(t *testing.T, b backend) {
	p := b.newDB(t)
	s, err := b.open(p)
	require.NoError(t, err)
	defer s.Close()
	role, err := s.Role("alice")
	require.NoError(t, err)
	assert.Equal(t, "", role)
	require.NoError(t, s.Apply(Change{Roles: map[string]string{"alice": "developer", "bob": "readonly"}}))
	require.NoError(t, s.Apply(Change{Roles: map[string]string{"alice": "admin"}}))
	role, err = s.Role("alice")
	require.NoError(t, err)
	assert.Equal(t, "admin", role)
	ro, err := b.openRO(p)
	require.NoError(t, err)
	defer ro.Close()
	role, err = ro.Role("bob")
	require.NoError(t, err)
	assert.Equal(t, "readonly", role)
	require.NoError(t, s.Apply(Change{Roles: map[string]string{"bob": ""}}))
	role, err = ro.Role("bob")
	require.NoError(t, err)
	assert.Equal(t, "", role, "the reader sees the removal")
	all, err := s.Roles()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"alice": "admin"}, all)
}

// The kill test's child: TestMain runs killChild instead of the tests when
// killBackendEnv is set.
const (
	killBackendEnv = "DTLS_STORE_KILL_BACKEND" // "sqlite" or "postgres"
	killAddrEnv    = "DTLS_STORE_KILL_ADDR"    // the database
	killFromEnv    = "DTLS_STORE_KILL_FROM"    // the first Change's number
	// killChildMax bounds a child that nobody kills.
	killChildMax = 100000
)

func TestMain(m *testing.M) {
	if name := os.Getenv(killBackendEnv); name != "" {
		os.Exit(killChild(name, os.Getenv(killAddrEnv), os.Getenv(killFromEnv)))
	}
	// The PostgreSQL tests wait on the server more than they compute:
	// more of them at once than there are CPUs, unless -parallel says.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
	// One PostgreSQL server for the package, a database per test.
	os.Exit(pgsandbox.RunShared(m))
}

// killChange is Change number i of a kill test's child: it records two
// certificates and supersedes the first one of Change i-1, so that one
// half without the other shows.
func killChange(i, from int) Change {
	c := Change{Insert: []Record{
		rec(killSerial(i, 0), "killed", KindClient, "ca", 0),
		rec(killSerial(i, 1), "killed", KindClient, "ca", 0),
	}}
	if i > from {
		c.Supersede = []string{killSerial(i-1, 0)}
	}
	return c
}

func killSerial(i, j int) string { return fmt.Sprintf("%x", i<<1|j) }

// killChild applies killChange from number from on, and prints each
// Change's number once Apply has returned: committed. It returns an exit
// code.
func killChild(backend, addr, fromText string) int {
	open := map[string]func(string) (*Store, error){"sqlite": Open, "postgres": OpenPostgres}[backend]
	from, err := strconv.Atoi(fromText)
	if open == nil || err != nil {
		fmt.Fprintf(os.Stderr, "kill child: backend %q, from %q\n", backend, fromText)
		return 2
	}
	s, err := open(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 1
	}
	for i := from; i < from+killChildMax; i++ {
		if err := s.Apply(killChange(i, from)); err != nil {
			fmt.Fprintf(os.Stderr, "kill child: change %d: %v\n", i, err)
			return 1
		}
		fmt.Println(i)
	}
	return 0
}

// TestKillApply: see testKill.
func TestKillApply(t *testing.T) { testKill(t, sqlite, "sqlite") }

// testKill: a child process (this test binary again) applies Changes in a
// loop and is killed with SIGKILL after a random number of them, several
// times. Afterwards every Change it reported committed is in the database
// whole, any other is there whole or not at all (at most the one Change
// that was in flight), and a new writer goes on.
func testKill(t *testing.T, b backend, name string) {
	addr := b.newDB(t)
	s, err := b.open(addr) // migrated here, not by a child
	require.NoError(t, err)
	require.NoError(t, s.Close())
	exe, err := os.Executable()
	require.NoError(t, err)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewSource(seed))
	const rounds = 6
	for round := range rounds {
		from := (round + 1) * 10000
		target := 1 + rng.Intn(40)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), killBackendEnv+"="+name, killAddrEnv+"="+addr, killFromEnv+"="+strconv.Itoa(from))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		var reported []int
		killed := false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			i, err := strconv.Atoi(sc.Text())
			require.NoError(t, err, "child said %q", sc.Text())
			reported = append(reported, i)
			if !killed && len(reported) == target {
				// By its pid, which Wait has not reaped yet.
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				killed = true
			}
			// Lines written before the kill are still read.
		}
		require.NoError(t, sc.Err())
		err = cmd.Wait()
		require.True(t, killed, "round %d: the child ended by itself after %d changes (%v): %s", round, len(reported), err, stderr.String())
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "round %d: %s", round, stderr.String())
		require.Equal(t, "signal: killed", ee.Error(), "round %d: %s", round, stderr.String())
		require.GreaterOrEqual(t, len(reported), target)

		s, err := b.open(addr)
		require.NoError(t, err)
		for _, i := range reported {
			for j := range 2 {
				ok, err := s.Has(killSerial(i, j))
				require.NoError(t, err)
				require.True(t, ok, "round %d: change %d was reported committed, but serial %s is not recorded", round, i, killSerial(i, j))
			}
		}
		recs, err := s.All()
		require.NoError(t, err)
		have := map[string]Status{}
		for _, r := range recs {
			have[r.Serial] = r.Status
		}
		last := reported[len(reported)-1]
		inFlight := 0
		for i := from; i <= last+1; i++ {
			_, a := have[killSerial(i, 0)]
			_, c := have[killSerial(i, 1)]
			require.Equal(t, a, c, "round %d: change %d is in the database by half", round, i)
			if a && i > from {
				require.Equal(t, StatusSuperseded, have[killSerial(i-1, 0)], "round %d: change %d is in, its supersession is not", round, i)
			}
			if a && i > last {
				inFlight++
			}
		}
		_, beyond := have[killSerial(last+2, 0)]
		require.False(t, beyond, "round %d: a change after the one in flight", round)
		t.Logf("round %d: killed after %d changes reported, %d more committed", round, len(reported), inFlight)

		// The killed writer holds nothing that stops the next one.
		require.NoError(t, s.Apply(Change{Insert: []Record{rec(killSerial(from+killChildMax, 0), "after", KindClient, "ca", 0)}}))
		require.NoError(t, s.Close())
	}
}
