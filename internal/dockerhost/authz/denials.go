package authz

import (
	"fmt"
	"sync"
	"time"
)

// Records a caller can make without bound are written one by one up to a
// burst, then one a period; the ones between are counted, and the count is
// written as one record at most every period. Two kinds are counted,
// each caller's apart:
//
//   - denials: every denied record (a request, a connection or stream
//     cut). Any local account on the gateway's local socket, or a holder
//     of a revoked certificate, sent tens of thousands of denied calls in
//     seconds, and the cut of each idle connection after them, and pushed
//     the record of what others, or they themselves, did out of every
//     rotated file (found by a red team: 43,893 calls in 11 s; then the
//     cuts, in a second round).
//   - reads: allowed calls that read the daemon's state and copy nothing
//     out (the routes the readonly role has: containers/json, images/json,
//     info...), request and response. A readonly certificate rotated the
//     whole trail out in 11 s of GETs (a second round).
//
// A denied call changes nothing, and a read of the state copies nothing
// out; counted by caller, they still say who tried or read what. Calls
// that change something, or copy data out, are always recorded one by one.
type countKind struct {
	name  string
	burst float64
	every time.Duration
	rule  string
	what  string
}

var (
	countDenials = &countKind{name: "deny", burst: 100, every: 10 * time.Second, rule: RuleDenialsCounted, what: "denied calls or cuts"}
	countReads   = &countKind{name: "read", burst: 300, every: time.Second, rule: RuleReadsCounted, what: "allowed reads of the daemon's state"}
)

// maxCountedCallers bounds the callers followed; beyond it every record
// is written in full (the trail's rule before counting).
const maxCountedCallers = 4096

// RuleDenialsCounted and RuleReadsCounted are the rules of the records
// that count a caller's records not written one by one (countKind).
const (
	RuleDenialsCounted = "trail: denied calls counted"
	RuleReadsCounted   = "trail: reads counted"
)

// denials follows the counted records of each caller.
type denials struct {
	mu      sync.Mutex
	callers map[string]*callerDenials
}

// callerDenials is one caller's token bucket of one kind and the count
// not yet written.
type callerDenials struct {
	kind    *countKind
	tokens  float64
	at      time.Time // of the last refill
	counted int
	since   time.Time   // of the first record counted
	last    AuditRecord // the last record counted
	timer   *time.Timer // writes the count when no record comes to
	written time.Time   // when a count was last written
}

// callerKey names the caller of a record: what no caller chooses freely
// (an account's uid, a certificate's serial and issuer, a socket).
func callerKey(r *AuditRecord) string {
	return r.Source + "\x00" + r.User + "\x00" + r.UID + "\x00" + r.Serial + "\x00" + r.Issuer + "\x00" + r.Socket
}

// admitCounted says whether rec, a record of kind k, is written in full;
// when not, it is counted, and the count written by write when k.every
// has passed since the last one (now, or by a timer).
func (e *Engine) admitCounted(k *countKind, rec AuditRecord, write func(AuditRecord)) bool {
	d := &e.denials
	now := e.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.take(k, &rec, now)
	if c == nil {
		return true
	}
	if c.counted == 0 {
		c.since = now
	}
	c.counted++
	c.last = rec
	switch {
	case now.Sub(c.written) >= k.every:
		write(c.summary(now))
	case c.timer == nil:
		c.timer = time.AfterFunc(k.every-now.Sub(c.written), func() {
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
		full := c.tokens+now.Sub(c.at).Seconds()/c.kind.every.Seconds() >= c.kind.burst
		if full && c.counted == 0 && c.timer == nil {
			delete(d.callers, k)
		}
	}
	return len(d.callers) < maxCountedCallers
}

// summary is the record of the records counted, which it resets; the
// caller's lock is held.
func (c *callerDenials) summary(now time.Time) AuditRecord {
	r := c.last
	r.Time, r.Rule, r.Fields = now, c.kind.rule, map[string]any{
		"count": c.counted, "since": c.since.UTC().Format(auditTimeFormat), "last_rule": c.last.Rule,
	}
	r.Reason = fmt.Sprintf("%d more %s of this caller since %s, counted rather than recorded one by one; the last is this record's method and path (%s phase), by %q: %s",
		c.counted, c.kind.what, c.since.UTC().Format(time.RFC3339), c.last.Phase, c.last.Rule, c.last.Reason)
	r.PID, r.Comm, r.DurationUS, r.BytesIn, r.BytesOut, r.Status = 0, "", 0, 0, 0, 0
	c.counted, c.written = 0, now
	return r
}

// A caller's allowed calls that change something or copy data out are
// each recorded whole, so they are bounded in rate instead: beyond a burst
// of changeBurst, changeRate a second, the call is denied ("too many
// calls", a denial counted as the others). A developer's allowed creates,
// 60 KiB of record each, rotated the whole trail out in 10 s (found by a
// third red team round); at this rate a caller writes at most about
// 200 KiB a second. The admin role, and dockerd's own unix socket in
// plugin mode (root's), are not bounded.
const (
	changeBurst = 200
	changeRate  = 20
)

// ruleTooMany is the rule of a call denied by the bound on changes.
const ruleTooMany = "trail: too many calls"

// admitChange says whether a caller's allowed call that changes something
// may go on under the bound.
func (e *Engine) admitChange(rec AuditRecord) bool {
	d := &e.denials
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.take(countChanges, &rec, e.now()) == nil
}

// take takes one token from the bucket of kind k of rec's caller, refilled
// since its last use; it returns nil when there was one (or when no
// bucket can be kept: maxCountedCallers), else the caller's state. d.mu is
// held.
func (d *denials) take(k *countKind, rec *AuditRecord, now time.Time) *callerDenials {
	key := k.name + "\x00" + callerKey(rec)
	c := d.callers[key]
	if c == nil {
		if d.callers == nil {
			d.callers = map[string]*callerDenials{}
		}
		if len(d.callers) >= maxCountedCallers && !d.evict(now) {
			return nil
		}
		c = &callerDenials{kind: k, tokens: k.burst, at: now, written: now}
		d.callers[key] = c
	}
	c.tokens = min(k.burst, c.tokens+now.Sub(c.at).Seconds()/k.every.Seconds())
	c.at = now
	if c.tokens >= 1 {
		c.tokens--
		return nil
	}
	return c
}

// countChanges is the kind of the bound on changes: its bucket refills
// changeRate a second (evict reads burst and every).
var countChanges = &countKind{name: "change", burst: changeBurst, every: time.Second / changeRate}
