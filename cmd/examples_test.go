package cmd

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/sandbox"
)

// TestExamples runs the scripts of examples/ that can run here (onboard,
// ci) against a sandboxed dockerd. The dtls they find in $PATH is this test
// binary (testscript.Main puts it there), so they test this tree's code.
func TestExamples(t *testing.T) {
	sandbox.Require(t)
	docker := dockerCLI(t)
	dtlsPath, err := exec.LookPath("dtls")
	require.NoError(t, err, "testscript.Main puts dtls in $PATH")
	now := time.Now()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	state, daemonJSON := filepath.Join(dir, "state"), filepath.Join(dir, "daemon.json")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "systemd"), 0o755))
	_, stderr, code := runWithEnv(t, now, nil, "init",
		"--state-dir", state, "--certs-dir", filepath.Join(dir, "certs"), "--daemon-json", daemonJSON,
		"--systemd-dir", filepath.Join(dir, "systemd"),
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1")
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	dockerHost := fmt.Sprintf("tcp://localhost:%d", port)

	path := filepath.Dir(dtlsPath) + ":" + filepath.Dir(docker) + ":/usr/bin:/bin"
	script := func(t *testing.T, env []string, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("..", "examples", name)}, args...)...)
		cmd.Env = append([]string{"PATH=" + path, "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir(), "DTLS_HOME=" + t.TempDir()}, env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", name, out)
		return string(out)
	}

	// The admin's side: issue-client --archive, as the example runs it.
	archive := filepath.Join(dir, "dtls-alice.tar.gz")
	out := script(t, []string{"DTLS_STATE_DIR=" + state, "DTLS_OUT_DIR=" + dir}, "onboard/admin.sh", "alice", dockerHost)
	assert.Contains(t, out, archive)
	fi, err := os.Stat(archive)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	t.Run("onboard", func(t *testing.T) {
		out := script(t, nil, "onboard/developer.sh", archive, "sandbox")
		assert.Regexp(t, `server \d+\.\d+\S* via DOCKER_HOST`, out)
		assert.Regexp(t, `server \d+\.\d+\S* via context sandbox`, out)
		assert.Contains(t, out, `imported bundle "sandbox"`)
	})

	t.Run("ci", func(t *testing.T) {
		data, err := os.ReadFile(archive)
		require.NoError(t, err)
		ghEnv := filepath.Join(t.TempDir(), "github_env")
		out := script(t, []string{"DTLS_BUNDLE_B64=" + base64.StdEncoding.EncodeToString(data), "GITHUB_ENV=" + ghEnv},
			"ci/use-bundle.sh", "docker", "version", "--format", "server {{.Server.Version}}")
		assert.Regexp(t, `server \d+\.\d+`, out)
		got, err := os.ReadFile(ghEnv)
		require.NoError(t, err)
		assert.Contains(t, string(got), "DOCKER_HOST="+dockerHost+"\n")
		assert.Contains(t, string(got), "DOCKER_TLS_VERIFY=1\n")
	})
}
