package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/revlist"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// staleAfter is how many fetch intervals may pass without a good list
// before the plugin's list counts as out of date: one failed fetch is a
// blip (WARN), three mean the CA has not been reached for a while and
// revocations made there are not enforced here.
const staleAfter = 3

// checkFleetCRL checks, on a host enrolled with an online CA, that the
// authorization plugin follows the CA's revocation list: dockerd checks
// no CRL (moby#27778), so a certificate revoked on the CA is refused here
// only by the plugin, and only once it has fetched a list that names it.
// The plugin records each fetch in STATE_DIR/fleet-crl.json
// (revlist.StatusFile).
func (a *auditor) checkFleetCRL(d *daemonConf) {
	url := a.cfg.CAURL
	if url == "" {
		return
	}
	const id = "fleet-crl"
	if a.cfg.StateDir == "" {
		a.add(Finding{ID: id, Status: Skip, Title: "revocation list of the fleet CA not checked", Detail: "no state directory given"})
		return
	}
	p := filepath.Join(a.cfg.StateDir, revlist.StatusFile)
	st, err := revlist.ReadStatus(a.cfg.StateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(d.authz) == 0:
		a.add(Finding{ID: id, Status: Warn,
			Title:  fmt.Sprintf("no authorization plugin follows the revocation list of the CA at %s", url),
			Detail: fmt.Sprintf("a certificate revoked on the CA keeps working on this daemon until it expires (%s): dockerd checks no CRL (moby#27778)", fleet.Duration(fleet.DefaultClientValidity)),
			Fix:    "sudo dtls init --authz --restart"})
		return
	case errors.Is(err, fs.ErrNotExist):
		a.add(Finding{ID: id, Status: Fail,
			Title:  fmt.Sprintf("the authorization plugin does not follow the revocation list of the CA at %s: there is no %s", url, p),
			Detail: "a certificate revoked on the CA keeps working on this daemon until it expires; dtls authz serve follows the CA that server.json names (ca_url)",
			Fix:    "sudo systemctl restart dtls-authz.service"})
		return
	case err != nil:
		a.add(Finding{ID: id, Status: Skip, Title: "revocation list of the fleet CA not checked", Detail: why(p, err)})
		return
	}

	now := a.cfg.Now
	refresh := st.Refresh()
	if refresh <= 0 {
		refresh = fleet.DefaultCRLRefresh
	}
	limit := staleAfter * refresh
	since := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), fleet.Duration(now.Sub(t).Round(time.Second)))
	}
	list := fmt.Sprintf("the revocation list of %s (number %s, %d entries)", st.ThisUpdate.UTC().Format(time.RFC3339), st.Number, st.Revoked)
	reach := fmt.Sprintf("check that this host reaches the CA and that it runs: curl --cacert %s %s%s -o /dev/null",
		filepath.Join(a.cfg.StateDir, "ca.pem"), st.URL, fleet.PathCRL)
	switch {
	case st.URL != url:
		a.add(Finding{ID: id, Status: Warn,
			Title:  fmt.Sprintf("the authorization plugin follows the CA at %s, but server.json names %s", st.URL, url),
			Detail: "the plugin was started with another --ca-url, or before the host enrolled again",
			Fix:    "sudo systemctl restart dtls-authz.service"})
	case !st.HasList():
		a.add(Finding{ID: id, Status: Fail,
			Title:  fmt.Sprintf("the authorization plugin has no revocation list from the CA at %s: it denies every certificate of the fleet", url),
			Detail: st.LastError,
			Fix:    reach})
	case st.LastError != "" && now.Sub(st.LastSuccess) > limit:
		detail := fmt.Sprintf("its last good fetch was at %s: certificates revoked on the CA since are not refused here", since(st.LastSuccess))
		if now.After(st.NextUpdate) {
			detail += "; the list is past its nextUpdate"
		}
		if now.Sub(st.LastAttempt) > limit {
			detail += fmt.Sprintf("; it has not asked since %s: is dtls authz serve running?", since(st.LastAttempt))
		}
		a.add(Finding{ID: id, Status: Fail,
			Title:  fmt.Sprintf("the authorization plugin enforces %s; it cannot reach the CA at %s: %s", list, url, st.LastError),
			Detail: detail,
			Fix:    reach})
	case now.Sub(st.LastAttempt) > limit:
		a.add(Finding{ID: id, Status: Fail,
			Title: fmt.Sprintf("the authorization plugin enforces %s; it has not asked the CA at %s since %s", list, url, since(st.LastAttempt)),
			Detail: fmt.Sprintf("it asks every %s when it runs: certificates revoked on the CA since are not refused here",
				fleet.Duration(refresh)),
			Fix: "sudo systemctl status dtls-authz.service"})
	case st.LastError != "":
		a.add(Finding{ID: id, Status: Warn,
			Title:  fmt.Sprintf("the authorization plugin's last fetch of the revocation list from the CA at %s failed: %s", url, st.LastError),
			Detail: fmt.Sprintf("it enforces %s, fetched at %s", list, since(st.LastSuccess)),
			Fix:    reach})
	default:
		a.add(Finding{ID: id, Status: Pass,
			Title: fmt.Sprintf("the authorization plugin follows the revocation list of the CA at %s: number %s of %s, %d entries, fetched at %s",
				url, st.Number, st.ThisUpdate.UTC().Format(time.RFC3339), st.Revoked, since(st.LastSuccess))})
	}
}
