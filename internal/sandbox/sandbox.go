//go:build linux

// Package sandbox runs a real, throw-away dockerd for tests and the demo, with
// everything it writes (socket, data-root, exec-root, pidfile, key, log) under
// one directory, so that it never touches the host's /var/run/docker.sock,
// /etc/docker or /var/lib/docker.
//
// It is a library: it prints nothing and returns errors. Require is its only
// helper that ends a test.
package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds the wait for /_ping when ctx has no earlier
	// deadline. The daemon answers in about 2 s here; vfs on a slow CI disk
	// can take much longer on first start.
	startTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// dockerd's own shutdown timeout for containers is 15 s, plus containerd.
	stopTimeout = 30 * time.Second
	// childTimeout is how long Stop waits for dockerd's containerd to go
	// after dockerd has exited, before signalling it itself.
	childTimeout = 10 * time.Second
	// pollInterval is the period of every poll loop in this package.
	pollInterval = 50 * time.Millisecond
	// logTailBytes is how much of the daemon log an error quotes.
	logTailBytes = 4096
)

// NewDir makes a short temporary directory under ScratchRoot for a
// daemon. Unix socket paths are limited to 108 bytes (sun_path in
// unix(7)), and the path of t.TempDir() is often too long for
// dir/exec/containerd/containerd.sock. The caller removes it (after
// Daemon.Stop).
func NewDir() (string, error) {
	dir, err := os.MkdirTemp(ScratchRoot(), "dtls-")
	if err != nil {
		return "", fmt.Errorf("make sandbox directory: %w", err)
	}
	return dir, nil
}

// scratchRootMax is the longest $TMPDIR ScratchRoot takes: a daemon's
// socket, DIR/exec/containerd/containerd.sock with DIR made by NewDir,
// must stay well under sun_path's 108 bytes.
const scratchRootMax = 40

// ScratchRoot is where the servers the tests start keep their short-lived
// directories: $TMPDIR when it is set, short and open to every uid as
// /tmp is (make test points it at a tmpfs of its own, mode 1777,
// scripts/scratch.sh), else /tmp. Open to every uid, so that a server run
// as an unprivileged uid (PostgreSQL as 65534) can reach its directory.
func ScratchRoot() string {
	d := os.Getenv("TMPDIR")
	if d == "" || !filepath.IsAbs(d) || len(d) > scratchRootMax {
		return "/tmp"
	}
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
		return "/tmp"
	}
	return d
}

// baseConfig fixes the order of the keys in BaseConfig's output.
type baseConfig struct {
	Hosts    []string `json:"hosts"`
	DataRoot string   `json:"data-root"`
	ExecRoot string   `json:"exec-root"`
	Pidfile  string   `json:"pidfile"`
	// KeyPath moves dockerd 20.10's trust key (used for its daemon ID).
	// Without it dockerd writes /etc/docker/key.json on the host: the
	// default is getDaemonConfDir() + "key.json" in cmd/dockerd/daemon.go
	// (moby v20.10), and --config-file does not change it.
	KeyPath       string `json:"deprecated-key-path"`
	IPTables      bool   `json:"iptables"`
	Bridge        string `json:"bridge"`
	StorageDriver string `json:"storage-driver"`
}

// BaseConfig returns the daemon.json keys that keep a daemon inside dir, as a
// JSON object indented by two spaces and ending in a newline:
//
//   - hosts ["unix://DIR/docker.sock"]: no TCP listener (add one with TLS;
//     dockerd 20.10 delays start-up by 15 s for a TCP host without TLS)
//   - data-root DIR/data, exec-root DIR/exec, pidfile DIR/docker.pid
//   - deprecated-key-path DIR/key.json, or dockerd 20.10 writes
//     /etc/docker/key.json
//   - iptables false and bridge "none": no changes to the host's firewall
//     and no docker0 interface
//   - storage-driver "vfs": works on any filesystem, including overlayfs
//     inside a container, at the cost of copying layers
//
// dockerd reads daemon.json strictly: a key given both here and as a flag
// stops it, so Start passes --config-file and nothing else.
func BaseConfig(dir string) []byte {
	b, err := json.MarshalIndent(baseConfig{
		Hosts:         []string{"unix://" + filepath.Join(dir, "docker.sock")},
		DataRoot:      filepath.Join(dir, "data"),
		ExecRoot:      filepath.Join(dir, "exec"),
		Pidfile:       filepath.Join(dir, "docker.pid"),
		KeyPath:       filepath.Join(dir, "key.json"),
		IPTables:      false,
		Bridge:        "none",
		StorageDriver: "vfs",
	}, "", "  ")
	if err != nil {
		// Marshalling strings and a bool cannot fail.
		panic(err)
	}
	return append(b, '\n')
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it; on this machine's loopback
// that race is rare enough for tests.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Daemon is a dockerd started by Start. Its exported fields are set by Start
// and Restart and are read-only for the caller.
type Daemon struct {
	// Dir is the directory the daemon lives in; dockerd.log is written there.
	Dir string
	// ConfigFile is the daemon.json passed with --config-file.
	ConfigFile string
	// LogFile is Dir/dockerd.log, dockerd's stdout and stderr. Restarts
	// append to it.
	LogFile string
	// Socket is the path of the first unix:// host in ConfigFile.
	Socket string
	// Pid is the pid of the running dockerd, or of the last one after Stop.
	Pid int

	dockerd  string
	execRoot string
	dataRoot string
	// releaseHostDirs removes the host directories dockerd makes when
	// dtls's tests made them (ClaimHostDirs).
	releaseHostDirs func()

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd.Wait has returned
	waitErr  error         // cmd.Wait's result, valid once done is closed
	logStart int64         // size of LogFile when this run started
}

// daemonConfig is the part of daemon.json that Start reads.
type daemonConfig struct {
	Hosts    []string `json:"hosts"`
	DataRoot string   `json:"data-root"`
	ExecRoot string   `json:"exec-root"`
	Pidfile  string   `json:"pidfile"`
	KeyPath  string   `json:"deprecated-key-path"`
	// IPTables is a pointer so that a missing key (dockerd's default,
	// true) can be told from false.
	IPTables *bool `json:"iptables"`
}

// Start runs `dockerd --config-file cfg` with its output in dir/dockerd.log
// and waits until GET /_ping on the daemon's unix socket answers OK: at most
// 60 s, or until ctx is done if that is sooner. ctx bounds only this wait;
// the daemon runs until Stop.
//
// dockerd is $DTLS_DOCKERD, else dockerd in $PATH, else /usr/sbin/dockerd.
//
// Start refuses a cfg that would make the daemon use the host's defaults
// (/var/lib/docker, /var/run/docker, /var/run/docker.pid,
// /etc/docker/key.json) or its firewall: data-root, exec-root, pidfile and
// deprecated-key-path must be set and inside dir, iptables must be false,
// hosts must hold a unix:// socket, every unix:// socket must be inside dir,
// and any tcp:// host must be on loopback. Start from BaseConfig.
//
// If dockerd exits or the wait ends first, the error quotes the end of the
// log, and nothing is left running.
func Start(ctx context.Context, dir, cfg string) (*Daemon, error) {
	raw, err := os.ReadFile(cfg)
	if err != nil {
		return nil, fmt.Errorf("read daemon config: %w", err)
	}
	var c daemonConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("read daemon config %q: %w", cfg, err)
	}
	socket, err := checkConfig(c, dir)
	if err != nil {
		return nil, fmt.Errorf("daemon config %q: %w", cfg, err)
	}
	dockerd, err := dockerdPath()
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Dir:             dir,
		ConfigFile:      cfg,
		LogFile:         filepath.Join(dir, "dockerd.log"),
		Socket:          socket,
		dockerd:         dockerd,
		execRoot:        c.ExecRoot,
		dataRoot:        c.DataRoot,
		releaseHostDirs: ClaimHostDirs(),
	}
	if err := d.start(ctx); err != nil {
		d.releaseHostDirs()
		return nil, err
	}
	return d, nil
}

// hostPluginDirs are the directories dockerd 20.10 makes on the host
// whatever its configuration: the legacy plugins' socket directory is
// fixed (moby pkg/plugins/discovery_unix.go). The host stays as the tests
// found it: Stop removes those that were missing, when empty.
var hostPluginDirs = []string{"/run/docker/plugins", "/run/docker"}

// testSocket matches the name of a test plugin's socket as PluginSocket
// makes it; its group is the test process's pid.
var testSocket = regexp.MustCompile(`^dtls-[a-z0-9-]+-test-([0-9]+)-[0-9a-f]{8}\.sock$`)

// PluginSocket returns a name for a test's plugin of the kind given
// ("authz": dtls-authz-test-PID-RANDOM, the name dockerd's refusals
// quote), unique to this process and call, and its socket in the host's
// plugin directory, where dockerd 20.10 looks for it. The caller holds a
// claim (ClaimHostDirs) while the socket exists. A test killed before
// removing its socket leaves it there, in a directory the host may not
// have had: the next claim or the last release removes it
// (removeTestSockets).
func PluginSocket(kind string) (name, socket string) {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	name = fmt.Sprintf("dtls-%s-test-%d-%s", kind, os.Getpid(), hex.EncodeToString(id))
	return name, filepath.Join(hostPluginDirs[0], name+".sock")
}

// removeTestSockets removes from dir the sockets named as PluginSocket
// names them whose test process is gone, and nothing else.
func removeTestSockets(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m := testSocket.FindStringSubmatch(e.Name())
		if m != nil && e.Type()&fs.ModeSocket != 0 && !alive(m[1]) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// hostDirsMarker records, across test processes, which of hostPluginDirs
// dtls's tests made and who still uses them: `go test ./...` runs packages
// in parallel, and a dockerd makes the directories again while it runs, so
// they may go only when the last user is done. It holds hostClaims as
// JSON and is changed under an exclusive flock.
//
// It lives in /run, beside what it tracks, and goes at boot as they do;
// not in $TMPDIR, which make test puts on a tmpfs of the run's own mount
// namespace (scripts/scratch.sh): a run killed there took its claims with
// it, and the next run found the directories it had made, took them for
// the host's own and left them. As non-root the marker cannot be written
// and claims are not recorded; no dockerd runs then either.
var hostDirsMarker = "/run/dtls-tests-made-run-docker"

// hostClaims is the content of hostDirsMarker.
type hostClaims struct {
	Dirs []string `json:"dirs"` // made by the tests, deepest first
	// Users are the live claims, "PID/N": a dead process's claims are
	// dropped, so that a test killed before its release does not keep
	// the directories forever.
	Users []string `json:"users"`
}

// claimSeq numbers this process's claims.
var claimSeq atomic.Int64

// ClaimHostDirs is called before anything that may make the host's
// plugin directories (a dockerd, a test plugin's socket), and the function
// it returns when that is over. When some are missing, or another dtls
// test already made them, the claim is recorded in hostDirsMarker; the
// last release removes the recorded directories (each only when empty,
// deepest first) and the marker: the host stays as the first test found
// it. On a host that had the directories, both do nothing.
func ClaimHostDirs() (release func()) {
	user := fmt.Sprintf("%d/%d", os.Getpid(), claimSeq.Add(1))
	claimed := false
	_ = withClaims(func(c *hostClaims) {
		removeTestSockets(hostPluginDirs[0])
		if len(c.Dirs) == 0 {
			// Looked at under the lock: a release that removes the
			// directories holds it.
			for _, d := range hostPluginDirs {
				if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
					c.Dirs = append(c.Dirs, d)
				}
			}
			if len(c.Dirs) == 0 {
				return // the host's own
			}
		}
		c.Users = append(c.Users, user)
		claimed = true
	})
	if !claimed {
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() { releaseClaim(user) })
	}
}

// releaseClaim drops user's claim, and removes the directories when it
// was the last live one.
func releaseClaim(user string) {
	_ = withClaims(func(c *hostClaims) {
		c.Users = slices.DeleteFunc(c.Users, func(u string) bool { return u == user || !alive(u) })
		if len(c.Users) > 0 {
			return
		}
		for _, d := range c.Dirs {
			if slices.Contains(hostPluginDirs, d) { // never anything else
				removeTestSockets(d)
				_ = os.Remove(d)
			}
		}
		c.Dirs = nil
	})
}

// withClaims runs f on the marker's claims under an exclusive flock and
// writes back what f leaves; a marker left with no directories is
// emptied and removed.
func withClaims(f func(*hostClaims)) error {
	for {
		file, err := os.OpenFile(hostDirsMarker, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX); err != nil {
			file.Close()
			return err
		}
		// The marker may have been removed while this waited for the
		// lock: start again on the one at the path.
		fi, err1 := file.Stat()
		cur, err2 := os.Stat(hostDirsMarker)
		if err1 != nil || err2 != nil || !os.SameFile(fi, cur) {
			file.Close()
			continue
		}
		err = updateClaims(file, f)
		file.Close()
		return err
	}
}

func updateClaims(file *os.File, f func(*hostClaims)) error {
	var c hostClaims
	if b, err := io.ReadAll(file); err == nil && len(b) > 0 {
		_ = json.Unmarshal(b, &c)
	}
	f(&c)
	if err := file.Truncate(0); err != nil {
		return err
	}
	if len(c.Dirs) == 0 {
		return os.Remove(hostDirsMarker)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = file.WriteAt(b, 0)
	return err
}

// alive reports whether the process of a claim "PID/N" (or of a pid)
// still runs.
func alive(user string) bool {
	pid, err := strconv.Atoi(strings.SplitN(user, "/", 2)[0])
	if err != nil {
		return false
	}
	return pid == os.Getpid() || syscall.Kill(pid, 0) == nil
}

// checkConfig returns the daemon's unix socket, or why c would let the
// daemon fall back to one of the host's paths, write outside dir, change
// the host's firewall or listen off loopback.
func checkConfig(c daemonConfig, dir string) (string, error) {
	for _, kv := range []struct{ key, v string }{
		{"data-root", c.DataRoot},
		{"exec-root", c.ExecRoot},
		{"pidfile", c.Pidfile},
		{"deprecated-key-path", c.KeyPath},
	} {
		if kv.v == "" {
			return "", fmt.Errorf("%q is not set, so dockerd would use the host's default (start from sandbox.BaseConfig)", kv.key)
		}
		if !inside(kv.v, dir) {
			return "", fmt.Errorf("%q %q is not inside the sandbox directory %q", kv.key, kv.v, dir)
		}
	}
	// iptables defaults to true: dockerd would add its chains to the
	// host's firewall.
	if c.IPTables == nil || *c.IPTables {
		return "", errors.New(`"iptables" must be false, or dockerd changes the host's firewall (start from sandbox.BaseConfig)`)
	}
	socket := ""
	for _, h := range c.Hosts {
		switch {
		case strings.HasPrefix(h, "unix://"):
			p := strings.TrimPrefix(h, "unix://")
			if !inside(p, dir) {
				// It would replace the socket there, e.g. the host's
				// /var/run/docker.sock.
				return "", fmt.Errorf("host %q is not inside the sandbox directory %q", h, dir)
			}
			if socket == "" {
				socket = p
			}
		case strings.HasPrefix(h, "tcp://"):
			u, err := url.Parse(h)
			if err != nil {
				return "", fmt.Errorf("host %q: %w", h, err)
			}
			ip := net.ParseIP(u.Hostname())
			if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return "", fmt.Errorf("host %q is not on loopback", h)
			}
		default:
			return "", fmt.Errorf("host %q: only unix:// and loopback tcp:// hosts are allowed", h)
		}
	}
	if socket == "" {
		return "", errors.New(`"hosts" has no unix:// socket to reach the daemon on`)
	}
	if len(socket) >= 108 {
		return "", fmt.Errorf("socket path %q is %d bytes, over the 108-byte limit of unix(7) (use sandbox.NewDir)", socket, len(socket))
	}
	return socket, nil
}

// inside reports whether the absolute path p is in dir, lexically.
func inside(p, dir string) bool {
	if !filepath.IsAbs(p) || dir == "" {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// start launches dockerd and waits for /_ping. d.mu is not held: Start owns
// a new d, and Restart has stopped the previous process.
func (d *Daemon) start(ctx context.Context) error {
	logf, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	fi, err := logf.Stat()
	if err != nil {
		logf.Close()
		return fmt.Errorf("open daemon log: %w", err)
	}
	// $TMPDIR in the sandbox: what dockerd and containerd (which inherits
	// dockerd's environment) write to the temporary directory stays there
	// and goes with it. dockerd sends containerd SIGUSR1 before killing one
	// that does not answer or stop in time (moby
	// libcontainerd/supervisor/remote_daemon.go, killDaemon), and containerd
	// then dumps its stacks to os.TempDir()/containerd.PID.stacks.log: on a
	// loaded machine, /tmp filled up with them.
	tmp := filepath.Join(d.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		logf.Close()
		return fmt.Errorf("make the daemon's temporary directory: %w", err)
	}
	cmd := exec.Command(d.dockerd, "--config-file", d.ConfigFile)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// dockerd finds containerd and runc in $PATH; a test run with a trimmed
	// $PATH (no /usr/sbin) would fail late with a confusing message.
	cmd.Env = append(os.Environ(), "PATH="+searchPath(), "TMPDIR="+tmp)
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start %s: %w", d.dockerd, err)
	}

	d.mu.Lock()
	d.cmd = cmd
	d.Pid = cmd.Process.Pid
	d.logStart = fi.Size()
	d.done = make(chan struct{})
	done := d.done
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(done)
	}()

	if err := d.waitReady(ctx); err != nil {
		_ = d.Stop()
		return err
	}
	return nil
}

// waitReady polls GET /_ping until it answers 200 OK, dockerd exits, or the
// deadline passes.
func (d *Daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := d.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	defer client.CloseIdleConnections()

	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if d.ping(ctx, client) == nil {
			return nil
		}
		select {
		case <-d.done:
			d.mu.Lock()
			werr := d.waitErr
			d.mu.Unlock()
			return fmt.Errorf("dockerd --config-file %q exited before answering /_ping on %q: %v\n%s",
				d.ConfigFile, d.Socket, werr, d.logTail())
		case <-ctx.Done():
			return fmt.Errorf("dockerd --config-file %q did not answer /_ping on %q: %w\n%s",
				d.ConfigFile, d.Socket, ctx.Err(), d.logTail())
		case <-tick.C:
		}
	}
}

func (d *Daemon) ping(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || string(body) != "OK" {
		return fmt.Errorf("GET /_ping: %s %q", resp.Status, body)
	}
	return nil
}

// logTail returns the last few KiB that this run of dockerd wrote to its log.
func (d *Daemon) logTail() string {
	f, err := os.Open(d.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	start := d.logStart
	if fi.Size()-start > logTailBytes {
		start = fi.Size() - logTailBytes
	}
	b := make([]byte, fi.Size()-start)
	n, _ := f.ReadAt(b, start)
	return fmt.Sprintf("last lines of %s:\n%s", d.LogFile, strings.TrimRight(string(b[:n]), "\n"))
}

// Stop sends SIGTERM to dockerd, waits up to 30 s for it to exit, then sends
// SIGKILL. dockerd stops the containerd it started itself; Stop then makes
// sure of it: every process that was a child of dockerd, and the one in
// exec-root/containerd/containerd.pid, must be gone within 10 s or is sent
// SIGTERM and then SIGKILL. Stop of a stopped daemon returns nil.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}

	// Note the children now: once dockerd is gone they are reparented and
	// can no longer be told apart from other processes by their parent.
	children := childrenOf(cmd.Process.Pid)
	// And the bridges of the networks its tests made: dockerd leaves them
	// in the host's network namespace when it stops.
	bridges := d.networkBridges()
	if p, ok := containerdFromPidfile(d.execRoot); ok {
		children = append(children, p)
	}

	var errs []error
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("stop dockerd (pid %d): %w", cmd.Process.Pid, err))
	}
	if !waitDone(done, stopTimeout) {
		_ = cmd.Process.Kill()
		if !waitDone(done, stopTimeout) {
			errs = append(errs, fmt.Errorf("stop dockerd (pid %d): still running %s after SIGKILL", cmd.Process.Pid, stopTimeout))
		}
	}
	for _, p := range children {
		if err := p.reap(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(d.Dir); err != nil {
		errs = append(errs, err)
	}
	for _, b := range bridges {
		if _, err := net.InterfaceByName(b); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "link", "delete", b).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove the bridge %s a test network left: %v: %s", b, err, out))
		}
	}
	d.releaseHostDirs()
	return errors.Join(errs...)
}

// networkBridges names the host bridges of the daemon's user-defined
// bridge networks (libnetwork names them "br-" and the network ID's first
// 12 characters); none when the daemon does not answer.
func (d *Daemon) networkBridges() []string {
	// The networks libnetwork keeps in its store, whether or not the API
	// answers (a test's policy may deny the unix socket by then).
	seen := map[string]bool{}
	var out []string
	if b, err := os.ReadFile(filepath.Join(d.dataRoot, "network", "files", "local-kv.db")); err == nil {
		for _, m := range networkKey.FindAllSubmatch(b, -1) {
			if name := "br-" + string(m[1][:12]); !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return append(out, d.apiBridges(seen)...)
}

// networkKey is a network's key in libnetwork's store (boltdb, keys in
// the clear): docker/network/v1.0/network/ID/.
var networkKey = regexp.MustCompile(`docker/network/v1\.0/network/([0-9a-f]{64})/`)

// apiBridges asks the daemon for its bridge networks not in seen.
func (d *Daemon) apiBridges(seen map[string]bool) []string {
	c := d.Client()
	c.Timeout = 5 * time.Second
	resp, err := c.Get("http://docker/networks")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list []struct {
		ID      string `json:"Id"`
		Name    string
		Driver  string
		Options map[string]string
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return nil
	}
	var out []string
	for _, n := range list {
		if n.Driver != "bridge" || n.Name == "bridge" || len(n.ID) < 12 || seen["br-"+n.ID[:12]] {
			continue
		}
		if n.Options["com.docker.network.bridge.name"] != "" {
			// Named by the test: perhaps a bridge of the host's own.
			continue
		}
		out = append(out, "br-"+n.ID[:12])
	}
	return out
}

// unmountUnder detaches every mount below dir. dockerd 20.10 leaves its
// default network namespace mounted at EXEC_ROOT/netns/default (nsfs) when
// it stops (libnetwork osl: the namespace of the host sandbox is never
// released), which keeps the sandbox directory from being removed and
// leaves a mount on the host. Deepest first; MNT_DETACH, as umount -l.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal
		// escaped (proc(5)); a sandbox directory has none.
		if p := f[4]; inside(p, dir) {
			points = append(points, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Restart stops the daemon and starts it again with the same config file and
// directory. It is needed because dockerd does not reload its TLS files on
// SIGHUP (moby/moby#23936), so a test of certificate rotation must restart.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.Stop(); err != nil {
		return fmt.Errorf("restart dockerd: %w", err)
	}
	// Stop gave up the claim on the host's plugin directories, which the
	// new dockerd makes again.
	d.releaseHostDirs = ClaimHostDirs()
	return d.start(ctx)
}

func waitDone(done <-chan struct{}, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Client returns an HTTP client that speaks to the daemon's unix socket. The
// host part of the URL is ignored: use e.g. "http://docker/_ping" or a
// versioned path such as "http://docker/v1.41/info".
func (d *Daemon) Client() *http.Client {
	socket := d.Socket
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dialer net.Dialer
				return dialer.DialContext(ctx, "unix", socket)
			},
			IdleConnTimeout: 30 * time.Second,
		},
	}
}

// TinyImage imports a minimal image named ref ("tiny:1", or "tiny" for
// tiny:latest) so that tests can create containers without a registry. Its
// root filesystem holds one small file, /x, and nothing can run in it: it is
// for creating containers, not starting them. It uses
// POST /images/create?fromSrc=- (what `docker import -` does).
func (d *Daemon) TinyImage(ctx context.Context, ref string) error {
	repo, tag := splitRef(ref)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("tiny image made by dtls sandbox\n")
	if err := tw.WriteHeader(&tar.Header{
		Name: "x", Mode: 0o755, Size: int64(len(content)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0),
	}); err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	if _, err := tw.Write(content); err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}

	q := url.Values{"fromSrc": {"-"}, "repo": {repo}, "tag": {tag}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/images/create?"+q.Encode(), &buf)
	if err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	client := d.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("import image %q: %w", ref, apiError(resp))
	}
	// The answer is a stream of JSON messages; a failure can arrive as one
	// of them after a 200 status.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("import image %q: read answer: %w", ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("import image %q: %s", ref, msg.Error)
		}
	}

	// Check that the name now resolves, rather than trusting the stream.
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/images/"+repo+":"+tag+"/json", nil)
	if err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	resp2, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("import image %q: %w", ref, err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		return fmt.Errorf("import image %q: inspect after import: %w", ref, apiError(resp2))
	}
	return nil
}

// splitRef splits "name:tag" into its parts; the tag defaults to "latest".
// A colon before the last slash belongs to a registry host ("host:5000/x").
func splitRef(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

// apiError turns an Engine API error answer ({"message": "..."}) into an error.
func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		return fmt.Errorf("%s: %s", resp.Status, m.Message)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
}

// StartForTest starts a daemon from BaseConfig in a new directory for t,
// and stops and removes it when t ends. Like Require, it ends t when
// dockerd cannot run here.
func StartForTest(t testing.TB) *Daemon {
	t.Helper()
	Require(t)
	dir, err := NewDir()
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, BaseConfig(dir), 0o600); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sandbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := Start(ctx, dir, cfg)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("sandbox: stop: %v", err)
		}
		os.RemoveAll(dir)
	})
	return d
}

// Require returns the path of dockerd, or ends the test when dockerd cannot
// run here: it is missing (or containerd is), or the test is not root, which
// dockerd needs. Outside CI the test is skipped; when $CI is "true" it fails,
// because CI must have dockerd (see shared/docs/dockerd-sandbox.md).
func Require(t testing.TB) string {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	path, err := dockerdPath()
	if err != nil {
		stop("sandbox: %v (install it: apt-get install -y docker.io)", err)
		return ""
	}
	if _, err := lookPath("containerd"); err != nil {
		stop("sandbox: dockerd needs containerd: %v (install it: apt-get install -y docker.io)", err)
		return ""
	}
	if uid := os.Geteuid(); uid != 0 {
		stop("sandbox: dockerd needs root, tests run as uid %d", uid)
		return ""
	}
	return path
}

// dockerdPath finds dockerd: $DTLS_DOCKERD, then $PATH, then the sbin
// directories that a non-root $PATH often lacks.
func dockerdPath() (string, error) {
	if p := os.Getenv("DTLS_DOCKERD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dockerd from $DTLS_DOCKERD: %w", err)
		}
		return p, nil
	}
	return lookPath("dockerd")
}

var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"}

// searchPath is $PATH followed by the system directories it lacks.
func searchPath() string {
	path := os.Getenv("PATH")
	have := map[string]bool{}
	for _, dir := range filepath.SplitList(path) {
		have[dir] = true
	}
	for _, dir := range sbinDirs {
		if !have[dir] {
			if path != "" {
				path += string(filepath.ListSeparator)
			}
			path += dir
		}
	}
	return path
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $PATH or %s", name, strings.Join(sbinDirs, ", "))
}

// proc names a process by pid and start time, so that a recycled pid is not
// mistaken for it.
type proc struct {
	pid   int
	start string // field 22 of /proc/PID/stat, in clock ticks since boot
	comm  string
}

// stat reads /proc/PID/stat: comm, state, parent pid and start time. comm is
// in parentheses and may hold spaces, so fields are counted from the last ')'.
func stat(pid int) (p proc, state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return proc{}, "", 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return proc{}, "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return proc{pid: pid, start: f[19], comm: s[open+1 : end]}, f[0], ppid, true
}

// alive reports whether p still runs. A zombie has stopped: it only waits to
// be reaped by its new parent, which may not be this process.
func (p proc) alive() bool {
	q, state, _, ok := stat(p.pid)
	return ok && q.start == p.start && state != "Z" && state != "X"
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, _, ppid, ok := stat(n); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// containerdFromPidfile returns the containerd that dockerd started, from the
// pid file that dockerd's supervisor writes in exec-root/containerd
// (libcontainerd/supervisor in moby v20.10).
func containerdFromPidfile(execRoot string) (proc, bool) {
	b, err := os.ReadFile(filepath.Join(execRoot, "containerd", "containerd.pid"))
	if err != nil {
		return proc{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return proc{}, false
	}
	p, _, _, ok := stat(pid)
	if !ok || !strings.HasPrefix(p.comm, "containerd") {
		return proc{}, false
	}
	return p, true
}

// reap waits for a former child of dockerd to exit, and signals it if it
// outlives dockerd by childTimeout: SIGTERM, then SIGKILL.
func (p proc) reap() error {
	if waitGone(p, childTimeout) {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	if waitGone(p, childTimeout) {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	if waitGone(p, childTimeout) {
		return nil
	}
	return fmt.Errorf("stop %s (pid %d), left behind by dockerd: still running after SIGKILL", p.comm, p.pid)
}

func waitGone(p proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval) // polling with a deadline, not synchronisation
	}
	return true
}
