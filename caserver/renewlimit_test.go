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

	"github.com/dtls-tool/dtls/caserver"
	"github.com/dtls-tool/dtls/fleet"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/revlist"
	"github.com/dtls-tool/dtls/store"
)

// TestRenewalsBounded: a holder renewing in a loop gets
// caserver.MaxListedRenewals renewals, then 429 "renewed too recently"
// with the time the oldest superseded certificate leaves the list (and
// Retry-After): the list holds at most that many of its certificates.
// Once that one expires, one renewal more; during a rotation, one more.
// A retry of an answered renewal is no new renewal and is answered.
func TestRenewalsBounded(t *testing.T) {
	clk := &clock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now})
	c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	cr, first := certOf(t, c)
	certPEM := []byte(cr.Certificate)

	// renewOnce renews the current certificate once, after d.
	renewOnce := func(d time.Duration) call {
		t.Helper()
		clk.Add(d)
		csr, newKey, err := pki.NewCSR("alice", "")
		require.NoError(t, err)
		r, _ := renew(t, ca, certPEM, key, csr)
		if r.status == http.StatusOK {
			rr, _ := certOf(t, r)
			// The agent's retry with the same key: answered again.
			again, _ := renew(t, ca, certPEM, key, csr)
			require.Equal(t, http.StatusOK, again.status, again.message())
			certPEM, key = []byte(rr.Certificate), newKey
		}
		return r
	}
	listed := func() int {
		t.Helper()
		der, err := ca.Server.CRL()
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(der)
		require.NoError(t, err)
		return len(crl.RevokedCertificateEntries)
	}
	for i := range caserver.MaxListedRenewals {
		r := renewOnce(10 * time.Minute)
		require.Equal(t, http.StatusOK, r.status, "renewal %d: %s", i+1, r.message())
	}
	current, err := pki.ParseCertificate(certPEM)
	require.NoError(t, err)
	for range 3 {
		r := renewOnce(time.Minute)
		require.Equal(t, http.StatusTooManyRequests, r.status, r.message())
		assert.Equal(t, `client "alice" (serial `+pki.Serial(current)+`) renewed too recently: next renewal allowed after `+
			first.NotAfter.UTC().Format(time.RFC3339)+` (2 superseded certificates of "alice" are still in the revocation list, at most 2)`, r.message())
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
		assert.InDelta(t, first.NotAfter.Sub(clk.Now()).Seconds(), secs, 2)
	}
	assert.Equal(t, caserver.MaxListedRenewals, listed())
	// The agent takes it for a refusal that passes (it keeps its key
	// and tries again later), not for a revocation.
	assert.True(t, fleet.Retryable(&fleet.Error{Status: http.StatusTooManyRequests}))

	// The first superseded certificate expired: it leaves the list, and
	// one renewal more is allowed.
	clk.Add(first.NotAfter.Sub(clk.Now()) - time.Minute)
	require.Equal(t, http.StatusOK, renewOnce(time.Minute).status)
	require.Equal(t, http.StatusTooManyRequests, renewOnce(time.Minute).status)
	assert.Equal(t, caserver.MaxListedRenewals, listed())

	// A rotation: one more, for the certificate of the next CA.
	_, err = ca.Server.BeginRotation()
	require.NoError(t, err)
	r := renewOnce(time.Minute)
	require.Equal(t, http.StatusOK, r.status, r.message())
	r = renewOnce(time.Minute)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Contains(t, r.message(), "at most 3)")
	assert.Equal(t, caserver.MaxListedRenewals+1, listed())
}

// TestCRLSizeBound: the revocation list of 100 000 clients, each with
// the most superseded certificates the CA lists (MaxListedRenewals, one
// more during a rotation), stays under the plugins' limit
// (revlist.MaxCRLBytes). The list is a real one, signed by pki as the
// CA signs it, with serials like pki's (159 random bits).
func TestCRLSizeBound(t *testing.T) {
	if testing.Short() {
		t.Skip("signs a list of 300 000 entries")
	}
	const clients = 100_000
	entries := clients * (caserver.MaxListedRenewals + 1)
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
	emptyDER, err := pki.ParseCRL(empty)
	require.NoError(t, err)
	fullDER, err := pki.ParseCRL(full)
	require.NoError(t, err)
	size := len(fullDER.Raw)
	perEntry := float64(size-len(emptyDER.Raw)) / float64(entries)
	t.Logf("%d entries: %d bytes (%.1f bytes per entry); limit %d bytes (%.0f%% of it)", entries, size, perEntry, revlist.MaxCRLBytes, 100*float64(size)/revlist.MaxCRLBytes)
	assert.Less(t, size, revlist.MaxCRLBytes)
	assert.Less(t, perEntry, 56.0)
}
