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

// audit writes rec to the audit trail before resp is returned to dockerd.
// When the trail's file cannot be written, a request that changes
// something (or any request, with AuditDenyAll) is denied, saying why;
// the call is then recorded on the log's other writer (the journal) and
// counted in the trail's status. A response is never denied: the call is
// done. An error of the other writer alone is only logged.
func (p *Plugin) audit(rec AuditRecord, resp authzResponse) authzResponse {
	if p.cfg.Audit == nil {
		return resp
	}
	err := p.cfg.Audit.Write(rec)
	if err == nil {
		return resp
	}
	p.logf("audit", "%v", err)
	var te *TrailError
	if !errors.As(err, &te) {
		return resp
	}
	deny := rec.Phase == PhaseRequest && resp.Allow && !p.goesOnWithoutTrail(rec)
	if deny {
		rec.Decision, rec.Rule = DecisionDeny, ruleAuditFailure
		rec.Reason = fmt.Sprintf("the audit trail cannot be written (%v): calls that change something are denied until it can", te.Err)
		if p.cfg.AuditFailure == AuditDenyAll {
			rec.Reason = fmt.Sprintf("the audit trail cannot be written (%v): every call is denied until it can", te.Err)
		}
		resp = authzResponse{Msg: "denied: " + rec.Reason + " (rule " + ruleAuditFailure + ")"}
	}
	if err := p.cfg.Audit.Fallback(rec, deny); err != nil {
		p.logf("audit", "%v", err)
	}
	return resp
}

// goesOnWithoutTrail says whether the request of rec may go on while the
// trail cannot be written: with AuditDenyWrites, the reads the readonly
// role may make (the routes at levelRead, which leave out what copies
// data out or writes through a GET, such as a websocket attach).
func (p *Plugin) goesOnWithoutTrail(rec AuditRecord) bool {
	if p.cfg.AuditFailure == AuditDenyAll || (rec.Method != "GET" && rec.Method != "HEAD") {
		return false
	}
	u, err := parseURI(rec.URI)
	if err != nil {
		return false
	}
	rt := routes().resolve(rec.Method, splitPath(u.path))
	return rt != nil && rt.level == levelRead
}
