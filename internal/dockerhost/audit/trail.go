package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// checkHostAudit checks what records what happens on this host: auditd's
// watches (CIS 1.1.3 to 1.1.18, dtls's files) and the authorization
// plugin's audit trail, and says what plugin mode cannot record.
func (a *auditor) checkHostAudit(d *daemonConf) {
	a.checkAuditd(d)
	a.checkTrail()
	if len(d.authz) > 0 {
		// moby pkg/authorization/middleware.go asks a plugin about the
		// request that opens an exec or attach stream and about nothing
		// that flows through it afterwards: true of every plugin, dtls's
		// (dtls-authz) included.
		a.add(Finding{ID: "authz-streams", Status: Warn,
			Title: "exec and attach sessions are not recorded: an authorization plugin is the enforcement point (" + strings.Join(d.authz, ", ") + ")",
			Detail: "dockerd shows an authorization plugin only the request that opens a stream, never what is typed or shown in it: " +
				"the trail names who ran docker exec or attach on which container, not what happened inside"})
	}
}

// checkTrail reports the audit trail's state (TrailStatus: whether the
// plugin can write it, what was denied for it) and whether its chain
// holds.
func (a *auditor) checkTrail() {
	path := a.cfg.AuditLog
	if path == "" {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		a.add(Finding{ID: "audit-trail", Status: Skip, Title: "audit trail not checked", Detail: why(path, err) + " (the plugin does not run here, or writes elsewhere: --audit-log)"})
		return
	}
	st, err := authz.ReadTrailStatus(path)
	switch {
	case err != nil:
		a.add(Finding{ID: "audit-trail", Status: Skip, Title: "audit trail state not known", Detail: why(authz.StatusPath(path), err)})
	case st.State == authz.TrailFailing:
		a.add(Finding{ID: "audit-trail", Status: Fail,
			Title: fmt.Sprintf("audit trail %s cannot be written since %s: %d calls denied for it, %d records not in the file",
				path, st.Since.UTC().Format(time.RFC3339), st.Denied, st.Unrecorded),
			Detail: "last error: " + st.LastError + "; calls that change something are denied until it can be written (those records are in the journal only)",
			Fix:    "free space on (or repair) the file system of " + path})
	default:
		f := Finding{ID: "audit-trail", Status: Pass, Title: fmt.Sprintf("audit trail %s is writable (plugin pid %d)", path, st.PID)}
		if st.Denied > 0 || st.Unrecorded > 0 {
			f.Status = Warn
			f.Title += fmt.Sprintf(", but %d calls were denied and %d records not written while it was not", st.Denied, st.Unrecorded)
			f.Detail = fmt.Sprintf("last error, at %s: %s", st.LastErrorAt.UTC().Format(time.RFC3339), st.LastError)
		}
		a.add(f)
	}
	v, err := authz.VerifyAudit(path, nil)
	switch {
	case err != nil:
		a.add(Finding{ID: "audit-trail-chain", Status: Skip, Title: "audit trail chain not checked", Detail: err.Error()})
	case v.Break != nil:
		a.add(Finding{ID: "audit-trail-chain", Status: Fail,
			Title:  fmt.Sprintf("audit trail broken at %s: record %s", v.Break.Where(), v.Break.Kind),
			Detail: v.Break.Detail,
			Fix:    "dtls authz log --verify shows it; compare with the anchors sent elsewhere (dtls authz log --head)"})
	default:
		a.add(Finding{ID: "audit-trail-chain", Status: Pass,
			Title: fmt.Sprintf("audit trail chain holds: %d records, seq %d to %d", v.Records, v.Start.Seq, v.Head.Seq)})
	}
}
