package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

// TestAuthzFullDiskWithRealDocker: the plugin's audit trail on a small
// tmpfs that the test fills. Through a real dockerd, a developer's docker
// create is then refused with the reason, docker ps goes on (the default
// --audit-failure deny-writes), and once space is back create works
// again, the chain whole, and dtls audit reports the calls denied.
func TestAuthzFullDiskWithRealDocker(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	dir, port, initArgs := authzSandbox(t)
	state, daemonJSON := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json")
	now := time.Now()
	bundle := filepath.Join(dir, "bundles", "dev")
	_, stderr, code := dtls(t, now, "issue-client", "dev", "--role", "developer", "--state-dir", state, "--out", bundle)
	require.Equal(t, 0, code, stderr)

	logDir := filepath.Join(dir, "log")
	require.NoError(t, os.Mkdir(logDir, 0o700))
	require.NoError(t, syscall.Mount("tmpfs", logDir, "tmpfs", 0, "size=256k,mode=0700"))
	t.Cleanup(func() {
		// The sandbox's Stop unmounts what is below its directory first.
		if err := syscall.Unmount(logDir, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Error(err)
		}
	})
	logPath := filepath.Join(logDir, "authz.log")
	// Started after the mount, so stopped (and the trail closed) before
	// the unmount.
	plugin := startAuthzPlugin(t, state, dir, "--audit-log", logPath)
	_, stderr, code = dtls(t, now, append(initArgs, "--authz", "--authz-socket", plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))

	dev := func(args ...string) (string, error) {
		return runDocker(t, docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + bundle}, args...)
	}
	out, err := dev("create", "tiny:1", "/x")
	require.NoError(t, err, out)

	filler, err := os.Create(filepath.Join(logDir, "filler"))
	require.NoError(t, err)
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			break
		}
	}
	require.NoError(t, filler.Close())
	// The trail's last page may take a few more records.
	for range 30 {
		if out, err = dev("create", "tiny:1", "/x"); err != nil {
			break
		}
	}
	require.Error(t, err, "docker create is refused once the trail is full: %s", out)
	assert.Contains(t, out, "authorization denied by plugin "+plugin.Name)
	assert.Contains(t, out, "the audit trail cannot be written")
	assert.Contains(t, out, "no space left on device")
	out, err = dev("ps", "-a")
	require.NoError(t, err, "reads go on: %s", out)

	require.NoError(t, os.Remove(filepath.Join(logDir, "filler")))
	out, err = dev("create", "tiny:1", "/x")
	require.NoError(t, err, "space is back: %s", out)

	out, stderr, code = dtls(t, now, "authz", "log", "--audit-log", logPath, "--verify")
	require.Equal(t, 0, code, "%s%s", out, stderr)
	assert.Contains(t, out, "ok:      no record removed, changed or reordered")
	assert.NotContains(t, out, "torn:")

	out, _, _ = dtls(t, now, "audit", "--audit-log", logPath, "--state-dir", state, "--daemon-json", daemonJSON,
		"--systemd-dir", filepath.Join(dir, "systemd"), "--auditd-rules-dir", filepath.Join(dir, "rules.d"), "--docker-host", "unix://"+d.Socket)
	assert.Regexp(t, `(?m)^WARN   -      audit trail `+logPath+` is writable \(plugin pid \d+\), but [1-9]\d* calls were denied`, out)
	assert.Contains(t, out, "exec and attach sessions are not recorded")
	assert.True(t, strings.Contains(out, "audit trail chain holds"), out)
}
