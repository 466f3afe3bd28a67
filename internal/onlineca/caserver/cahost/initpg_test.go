package cahost

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/pki"
)

// pgRows counts the rows of the inventory's tables in the PostgreSQL
// database dsn (a table not made yet counts none).
func pgRows(t *testing.T, dsn string) map[string]int {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	require.NoError(t, err)
	defer db.Close()
	rows := map[string]int{}
	for _, table := range []string{"certificates", "dtls_roles", "dtls_tokens"} {
		var exists bool
		require.NoError(t, db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		if exists {
			var n int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+table).Scan(&n))
			rows[table] = n
		}
	}
	return rows
}

// TestInitHostPostgresFailureLeavesNothing: a `dtls ca init` on
// PostgreSQL that fails leaves no row in the database, whatever fails: a
// bad listen address, a state directory that cannot be made, a unit
// directory that cannot be written, the rename of the state directory
// into place (after the records are written in the transaction). The
// next init then finds only its own records.
func TestInitHostPostgresFailureLeavesNothing(t *testing.T) {
	dsn := pgsandbox.Start(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	state := filepath.Join(dir, "ca")
	opts := func(change func(*InitOptions)) InitOptions {
		o := InitOptions{StateDir: state, Hosts: []string{"127.0.0.1"}, DBURL: dsn, Now: time.Now()}
		change(&o)
		return o
	}
	empty := map[string]int{"certificates": 0, "dtls_roles": 0, "dtls_tokens": 0}
	for _, tc := range []struct {
		name string
		o    InitOptions
		msg  string
		hook func(tmp, dir string)
	}{
		{"bad listen", opts(func(o *InitOptions) { o.Listen = "127.0.0.1:99999" }), `listen address "127.0.0.1:99999": port "99999" is not a number from 1 to 65535`, nil},
		{"state dir", opts(func(o *InitOptions) { o.StateDir = filepath.Join(file, "ca") }), "not a directory", nil},
		{"unit dir", opts(func(o *InitOptions) { o.UnitDir = file }), file, nil},
		{"rename", opts(func(*InitOptions) {}), "rename " + `"` + state + `" into place`, func(_, dir string) {
			// Another init made the directory meanwhile.
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "other"), 0o700))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hook != nil {
				beforeRename = tc.hook
				defer func() { beforeRename = func(_, _ string) {} }()
			}
			_, err := InitHost(tc.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
			rows := pgRows(t, dsn)
			if len(rows) > 0 {
				assert.Equal(t, empty, rows, "rows left in PostgreSQL")
			}
			_, err = os.Stat(filepath.Join(state, ConfigFile))
			assert.ErrorIs(t, err, os.ErrNotExist, "no state")
			require.NoError(t, os.RemoveAll(state))
		})
	}

	res, err := InitHost(opts(func(*InitOptions) {}))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"certificates": 3, "dtls_roles": 1, "dtls_tokens": 0}, pgRows(t, dsn), "its own records only")
	_ = res
}

// TestOpenHostCompletesInventory: a state directory renamed into place
// whose records did not commit (init killed in between) gets its
// listener's and operator's records, and the operator's role, when it
// is opened; the operator may then act.
func TestOpenHostCompletesInventory(t *testing.T) {
	dsn := pgsandbox.Start(t)
	res, err := InitHost(InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Hosts: []string{"127.0.0.1"}, DBURL: dsn, Now: time.Now()})
	require.NoError(t, err)
	db, err := sql.Open("postgres", dsn)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`DELETE FROM certificates; DELETE FROM dtls_roles`)
	require.NoError(t, err)

	h, err := OpenHost(res.StateDir)
	require.NoError(t, err)
	defer h.Close()
	for _, p := range []string{filepath.Join(res.StateDir, TLSCertFile), filepath.Join(res.OperatorDir, "cert.pem")} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		c, err := pki.ParseCertificate(b)
		require.NoError(t, err)
		has, err := h.Store.Has(pki.Serial(c))
		require.NoError(t, err)
		assert.True(t, has, "%s recorded", p)
	}
	role, err := h.Store.Role(DefaultOperator)
	require.NoError(t, err)
	assert.Equal(t, fleet.OperatorRole, role)
}
