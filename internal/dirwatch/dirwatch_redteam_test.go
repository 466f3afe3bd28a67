//go:build linux

package dirwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedteamPathLeadsElsewhere: the path to the watched directory made
// to lead to another directory without the directory itself being
// touched (a symlink on the path replaced, ln -sfn; a directory above it
// moved aside and another put in its place; a bind mount over it): the
// next question says yes, and every one after (the watch is of a
// directory no longer at the path).
func TestRedteamPathLeadsElsewhere(t *testing.T) {
	for _, c := range []struct {
		name string
		root bool
		// path makes the directory at root/.../state and returns its
		// path; swap then puts another at that path.
		path, swap func(root string) error
	}{
		{"symlink replaced", false,
			func(root string) error {
				if err := os.MkdirAll(filepath.Join(root, "v1", "state"), 0o700); err != nil {
					return err
				}
				return os.Symlink("v1", filepath.Join(root, "cur"))
			},
			func(root string) error {
				if err := os.MkdirAll(filepath.Join(root, "v2", "state"), 0o700); err != nil {
					return err
				}
				if err := os.Symlink("v2", filepath.Join(root, "cur.new")); err != nil {
					return err
				}
				return os.Rename(filepath.Join(root, "cur.new"), filepath.Join(root, "cur"))
			}},
		{"parent replaced", false,
			func(root string) error { return os.MkdirAll(filepath.Join(root, "cur", "state"), 0o700) },
			func(root string) error {
				if err := os.MkdirAll(filepath.Join(root, "restored", "state"), 0o700); err != nil {
					return err
				}
				if err := os.Rename(filepath.Join(root, "cur"), filepath.Join(root, "old")); err != nil {
					return err
				}
				return os.Rename(filepath.Join(root, "restored"), filepath.Join(root, "cur"))
			}},
		{"bind mount", true,
			func(root string) error { return os.MkdirAll(filepath.Join(root, "cur", "state"), 0o700) },
			func(root string) error {
				if err := os.MkdirAll(filepath.Join(root, "other"), 0o700); err != nil {
					return err
				}
				return syscall.Mount(filepath.Join(root, "other"), filepath.Join(root, "cur", "state"), "", syscall.MS_BIND, "")
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				if os.Getenv("CI") != "" {
					t.Fatal("needs root for a bind mount")
				}
				t.Skip("needs root for a bind mount")
			}
			root := t.TempDir()
			require.NoError(t, c.path(root))
			dir := filepath.Join(root, "cur", "state")
			w := Contents(dir, "inventory.db")
			defer w.Close()
			assert.False(t, w.Changed())
			require.NoError(t, os.WriteFile(filepath.Join(root, "cur", "unrelated"), nil, 0o600))
			assert.False(t, w.Changed(), "another entry above")
			require.NoError(t, c.swap(root))
			if c.root {
				t.Cleanup(func() { assert.NoError(t, syscall.Unmount(dir, syscall.MNT_DETACH)) })
			}
			assert.True(t, w.Changed(), "the path leads to another directory")
			// A change in the directory now at the path is heard.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "inventory.db"), nil, 0o600))
			assert.True(t, w.Changed(), "a file made in the directory now at the path")
		})
	}
}

// TestRedteamMountElsewhere: a mount that does not touch the path (a
// container's, on a docker host) is no change, and the watch goes on
// hearing its directory.
func TestRedteamMountElsewhere(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root for a bind mount")
		}
		t.Skip("needs root for a bind mount")
	}
	dir, elsewhere := t.TempDir(), t.TempDir()
	w := Contents(dir, "inventory.db")
	defer w.Close()
	require.NoError(t, syscall.Mount(t.TempDir(), elsewhere, "", syscall.MS_BIND, ""))
	require.NoError(t, syscall.Unmount(elsewhere, syscall.MNT_DETACH))
	assert.False(t, w.Changed(), "a mount elsewhere")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inventory.db"), nil, 0o600))
	assert.True(t, w.Changed(), "still heard")
}

// TestRedteamOverflow: more events than the queue holds (16384 by
// default, fs.inotify.max_queued_events) are a yes (IN_Q_OVERFLOW), and
// the watch still hears the next change.
func TestRedteamOverflow(t *testing.T) {
	dir := t.TempDir()
	w := Contents(dir, "inventory.db")
	defer w.Close()
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	require.NoError(t, err)
	var max int
	_, err = fmt.Sscan(string(b), &max)
	require.NoError(t, err)
	// Two files written in turn: inotify merges an event only with the
	// one queued just before it.
	var fs [2]*os.File
	for i := range fs {
		fs[i], err = os.Create(filepath.Join(dir, fmt.Sprint("other", i)))
		require.NoError(t, err)
		defer fs[i].Close()
	}
	for i := range max + 10 {
		_, err := fs[i%2].Write([]byte("x"))
		require.NoError(t, err)
	}
	assert.True(t, w.Changed(), "an overflow is a yes")
	assert.False(t, w.Changed())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "inventory.db"), nil, 0o600))
	assert.True(t, w.Changed(), "heard after the overflow")
}
