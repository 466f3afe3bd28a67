package authority

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// The inventory records a client's authorization role by name
// (dtls_roles), not by certificate: every certificate of one name has the
// one role, the plugin's answer for any of them. So a certificate issued
// under a name that already holds one with another role changes what that
// one may do as well; IssueClients refuses it unless asked (ChangeRole),
// and says which certificates change.

// RoleChange is a change of the role of a name's certificates.
type RoleChange struct {
	Name string
	// From and To are the roles ("" for the policy's default role).
	From, To string
	// Serials are the name's good, unexpired client certificates the
	// change applies to, already issued ones first (oldest first).
	Serials []string
}

// ErrRoleChange is returned by IssueClients when a new certificate would
// change the role of certificates already issued under its name.
var ErrRoleChange = errors.New("a role is recorded per name")

// describeRole names a role for a message.
func describeRole(role string) string {
	if role == "" {
		return "the policy's default role"
	}
	return "role " + role
}

// goodClients are the serials of a name's good, unexpired client
// certificates, oldest first.
func (a *Authority) goodClients(name string, now time.Time) ([]string, error) {
	recs, err := a.Store.ByName(name)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if !recs[i].NotBefore.Equal(recs[j].NotBefore) {
			return recs[i].NotBefore.Before(recs[j].NotBefore)
		}
		return recs[i].Serial < recs[j].Serial
	})
	var out []string
	for _, r := range recs {
		if r.Kind == store.KindClient && r.Status == store.StatusGood && now.Before(r.NotAfter) {
			out = append(out, r.Serial)
		}
	}
	return out, nil
}

// roleChanges returns, for each name whose recorded role differs from
// role, the change a new certificate with role makes to the certificates
// already issued under it; none for a name that holds no good one but
// those the new ones supersede (replaced).
func (a *Authority) roleChanges(names []string, role string, replaced map[string]bool, now time.Time) ([]*RoleChange, error) {
	var out []*RoleChange
	for _, n := range names {
		cur, err := a.Store.Role(n)
		if err != nil {
			return nil, err
		}
		if cur == role {
			continue
		}
		all, err := a.goodClients(n, now)
		if err != nil {
			return nil, err
		}
		var serials []string
		for _, s := range all {
			if !replaced[s] {
				serials = append(serials, s)
			}
		}
		if len(serials) > 0 {
			out = append(out, &RoleChange{Name: n, From: cur, To: role, Serials: serials})
		}
	}
	return out, nil
}

// refuseRoleChanges is the error for changes not asked for: it names both
// roles and the certificates concerned.
func refuseRoleChanges(changes []*RoleChange) error {
	var msgs []string
	for _, c := range changes {
		msgs = append(msgs, fmt.Sprintf("%q holds client certificate serial %s with %s: a new one with %s would give it %s too",
			c.Name, strings.Join(c.Serials, ", serial "), describeRole(c.From), describeRole(c.To), describeRole(c.To)))
	}
	c := changes[0]
	keep := "--role " + c.From
	if c.From == "" {
		keep = "no --role"
	}
	return hint(fmt.Errorf("%s (%w)", strings.Join(msgs, "; "), ErrRoleChange),
		"give --change-role to change the role of every certificate of %q, issue with %s, or use another name", c.Name, keep)
}
