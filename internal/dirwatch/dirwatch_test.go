//go:build linux

package dirwatch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChanged: each kind of change to a watched entry is reported once,
// to the next question after the call that made it returned; changes to
// other entries are not; the directory's own removal is.
func TestChanged(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "inventory.db")
	require.NoError(t, os.WriteFile(db, []byte("a"), 0o600))
	w := Contents(dir, "inventory.db", "inventory.db-wal")
	defer w.Close()
	assert.False(t, w.Changed(), "nothing yet")

	other := filepath.Join(dir, "inventory.db-shm")
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o600))
	assert.False(t, w.Changed(), "another entry")

	steps := []struct {
		name string
		do   func() error
	}{
		{"write", func() error {
			f, err := os.OpenFile(db, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("b")); err != nil {
				return err
			}
			return f.Close()
		}},
		{"create the second", func() error { return os.WriteFile(db+"-wal", nil, 0o600) }},
		{"chmod", func() error { return os.Chmod(db, 0o400) }},
		{"rename over", func() error { return os.Rename(other, db) }},
		{"remove", func() error { return os.Remove(db) }},
		{"rename away", func() error { return os.Rename(db+"-wal", filepath.Join(dir, "moved")) }},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		assert.True(t, w.Changed(), s.name)
		assert.False(t, w.Changed(), "%s: reported once", s.name)
	}

	// The directory renamed away and another put at its path: the one
	// the path reaches now is watched.
	require.NoError(t, os.Rename(dir, dir+".old"))
	require.NoError(t, os.Mkdir(dir, 0o700))
	assert.True(t, w.Changed(), "the directory renamed")
	assert.False(t, w.Changed())
	require.NoError(t, os.WriteFile(db, nil, 0o600))
	assert.True(t, w.Changed(), "a file in the new directory")
	require.NoError(t, os.WriteFile(filepath.Join(dir+".old", "inventory.db"), nil, 0o600))
	assert.False(t, w.Changed(), "the old directory is no longer the path's")
	require.NoError(t, os.RemoveAll(dir+".old"))
}

// TestPathResolved: the path is followed as the kernel resolves it, and
// a change anywhere along it (a symbolic link switched, a directory
// above renamed) is heard: the files the path names are then others.
func TestPathResolved(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/state", "b/state", "c/state"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o700))
	}
	// root/link -> a; the state directory is root/link/state.
	link := filepath.Join(root, "link")
	require.NoError(t, os.Symlink("a", link))
	w := Contents(filepath.Join(link, "state"), "inventory.db")
	defer w.Close()
	assert.False(t, w.Changed())
	require.NoError(t, os.WriteFile(filepath.Join(root, "a/state/inventory.db"), nil, 0o600))
	assert.True(t, w.Changed(), "a file through the link")

	// The link switched to b (a new link renamed over it, as an
	// atomic switch is made).
	require.NoError(t, os.Symlink("b", link+".tmp"))
	require.NoError(t, os.Rename(link+".tmp", link))
	assert.True(t, w.Changed(), "the link switched")
	assert.False(t, w.Changed())
	require.NoError(t, os.WriteFile(filepath.Join(root, "b/state/inventory.db"), nil, 0o600))
	assert.True(t, w.Changed(), "a file where the link points now")
	require.NoError(t, os.WriteFile(filepath.Join(root, "a/state/inventory.db"), []byte("x"), 0o600))
	assert.False(t, w.Changed(), "where it pointed before")

	// A directory above renamed and another put at its name.
	require.NoError(t, os.Rename(filepath.Join(root, "b"), filepath.Join(root, "b.old")))
	require.NoError(t, os.Rename(filepath.Join(root, "c"), filepath.Join(root, "b")))
	assert.True(t, w.Changed(), "a directory above replaced")
	assert.False(t, w.Changed())
	require.NoError(t, os.WriteFile(filepath.Join(root, "b/state/inventory.db"), nil, 0o600))
	assert.True(t, w.Changed(), "a file in the directory reached now")
}

// TestDirectoryRemoved: the directory removed, every answer is yes.
func TestDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o700))
	w := Entries(dir, "x")
	defer w.Close()
	assert.False(t, w.Changed())
	require.NoError(t, os.Remove(dir))
	assert.True(t, w.Changed())
	assert.True(t, w.Changed(), "no directory to watch: every answer is yes")
}

// TestWithoutWatch: a directory that cannot be watched, and a closed or
// nil Watch, always say yes.
func TestWithoutWatch(t *testing.T) {
	w := Contents(filepath.Join(t.TempDir(), "missing"), "x")
	assert.True(t, w.Changed())
	assert.True(t, w.Changed())
	w = Contents(t.TempDir(), "x")
	require.NoError(t, w.Close())
	assert.True(t, w.Changed())
	var nw *Watch
	assert.True(t, nw.Changed())
}

// BenchmarkChanged is the question with nothing queued, against the
// stat(2) of a path it replaces, in the same run.
func BenchmarkChanged(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "inventory.db")
	require.NoError(b, os.WriteFile(path, nil, 0o600))
	b.Run("dirwatch", func(b *testing.B) {
		w := Contents(dir, "inventory.db")
		defer w.Close()
		for b.Loop() {
			if w.Changed() {
				b.Fatal("changed")
			}
		}
	})
	b.Run("stat", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.Stat(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}
