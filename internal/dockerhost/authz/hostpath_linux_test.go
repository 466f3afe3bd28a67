package authz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestBindRootOnTheHost: a bind root is mounted only when it exists, its
// ancestors are root's and no one else may write them (a sticky
// directory only above a root-owned entry), and its file system is
// nosuid,nodev. Real directories and a real tmpfs (as root).
func TestBindRootOnTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: this test needs it to mount a tmpfs and change owners")
		}
		t.Skip("needs root: mounts a tmpfs and changes owners")
	}
	base, err := os.MkdirTemp("", "dtls-roots-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	safe := filepath.Join(base, "safe")
	require.NoError(t, os.Mkdir(safe, 0o755))
	require.NoError(t, unix.Mount("tmpfs", safe, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"))
	t.Cleanup(func() { _ = unix.Unmount(safe, unix.MNT_DETACH) })
	mk := func(path string, mode os.FileMode, uid int) string {
		t.Helper()
		require.NoError(t, os.MkdirAll(path, 0o755))
		require.NoError(t, os.Chmod(path, mode))
		require.NoError(t, os.Chown(path, uid, uid))
		return path
	}
	alice := mk(filepath.Join(safe, "work", "alice"), 0o700, 1000)
	mk(filepath.Join(safe, "shared"), 0o777, 0)
	open := mk(filepath.Join(safe, "shared", "bob"), 0o700, 1001)
	mk(filepath.Join(safe, "sticky"), os.ModeSticky|0o777, 0)
	stickyRoot := mk(filepath.Join(safe, "sticky", "carol"), 0o700, 0)
	stickyUser := mk(filepath.Join(safe, "sticky", "dave"), 0o700, 1002)
	mk(filepath.Join(safe, "erin-home"), 0o755, 1003)
	erin := mk(filepath.Join(safe, "erin-home", "ws"), 0o700, 1003)
	plain := mk(filepath.Join(base, "plain"), 0o700, 1000)
	require.NoError(t, os.Symlink(alice, filepath.Join(safe, "link")))

	for _, c := range []struct {
		root, want string
	}{
		{alice, ""},
		{stickyRoot, ""},
		{filepath.Join(safe, "link"), ""}, // an admin's link to a safe root: judged where it leads
		{open, "is writable by others (mode -rwxrwxrwx)"},
		{stickyUser, "is not root's"},
		{erin, "belongs to uid 1003, not root"},
		{plain, "is not mounted nosuid,nodev"},
		{filepath.Join(safe, "missing"), "no such file or directory"},
	} {
		got := rootProblem(c.root, resolveHostPath)
		if c.want == "" {
			assert.Empty(t, got, c.root)
		} else {
			assert.Contains(t, got, c.want, c.root)
		}
	}
}
