//go:build linux

package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

func TestBaseConfig(t *testing.T) {
	got := sandbox.BaseConfig("/tmp/dtls-x")
	assert.JSONEq(t, `{
		"hosts": ["unix:///tmp/dtls-x/docker.sock"],
		"data-root": "/tmp/dtls-x/data",
		"exec-root": "/tmp/dtls-x/exec",
		"pidfile": "/tmp/dtls-x/docker.pid",
		"deprecated-key-path": "/tmp/dtls-x/key.json",
		"iptables": false,
		"bridge": "none",
		"storage-driver": "vfs"
	}`, string(got))
	assert.True(t, strings.HasPrefix(string(got), "{\n  \"hosts\": [\n    \"unix://"), "indented by two spaces: %s", got)
	assert.True(t, strings.HasSuffix(string(got), "}\n"))
}

func TestNewDirIsShort(t *testing.T) {
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	assert.True(t, strings.HasPrefix(dir, sandbox.ScratchRoot()+"/dtls-"), dir)
	// The deepest socket dockerd makes is exec-root/containerd/containerd.sock.ttrpc.
	assert.Less(t, len(filepath.Join(dir, "exec/containerd/containerd.sock.ttrpc")), 108)
}

// TestScratchRoot: $TMPDIR when it is absolute, short enough for the
// daemons' sockets and open to every uid; /tmp otherwise. The longest
// $TMPDIR taken still leaves room for the deepest socket.
func TestScratchRoot(t *testing.T) {
	dir := func(mode os.FileMode) string {
		d, err := os.MkdirTemp("/tmp", "st")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(d) })
		require.NoError(t, os.Chmod(d, mode))
		return d
	}
	open, closed := dir(0o1777), dir(0o700)
	long := open + "/" + strings.Repeat("d", 40-len(open)-1)
	require.NoError(t, os.Mkdir(long, 0o777))
	require.NoError(t, os.Chmod(long, 0o1777))
	longer := long + "d"
	require.NoError(t, os.Mkdir(longer, 0o777))
	require.NoError(t, os.Chmod(longer, 0o1777))
	for tmpdir, want := range map[string]string{
		"":                "/tmp",
		open:              open,
		closed:            "/tmp",
		open + "/missing": "/tmp",
		"relative/dir":    "/tmp",
		long:              long,
		longer:            "/tmp",
	} {
		t.Setenv("TMPDIR", tmpdir)
		assert.Equal(t, want, sandbox.ScratchRoot(), "TMPDIR=%q", tmpdir)
	}
	deepest := filepath.Join(long, "dtls-1234567890", "exec/containerd/containerd.sock.ttrpc")
	assert.Less(t, len(deepest), 108, deepest)
}

func TestFreePort(t *testing.T) {
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	assert.Greater(t, port, 0)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err, "the port should be free")
	l.Close()
}

// TestStartRefusesHostPaths needs no dockerd: Start checks the config first.
func TestStartRefusesHostPaths(t *testing.T) {
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	other, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(other) })
	tests := []struct {
		name   string
		edit   func(m map[string]any)
		errHas string
	}{
		{"no data-root", func(m map[string]any) { delete(m, "data-root") }, `"data-root" is not set`},
		{"no exec-root", func(m map[string]any) { delete(m, "exec-root") }, `"exec-root" is not set`},
		{"no pidfile", func(m map[string]any) { delete(m, "pidfile") }, `"pidfile" is not set`},
		{"no key path", func(m map[string]any) { delete(m, "deprecated-key-path") }, `"deprecated-key-path" is not set`},
		{"no unix socket", func(m map[string]any) { m["hosts"] = []string{"tcp://127.0.0.1:2376"} }, "no unix:// socket"},
		{"data-root outside the directory", func(m map[string]any) { m["data-root"] = other + "/data" }, `"data-root" ` + fmt.Sprintf("%q", other+"/data") + ` is not inside`},
		{"exec-root outside the directory", func(m map[string]any) { m["exec-root"] = other + "/exec" }, `"exec-root" ` + fmt.Sprintf("%q", other+"/exec") + ` is not inside`},
		{"socket outside the directory", func(m map[string]any) { m["hosts"] = []string{"unix://" + other + "/docker.sock"} }, `is not inside`},
		{"iptables not false", func(m map[string]any) { delete(m, "iptables") }, `"iptables" must be false`},
		{"tcp off loopback", func(m map[string]any) {
			m["hosts"] = []string{"unix://" + dir + "/docker.sock", "tcp://0.0.0.0:2376"}
		}, `host "tcp://0.0.0.0:2376" is not on loopback`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			require.NoError(t, json.Unmarshal(sandbox.BaseConfig(dir), &m))
			tt.edit(m)
			b, err := json.Marshal(m)
			require.NoError(t, err)
			cfg := filepath.Join(dir, "daemon.json")
			require.NoError(t, os.WriteFile(cfg, b, 0o600))
			d, err := sandbox.Start(context.Background(), dir, cfg)
			if d != nil {
				d.Stop()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.errHas)
			assert.NoFileExists(t, filepath.Join(dir, "dockerd.log"), "dockerd must not have run")
		})
	}
}

// call sends a request to the daemon and decodes a JSON answer into out.
func call(t *testing.T, d *sandbox.Daemon, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://docker"+path, body)
	require.NoError(t, err)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := d.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
	}
	return resp.StatusCode
}

func ping(t *testing.T, d *sandbox.Daemon) string {
	t.Helper()
	client := d.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://docker/_ping")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// containerdPid reads the pid of the containerd that dockerd started.
func containerdPid(t *testing.T, d *sandbox.Daemon) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Dir, "exec", "containerd", "containerd.pid"))
	require.NoError(t, err, "dockerd should run its own containerd")
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestDaemonLifecycle(t *testing.T) {
	t.Parallel() // a daemon of its own: most of the time is its start
	d := sandbox.StartForTest(t)
	ctx := context.Background()

	assert.Equal(t, "OK", ping(t, d))
	assert.Equal(t, filepath.Join(d.Dir, "docker.sock"), d.Socket)
	assert.FileExists(t, d.LogFile)
	ctrd := containerdPid(t, d)
	require.True(t, running(d.Pid))
	require.True(t, running(ctrd))

	var info struct{ DockerRootDir, Driver string }
	require.Equal(t, http.StatusOK, call(t, d, "GET", "/info", nil, &info))
	assert.Equal(t, filepath.Join(d.Dir, "data"), info.DockerRootDir)
	assert.Equal(t, "vfs", info.Driver)

	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	var created struct{ Id string }
	status := call(t, d, "POST", "/containers/create?name=c1", map[string]any{
		"Image": "tiny:1",
		"Cmd":   []string{"/x"},
		"HostConfig": map[string]any{
			"Binds": []string{"/var/run/docker.sock:/var/run/docker.sock"},
		},
	}, &created)
	require.Equal(t, http.StatusCreated, status)
	require.NotEmpty(t, created.Id)

	var inspect struct {
		Config     struct{ Image string }
		HostConfig struct{ Binds []string }
		State      struct{ Status string }
	}
	require.Equal(t, http.StatusOK, call(t, d, "GET", "/containers/c1/json", nil, &inspect))
	assert.Equal(t, "tiny:1", inspect.Config.Image)
	assert.Equal(t, []string{"/var/run/docker.sock:/var/run/docker.sock"}, inspect.HostConfig.Binds)
	assert.Equal(t, "created", inspect.State.Status)

	// An unknown image is an error, so the create above proved the import.
	assert.Equal(t, http.StatusNotFound, call(t, d, "POST", "/containers/create",
		map[string]any{"Image": "nosuch:1"}, nil))

	// containerd's stack dump (SIGUSR1, which dockerd sends before it
	// kills a containerd that does not answer) goes to the sandbox's
	// temporary directory, not the host's.
	require.NoError(t, syscall.Kill(ctrd, syscall.SIGUSR1))
	dump := fmt.Sprintf("containerd.%d.stacks.log", ctrd)
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(d.Dir, "tmp", dump)); return err == nil },
		10*time.Second, 20*time.Millisecond, "containerd's stack dump in the sandbox")
	assert.NoFileExists(t, filepath.Join(os.TempDir(), dump))

	pid := d.Pid
	require.NoError(t, d.Stop())
	assert.False(t, running(pid), "dockerd (pid %d) should be gone", pid)
	assert.False(t, running(ctrd), "containerd (pid %d) should be gone", ctrd)
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "dockerd should be reaped")
	require.NoError(t, d.Stop(), "Stop is idempotent")
}

func TestTwoDaemonsInParallel(t *testing.T) {
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := sandbox.StartForTest(t)
			assert.Equal(t, "OK", ping(t, d))
			var info struct{ DockerRootDir, Name string }
			require.Equal(t, http.StatusOK, call(t, d, "GET", "/info", nil, &info))
			assert.Equal(t, filepath.Join(d.Dir, "data"), info.DockerRootDir, "each daemon has its own data-root")
			require.NoError(t, d.TinyImage(context.Background(), "tiny-"+name))
			var images []struct{ RepoTags []string }
			require.Equal(t, http.StatusOK, call(t, d, "GET", "/images/json", nil, &images))
			require.Len(t, images, 1, "the other daemon's image must not show here")
			assert.Equal(t, []string{"tiny-" + name + ":latest"}, images[0].RepoTags)
		})
	}
}

func TestRestartKeepsDataAndChangesPid(t *testing.T) {
	t.Parallel() // a daemon of its own: most of the time is its start
	d := sandbox.StartForTest(t)
	ctx := context.Background()
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	oldPid, oldCtrd := d.Pid, containerdPid(t, d)

	require.NoError(t, d.Restart(ctx))
	assert.NotEqual(t, oldPid, d.Pid)
	assert.False(t, running(oldPid))
	assert.False(t, running(oldCtrd), "the first containerd should be gone")
	assert.Equal(t, "OK", ping(t, d))
	assert.Equal(t, http.StatusOK, call(t, d, "GET", "/images/tiny:1/json", nil, nil), "data-root survives a restart")
	log, err := os.ReadFile(d.LogFile)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(log), "API listen on "+d.Socket), "the log keeps both runs")
}

func TestStartReportsLogTailWhenDockerdExits(t *testing.T) {
	t.Parallel() // a daemon of its own: most of the time is its start
	sandbox.Require(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "daemon.json")
	// dockerd reads daemon.json strictly and refuses an unknown key.
	bad := bytes.Replace(sandbox.BaseConfig(dir), []byte(`"bridge"`), []byte(`"no-such-key": 1, "bridge"`), 1)
	require.NoError(t, os.WriteFile(cfg, bad, 0o600))

	d, err := sandbox.Start(context.Background(), dir, cfg)
	require.Error(t, err)
	assert.Nil(t, d)
	assert.Contains(t, err.Error(), "exited before answering /_ping")
	assert.Contains(t, err.Error(), "no-such-key", "the error quotes dockerd's log")
}
