package authz

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// CanonicalPath returns the path a request URI addresses, as the policy
// matches it: the API version prefix ("/v1.41") stripped, percent-decoded,
// cleaned, without the query. "/v1.41/containers/json?all=1" is
// "/containers/json".
//
// It reads the URI as dockerd does: Go's net/http parses the request
// target with url.ParseRequestURI (so an absolute-form target,
// "http://host/v1.41/containers/json", addresses "/containers/json"), and
// gorilla/mux routes the decoded path (moby does not call UseEncodedPath,
// so "%2F" is a "/"), after redirecting a path that path.Clean would change
// instead of routing it (mux.Router.ServeHTTP, cleanPath). The version
// prefix is mux's "/v{version:[0-9.]+}" (moby daemon/server/server.go).
//
// Errors: an empty URI, a bad percent escape, a control character (also
// when percent-encoded), a "#" (a request target has no fragment, RFC 9112
// section 3.2, and Go's server would keep it in the path rather than drop
// it), a path that does not start with "/". For a path that decodes to one
// dockerd would not route as sent ("/containers/x%2F..%2Fcreate" is
// "/containers/x/../create", which mux redirects), it returns the cleaned
// path, for the audit log, together with the error: such a request must be
// denied, never decided on the cleaned path.
func CanonicalPath(uri string) (string, error) {
	u, err := parseURI(uri)
	return u.path, err
}

// requestURI is a parsed request target.
type requestURI struct {
	path    string // canonical, as CanonicalPath returns it
	version string // the API version of the prefix, "" without one
	query   string // raw query, without "?"
}

// parseURI is CanonicalPath, keeping the version and the query.
func parseURI(uri string) (requestURI, error) {
	var u requestURI
	if uri == "" {
		return u, errors.New("empty request URI")
	}
	if i := strings.IndexFunc(uri, isControl); i >= 0 {
		return u, fmt.Errorf("request URI %q: control character at byte %d", uri, i)
	}
	if strings.IndexByte(uri, '#') >= 0 {
		return u, fmt.Errorf("request URI %q: a request target has no fragment (\"#\")", uri)
	}
	raw := uri
	if raw[0] != '/' {
		// Absolute form (RFC 9112 section 3.2.2): what Go's server accepts
		// too, and then routes by its path.
		pu, err := url.ParseRequestURI(raw)
		if err != nil {
			return u, fmt.Errorf("request URI %q: %w", uri, errors.Unwrap(err))
		}
		if pu.Opaque != "" || !strings.HasPrefix(pu.Path, "/") {
			return u, fmt.Errorf("request URI %q: the path must start with \"/\"", uri)
		}
		u.query = pu.RawQuery
		raw = pu.EscapedPath()
	} else if p, q, ok := strings.Cut(raw, "?"); ok {
		raw, u.query = p, q
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return u, fmt.Errorf("request URI %q: %w", uri, err)
	}
	if i := strings.IndexFunc(p, isControl); i >= 0 {
		return u, fmt.Errorf("request URI %q: the path decodes to a control character at byte %d", uri, i)
	}
	// mux cleans the whole path, version prefix included, and keeps a
	// trailing slash: dockerd routes "/networks/" (a route of its own) but
	// redirects "/containers//json" and "/a/../b".
	if c := muxClean(p); c != p {
		u.path, _ = stripVersion(path.Clean(p))
		return u, fmt.Errorf("request URI %q: the path %q is not clean (dockerd would redirect it to %q, not route it)", uri, p, c)
	}
	p, u.version = stripVersion(p)
	// A trailing slash only ever reaches a route whose last variable takes
	// the rest of the path ("DELETE /images/{name:.*}") or "GET /networks/",
	// the list: the same endpoint as without it.
	u.path = path.Clean(p)
	return u, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// muxClean is gorilla/mux's cleanPath: path.Clean, keeping a trailing
// slash.
func muxClean(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// stripVersion removes mux's "/v{version:[0-9.]+}" prefix when a path
// follows it.
func stripVersion(p string) (rest, version string) {
	if len(p) < 3 || p[0] != '/' || p[1] != 'v' {
		return p, ""
	}
	i := 2
	for i < len(p) && (p[i] == '.' || p[i] >= '0' && p[i] <= '9') {
		i++
	}
	if i == 2 || i == len(p) || p[i] != '/' {
		return p, ""
	}
	return p[i:], p[2:i]
}

// minAPIVersion is the oldest API version the policy lets a role that is
// not admin speak. Before 1.24, "POST /containers/{id}/start" took a
// HostConfig in its body, which dockerd 20.10 still applies
// (postContainersStart, "if versions.GreaterThanOrEqualTo(version, "1.24")
// return bodyOnStartError") and which the policy does not check; a chunked
// body does not even reach the plugin (CVE-2024-41110). The docker CLI
// 28 speaks 1.41 to such a daemon, and dockerd 25 and later refuse
// anything older than 1.24 by default (defaultMinAPIVersion).
var minAPIVersion = [2]int{1, 24}

// apiVersionOK reports whether v ("1.41") is major.minor and at least
// minAPIVersion.
func apiVersionOK(v string) bool {
	maj, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil { // stripVersion left digits and dots only
		return false
	}
	return a > minAPIVersion[0] || a == minAPIVersion[0] && b >= minAPIVersion[1]
}

// APIVersionAtLeast reports whether the request target uri names an API
// version (its "/vX.Y" prefix) of at least major.minor. A target without
// one speaks the daemon's own version, which may be older: false, as for
// a target that does not parse.
func APIVersionAtLeast(uri string, major, minor int) bool {
	u, err := parseURI(uri)
	if err != nil || u.version == "" {
		return false
	}
	maj, mn, ok := strings.Cut(u.version, ".")
	if !ok {
		return false
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mn)
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// splitPath splits a canonical path into its segments ("/" has none).
func splitPath(p string) []string {
	if p == "/" || p == "" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// segKind is what a segment of a route template matches.
type segKind uint8

const (
	segLit  segKind = iota // the literal text
	segOne                 // {id}: one segment (mux's default [^/]+)
	segRest                // {name:.*}: one segment or more (after cleaning, ".*" and ".+" never match an empty one)
)

type seg struct {
	kind segKind
	lit  string
}

// level is who may call a route without an allow rule of their own.
type level uint8

const (
	levelAdmin level = iota // roles with everything only
	levelRead               // readonly and developer
	levelDev                // developer
	levelCap                // a role with the route's capability
)

// bodyKind is the check a route's request needs.
type bodyKind uint8

const (
	bodyNone         bodyKind = iota
	bodyCreate                // POST /containers/create
	bodyExec                  // POST /containers/{id}/exec
	bodyService               // POST /services/create, /services/{id}/update
	bodyVolume                // POST /volumes/create
	bodyNetwork               // POST /networks/create
	queryImageCreate          // POST /images/create: a pull, not an import
	queryStart                // POST /containers/{id}/start: no checkpoint
	bodyConnect               // POST /networks/{id}/connect, disconnect: the container is the caller's
	queryImageDelete          // DELETE /images/{name}: no force
	queryRename               // POST /containers/{id}/rename: the new name
	queryBuild                // POST /build: the build containers' network and cgroup
)

// ownedRoutes are the routes that act on one object, which a role that is
// not admin may call only on what its holder created (unless an allow
// rule of the policy names the route). Reading a container's inspect,
// processes or logs is among them: they hold its environment and command
// lines, where secrets are (the plugin cannot strip Config.Env from an
// answer, so it refuses the whole answer). A container that is started,
// attached to or exec'd into must also still be one the role could
// create ("live"): its bind sources are resolved again, and a role
// changed since its creation is judged as it is now.
var ownedRoutes = map[string]struct {
	kind ObjectKind
	live bool
}{
	"GET /containers/{id}/json":      {KindContainer, false},
	"GET /containers/{id}/top":       {KindContainer, false},
	"GET /containers/{id}/logs":      {KindContainer, false},
	"GET /containers/{id}/attach/ws": {KindContainer, true},
	"POST /containers/{id}/kill":     {KindContainer, false},
	"POST /containers/{id}/pause":    {KindContainer, false},
	"POST /containers/{id}/unpause":  {KindContainer, false},
	"POST /containers/{id}/restart":  {KindContainer, true},
	"POST /containers/{id}/start":    {KindContainer, true},
	"POST /containers/{id}/stop":     {KindContainer, false},
	"POST /containers/{id}/wait":     {KindContainer, false},
	"POST /containers/{id}/resize":   {KindContainer, false},
	"POST /containers/{id}/attach":   {KindContainer, true},
	"POST /containers/{id}/exec":     {KindContainer, true},
	"POST /containers/{id}/rename":   {KindContainer, false},
	"POST /containers/{id}/update":   {KindContainer, false},
	"DELETE /containers/{id}":        {KindContainer, false},
	"GET /containers/{id}/archive":   {KindContainer, false},
	"HEAD /containers/{id}/archive":  {KindContainer, false},
	"PUT /containers/{id}/archive":   {KindContainer, false},
	"GET /containers/{id}/export":    {KindContainer, false},
	"GET /exec/{id}/json":            {KindExec, false},
	"POST /exec/{id}/start":          {KindExec, false},
	"POST /exec/{id}/resize":         {KindExec, false},
	"GET /volumes/{name}":            {KindVolume, false},
	"DELETE /volumes/{name}":         {KindVolume, false},
	"DELETE /networks/{id}":          {KindNetwork, false},
}

// route is one endpoint of the Docker Engine API.
type route struct {
	method string // "" is any method
	path   string // template, variables without their regexp: "/containers/{id}/archive"
	segs   []seg
	level  level
	cap    capability
	body   bodyKind
	what   string // what it does, for reasons: "copy files out of a container (docker cp)"
	// own is the kind of object the route's variable names, which a role
	// that is not admin must own; live asks that a container also still
	// be one the role could create (ownedRoutes).
	own  ObjectKind
	live bool
	// obj is the kind of object the route's first variable names, for
	// rules that name one (ruleMatcher); "" when it names none.
	obj ObjectKind
}

// objectOf says what the first variable of a route names: the object of
// its collection ("/containers/{id}/...", "/images/{name}/...").
func objectOf(rt *route) ObjectKind {
	if len(rt.segs) < 2 || rt.segs[0].kind != segLit || rt.segs[1].kind == segLit {
		return ""
	}
	return map[string]ObjectKind{"containers": KindContainer, "exec": KindExec, "networks": KindNetwork,
		"volumes": KindVolume, "images": KindImage}[rt.segs[0].lit]
}

// String is the route's name in rules and reasons: "GET /containers/{id}/json".
func (rt *route) String() string {
	if rt.method == "" {
		return "* " + rt.path
	}
	return rt.method + " " + rt.path
}

// routes is dockerd's route table, in the order it registers them (moby
// daemon/command/daemon.go buildRouters: checkpoint first "or the DELETE
// gets masked", then container, image, system, volume, build, session,
// swarm, plugin, distribution, network, debug, grpc) because mux takes the
// first route that matches: "DELETE /containers/x/checkpoints/c" deletes a
// checkpoint, "DELETE /containers/x/y/checkpoints/c" a container. The paths
// and their variables are moby's (daemon/server/router/*/*.go, v20.10 and
// master): "{name:.*}" takes slashes ("/images/library/alpine/json"),
// "{id}" does not.
//
// Levels: what readonly may read (not what copies data out: docker-socket-
// proxy#182, "GET-only is not read-only"), what developer may do on top,
// the capabilities, and the rest, admin only.
// routes is built on first use: dtls env, which shares the binary, starts
// at every shell prompt and never decides a request.
var routes = sync.OnceValue(func() *routeTable { return buildRoutes(routeSpecs) })

var routeSpecs = []routeSpec{
	// checkpoint (experimental; CRIU reads and writes host paths)
	{"GET", "/containers/{id:.*}/checkpoints", levelAdmin, 0, bodyNone, "list a container's checkpoints (experimental)"},
	{"POST", "/containers/{id:.*}/checkpoints", levelAdmin, 0, bodyNone, "checkpoint a container (experimental; CheckpointDir is a host path)"},
	{"DELETE", "/containers/{id}/checkpoints/{checkpoint}", levelAdmin, 0, bodyNone, "delete a checkpoint (experimental)"},

	// container
	{"HEAD", "/containers/{id:.*}/archive", levelAdmin, 0, bodyNone, "stat a file in a container (docker cp)"},
	{"GET", "/containers/json", levelRead, 0, bodyNone, "list containers"},
	{"GET", "/containers/{id:.*}/export", levelAdmin, 0, bodyNone, "export a container's file system (docker export)"},
	{"GET", "/containers/{id:.*}/changes", levelRead, 0, bodyNone, "list a container's file changes"},
	{"GET", "/containers/{id:.*}/json", levelRead, 0, bodyNone, "inspect a container"},
	{"GET", "/containers/{id:.*}/top", levelRead, 0, bodyNone, "list a container's processes"},
	{"GET", "/containers/{id:.*}/logs", levelDev, 0, bodyNone, "read a container's logs (they copy data out)"},
	{"GET", "/containers/{id:.*}/stats", levelRead, 0, bodyNone, "read a container's resource usage"},
	{"GET", "/containers/{id:.*}/attach/ws", levelDev, 0, bodyNone, "attach to a container over a websocket (a GET that writes to its stdin)"},
	{"GET", "/exec/{id:.*}/json", levelRead, 0, bodyNone, "inspect an exec"},
	{"GET", "/containers/{id:.*}/archive", levelAdmin, 0, bodyNone, "copy files out of a container (docker cp), as root in any container"},
	{"POST", "/containers/create", levelDev, 0, bodyCreate, "create a container"},
	{"POST", "/containers/{id:.*}/kill", levelDev, 0, bodyNone, "kill a container"},
	{"POST", "/containers/{id:.*}/pause", levelDev, 0, bodyNone, "pause a container"},
	{"POST", "/containers/{id:.*}/unpause", levelDev, 0, bodyNone, "unpause a container"},
	{"POST", "/containers/{id:.*}/restart", levelDev, 0, bodyNone, "restart a container"},
	{"POST", "/containers/{id:.*}/start", levelDev, 0, queryStart, "start a container"},
	{"POST", "/containers/{id:.*}/stop", levelDev, 0, bodyNone, "stop a container"},
	{"POST", "/containers/{id:.*}/wait", levelDev, 0, bodyNone, "wait for a container"},
	{"POST", "/containers/{id:.*}/resize", levelDev, 0, bodyNone, "resize a container's TTY"},
	{"POST", "/containers/{id:.*}/attach", levelDev, 0, bodyNone, "attach to a container (its stdin, stdout and stderr)"},
	{"POST", "/containers/{id:.*}/copy", levelAdmin, 0, bodyNone, "copy files out of a container (removed in API 1.12)"},
	{"POST", "/containers/{id:.*}/exec", levelDev, 0, bodyExec, "run a command in a container (docker exec)"},
	{"POST", "/exec/{id:.*}/start", levelDev, 0, bodyNone, "start an exec"},
	{"POST", "/exec/{id:.*}/resize", levelDev, 0, bodyNone, "resize an exec's TTY"},
	{"POST", "/containers/{id:.*}/rename", levelDev, 0, queryRename, "rename a container (docker compose does, to recreate one)"},
	{"POST", "/containers/{id:.*}/update", levelAdmin, 0, bodyNone, "change a container's resources and restart policy"},
	{"POST", "/containers/prune", levelCap, capPrune, bodyNone, "remove every stopped container"},
	{"POST", "/commit", levelAdmin, 0, bodyNone, "make an image of any container (docker commit), its files included"},
	{"PUT", "/containers/{id:.*}/archive", levelAdmin, 0, bodyNone, "copy files into a container (docker cp), as root in any container"},
	{"DELETE", "/containers/{id:.*}", levelDev, 0, bodyNone, "remove a container"},

	// image
	{"GET", "/images/json", levelRead, 0, bodyNone, "list images"},
	// A registry is reached by dockerd, from the host's network: its
	// loopback services included (127.0.0.0/8 is an insecure registry by
	// default, spoken to in plain HTTP), whose answers dockerd quotes in
	// its errors. That is a developer's, as a pull is; readonly reaches
	// nothing.
	{"GET", "/images/search", levelDev, 0, bodyNone, "search a registry"},
	{"GET", "/images/get", levelAdmin, 0, bodyNone, "save images to a tar archive (docker save)"},
	{"GET", "/images/{name:.*}/get", levelAdmin, 0, bodyNone, "save an image to a tar archive (docker save)"},
	{"GET", "/images/{name:.*}/history", levelRead, 0, bodyNone, "read an image's history"},
	{"GET", "/images/{name:.*}/json", levelRead, 0, bodyNone, "inspect an image"},
	{"GET", "/images/{name:.*}/attestations", levelRead, 0, bodyNone, "read an image's attestations"},
	{"POST", "/images/load", levelAdmin, 0, bodyNone, "load images from a tar archive (docker load): it can replace an image others run"},
	{"POST", "/images/create", levelDev, 0, queryImageCreate, "pull an image"},
	{"POST", "/images/{name:.*}/push", levelAdmin, 0, bodyNone, "push an image to a registry"},
	{"POST", "/images/{name:.*}/tag", levelAdmin, 0, bodyNone, "tag an image: it can replace an image others run"},
	{"POST", "/images/prune", levelCap, capPrune, bodyNone, "remove unused images"},
	{"DELETE", "/images/{name:.*}", levelDev, 0, queryImageDelete, "remove an image"},

	// system
	{"OPTIONS", "/{any:.*}", levelAdmin, 0, bodyNone, "answer a CORS preflight"},
	{"GET", "/_ping", levelRead, 0, bodyNone, "ping the daemon"},
	{"HEAD", "/_ping", levelRead, 0, bodyNone, "ping the daemon"},
	{"GET", "/events", levelRead, 0, bodyNone, "read the daemon's events"},
	{"GET", "/info", levelRead, 0, bodyNone, "read system information"},
	{"GET", "/version", levelRead, 0, bodyNone, "read the daemon's version"},
	{"GET", "/system/df", levelRead, 0, bodyNone, "read disk usage"},
	{"POST", "/auth", levelDev, 0, bodyNone, "check registry credentials (docker login)"},

	// volume
	{"GET", "/volumes", levelRead, 0, bodyNone, "list volumes"},
	{"GET", "/volumes/{name:.*}", levelRead, 0, bodyNone, "inspect a volume"},
	{"POST", "/volumes/create", levelDev, 0, bodyVolume, "create a volume"},
	{"POST", "/volumes/prune", levelCap, capPrune, bodyNone, "remove unused volumes, and their data"},
	{"PUT", "/volumes/{name:.*}", levelAdmin, 0, bodyNone, "update a cluster volume"},
	{"DELETE", "/volumes/{name:.*}", levelDev, 0, bodyNone, "remove a volume"},

	// build, session
	{"POST", "/build", levelCap, capBuild, queryBuild, "build an image"},
	{"POST", "/build/prune", levelCap, capBuild, bodyNone, "remove the build cache"},
	{"POST", "/build/cancel", levelCap, capBuild, bodyNone, "cancel a build"},
	{"POST", "/session", levelCap, capBuild, bodyNone, "open a BuildKit session"},

	// swarm
	{"POST", "/swarm/init", levelCap, capSwarm, bodyNone, "create a swarm"},
	{"POST", "/swarm/join", levelCap, capSwarm, bodyNone, "join a swarm"},
	{"POST", "/swarm/leave", levelCap, capSwarm, bodyNone, "leave the swarm"},
	{"GET", "/swarm", levelCap, capSwarm, bodyNone, "inspect the swarm"},
	{"GET", "/swarm/unlockkey", levelCap, capSwarm, bodyNone, "read the swarm's unlock key"},
	{"POST", "/swarm/update", levelCap, capSwarm, bodyNone, "update the swarm"},
	{"POST", "/swarm/unlock", levelCap, capSwarm, bodyNone, "unlock the swarm"},
	{"GET", "/services", levelCap, capSwarm, bodyNone, "list services"},
	{"GET", "/services/{id}", levelCap, capSwarm, bodyNone, "inspect a service"},
	{"POST", "/services/create", levelCap, capSwarm, bodyService, "create a service"},
	{"POST", "/services/{id}/update", levelCap, capSwarm, bodyService, "update a service"},
	{"DELETE", "/services/{id}", levelCap, capSwarm, bodyNone, "remove a service"},
	{"GET", "/services/{id}/logs", levelCap, capSwarm, bodyNone, "read a service's logs"},
	{"GET", "/nodes", levelCap, capSwarm, bodyNone, "list nodes"},
	{"GET", "/nodes/{id}", levelCap, capSwarm, bodyNone, "inspect a node"},
	{"DELETE", "/nodes/{id}", levelCap, capSwarm, bodyNone, "remove a node"},
	{"POST", "/nodes/{id}/update", levelCap, capSwarm, bodyNone, "update a node"},
	{"GET", "/tasks", levelCap, capSwarm, bodyNone, "list tasks"},
	{"GET", "/tasks/{id}", levelCap, capSwarm, bodyNone, "inspect a task"},
	{"GET", "/tasks/{id}/logs", levelCap, capSwarm, bodyNone, "read a task's logs"},
	{"GET", "/secrets", levelCap, capSecrets, bodyNone, "list secrets"},
	{"POST", "/secrets/create", levelCap, capSecrets, bodyNone, "create a secret"},
	{"DELETE", "/secrets/{id}", levelCap, capSecrets, bodyNone, "remove a secret"},
	{"GET", "/secrets/{id}", levelCap, capSecrets, bodyNone, "inspect a secret"},
	{"POST", "/secrets/{id}/update", levelCap, capSecrets, bodyNone, "update a secret"},
	{"GET", "/configs", levelCap, capSecrets, bodyNone, "list configs"},
	{"POST", "/configs/create", levelCap, capSecrets, bodyNone, "create a config"},
	{"DELETE", "/configs/{id}", levelCap, capSecrets, bodyNone, "remove a config"},
	{"GET", "/configs/{id}", levelCap, capSecrets, bodyNone, "inspect a config"},
	{"POST", "/configs/{id}/update", levelCap, capSecrets, bodyNone, "update a config"},

	// plugin
	{"GET", "/plugins", levelCap, capPlugins, bodyNone, "list plugins"},
	{"GET", "/plugins/{name:.*}/json", levelCap, capPlugins, bodyNone, "inspect a plugin"},
	{"GET", "/plugins/privileges", levelCap, capPlugins, bodyNone, "read a plugin's privileges"},
	{"DELETE", "/plugins/{name:.*}", levelCap, capPlugins, bodyNone, "remove a plugin"},
	{"POST", "/plugins/{name:.*}/enable", levelCap, capPlugins, bodyNone, "enable a plugin"},
	{"POST", "/plugins/{name:.*}/disable", levelCap, capPlugins, bodyNone, "disable a plugin"},
	{"POST", "/plugins/pull", levelCap, capPlugins, bodyNone, "install a plugin"},
	{"POST", "/plugins/{name:.*}/push", levelCap, capPlugins, bodyNone, "push a plugin"},
	{"POST", "/plugins/{name:.*}/upgrade", levelCap, capPlugins, bodyNone, "upgrade a plugin"},
	{"POST", "/plugins/{name:.*}/set", levelCap, capPlugins, bodyNone, "configure a plugin"},
	{"POST", "/plugins/create", levelCap, capPlugins, bodyNone, "create a plugin"},

	// distribution
	{"GET", "/distribution/{name:.*}/json", levelDev, 0, bodyNone, "read an image's manifest from its registry (dockerd reaches the registry, as in a pull)"},

	// network
	{"GET", "/networks", levelRead, 0, bodyNone, "list networks"},
	{"GET", "/networks/{id:.+}", levelRead, 0, bodyNone, "inspect a network"},
	{"POST", "/networks/create", levelDev, 0, bodyNetwork, "create a network"},
	{"POST", "/networks/{id:.*}/connect", levelDev, 0, bodyConnect, "connect a container to a network"},
	{"POST", "/networks/{id:.*}/disconnect", levelDev, 0, bodyConnect, "disconnect a container from a network"},
	{"POST", "/networks/prune", levelCap, capPrune, bodyNone, "remove unused networks"},
	{"DELETE", "/networks/{id:.*}", levelDev, 0, bodyNone, "remove a network"},

	// debug: dockerd 20.10 registers them for every method
	{"", "/debug/vars", levelAdmin, 0, bodyNone, "read the daemon's debug variables"},
	{"", "/debug/pprof", levelAdmin, 0, bodyNone, "profile the daemon"},
	{"", "/debug/pprof/cmdline", levelAdmin, 0, bodyNone, "profile the daemon"},
	{"", "/debug/pprof/profile", levelAdmin, 0, bodyNone, "profile the daemon"},
	{"", "/debug/pprof/symbol", levelAdmin, 0, bodyNone, "profile the daemon"},
	{"", "/debug/pprof/trace", levelAdmin, 0, bodyNone, "profile the daemon"},
	{"", "/debug/pprof/{name}", levelAdmin, 0, bodyNone, "profile the daemon"},

	// grpc (BuildKit)
	{"POST", "/grpc", levelCap, capBuild, bodyNone, "talk to BuildKit"},
}

type routeSpec struct {
	method string
	path   string
	level  level
	cap    capability
	body   bodyKind
	what   string
}

// routeTable indexes the routes by their first segment, keeping their
// order.
type routeTable struct {
	all     []*route
	byFirst map[string][]*route
	anyHead []*route // routes whose first segment is a variable
}

func buildRoutes(specs []routeSpec) *routeTable {
	t := &routeTable{byFirst: map[string][]*route{}}
	for _, s := range specs {
		rt := &route{method: s.method, level: s.level, cap: s.cap, body: s.body, what: s.what}
		var shown []string
		rests := 0
		for _, part := range strings.Split(s.path[1:], "/") {
			switch {
			case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
				name, re, _ := strings.Cut(part[1:len(part)-1], ":")
				k := segOne
				if re == ".*" || re == ".+" {
					k = segRest
					rests++
				} else if re != "" {
					panic("authz: route " + s.path + ": unknown variable pattern " + re)
				}
				rt.segs = append(rt.segs, seg{kind: k})
				shown = append(shown, "{"+name+"}")
			default:
				rt.segs = append(rt.segs, seg{kind: segLit, lit: part})
				shown = append(shown, part)
			}
		}
		if rests > 1 {
			panic("authz: route " + s.path + ": more than one variable takes slashes")
		}
		rt.path = "/" + strings.Join(shown, "/")
		if o, ok := ownedRoutes[rt.String()]; ok {
			rt.own, rt.live = o.kind, o.live
		}
		rt.obj = objectOf(rt)
		t.all = append(t.all, rt)
		if rt.segs[0].kind == segLit {
			t.byFirst[rt.segs[0].lit] = append(t.byFirst[rt.segs[0].lit], rt)
		} else {
			t.anyHead = append(t.anyHead, rt)
		}
	}
	return t
}

// resolve finds the route dockerd would run for method and the path's
// segments, or nil. HEAD falls back to the GET routes: the policy treats
// HEAD like GET (mux itself would answer 405).
func (t *routeTable) resolve(method string, ps []string) *route {
	if len(ps) == 0 {
		return nil
	}
	if rt := t.find(method, ps); rt != nil || method != "HEAD" {
		return rt
	}
	return t.find("GET", ps)
}

func (t *routeTable) find(method string, ps []string) *route {
	for _, list := range [2][]*route{t.byFirst[ps[0]], t.anyHead} {
		for _, rt := range list {
			if (rt.method == "" || rt.method == method) && rt.match(ps) {
				return rt
			}
		}
	}
	return nil
}

// match reports whether the path's segments fit the template. A segRest
// takes what the fixed segments leave, at least one.
func (rt *route) match(ps []string) bool {
	if len(ps) < len(rt.segs) {
		return false
	}
	extra := len(ps) - len(rt.segs) // taken by the segRest, beyond its first
	i := 0
	for _, s := range rt.segs {
		switch s.kind {
		case segLit:
			if ps[i] != s.lit {
				return false
			}
			i++
		case segOne:
			i++
		case segRest:
			i += 1 + extra
			extra = 0
		}
	}
	return i == len(ps) && extra == 0
}

// token is a piece of a request path as its route reads it: a literal
// segment of the template, or a variable's value ("library/alpine").
type token struct {
	lit   bool
	value string
}

// tokens cuts the path's segments along the route's template. Without a
// route every segment is a literal.
func (rt *route) tokens(ps []string) []token {
	if rt == nil {
		ts := make([]token, len(ps))
		for i, p := range ps {
			ts[i] = token{lit: true, value: p}
		}
		return ts
	}
	ts := make([]token, 0, len(rt.segs))
	extra := len(ps) - len(rt.segs)
	i := 0
	for _, s := range rt.segs {
		switch s.kind {
		case segLit:
			ts = append(ts, token{lit: true, value: ps[i]})
			i++
		case segOne:
			ts = append(ts, token{value: ps[i]})
			i++
		case segRest:
			ts = append(ts, token{value: strings.Join(ps[i:i+1+extra], "/")})
			i += 1 + extra
		}
	}
	return ts
}

// pattern is a policy rule's path: literal segments, {name} variables and
// a trailing "*".
type pattern struct {
	method string // "*" is any
	segs   []pseg
	text   string // as written: "POST /containers/{id}/restart"
}

type pseg struct {
	kind  psegKind
	value string
}

type psegKind uint8

const (
	pLit  psegKind = iota
	pVar           // {name}: a route variable, whole
	pStar          // "*": the rest, maybe nothing
)

var ruleMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "*"}

// parsePattern reads "METHOD /path" and checks that it can match an
// endpoint of the route table.
func parsePattern(s string) (*pattern, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("invalid rule %q: %s", s, fmt.Sprintf(format, a...))
	}
	method, p, ok := strings.Cut(s, " ")
	p = strings.TrimLeft(p, " ")
	if !ok || method == "" || p == "" || strings.ContainsAny(p, " \t") {
		return nil, bad(`want "METHOD /path", e.g. "POST /containers/{id}/restart"`)
	}
	known := false
	for _, m := range ruleMethods {
		known = known || m == method
	}
	if !known {
		return nil, bad("unknown method %q: want %s", method, strings.Join(ruleMethods, ", "))
	}
	if p[0] != '/' {
		return nil, bad(`the path must start with "/"`)
	}
	if strings.ContainsAny(p, "?#%") {
		return nil, bad(`a rule matches the decoded path only: no "?", "#" or "%%"`)
	}
	if rest, v := stripVersion(p); v != "" {
		return nil, bad("leave out the API version prefix %q: rules match %q", "/v"+v, rest)
	}
	pt := &pattern{method: method, text: method + " " + p}
	if p == "/" {
		return nil, bad("it matches no Docker API endpoint")
	}
	parts := strings.Split(p[1:], "/")
	for i, part := range parts {
		sg, why := parseSegment(part, i == len(parts)-1)
		if why != "" {
			return nil, bad("%s", why)
		}
		pt.segs = append(pt.segs, sg)
	}
	for _, rt := range routes().all {
		if pt.methodMatches(rt.method) && matchTemplate(pt.segs, rt.segs) {
			return pt, nil
		}
	}
	return nil, bad("it matches no Docker API endpoint")
}

// parseSegment reads one segment of a rule's path; why says what is wrong
// with it.
func parseSegment(part string, last bool) (sg pseg, why string) {
	switch {
	case part == "*":
		if !last {
			return sg, `"*" may only end the path`
		}
		return pseg{kind: pStar}, ""
	case part == "" || part == "." || part == "..":
		return sg, `empty, "." and ".." segments are not allowed`
	case strings.HasPrefix(part, "{") || strings.HasSuffix(part, "}"):
		name := strings.TrimSuffix(strings.TrimPrefix(part, "{"), "}")
		if !strings.HasPrefix(part, "{") || !strings.HasSuffix(part, "}") || !isIdent(name) {
			return sg, fmt.Sprintf("bad variable %q: want {name}, a whole segment", part)
		}
		return pseg{kind: pVar, value: name}, ""
	case strings.ContainsAny(part, "{}*"):
		return sg, fmt.Sprintf(`%q: "{", "}" and "*" only make a whole segment`, part)
	}
	return pseg{kind: pLit, value: part}, ""
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// methodMatches: "*" is any method, GET is HEAD too (the policy treats
// HEAD like GET), a route registered for any method ("") is matched by
// every rule method.
func (pt *pattern) methodMatches(method string) bool {
	return pt.method == "*" || method == "" || pt.method == method || pt.method == "GET" && method == "HEAD"
}

// matches reports whether the rule covers a request: method, and the path
// as cut by its route. A {name} takes a whole variable of the route,
// never a literal of it: "GET /containers/{id}" does not match "GET
// /containers/x/archive", whose {id} is "x" and "archive" a literal.
// Literals may spell out a variable's value: "GET
// /images/library/alpine/json".
func (pt *pattern) matches(method string, ts []token) bool {
	return pt.methodMatches(method) && matchTokens(pt.segs, ts)
}

func matchTokens(ps []pseg, ts []token) bool {
	for len(ps) > 0 {
		p := ps[0]
		if p.kind == pStar {
			return true
		}
		if len(ts) == 0 {
			return false
		}
		t := ts[0]
		switch {
		case p.kind == pVar:
			if t.lit {
				return false
			}
			ps = ps[1:]
		case t.lit:
			if t.value != p.value {
				return false
			}
			ps = ps[1:]
		default: // literals spelling a variable's value
			for v := range strings.SplitSeq(t.value, "/") {
				if len(ps) == 0 {
					return false
				}
				if ps[0].kind == pStar {
					return true
				}
				if ps[0].kind != pLit || ps[0].value != v {
					return false
				}
				ps = ps[1:]
			}
		}
		ts = ts[1:]
	}
	return len(ts) == 0
}

// matchTemplate reports whether a rule could match some request of a
// route, whatever its variables hold.
func matchTemplate(ps []pseg, ss []seg) bool {
	if len(ps) == 0 {
		return len(ss) == 0
	}
	if ps[0].kind == pStar {
		return true
	}
	if len(ss) == 0 {
		return false
	}
	s := ss[0]
	switch {
	case s.kind == segLit:
		return ps[0].kind == pLit && ps[0].value == s.lit && matchTemplate(ps[1:], ss[1:])
	case ps[0].kind == pVar:
		return matchTemplate(ps[1:], ss[1:])
	}
	// Literals for a variable's value: one for {id}, one or more for
	// {name:.*}; a "*" among them takes the rest.
	for n := 1; n <= len(ps); n++ {
		if ps[n-1].kind == pStar {
			return true
		}
		if ps[n-1].kind != pLit {
			return false
		}
		if matchTemplate(ps[n:], ss[1:]) {
			return true
		}
		if s.kind == segOne {
			return false
		}
	}
	return false
}

// ruleMatcher matches a role's rules against one request. A rule whose
// literal stands for the object a route names ("POST
// /containers/web/restart") is judged on the object the reference
// resolves to, by its name or whole ID, not on the reference's text:
// otherwise a deny rule for "web" would not stop the same call by ID, and
// an allow rule for "db" would reach a container whose ID starts with
// "db". A deny rule that names an object denies a reference that cannot
// be resolved (fail closed); an allow rule does not allow it.
type ruleMatcher struct {
	method string
	rt     *route
	ts     []token
	env    *Env
	obj    *Object
	err    error
}

func (m *ruleMatcher) matches(pt *pattern, deny bool) bool {
	if m.rt == nil || m.rt.obj == "" || pt.matches(m.method, m.generic()) {
		return pt.matches(m.method, m.ts)
	}
	if !pt.matches(m.method, m.ts) && !pt.couldName(m.method, m.ts) {
		return false
	}
	o, err := m.object()
	if err != nil || !o.Exists {
		return deny
	}
	for _, v := range o.names() {
		if pt.matches(m.method, withVar(m.ts, v)) {
			return true
		}
	}
	return false
}

// generic is the request's tokens with every variable blank: a rule that
// matches them does not depend on which object the request names.
func (m *ruleMatcher) generic() []token { return withVar(m.ts, "\x00") }

// object resolves the route's object once.
func (m *ruleMatcher) object() (Object, error) {
	if m.obj == nil {
		ref := ""
		for _, t := range m.ts {
			if !t.lit {
				ref = t.value
				break
			}
		}
		var o Object
		if m.env == nil || m.env.Objects == nil {
			m.err = fmt.Errorf("no lookup of %s %q", m.rt.obj, ref)
		} else {
			o, m.err = m.env.Objects.Lookup(m.rt.obj, ref)
		}
		m.obj = &o
	}
	return *m.obj, m.err
}

// withVar is ts with its first variable's value replaced by v.
func withVar(ts []token, v string) []token {
	out := slices.Clone(ts)
	for i := range out {
		if !out[i].lit {
			out[i].value = v
			break
		}
	}
	return out
}

// couldName reports whether the rule, with some value of the request's
// first variable, matches: it names an object of this route.
func (pt *pattern) couldName(method string, ts []token) bool {
	if !pt.methodMatches(method) {
		return false
	}
	for i, t := range ts {
		if t.lit {
			continue
		}
		// The literal the rule has where the variable stands.
		if i < len(pt.segs) && pt.segs[i].kind == pLit {
			return pt.matches(method, withVar(ts, pt.segs[i].value))
		}
		return false
	}
	return false
}
