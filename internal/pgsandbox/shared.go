//go:build linux

package pgsandbox

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	_ "github.com/lib/pq" // registers the "postgres" driver for CREATE DATABASE
)

// shared is the server that Start hands databases on while RunShared runs
// a package's tests: one initdb and one postgres per test binary instead
// of one per test (initdb is most of a server's start-up, about 0.6 s of
// CPU here).
var shared struct {
	mu     sync.Mutex
	active bool // RunShared is running the tests
	srv    *server
	err    error // the server could not start: every Start fails with it
	admin  *sql.DB
	// strategy is CREATE DATABASE's STRATEGY clause: FILE_COPY, about
	// twice as fast here as PostgreSQL 15's default WAL_LOG for a small
	// template (with fsync off its checkpoints cost little); empty before
	// 15, which has no such clause.
	strategy string
	seq      int
	// release ends the goroutine that started the server, once it is
	// stopped (startOnOwnThread).
	release chan struct{}
}

// TestingM is what RunShared needs of *testing.M (and what testscript.Main
// takes).
type TestingM interface {
	Run() int
}

// RunShared runs m's tests with one PostgreSQL server for the whole test
// binary: Start gives each test a database of its own on it (CREATE
// DATABASE, dropped when the test ends) instead of a server of its own.
// The server starts with the first Start, so tests that need none pay
// nothing, and stops when m.Run returns. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgsandbox.RunShared(m)) }
//
// A test that needs a server to itself (a TCP listener, a server it stops)
// uses StartTCP, which always starts one. A server that fails to stop is
// reported on stderr, as a test failure would be, and the exit code is 1.
func RunShared(m TestingM) int {
	shared.mu.Lock()
	shared.active = true
	shared.mu.Unlock()
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "pgsandbox: stop the shared server: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.active = false
	if shared.srv == nil {
		return nil
	}
	var errs []error
	if shared.admin != nil {
		errs = append(errs, shared.admin.Close())
	}
	errs = append(errs, shared.srv.stop())
	close(shared.release)
	shared.srv, shared.admin = nil, nil
	return errors.Join(errs...)
}

// sharedDB makes a new database on the shared server, starting the server
// first if need be; ok is false outside RunShared.
func sharedDB(bin Binaries) (dsn, name string, ok bool, err error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.active {
		return "", "", false, nil
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = startOnOwnThread(bin)
		if shared.err == nil {
			shared.admin, shared.err = openAdmin(shared.srv.dsn())
		}
	}
	if shared.err != nil {
		return "", "", true, shared.err
	}
	shared.seq++
	name = fmt.Sprintf("test_%d", shared.seq)
	// template0: nothing a test added to template1 can leak in; the
	// server's encoding and locale (UTF8, C) are template0's.
	if _, err := shared.admin.Exec("CREATE DATABASE " + name + " TEMPLATE template0" + shared.strategy); err != nil {
		return "", "", true, fmt.Errorf("create database %s: %w", name, err)
	}
	return strings.Replace(shared.srv.dsn(), "dbname=postgres", "dbname="+name, 1), name, true, nil
}

// startOnOwnThread starts the shared server from a goroutine locked to its
// OS thread, which waits until the server is stopped. postgres's
// parent-death signal (Pdeathsig, see Start) fires when the thread that
// forked it ends, not the process (prctl(2) PR_SET_PDEATHSIG), and the Go
// runtime ends a thread when a goroutine locked to it returns (a test's
// namespace work, say): the server outlives the test that started it, so
// it must be started from a thread that nothing else can end
// (golang/go#27505).
func startOnOwnThread(bin Binaries) (*server, error) {
	type started struct {
		s   *server
		err error
	}
	ch := make(chan started)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		s, err := start(bin, false)
		ch <- started{s, err}
		if err == nil {
			<-release
		}
	}()
	r := <-ch
	if r.err == nil {
		shared.release = release
	}
	return r.s, r.err
}

// openAdmin connects to the shared server's "postgres" database and picks
// CREATE DATABASE's strategy for its version (shared.mu is held).
func openAdmin(dsn string) (*sql.DB, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	var version int
	if err := db.QueryRow("SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("ask the shared server its version: %w", err)
	}
	if version >= 150000 {
		shared.strategy = " STRATEGY FILE_COPY"
	}
	return db, nil
}

// dropSharedDB removes a test's database, ending the sessions the test
// left open (WITH (FORCE), PostgreSQL 13 and later).
func dropSharedDB(name string) error {
	shared.mu.Lock()
	admin := shared.admin
	shared.mu.Unlock()
	if admin == nil {
		return fmt.Errorf("drop database %s: the shared server is gone", name)
	}
	if _, err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// startShared is Start's way inside RunShared; ok is false outside it.
func startShared(t testing.TB, bin Binaries) (dsn string, ok bool) {
	t.Helper()
	dsn, name, ok, err := sharedDB(bin)
	if !ok {
		return "", false
	}
	if err != nil {
		t.Fatalf("pgsandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := dropSharedDB(name); err != nil {
			t.Errorf("pgsandbox: %v", err)
		}
	})
	return dsn, true
}
