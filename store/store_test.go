package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
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

// TestUpgradeCfsslSchema: a database with only cfssl's first schema (what
// 'cfssl serve' with goose migration 001 makes) is migrated in place and
// keeps its records.
func TestUpgradeCfsslSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "certs.db")
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

	s, err := Open(p)
	require.NoError(t, err)
	assert.False(t, s.Created)
	recs, err := s.All()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "1234", recs[0].Serial, "decimal 4660 in cfssl's column is hex 1234")
	assert.Equal(t, "legacy", recs[0].Name, "name derived from the PEM")
	assert.Equal(t, "client", recs[0].Kind)
	var v int
	require.NoError(t, s.db.Get(&v, "PRAGMA user_version"))
	assert.Equal(t, SchemaVersion, v)

	// New records go in next to the old one.
	c, pb := testCert(t, "new", 99)
	require.NoError(t, s.Insert([]Record{FromCert(c, pb, "client", "ab", "/x")}, nil))
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

func TestRevokeAndSupersede(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "d.db"))
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.Created)
	c1, p1 := testCert(t, "a", 1)
	c2, p2 := testCert(t, "a", 2)
	r1 := FromCert(c1, p1, "client", "ca", "/a")
	require.NoError(t, s.Insert([]Record{r1}, nil))
	require.NoError(t, s.Insert([]Record{FromCert(c2, p2, "client", "ca", "/a")}, map[string]string{"1": StatusSuperseded}))
	require.Error(t, s.Insert([]Record{r1}, nil), "a serial is recorded once")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, s.Revoke([]Record{r1}, 1, at))
	assert.Error(t, s.Revoke([]Record{r1}, 1, at), "revoked twice")
	recs, err := s.Find("a")
	require.NoError(t, err)
	st := map[string]string{}
	for _, r := range recs {
		st[r.Serial] = r.Status
	}
	assert.Equal(t, map[string]string{"1": StatusRevoked, "2": StatusGood}, st)
	rv, err := s.Revoked("ca")
	require.NoError(t, err)
	require.Len(t, rv, 1)
	assert.True(t, at.Equal(rv[0].RevokedAt), "revoked_at is the caller's time, got %v", rv[0].RevokedAt)
	assert.Equal(t, 1, rv[0].Reason)
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
	require.NoError(t, s.Insert([]Record{FromCert(c1, p1, "client", "ca", "/a"), FromCert(c2, p2, "client", "ca", "/b")}, nil))
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
}

func TestNotADatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.db")
	require.NoError(t, os.WriteFile(p, []byte("hello"), 0o600))
	_, err := Open(p)
	assert.EqualError(t, err, `open database "`+p+`": not an SQLite database`)
}
