package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// TestRecover: what both faces do at open. Temporary files of a killed
// run, in the state directory and its journal, are removed (and nothing
// else there); a change whose journal was written is finished, files and
// inventory, and its journal removed.
func TestRecover(t *testing.T) {
	inv := newInventory(t)
	dir := t.TempDir()
	j := StateJournal(dir, inv.st)
	require.NoError(t, os.Mkdir(j.Dir, 0o700))
	temps := []string{filepath.Join(dir, "."+CAKeyFile+".tmp-1"), filepath.Join(j.Dir, ".x.json.tmp-2")}
	for _, p := range temps {
		require.NoError(t, os.WriteFile(p, []byte("half a key"), 0o600))
	}
	other := filepath.Join(dir, "other")
	require.NoError(t, os.WriteFile(other, []byte("kept"), 0o600))

	// The journal of a killed run: written, nothing applied.
	tx := NewTxn("test")
	tx.Write(filepath.Join(dir, "written.pem"), []byte("new"), 0o644)
	tx.DB.Supersede = []string{inv.issue(t, store.KindClient, "bob", inv.now).Serial}
	for _, op := range tx.Ops {
		require.NoError(t, op.capture())
	}
	b, err := json.Marshal(tx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(j.Dir, "test-1.json"), b, RecordMode))

	got, err := Recover(dir, inv.st)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, got[0].Finished)
	for _, p := range temps {
		assert.NoFileExists(t, p)
	}
	assert.FileExists(t, other)
	assertFile(t, filepath.Join(dir, "written.pem"), []byte("new"), 0o644)
	r, err := inv.st.Get(tx.DB.Supersede[0])
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, r.Status)
	left, _ := filepath.Glob(filepath.Join(j.Dir, "*"))
	assert.Empty(t, left)
}
