package cmd

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// dtlsAsNobody runs dtls (a copy of this test binary named dtls, which
// testscript.Main runs as dtls's Main) as uid and gid 65534 without
// supplementary groups, through setpriv, with env as its environment. dir
// must be a directory nobody can traverse; the copy goes there. It returns
// stdout, stderr and the exit code.
func dtlsAsNobody(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("setpriv (util-linux) runs dtls as an unprivileged user: %v", err)
		}
		t.Skipf("setpriv not found: %v", err)
	}
	self, err := os.Executable()
	require.NoError(t, err)
	exe := filepath.Join(dir, "dtls")
	if _, err := os.Stat(exe); err != nil {
		b, err := os.ReadFile(self)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(exe, b, 0o755))
	}
	cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", exe}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, env...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errOut.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// sharedTempDir is a temporary directory others may traverse (0755), for
// dtlsAsNobody.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dtls-shared-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}
