package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteModeAndContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o666))
	require.NoError(t, os.Chmod(p, 0o666))
	require.NoError(t, Write(p, []byte("new"), 0o400))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "new", string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o400), fi.Mode().Perm(), "the old file's looser mode must not be inherited")
	left, err := filepath.Glob(filepath.Join(filepath.Dir(p), ".key.pem.tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, left)
}

func TestWriteFailureLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "missing", "f")
	assert.Error(t, Write(p, []byte("x"), 0o644))
	assert.NoFileExists(t, p)
}

func TestReplaceDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "bundle")
	mk := func(name, content string) string {
		d, err := os.MkdirTemp(root, ".bundle.tmp-")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(content), 0o600))
		return d
	}
	// Into an empty place.
	require.NoError(t, ReplaceDir(mk("cert.pem", "one"), dir))
	b, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	require.NoError(t, err)
	assert.Equal(t, "one", string(b))
	// Over an existing directory: the new content, and nothing left over.
	require.NoError(t, ReplaceDir(mk("cert.pem", "two"), dir))
	b, err = os.ReadFile(filepath.Join(dir, "cert.pem"))
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1, "temporary or old directories left behind")
	assert.Equal(t, "bundle", entries[0].Name())
	// The swap itself, on Linux where it is supported.
	if runtime.GOOS != "linux" {
		return
	}
	a, c := mk("x", "a"), mk("x", "c")
	require.NoError(t, exchange(a, c))
	b, err = os.ReadFile(filepath.Join(a, "x"))
	require.NoError(t, err)
	assert.Equal(t, "c", string(b))
}
