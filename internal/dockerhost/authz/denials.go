package authz

import (
	"fmt"
	"sync"
	"time"
)

// A caller's denied calls are recorded one by one up to deniedBurst, then
// one every deniedEvery; the ones between are counted, and the count is
// written as one record (RuleDenialsCounted) at most every deniedEvery.
//
// Why: the trail keeps its last files only (OpenAuditLog's maxSize and
// maxFiles), and a denied call costs its caller nothing but is recorded
// with its request target (up to 2 KiB a record). Any local account on the
// gateway's local socket, or a holder of a revoked certificate, could
// send tens of thousands of denied calls in seconds and push the record
// of what others, or they themselves, did out of every file (found by a
// red team: 43,893 calls in 11 s). A denied call changes nothing; counted
// by caller, they still say who tried what, and a flood now writes about
// two records every deniedEvery instead of a record a call.
const (
	deniedBurst = 100
	deniedEvery = 10 * time.Second
	// maxDeniedCallers bounds the callers followed; beyond it every
	// denial is recorded in full (the trail's rule before this limit).
	maxDeniedCallers = 4096
)

// RuleDenialsCounted is the rule of the record that counts a caller's
// denied calls not recorded one by one (see deniedBurst).
const RuleDenialsCounted = "trail: denied calls counted"

// denials follows the denied calls of each caller.
type denials struct {
	mu      sync.Mutex
	callers map[string]*callerDenials
}

// callerDenials is one caller's token bucket and the count not yet
// written.
type callerDenials struct {
	tokens  float64
	at      time.Time // of the last refill
	counted int
	since   time.Time   // of the first call counted
	last    AuditRecord // the last call counted
	timer   *time.Timer // writes the count when no denial comes to
	written time.Time   // when a count was last written
}

// callerKey names the caller of a record: what no caller chooses freely
// (an account's uid, a certificate's serial and issuer, a socket).
func callerKey(r *AuditRecord) string {
	return r.Source + "\x00" + r.User + "\x00" + r.UID + "\x00" + r.Serial + "\x00" + r.Issuer + "\x00" + r.Socket
}

// admitDenial says whether the denied request rec is written in full;
// when not, it is counted, and the count written by write when
// deniedEvery has passed since the last one (now, or by a timer).
func (e *Engine) admitDenial(rec AuditRecord, write func(AuditRecord)) bool {
	d := &e.denials
	now := e.now()
	key := callerKey(&rec)
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.callers[key]
	if c == nil {
		if d.callers == nil {
			d.callers = map[string]*callerDenials{}
		}
		if len(d.callers) >= maxDeniedCallers && !d.evict(now) {
			return true
		}
		c = &callerDenials{tokens: deniedBurst, at: now, written: now}
		d.callers[key] = c
	}
	c.tokens = min(deniedBurst, c.tokens+now.Sub(c.at).Seconds()/deniedEvery.Seconds())
	c.at = now
	if c.tokens >= 1 {
		c.tokens--
		return true
	}
	if c.counted == 0 {
		c.since = now
	}
	c.counted++
	c.last = rec
	switch {
	case now.Sub(c.written) >= deniedEvery:
		write(c.summary(now))
	case c.timer == nil:
		c.timer = time.AfterFunc(deniedEvery-now.Sub(c.written), func() {
			d.mu.Lock()
			c.timer = nil
			var r AuditRecord
			if c.counted > 0 {
				r = c.summary(e.now())
			}
			d.mu.Unlock()
			if r.Phase != "" {
				write(r)
			}
		})
	}
	return false
}

// evict drops the callers whose bucket is full again and who have no
// count to write; d.mu is held. It reports whether room was made.
func (d *denials) evict(now time.Time) bool {
	for k, c := range d.callers {
		full := c.tokens+now.Sub(c.at).Seconds()/deniedEvery.Seconds() >= deniedBurst
		if full && c.counted == 0 && c.timer == nil {
			delete(d.callers, k)
		}
	}
	return len(d.callers) < maxDeniedCallers
}

// summary is the record of the calls counted, which it resets; the
// caller's lock is held.
func (c *callerDenials) summary(now time.Time) AuditRecord {
	r := c.last
	r.Time, r.Rule, r.Fields = now, RuleDenialsCounted, map[string]any{
		"count": c.counted, "since": c.since.UTC().Format(auditTimeFormat), "last_rule": c.last.Rule,
	}
	r.Reason = fmt.Sprintf("%d more denied calls of this caller since %s, counted rather than recorded one by one; the last is this record's method and path, denied by %q: %s",
		c.counted, c.since.UTC().Format(time.RFC3339), c.last.Rule, c.last.Reason)
	r.PID, r.Comm, r.DurationUS, r.BytesIn, r.BytesOut, r.Status = 0, "", 0, 0, 0, 0
	c.counted, c.written = 0, now
	return r
}
