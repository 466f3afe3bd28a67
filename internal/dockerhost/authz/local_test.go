package authz

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLocalRole: an account's own mapping wins over its groups'; groups
// that agree give their role, groups that disagree none; an account
// neither names has none, whatever default_role says.
func TestLocalRole(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"default_role": "developer",
		"unix_users": {"alice": "readonly", "root": "admin"},
		"unix_groups": {"devs": "developer", "ops": "developer", "audit": "readonly"}}`))
	require.NoError(t, err)
	for _, tc := range []struct {
		user   string
		groups []string
		role   string
		why    string
	}{
		{"alice", []string{"devs"}, "readonly", ""},
		{"root", nil, "admin", ""},
		{"bob", []string{"bob", "devs", "ops"}, "developer", ""},
		{"carol", []string{"devs", "audit"}, "", `local user "carol" is in groups that disagree: devs has role developer, audit has role readonly: give the user a role in unix_users`},
		{"dave", []string{"dave"}, "", `local user "dave" has no role: the policy's unix_users names neither it nor, in unix_groups, any of its groups`},
		{"", []string{"devs"}, "", "the uid has no account name: the policy's unix_users and unix_groups name accounts"},
	} {
		role, why := p.LocalRole(tc.user, tc.groups)
		assert.Equal(t, tc.role, role, tc.user)
		assert.Equal(t, tc.why, why, tc.user)
	}
	assert.Contains(t, p.Describe("developer"), "local socket: unix groups devs, ops (the gateway's unix_users and unix_groups)")
	assert.Contains(t, p.Describe("readonly"), "local socket: unix users alice; unix groups audit (the gateway's unix_users and unix_groups)")
}

func TestParseUnixMapsErrors(t *testing.T) {
	for _, tc := range []struct{ policy, err string }{
		{`{"unix_users": {"alice": "ghost"}}`, `unix_users.alice: unknown role "ghost": want one of admin, ci-runner, developer, proxy, readonly, updater`},
		{`{"unix_groups": {"devs": "ci"}}`, `unix_groups.devs: unknown role "ci": want one of admin, ci-runner, developer, proxy, readonly, updater`},
		{`{"unix_users": {"a/b": "admin"}}`, `unix_users: invalid name "a/b": want letters, digits, '_', '.' and '-'`},
		{`{"unix_users": {"alice": 3}}`, `unix_users.alice: want a string, got 3`},
		{`{"unix_users": ["alice"]}`, `unix_users: want a JSON object`},
	} {
		_, err := ParsePolicy([]byte(tc.policy))
		assert.EqualError(t, err, tc.err, tc.policy)
	}
	_, err := ParsePolicy([]byte(`{"roles": {"ci": {"base": "developer"}}, "unix_groups": {"ci": "ci"}}`))
	assert.NoError(t, err, "a role of the file")
}

// TestIdentifyLocal: a local caller's name, role and peer credentials;
// a per-container socket's fixed identity; an unknown account and uid 0
// without a mapping are refused before any policy, and so is everyone
// while the policy is invalid; a local identity without a role is never
// given the default role.
func TestIdentifyLocal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"default_role": "admin", "unix_users": {"alice": "developer"}}`), 0o644))
	e, err := NewEngine(Config{PolicyPath: path})
	require.NoError(t, err)

	c := e.IdentifyLocal(Peer{UID: 1001, GID: 1001, PID: 42, User: "alice", Socket: "/run/dtls/docker.sock"})
	assert.Equal(t, Caller{ID: Identity{User: "unix:alice", Role: "developer", Source: SourceLocal}, UID: "1001", PID: 42, Socket: "/run/dtls/docker.sock"}, c)
	v, rec := e.Decide(c, "POST", "/v1.41/containers/create", []byte(`{"Image": "x", "HostConfig": {"Privileged": true}}`), nil)
	assert.False(t, v.Allow)
	assert.Contains(t, v.Msg, "unix:alice (role developer)")
	assert.Equal(t, "1001", rec.UID)
	assert.Equal(t, 42, rec.PID)
	assert.Equal(t, "/run/dtls/docker.sock", rec.Socket)
	assert.Equal(t, "local", rec.Source)
	assert.Equal(t, "developer", rec.Role)

	for _, p := range []Peer{{UID: 0, User: "root"}, {UID: 1002, User: "mallory"}, {UID: 4242}} {
		c := e.IdentifyLocal(p)
		assert.NotEmpty(t, c.Refused, p.LocalName())
		assert.Empty(t, c.ID.Role, p.LocalName())
		v, rec := e.Decide(c, "GET", "/_ping", nil, nil)
		assert.False(t, v.Allow, p.LocalName())
		assert.Equal(t, ruleLocalNoRole, rec.Rule)
		assert.Empty(t, rec.Role)
	}
	assert.Equal(t, "uid:4242", Peer{UID: 4242}.LocalName())

	s := e.IdentifyLocal(Peer{UID: 0, User: "root", Name: "proxy", Role: "readonly", Socket: "/run/dtls/sockets/proxy.sock"})
	assert.Equal(t, "socket:proxy", s.ID.User)
	assert.Equal(t, "readonly", s.ID.Role)
	v, _ = e.Decide(s, "GET", "/containers/json", nil, nil)
	assert.True(t, v.Allow)
	v, _ = e.Decide(s, "POST", "/containers/create", []byte(`{"Image": "x"}`), nil)
	assert.False(t, v.Allow)

	// No role reaching the policy: denied, never the default (admin).
	d := DefaultPolicy().Decide(Identity{User: "unix:x", Source: SourceLocal}, Request{Method: "GET", URI: "/_ping"})
	assert.False(t, d.Allow)
	assert.Equal(t, "local: no role", d.Rule)

	require.NoError(t, os.WriteFile(path, []byte(`{"unix_users": {"alice": "ghost"}}`), 0o644))
	e, err = NewEngine(Config{PolicyPath: path})
	require.NoError(t, err)
	c = e.IdentifyLocal(Peer{UID: 1001, User: "alice"})
	assert.Equal(t, ruleLocalNoPolicy, c.Rule)
}

// TestSetLocalRole: an entry added, changed and taken out, the file's
// other members kept in order; a role the policy does not define, or a
// bad name, is an error naming it and the file is left as it was.
func TestSetLocalRole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	old, err := SetLocalRole(path, false, "alice", "developer")
	require.NoError(t, err)
	assert.Empty(t, old)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{\n  \"unix_users\": {\n    \"alice\": \"developer\"\n  }\n}\n", string(b))

	require.NoError(t, os.WriteFile(path, []byte(`{"roles": {"ci": {"base": "developer"}}, "unix_users": {"alice": "developer"}, "default_role": "readonly"}`), 0o644))
	old, err = SetLocalRole(path, false, "alice", "ci")
	require.NoError(t, err)
	assert.Equal(t, "developer", old)
	_, err = SetLocalRole(path, true, "devs", "readonly")
	require.NoError(t, err)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"roles": {"ci": {"base": "developer"}}, "unix_users": {"alice": "ci"}, "default_role": "readonly", "unix_groups": {"devs": "readonly"}}`, string(b))
	p, err := LoadPolicy(path)
	require.NoError(t, err)
	role, _ := p.LocalRole("bob", []string{"devs"})
	assert.Equal(t, "readonly", role)

	before := string(b)
	_, err = SetLocalRole(path, false, "alice", "ghost")
	assert.EqualError(t, err, `policy "`+path+`": unix_users.alice: unknown role "ghost": want one of admin, ci, ci-runner, developer, proxy, readonly, updater`)
	_, err = SetLocalRole(path, true, "a/b", "readonly")
	assert.EqualError(t, err, `invalid unix group name "a/b": want letters, digits, '_', '.' and '-'`)
	b, _ = os.ReadFile(path)
	assert.Equal(t, before, string(b))

	old, err = SetLocalRole(path, false, "alice", "")
	require.NoError(t, err)
	assert.Equal(t, "ci", old)
	p, err = LoadPolicy(path)
	require.NoError(t, err)
	role, _ = p.LocalRole("alice", nil)
	assert.Empty(t, role)
}

// TestNetworkCreatesAtOnce: while a network create of a name is allowed
// and unanswered, another of that name is refused (two at once both found
// the name free, and dockerd made both); its answer, or claimTTL, frees
// the name.
func TestNetworkCreatesAtOnce(t *testing.T) {
	e, err := NewEngine(Config{})
	require.NoError(t, err)
	clock := time.Unix(1700000000, 0)
	e.now = func() time.Time { return clock }
	admin := Caller{ID: Identity{User: "root", Source: SourceUnix}}
	body := []byte(`{"Name":"shared","CheckDuplicate":false}`)
	create := func() Verdict {
		v, _ := e.Decide(admin, "POST", "/v1.41/networks/create", body, map[string]string{"Content-Type": "application/json"})
		return v
	}
	require.True(t, create().Allow)
	v := create()
	assert.False(t, v.Allow)
	assert.Contains(t, v.Msg, `a network named "shared" is being created by another call`)
	e.creating.release("shared") // what Observe does with the answer
	require.True(t, create().Allow)
	clock = clock.Add(claimTTL)
	assert.True(t, create().Allow, "a claim whose answer never came outlived claimTTL")
}
