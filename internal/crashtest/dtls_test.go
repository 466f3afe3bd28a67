package crashtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/fixture"
)

// buildDir holds the dtls binary built for this test run (when $DTLS_BIN is
// not set); TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	flag.Parse()
	// A dtls run here waits on fsync far longer than it computes: run
	// more tests at once than there are CPUs, unless -parallel says how
	// many.
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// dtlsBin is the binary under test: $DTLS_BIN, or ./cmd/dtls of this module
// built once with the dtlsfailpoints tag (harmless where it does not
// exist).
func dtlsBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("DTLS_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			binErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if buildDir, err = os.MkdirTemp("", "dtls-crashtest-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(buildDir, "dtls")
		cmd := fixture.GoBuild(binPath, "./cmd/dtls", "-tags", "dtlsfailpoints")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/dtls in %s: %v\n%s", root, err, out)
		}
	})
	require.NoError(t, binErr, "set DTLS_BIN to a dtls binary to test that one instead")
	return binPath
}

// install is one dtls install in a temporary directory, and the way to run
// dtls on it: every path is a flag (and the matching DTLS_* variable) into
// the directory, so nothing reaches /etc/docker, /etc/systemd,
// /var/lib/dtls or the Docker socket.
type install struct {
	bin string
	l   Layout
	env []string
}

func newInstall(t testing.TB) *install {
	t.Helper()
	bin := dtlsBin(t)
	l := NewLayout(t.TempDir())
	for _, d := range []string{l.SystemdDir, l.Bundles} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, os.WriteFile(l.DaemonJSON, []byte("{}\n"), 0o644))
	// dockerd --validate is replaced by true(1): it accepts any file, and
	// no real dockerd is started. TMPDIR (where init writes the merged
	// file for it) is outside the root, whose every file Check looks at.
	truePath, err := exec.LookPath("true")
	require.NoError(t, err)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(l.Root, "home"),
		"DOCKER_CONFIG=" + filepath.Join(l.Root, "home", ".docker"),
		"TMPDIR=" + t.TempDir(),
		"DTLS_STATE_DIR=" + l.StateDir,
		"DTLS_CERTS_DIR=" + l.CertsDir,
		"DTLS_DAEMON_JSON=" + l.DaemonJSON,
		"DTLS_SYSTEMD_DIR=" + l.SystemdDir,
		"DTLS_DOCKERD=" + truePath,
	}
	return &install{bin: bin, l: l, env: env}
}

// initArgs is 'dtls init' with every path flag.
func (in *install) initArgs(extra ...string) []string {
	return append([]string{"init", "--host", "localhost", "--state-dir", in.l.StateDir, "--certs-dir", in.l.CertsDir,
		"--daemon-json", in.l.DaemonJSON, "--systemd-dir", in.l.SystemdDir}, extra...)
}

// with adds --state-dir to a command that signs or reads the inventory.
func (in *install) with(args ...string) []string {
	return append(args, "--state-dir", in.l.StateDir)
}

// result is how one run ended.
type result struct {
	args   []string
	delay  time.Duration // the kill delay; 0 with noKill
	noKill bool
	killed bool // ended by our SIGKILL
	exit   int  // exit code when not killed
	stdout string
	stderr string
	took   time.Duration
}

const noKill = time.Duration(-1)

// hangDeadline ends a run that was not to be killed but hangs (a lock
// never released, say), so that the test fails with the log rather than at
// go test's timeout.
const hangDeadline = 2 * time.Minute

// run starts dtls with args and, unless delay is noKill, sends it SIGKILL
// delay after the start. A run that ended before the kill is reported as
// not killed, with its exit code. The pidfd behind os.Process makes a kill
// after the exit harmless.
func (in *install) run(delay time.Duration, args ...string) result {
	cmd := exec.Command(in.bin, args...)
	cmd.Dir = in.l.Root
	cmd.Env = in.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	res := result{args: args, delay: delay, noKill: delay == noKill}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.exit, res.stderr = -1, "start: "+err.Error()
		return res
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killAt := hangDeadline
	if delay != noKill {
		killAt = delay
	}
	timer := time.NewTimer(killAt)
	var err error
	select {
	case err = <-done:
		timer.Stop()
	case <-timer.C:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
	}
	res.took = time.Since(start)
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if delay == noKill && res.took >= hangDeadline {
		res.exit, res.stderr = -1, fmt.Sprintf("did not finish within %v: killed\n%s", hangDeadline, res.stderr)
		return res
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
		} else {
			res.exit = ee.ExitCode()
		}
	default:
		res.exit, res.stderr = -1, err.Error()+"\n"+res.stderr
	}
	return res
}

// mustRun runs dtls to completion and fails the test unless it exits 0.
func (in *install) mustRun(t testing.TB, args ...string) result {
	t.Helper()
	r := in.run(noKill, args...)
	require.Equal(t, 0, r.exit, "dtls %s\n%s", strings.Join(args, " "), r.stderr)
	return r
}

// list runs the next command, 'dtls list -o json', and parses its output.
func (in *install) list() ([]Record, result, error) {
	r := in.run(noKill, in.with("list", "-o", "json")...)
	if r.exit != 0 {
		return nil, r, fmt.Errorf("dtls list -o json exited %d: %s", r.exit, strings.TrimSpace(r.stderr))
	}
	recs, err := ParseList([]byte(r.stdout))
	return recs, r, err
}

// setUp runs init, issues alice, bob and carol and one issue-server
// bundle, the starting point of every test here. The three clients are
// one run (each bundle in Bundles/NAME, as three runs would write them):
// TestFaultAtEveryStep sets up an install for every fault point, and a
// run costs about as much CPU starting as working.
func (in *install) setUp(t testing.TB) {
	t.Helper()
	in.mustRun(t, in.initArgs()...)
	in.mustRun(t, in.with("issue-client", "alice", "bob", "carol", "--out", in.l.Bundles)...)
	in.mustRun(t, in.with("issue-server", "srv1", "--out", filepath.Join(in.l.Bundles, "srv1"))...)
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dtls %s: ", strings.Join(r.args, " "))
	switch {
	case r.killed:
		fmt.Fprintf(&b, "KILLED after %v", r.delay)
	case r.noKill:
		fmt.Fprintf(&b, "no kill, exit %d after %v", r.exit, r.took.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, "finished before the kill at %v, exit %d after %v", r.delay, r.exit, r.took.Round(time.Millisecond))
	}
	if s := strings.TrimSpace(r.stderr); s != "" {
		fmt.Fprintf(&b, "\n      stderr: %s", strings.ReplaceAll(tail(s, 1200), "\n", "\n              "))
	}
	return b.String()
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// copyInstall copies the install at from to to, modes included, and
// returns recs with their paths moved along; daemon.json's paths are moved
// too.
func copyInstall(t *testing.T, from, to Layout, recs []Record) []Record {
	t.Helper()
	type dir struct {
		path string
		mode fs.FileMode
	}
	var dirs []dir
	err := filepath.WalkDir(from.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from.Root, path)
		dst := filepath.Join(to.Root, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, dir{dst, fi.Mode().Perm()})
			return os.MkdirAll(dst, 0o700)
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Chmod(dst, fi.Mode().Perm())
	})
	require.NoError(t, err)
	for _, d := range dirs {
		require.NoError(t, os.Chmod(d.path, d.mode))
	}
	b, err := os.ReadFile(to.DaemonJSON)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to.DaemonJSON, []byte(strings.ReplaceAll(string(b), from.Root, to.Root)), 0o644))
	j, err := json.Marshal(recs)
	require.NoError(t, err)
	moved, err := ParseList([]byte(strings.ReplaceAll(string(j), from.Root, to.Root)))
	require.NoError(t, err)
	return moved
}
