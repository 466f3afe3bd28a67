package engine

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// inventory is a real SQLite inventory with a CA, and issue records a
// certificate of it.
type inventory struct {
	st  *store.Store
	ca  *pki.CA
	now time.Time
}

func newInventory(t *testing.T) *inventory {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "dtls.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	ca, err := pki.NewCA(pki.CARequest{CommonName: "engine test CA", Now: now})
	require.NoError(t, err)
	require.NoError(t, st.Apply(store.Change{Insert: []store.Record{store.FromCert(ca.Cert, ca.CertPEM, store.KindCA, pki.Serial(ca.Cert), "")}}))
	return &inventory{st: st, ca: ca, now: now}
}

func (inv *inventory) issue(t *testing.T, kind store.Kind, name string, notBefore time.Time) store.Record {
	t.Helper()
	r := pki.Request{Kind: pki.Kind(kind), CommonName: name, Hosts: []string{name}, Now: inv.now, Validity: 24 * time.Hour}
	if !notBefore.IsZero() {
		r.Now, r.NotBefore = notBefore, notBefore
	}
	is, err := inv.ca.Issue(r)
	require.NoError(t, err)
	rec := store.FromCert(is.Cert, is.CertPEM, kind, pki.Serial(inv.ca.Cert), "")
	require.NoError(t, inv.st.Apply(store.Change{Insert: []store.Record{rec}}))
	return rec
}

// TestRevokeRules: the rules both faces revoke by. A key of two holders
// (a client and a server of one name) is refused, as are a CA and an
// expired certificate; a name revokes its superseded certificates too
// unless the list already holds them (the online CA's).
func TestRevokeRules(t *testing.T) {
	inv := newInventory(t)
	inv.issue(t, store.KindClient, "twin", time.Time{})
	inv.issue(t, store.KindServer, "twin", time.Time{})
	old := inv.issue(t, store.KindClient, "alice", time.Time{})
	cur := inv.issue(t, store.KindClient, "alice", time.Time{})
	require.NoError(t, inv.st.Apply(store.Change{Supersede: []string{old.Serial}}))
	gone := inv.issue(t, store.KindClient, "gone", inv.now.Add(-48*time.Hour))

	_, err := Revoke(inv.st, RevokeRequest{Key: "twin", Now: inv.now})
	var amb *AmbiguousError
	require.ErrorAs(t, err, &amb)
	assert.EqualError(t, err, `"twin" names more than one certificate holder: client "twin", server "twin"`)

	_, err = Revoke(inv.st, RevokeRequest{Key: pki.Serial(inv.ca.Cert), Now: inv.now})
	var caErr *CAError
	assert.ErrorAs(t, err, &caErr)

	_, err = Revoke(inv.st, RevokeRequest{Key: gone.Serial, Now: inv.now})
	assert.ErrorIs(t, err, ErrAlreadyRevoked, "an expired certificate is not revoked")
	_, err = Revoke(inv.st, RevokeRequest{Key: "nobody", Now: inv.now})
	assert.ErrorIs(t, err, ErrNoSuchCertificate)

	// By the current certificate's serial: the one it superseded goes
	// with it (the gateway keeps a superseded certificate's open streams
	// while a successor stands for it).
	bySerial, err := Revoke(inv.st, RevokeRequest{Key: cur.Serial, Reason: 1, Now: inv.now})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{old.Serial, cur.Serial}, serials(bySerial.Targets))
	// By the superseded one's serial: the one that superseded it too
	// (the renewal may be a thief's, made with the stolen certificate).
	byOld, err := Revoke(inv.st, RevokeRequest{Key: old.Serial, Reason: 1, Now: inv.now})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{old.Serial, cur.Serial}, serials(byOld.Targets))

	local, err := Revoke(inv.st, RevokeRequest{Key: "alice", Reason: 1, Now: inv.now})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{old.Serial, cur.Serial}, serials(local.Targets))
	assert.Equal(t, store.StatusRevoked, local.Targets[0].Status)
	require.Len(t, local.Change.Revoke, 2)
	assert.True(t, inv.now.Equal(local.Change.Revoke[0].At))

	// Nothing was changed: the caller applies the change.
	rec, err := inv.st.Get(cur.Serial)
	require.NoError(t, err)
	assert.Equal(t, store.StatusGood, rec.Status)
	require.NoError(t, inv.st.Apply(local.Change))
	_, err = Revoke(inv.st, RevokeRequest{Key: "alice", Now: inv.now})
	assert.ErrorIs(t, err, ErrAlreadyRevoked)
}

func serials(recs []store.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Serial)
	}
	return out
}

// TestEntriesAndNumbers: a list's entries follow its scope, and its
// numbers grow on the inventory whatever the floor, a clock set back
// included.
func TestEntriesAndNumbers(t *testing.T) {
	inv := newInventory(t)
	rev := inv.issue(t, store.KindClient, "bob", time.Time{})
	sup := inv.issue(t, store.KindClient, "carol", time.Time{})
	gone := inv.issue(t, store.KindClient, "dave", inv.now.Add(-48*time.Hour))
	require.NoError(t, inv.st.Apply(store.Change{
		Revoke:    []store.Revocation{{Serial: rev.Serial, Reason: 1, At: inv.now}, {Serial: gone.Serial, Reason: 1, At: inv.now.Add(-47 * time.Hour)}},
		Supersede: []string{sup.Serial},
	}))
	count := func(sc ListScope) int {
		e, err := Entries(inv.st, sc, inv.now)
		require.NoError(t, err)
		return len(e)
	}
	assert.Equal(t, 1, count(ListScope{}), "the revoked, unexpired one")
	assert.Equal(t, 2, count(ListScope{Superseded: true}))
	assert.Equal(t, 2, count(ListScope{KeepExpired: true}))
	assert.Equal(t, 0, count(ListScope{CASerial: "other"}))
	pending := inv.issue(t, store.KindClient, "erin", time.Time{})
	pending.Status, pending.Reason = store.StatusRevoked, 1
	assert.Equal(t, 2, count(ListScope{Pending: []store.Record{pending}}))

	entries, err := Entries(inv.st, ListScope{Superseded: true}, inv.now)
	require.NoError(t, err)
	var numbers []int64
	for _, at := range []time.Time{inv.now, inv.now, inv.now.Add(-time.Hour)} {
		crlPEM, n, err := SignCRL(inv.st, inv.ca, entries, at.Unix(), at, 0)
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(pemBytes(t, crlPEM))
		require.NoError(t, err)
		assert.Equal(t, n, crl.Number.Int64())
		assert.Len(t, crl.RevokedCertificateEntries, 2)
		numbers = append(numbers, n)
	}
	assert.Less(t, numbers[0], numbers[1])
	assert.Less(t, numbers[1], numbers[2], "a clock set back gets a higher number still")
}

func pemBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	return blk.Bytes
}

// TestRenewalAllowed: MaxListedRenewals superseded, unexpired
// certificates of a holder refuse its next renewal until the oldest
// expires.
func TestRenewalAllowed(t *testing.T) {
	inv := newInventory(t)
	var recs []store.Record
	for i := 0; i < 4; i++ {
		recs = append(recs, inv.issue(t, store.KindClient, "frank", inv.now.Add(time.Duration(i)*time.Hour)))
	}
	cur := recs[3]
	require.NoError(t, RenewalAllowed(inv.st, cur, 3, inv.now))
	var sup []string
	for _, r := range recs[:3] {
		sup = append(sup, r.Serial)
	}
	require.NoError(t, inv.st.Apply(store.Change{Supersede: sup}))
	err := RenewalAllowed(inv.st, cur, 3, inv.now)
	var limit *RenewLimitError
	require.True(t, errors.As(err, &limit), "%v", err)
	assert.True(t, recs[0].NotAfter.Equal(limit.At), "%s, want %s", limit.At, recs[0].NotAfter)
	assert.NoError(t, RenewalAllowed(inv.st, cur, 3, recs[0].NotAfter), "allowed once the oldest expired")
	assert.NoError(t, RenewalAllowed(inv.st, cur, -1, inv.now), "no bound")
}
