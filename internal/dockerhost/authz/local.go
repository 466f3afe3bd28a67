package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// SourceLocal is a call over one of the gateway's own unix sockets: the
// local socket, whose callers are known by their peer credentials
// (SO_PEERCRED), or a per-container socket, whose callers all have the
// socket's fixed identity. Unlike SourceUnix (dockerd's own socket, which
// the policy's "unix" setting decides), a local caller has an identity
// and a role, and no role is no access.
const SourceLocal Source = "local"

// Prefixes of a local caller's name. Neither can be a certificate's name
// (pki.ValidateName allows no ':'), so the owners' book never mixes a
// local account, a socket and a certificate holder of the same name.
const (
	// LocalUserPrefix starts the name of an account on the local socket:
	// "unix:alice", or "uid:1234" for a uid with no passwd entry.
	LocalUserPrefix = "unix:"
	// LocalUIDPrefix starts the name of a uid with no account name.
	LocalUIDPrefix = "uid:"
	// SocketPrefix starts the fixed identity of a per-container socket:
	// "socket:traefik".
	SocketPrefix = "socket:"
)

// Rules of a local caller refused before any policy.
const (
	ruleLocalNoRole    = "gateway: local user without a role"
	ruleLocalAmbiguous = "gateway: local user's groups disagree"
	ruleLocalNoPolicy  = "gateway: policy invalid"
	// RuleMisplacedCaller refuses a caller whose process is not one the
	// socket is for: a container's on the local socket; on a
	// per-container socket, a host's, one in a user namespace of its own,
	// or one not root in its container.
	RuleMisplacedCaller = "gateway: caller not one the socket is for"
)

// Peer is a caller of one of the gateway's own unix sockets, as the
// gateway saw it when it accepted the connection.
//
// The kernel records a unix socket's peer credentials when the client
// calls connect(2) (unix(7), SO_PEERCRED), and never updates them: a
// connected socket handed to another process (SCM_RIGHTS, fork, exec into
// another user's program) still carries its first owner's uid and pid.
// The connection is that owner's, whoever writes on it: the same holds of
// a TLS connection's client certificate.
type Peer struct {
	// UID, GID and PID are SO_PEERCRED's (the pid in the gateway's pid
	// namespace: a container's process has its host pid).
	UID, GID uint32
	PID      int32
	// Comm is the command name of the process PID, confirmed through a
	// pidfd (SO_PEERPIDFD, Linux 6.5) to be the one that connected, not
	// another that took its pid after it exited; "" when it could not
	// be.
	Comm string
	// User is the account name of UID ("" when the passwd database has
	// none); Groups the names of its groups, primary and supplementary,
	// read once per connection.
	User   string
	Groups []string
	// Socket is the path of the socket the call came in on.
	Socket string
	// Name and Role make a per-container socket: every caller is
	// "socket:NAME" with Role, whoever it is. Empty Name: the local
	// socket, where the policy's unix_users and unix_groups give the role.
	Name, Role string
	// Misplaced says why the caller's process is not one the socket is
	// for ("" when it is), and refuses every request of the connection:
	// on the local socket, a process in another PID namespace than the
	// gateway's (a container's, whose uids are not the host's accounts:
	// any uid a container's root picks, 'docker exec -u', would be that
	// account, through a descriptor of the socket passed in); on a
	// per-container socket, a process in the gateway's (a host account
	// that reached the file through /proc/PID/root of a container running
	// as its uid, past the sockets' 0700 directory).
	Misplaced string
}

// LocalName is the name a peer is known by: "socket:NAME" on a
// per-container socket, else "unix:USER", or "uid:N" without an account.
func (p Peer) LocalName() string {
	switch {
	case p.Name != "":
		return SocketPrefix + p.Name
	case p.User != "":
		return LocalUserPrefix + p.User
	}
	return LocalUIDPrefix + strconv.FormatUint(uint64(p.UID), 10)
}

// IdentifyLocal works out who a caller of the gateway's own unix sockets
// is, and their role, at each request (a policy change applies from the
// next one). On a per-container socket the socket's role decides. On the
// local socket the policy's unix_users maps the account, else unix_groups
// one of its groups; an account neither names is refused (fail closed:
// default_role is a certificate holder's, never a local account's), and
// so is uid 0 unless the policy names root: root has dockerd's own socket.
func (e *Engine) IdentifyLocal(p Peer) Caller {
	c := Caller{ID: Identity{User: p.LocalName(), Source: SourceLocal},
		UID: strconv.FormatUint(uint64(p.UID), 10), PID: int(p.PID), Comm: p.Comm, Socket: p.Socket}
	if p.Misplaced != "" {
		c.Rule, c.Refused = RuleMisplacedCaller, p.Misplaced
		return c
	}
	if p.Name != "" {
		c.ID.Role = p.Role
		return c
	}
	pol := e.policy().policy
	if pol == nil {
		c.Rule, c.Refused = ruleLocalNoPolicy, "the policy is invalid: every local request is denied until it is fixed"
		return c
	}
	role, why := pol.LocalRole(p.User, p.Groups)
	if role == "" {
		c.Rule, c.Refused = ruleLocalNoRole, why
		if strings.Contains(why, "disagree") {
			c.Rule = ruleLocalAmbiguous
		}
		return c
	}
	c.ID.Role = role
	return c
}

// LocalRole is the role of a local account: its own in unix_users, else
// the one role its groups have in unix_groups. It returns "" and why when
// there is none: no account name (a uid without a passwd entry), no
// mapping, or groups mapped to different roles (denied rather than
// guessed: map the account itself in unix_users).
func (p *Policy) LocalRole(user string, groups []string) (role, why string) {
	if user == "" {
		return "", "the uid has no account name: the policy's unix_users and unix_groups name accounts"
	}
	if r, ok := p.unixUsers[user]; ok {
		return r, ""
	}
	var from []string
	for _, g := range groups {
		r, ok := p.unixGroups[g]
		if !ok {
			continue
		}
		if role != "" && r != role {
			return "", fmt.Sprintf("local user %q is in groups that disagree: %s has role %s, %s has role %s: give the user a role in unix_users",
				user, from[0], role, g, r)
		}
		role = r
		from = append(from, g)
	}
	if role == "" {
		return "", fmt.Sprintf("local user %q has no role: the policy's unix_users names neither it nor, in unix_groups, any of its groups", user)
	}
	return role, ""
}

// localsOf says which local accounts and groups unix_users and
// unix_groups give role, for Describe: "local socket: unix users alice,
// bob; unix groups devs".
func (p *Policy) localsOf(role string) string {
	pick := func(m map[string]string) []string {
		var out []string
		for n, r := range m {
			if r == role {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	var parts []string
	if us := pick(p.unixUsers); len(us) > 0 {
		parts = append(parts, "unix users "+strings.Join(us, ", "))
	}
	if gs := pick(p.unixGroups); len(gs) > 0 {
		parts = append(parts, "unix groups "+strings.Join(gs, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return "local socket: " + strings.Join(parts, "; ") + " (the gateway's unix_users and unix_groups)"
}

// unixName is an account or group name as shadow-utils' useradd accepts
// them (letters, digits, '_', '.', '-', not starting with '-', a trailing
// '$' for machine accounts), 1 to 64 bytes.
var unixName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,62}\$?$`) })

// parseUnixMap reads unix_users or unix_groups: names to roles, checked
// once the roles are known (checkUnixMaps).
func (p *Policy) parseUnixMap(key string, val json.RawMessage) error {
	m := map[string]string{}
	err := object(val, key, func(name string, raw json.RawMessage) error {
		if !unixName().MatchString(name) {
			return fmt.Errorf("%s: invalid name %q: want letters, digits, '_', '.' and '-'", key, name)
		}
		var role string
		if err := str(raw, key+"."+name, &role); err != nil {
			return err
		}
		m[name] = role
		return nil
	})
	if err != nil {
		return err
	}
	if key == "unix_users" {
		p.unixUsers = m
	} else {
		p.unixGroups = m
	}
	return nil
}

// checkUnixMaps checks that unix_users and unix_groups give roles the
// policy defines.
func (p *Policy) checkUnixMaps() error {
	for _, m := range []struct {
		key string
		m   map[string]string
	}{{"unix_users", p.unixUsers}, {"unix_groups", p.unixGroups}} {
		names := make([]string, 0, len(m.m))
		for n := range m.m {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if !p.HasRole(m.m[n]) {
				return fmt.Errorf("%s.%s: unknown role %q: want one of %s", m.key, n, m.m[n], strings.Join(p.Roles(), ", "))
			}
		}
	}
	return nil
}

// SetLocalRole gives the local account (or, with group, the group) name
// the role in the policy file at path, in unix_users (unix_groups), or
// takes its entry out when role is "". It returns the role the entry had
// ("" for none). A missing file is created (0644) with that entry alone.
// The file is rewritten whole (atomically, indented by two spaces), its
// other members kept in their order; it must still be a valid policy,
// so a role the policy does not define is an error naming it, and then
// nothing is written.
func SetLocalRole(path string, group bool, name, role string) (string, error) {
	key, what := "unix_users", "user"
	if group {
		key, what = "unix_groups", "group"
	}
	if !unixName().MatchString(name) {
		return "", fmt.Errorf("invalid unix %s name %q: want letters, digits, '_', '.' and '-'", what, name)
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = []byte("{}")
	case err != nil:
		return "", fmt.Errorf("read policy: %w", err)
	}
	top, err := members(data, "")
	if err != nil {
		return "", fmt.Errorf("policy %q: %w", path, err)
	}
	i := slices.IndexFunc(top, func(m member) bool { return m.key == key })
	if i < 0 {
		top = append(top, member{key, json.RawMessage("{}")})
		i = len(top) - 1
	}
	entries, err := members(top[i].val, key)
	if err != nil {
		return "", fmt.Errorf("policy %q: %w", path, err)
	}
	old := ""
	j := slices.IndexFunc(entries, func(m member) bool { return m.key == name })
	if j >= 0 {
		_ = json.Unmarshal(entries[j].val, &old)
	}
	rv, _ := json.Marshal(role)
	switch {
	case role == "" && j >= 0:
		entries = slices.Delete(entries, j, j+1)
	case role != "" && j >= 0:
		entries[j].val = rv
	case role != "":
		entries = append(entries, member{name, rv})
	}
	top[i].val = encodeMembers(entries)
	out := encodeMembers(top)
	if _, err := ParsePolicy(out); err != nil {
		return "", fmt.Errorf("policy %q: %w", path, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		return "", err
	}
	buf.WriteByte('\n')
	return old, atomicfile.Write(path, buf.Bytes(), 0o644)
}

// member is one member of a JSON object, in the order it was written.
type member struct {
	key string
	val json.RawMessage
}

func members(raw []byte, at string) ([]member, error) {
	var out []member
	err := object(raw, at, func(key string, val json.RawMessage) error {
		out = append(out, member{key, val})
		return nil
	})
	return out, err
}

func encodeMembers(ms []member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		_ = json.Compact(&b, m.val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// LocalRoleOf is the role unix_users (with group, unix_groups) gives
// name, or "(none)".
func (p *Policy) LocalRoleOf(group bool, name string) string {
	m := p.unixUsers
	if group {
		m = p.unixGroups
	}
	if r, ok := m[name]; ok {
		return r
	}
	return "(none)"
}
