package caserver_test

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/dockerhost/revlist"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// TestRenewalsBounded: a holder renewing in a loop gets
// caserver.MaxListedRenewals renewals, then 429 "renewed too recently"
// with the time the oldest superseded certificate leaves the list (and
// Retry-After): the list holds at most that many of its certificates.
// Once that one expires, one renewal more. A retry of an answered
// renewal is no new renewal and is answered. A holder on the agent's
// schedule renews through a rotation (steps trust and switch) and after
// it.
func TestRenewalsBounded(t *testing.T) {
	clk := &clock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now})

	// holder enrols name and renews its current certificate.
	type holder struct{ certPEM, key []byte }
	enrolHolder := func(name string) (*holder, *x509.Certificate) {
		c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: name}))
		cr, cert := certOf(t, c)
		return &holder{[]byte(cr.Certificate), key}, cert
	}
	// renewOnce renews h's certificate once, after d.
	renewOnce := func(h *holder, d time.Duration) call {
		t.Helper()
		clk.Add(d)
		csr, newKey, err := pki.NewCSR("ignored", "")
		require.NoError(t, err)
		r, _ := renew(t, ca, h.certPEM, h.key, csr)
		if r.status == http.StatusOK {
			rr, _ := certOf(t, r)
			// The agent's retry with the same key: answered again.
			again, _ := renew(t, ca, h.certPEM, h.key, csr)
			require.Equal(t, http.StatusOK, again.status, again.message())
			h.certPEM, h.key = []byte(rr.Certificate), newKey
		}
		return r
	}
	// listed counts the entries of the revocation list that are
	// certificates of name.
	listed := func(name string) int {
		t.Helper()
		der, err := ca.Server.CRL()
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(der)
		require.NoError(t, err)
		recs, err := ca.Store.ByName(name)
		require.NoError(t, err)
		n := 0
		for _, e := range crl.RevokedCertificateEntries {
			for _, r := range recs {
				if r.Serial == e.SerialNumber.Text(16) {
					n++
				}
			}
		}
		return n
	}

	// Bob, whose last routine renewal's predecessor expired: the two
	// renewals of a rotation and the one after its finish. (First, while the CA's
	// clock is near the real one that TLS checks the listener with.)
	bob, _ := enrolHolder("bob")
	_, err := ca.Server.BeginRotation()
	require.NoError(t, err)
	r := renewOnce(bob, 30*time.Second)
	require.Equal(t, http.StatusOK, r.status, r.message())
	_, err = ca.Server.SwitchRotation(false)
	require.NoError(t, err)
	r = renewOnce(bob, 30*time.Second)
	require.Equal(t, http.StatusOK, r.status, r.message())
	cert, err := pki.ParseCertificate(bob.certPEM)
	require.NoError(t, err)
	cas := ca.Server.CACertificates()
	require.Len(t, cas, 2)
	assert.NoError(t, cert.CheckSignatureFrom(cas[1]), "of the next CA")
	// (The finish would serve a listener's certificate of the next CA,
	// which this test's client does not trust: the renewal after it is
	// made before it, the count is the same.)
	r = renewOnce(bob, 30*time.Second)
	require.Equal(t, http.StatusOK, r.status, r.message())
	assert.Equal(t, http.StatusTooManyRequests, renewOnce(bob, 30*time.Second).status)
	assert.Equal(t, caserver.MaxListedRenewals, listed("bob"))

	alice, first := enrolHolder("alice")
	for i := range caserver.MaxListedRenewals {
		r := renewOnce(alice, 10*time.Minute)
		require.Equal(t, http.StatusOK, r.status, "renewal %d: %s", i+1, r.message())
	}
	current, err := pki.ParseCertificate(alice.certPEM)
	require.NoError(t, err)
	for range 3 {
		r := renewOnce(alice, time.Minute)
		require.Equal(t, http.StatusTooManyRequests, r.status, r.message())
		assert.Equal(t, `client "alice" (serial `+pki.Serial(current)+`) renewed too recently: next renewal allowed after `+
			first.NotAfter.UTC().Format(time.RFC3339)+` (3 superseded certificates of "alice" are still in the revocation list, at most 3)`, r.message())
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
		assert.InDelta(t, first.NotAfter.Sub(clk.Now()).Seconds(), secs, 2)
	}
	assert.Equal(t, caserver.MaxListedRenewals, listed("alice"))
	// The agent takes it for a refusal that passes (it keeps its key
	// and tries again later), not for a revocation.
	assert.True(t, fleet.Retryable(&fleet.Error{Status: http.StatusTooManyRequests}))

	// The first superseded certificate expired: it leaves the list, and
	// one renewal more is allowed.
	clk.Add(first.NotAfter.Sub(clk.Now()) - time.Minute)
	require.Equal(t, http.StatusOK, renewOnce(alice, time.Minute).status)
	require.Equal(t, http.StatusTooManyRequests, renewOnce(alice, time.Minute).status)
	assert.Equal(t, caserver.MaxListedRenewals, listed("alice"))

}

// TestCRLSizeBound: the revocation list of 100 000 clients, each with
// the most superseded certificates the CA lists (MaxListedRenewals),
// stays under the plugins' limit
// (revlist.MaxCRLBytes). The list is a real one, signed by pki as the
// CA signs it, with serials like pki's (159 random bits).
func TestCRLSizeBound(t *testing.T) {
	if testing.Short() {
		t.Skip("signs a list of 300 000 entries")
	}
	// CPU alone: it overlaps the other tests' waits for PostgreSQL.
	t.Parallel()
	const clients = 100_000
	entries := clients * caserver.MaxListedRenewals
	ca, err := pki.NewCA(pki.CARequest{Now: time.Now()})
	require.NoError(t, err)
	now := time.Now()
	revoked := make([]pki.Revoked, entries)
	limit := new(big.Int).Lsh(big.NewInt(1), 159)
	for i := range revoked {
		n, err := rand.Int(rand.Reader, limit)
		require.NoError(t, err)
		revoked[i] = pki.Revoked{Serial: n, At: now.Add(-time.Duration(i) * time.Second), Reason: pki.Reasons["superseded"]}
	}
	empty, err := ca.CRL(nil, now.UnixMilli(), now, caserver.CRLNextUpdate)
	require.NoError(t, err)
	full, err := ca.CRL(revoked, now.UnixMilli(), now, caserver.CRLNextUpdate)
	require.NoError(t, err)
	emptyDER, err := fixture.ParseCRL(empty)
	require.NoError(t, err)
	fullDER, err := fixture.ParseCRL(full)
	require.NoError(t, err)
	size := len(fullDER.Raw)
	perEntry := float64(size-len(emptyDER.Raw)) / float64(entries)
	t.Logf("%d entries: %d bytes (%.1f bytes per entry); limit %d bytes (%.0f%% of it)", entries, size, perEntry, revlist.MaxCRLBytes, 100*float64(size)/revlist.MaxCRLBytes)
	assert.Less(t, size, revlist.MaxCRLBytes)
	assert.Less(t, perEntry, 56.0)
}
