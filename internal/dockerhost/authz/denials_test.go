package authz

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDenialsCounted: a caller's flood of denied calls writes its first
// deniedBurst records in full, then counts the rest in one record every
// deniedEvery; another caller's denials, and every allowed call, are
// still recorded one by one.
func TestDenialsCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.log")
	l, err := OpenAuditLog(path, 0, 0, nil)
	require.NoError(t, err)
	defer l.Close()
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	e := &Engine{cfg: Config{Audit: l}, now: func() time.Time { return now }}

	deny := func(user, uid string, i int) AuditRecord {
		return AuditRecord{Phase: PhaseRequest, Decision: DecisionDeny, User: user, UID: uid, Source: "unix",
			Method: "GET", URI: fmt.Sprintf("/v1.41/containers/%d/json", i), Rule: "gateway: local user without a role", Reason: "no role"}
	}
	for i := range 5000 {
		ok, _ := e.Record(deny("unix:nobody", "65534", i), false)
		require.False(t, ok)
	}
	ok, _ := e.Record(deny("unix:bob", "1001", 0), false)
	require.False(t, ok)
	ok, _ = e.Record(AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: "unix:nobody", UID: "65534", Source: "unix", Method: "GET", URI: "/_ping"}, true)
	require.True(t, ok)

	count := func() (full int, sum []AuditRecord) {
		recs, err := ReadAudit(path, AuditFilter{})
		require.NoError(t, err)
		for _, r := range recs {
			switch {
			case r.User != "unix:nobody" || r.Decision != DecisionDeny:
			case r.Rule == RuleDenialsCounted:
				sum = append(sum, r)
			default:
				full++
			}
		}
		return full, sum
	}
	full, sum := count()
	assert.Equal(t, deniedBurst, full, "the first calls of a flood are recorded one by one")
	assert.Empty(t, sum, "no count is written before deniedEvery has passed")
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, "unix:bob", recs[deniedBurst].User, "another caller's denial is recorded")
	assert.Equal(t, DecisionAllow, recs[deniedBurst+1].Decision, "an allowed call is recorded")

	// deniedEvery later: the bucket has one call again, then the count.
	now = now.Add(deniedEvery)
	for i := range 3 {
		ok, _ := e.Record(deny("unix:nobody", "65534", 5000+i), false)
		require.False(t, ok)
	}
	full, sum = count()
	assert.Equal(t, deniedBurst+1, full)
	require.Len(t, sum, 1)
	assert.EqualValues(t, 5000-deniedBurst+1, sum[0].Fields["count"], "every call not recorded is counted")
	assert.Equal(t, "65534", sum[0].UID)
	assert.Equal(t, "/v1.41/containers/5001/json", sum[0].URI, "the count names the last call counted")
	assert.Equal(t, "gateway: local user without a role", sum[0].Fields["last_rule"])
	e.denials.mu.Lock()
	c := e.denials.callers[callerKey(&AuditRecord{Source: "unix", User: "unix:nobody", UID: "65534"})]
	assert.Equal(t, 1, c.counted, "the call after the count waits for the next")
	if c.timer != nil {
		c.timer.Stop()
	}
	e.denials.mu.Unlock()
}
