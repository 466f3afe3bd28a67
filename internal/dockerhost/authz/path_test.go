package authz

import (
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCanonicalPath(t *testing.T) {
	for _, c := range []struct {
		uri, want string
	}{
		{"/_ping", "/_ping"},
		{"/v1.41/containers/json", "/containers/json"},
		{"/v1.24/containers/json", "/containers/json"},
		{"/v1.41/containers/json?all=1&filters=%7B%7D", "/containers/json"},
		// a query is not part of the path, whatever it holds (twistlock/authz#50)
		{"/containers/json?x=/archive", "/containers/json"},
		{"/containers/abc/archive?path=/", "/containers/abc/archive"},
		{"/v1.41/containers/json?", "/containers/json"},
		// trailing slash: the same endpoint ("GET /networks/" is the list)
		{"/networks/", "/networks"},
		{"/v1.41/", "/"},
		{"/", "/"},
		// percent-decoding, as mux routes the decoded path
		{"/v1.41/images/docker.io%2Flibrary%2Falpine/json", "/images/docker.io/library/alpine/json"},
		{"/v1%2E41/containers/json", "/containers/json"},
		{"/containers/json%3Fall=1", "/containers/json?all=1"},
		// absolute form: Go's server routes its path
		{"http://docker/v1.41/containers/json?all=1", "/containers/json"},
		{"https://x:2376/v1.41/images/alpine/get", "/images/alpine/get"},
		// not mux's version prefix: kept, and no route will match
		{"/v/containers/json", "/v/containers/json"},
		{"/V1.41/containers/json", "/V1.41/containers/json"},
		{"/v1.41", "/v1.41"},
		{"/version", "/version"},
		{"/volumes", "/volumes"},
	} {
		got, err := CanonicalPath(c.uri)
		require.NoError(t, err, c.uri)
		assert.Equal(t, c.want, got, c.uri)
	}
}

func TestCanonicalPathErrors(t *testing.T) {
	for _, c := range []struct {
		uri, path, err string
	}{
		{"", "", `empty request URI`},
		{"/containers/x%2F..%2Fcreate", "/containers/create",
			`request URI "/containers/x%2F..%2Fcreate": the path "/containers/x/../create" is not clean (dockerd would redirect it to "/containers/create", not route it)`},
		{"/v1.41/containers/%2e%2e/create", "/create",
			`request URI "/v1.41/containers/%2e%2e/create": the path "/v1.41/containers/../create" is not clean (dockerd would redirect it to "/v1.41/create", not route it)`},
		{"/v1.41/containers//json", "/containers/json",
			`request URI "/v1.41/containers//json": the path "/v1.41/containers//json" is not clean (dockerd would redirect it to "/v1.41/containers/json", not route it)`},
		{"//evil/containers/json", "/evil/containers/json",
			`request URI "//evil/containers/json": the path "//evil/containers/json" is not clean (dockerd would redirect it to "/evil/containers/json", not route it)`},
		{"/v1.41/./info", "/info",
			`request URI "/v1.41/./info": the path "/v1.41/./info" is not clean (dockerd would redirect it to "/v1.41/info", not route it)`},
		{"/containers/abc/archive#x", "", `request URI "/containers/abc/archive#x": a request target has no fragment ("#")`},
		{"/containers/%zz/json", "", `request URI "/containers/%zz/json": invalid URL escape "%zz"`},
		{"/containers/a%00b/json", "", `request URI "/containers/a%00b/json": the path decodes to a control character at byte 13`},
		{"/containers/a\nb/json", "", "request URI \"/containers/a\\nb/json\": control character at byte 13"},
		{"*", "", `request URI "*": the path must start with "/"`},
		{"containers/json", "", `request URI "containers/json": invalid URI for request`},
		{"mailto:root@example.com", "", `request URI "mailto:root@example.com": the path must start with "/"`},
	} {
		got, err := CanonicalPath(c.uri)
		assert.EqualError(t, err, c.err, c.uri)
		assert.Equal(t, c.path, got, c.uri)
	}
}

func TestPathAPIVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.24": true, "1.41": true, "1.51": true, "2.0": true, "1.100": true,
		"1.23": false, "1.12": false, "0.99": false, "1": false, "1.": false, ".41": false, "1..41": false, "1.41.0": false,
	} {
		assert.Equal(t, ok, apiVersionOK(v), v)
	}
}

func TestPathRoutes(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         string // route, "" for none
	}{
		{"GET", "/containers/json", "GET /containers/json"},
		{"GET", "/containers/abc/json", "GET /containers/{id}/json"},
		// {name:.*} takes slashes: the suffix decides the endpoint
		{"GET", "/containers/x/archive/json", "GET /containers/{id}/json"},
		{"GET", "/containers/x/json/archive", "GET /containers/{id}/archive"},
		{"GET", "/images/docker.io/library/alpine:3/json", "GET /images/{name}/json"},
		{"GET", "/images/library/alpine/get", "GET /images/{name}/get"},
		{"GET", "/images/get", "GET /images/get"},
		{"GET", "/containers/abc/attach/ws", "GET /containers/{id}/attach/ws"},
		{"HEAD", "/containers/abc/archive", "HEAD /containers/{id}/archive"},
		{"HEAD", "/_ping", "HEAD /_ping"},
		// HEAD is read as GET where there is no HEAD route
		{"HEAD", "/containers/json", "GET /containers/json"},
		{"POST", "/containers/create", "POST /containers/create"},
		{"POST", "/containers/prune", "POST /containers/prune"},
		{"DELETE", "/containers/abc", "DELETE /containers/{id}"},
		// the checkpoint router comes first, but its {id} takes no slash
		{"DELETE", "/containers/x/checkpoints/c", "DELETE /containers/{id}/checkpoints/{checkpoint}"},
		{"DELETE", "/containers/x/y/checkpoints/c", "DELETE /containers/{id}"},
		{"GET", "/services/abc", "GET /services/{id}"},
		{"GET", "/services/abc/logs", "GET /services/{id}/logs"},
		{"GET", "/services/a/b", ""},
		{"GET", "/networks/abc", "GET /networks/{id}"},
		{"POST", "/debug/pprof/profile", "* /debug/pprof/profile"},
		{"OPTIONS", "/containers/json", "OPTIONS /{any}"},
		{"GET", "/", ""},
		{"GET", "/containers", ""},
		{"get", "/containers/json", ""},
		{"PATCH", "/containers/abc", ""},
		{"GET", "/Containers/json", ""},
		{"POST", "/containers/json", ""},
	} {
		rt := routes().resolve(c.method, splitPath(c.path))
		got := ""
		if rt != nil {
			got = rt.String()
		}
		assert.Equal(t, c.want, got, "%s %s", c.method, c.path)
	}
}

func TestPathRuleMatches(t *testing.T) {
	for _, c := range []struct {
		rule, method, path string
		want               bool
	}{
		{"POST /containers/{id}/restart", "POST", "/containers/web/restart", true},
		{"POST /containers/{id}/restart", "POST", "/containers/web/stop", false},
		{"POST /containers/{id}/restart", "GET", "/containers/web/restart", false},
		{"POST /containers/web/restart", "POST", "/containers/web/restart", true},
		{"POST /containers/web/restart", "POST", "/containers/db/restart", false},
		// {x} takes a whole variable, never a literal of the route
		{"DELETE /containers/{id}", "DELETE", "/containers/a/b", true},
		{"GET /images/{name}/get", "GET", "/images/library/alpine/get", true},
		{"GET /images/library/alpine/json", "GET", "/images/library/alpine/json", true},
		{"GET /images/library/alpine/json", "GET", "/images/library/json", false},
		{"GET /images/library/*", "GET", "/images/library/alpine/json", true},
		{"GET /images/library/*", "GET", "/images/json", false},
		// GET covers HEAD, "*" covers every method
		{"GET /events", "HEAD", "/events", true},
		{"HEAD /_ping", "GET", "/_ping", false},
		{"* /plugins/*", "DELETE", "/plugins/x", true},
		{"* /plugins/*", "GET", "/plugins", true},
		{"* /*", "POST", "/containers/create", true},
		{"POST /swarm/*", "GET", "/swarm", false},
		{"POST /swarm/*", "POST", "/swarm/join", true},
	} {
		pt, err := parsePattern(c.rule)
		require.NoError(t, err, c.rule)
		ps := splitPath(c.path)
		rt := routes().resolve(c.method, ps)
		assert.Equal(t, c.want, pt.matches(c.method, rt.tokens(ps)), "%s vs %s %s", c.rule, c.method, c.path)
	}
}

func TestPathRuleErrors(t *testing.T) {
	for rule, msg := range map[string]string{
		"GET":                          `want "METHOD /path", e.g. "POST /containers/{id}/restart"`,
		"/containers/json":             `want "METHOD /path", e.g. "POST /containers/{id}/restart"`,
		"GET /containers/json extra":   `want "METHOD /path", e.g. "POST /containers/{id}/restart"`,
		"FETCH /containers/json":       `unknown method "FETCH": want GET, HEAD, POST, PUT, DELETE, OPTIONS, *`,
		"get /containers/json":         `unknown method "get": want GET, HEAD, POST, PUT, DELETE, OPTIONS, *`,
		"GET events":                   `the path must start with "/"`,
		"GET /containers/json?all=1":   `a rule matches the decoded path only: no "?", "#" or "%"`,
		"GET /containers/x%2Fy/json":   `a rule matches the decoded path only: no "?", "#" or "%"`,
		"GET /v1.41/containers/json":   `leave out the API version prefix "/v1.41": rules match "/containers/json"`,
		"GET /containers/*/json":       `"*" may only end the path`,
		"GET /containers//json":        `empty, "." and ".." segments are not allowed`,
		"GET /containers/../json":      `empty, "." and ".." segments are not allowed`,
		"GET /containers/{}/json":      `bad variable "{}": want {name}, a whole segment`,
		"GET /containers/{id/json":     `bad variable "{id": want {name}, a whole segment`,
		"GET /containers/{id:.*}/json": `bad variable "{id:.*}": want {name}, a whole segment`,
		"GET /containers/x*/json":      `"x*": "{", "}" and "*" only make a whole segment`,
		"GET /container/json":          `it matches no Docker API endpoint`,
		"GET /containers/{id}":         `it matches no Docker API endpoint`,
		"POST /containers/{id}/{verb}": `it matches no Docker API endpoint`,
		"GET /":                        `it matches no Docker API endpoint`,
	} {
		_, err := parsePattern(rule)
		assert.EqualError(t, err, "invalid rule "+quote(rule)+": "+msg, rule)
	}
}

func quote(s string) string { return `"` + s + `"` }

func TestPathRouteTable(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range routes().all {
		assert.False(t, seen[rt.String()], "twice: %s", rt)
		seen[rt.String()] = true
		assert.NotEmpty(t, rt.what, rt.String())
		assert.Equal(t, rt.level == levelCap, rt.cap != 0, rt.String())
		// every route of the table can be named by a rule
		m := rt.method
		if m == "" {
			m = "*"
		}
		_, err := parsePattern(m + " " + rt.path)
		assert.NoError(t, err, rt.String())
	}
}

// FuzzCanonicalPath: a URI that parses gives a clean absolute path without
// a version prefix, and readonly is never allowed a request that is not a
// GET or HEAD of a read route.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{
		"/v1.41/containers/json?all=1", "/containers/x%2F..%2Fcreate", "http://h/v1.41/images/a/get",
		"/v1.41/containers/abc/archive?path=/", "/networks/", "/%2e%2e/", "/v1.41//info", "*", "",
	} {
		f.Add("GET", s)
	}
	p := DefaultPolicy()
	f.Fuzz(func(t *testing.T, method, uri string) {
		got, err := CanonicalPath(uri)
		if err == nil {
			require.True(t, strings.HasPrefix(got, "/"), got)
			require.Equal(t, path.Clean(got), got)
		}
		d := p.Decide(Identity{Role: RoleReadonly, Source: SourceTCP}, Request{Method: method, URI: uri})
		if d.Allow {
			require.NoError(t, err)
			require.Contains(t, []string{"GET", "HEAD"}, method)
			rt := routes().resolve(method, splitPath(got))
			require.NotNil(t, rt)
			require.Equal(t, levelRead, rt.level, rt.String())
		}
	})
}
