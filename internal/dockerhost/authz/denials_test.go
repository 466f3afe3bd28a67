package authz

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDenialsCounted: a caller's flood of denied calls writes its first
// records in full (countDenials.burst), then counts the rest in one record
// a period; another caller's denials, and an allowed call, are still
// recorded one by one.
func TestDenialsCounted(t *testing.T) {
	e, path, now := countingEngine(t)

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
	assert.Equal(t, int(countDenials.burst), full, "the first calls of a flood are recorded one by one")
	assert.Empty(t, sum, "no count is written before a period has passed")
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, "unix:bob", recs[int(countDenials.burst)].User, "another caller's denial is recorded")
	assert.Equal(t, DecisionAllow, recs[int(countDenials.burst)+1].Decision, "an allowed call is recorded")

	// A period later: the bucket has one call again, then the count.
	*now = now.Add(countDenials.every)
	for i := range 3 {
		ok, _ := e.Record(deny("unix:nobody", "65534", 5000+i), false)
		require.False(t, ok)
	}
	full, sum = count()
	assert.Equal(t, int(countDenials.burst)+1, full)
	require.Len(t, sum, 1)
	assert.EqualValues(t, 5000-int(countDenials.burst)+1, sum[0].Fields["count"], "every call not recorded is counted")
	assert.Equal(t, "65534", sum[0].UID)
	assert.Equal(t, "/v1.41/containers/5001/json", sum[0].URI, "the count names the last call counted")
	assert.Equal(t, "gateway: local user without a role", sum[0].Fields["last_rule"])
	e.denials.mu.Lock()
	c := e.denials.callers[countDenials.name+"\x00"+callerKey(&AuditRecord{Source: "unix", User: "unix:nobody", UID: "65534"})]
	assert.Equal(t, 1, c.counted, "the call after the count waits for the next")
	e.denials.mu.Unlock()
}

// TestReadsCounted: a caller's flood of allowed reads of the daemon's
// state is counted beyond a burst, request and response alike (a
// readonly certificate rotated the whole trail out in 11 s of GETs:
// found by a second red team round); calls that change something or copy
// data out are recorded one by one, and a request target longer than a
// record keeps is denied.
func TestReadsCounted(t *testing.T) {
	e, path, _ := countingEngine(t)
	call := func(method, uri string) AuditRecord {
		return AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: "ro", Serial: "01", Source: "tcp", Method: method, URI: uri, Rule: "readonly: GET /containers/json"}
	}
	for range 1000 {
		ok, _ := e.Record(call("GET", "/v1.41/containers/json?all=1"), true)
		require.True(t, ok, "a counted read is allowed all the same")
		resp := call("GET", "/v1.41/containers/json?all=1")
		resp.Phase = PhaseResponse
		e.Audit(resp)
	}
	for range 50 {
		ok, _ := e.Record(call("GET", "/v1.41/containers/web/logs?stdout=1"), true)
		require.True(t, ok)
		ok, _ = e.Record(call("POST", "/v1.41/containers/web/kill"), true)
		require.True(t, ok)
	}
	long := call("GET", "/v1.41/containers/json?x="+strings.Repeat("a", 1100)+"&all=1")
	ok, msg := e.Record(long, true)
	assert.False(t, ok, "a target longer than a record keeps is denied")
	assert.Contains(t, msg, "more than an audit record keeps")

	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	reads, logs, kills, denied := 0, 0, 0, 0
	for _, r := range recs {
		switch {
		case r.Decision == DecisionDeny && r.Rule == ruleLongTarget:
			denied++
		case strings.HasSuffix(r.URI, "/logs?stdout=1"):
			logs++
		case strings.HasSuffix(r.URI, "/kill"):
			kills++
		case r.Rule != RuleReadsCounted:
			reads++
		}
	}
	assert.Equal(t, int(countReads.burst), reads, "the burst of reads, requests and responses, in full")
	assert.Equal(t, 50, logs, "logs copy data out: each recorded")
	assert.Equal(t, 50, kills, "a kill changes something: each recorded")
	assert.Equal(t, 1, denied)
}

// TestChangesBounded: a caller's allowed calls that change something are
// denied beyond a burst and a rate (a developer's allowed creates, 60 KiB
// of record each, rotated the trail out in 10 s: a third red team round);
// another caller, and the admin role, are not held up.
func TestChangesBounded(t *testing.T) {
	e, _, now := countingEngine(t)
	create := func(user, role string) AuditRecord {
		return AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: user, Role: role, Serial: user, Source: "tcp",
			Method: "POST", URI: "/v1.41/containers/create", Rule: role + ": POST /containers/create"}
	}
	allowed := 0
	var msg string
	for range changeBurst + 50 {
		ok, m := e.Record(create("dev", RoleDeveloper), true)
		if ok {
			allowed++
		} else {
			msg = m
		}
	}
	assert.Equal(t, changeBurst, allowed, "the burst, then nothing until the bucket refills")
	assert.Contains(t, msg, "rule "+ruleTooMany)
	ok, _ := e.Record(create("other", RoleDeveloper), true)
	assert.True(t, ok, "another caller is not held up")
	for range changeBurst + 50 {
		ok, _ := e.Record(create("root", RoleAdmin), true)
		require.True(t, ok, "admin is not bounded")
		sock := create("", "")
		sock.Source = string(SourceUnix)
		ok, _ = e.Record(sock, true)
		require.True(t, ok, "dockerd's unix socket (root's, in plugin mode) is not bounded")
	}
	*now = now.Add(time.Second)
	allowed = 0
	for range 2 * changeRate {
		if ok, _ := e.Record(create("dev", RoleDeveloper), true); ok {
			allowed++
		}
	}
	assert.Equal(t, changeRate, allowed, "a second later, changeRate more")

	// Warn mode: a read enforce would deny is allowed, counted as a read,
	// never held up by the bound on changes.
	for range changeBurst + 50 {
		read := create("warned", RoleReadonly)
		read.Decision, read.Method, read.URI = DecisionWarn, "GET", "/v1.41/containers/json"
		ok, _ := e.Record(read, true)
		require.True(t, ok)
	}
}

// countingEngine is an engine writing to a trail of its own, at a clock
// the test moves; the counts' timers are stopped at its end.
func countingEngine(t *testing.T) (e *Engine, path string, now *time.Time) {
	path = filepath.Join(t.TempDir(), "authz.log")
	l, err := OpenAuditLog(path, 0, 0, nil)
	require.NoError(t, err)
	at := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	e = &Engine{cfg: Config{Audit: l}, now: func() time.Time { return at }}
	t.Cleanup(func() {
		e.denials.mu.Lock()
		for _, c := range e.denials.callers {
			if c.timer != nil {
				c.timer.Stop()
			}
		}
		e.denials.mu.Unlock()
		l.Close()
	})
	return e, path, &at
}
