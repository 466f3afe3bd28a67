//go:build linux

package pgsandbox

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	_ "github.com/lib/pq" // registers the "postgres" driver
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

// TestStart: the server answers on a unix socket in a short directory of
// its own, with no TCP listener, runs as uid 65534 when the test is root,
// and is gone, with its directory, when the test that started it ends.
func TestStart(t *testing.T) {
	var dir string
	var pid int
	t.Run("server", func(t *testing.T) {
		dsn := Start(t)
		for _, kv := range strings.Fields(dsn) {
			if v, ok := strings.CutPrefix(kv, "host="); ok {
				dir = v
			}
		}
		assert.True(t, strings.HasPrefix(dir, filepath.Join(sandbox.ScratchRoot(), "dtls-pg-")), dsn)
		assert.Less(t, len(filepath.Join(dir, ".s.PGSQL.5432")), sunPathMax)

		db, err := sql.Open("postgres", dsn)
		require.NoError(t, err)
		defer db.Close()
		var listen, sockets, fsync, data, user string
		require.NoError(t, db.QueryRow(`SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories'),
			current_setting('fsync'), current_setting('data_directory'), current_user`).Scan(&listen, &sockets, &fsync, &data, &user))
		assert.Equal(t, "", listen, "no TCP listener")
		assert.Equal(t, dir, sockets)
		assert.Equal(t, "off", fsync)
		assert.Equal(t, filepath.Join(dir, "data"), data)
		assert.Equal(t, "postgres", user)

		b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
		require.NoError(t, err)
		pid, err = strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		require.NoError(t, err)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		require.NoError(t, err)
		if os.Geteuid() == 0 {
			assert.Contains(t, string(status), "\nUid:\t65534\t65534\t65534\t65534\n")
			assert.Contains(t, string(status), "\nGid:\t65534\t65534\t65534\t65534\n")
			groups := "?"
			for _, line := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "Groups:"); ok {
					groups = strings.TrimSpace(v)
				}
			}
			assert.Equal(t, "", groups, "no supplementary groups")
		}
	})
	require.NotZero(t, pid)
	_, err := os.Stat(dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the directory is removed: %v", err)
	// Start's cleanup waited for the process (its child), so the pid is
	// free, unless something new took it.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		assert.NotEqual(t, "postgres\n", string(b), "postgres (pid %d) still runs", pid)
	} else {
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
	}
}

// TestFindDebianLayout: without the programs in $PATH, they are found in
// the newest /usr/lib/postgresql/NN/bin that has all three.
func TestFindDebianLayout(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9", "15", "16"} {
		dir := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if v == "16" && name == "postgres" {
				continue // incomplete
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	t.Setenv("PATH", t.TempDir())
	saved := libDirs
	t.Cleanup(func() { libDirs = saved })
	libDirs = filepath.Join(root, "*", "bin")
	b, err := find()
	require.NoError(t, err)
	bin := filepath.Join(root, "15", "bin")
	assert.Equal(t, Binaries{filepath.Join(bin, "initdb"), filepath.Join(bin, "pg_ctl"), filepath.Join(bin, "postgres")}, b,
		"15, not 16 (no postgres) nor 9 (older, and 9 < 15 as numbers, not as text)")

	libDirs = filepath.Join(root, "none", "bin")
	_, err = find()
	assert.EqualError(t, err, "initdb, pg_ctl and postgres not found in $PATH or "+libDirs)
}

// recorder is a testing.TB that records how Require ends the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// TestRequireMissing: without PostgreSQL a test is skipped, and fails
// under CI=true.
func TestRequireMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := libDirs
	t.Cleanup(func() { libDirs = saved })
	libDirs = filepath.Join(t.TempDir(), "*", "bin")
	want := "pgsandbox: initdb, pg_ctl and postgres not found in $PATH or " + libDirs +
		" (install them: apt-get install -y postgresql, or run scripts/deps.sh as root)"

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	assert.Equal(t, Binaries{}, Require(r))
	assert.Equal(t, want, r.skipped)
	assert.Empty(t, r.failed)

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	assert.Equal(t, Binaries{}, Require(r))
	assert.Equal(t, want, r.failed)
	assert.Empty(t, r.skipped)
}

// runFunc is a TestingM made of a function.
type runFunc func() int

func (f runFunc) Run() int { return f() }

// dsnField is the value of key in a key=value DSN.
func dsnField(dsn, key string) string {
	for _, kv := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestRunShared: under RunShared, every Start is a database of its own
// on one server, which starts with the first Start; a test's database is
// dropped when it ends, and the server is gone, with its directory, when
// the tests are over. StartTCP still starts a server of its own.
func TestRunShared(t *testing.T) {
	Require(t)
	var dir string
	var pid int
	code := RunShared(runFunc(func() int {
		assert.Nil(t, shared.srv, "the server starts with the first Start, not before")
		var first string
		t.Run("first", func(t *testing.T) {
			first = Start(t)
			dir = dsnField(first, "host")
			assert.True(t, strings.HasPrefix(dir, filepath.Join(sandbox.ScratchRoot(), "dtls-pg-")), first)
			db, err := sql.Open("postgres", first)
			require.NoError(t, err)
			defer db.Close()
			_, err = db.Exec("CREATE TABLE left_behind (x int)")
			require.NoError(t, err)
			// A session the test leaves open does not keep its database.
			var name string
			require.NoError(t, db.QueryRow("SELECT current_database()").Scan(&name))
			assert.Equal(t, dsnField(first, "dbname"), name)
			require.NoError(t, db.QueryRow("SELECT pg_backend_pid()").Scan(new(int)))
		})
		t.Run("second", func(t *testing.T) {
			second := Start(t)
			assert.Equal(t, dir, dsnField(second, "host"), "the same server")
			assert.NotEqual(t, dsnField(first, "dbname"), dsnField(second, "dbname"))
			db, err := sql.Open("postgres", second)
			require.NoError(t, err)
			defer db.Close()
			var n int
			require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_tables WHERE tablename = 'left_behind'").Scan(&n))
			assert.Zero(t, n, "a table of another test's database")
			require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", dsnField(first, "dbname")).Scan(&n))
			assert.Zero(t, n, "the first test's database is dropped")
			b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
			require.NoError(t, err)
			pid, err = strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
			require.NoError(t, err)

			tcp := StartTCP(t)
			assert.Equal(t, "127.0.0.1", dsnField(tcp, "host"), "a server of its own")
		})
		return 0
	}))
	assert.Equal(t, 0, code)
	require.NotZero(t, pid)
	assert.Nil(t, shared.srv)
	_, err := os.Stat(dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the directory is removed: %v", err)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		assert.NotEqual(t, "postgres\n", string(b), "postgres (pid %d) still runs", pid)
	}
	// Outside RunShared, Start is a server of the test's own again.
	t.Run("after", func(t *testing.T) {
		assert.NotEqual(t, dir, dsnField(Start(t), "host"))
	})
}
