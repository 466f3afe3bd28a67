//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChmodNeverFollowsLinks: a link swapped in for a file root meant to
// chmod leaves the link's target as it was (found by a red team: init's
// mode fix made any file 0444); a FIFO does not block it.
func TestChmodNeverFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("x"), 0o600))
	link := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.Symlink(secret, link))
	assert.Error(t, Chmod(link, 0o444))
	fi, err := os.Stat(secret)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	assert.ErrorContains(t, Chmod(fifo, 0o644), "not a regular file or directory")

	require.NoError(t, Chmod(secret, 0o400))
	fi, err = os.Stat(secret)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o400), fi.Mode().Perm())
	require.NoError(t, Chmod(dir, 0o700))
}
