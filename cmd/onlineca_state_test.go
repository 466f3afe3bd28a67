package cmd

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// treeOf lists every file under dir with its mode, size and modification
// time: what a refused command must leave as it found it.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprint(fi.Mode(), " ", fi.ModTime().UnixNano(), " ", fi.Size())
		return nil
	}))
	return out
}

// TestLocalCommandsRefuseOnlineCAStateDir: the local CA's commands pointed
// at an online CA's state directory ('dtls ca init') refuse, name the
// operator bundle to use instead, and write nothing there (no second
// inventory, no lock file, no certificate signed with the fleet CA's key).
func TestLocalCommandsRefuseOnlineCAStateDir(t *testing.T) {
	dir := t.TempDir()
	state, units := filepath.Join(dir, "ca"), filepath.Join(dir, "units")
	require.NoError(t, os.Mkdir(units, 0o755))
	now := time.Now()
	_, stderr, code := dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", units,
		"--host", "127.0.0.1", "--listen", "127.0.0.1:8888")
	require.Equal(t, 0, code, stderr)
	before := treeOf(t, state)
	out := filepath.Join(dir, "bundles")

	for _, args := range [][]string{
		{"certs"},
		{"revoke", "alice"},
		{"issue-client", "alice", "--out", filepath.Join(out, "alice"), "--docker-host", "tcp://127.0.0.1:2376"},
		{"renew", "alice"},
		{"renew", "--server"},
		{"crl"},
		{"rotate-ca"},
		{"rotate-ca", "--status"},
		{"issue-server", "web.example", "--out", filepath.Join(out, "web")},
		{"role", "alice", "admin"},
	} {
		t.Run(args[0], func(t *testing.T) {
			stdout, stderr, code := dtls(t, now, append(args, "--state-dir", state)...)
			assert.Equal(t, 1, code, stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, `dtls: error: "`+state+`" is an online CA's state directory (it has ca.json)`)
			assert.Contains(t, stderr, "--operator "+filepath.Join(state, "operator"))
			assert.Equal(t, before, treeOf(t, state), "the state directory is unchanged")
			assert.NoFileExists(t, filepath.Join(state, "dtls.db"))
			assert.NoFileExists(t, filepath.Join(state, "dtls.lock"))
			assert.NoDirExists(t, out)
		})
	}
}
