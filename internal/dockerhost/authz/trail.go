package authz

import (
	"errors"
	"fmt"
)

// AuditFailure is what the plugin denies while the audit trail cannot be
// written (a full or read-only file system, an I/O error, a removed
// directory): a call whose record is not in the trail must not change
// anything.
type AuditFailure string

const (
	// AuditDenyWrites denies every call but the reads the readonly role
	// may make (GET and HEAD of the routes at its level): a host whose
	// disk filled up can still be looked at, not changed.
	AuditDenyWrites AuditFailure = "deny-writes"
	// AuditDenyAll denies every call.
	AuditDenyAll AuditFailure = "deny-all"
)

const (
	ruleAuditFailure = "plugin: audit trail not writable"
	ruleLongTarget   = "trail: request target too long"
)

// Check says whether f is a valid setting ("" is AuditDenyWrites).
func (f AuditFailure) Check() error {
	switch f {
	case "", AuditDenyWrites, AuditDenyAll:
		return nil
	}
	return fmt.Errorf("invalid audit failure setting %q: want %q or %q", f, AuditDenyWrites, AuditDenyAll)
}

// Record writes rec to the audit trail before the request it decides
// goes on (the plugin answers dockerd, the gateway forwards), and returns
// the decision that stands: allow as given, unless the trail's file
// cannot be written and rec is a request that changes something (or any
// request, with AuditDenyAll): that one is denied, saying why, and msg is
// the denial's message. The call is then recorded on the log's other
// writer (the journal) and counted in the trail's status. A response, a
// session record or a denial is never turned into anything else: those
// calls are done or go nowhere. An error of the other writer alone is
// only logged.
func (e *Engine) Record(rec AuditRecord, allow bool) (ok bool, msg string) {
	if e.cfg.Audit == nil {
		return allow, ""
	}
	if done, ok, msg := e.bound(rec, allow); done {
		return ok, msg
	}
	err := e.cfg.Audit.Write(rec)
	if err == nil {
		return allow, ""
	}
	e.logf("audit", "%v", err)
	var te *TrailError
	if !errors.As(err, &te) {
		return allow, ""
	}
	deny := rec.Phase == PhaseRequest && allow && !e.goesOnWithoutTrail(rec)
	if deny {
		rec.Decision, rec.Rule = DecisionDeny, ruleAuditFailure
		rec.Reason = fmt.Sprintf("the audit trail cannot be written (%v): calls that change something are denied until it can", te.Err)
		if e.cfg.AuditFailure == AuditDenyAll {
			rec.Reason = fmt.Sprintf("the audit trail cannot be written (%v): every call is denied until it can", te.Err)
		}
		msg = "denied: " + rec.Reason + " (rule " + ruleAuditFailure + ")"
	}
	if err := e.cfg.Audit.Fallback(rec, deny); err != nil {
		e.logf("audit", "%v", err)
	}
	return allow && !deny, msg
}

// bound applies the trail's bounds on what one caller writes (denials.go)
// and on what one record can show; done says Record is answered with ok
// and msg, the record written, counted or denied already.
func (e *Engine) bound(rec AuditRecord, allow bool) (done, ok bool, msg string) {
	if allow && rec.Phase == PhaseRequest && len(rec.URI) > maxAuditValue {
		// A record keeps a request target's first 1 KiB: what comes
		// after (a name, a signal, force=1&v=1, after padding) would
		// run unrecorded (found by a second red team round).
		rec.Decision, rec.Rule = DecisionDeny, ruleLongTarget
		rec.Reason = fmt.Sprintf("the request target is %d bytes, more than an audit record keeps (%d): refused, so that no call runs that its record does not show whole", len(rec.URI), maxAuditValue)
		e.Record(rec, false)
		return true, false, "denied: " + rec.Reason + " (rule " + ruleLongTarget + ")"
	}
	switch {
	case rec.Decision == DecisionDeny && !allow:
		if !e.admitCounted(countDenials, rec, e.writeCount) {
			return true, false, ""
		}
	case rec.Decision != DecisionDeny && (rec.Phase == PhaseRequest || rec.Phase == PhaseResponse) && e.stateRead(rec):
		// Warn mode's reads too: they are allowed, and must not be
		// held up by the bound on changes.
		if !e.admitCounted(countReads, rec, e.writeCount) {
			return true, allow, ""
		}
	case allow && rec.Phase == PhaseRequest && rec.Role != RoleAdmin && rec.Source != string(SourceUnix) && !e.admitChange(rec):
		rec.Decision, rec.Rule = DecisionDeny, ruleTooMany
		rec.Reason = fmt.Sprintf("more than %d calls that change something or copy data out, then %d a second: each is recorded whole, and the trail's files must keep what others did", changeBurst, changeRate)
		e.Record(rec, false)
		return true, false, "denied: " + rec.Reason + " (rule " + ruleTooMany + ")"
	}
	return false, false, ""
}

// goesOnWithoutTrail says whether the request of rec may go on while the
// trail cannot be written: with AuditDenyWrites, the reads the readonly
// role may make (the routes at levelRead, which leave out what copies
// data out or writes through a GET, such as a websocket attach).
func (e *Engine) goesOnWithoutTrail(rec AuditRecord) bool {
	return e.cfg.AuditFailure != AuditDenyAll && e.stateRead(rec)
}

// stateRead says whether rec is of a call that reads the daemon's state
// and copies nothing out: GET or HEAD of a route at levelRead (the
// readonly role's; not logs, archive, export or a websocket attach).
func (e *Engine) stateRead(rec AuditRecord) bool {
	if rec.Method != "GET" && rec.Method != "HEAD" {
		return false
	}
	u, err := parseURI(rec.URI)
	if err != nil {
		return false
	}
	rt := routes().resolve(rec.Method, splitPath(u.path))
	return rt != nil && rt.level == levelRead
}

// writeCount writes the record of a caller's records counted
// (admitCounted); a failure is logged: the calls it counts were denied,
// or only read.
func (e *Engine) writeCount(rec AuditRecord) {
	if err := e.cfg.Audit.Write(rec); err != nil {
		e.logf("audit", "%v", err)
	}
}
