package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// TestNewState: a state directory built whole from a change planned for
// its place: the CA's files with their modes, a file outside it written
// where it is, the inventory inside it recorded, a leftover of a killed
// run removed and nothing else left next to it. An existing one is
// refused without Force, and with Force unless it holds the marker.
func TestNewState(t *testing.T) {
	parent := t.TempDir()
	dir, units := filepath.Join(parent, "state"), filepath.Join(parent, "units")
	killed := filepath.Join(parent, ".state.tmp-1")
	require.NoError(t, os.Mkdir(killed, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(killed, CAKeyFile), []byte("half"), 0o400))

	build := func(force bool) error {
		ns := &NewState{Dir: dir, Force: force, Marker: "marker", Kind: "a test's", Recorder: "the test"}
		if err := ns.Begin(); err != nil {
			return err
		}
		defer ns.Abort()
		ca, err := pki.NewCA(pki.CARequest{CommonName: "state test CA", Now: time.Now()})
		require.NoError(t, err)
		tx := NewTxn("test-init")
		PlanCA(tx, dir, ca, ca.KeyPEM, 0o644)
		tx.Write(filepath.Join(dir, "marker"), []byte("{}\n"), 0o600)
		tx.Mkdir(units, 0o755)
		tx.Write(filepath.Join(units, "test.service"), []byte("[Unit]\n"), 0o644)
		open := func(tmp string) (*store.Store, error) { return store.Open(filepath.Join(tmp, "test.db")) }
		return ns.Commit(tx, open, false)
	}
	require.NoError(t, build(false))
	mode := func(p string) fs.FileMode {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		return fi.Mode().Perm()
	}
	assert.Equal(t, StateDirMode, mode(dir))
	assert.Equal(t, CAKeyMode, mode(filepath.Join(dir, CAKeyFile)))
	assert.Equal(t, fs.FileMode(0o644), mode(filepath.Join(dir, CACertFile)))
	assert.Equal(t, fs.FileMode(0o644), mode(filepath.Join(units, "test.service")))
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"state", "units"}, names)
	st, err := store.Open(filepath.Join(dir, "test.db"))
	require.NoError(t, err)
	cas, err := st.ByKind(store.KindCA)
	st.Close()
	require.NoError(t, err)
	require.Len(t, cas, 1)
	assert.Equal(t, dir, cas[0].Path)

	assert.ErrorIs(t, build(false), ErrStateExists)
	require.NoError(t, build(true))
	require.NoError(t, os.Remove(filepath.Join(dir, "marker")))
	assert.EqualError(t, build(true), `refusing to replace "`+dir+`": it has no marker, so it is not a test's state directory`)
}
