package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// TestOldOnlyClients: the rule of both switches counts good, unexpired
// client certificates of the old CA, all of them for the local CA (zero
// trustBegan), only those issued before trustBegan for the online one.
func TestOldOnlyClients(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	began := now.Add(-time.Hour)
	rec := func(name string, kind store.Kind, st store.Status, ca string, issued time.Time) store.Record {
		// As pki.SignCSR makes a day's certificate: five minutes'
		// backdate.
		return store.Record{Serial: name, Name: name, Kind: kind, Status: st, CASerial: ca,
			NotBefore: issued.Add(-5 * time.Minute), NotAfter: issued.Add(24 * time.Hour)}
	}
	recs := []store.Record{
		rec("before", store.KindClient, store.StatusGood, "old", began.Add(-time.Second)),
		rec("after", store.KindClient, store.StatusGood, "old", began),
		rec("server", store.KindServer, store.StatusGood, "old", began.Add(-time.Hour)),
		rec("renewed", store.KindClient, store.StatusSuperseded, "old", began.Add(-time.Hour)),
		rec("revoked", store.KindClient, store.StatusRevoked, "old", began.Add(-time.Hour)),
		rec("new", store.KindClient, store.StatusGood, "new", began.Add(-time.Hour)),
		rec("expired", store.KindClient, store.StatusGood, "old", now.Add(-25*time.Hour)),
	}
	names := func(rs []store.Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	assert.Equal(t, []string{"before"}, names(OldOnlyClients(recs, "old", began, now)))
	assert.Equal(t, []string{"before", "after"}, names(OldOnlyClients(recs, "old", time.Time{}, now)))
	e := &SwitchBlockingError{Left: OldOnlyClients(recs, "old", time.Time{}, now)}
	assert.EqualError(t, e, "cannot switch the daemon to the new CA: 2 clients of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA)")
	assert.Equal(t, `"before" (serial before, expires 2026-01-03T10:59:59Z), and 1 more`, e.Holders(1))
}
