package revlist

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// TestWithTheOnlineCA: a host follows a real online CA (caserver). A
// client enrolled with a token is accepted with the role the token gave;
// revoked through the CA's API it is refused after one fetch; its
// renewed-away predecessor is refused as replaced; a revocation another
// process wrote into the CA's inventory reaches the host within the CA's
// cache time.
func TestWithTheOnlineCA(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ctx := context.Background()
	f, err := New(Config{URL: ca.URL, CAs: []*x509.Certificate{ca.CACert}, CacheDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, f.Refresh(ctx))

	enrol := func(name, role string) (*x509.Certificate, tls.Certificate) {
		t.Helper()
		tok, err := fleet.ParseToken(ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: name, Role: role}))
		require.NoError(t, err)
		csr, key, err := pki.NewCSR(name, "")
		require.NoError(t, err)
		resp, err := (&fleet.Client{URL: ca.URL}).Enroll(ctx, tok, csr)
		require.NoError(t, err)
		pair, err := tls.X509KeyPair([]byte(resp.Certificate), key)
		require.NoError(t, err)
		cert, err := pki.ParseCertificate([]byte(resp.Certificate))
		require.NoError(t, err)
		return cert, pair
	}
	alice, _ := enrol("alice", "developer")
	bob, bobPair := enrol("bob", "readonly")
	carol, _ := enrol("carol", "admin")
	for _, c := range []struct {
		cert       *x509.Certificate
		user, role string
	}{{alice, "alice", "developer"}, {bob, "bob", "readonly"}, {carol, "carol", "admin"}} {
		user, role, err := f.Identify(c.cert)
		require.NoError(t, err)
		assert.Equal(t, []string{c.user, c.role}, []string{user, role})
	}

	// Revoked through the CA's API: in the next list.
	opCert, opKey := ca.Operator(t)
	pair, err := tls.X509KeyPair(opCert, opKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert)
	op := &fleet.Client{URL: ca.URL, Roots: roots, Certificate: &pair}
	_, err = op.Revoke(ctx, fleet.RevokeRequest{Key: "alice", Reason: 1})
	require.NoError(t, err)
	require.NoError(t, f.Refresh(ctx))
	_, _, err = f.Identify(alice)
	assert.ErrorContains(t, err, "certificate "+pki.Serial(alice)+" of \"alice\" is revoked on the CA")

	// Renewed: the old certificate is superseded.
	csr, _, err := pki.NewCSR("bob", "")
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: ca.URL, Roots: roots, Certificate: &bobPair}).Renew(ctx, csr)
	require.NoError(t, err)
	require.NoError(t, f.Refresh(ctx))
	_, _, err = f.Identify(bob)
	assert.ErrorContains(t, err, "certificate "+pki.Serial(bob)+" of \"bob\" was replaced by a renewal")

	// Revoked by another process: the CA reads its inventory again
	// within caserver.CRLMaxAge.
	require.NoError(t, ca.Store.Apply(store.Change{Revoke: []store.Revocation{{Serial: pki.Serial(carol), Reason: 1, At: time.Now()}}}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		require.NoError(t, f.Refresh(ctx))
		_, _, err = f.Identify(carol)
		if err != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "carol's revocation not in the list after 10 s")
		time.Sleep(100 * time.Millisecond)
	}
	assert.ErrorContains(t, err, "certificate "+pki.Serial(carol)+" of \"carol\" is revoked on the CA")
}

// TestCRLNumberAcrossRestart: the online CA restarted with its clock
// four minutes behind (within the CA's five-minute backdate) (the same CA and inventory, a new process) signs
// its next list with a number above the last one it served, and a host
// that enforces that last list accepts the new one. With the number
// taken from the clock alone, the host would refuse every list of the
// restarted CA as an older one served again.
func TestCRLNumberAcrossRestart(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ctx := context.Background()
	cache := t.TempDir()
	f, err := New(Config{URL: ca.URL, CAs: []*x509.Certificate{ca.CACert}, CacheDir: cache})
	require.NoError(t, err)
	require.NoError(t, f.Refresh(ctx))
	before, ok := new(big.Int).SetString(f.Status().Number, 10)
	require.True(t, ok, f.Status().Number)

	behind := func() time.Time { return time.Now().Add(-4 * time.Minute) }
	again := catest.Start(t, catest.Options{CA: ca.PKI, DBPath: ca.DBPath, Now: behind})
	// A host that restarted too: the list in force is the cached one.
	g, err := New(Config{URL: again.URL, CAs: []*x509.Certificate{ca.CACert}, CacheDir: cache})
	require.NoError(t, err)
	g.LoadCache()
	require.Equal(t, before.String(), g.Status().Number)
	require.NoError(t, g.Refresh(ctx), "the restarted CA's list is accepted")
	after, ok := new(big.Int).SetString(g.Status().Number, 10)
	require.True(t, ok)
	assert.Equal(t, 1, after.Cmp(before), "number %s after %s", after, before)
}
