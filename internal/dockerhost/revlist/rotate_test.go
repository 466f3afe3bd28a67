package revlist

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

// TestRotateTwoCAs: during a rotation of the online CA the host trusts
// both CAs: a list signed by the second is accepted after one of the
// first when its number is higher (and refused when lower), it speaks for
// the serials of both CAs, and a client certificate of either CA is
// identified.
func TestRotateTwoCAs(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	next, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Minute), CommonName: "fleet CA 2"})
	require.NoError(t, err)
	f, err := New(Config{URL: e.srv.srv.URL, CAs: []*x509.Certificate{e.ca.Cert, next.Cert}, Now: e.clock.Now})
	require.NoError(t, err)
	ctx := context.Background()
	alice := client(t, e.ca, "alice", "developer", now)
	bob := client(t, next, "bob", "readonly", now)
	carol := client(t, next, "carol", "admin", now)
	require.NoError(t, f.Refresh(ctx))
	assert.True(t, f.Issued(bob))
	user, role, err := f.Identify(bob)
	require.NoError(t, err, "a certificate of the second CA, with a list of the first")
	assert.Equal(t, []string{"bob", "readonly"}, []string{user, role})

	// The second CA signs from now on: a list of it that names a
	// certificate of each CA.
	e.srv.publish(signCRL(t, next, 101, now, revoked(alice, now, 1), revoked(carol, now, 4)))
	require.NoError(t, f.Refresh(ctx))
	assert.Equal(t, "fleet CA 2", f.Status().Issuer)
	_, _, err = f.Identify(alice)
	assert.ErrorContains(t, err, "is revoked on the CA")
	_, _, err = f.Identify(carol)
	assert.ErrorContains(t, err, "was replaced by a renewal")
	_, _, err = f.Identify(bob)
	require.NoError(t, err)

	// An older list of the first CA is a rollback, across CAs too.
	e.srv.publish(signCRL(t, e.ca, 100, now))
	assert.ErrorContains(t, f.Refresh(ctx), "is lower than 101")
	_, _, err = f.Identify(alice)
	assert.Error(t, err)
}

// TestCAFileReload: the Follower reads its CA file again when it changes:
// a certificate and a list of a CA added to the file (a renewal during a
// rotation) are accepted at the next Refresh, without a new Follower.
func TestCAFileReload(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, e.ca.CertPEM, 0o644))
	f, err := New(Config{URL: e.srv.srv.URL, CAs: []*x509.Certificate{e.ca.Cert}, CAFile: caFile, Now: e.clock.Now, Logf: e.log.Logf})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, f.Refresh(ctx))

	next, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Minute), CommonName: "fleet CA 2"})
	require.NoError(t, err)
	bob := client(t, next, "bob", "readonly", now)
	assert.False(t, f.Issued(bob))
	_, _, err = f.Identify(bob)
	assert.Error(t, err)

	// Both CAs, as 'dtls renew --server' writes them during a rotation.
	both := append(append([]byte{}, e.ca.CertPEM...), next.CertPEM...)
	require.NoError(t, os.WriteFile(caFile, both, 0o644))
	e.srv.publish(signCRL(t, next, 101, now))
	require.NoError(t, f.Refresh(ctx))
	assert.Len(t, f.CAs(), 2)
	user, _, err := f.Identify(bob)
	require.NoError(t, err)
	assert.Equal(t, "bob", user)
	assert.Len(t, e.log.matching("changed: following"), 1, e.log.lines)

	// A file without a certificate keeps the CAs in use.
	require.NoError(t, os.WriteFile(caFile, []byte("not PEM"), 0o644))
	require.NoError(t, f.Refresh(ctx))
	assert.Len(t, f.CAs(), 2)
	assert.Len(t, e.log.matching("hold no certificate"), 1, e.log.lines)
}
