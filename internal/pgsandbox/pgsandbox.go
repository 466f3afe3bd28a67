//go:build linux

// Package pgsandbox runs a real, throw-away PostgreSQL server for tests: a
// cluster made by initdb in a new directory under sandbox.ScratchRoot
// (/tmp, or make test's tmpfs), served by postgres on a unix socket in
// that directory only (no TCP listener; StartTCP adds one on 127.0.0.1),
// stopped and removed when the test ends. A package
// whose TestMain runs its tests through RunShared has one server for all
// of them instead, and a database per test. It never touches a cluster of
// the host (/var/lib/postgresql, /var/run/postgresql, port 5432 on the
// network).
//
// It is a library for tests: it prints nothing (but RunShared's report of
// a server that would not stop), and Require is its only helper that ends
// a test on purpose.
package pgsandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

const (
	// startTimeout bounds the wait for the server to accept connections.
	// It takes about 0.1 s here after initdb's 0.6 s.
	startTimeout = 30 * time.Second
	// stopTimeout bounds pg_ctl's wait for a fast shutdown, and then the
	// wait for the process to exit before it is killed.
	stopTimeout = 30 * time.Second
	// pollInterval is the period of the readiness poll.
	pollInterval = 20 * time.Millisecond
	// logTailBytes is how much of a log an error quotes.
	logTailBytes = 2048
	// port only names the socket file (.s.PGSQL.5432): there is no TCP
	// listener, and each server has a directory of its own.
	port = 5432
	// nobody is the uid and gid the server runs as when the test runs as
	// root: postgres and initdb refuse to run as root ("cannot be run as
	// root", src/backend/main/main.c check_root).
	nobody = 65534
	// sunPathMax is the size of sun_path in unix(7), which holds the
	// socket path and its terminating NUL.
	sunPathMax = 108
)

// Binaries are the PostgreSQL programs the sandbox runs.
type Binaries struct {
	Initdb, PgCtl, Postgres string
}

// Require returns the PostgreSQL programs, or ends the test when they
// cannot run here: they are missing, or the test runs as root and there
// is no user 65534 (nobody) to run them as (initdb looks its user up).
// Outside CI the test is skipped; when $CI is "true" it fails, because CI
// must have them (scripts/deps.sh installs Debian's postgresql package).
func Require(t testing.TB) Binaries {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	b, err := find()
	if err != nil {
		stop("pgsandbox: %v (install them: apt-get install -y postgresql, or run scripts/deps.sh as root)", err)
		return Binaries{}
	}
	if os.Geteuid() == 0 {
		if _, err := user.LookupId(strconv.Itoa(nobody)); err != nil {
			stop("pgsandbox: the tests run as root and PostgreSQL refuses root, but there is no user %d to run it as: %v", nobody, err)
			return Binaries{}
		}
	}
	return b
}

// libDirs is where Debian's packages put the programs, one directory per
// major version (postgresql-NN: /usr/lib/postgresql/NN/bin), outside $PATH.
// A variable for the tests.
var libDirs = "/usr/lib/postgresql/*/bin"

// find looks for initdb, pg_ctl and postgres in $PATH, then in the newest
// of Debian's /usr/lib/postgresql/NN/bin that has all three.
func find() (Binaries, error) {
	var b Binaries
	var err1, err2, err3 error
	b.Initdb, err1 = exec.LookPath("initdb")
	b.PgCtl, err2 = exec.LookPath("pg_ctl")
	b.Postgres, err3 = exec.LookPath("postgres")
	if err1 == nil && err2 == nil && err3 == nil {
		return b, nil
	}
	dirs, _ := filepath.Glob(libDirs)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		b := Binaries{filepath.Join(dir, "initdb"), filepath.Join(dir, "pg_ctl"), filepath.Join(dir, "postgres")}
		if executable(b.Initdb) && executable(b.PgCtl) && executable(b.Postgres) {
			return b, nil
		}
	}
	return Binaries{}, fmt.Errorf("initdb, pg_ctl and postgres not found in $PATH or %s", libDirs)
}

// version is the major version NN of /usr/lib/postgresql/NN/bin, 0 when
// it is not a number.
func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// server is one running postgres.
type server struct {
	bin  Binaries
	dir  string // holds data/, the socket and the logs
	data string
	log  string
	cred *syscall.Credential // nil: run as the test's own user
	cmd  *exec.Cmd
	// tcpPort, when set, is the server's port on 127.0.0.1 (StartTCP),
	// which also names its socket.
	tcpPort int
	done    chan struct{} // closed when cmd.Wait has returned
	waitErr error         // cmd.Wait's result, valid once done is closed
}

// Start starts a PostgreSQL server for t and returns the DSN of its
// "postgres" database as the superuser "postgres", in lib/pq's key=value
// form: host is the socket directory, and sslmode is disable (there is no
// TLS on a unix socket). The server is stopped (pg_ctl stop -m fast) and
// its directory removed when t ends. Like Require, Start ends t when
// PostgreSQL cannot run here.
//
// Under RunShared (the package's TestMain), Start instead makes a new
// database on the test binary's one server and returns its DSN
// (dbname=test_N); the database is dropped when t ends. A database is as
// private as a server for what the tests do (tables, rows, advisory
// locks), but not for what is cluster-wide (roles, pg_locks, settings
// made with ALTER SYSTEM), which a test must filter to its database or
// get from StartTCP.
//
// The cluster trusts every local connection (initdb -A trust): no
// password is needed, and one given is ignored. It is made for speed, not
// durability: initdb --no-sync and postgres -c fsync=off, so a crash of
// the machine, not of a client, may lose commits. A client killed by
// SIGKILL loses nothing it saw committed.
//
// When the test runs as root, initdb, postgres and pg_ctl run as uid and
// gid 65534 with no supplementary groups, in a directory that uid owns:
// what 'setpriv --reuid=65534 --regid=65534 --clear-groups' does, done by
// os/exec so that the parent-death signal set for postgres survives the
// switch (prctl(2) clears it when a process changes its own uid). If the
// test process dies without running its cleanups, postgres gets SIGQUIT
// and stops at once; its directory under /tmp stays.
func Start(t testing.TB) string {
	t.Helper()
	bin := Require(t)
	if dsn, ok := startShared(t, bin); ok {
		return dsn
	}
	s, err := start(bin, false)
	if err != nil {
		t.Fatalf("pgsandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgsandbox: %v", err)
		}
	})
	return s.dsn()
}

// StartTCP is Start with the server listening on a free TCP port of
// 127.0.0.1 too (loopback only), for tests of what a client does over
// TCP: lib/pq negotiates SSL there, never on a unix socket. The DSN names
// that address, with sslmode=disable. It starts a server of t's own even
// under RunShared.
func StartTCP(t testing.TB) string {
	t.Helper()
	bin := Require(t)
	s, err := start(bin, true)
	if err != nil {
		t.Fatalf("pgsandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgsandbox: %v", err)
		}
	})
	return s.dsn()
}

// StartServer is Start for programs that are not tests (the benchmarks):
// it returns the DSN and a function that stops the server and removes its
// directory, which the caller must call.
func StartServer() (dsn string, stop func() error, err error) {
	bin, err := find()
	if err != nil {
		return "", nil, err
	}
	s, err := start(bin, false)
	if err != nil {
		return "", nil, err
	}
	return s.dsn(), s.stop, nil
}

func (s *server) dsn() string {
	if s.tcpPort != 0 {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", s.tcpPort)
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", s.dir, port)
}

// port is the server's port: the TCP one, or the one that names its
// socket alone.
func (s *server) port() int {
	if s.tcpPort != 0 {
		return s.tcpPort
	}
	return port
}

// freePort is a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(bin Binaries, tcp bool) (*server, error) {
	// Not t.TempDir(): its path can be too long for a socket, and its
	// parent directories are 0700 root, which uid 65534 cannot enter.
	dir, err := os.MkdirTemp(sandbox.ScratchRoot(), "dtls-pg-")
	if err != nil {
		return nil, fmt.Errorf("make the server's directory: %w", err)
	}
	s := &server{bin: bin, dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log")}
	if tcp {
		if s.tcpPort, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if sock := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", s.port())); len(sock) >= sunPathMax {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("socket path %q is %d bytes, over the %d-byte limit of unix(7)", sock, len(sock), sunPathMax)
	}
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
		if err := os.Chown(dir, nobody, nobody); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("make the server's directory: %w", err)
		}
	}
	// --no-sync: nothing is fsynced, which saves most of initdb's time;
	// -A trust: no passwords; --locale=C: no dependence on the host's
	// locales (and English messages).
	initdb := s.command(bin.Initdb, "-D", s.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w: %s", bin.Initdb, err, tail(out))
	}
	err = s.run()
	// freePort's port is free when it looks, not when postgres binds it:
	// another test of the run can take it between the two. Another port,
	// then, a few times.
	for try := 0; err != nil && s.tcpPort != 0 && strings.Contains(err.Error(), "Address already in use") && try < 5; try++ {
		if s.tcpPort, err = freePort(); err == nil {
			err = s.run()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// command runs prog as the server's user, in its directory (postgres
// resolves its own path from the working directory, which uid 65534 must
// be able to read), with no PG* variables that could point it elsewhere
// (PGDATA, PGPORT, PGHOST).
func (s *server) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(prog, args...)
	cmd.Dir = s.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// run starts postgres as a child of this process, so that its pid is known
// and it is reaped, and waits until it accepts connections.
func (s *server) run() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the server log: %w", err)
	}
	// listen_addresses '': no TCP socket at all (127.0.0.1 alone for
	// StartTCP); -k: the unix socket in the server's directory, not
	// /var/run/postgresql; fsync off: speed
	// (https://www.postgresql.org/docs/current/non-durability.html).
	listen := ""
	if s.tcpPort != 0 {
		listen = "127.0.0.1"
	}
	cmd := s.command(s.bin.Postgres, "-D", s.data, "-p", strconv.Itoa(s.port()), "-k", s.dir,
		"-c", "listen_addresses="+listen, "-c", "fsync=off", "-c", "unix_socket_permissions=0700")
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin.Postgres, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		select {
		case <-s.done:
		default:
			// Not ready in time: nothing to shut down cleanly.
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		return err
	}
	return nil
}

// waitReady polls postmaster.pid until its status line says "ready": the
// postmaster writes it once it accepts connections (line 8, PM_STATUS, in
// src/include/utils/pidfile.h), after the socket exists.
func (s *server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	pidfile := filepath.Join(s.data, "postmaster.pid")
	for {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited before accepting connections (%v): %s", s.waitErr, s.logTail())
		default:
		}
		if b, err := os.ReadFile(pidfile); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) >= 8 && strings.TrimSpace(lines[0]) == strconv.Itoa(s.cmd.Process.Pid) && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres (pid %d) not ready after %s: %s", s.cmd.Process.Pid, startTimeout, s.logTail())
		}
		time.Sleep(pollInterval) // polling with a deadline, not synchronisation
	}
}

// stop shuts the server down with pg_ctl stop -m fast (SIGINT to the pid
// in the data directory's postmaster.pid: sessions are ended, open
// transactions rolled back), waits for the process it started, kills that
// process if it is still there, and removes the directory.
func (s *server) stop() error {
	var errs []error
	select {
	case <-s.done:
		if s.waitErr != nil {
			errs = append(errs, fmt.Errorf("postgres (pid %d) exited before it was stopped (%v): %s", s.cmd.Process.Pid, s.waitErr, s.logTail()))
		}
	default:
		ctl := s.command(s.bin.PgCtl, "stop", "-D", s.data, "-m", "fast", "-w", "-t", strconv.Itoa(int(stopTimeout/time.Second)))
		if out, err := ctl.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, tail(out)))
		}
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			// The pid is this process's child, not yet reaped, so it
			// cannot have been reused.
			_ = s.cmd.Process.Kill()
			<-s.done
			errs = append(errs, fmt.Errorf("postgres (pid %d) still running %s after pg_ctl stop: killed", s.cmd.Process.Pid, stopTimeout))
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.log)
	return tail(b)
}

func tail(b []byte) string {
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return strings.TrimSpace(string(b))
}
