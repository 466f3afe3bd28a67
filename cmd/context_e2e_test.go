package cmd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// dockerIn runs the Docker CLI with DOCKER_CONFIG=cfg and nothing else of
// the caller's environment (no DOCKER_HOST, no real ~/.docker).
func dockerIn(t *testing.T, docker, cfg string, extraEnv []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + cfg}, extraEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestContextsWithRealDocker: a bundle travels as an archive, is imported,
// becomes a Docker context that `docker --context NAME version` uses
// against a real dockerd over verified TLS, and its export is accepted by
// `docker context import` in another configuration directory.
func TestContextsWithRealDocker(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	docker := dockerCLI(t)
	now := time.Now()
	h := newTLSHost(t, now)
	dir, state, port := h.Dir, h.State, h.Port

	// The admin's side: a bundle, then its archive.
	out := filepath.Join(dir, "alice")
	_, stderr, code := runWithEnv(t, now, nil, "issue-client", "alice", "--state-dir", state, "--out", out,
		"--docker-host", fmt.Sprintf("tcp://localhost:%d", port))
	require.Equal(t, 0, code, stderr)
	files, err := fixture.ReadBundleDir(out)
	require.NoError(t, err)
	archive := filepath.Join(dir, "alice.tar.gz")
	require.NoError(t, fixture.WriteArchive(archive, files))

	// The laptop's side, with its own store and Docker config.
	cfg := filepath.Join(dir, "dockercfg")
	env := map[string]string{"DTLS_HOME": filepath.Join(dir, "store"), "DOCKER_CONFIG": cfg, "HOME": filepath.Join(dir, "home")}
	_, stderr, code = runWithEnv(t, now, env, "import", archive, "--name", "sandbox")
	require.Equal(t, 0, code, stderr)

	_, stderr, code = runWithEnv(t, now, env, "context", "create", "sandbox")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `created docker context "sandbox"`)
	got, err := dockerIn(t, docker, cfg, nil, "--context", "sandbox", "version", "--format", "{{.Server.Version}}")
	require.NoError(t, err, got)
	assert.Regexp(t, `^\d+\.\d+`, strings.TrimSpace(got))
	got, err = dockerIn(t, docker, cfg, nil, "context", "inspect", "sandbox", "--format", "{{.Endpoints.docker.Host}}")
	require.NoError(t, err, got)
	assert.Equal(t, fmt.Sprintf("tcp://localhost:%d", port), strings.TrimSpace(got))

	// An existing context is kept without --force.
	_, stderr, code = runWithEnv(t, now, env, "context", "create", "sandbox")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `docker context "sandbox" already exists`)
	assert.Contains(t, stderr, "hint: pass --force")
	_, stderr, code = runWithEnv(t, now, env, "context", "create", "sandbox", "--force")
	require.Equal(t, 0, code, stderr)

	// DOCKER_HOST overrides contexts: create says so.
	envHost := map[string]string{"DTLS_HOME": env["DTLS_HOME"], "DOCKER_CONFIG": cfg, "DOCKER_HOST": "tcp://x:1"}
	_, stderr, code = runWithEnv(t, now, envHost, "context", "create", "sandbox2")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `DOCKER_HOST is set and overrides every context; run: eval "$(dtls env --unset)"`)

	// Export, then import with the real CLI into a fresh config.
	exported := filepath.Join(dir, "sandbox.dockercontext")
	_, stderr, code = runWithEnv(t, now, env, "context", "export", "sandbox", exported)
	require.Equal(t, 0, code, stderr)
	fi, err := os.Stat(exported)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, stderr, code = runWithEnv(t, now, env, "context", "export", "sandbox", exported)
	assert.Equal(t, 1, code, "an existing file is kept without --force")
	assert.Contains(t, stderr, "already exists")

	cfg2 := filepath.Join(dir, "dockercfg2")
	got, err = dockerIn(t, docker, cfg2, nil, "context", "import", "imported", exported)
	require.NoError(t, err, got)
	got, err = dockerIn(t, docker, cfg2, nil, "--context", "imported", "version", "--format", "{{.Server.Version}}")
	require.NoError(t, err, got)
	assert.Regexp(t, `^\d+\.\d+`, strings.TrimSpace(got))

	// A context without the client certificate is refused by the daemon:
	// the test above is not passing for a reason other than TLS.
	got, err = dockerIn(t, docker, cfg2, nil, "--host", fmt.Sprintf("tcp://localhost:%d", port), "version", "--format", "{{.Server.Version}}")
	assert.Error(t, err, got)
}
