package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	certsql "github.com/cloudflare/cfssl/certdb/sql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/pgsandbox"
)

// postgres runs the behavioural tests on a PostgreSQL server of the test's
// own (pgsandbox: skipped without PostgreSQL, failed under CI=true).
var postgres = backend{
	newDB:  func(t *testing.T) string { return pgsandbox.Start(t) },
	open:   OpenPostgres,
	openRO: OpenPostgresReadOnly,
	name:   redactDSN,
	exec: func(t *testing.T, s *Store, query string) {
		t.Helper()
		// The session is read-only outside a batch's transaction.
		_, err := s.db.Exec("BEGIN READ WRITE; " + query + "; COMMIT")
		require.NoError(t, err)
	},
	count: pgCount,
	version: func(t *testing.T, dsn string) int {
		t.Helper()
		return pgCount(t, dsn, "SELECT version FROM "+pgSchemaTable)
	},
	legacy:     cfsslPostgres,
	toSchema3:  "DROP INDEX certificates_status; UPDATE " + pgSchemaTable + " SET version = 3",
	indexCount: "SELECT count(*) FROM pg_indexes WHERE indexname = ?",
	// jsonb holds only JSON: this is JSON, but no object.
	notJSON: `'"not json"'`,
	stored: func(r Record) Record {
		r.NotBefore, r.NotAfter = pgTime(r.NotBefore), pgTime(r.NotAfter)
		if !r.RevokedAt.IsZero() {
			r.RevokedAt = pgTime(r.RevokedAt)
		}
		return r
	},
	storedTime: pgTime,
}

func pgCount(t *testing.T, dsn, query string, args ...any) int {
	t.Helper()
	db := rawPostgres(t, dsn)
	var n int
	require.NoError(t, db.QueryRow(sqlx.Rebind(sqlx.DOLLAR, query), args...).Scan(&n))
	return n
}

// rawPostgres is a connection of the test's own, as another program
// would have one: read-write, not through a Store.
func rawPostgres(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// cfsslPostgres gives dsn cfssl's first PostgreSQL schema only, verbatim
// from certdb/pg/migrations/001_CreateCertificates.sql (what 'cfssl
// serve' with goose migration 001 makes), holding one certificate, serial
// 4660, named "legacy", without common_name or metadata.
func cfsslPostgres(t *testing.T, dsn string) {
	t.Helper()
	db := rawPostgres(t, dsn)
	_, err := db.Exec(`CREATE TABLE certificates (
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

CREATE TABLE ocsp_responses (
  serial_number            bytea NOT NULL,
  authority_key_identifier bytea NOT NULL,
  body                     bytea NOT NULL,
  expiry                   timestamptz,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);`)
	require.NoError(t, err)
	_, pemBytes := testCert(t, "legacy", 4660)
	_, err = db.Exec(`INSERT INTO certificates VALUES ('4660', '040506', 'x', 'good', 0, $1, $2, $3)`,
		time.Now().Add(time.Hour).UTC(), time.Time{}, string(pemBytes))
	require.NoError(t, err)
}

// onPostgres runs a behavioural test on PostgreSQL, in parallel with the
// others: each has a server of its own, and most of their time is initdb.
func onPostgres(t *testing.T, test func(*testing.T, backend)) {
	t.Parallel()
	test(t, postgres)
}

func TestPostgresUpgradeCfsslSchema(t *testing.T) { onPostgres(t, testUpgradeCfsslSchema) }
func TestPostgresMigrateSchema3(t *testing.T)     { onPostgres(t, testMigrateSchema3) }
func TestPostgresRevokeAndSupersede(t *testing.T) { onPostgres(t, testRevokeAndSupersede) }
func TestPostgresApplyIdempotent(t *testing.T)    { onPostgres(t, testApplyIdempotent) }
func TestPostgresApplyAtomic(t *testing.T)        { onPostgres(t, testApplyAtomic) }
func TestPostgresLookups(t *testing.T)            { onPostgres(t, testLookups) }
func TestPostgresFindSerial(t *testing.T)         { onPostgres(t, testFindSerial) }
func TestPostgresConcurrentReplay(t *testing.T)   { onPostgres(t, testConcurrentReplay) }
func TestPostgresReadOnlySeesWrites(t *testing.T) { onPostgres(t, testReadOnlySeesWrites) }
func TestPostgresRoles(t *testing.T)              { onPostgres(t, testRoles) }

func TestPostgresConcurrentApply(t *testing.T) {
	t.Parallel()
	testConcurrentApply(t, postgres, false)
}

func TestPostgresConcurrentApplyStores(t *testing.T) {
	t.Parallel()
	testConcurrentApply(t, postgres, true)
}

func TestPostgresKillApply(t *testing.T) {
	t.Parallel()
	testKill(t, postgres, "postgres")
}

// TestPostgresUpgradeCfssl002: a database that 'cfssl serve' migrated to
// its schema 002 (all columns, no dtls tables) keeps its rows and gets
// dtls's indexes and tables.
func TestPostgresUpgradeCfssl002(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	cfsslPostgres(t, dsn)
	// certdb/pg/migrations/002_AddMetadataToCertificates.sql, verbatim.
	_, err := rawPostgres(t, dsn).Exec(`ALTER TABLE certificates
ADD COLUMN issued_at timestamptz,
    ADD COLUMN not_before timestamptz,
    ADD COLUMN metadata jsonb,
    ADD COLUMN sans jsonb,
    ADD COLUMN common_name TEXT;`)
	require.NoError(t, err)

	s, err := OpenPostgres(dsn)
	require.NoError(t, err)
	defer s.Close()
	assert.False(t, s.Created)
	assert.Equal(t, SchemaVersion, postgres.version(t, dsn))
	for _, ix := range []string{"certificates_common_name", "certificates_status"} {
		assert.Equal(t, 1, postgres.count(t, dsn, postgres.indexCount, ix), ix)
	}
	recs, err := s.ByName("legacy")
	require.NoError(t, err)
	assert.Equal(t, []string{"1234"}, serials(recs))
	require.NoError(t, s.Apply(Change{Roles: map[string]string{"legacy": "admin"}}))
	role, err := s.Role("legacy")
	require.NoError(t, err)
	assert.Equal(t, "admin", role)
}

// TestPostgresStorage: the rows are what cfssl writes and reads: decimal
// serials as text in the bytea column, a PEM byte for byte (even with
// characters bytea's text input would read as escapes), jsonb metadata,
// times to the microsecond; cfssl's accessor finds them. A statement
// outside Apply cannot write.
func TestPostgresStorage(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	s, err := OpenPostgres(dsn)
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.Created)
	c, p := testCert(t, "alice", 0x1234567890abcdef)
	issued := FromCert(c, p, KindClient, "ca", "/bundles/alice")
	odd := rec("2a", "odd", KindServer, "ca", 0)
	odd.PEM = `\x41 \\ \101 'quoted' "double"` + "\n"
	// 2.5 µs: time.Round rounds halves up, PostgreSQL's own rounding
	// (rint) to even.
	odd.NotBefore = time.Date(2030, 1, 2, 3, 4, 5, 2500, time.UTC)
	require.NoError(t, s.Apply(Change{Insert: []Record{issued, odd}}))

	db := rawPostgres(t, dsn)
	var stored []struct {
		Serial   string `db:"serial"`
		PEM      string `db:"pem"`
		Kind     string `db:"kind"`
		Micro    int64  `db:"micro"`
		SANsType string `db:"sans_type"`
	}
	require.NoError(t, sqlx.NewDb(db, "postgres").Select(&stored, `SELECT convert_from(serial_number, 'UTF8') AS serial,
		convert_from(pem, 'UTF8') AS pem, metadata->>'kind' AS kind,
		extract(microseconds FROM not_before)::bigint AS micro, jsonb_typeof(sans) AS sans_type
		FROM certificates ORDER BY serial_number`))
	require.Len(t, stored, 2)
	assert.Equal(t, "1311768467294899695", stored[0].Serial, "decimal, as cfssl's signer writes it")
	assert.Equal(t, "42", stored[1].Serial)
	assert.Equal(t, string(p), stored[0].PEM)
	assert.Equal(t, odd.PEM, stored[1].PEM)
	assert.Equal(t, "client", stored[0].Kind)
	assert.Equal(t, "server", stored[1].Kind)
	assert.Equal(t, int64(5000003), stored[1].Micro, "5 s 2.5 µs, rounded by Go")
	assert.Equal(t, "array", stored[0].SANsType)

	got, err := s.Get("2a")
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, postgres.stored(odd), *got)
	assert.Equal(t, 3000, got.NotBefore.Nanosecond())
	got, err = s.Get(issued.Serial)
	require.NoError(t, err)
	require.NotNil(t, got)
	want := issued
	want.SANs = []string{} // none is stored as [] (toCertdb), as on SQLite
	assert.Equal(t, want, *got, "a real certificate's times are whole seconds: nothing to round")

	crs, err := certsql.NewAccessor(sqlx.NewDb(db, "postgres")).GetCertificate("1311768467294899695", issued.AKI)
	require.NoError(t, err)
	require.Len(t, crs, 1)
	assert.Equal(t, string(p), crs[0].PEM)
	assert.Equal(t, string(StatusGood), crs[0].Status)
	assert.Equal(t, caLabel, crs[0].CALabel)

	_, err = s.db.Exec("DELETE FROM certificates")
	assert.ErrorContains(t, err, "read-only transaction", "outside a batch, the writer's session is read-only")
	all, err := s.All()
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

// TestPostgresReadOnlyRefuses: OpenPostgresReadOnly creates nothing,
// migrates nothing, and refuses a schema it cannot read; OpenPostgres
// refuses a newer one.
func TestPostgresReadOnlyRefuses(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	tables := func() int {
		return postgres.count(t, dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
	}
	_, err := OpenPostgresReadOnly(dsn)
	assert.EqualError(t, err, `open database "`+dsn+`": schema version 0 is older than this dtls reads (3): run a dtls command that opens it read-write to migrate it`)
	assert.Equal(t, 0, tables(), "nothing created")

	cfsslPostgres(t, dsn)
	_, err = OpenPostgresReadOnly(dsn)
	assert.EqualError(t, err, `open database "`+dsn+`": schema version 0 is older than this dtls reads (3): run a dtls command that opens it read-write to migrate it`)
	assert.Equal(t, 2, tables(), "not migrated")
	assert.Equal(t, 0, postgres.count(t, dsn, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'certificates' AND column_name = 'common_name'"))

	s, err := OpenPostgres(dsn)
	require.NoError(t, err)
	assert.False(t, s.Created, "cfssl's table was there")
	postgres.exec(t, s, fmt.Sprintf("UPDATE %s SET version = %d", pgSchemaTable, SchemaVersion+1))
	require.NoError(t, s.Close())
	_, err = OpenPostgresReadOnly(dsn)
	assert.EqualError(t, err, fmt.Sprintf(`open database %q: schema version %d is newer than this dtls knows (%d): upgrade dtls`, dsn, SchemaVersion+1, SchemaVersion))
	_, err = OpenPostgres(dsn)
	assert.EqualError(t, err, fmt.Sprintf(`open database %q: schema version %d is newer than this dtls knows (%d): upgrade dtls`, dsn, SchemaVersion+1, SchemaVersion))
	assert.Equal(t, SchemaVersion+1, postgres.version(t, dsn), "left as it is")
}

// TestPostgresConcurrentOpen: processes that open a new database at the
// same moment all succeed, and the schema is made once.
func TestPostgresConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenPostgres(dsn) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		require.NoError(t, errs[i], "store %d", i)
		if stores[i].Created {
			created++
		}
		require.NoError(t, stores[i].Close())
	}
	assert.Equal(t, 1, created, "one of them made the schema")
	assert.Equal(t, SchemaVersion, postgres.version(t, dsn))
}

// TestPostgresDeadlockRetry: when another program's transaction and an
// Apply wait for each other, PostgreSQL aborts one (deadlock_detected);
// when it is the Apply's, the Apply runs again and succeeds.
func TestPostgresDeadlockRetry(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	s, err := OpenPostgres(dsn)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Apply(Change{Insert: []Record{rec("a1", "alice", KindClient, "ca", 0)}}))

	ctx := context.Background()
	db := rawPostgres(t, dsn)
	other, err := db.Conn(ctx)
	require.NoError(t, err)
	defer other.Close()
	// The other session checks for deadlocks only after a minute; the
	// store's after the default second: the store's transaction is the
	// one aborted (https://www.postgresql.org/docs/current/runtime-config-locks.html).
	_, err = other.ExecContext(ctx, "SET deadlock_timeout = '1min'")
	require.NoError(t, err)
	_, err = other.ExecContext(ctx, "BEGIN")
	require.NoError(t, err)
	_, err = other.ExecContext(ctx, "SELECT 1 FROM certificates WHERE serial_number = '161' FOR UPDATE") // hex a1
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- s.Apply(Change{Supersede: []string{"a1"}}) }()
	// The Apply holds the lock on serial 161 and waits for the row.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		// pg_locks is the whole server's: only this database's sessions.
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_locks WHERE NOT granted
			AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`).Scan(&waiting))
		if waiting > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the Apply never waited for the row lock")
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	// Now the other session waits for the Apply's lock: a cycle.
	_, err = other.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1, $2)", pgLockClass, pgLockIDs([]string{"serial 161"})[0])
	require.NoError(t, err, "the other session is not the one aborted")
	_, err = other.ExecContext(ctx, "COMMIT")
	require.NoError(t, err)

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the Apply did not return")
	}
	assert.Equal(t, 1, s.retries, "run twice")
	got, err := s.Get("a1")
	require.NoError(t, err)
	assert.Equal(t, StatusSuperseded, got.Status)
}

// TestPostgresPasswordHidden: no error and no name of the database shows
// the DSN's password, whichever way the DSN gives it.
func TestPostgresPasswordHidden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dsn, name, cause string }{
		{"postgres://dtls:s3cret@127.0.0.1:1/ca?sslmode=disable", "postgres://dtls:xxxxx@127.0.0.1:1/ca?sslmode=disable",
			"dial tcp 127.0.0.1:1: connect: connection refused"},
		{"postgresql://dtls@127.0.0.1:1/ca?sslmode=disable&password=s3cret", "postgresql://dtls@127.0.0.1:1/ca?password=xxxxx&sslmode=disable",
			"dial tcp 127.0.0.1:1: connect: connection refused"},
		{"host=127.0.0.1 port=1 user=dtls password=s3cret dbname=ca sslmode=disable", "host=127.0.0.1 port=1 user=dtls password=xxxxx dbname=ca sslmode=disable",
			"dial tcp 127.0.0.1:1: connect: connection refused"},
		{"host=127.0.0.1 port=1 password = 's3 cret' sslmode=disable", "host=127.0.0.1 port=1 password = xxxxx sslmode=disable",
			"dial tcp 127.0.0.1:1: connect: connection refused"},
		// net/url quotes the whole URL in its parse errors.
		{"postgres://dtls:s3cret@127.0.0.1:port/ca", "postgres://dtls:xxxxx@127.0.0.1:port/ca",
			`parse "postgres://dtls:xxxxx@127.0.0.1:port/ca": invalid port ":port" after host`},
		{"postgres://dtls:s3@cret@127.0.0.1:port/ca", "postgres://dtls:xxxxx@127.0.0.1:port/ca",
			`parse "postgres://dtls:xxxxx@127.0.0.1:port/ca": invalid port ":port" after host`},
		{"postgres://dtls:s3%40cret@127.0.0.1:1/ca?sslmode=disable", "postgres://dtls:xxxxx@127.0.0.1:1/ca?sslmode=disable",
			"dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		for _, open := range []func(string) (*Store, error){OpenPostgres, OpenPostgresReadOnly} {
			_, err := open(tc.dsn)
			assert.EqualError(t, err, fmt.Sprintf("open database %q: %s", tc.name, tc.cause), tc.dsn)
		}
	}

	// On a server, which trusts local connections and ignores it.
	dsn := pgsandbox.Start(t) + " password=s3cret"
	s, err := OpenPostgres(dsn)
	require.NoError(t, err)
	defer s.Close()
	ro, err := OpenPostgresReadOnly(dsn)
	require.NoError(t, err)
	defer ro.Close()
	err = ro.Apply(Change{Roles: map[string]string{"alice": "admin"}})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
	assert.Equal(t, fmt.Sprintf("write database %q: opened read-only", strings.Replace(dsn, "s3cret", "xxxxx", 1)), err.Error())
}

func TestPostgresTokens(t *testing.T)             { onPostgres(t, testTokens) }
func TestPostgresUseToken(t *testing.T)           { onPostgres(t, testUseToken) }
func TestPostgresConcurrentTokenUse(t *testing.T) { onPostgres(t, testConcurrentTokenUse) }

// TestPostgresSSLHint: lib/pq asks for SSL by default; a server without
// it gives an error with a hint that says what to add to the URL.
func TestPostgresSSLHint(t *testing.T) {
	t.Parallel()
	dsn := strings.Replace(pgsandbox.StartTCP(t), "sslmode=disable", "sslmode=require", 1)
	_, err := OpenPostgres(dsn)
	require.Error(t, err)
	assert.ErrorIs(t, err, pq.ErrSSLNotSupported)
	var h interface{ HintText() string }
	require.ErrorAs(t, err, &h)
	assert.Equal(t, SSLHint, h.HintText())
	assert.Contains(t, h.HintText(), "sslmode=disable")
}
