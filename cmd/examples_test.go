package cmd

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

// TestExamples runs the scripts of examples/ that can run here (onboard,
// ci) against a sandboxed dockerd. The dtls they find in $PATH is this test
// binary (testscript.Main puts it there), so they test this tree's code.
func TestExamples(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	docker := dockerCLI(t)
	dtlsPath, err := exec.LookPath("dtls")
	require.NoError(t, err, "testscript.Main puts dtls in $PATH")
	now := time.Now()
	h := newTLSHost(t, now)
	dir, state, port := h.Dir, h.State, h.Port
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
		// Later steps of the job use what $GITHUB_ENV says: the bundle
		// it names must outlive the script.
		var certPath string
		for _, line := range strings.Split(string(got), "\n") {
			if v, ok := strings.CutPrefix(line, "DOCKER_CERT_PATH="); ok {
				certPath = v
			}
		}
		require.NotEmpty(t, certPath, "no DOCKER_CERT_PATH in $GITHUB_ENV:\n%s", got)
		assert.FileExists(t, filepath.Join(certPath, "key.pem"), "DOCKER_CERT_PATH in $GITHUB_ENV is gone after the step")
	})
}

// TestProvisionExample runs examples/provision/provision.sh as on a new
// Debian server, with every dtls path in a temporary directory, Debian's
// real docker.service (which passes -H fd://) and a stand-in systemctl that
// records what it is asked: the host's dockerd is never restarted.
func TestProvisionExample(t *testing.T) {
	dtlsPath, err := exec.LookPath("dtls")
	require.NoError(t, err, "testscript.Main puts dtls in $PATH")
	dir := t.TempDir()
	stubs, units, etc := filepath.Join(dir, "bin"), filepath.Join(dir, "units"), filepath.Join(dir, "etc")
	for _, d := range []string{stubs, units, etc} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	calls := filepath.Join(dir, "systemctl.calls")
	require.NoError(t, os.WriteFile(filepath.Join(stubs, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755))
	// provision.sh installs docker.io when dockerd is missing: a stand-in
	// keeps it from doing so here, and answers --validate as dockerd 20.10.
	require.NoError(t, os.WriteFile(filepath.Join(stubs, "dockerd"), []byte("#!/bin/sh\necho \"unknown flag: $1\" >&2\nexit 125\n"), 0o755))
	unit, err := os.ReadFile("../daemonconfig/testdata/docker.service.debian")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(units, "docker.service"), unit, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(etc, "daemon.json"), []byte("{\n  \"log-level\": \"warn\"\n}\n"), 0o644))

	cmd := exec.Command("bash", filepath.Join("..", "examples", "provision", "provision.sh"), "docker.example.com", "alice")
	cmd.Env = []string{
		"PATH=" + stubs + ":" + filepath.Dir(dtlsPath) + ":/usr/bin:/bin",
		"HOME=" + dir,
		"DTLS_STATE_DIR=" + filepath.Join(dir, "state"),
		"DTLS_CERTS_DIR=" + filepath.Join(dir, "certs"),
		"DTLS_DAEMON_JSON=" + filepath.Join(etc, "daemon.json"),
		"DTLS_SYSTEMD_DIR=" + units,
		"DTLS_OUT_DIR=" + dir,
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	got, err := os.ReadFile(calls)
	require.NoError(t, err, "systemctl was never called: %s", out)
	assert.Equal(t, "daemon-reload\nrestart docker\n", string(got))
	// --restart with the units elsewhere ($DTLS_SYSTEMD_DIR) runs this
	// host's systemctl: init says so.
	assert.Contains(t, string(out), "dtls: warning: --restart restarts this host's docker (systemctl daemon-reload, systemctl restart docker): systemd does not read --systemd-dir "+units)
	fi, err := os.Stat(filepath.Join(dir, "dtls-alice.tar.gz"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	daemonJSON, err := os.ReadFile(filepath.Join(etc, "daemon.json"))
	require.NoError(t, err)
	assert.Contains(t, string(daemonJSON), `"tlsverify": true`)
	assert.Contains(t, string(daemonJSON), `"fd://"`)
	assert.Contains(t, string(daemonJSON), `"log-level": "warn"`)
	assert.FileExists(t, filepath.Join(units, "docker.service.d", "dtls-tls.conf"))
	cert, err := os.ReadFile(filepath.Join(dir, "certs", "server-cert.pem"))
	require.NoError(t, err)
	c, err := pki.ParseCertificate(cert)
	require.NoError(t, err)
	assert.Empty(t, pki.Missing(c, []string{"docker.example.com", "localhost", "127.0.0.1"}))
	assert.Contains(t, string(out), "PASS") // the audit ran
}

// TestAuthzWorkspacesExample: examples/authz/workspaces.sh makes
// workspaces the plugin mounts (a nosuid,nodev mount, root's parents),
// and examples/authz/authz-policy.json parses; 'dtls authz explain'
// judges the workspace on this host as the plugin would.
func TestAuthzWorkspacesExample(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: the example mounts")
		}
		t.Skip("needs root: the example mounts")
	}
	base := filepath.Join(t.TempDir(), "work")
	fstab := filepath.Join(t.TempDir(), "fstab")
	cmd := exec.Command("bash", filepath.Join("..", "examples", "authz", "workspaces.sh"), "alice")
	cmd.Env = append(os.Environ(), "DTLS_WORK="+base, "DTLS_FSTAB="+fstab)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "workspace "+filepath.Join(base, "alice"))
	b, err := os.ReadFile(fstab)
	require.NoError(t, err)
	assert.Equal(t, base+" "+base+" none bind,nosuid,nodev 0 0\n", string(b))

	_, err = authz.LoadPolicy(filepath.Join("..", "examples", "authz", "authz-policy.json"))
	require.NoError(t, err)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(fmt.Sprintf(`{"bind_roots": [%q]}`, filepath.Join(base, "{user}"))), 0o644))
	for user, allow := range map[string]bool{"alice": true, "bob": false} {
		body := filepath.Join(dir, user+".json")
		require.NoError(t, os.WriteFile(body, []byte(fmt.Sprintf(`{"Image":"alpine","HostConfig":{"Binds":[%q]}}`, filepath.Join(base, user)+":/work")), 0o644))
		stdout, stderr, code := dtls(t, time.Now(), "authz", "explain", user, "POST", "/v1.41/containers/create", "--body", body,
			"--role", "developer", "--policy", policy)
		if allow {
			assert.Equal(t, 0, code, "%s%s", stdout, stderr)
			assert.Contains(t, stdout, "allow")
		} else {
			assert.Contains(t, stdout+stderr, "cannot be mounted", "bob has no workspace")
		}
	}
}
