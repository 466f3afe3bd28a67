package audit

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/revlist"
)

// TestAuditFleetCRL: on a host enrolled with an online CA, the status the
// authorization plugin records of the CA's revocation list is a PASS while
// fresh, a WARN after one failed fetch, and a FAIL once the CA has not
// been reached for three intervals, the plugin has stopped asking, or it
// never had a list.
func TestAuditFleetCRL(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const url = "https://ca.example.com:8443"
	const down = "cannot reach the CA at https://ca.example.com:8443: dial tcp 192.0.2.1:8443: connect: connection refused"
	good := revlist.Status{URL: url, RefreshSeconds: 5, LastAttempt: now.Add(-2 * time.Second), LastSuccess: now.Add(-2 * time.Second),
		Number: "1772366000", ThisUpdate: now.Add(-10 * time.Minute), NextUpdate: now.Add(24 * time.Hour), Revoked: 3, Issuer: "fleet CA"}
	with := func(f func(s *revlist.Status)) *revlist.Status { s := good; f(&s); return &s }
	list := "the revocation list of 2026-03-01T11:50:00Z (number 1772366000, 3 entries)"

	for _, c := range []struct {
		name    string
		status  *revlist.Status // nil: no status file
		authz   bool            // daemon.json names a plugin
		want    Status
		title   string
		inTitle string
		detail  string
	}{
		{name: "fresh", status: &good, authz: true, want: Pass,
			title: "the authorization plugin follows the revocation list of the CA at " + url + ": number 1772366000 of 2026-03-01T11:50:00Z, 3 entries, fetched at 2026-03-01T11:59:58Z (2s ago)"},
		{name: "one failed fetch", authz: true, want: Warn,
			status: with(func(s *revlist.Status) { s.LastSuccess, s.LastError = now.Add(-7*time.Second), down }),
			title:  "the authorization plugin's last fetch of the revocation list from the CA at " + url + " failed: " + down},
		{name: "CA down for a minute", authz: true, want: Fail,
			status: with(func(s *revlist.Status) { s.LastSuccess, s.LastError = now.Add(-time.Minute), down }),
			title:  "the authorization plugin enforces " + list + "; it cannot reach the CA at " + url + ": " + down},
		{name: "plugin stopped while the CA was down", authz: true, want: Fail,
			status: with(func(s *revlist.Status) {
				s.LastAttempt, s.LastSuccess, s.LastError = now.Add(-time.Hour), now.Add(-2*time.Hour), down
			}),
			title:  "the authorization plugin enforces " + list + "; it cannot reach the CA at " + url + ": " + down,
			detail: "its last good fetch was at 2026-03-01T10:00:00Z (2h ago): certificates revoked on the CA since are not refused here; it has not asked since 2026-03-01T11:00:00Z (1h ago): is dtls authz serve running?"},
		{name: "plugin stopped", authz: true, want: Fail,
			status: with(func(s *revlist.Status) { s.LastAttempt, s.LastSuccess = now.Add(-time.Hour), now.Add(-time.Hour) }),
			title:  "the authorization plugin enforces " + list + "; it has not asked the CA at " + url + " since 2026-03-01T11:00:00Z (1h ago)"},
		{name: "never a list", authz: true, want: Fail,
			status: &revlist.Status{URL: url, RefreshSeconds: 5, LastAttempt: now, LastError: down},
			title:  "the authorization plugin has no revocation list from the CA at " + url + ": it denies every certificate of the fleet"},
		{name: "another CA", authz: true, want: Warn,
			status: with(func(s *revlist.Status) { s.URL = "https://old-ca.example.com" }),
			title:  "the authorization plugin follows the CA at https://old-ca.example.com, but server.json names " + url},
		{name: "no status, plugin configured", authz: true, want: Fail,
			inTitle: "the authorization plugin does not follow the revocation list of the CA at " + url + ": there is no "},
		{name: "no status, no plugin", want: Warn,
			title: "no authorization plugin follows the revocation list of the CA at " + url},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, now, filepath.Join(t.TempDir(), "none.sock"))
			if c.authz {
				h.writeDaemonJSON(t, map[string]any{"authorization-plugins": []string{"dtls-authz"}})
			}
			if c.status != nil {
				b, err := json.Marshal(c.status)
				require.NoError(t, err)
				write(t, filepath.Join(h.state, revlist.StatusFile), b, revlist.StatusMode)
			}
			cfg := h.config(now)
			cfg.CAURL = url
			f := requireOne(t, Run(context.Background(), cfg), "fleet-crl", c.want, "")
			if c.title != "" {
				assert.Equal(t, c.title, f.Title)
			} else {
				assert.Contains(t, f.Title, c.inTitle)
			}
			if c.detail != "" {
				assert.Equal(t, c.detail, f.Detail)
			}
			if c.want != Pass {
				assert.NotEmpty(t, f.Fix)
			}
		})
	}

	// A host that is its own CA has no such finding.
	h := newHost(t, now, filepath.Join(t.TempDir(), "none.sock"))
	assert.Empty(t, byID(Run(context.Background(), h.config(now)), "fleet-crl"))
}
