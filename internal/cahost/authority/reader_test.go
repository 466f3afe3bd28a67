package authority

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

func readCert(t *testing.T, p string) *pki.CA {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	c, err := pki.ParseCertificate(b)
	require.NoError(t, err)
	return &pki.CA{Cert: c}
}

// TestReaderIdentify: the reader accepts a good client certificate with its
// role, and refuses, saying why, a revoked one, a superseded one, one of
// another CA, and the server's certificate; it sees each change as soon as
// the command that made it returns, while that command holds the lock.
func TestReaderIdentify(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	dir := func(n string) string { return filepath.Join(out, n) }
	_, err := a.IssueClients(ClientRequest{Names: []string{"alice", "bob"}, Dir: dir, DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Role: "developer", Now: time.Now()})
	require.NoError(t, err)

	r, err := OpenReader(h.state)
	require.NoError(t, err)
	defer r.Close()
	alice := readCert(t, filepath.Join(out, "alice", ClientCertFile)).Cert
	bob := readCert(t, filepath.Join(out, "bob", ClientCertFile)).Cert
	user, role, err := r.Identify(alice)
	require.NoError(t, err)
	assert.Equal(t, "alice", user)
	assert.Equal(t, "developer", role)

	_, err = a.SetRole("alice", "readonly", time.Now())
	require.NoError(t, err)
	_, role, err = r.Identify(alice)
	require.NoError(t, err)
	assert.Equal(t, "readonly", role, "a role change is seen without a restart")
	_, err = a.SetRole("nobody", "admin", time.Now())
	assert.ErrorIs(t, err, ErrNoSuchClient)
	_, err = a.SetRole("alice", "Not A Role", time.Now())
	assert.Error(t, err)

	_, err = a.Revoke("bob", 0, time.Now())
	require.NoError(t, err)
	_, _, err = r.Identify(bob)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"bob"`)
	assert.Contains(t, err.Error(), "is revoked")

	_, err = a.Renew(RenewRequest{Name: "alice", Now: time.Now()})
	require.NoError(t, err)
	_, _, err = r.Identify(alice)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "superseded")
	renewed := readCert(t, filepath.Join(out, "alice", ClientCertFile)).Cert
	_, role, err = r.Identify(renewed)
	require.NoError(t, err)
	assert.Equal(t, "readonly", role, "a renewal keeps the role")

	server := readCert(t, filepath.Join(h.certs, ServerCertFile)).Cert
	_, _, err = r.Identify(server)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a client certificate")

	// Another CA's certificate, with the serial of alice's renewed one.
	other, err := pki.NewCA(pki.CARequest{CommonName: "other", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	forged, err := other.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	_, _, err = r.Identify(forged.Cert)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not in the inventory")
	forged.Cert.SerialNumber = renewed.SerialNumber
	_, _, err = r.Identify(forged.Cert)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not the one the inventory holds")
}

// TestLazyReader: before the inventory exists every certificate is refused
// with the reason; once 'init' has made it, the same reader follows it
// without being reopened by its user.
func TestLazyReader(t *testing.T) {
	h := newHost(t)
	l := NewLazyReader(h.state)
	defer l.Close()
	other, err := pki.NewCA(pki.CARequest{CommonName: "x", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	c, err := other.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	_, _, err = l.Identify(c.Cert)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the inventory cannot be read")

	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	issued, err := a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(out, n) },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Role: "developer", Now: time.Now()})
	require.NoError(t, err)
	cert, err := issued[0].Record.Cert()
	require.NoError(t, err)
	l.tried = time.Time{} // the retry interval has passed
	user, role, err := l.Identify(cert)
	require.NoError(t, err)
	assert.Equal(t, "alice", user)
	assert.Equal(t, "developer", role)
}

// TestLazyReaderFollowsReplacedFile: a Reader notices that the file it
// opened is no longer the inventory (ErrReplaced); a LazyReader then opens
// the new one at once, so a revocation made there is seen at the next
// call, and while there is none every certificate is refused.
func TestLazyReaderFollowsReplacedFile(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	issued, err := a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(out, n) },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	a.Close()
	alice, err := issued[0].Record.Cert()
	require.NoError(t, err)

	l := NewLazyReader(h.state)
	defer l.Close()
	r, err := OpenReader(h.state)
	require.NoError(t, err)
	defer r.Close()
	_, _, err = l.Identify(alice)
	require.NoError(t, err)
	_, _, err = r.Identify(alice)
	require.NoError(t, err)

	// Moved aside with its -wal and -shm, and a copy put in its place.
	db := filepath.Join(h.state, DBFile)
	aside := t.TempDir()
	for _, f := range []string{DBFile, DBFile + "-wal", DBFile + "-shm"} {
		if err := os.Rename(filepath.Join(h.state, f), filepath.Join(aside, f)); err != nil {
			require.ErrorIs(t, err, os.ErrNotExist)
		}
	}
	b, err := os.ReadFile(filepath.Join(aside, DBFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(db, b, 0o600))
	_, _, err = r.Identify(alice)
	assert.ErrorIs(t, err, ErrReplaced)

	a = h.open(t, Options{})
	_, err = a.Revoke("alice", 0, time.Now())
	require.NoError(t, err)
	_, _, err = l.Identify(alice)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is revoked")

	// Removed: refused, saying why.
	a.Close()
	for _, f := range []string{DBFile, DBFile + "-wal", DBFile + "-shm"} {
		require.NoError(t, os.RemoveAll(filepath.Join(h.state, f)))
	}
	_, _, err = l.Identify(alice)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the inventory cannot be read")
}
