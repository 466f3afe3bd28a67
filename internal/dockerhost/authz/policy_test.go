package authz

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type decideCase struct {
	role        string
	method, uri string
	body        []byte
	rule        string // the whole rule
	why         string // part of the reason of a denial; "" when allowed
}

func runDecideCases(t *testing.T, p *Policy, cases []decideCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.role+" "+c.method+" "+c.uri, func(t *testing.T) {
			r := Request{Method: c.method, URI: c.uri, Headers: map[string]string{"Content-Length": "0"}}
			if c.body != nil {
				r = post(c.uri, c.body)
				r.Method = c.method
			}
			r.Env = &Env{Objects: testObjects(), CheckRoot: okRoots}
			d := p.Decide(Identity{User: "alice", Role: c.role, Source: SourceTCP}, r)
			assert.Equal(t, c.rule, d.Rule)
			assert.Equal(t, c.why == "", d.Allow, d.Reason)
			assert.Contains(t, d.Reason, c.why)
		})
	}
}

func TestDecideReadonly(t *testing.T) {
	const ro = RoleReadonly
	run := cli(t, "run-alpine")
	runDecideCases(t, DefaultPolicy(), []decideCase{
		{ro, "GET", "/v1.41/containers/json", nil, "readonly: GET /containers/json", ""},
		{ro, "GET", "/v1.41/containers/json?all=1&x=/archive", nil, "readonly: GET /containers/json", ""},
		{ro, "HEAD", "/_ping", nil, "readonly: HEAD /_ping", ""},
		{ro, "GET", "/_ping", nil, "readonly: GET /_ping", ""},
		{ro, "GET", "/v1.41/version", nil, "readonly: GET /version", ""},
		{ro, "GET", "/v1.41/info", nil, "readonly: GET /info", ""},
		{ro, "GET", "/v1.41/events?since=1", nil, "readonly: GET /events", ""},
		{ro, "GET", "/v1.41/containers/web/json", nil, "readonly: GET /containers/{id}/json", ""},
		{ro, "GET", "/v1.41/containers/web/top", nil, "readonly: GET /containers/{id}/top", ""},
		// another's inspect holds their Config.Env: refused whole
		{ro, "GET", "/v1.41/containers/other/json", nil, "readonly: GET /containers/{id}/json: container", "was created by someone else"},
		{ro, "GET", "/v1.41/containers/abc/json", nil, "readonly: GET /containers/{id}/json: container", `no container "abc"`},
		{ro, "GET", "/v1.41/volumes/admindata", nil, "readonly: GET /volumes/{name}: volume", "was created by someone else"},
		{ro, "GET", "/v1.41/images/json", nil, "readonly: GET /images/json", ""},
		{ro, "GET", "/v1.41/images/docker.io/library/alpine:latest/json", nil, "readonly: GET /images/{name}/json", ""},
		{ro, "GET", "/v1.41/networks", nil, "readonly: GET /networks", ""},
		{ro, "GET", "/v1.41/networks/", nil, "readonly: GET /networks", ""},
		{ro, "GET", "/v1.41/volumes", nil, "readonly: GET /volumes", ""},
		{ro, "GET", "/v1.41/system/df", nil, "readonly: GET /system/df", ""},
		{ro, "HEAD", "/v1.41/containers/json", nil, "readonly: GET /containers/json", ""},
		{ro, "GET", "/v1.24/containers/json", nil, "readonly: GET /containers/json", ""},
		{ro, "GET", "http://docker/v1.41/containers/json", nil, "readonly: GET /containers/json", ""},
		// the reads that copy data out
		{ro, "GET", "/v1.41/containers/abc/archive?path=/", nil, "readonly: default deny: GET /containers/{id}/archive", "docker cp"},
		{ro, "HEAD", "/v1.41/containers/abc/archive?path=/etc/shadow", nil, "readonly: default deny: HEAD /containers/{id}/archive", "docker cp"},
		{ro, "GET", "/v1.41/containers/abc/export", nil, "readonly: default deny: GET /containers/{id}/export", "docker export"},
		{ro, "GET", "/v1.41/images/get?names=alpine", nil, "readonly: default deny: GET /images/get", "docker save"},
		{ro, "GET", "/v1.41/images/alpine/get", nil, "readonly: default deny: GET /images/{name}/get", "docker save"},
		{ro, "GET", "/v1.41/images/library/alpine/get", nil, "readonly: default deny: GET /images/{name}/get", "docker save"},
		{ro, "GET", "/v1.41/containers/abc/logs?stdout=1", nil, "readonly: default deny: GET /containers/{id}/logs", "logs"},
		{ro, "GET", "/v1.41/containers/abc/attach/ws?stdin=1", nil, "readonly: default deny: GET /containers/{id}/attach/ws", "stdin"},
		{ro, "POST", "/v1.41/containers/abc/attach?stdin=1", nil, "readonly: default deny: POST /containers/{id}/attach", "developer and admin"},
		// the reads that make dockerd reach a registry, from the host
		{ro, "GET", "/v1.41/images/search?term=127.0.0.1:5000/x", nil, "readonly: default deny: GET /images/search", "developer and admin"},
		{ro, "GET", "/v1.41/distribution/127.0.0.1:5000/x:1/json", nil, "readonly: default deny: GET /distribution/{name}/json", "developer and admin"},
		{RoleDeveloper, "GET", "/v1.41/images/search?term=alpine", nil, "developer: GET /images/search", ""},
		{RoleDeveloper, "GET", "/v1.41/distribution/alpine:3/json", nil, "developer: GET /distribution/{name}/json", ""},
		// writes
		{ro, "POST", "/v1.41/containers/create", run, "readonly: default deny: POST /containers/create", "developer and admin"},
		{ro, "POST", "/v1.41/containers/abc/start", nil, "readonly: default deny: POST /containers/{id}/start", "developer and admin"},
		{ro, "POST", "/v1.41/containers/abc/exec", cli(t, "exec-plain"), "readonly: default deny: POST /containers/{id}/exec", "developer and admin"},
		{ro, "DELETE", "/v1.41/containers/abc", nil, "readonly: default deny: DELETE /containers/{id}", "developer and admin"},
		{ro, "POST", "/v1.41/images/create?fromImage=alpine", nil, "readonly: default deny: POST /images/create", "developer and admin"},
		// a query or a suffix does not turn a read into another read
		{ro, "GET", "/v1.41/containers/abc/archive?x=/json", nil, "readonly: default deny: GET /containers/{id}/archive", "docker cp"},
		{ro, "GET", "/v1.41/containers/x/archive/json", nil, "readonly: GET /containers/{id}/json: container", `no container "x/archive"`},
		// API versions, the canonical path
		{ro, "GET", "/v1.23/containers/json", nil, "readonly: API version", `API version "1.23" is older than 1.24`},
		{ro, "GET", "/v1.41/containers/x%2F..%2Fcreate", nil, "request: path", "is not clean"},
		{ro, "GET", "/v1.41/containers/json%3Fall=1", nil, "readonly: unknown endpoint", "not a Docker API endpoint the policy knows"},
		{ro, "GET", "/Containers/json", nil, "readonly: unknown endpoint", "only admin may call it"},
		{ro, "get", "/containers/json", nil, "readonly: unknown endpoint", "only admin may call it"},
		{ro, "GET", "/v1.41/debug/pprof/heap", nil, "readonly: default deny: * /debug/pprof/{name}", "admin only"},
		{ro, "OPTIONS", "/v1.41/containers/json", nil, "readonly: default deny: OPTIONS /{any}", "admin only"},
	})
}

func TestDecideDeveloper(t *testing.T) {
	const dev = RoleDeveloper
	runDecideCases(t, DefaultPolicy(), []decideCase{
		{dev, "POST", "/v1.41/containers/create?name=web", cli(t, "run-alpine"), "developer: POST /containers/create", ""},
		{dev, "POST", "/v1.41/containers/web/start", nil, "developer: POST /containers/{id}/start", ""},
		{dev, "POST", "/v1.41/containers/web/stop?t=10", nil, "developer: POST /containers/{id}/stop", ""},
		{dev, "POST", "/v1.41/containers/web/kill", nil, "developer: POST /containers/{id}/kill", ""},
		{dev, "POST", "/v1.41/containers/web/restart", nil, "developer: POST /containers/{id}/restart", ""},
		{dev, "POST", "/v1.41/containers/web/wait?condition=removed", nil, "developer: POST /containers/{id}/wait", ""},
		{dev, "POST", "/v1.41/containers/web/attach?stream=1&stdin=1", nil, "developer: POST /containers/{id}/attach", ""},
		{dev, "GET", "/v1.41/containers/web/attach/ws", nil, "developer: GET /containers/{id}/attach/ws", ""},
		{dev, "GET", "/v1.41/containers/web/logs?follow=1", nil, "developer: GET /containers/{id}/logs", ""},
		{dev, "POST", "/v1.41/containers/web/exec", cli(t, "exec-plain"), "developer: POST /containers/{id}/exec", ""},
		// a command its record could not show whole: the padding before
		// it was all the trail kept (found by a red team)
		{dev, "POST", "/v1.41/containers/web/exec", []byte(`{"Cmd":["/t","` + strings.Repeat("A", 9<<10) + `","write","/tmp/backdoor"]}`), "developer: POST /containers/{id}/exec: record", "more than an audit record keeps"},
		{dev, "POST", "/v1.41/containers/web/exec", []byte(`{"Cmd":["sh","-c","` + strings.Repeat("A", 4<<10) + `"]}`), "developer: POST /containers/{id}/exec", ""},
		{dev, "POST", "/v1.41/exec/1111111111111111111111111111111111111111111111111111111111111111/start", []byte(`{"Detach":false,"Tty":false}`), "developer: POST /exec/{id}/start", ""},
		{dev, "POST", "/v1.41/exec/2222222222222222222222222222222222222222222222222222222222222222/start", []byte(`{"Detach":false,"Tty":false}`), "developer: POST /exec/{id}/start: exec", "someone else"},
		{dev, "POST", "/v1.41/exec/3333333333333333333333333333333333333333333333333333333333333333/start", []byte(`{"Detach":false,"Tty":false}`), "developer: POST /exec/{id}/start: container", "someone else"},
		{dev, "DELETE", "/v1.41/images/alpine?force=1&noprune=0", nil, "developer: DELETE /images/{name}: force", "docker rmi -f"},
		{dev, "DELETE", "/v1.41/images/alpine?force=0", nil, "developer: DELETE /images/{name}", ""},
		// an image in another identity's namespace (bob owns a
		// container in the book), by tag or by ID; one's own
		{dev, "DELETE", "/v1.41/images/bob/app:1", nil, "developer: DELETE /images/{name}: name", `in the namespace of "bob", another identity`},
		{dev, "DELETE", "/v1.41/images/sha256:" + strings.Repeat("8", 64), nil, "developer: DELETE /images/{name}: name", `tagged "127.0.0.1:5000/bob/app:1"`},
		{dev, "DELETE", "/v1.41/images/alice/app:1", nil, "developer: DELETE /images/{name}", ""},
		{dev, "POST", "/v1.41/containers/create?name=cafe", cli(t, "run-alpine"), "developer: POST /containers/create: name", "hexadecimal digits only"},
		{dev, "POST", "/v1.41/containers/create?name=cafe-1", cli(t, "run-alpine"), "developer: POST /containers/create", ""},
		{dev, "POST", "/v1.41/containers/web/rename?name=0123abc", nil, "developer: POST /containers/{id}/rename: name", "hexadecimal digits only"},
		{dev, "POST", "/v1.41/containers/web/rename?name=web2", nil, "developer: POST /containers/{id}/rename", ""},
		{dev, "POST", "/v1.41/containers/beef/kill", nil, "developer: POST /containers/{id}/kill: container", "also reads as an ID prefix"},
		{dev, "POST", "/v1.41/containers/5555/kill", nil, "developer: POST /containers/{id}/kill", ""},
		{dev, "POST", "/v1.41/containers/adminbox/kill", nil, "developer: POST /containers/{id}/kill: container", "someone else"},
		{dev, "DELETE", "/v1.41/containers/other", nil, "developer: DELETE /containers/{id}: container", "someone else"},
		{dev, "POST", "/v1.41/containers/other/rename?name=x", nil, "developer: POST /containers/{id}/rename: container", "someone else"},
		{dev, "GET", "/v1.41/containers/other/logs", nil, "developer: GET /containers/{id}/logs: container", "someone else"},
		{dev, "POST", "/v1.41/containers/other/attach?stream=1", nil, "developer: POST /containers/{id}/attach: container", "someone else"},
		{dev, "DELETE", "/v1.41/volumes/admindata", nil, "developer: DELETE /volumes/{name}: volume", "someone else"},
		{dev, "DELETE", "/v1.41/volumes/mine", nil, "developer: DELETE /volumes/{name}", ""},
		{dev, "DELETE", "/v1.41/networks/prodnet", nil, "developer: DELETE /networks/{id}: network", "someone else"},
		{dev, "DELETE", "/v1.41/networks/devnet", nil, "developer: DELETE /networks/{id}", ""},
		{dev, "POST", "/v1.41/networks/devnet/connect", []byte(`{"Container":"adminbox"}`), "developer: POST /networks/{id}/connect: Container", "someone else"},
		{dev, "POST", "/v1.41/networks/devnet/connect", []byte(`{"Container":"web"}`), "developer: POST /networks/{id}/connect", ""},
		{dev, "POST", "/v1.41/networks/prodnet/connect", []byte(`{"Container":"web"}`), "developer: POST /networks/{id}/connect: network", "someone else"},
		{dev, "POST", "/v1.41/networks/bridge/connect", []byte(`{"Container":"web"}`), "developer: POST /networks/{id}/connect", ""},
		{dev, "DELETE", "/v1.41/containers/web?force=1", nil, "developer: DELETE /containers/{id}", ""},
		{dev, "POST", "/v1.41/images/create?fromImage=alpine&tag=latest", nil, "developer: POST /images/create", ""},
		{dev, "POST", "/v1.41/auth", nil, "developer: POST /auth", ""},
		{dev, "POST", "/v1.41/volumes/create", cli(t, "volume-plain"), "developer: POST /volumes/create", ""},
		{dev, "POST", "/v1.41/networks/create", cli(t, "network-bridge"), "developer: POST /networks/create", ""},
		{dev, "GET", "/v1.41/containers/json", nil, "developer: GET /containers/json", ""},
		// what reads or writes any container's files as root, or replaces images
		{dev, "GET", "/v1.41/containers/web/archive?path=/", nil, "developer: default deny: GET /containers/{id}/archive", "admin only"},
		{dev, "PUT", "/v1.41/containers/web/archive?path=/", nil, "developer: default deny: PUT /containers/{id}/archive", "admin only"},
		{dev, "GET", "/v1.41/containers/web/export", nil, "developer: default deny: GET /containers/{id}/export", "admin only"},
		{dev, "POST", "/v1.41/commit?container=web", nil, "developer: default deny: POST /commit", "admin only"},
		{dev, "POST", "/v1.41/images/alpine/tag?repo=nginx", nil, "developer: default deny: POST /images/{name}/tag", "admin only"},
		{dev, "POST", "/v1.41/containers/web/update", []byte(`{}`), "developer: default deny: POST /containers/{id}/update", "admin only"},
		// capabilities
		{dev, "POST", "/v1.41/build?t=x", nil, "developer: default deny: POST /build", "needs the build capability"},
		{dev, "POST", "/session", nil, "developer: default deny: POST /session", "needs the build capability"},
		{dev, "POST", "/grpc", nil, "developer: default deny: POST /grpc", "needs the build capability"},
		{dev, "POST", "/v1.41/plugins/pull?remote=x", nil, "developer: default deny: POST /plugins/pull", "needs the plugins capability"},
		{dev, "GET", "/v1.41/plugins", nil, "developer: default deny: GET /plugins", "needs the plugins capability"},
		{dev, "POST", "/v1.41/swarm/join", nil, "developer: default deny: POST /swarm/join", "needs the swarm capability"},
		{dev, "GET", "/v1.41/nodes", nil, "developer: default deny: GET /nodes", "needs the swarm capability"},
		{dev, "GET", "/v1.41/secrets", nil, "developer: default deny: GET /secrets", "needs the secrets capability"},
		{dev, "POST", "/v1.41/configs/create", []byte(`{}`), "developer: default deny: POST /configs/create", "needs the secrets capability"},
		{dev, "POST", "/v1.41/containers/prune", nil, "developer: default deny: POST /containers/prune", "needs the prune capability"},
		{dev, "POST", "/v1.41/volumes/prune", nil, "developer: default deny: POST /volumes/prune", "needs the prune capability"},
		// encoded paths
		{dev, "POST", "/v1.41/containers/x%2F..%2Fcreate", cli(t, "run-privileged"), "request: path", "is not clean"},
		{dev, "POST", "/v1.41/containers/%2e%2e/create", cli(t, "run-privileged"), "request: path", "is not clean"},
		{dev, "POST", "/v1.41/containers//create", cli(t, "run-privileged"), "request: path", "is not clean"},
		{dev, "POST", "/v1.41/containers/create#x", cli(t, "run-privileged"), "request: path", "fragment"},
		{dev, "POST", "/v1.41/containers%2Fcreate", cli(t, "run-privileged"), "developer: POST /containers/create: HostConfig.Privileged", "privileged"},
		{dev, "POST", "/v1.23/containers/web/start", []byte(`{"Privileged":true}`), "developer: API version", "older than 1.24"},
	})
}

func TestDecideCapabilities(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {
		"builder":  {"base": "developer", "capabilities": ["build"]},
		"plugger":  {"base": "readonly", "capabilities": ["plugins"]},
		"swarmer":  {"base": "readonly", "capabilities": ["swarm"]},
		"keeper":   {"capabilities": ["secrets"]},
		"pruner":   {"base": "developer", "capabilities": ["prune"]}}}`))
	require.NoError(t, err)
	runDecideCases(t, p, []decideCase{
		{"builder", "POST", "/v1.41/build?t=alice/app", nil, "builder: capability build: POST /build", ""},
		{"builder", "POST", "/session", nil, "builder: capability build: POST /session", ""},
		{"builder", "POST", "/grpc", nil, "builder: capability build: POST /grpc", ""},
		{"builder", "POST", "/v1.41/build/prune", nil, "builder: capability build: POST /build/prune", ""},
		{"builder", "POST", "/v1.41/build/cancel?id=x", nil, "builder: capability build: POST /build/cancel", ""},
		{"builder", "POST", "/v1.41/plugins/pull", nil, "builder: default deny: POST /plugins/pull", "plugins capability"},
		{"builder", "POST", "/v1.41/containers/create", cli(t, "run-privileged"), "builder: POST /containers/create: HostConfig.Privileged", "privileged"},
		{"plugger", "GET", "/v1.41/plugins", nil, "plugger: capability plugins: GET /plugins", ""},
		{"plugger", "POST", "/v1.41/plugins/pull?remote=vieux/sshfs", nil, "plugger: capability plugins: POST /plugins/pull", ""},
		{"plugger", "POST", "/v1.41/plugins/vieux/sshfs:latest/enable", nil, "plugger: capability plugins: POST /plugins/{name}/enable", ""},
		{"plugger", "POST", "/v1.41/build", nil, "plugger: default deny: POST /build", "build capability"},
		{"swarmer", "GET", "/v1.41/services", nil, "swarmer: capability swarm: GET /services", ""},
		{"swarmer", "POST", "/v1.41/services/create", cli(t, "service-plain"), "swarmer: capability swarm: POST /services/create", ""},
		{"swarmer", "POST", "/v1.41/swarm/join", []byte(`{}`), "swarmer: capability swarm: POST /swarm/join", ""},
		{"swarmer", "GET", "/v1.41/tasks/t1/logs", nil, "swarmer: capability swarm: GET /tasks/{id}/logs", ""},
		{"swarmer", "GET", "/v1.41/secrets", nil, "swarmer: default deny: GET /secrets", "secrets capability"},
		{"keeper", "GET", "/v1.41/secrets", nil, "keeper: capability secrets: GET /secrets", ""},
		{"keeper", "POST", "/v1.41/configs/create", []byte(`{}`), "keeper: capability secrets: POST /configs/create", ""},
		{"keeper", "GET", "/v1.41/_ping", nil, "keeper: default deny: GET /_ping", "not granted to this role"},
		{"pruner", "POST", "/v1.41/images/prune", nil, "pruner: capability prune: POST /images/prune", ""},
		{"pruner", "POST", "/v1.41/networks/prune", nil, "pruner: capability prune: POST /networks/prune", ""},
		{RoleAdmin, "POST", "/v1.41/plugins/pull", nil, "admin: everything", ""},
		{RoleAdmin, "POST", "/v1.41/swarm/init", nil, "admin: everything", ""},
	})
}

func TestDecideRoles(t *testing.T) {
	p := DefaultPolicy()
	list := Request{Method: "GET", URI: "/v1.41/containers/json"}
	create := post("/v1.41/containers/create", cli(t, "run-alpine"))

	// no role: the default, readonly
	d := p.Decide(Identity{User: "carol", Source: SourceTCP}, list)
	assert.True(t, d.Allow)
	assert.Equal(t, "readonly: GET /containers/json", d.Rule)
	assert.Equal(t, "/containers/json", d.Path)
	d = p.Decide(Identity{User: "carol", Source: SourceTCP}, create)
	assert.False(t, d.Allow)
	assert.Equal(t, "readonly: default deny: POST /containers/create", d.Rule)

	d = p.Decide(Identity{User: "dave", Role: "ghost", Source: SourceTCP}, list)
	assert.False(t, d.Allow)
	assert.Equal(t, "ghost: unknown role", d.Rule)
	assert.Equal(t, `role "ghost" is not defined by the policy (it defines admin, ci-runner, developer, proxy, readonly, updater)`, d.Reason)
	assert.Equal(t, "/containers/json", d.Path)

	for _, r := range []Request{{URI: "/_ping"}, {Method: "GET"}, {}} {
		d = p.Decide(Identity{Role: RoleAdmin, Source: SourceTCP}, r)
		assert.False(t, d.Allow)
		assert.Equal(t, "request: incomplete", d.Rule)
		assert.Equal(t, "the request has no method or no URI", d.Reason)
	}
	d = p.Decide(Identity{Role: RoleAdmin, Source: SourceTCP}, Request{Method: "GET", URI: "/containers/%zz/json"})
	assert.False(t, d.Allow, "garbage is denied, to admin too")
	assert.Equal(t, "request: path", d.Rule)

	// a source that is not "unix" is decided by role
	d = p.Decide(Identity{User: "erin", Role: RoleReadonly}, create)
	assert.False(t, d.Allow)
}

func TestDecideUnix(t *testing.T) {
	priv := post("/v1.41/containers/create", cli(t, "run-privileged"))
	unix := Identity{Source: SourceUnix, Role: RoleReadonly} // the role is not the unix socket's

	d := DefaultPolicy().Decide(unix, priv)
	assert.True(t, d.Allow)
	assert.Equal(t, "unix: allow", d.Rule)
	assert.Equal(t, "/containers/create", d.Path)

	p, err := ParsePolicy([]byte(`{"unix": "deny"}`))
	require.NoError(t, err)
	d = p.Decide(unix, Request{Method: "GET", URI: "/_ping"})
	assert.False(t, d.Allow)
	assert.Equal(t, "unix: deny", d.Rule)
	assert.Equal(t, `the local unix socket is denied by the policy ("unix": "deny")`, d.Reason)

	p, err = ParsePolicy([]byte(`{"unix": "role:developer"}`))
	require.NoError(t, err)
	d = p.Decide(unix, priv)
	assert.False(t, d.Allow)
	assert.Equal(t, "unix: developer: POST /containers/create: HostConfig.Privileged", d.Rule)
	d = p.Decide(unix, post("/v1.41/containers/create", cli(t, "run-alpine")))
	assert.True(t, d.Allow)
	assert.Equal(t, "unix: developer: POST /containers/create", d.Rule)
	// the default role is not the unix socket's
	d = p.Decide(Identity{Source: SourceTCP}, post("/v1.41/containers/create", cli(t, "run-alpine")))
	assert.Equal(t, "readonly: default deny: POST /containers/create", d.Rule)
}

func TestDecideExamplePolicy(t *testing.T) {
	p, err := LoadPolicy(filepath.Join("testdata", "policy.json"))
	require.NoError(t, err)
	assert.Equal(t, []string{"admin", "auditor", "ci", "ci-runner", "deployer", "developer", "nobody", "operator", "proxy", "readonly", "release", "updater"}, p.Roles())
	assert.Equal(t, RoleReadonly, p.DefaultRole())
	assert.True(t, p.HasRole("ci"))
	assert.False(t, p.HasRole("ghost"))

	runDecideCases(t, p, []decideCase{
		{"ci", "POST", "/v1.41/build?t=alice/app", nil, "ci: capability build: POST /build", ""},
		{"ci", "POST", "/v1.41/containers/create", cli(t, "run-docker-sock"), "ci: POST /containers/create: HostConfig.Binds", "/var/run/docker.sock"},
		{"ci", "POST", "/v1.41/containers/create", cli(t, "run-bind-src"), "ci: POST /containers/create", ""},
		{"ci", "POST", "/v1.41/containers/create", with(t, cli(t, "run-alpine"), "HostConfig.Binds", []string{"/srv/secrets/db:/db"}),
			"ci: POST /containers/create: HostConfig.Binds", "/srv/secrets/db is under /srv/secrets"},
		{"auditor", "GET", "/v1.41/events", nil, "auditor: deny GET /events", `GET /events is denied by the policy rule "GET /events"`},
		{"auditor", "HEAD", "/v1.41/events", nil, "auditor: deny GET /events", `denied by the policy rule "GET /events"`},
		{"auditor", "GET", "/v1.41/info", nil, "auditor: GET /info", ""},
		{"deployer", "POST", "/v1.41/containers/web/restart", nil, "deployer: allow POST /containers/{id}/restart", ""},
		{"deployer", "GET", "/v1.41/containers/web/logs", nil, "deployer: allow GET /containers/{id}/logs", ""},
		{"deployer", "POST", "/v1.41/containers/web/stop", nil, "deployer: default deny: POST /containers/{id}/stop", "developer and admin"},
		{"operator", "POST", "/v1.41/containers/create", cli(t, "run-privileged"), "operator: everything", ""},
		{"operator", "POST", "/v1.41/swarm/join", nil, "operator: deny POST /swarm/*", `denied by the policy rule "POST /swarm/*"`},
		{"operator", "GET", "/v1.41/swarm", nil, "operator: everything", ""},
		{"operator", "GET", "/v1.41/plugins", nil, "operator: deny * /plugins/*", "policy rule"},
		{"operator", "DELETE", "/v1.41/plugins/vieux/sshfs", nil, "operator: deny * /plugins/*", "policy rule"},
		{"release", "POST", "/v1.41/images/library/app/push?tag=1", nil, "release: allow POST /images/{name}/push", ""},
		{"release", "POST", "/v1.41/images/app/tag?repo=registry/app", nil, "release: allow POST /images/{name}/tag", ""},
		{"release", "POST", "/v1.41/build", nil, "release: capability build: POST /build", ""},
		{"release", "GET", "/v1.41/secrets", nil, "release: capability secrets: GET /secrets", ""},
		{"release", "POST", "/v1.41/containers/create", cli(t, "run-cap-add"), "release: POST /containers/create: HostConfig.CapAdd", "added capabilities"},
		{"nobody", "GET", "/_ping", nil, "nobody: default deny: GET /_ping", "not granted to this role"},
	})
}

func TestDecideAllowRulesAreChecked(t *testing.T) {
	// an allow rule opens a route, not its body checks
	p, err := ParsePolicy([]byte(`{"roles": {"starter": {"base": "readonly", "allow": ["POST /containers/create", "POST /containers/{id}/exec"]}}}`))
	require.NoError(t, err)
	runDecideCases(t, p, []decideCase{
		{"starter", "POST", "/v1.41/containers/create", cli(t, "run-alpine"), "starter: allow POST /containers/create", ""},
		{"starter", "POST", "/v1.41/containers/create", cli(t, "run-root-fs"), "starter: allow POST /containers/create: HostConfig.Binds", "whole file system"},
		{"starter", "POST", "/v1.41/containers/create", nil, "starter: allow POST /containers/create: body", "CVE-2024-41110"},
		{"starter", "POST", "/v1.41/containers/c1/exec", cli(t, "exec-root"), "starter: allow POST /containers/{id}/exec", ""},
	})
}

func TestParsePolicyErrors(t *testing.T) {
	for _, c := range []struct {
		name, json, err string
	}{
		{"syntax", "{\n  \"roles\": {\n    \"ci\": {\"base\": \"developer\",}\n  }\n}",
			"invalid JSON at line 3, column 32: invalid character '}' looking for beginning of object key string"},
		{"empty", "", "invalid JSON at line 1, column 1: unexpected end of JSON input"},
		{"truncated", "{\"unix\":\n\"allow\"", "invalid JSON at line 2, column 8: unexpected end of JSON input"},
		{"bad last byte", `{"unix":}`, "invalid JSON at line 1, column 9: invalid character '}' looking for beginning of value"},
		{"not an object", `["admin"]`, "the policy: want a JSON object"},
		{"unknown key", `{"default-role": "readonly"}`, `unknown key "default-role": want default_role, unix, unix_users, unix_groups, protected_paths, bind_roots, max_pids or roles`},
		{"bind root /", `{"bind_roots": ["/"]}`, `bind_roots[0]: "/" is the host's whole file system`},
		{"bind root under /etc", `{"bind_roots": ["/etc/x"]}`, `bind_roots[0]: "/etc/x" is the protected host path /etc or under it`},
		{"bind root relative", `{"bind_roots": ["home"]}`, `bind_roots[0]: want a clean absolute path, got "home"`},
		{"bind root placeholder", `{"bind_roots": ["/srv/{name}"]}`, `bind_roots[0]: "/srv/{name}": "{user}" is the only placeholder, and it makes a whole segment`},
		{"max_pids", `{"max_pids": -1}`, `max_pids: want a whole number, 0 for none, got -1`},
		{"duplicate key", `{"unix": "allow", "unix": "deny"}`, `the policy: duplicate key "unix"`},
		{"duplicate role", `{"roles": {"ci": {}, "ci": {"base": "admin"}}}`, `roles: duplicate key "ci"`},
		{"roles not an object", `{"roles": ["ci"]}`, "roles: want a JSON object"},
		{"role not an object", `{"roles": {"ci": "developer"}}`, "roles.ci: want a JSON object"},
		{"unknown role key", `{"roles": {"ci": {"bsae": "developer"}}}`, `roles.ci: unknown key "bsae": want base, capabilities, allow, deny, record_input or description`},
		{"built-in redefined", `{"roles": {"admin": {"base": "readonly"}}}`,
			`roles.admin: the built-in role "admin" cannot be redefined: give the role another name, with "base": "admin"`},
		{"bad role name", `{"roles": {"Dev Ops": {}}}`, `roles."Dev Ops": invalid role name: want lowercase letters, digits, '-' and '_', starting with a letter`},
		{"unknown base", `{"roles": {"ci": {"base": "dev"}}}`, `roles.ci.base: unknown role "dev": want admin, developer, readonly, proxy, updater, ci-runner or a role of this file`},
		{"cycle", `{"roles": {"a": {"base": "b"}, "b": {"base": "c"}, "c": {"base": "a"}}}`, "roles.c.base: cycle a -> b -> c -> a"},
		{"self cycle", `{"roles": {"a": {"base": "a"}}}`, "roles.a.base: cycle a -> a"},
		{"base not a string", `{"roles": {"a": {"base": ["developer"]}}}`, `roles.a.base: want a string, got ["developer"]`},
		{"unknown capability", `{"roles": {"ci": {"capabilities": ["build", "bild"]}}}`,
			`roles.ci.capabilities[1]: unknown capability "bild": want build, plugins, swarm, secrets, prune or ports`},
		{"capabilities not a list", `{"roles": {"ci": {"capabilities": "build"}}}`, `roles.ci.capabilities: want a list of strings, got "build"`},
		{"bad allow rule", `{"roles": {"ci": {"allow": ["POST containers/create"]}}}`,
			`roles.ci.allow[0]: invalid rule "POST containers/create": the path must start with "/"`},
		{"bad deny rule", `{"roles": {"ci": {"deny": ["GET /events", "GET /container/json"]}}}`,
			`roles.ci.deny[1]: invalid rule "GET /container/json": it matches no Docker API endpoint`},
		{"bad method", `{"roles": {"ci": {"deny": ["PATCH /containers/{id}"]}}}`,
			`roles.ci.deny[0]: invalid rule "PATCH /containers/{id}": unknown method "PATCH": want GET, HEAD, POST, PUT, DELETE, OPTIONS, *`},
		{"unknown default role", `{"default_role": "dev"}`, "default_role: unknown role \"dev\": want one of admin, ci-runner, developer, proxy, readonly, updater"},
		{"empty default role", `{"default_role": ""}`, "default_role: unknown role \"\": want one of admin, ci-runner, developer, proxy, readonly, updater"},
		{"unix", `{"unix": "yes"}`, `unix: want "allow", "deny" or "role:NAME", got "yes"`},
		{"unix role", `{"unix": "role:root"}`, `unix: unknown role "root": want one of admin, ci-runner, developer, proxy, readonly, updater`},
		{"unix not a string", `{"unix": true}`, "unix: want a string, got true"},
		{"relative protected path", `{"protected_paths": ["/srv", "etc"]}`, `protected_paths[1]: want an absolute path, got "etc"`},
		{"root protected path", `{"protected_paths": ["//"]}`,
			`protected_paths[0]: "//": "/" itself is always protected; a list entry protects a directory and what is under it`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(c.json))
			assert.EqualError(t, err, c.err)
			assert.Nil(t, p)
		})
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"admin", "ci-runner", "developer", "proxy", "readonly", "updater"}, p.Roles())
	assert.Equal(t, RoleReadonly, p.DefaultRole())

	p, err = ParsePolicy([]byte(`{"default_role": "viewer", "roles": {"viewer": {"base": "readonly", "deny": ["GET /events"]}}}`))
	require.NoError(t, err)
	assert.Equal(t, "viewer", p.DefaultRole())
	d := p.Decide(Identity{User: "x", Source: SourceTCP}, Request{Method: "GET", URI: "/events"})
	assert.Equal(t, "viewer: deny GET /events", d.Rule)

	// a base defined after the role that names it; rules and
	// capabilities are inherited
	p, err = ParsePolicy([]byte(`{"roles": {
		"b": {"base": "a", "capabilities": ["prune"]},
		"a": {"base": "developer", "capabilities": ["build"], "deny": ["POST /containers/{id}/kill"]}}}`))
	require.NoError(t, err)
	id := Identity{User: "x", Role: "b", Source: SourceTCP}
	assert.Equal(t, "b: capability build: POST /build", p.Decide(id, Request{Method: "POST", URI: "/build"}).Rule)
	assert.Equal(t, "b: capability prune: POST /images/prune", p.Decide(id, Request{Method: "POST", URI: "/images/prune"}).Rule)
	assert.Equal(t, "b: deny POST /containers/{id}/kill", p.Decide(id, Request{Method: "POST", URI: "/containers/c/kill"}).Rule)
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadPolicy(filepath.Join(dir, "absent.json"))
	assert.EqualError(t, err, "read policy: open "+filepath.Join(dir, "absent.json")+": no such file or directory")

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"roles": {"ci": {"capabilities": ["bild"]}}}`), 0o600))
	_, err = LoadPolicy(bad)
	assert.EqualError(t, err, `policy "`+bad+`": roles.ci.capabilities[0]: unknown capability "bild": want build, plugins, swarm, secrets, prune or ports`)

	p, err := LoadPolicy(filepath.Join("testdata", "policy.json"))
	require.NoError(t, err)
	assert.True(t, p.HasRole("release"))
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	assert.Equal(t, []string{"admin", "ci-runner", "developer", "proxy", "readonly", "updater"}, p.Roles())
	assert.Equal(t, "readonly", p.DefaultRole())
	for _, r := range []string{"admin", "developer", "readonly"} {
		assert.True(t, p.HasRole(r), r)
	}
	assert.False(t, p.HasRole(""))
	assert.False(t, p.HasRole("Admin"))
}

func TestExplainDescribe(t *testing.T) {
	p, err := LoadPolicy(filepath.Join("testdata", "policy.json"))
	require.NoError(t, err)
	assert.Nil(t, p.Describe("ghost"))

	admin := p.Describe(RoleAdmin)
	assert.Equal(t, []string{"role admin: built in (everything)", "capabilities: build, plugins, swarm, secrets, prune, ports", "allow everything else"}, admin)

	ro := strings.Join(p.Describe(RoleReadonly), "\n")
	assert.Contains(t, ro, "role readonly: built in (reads, but not those that copy data out)\n")
	assert.Contains(t, ro, "default role: certificates without a role get this one\n")
	assert.Contains(t, ro, "allow GET /containers/json: list containers\n")
	assert.NotContains(t, ro, "archive")
	assert.NotContains(t, ro, "/logs")
	assert.True(t, strings.HasSuffix(ro, "deny  everything else"))

	ci := strings.Join(p.Describe("ci"), "\n")
	assert.Contains(t, ci, "role ci: based on developer (CI runners: build and run, nothing that owns the host)\ncapabilities: build\n")
	assert.Contains(t, ci, "allow POST /build: build an image  (capability build)\n")
	assert.Contains(t, ci, "allow POST /containers/create: create a container\n      denied when: a field of HostConfig but these: AutoRemove, Binds,")
	assert.NotContains(t, ci, "/swarm")

	aud := strings.Join(p.Describe("auditor"), "\n")
	assert.Contains(t, aud, "deny  GET /events  (policy rule, before all else)\n")

	op := p.Describe("operator")
	assert.Equal(t, []string{
		"role operator: based on admin (admin but for swarm membership and plugins)",
		"capabilities: build, plugins, swarm, secrets, prune, ports",
		"deny  POST /swarm/*  (policy rule, before all else)",
		"deny  * /plugins/*  (policy rule, before all else)",
		"allow everything else",
	}, op)

	dep := strings.Join(p.Describe("deployer"), "\n")
	assert.Contains(t, dep, "allow POST /containers/{id}/restart  (policy rule)\n")
}

// TestDecideConcurrent: the plugin decides concurrent calls with one
// policy (run with -race).
func TestDecideConcurrent(t *testing.T) {
	p, err := LoadPolicy(filepath.Join("testdata", "policy.json"))
	require.NoError(t, err)
	create := post("/v1.41/containers/create", cli(t, "run-docker-sock"))
	done := make(chan Decision)
	for i := range 8 {
		go func() {
			var d Decision
			for range 200 {
				d = p.Decide(Identity{User: "u", Role: []string{"ci", "release", "developer"}[i%3], Source: SourceTCP}, create)
			}
			done <- d
		}()
	}
	for range 8 {
		d := <-done
		assert.False(t, d.Allow)
		assert.Equal(t, []string{"/var/run/docker.sock:/var/run/docker.sock"}, d.Fields["binds"])
	}
}

// TestRulesNamingObjects: a rule whose literal stands for a container is
// judged on the container the reference resolves to: a deny rule for
// "web" stops the same call by ID or ID prefix; an allow rule for "aaaa"
// (a name no container has) does not reach the container whose ID starts
// with it; an allow rule lifts ownership, not the check that a container
// exec'd into is one the role could create.
func TestRulesNamingObjects(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {
		"guard":    {"base": "developer", "deny": ["POST /containers/web/stop"]},
		"deployer": {"base": "readonly", "allow": ["POST /containers/web/restart", "POST /containers/aaaa/restart", "POST /containers/{id}/exec"]}}}`))
	require.NoError(t, err)
	webID := strings.Repeat("a", 64)
	decide := func(role, method, uri string, body []byte) Decision {
		r := Request{Method: method, URI: uri, Headers: map[string]string{"Content-Length": "0"}}
		if body != nil {
			r = post(uri, body)
		}
		r.Env = &Env{Objects: testObjects(), CheckRoot: okRoots}
		return p.Decide(Identity{User: "alice", Role: role, Source: SourceTCP}, r)
	}
	for _, c := range []struct {
		role, method, uri string
		body              []byte
		allow             bool
		rule              string
	}{
		{"guard", "POST", "/containers/web/stop", nil, false, "guard: deny POST /containers/web/stop"},
		{"guard", "POST", "/containers/" + webID + "/stop", nil, false, "guard: deny POST /containers/web/stop"},
		{"guard", "POST", "/containers/" + webID[:12] + "/stop", nil, false, "guard: deny POST /containers/web/stop"},
		{"guard", "POST", "/containers/c1/stop", nil, true, "guard: POST /containers/{id}/stop"},
		{"guard", "POST", "/containers/ghost/stop", nil, false, "guard: deny POST /containers/web/stop"},
		{"deployer", "POST", "/containers/web/restart", nil, true, "deployer: allow POST /containers/web/restart"},
		{"deployer", "POST", "/containers/" + webID + "/restart", nil, true, "deployer: allow POST /containers/web/restart"},
		{"deployer", "POST", "/containers/aaaa/restart", nil, true, "deployer: allow POST /containers/web/restart"},
		{"deployer", "POST", "/containers/adminbox/restart", nil, false, "deployer: default deny: POST /containers/{id}/restart"},
		{"deployer", "POST", "/containers/other/exec", cli(t, "exec-plain"), true, "deployer: allow POST /containers/{id}/exec"},
		{"deployer", "POST", "/containers/etcbox/exec", cli(t, "exec-plain"), false, "deployer: allow POST /containers/{id}/exec: Binds"},
	} {
		d := decide(c.role, c.method, c.uri, c.body)
		assert.Equal(t, c.allow, d.Allow, "%s %s %s: %s", c.role, c.method, c.uri, d.Reason)
		assert.Equal(t, c.rule, d.Rule, "%s %s %s", c.role, c.method, c.uri)
	}
	// "aaaa" names no container: the rule for it reaches nothing, even
	// the container whose ID starts with it.
	p2, err := ParsePolicy([]byte(`{"roles": {"deployer": {"base": "readonly", "allow": ["POST /containers/aaaa/restart"]}}}`))
	require.NoError(t, err)
	r := Request{Method: "POST", URI: "/containers/aaaa/restart", Env: &Env{Objects: testObjects()}}
	d := p2.Decide(Identity{User: "alice", Role: "deployer", Source: SourceTCP}, r)
	assert.False(t, d.Allow, d.Reason)
}

// TestBuildQueryAndMaxPids: the build capability runs its steps on the
// default networks or the caller's own, never the host's or another's;
// max_pids is judged on the HostConfig dockerd uses.
func TestBuildQueryAndMaxPids(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"max_pids": 100, "roles": {"ci": {"base": "developer", "capabilities": ["build"]}}}`))
	require.NoError(t, err)
	ci := Identity{User: "alice", Role: "ci", Source: SourceTCP}
	for q, why := range map[string]string{
		"t=alice/app":                                "",
		"t=alice/app&networkmode=default":            "",
		"t=alice/app&networkmode=devnet":             "",
		"t=alice/app&networkmode=host":               `the "host" network`,
		"t=alice/app&networkmode=prodnet":            "someone else",
		"t=alice/app&networkmode=container:web":      "",
		"t=alice/app&networkmode=container:adminbox": "someone else",
		"t=alice/app&cgroupparent=%2F":               "cgroup parent",
		"t=alice/app&networkmode=container:hostnet":  `the "host" network`,
		"t=app":                                       "not in your namespace",
		"t=alice/app&t=adminapp:1":                    "not in your namespace",
		"t=docker.io/library/adminapp:1":              "not in your namespace",
		"t=registry.example.com/alice/app:2":          "",
		"t=registry.example.com/bob/app:2":            "not in your namespace",
		"t=alice/app&remote=http://127.0.0.1/ctx.tar": "remote=",
		"t=alice/app&isolation=hyperv":                "isolation",
		"t=alice/app&ulimits=" + url.QueryEscape(`[{"Name":"nofile","Soft":1024,"Hard":2048}]`): "",
		"t=alice/app&ulimits=" + url.QueryEscape(`[{"Name":"rtprio","Soft":99,"Hard":99}]`):     "real-time scheduling",
		"t=alice/app&ulimits=" + url.QueryEscape(`[{"Name":"bogus","Soft":1,"Hard":1}]`):        `ulimit "bogus" is not allowed`,
		"t=alice/app&ulimits=notjson":                  "not what dockerd reads",
		"t=alice/app&securityopt=seccomp%3Dunconfined": `"securityopt" is not allowed`,
		"t=alice/app&dockerfile=Dockerfile.dev&buildargs=%7B%7D&labels=%7B%7D&nocache=1&pull=1&rm=1&memory=1000000&cpusetcpus=0&shmsize=65536&platform=linux%2Famd64&target=prod&extrahosts=db%3A10.0.0.2": "",
	} {
		d := p.Decide(ci, Request{Method: "POST", URI: "/v1.41/build?" + q, Env: &Env{Objects: testObjects()}})
		assert.Equal(t, why == "", d.Allow, "%s: %s", q, d.Reason)
		assert.Contains(t, d.Reason, why, q)
	}
	// The body is the context, a tar: a form body would carry parameters
	// (networkmode=host, t=, ulimits=) dockerd reads with FormValue and
	// nobody judged.
	for ct, why := range map[string]string{
		"application/x-tar":                 "",
		"application/tar":                   "",
		"":                                  "",
		"multipart/form-data; boundary=b":   "form body (multipart/form-data)",
		"application/x-www-form-urlencoded": "form body (application/x-www-form-urlencoded)",
		"text/plain":                        `Content-Type "text/plain" is not allowed`,
		"application/x-tar; x=\"":           "does not parse",
	} {
		h := map[string]string{"Content-Length": "18432"}
		if ct != "" {
			h["Content-Type"] = ct
		}
		d := p.Decide(ci, Request{Method: "POST", URI: "/v1.41/build?t=alice/app", Headers: h, Env: &Env{Objects: testObjects()}})
		assert.Equal(t, why == "", d.Allow, "%q: %s", ct, d.Reason)
		assert.Contains(t, d.Reason, why, ct)
	}
	// The namespace is the caller's name exactly, the tag read as dockerd
	// reads it: "Alice", another identity than alice, has none (folded,
	// it tagged alice's images); "ALICE/app" names the registry ALICE.
	for _, c := range []struct{ user, q, why string }{
		{"Alice", "t=alice/app:1", `the name "Alice" is not a repository namespace`},
		{"ALICE", "t=alice/app:1", "not a repository namespace"},
		{"alice@corp", "t=alice/app:1", "not a repository namespace"},
		{"alice", "t=ALICE/app:1", "not in your namespace"},
		{"alice", "t=ALICE/alice/app:1", ""},
		{"alice", "t=Alice/app:1", "not in your namespace"},
		{"alice", "t=localhost:5000/alice/app", ""},
		{"alice", "t=localhost/bob/app", "not in your namespace"},
	} {
		who := Identity{User: c.user, Role: "ci", Source: SourceTCP}
		d := p.Decide(who, Request{Method: "POST", URI: "/v1.41/build?" + c.q, Env: &Env{Objects: testObjects()}})
		assert.Equal(t, c.why == "", d.Allow, "%s %s: %s", c.user, c.q, d.Reason)
		assert.Contains(t, d.Reason, c.why, "%s %s", c.user, c.q)
	}
	create := func(body string) Decision {
		r := post("/v1.41/containers/create", []byte(body))
		r.Env = &Env{Objects: testObjects()}
		return p.Decide(ci, r)
	}
	assert.True(t, create(`{"Image":"a","HostConfig":{"PidsLimit":100}}`).Allow)
	// Ulimits: the known ones; rtprio at 0 only, whatever its case (dockerd
	// upper-cases the name for the runtime); unlimited (-1) is above 0.
	for body, why := range map[string]string{
		`{"Image":"a","HostConfig":{"PidsLimit":100,"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":4096},{"Name":"rtprio","Soft":0,"Hard":0}]}}`: "",
		`{"Image":"a","HostConfig":{"PidsLimit":100,"Ulimits":[{"Name":"rtprio","Soft":99,"Hard":99}]}}`:                                         "real-time scheduling",
		`{"Image":"a","HostConfig":{"PidsLimit":100,"Ulimits":[{"Name":"RtPrio","Soft":0,"Hard":1}]}}`:                                           "real-time scheduling",
		`{"Image":"a","HostConfig":{"PidsLimit":100,"Ulimits":[{"Name":"rtprio","Soft":-1,"Hard":-1}]}}`:                                         "real-time scheduling",
		`{"Image":"a","HostConfig":{"PidsLimit":100,"Ulimits":[{"Name":"rlimit_rtprio","Soft":9,"Hard":9}]}}`:                                    `ulimit "rlimit_rtprio" is not allowed`,
		`{"Image":"a","PidsLimit":50,"Ulimits":[{"Name":"rtprio","Soft":9,"Hard":9}]}`:                                                           "real-time scheduling",
	} {
		d := create(body)
		assert.Equal(t, why == "", d.Allow, "%s: %s", body, d.Reason)
		assert.Contains(t, d.Reason, why, body)
	}
	assert.False(t, create(`{"Image":"a","HostConfig":{"PidsLimit":0}}`).Allow)
	assert.False(t, create(`{"Image":"a","HostConfig":{}}`).Allow)
	assert.True(t, create(`{"Image":"a","PidsLimit":50}`).Allow, "no HostConfig: the top level is the container's")
	assert.False(t, create(`{"Image":"a","PidsLimit":500}`).Allow)
}

// TestRulesNamingImagesAndRenameBody: a deny rule for an image's tag
// stops the same call by ID; a rename carries no body (a form body would
// name it otherwise).
func TestRulesNamingImagesAndRenameBody(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {"guard": {"base": "developer", "deny": ["DELETE /images/victim:1", "GET /networks/prodnet"]}}}`))
	require.NoError(t, err)
	g := Identity{User: "alice", Role: "guard", Source: SourceTCP}
	env := &Env{Objects: testObjects()}
	id := strings.Repeat("9", 64)
	for _, ref := range []string{"victim:1", "sha256:" + id, id} {
		d := p.Decide(g, Request{Method: "DELETE", URI: "/v1.41/images/" + ref, Env: env})
		assert.False(t, d.Allow, ref)
		assert.Equal(t, "guard: deny DELETE /images/victim:1", d.Rule, ref)
	}
	d := p.Decide(g, Request{Method: "GET", URI: "/v1.41/networks/" + strings.Repeat("6", 64), Env: env})
	assert.Equal(t, "guard: deny GET /networks/prodnet", d.Rule, "a deny rule for a network by name stops its ID")
	d = p.Decide(g, Request{Method: "GET", URI: "/v1.41/networks/devnet", Env: env})
	assert.True(t, d.Allow, d.Reason)

	rename := func(h map[string]string) Decision {
		return p.Decide(g, Request{Method: "POST", URI: "/v1.41/containers/web/rename?name=web2", Headers: h, Env: env})
	}
	assert.True(t, rename(map[string]string{"Content-Length": "0"}).Allow)
	d = rename(map[string]string{"Content-Length": "17", "Content-Type": "application/x-www-form-urlencoded"})
	assert.False(t, d.Allow)
	assert.Contains(t, d.Reason, "a form body (application/x-www-form-urlencoded) is not part of the Docker API")
	d = rename(map[string]string{"Content-Length": "17", "Content-Type": "text/plain"})
	assert.False(t, d.Allow)
	assert.Contains(t, d.Reason, "a form body would carry another name")
	assert.False(t, rename(map[string]string{}).Allow, "chunked: no Content-Length")
}

// TestRecordInput: a role's record_input is its own, else its base's; a
// role can turn its base's off; a value that is not a boolean is refused,
// naming the place.
func TestRecordInput(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {
		"contractor": {"base": "developer", "record_input": true},
		"intern": {"base": "contractor"},
		"trusted": {"base": "contractor", "record_input": false}}}`))
	require.NoError(t, err)
	for role, want := range map[string]bool{"contractor": true, "intern": true, "trusted": false, "developer": false, "admin": false, "ghost": false} {
		assert.Equal(t, want, p.RecordsInput(role), role)
	}
	assert.Contains(t, p.Describe("intern"), "record_input: the gateway records what its holders type into exec and attach streams")
	assert.NotContains(t, p.Describe("trusted"), "record_input: the gateway records what its holders type into exec and attach streams")
	_, err = ParsePolicy([]byte(`{"roles": {"c": {"base": "developer", "record_input": "yes"}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `roles.c.record_input: want true or false, got "yes"`)
}
