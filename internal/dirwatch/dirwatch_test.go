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

	// The directory renamed away and another put at its path: the watch
	// was of the first, so every answer is yes from then on.
	require.NoError(t, os.Rename(dir, dir+".old"))
	require.NoError(t, os.Mkdir(dir, 0o700))
	assert.True(t, w.Changed(), "the directory renamed")
	assert.True(t, w.Changed(), "and stays so")
	require.NoError(t, os.RemoveAll(dir+".old"))
}

// TestEntries: a writer of the file does not hear its writes, only the
// name given to another file or taken away.
func TestEntries(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "authz.log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	w := Entries(dir, "authz.log")
	defer w.Close()
	_, err = f.Write([]byte("line\n"))
	require.NoError(t, err)
	require.NoError(t, f.Chmod(0o400))
	assert.False(t, w.Changed(), "its own writes")
	require.NoError(t, os.Rename(log, log+".1"))
	assert.True(t, w.Changed(), "renamed away")
	require.NoError(t, os.WriteFile(log, nil, 0o600))
	assert.True(t, w.Changed(), "another file at its name")
	require.NoError(t, os.Remove(log))
	assert.True(t, w.Changed(), "removed")
	assert.False(t, w.Changed())
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
	assert.True(t, w.Changed())
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
