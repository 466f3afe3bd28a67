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

const ruleAuditFailure = "plugin: audit trail not writable"

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
	if !allow && rec.Phase == PhaseRequest && rec.Decision == DecisionDeny && !e.admitDenial(rec, e.writeCount) {
		return false, ""
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

// goesOnWithoutTrail says whether the request of rec may go on while the
// trail cannot be written: with AuditDenyWrites, the reads the readonly
// role may make (the routes at levelRead, which leave out what copies
// data out or writes through a GET, such as a websocket attach).
func (e *Engine) goesOnWithoutTrail(rec AuditRecord) bool {
	if e.cfg.AuditFailure == AuditDenyAll || (rec.Method != "GET" && rec.Method != "HEAD") {
		return false
	}
	u, err := parseURI(rec.URI)
	if err != nil {
		return false
	}
	rt := routes().resolve(rec.Method, splitPath(u.path))
	return rt != nil && rt.level == levelRead
}

// writeCount writes the record of a caller's denied calls counted
// (admitDenial); a failure is logged: the calls it counts were denied.
func (e *Engine) writeCount(rec AuditRecord) {
	if err := e.cfg.Audit.Write(rec); err != nil {
		e.logf("audit", "%v", err)
	}
}
