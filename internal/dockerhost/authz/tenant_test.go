package authz

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTenantRoles: the built-in roles of per-container sockets decide as
// their tools need, over a per-container socket's identity. The proxy
// reads every container and writes nothing; the updater replaces a
// container it did not create only when it could create it (and never
// as privileged); the CI runner is developer with build, on its own
// containers only.
func TestTenantRoles(t *testing.T) {
	p := DefaultPolicy()
	sock := func(role string) Identity { return Identity{User: "socket:" + role, Role: role, Source: SourceLocal} }
	web, priv := strings.Repeat("a", 64), strings.Repeat("f", 64)
	tests := []struct {
		role, method, uri string
		body              []byte
		rule              string // "" = allowed
	}{
		{"proxy", "GET", "/v1.41/containers/json?all=1", nil, ""},
		{"proxy", "GET", "/v1.41/containers/" + web + "/json", nil, ""},
		{"proxy", "GET", "/v1.41/containers/adminbox/json", nil, ""},
		{"proxy", "GET", "/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D", nil, ""},
		{"proxy", "HEAD", "/_ping", nil, ""},
		{"proxy", "GET", "/v1.41/networks/devnet", nil, ""},
		{"proxy", "POST", "/v1.41/containers/create", cli(t, "run-alpine"), "proxy: default deny: POST /containers/create"},
		{"proxy", "POST", "/v1.41/containers/web/kill", nil, "proxy: default deny: POST /containers/{id}/kill"},
		{"proxy", "POST", "/v1.41/containers/web/exec", []byte(`{"Cmd":["sh"]}`), "proxy: default deny: POST /containers/{id}/exec"},
		{"proxy", "GET", "/v1.41/containers/web/logs", nil, "proxy: default deny: GET /containers/{id}/logs"},

		{"updater", "GET", "/v1.41/containers/other/json", nil, ""},
		{"updater", "POST", "/v1.41/images/create?fromImage=alpine&tag=3", nil, ""},
		{"updater", "POST", "/v1.41/containers/web/kill?signal=SIGTERM", nil, ""},
		{"updater", "DELETE", "/v1.41/containers/other?force=1", nil, ""},
		{"updater", "POST", "/v1.41/containers/create?name=web", cli(t, "run-alpine"), ""},
		{"updater", "POST", "/v1.41/containers/create?name=web",
			with(t, cli(t, "run-alpine"), "HostConfig.MaskedPaths", defaultPaths["MaskedPaths"], "HostConfig.ReadonlyPaths", defaultPaths["ReadonlyPaths"]), ""},
		{"updater", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.Privileged", true),
			"updater: allow POST /containers/create: HostConfig.Privileged"},
		{"updater", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.MaskedPaths", defaultPaths["MaskedPaths"][1:]),
			"updater: allow POST /containers/create: HostConfig.MaskedPaths"},
		{"updater", "POST", "/v1.41/containers/" + priv + "/kill", nil, "updater: allow POST /containers/{id}/kill: Privileged"},
		{"updater", "DELETE", "/v1.41/containers/etcbox?force=1", nil, "updater: allow DELETE /containers/{id}: Binds"},
		{"updater", "POST", "/v1.41/containers/adminbox/rename?name=x", nil, "updater: allow POST /containers/{id}/rename: Privileged"},
		{"updater", "DELETE", "/v1.41/images/alpine?force=1", nil, "updater: allow DELETE /images/{name}: force"},
		{"updater", "POST", "/v1.41/containers/web/exec", []byte(`{"Cmd":["sh"]}`), "updater: default deny: POST /containers/{id}/exec"},
		{"updater", "POST", "/v1.41/images/create?fromSrc=-", nil, "updater: allow POST /images/create: fromSrc"},

		{"ci-runner", "POST", "/v1.41/containers/create", cli(t, "run-alpine"), ""},
		{"ci-runner", "POST", "/v1.41/build", nil, ""},
		{"ci-runner", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.Privileged", true),
			"ci-runner: POST /containers/create: HostConfig.Privileged"},
		{"ci-runner", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.NetworkMode", "host"),
			"ci-runner: POST /containers/create: HostConfig.NetworkMode"},
		{"ci-runner", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.MaskedPaths", defaultPaths["MaskedPaths"]),
			"ci-runner: POST /containers/create: HostConfig.MaskedPaths"},
		{"ci-runner", "POST", "/v1.41/containers/web/exec", []byte(`{"Cmd":["sh"]}`), "ci-runner: POST /containers/{id}/exec: container"},
		{"ci-runner", "GET", "/v1.41/containers/web/json", nil, "ci-runner: GET /containers/{id}/json: container"},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.method+" "+tt.uri, func(t *testing.T) {
			r := Request{Method: tt.method, URI: tt.uri, Body: tt.body, Env: &Env{Objects: testObjects(), CheckRoot: okRoots}}
			if tt.body != nil {
				r.Headers = map[string]string{"Content-Type": "application/json"}
			}
			if tt.method == "POST" && tt.body == nil {
				r.Headers = map[string]string{"Content-Length": "0"}
			}
			d := p.Decide(sock(tt.role), r)
			if tt.rule == "" {
				assert.True(t, d.Allow, "%s: %s", d.Rule, d.Reason)
				return
			}
			assert.False(t, d.Allow)
			assert.Equal(t, tt.rule, d.Rule, d.Reason)
		})
	}
}

// TestTenantRolesDescribed: 'dtls authz explain' shows each tenant role
// with its tool, and the updater's rule; a policy file extends them and
// cannot redefine them.
func TestTenantRolesDescribed(t *testing.T) {
	p := DefaultPolicy()
	desc := strings.Join(p.Describe(RoleUpdater), "\n")
	assert.Contains(t, desc, "role updater: built in (an updater (watchtower)")
	assert.Contains(t, desc, "deny  stopping, killing, removing, renaming or starting a container it did not create and could not create as it is now")
	assert.Contains(t, desc, "allow POST /containers/{id}/kill  (policy rule)")
	assert.Contains(t, strings.Join(p.Describe(RoleCIRunner), "\n"), "role ci-runner: built in, based on developer (a CI runner")
	assert.Contains(t, strings.Join(p.Describe(RoleCIRunner), "\n"), "capabilities: build")
	assert.Contains(t, strings.Join(p.Describe(RoleProxy), "\n"), "allow GET /events  (policy rule)")

	// A policy written before the tenant roles, with a role of one of
	// their names, still loads, with its own: an upgrade denies nothing
	// it allowed. The core roles stay the policy's ground.
	own, err := ParsePolicy([]byte(`{"roles": {"proxy": {"base": "readonly", "deny": ["GET /events"]}, "mine": {"base": "proxy"}}}`))
	require.NoError(t, err)
	for _, r := range []string{"proxy", "mine"} {
		d := own.Decide(Identity{User: "socket:p", Role: r, Source: SourceLocal}, Request{Method: "GET", URI: "/v1.41/events"})
		assert.False(t, d.Allow, "%s: the file's proxy denies GET /events, the built-in one allows it", r)
		d = own.Decide(Identity{User: "socket:p", Role: r, Source: SourceLocal}, Request{Method: "GET", URI: "/v1.41/images/json"})
		assert.True(t, d.Allow, "%s: the file's proxy is based on readonly: %s", r, d.Reason)
	}
	_, err = ParsePolicy([]byte(`{"roles": {"developer": {"base": "readonly"}}}`))
	assert.EqualError(t, err, `roles.developer: the built-in role "developer" cannot be redefined: give the role another name, with "base": "developer"`)
	q, err := ParsePolicy([]byte(`{"roles": {"watchtower": {"base": "updater", "deny": ["POST /containers/{id}/rename"]}}}`))
	require.NoError(t, err)
	d := q.Decide(Identity{User: "socket:wt", Role: "watchtower", Source: SourceLocal},
		Request{Method: "POST", URI: "/v1.41/containers/" + strings.Repeat("f", 64) + "/kill", Env: &Env{Objects: testObjects(), CheckRoot: okRoots}})
	assert.Equal(t, "watchtower: allow POST /containers/{id}/kill: Privileged", d.Rule, "a role based on updater keeps its rule")
}

// TestCreateHostCgroupnsDefault: "CgroupnsMode": "host", as an inspect
// reports it on a cgroup v1 host and an updater sends it back, is allowed
// to the updater where it is dockerd's default (Env.HostCgroupns) and
// refused elsewhere; developer is refused it everywhere.
func TestCreateHostCgroupnsDefault(t *testing.T) {
	p := DefaultPolicy()
	body := with(t, cli(t, "run-alpine"), "HostConfig.CgroupnsMode", "host")
	for _, tt := range []struct {
		role  string
		v1    bool
		allow bool
	}{{RoleUpdater, true, true}, {RoleUpdater, false, false}, {RoleDeveloper, true, false}, {RoleCIRunner, true, false}} {
		d := p.Decide(Identity{User: "socket:x", Role: tt.role, Source: SourceLocal},
			Request{Method: "POST", URI: "/v1.41/containers/create", Body: body,
				Headers: map[string]string{"Content-Type": "application/json"},
				Env:     &Env{Objects: testObjects(), CheckRoot: okRoots, HostCgroupns: tt.v1}})
		assert.Equal(t, tt.allow, d.Allow, "%s, cgroup v1 %v: %s: %s", tt.role, tt.v1, d.Rule, d.Reason)
	}
}

// TestCIRunnerNoBuildKit: ci-runner builds with the classic builder,
// whose query the policy reads, but not through BuildKit's opaque
// /session and /grpc, where dockerd would grant the host network; a
// policy's own role with the build capability keeps them.
func TestCIRunnerNoBuildKit(t *testing.T) {
	p := DefaultPolicy()
	id := Identity{User: "socket:ci", Role: RoleCIRunner, Source: SourceLocal}
	assert.True(t, p.Decide(id, Request{Method: "POST", URI: "/v1.41/build"}).Allow, "an untagged classic build")
	for _, uri := range []string{"/session", "/grpc"} {
		d := p.Decide(id, Request{Method: "POST", URI: "/v1.41" + uri})
		assert.False(t, d.Allow, uri)
		assert.Contains(t, d.Rule, "ci-runner: deny POST "+uri, uri)
	}
	own, err := ParsePolicy([]byte(`{"roles": {"builder": {"base": "developer", "capabilities": ["build"]}}}`))
	require.NoError(t, err)
	assert.True(t, own.Decide(Identity{User: "b", Role: "builder", Source: SourceTCP}, Request{Method: "POST", URI: "/v1.41/grpc"}).Allow)
}
