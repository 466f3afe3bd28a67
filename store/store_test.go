package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "dtls.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
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
func TestUpgradeCfsslSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "certs.db")
	cfsslDB(t, p)

	s, err := Open(p)
	require.NoError(t, err)
	assert.False(t, s.Created)
	recs, err := s.All()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "1234", recs[0].Serial, "decimal 4660 in cfssl's column is hex 1234")
	assert.Equal(t, "legacy", recs[0].Name, "name derived from the PEM")
	assert.Equal(t, KindClient, recs[0].Kind)
	var v int
	require.NoError(t, s.db.Get(&v, "PRAGMA user_version"))
	assert.Equal(t, SchemaVersion, v)
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
	s, err = Open(p)
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
func TestMigrateSchema3(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dtls.db")
	s, err := Open(p)
	require.NoError(t, err)
	r := rec("1f", "alice", KindClient, "ca", 0)
	require.NoError(t, s.Apply(Change{Insert: []Record{r}}))
	_, err = s.db.Exec("DROP INDEX certificates_status; PRAGMA user_version = 3")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	ro, err := OpenReadOnly(p)
	require.NoError(t, err)
	got, err := ro.Get("1f")
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, r, *got)
	require.NoError(t, ro.Close())
	assert.Equal(t, 3, userVersion(t, p), "OpenReadOnly does not migrate")

	s, err = Open(p)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, SchemaVersion, userVersion(t, p))
	var n int
	require.NoError(t, s.db.Get(&n, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'certificates_status'"))
	assert.Equal(t, 1, n)
	all, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, []Record{r}, all)
}

func TestRevokeAndSupersede(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "d.db"))
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
func TestApplyIdempotent(t *testing.T) {
	s := openTemp(t)
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
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var replay Change
	require.NoError(t, json.Unmarshal(b, &replay))
	require.NoError(t, s.Apply(replay), "replayed from JSON")
	require.NoError(t, s.Apply(Change{Revoke: []Revocation{{Serial: "b1", Reason: 9, At: at.Add(time.Hour)}}}))
	got, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	b1, err := s.Get("b1")
	require.NoError(t, err)
	assert.Equal(t, 4, b1.Reason)
	assert.Equal(t, at, b1.RevokedAt)
}

// TestApplyAtomic: a Change that fails changes nothing, and says why.
func TestApplyAtomic(t *testing.T) {
	s := openTemp(t)
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
func TestLookups(t *testing.T) {
	s := openTemp(t)
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
	assert.Equal(t, want, *got, "a record reads back as written")
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
	_, err = s.db.Exec("UPDATE certificates SET metadata = 'not json' WHERE serial_number = '177'") // hex b1
	require.NoError(t, err)
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
func TestFindSerial(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "d.db"))
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
func TestConcurrentApply(t *testing.T) {
	s := openTemp(t)
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
				if err := s.Apply(c); err != nil {
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
		recs, err := s.All()
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

// TestReadOnlySeesWrites: a read-only Store on the file a writer Store
// writes sees each Change as soon as Apply returns, and cannot write.
func TestReadOnlySeesWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dtls.db")
	w, err := Open(p)
	require.NoError(t, err)
	defer w.Close()
	r, err := OpenReadOnly(p)
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
	assert.Equal(t, base, rv[0].RevokedAt)
	got, err = r.Get("a1")
	require.NoError(t, err)
	assert.Equal(t, StatusRevoked, got.Status)

	assert.EqualError(t, r.Apply(Change{Insert: []Record{rec("b1", "bob", KindClient, "c1", 2)}}), `write database "`+p+`": opened read-only`)
	assert.EqualError(t, r.Revoke([]Record{ca}, 1, base), `write database "`+p+`": opened read-only`)
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
func TestRoles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dtls.db")
	s, err := Open(p)
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
	ro, err := OpenReadOnly(p)
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
