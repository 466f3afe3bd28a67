package authority

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/pki"
)

// replacedStateDir makes a state directory at h.state with alice's
// certificate, has a LazyReader follow it at path (alice accepted), and
// returns it with alice's certificate and a copy of the directory, at
// other, where alice is revoked: what the test then puts at path.
func replacedStateDir(t *testing.T, h *host, path string) (l *LazyReader, alice *x509.Certificate, other string) {
	t.Helper()
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	issued, err := a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(out, n) },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	a.Close()
	alice, err = issued[0].Record.Cert()
	require.NoError(t, err)
	other = filepath.Join(t.TempDir(), "other")
	require.NoError(t, fixture.CopyTree(h.state, other))
	if path != h.state {
		require.NoError(t, os.Symlink(h.state, path))
	}
	b, err := Open(other, Options{})
	require.NoError(t, err)
	_, err = b.Revoke("alice", 0, time.Now())
	require.NoError(t, err)
	b.Close()

	l = NewLazyReader(path)
	t.Cleanup(func() { l.Close() })
	_, _, err = l.Identify(alice)
	require.NoError(t, err)
	return l, alice, other
}

// TestRedteamStateDirSymlinkSwapped: the state directory is a symlink
// that a deployment points at another directory (ln -sfn: a rename of a
// new symlink over it, in the symlink's parent). The inventory's watch,
// set on the directory the symlink named then, hears nothing; the next
// Identify must still answer from the inventory now at the path.
func TestRedteamStateDirSymlinkSwapped(t *testing.T) {
	h := newHost(t)
	link := h.state
	h.state = filepath.Join(h.root, "v1")
	l, alice, other := replacedStateDir(t, h, link)
	tmp := link + ".new"
	require.NoError(t, os.Symlink(other, tmp))
	require.NoError(t, os.Rename(tmp, link))
	_, _, err := l.Identify(alice)
	require.Error(t, err, "the revocation in the inventory now at %s is not seen", link)
	assert.Contains(t, err.Error(), "is revoked")
}

// TestRedteamStateDirParentReplaced: the directory above the state
// directory is moved aside and another (a restored backup) put in its
// place: the watched directory itself was neither moved nor removed.
func TestRedteamStateDirParentReplaced(t *testing.T) {
	h := newHost(t)
	parent := filepath.Join(h.root, "var")
	h.state = filepath.Join(parent, "state")
	require.NoError(t, os.Mkdir(parent, 0o755))
	l, alice, other := replacedStateDir(t, h, h.state)
	restored := filepath.Join(h.root, "var.restored")
	require.NoError(t, os.Mkdir(restored, 0o755))
	require.NoError(t, os.Rename(other, filepath.Join(restored, "state")))
	require.NoError(t, os.Rename(parent, filepath.Join(h.root, "var.old")))
	require.NoError(t, os.Rename(restored, parent))
	_, _, err := l.Identify(alice)
	require.Error(t, err, "the revocation in the restored inventory is not seen")
	assert.Contains(t, err.Error(), "is revoked")
}

// TestRedteamStateDirBindMounted: another state directory bind-mounted
// over the state directory (a mount makes no inotify event in the
// directory under it).
func TestRedteamStateDirBindMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root for a bind mount")
		}
		t.Skip("needs root for a bind mount")
	}
	h := newHost(t)
	l, alice, other := replacedStateDir(t, h, h.state)
	require.NoError(t, syscall.Mount(other, h.state, "", syscall.MS_BIND, ""))
	t.Cleanup(func() { assert.NoError(t, syscall.Unmount(h.state, syscall.MNT_DETACH)) })
	_, _, err := l.Identify(alice)
	require.Error(t, err, "the revocation in the inventory mounted over the state directory is not seen")
	assert.Contains(t, err.Error(), "is revoked")
}
