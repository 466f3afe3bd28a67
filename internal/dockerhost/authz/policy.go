package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Source is how the request reached dockerd.
type Source string

const (
	SourceTCP  Source = "tcp"
	SourceUnix Source = "unix"
)

// Identity is who sent a request, as the plugin established it.
type Identity struct {
	User   string // the client certificate's CN ("" over the unix socket)
	Serial string // hex serial of the client certificate
	Role   string // role from the inventory ("" = the policy's default role)
	Source Source
}

// Request is the part of Docker's AuthZReq the policy looks at.
type Request struct {
	Method  string            // RequestMethod
	URI     string            // RequestUri, as sent (with /v1.41 prefix and query)
	Body    []byte            // RequestBody (may be nil: not forwarded by the daemon)
	Headers map[string]string // RequestHeaders (Content-Type ...)
	// Env resolves references and owners and names the host's own paths;
	// nil resolves nothing (what needs it is denied to all but admin).
	Env *Env
}

// Decision is the policy's answer and why.
type Decision struct {
	Allow bool
	// Rule is the rule that decided, "<role>: <rule>[: <field>]":
	//
	//	readonly: GET /containers/json                          a route of the role's base
	//	ci: capability build: POST /build                       a route of a capability
	//	deployer: allow POST /containers/{id}/restart           an allow rule of the policy
	//	auditor: deny GET /events                               a deny rule of the policy
	//	admin: everything
	//	developer: POST /containers/create: HostConfig.Privileged   the body field that denied
	//	developer: POST /containers/create: body                a missing or unparsable body
	//	readonly: default deny: GET /containers/{id}/archive    no rule allows the route
	//	readonly: unknown endpoint                              no Docker API route matches
	//	readonly: API version                                   a version before 1.24
	//	ghost: unknown role
	//	request: incomplete, request: path                      no method or URI, a bad URI
	//	unix: allow, unix: deny                                 the unix socket's setting
	//
	// A decision for the unix socket's role ("unix": "role:developer")
	// starts with "unix: ": "unix: developer: POST /containers/create".
	Rule string
	// Reason is a sentence for the Docker user (dockerd shows it after
	// "authorization denied by plugin ...") and the audit log.
	Reason string
	// Path is the canonical path (CanonicalPath): "/containers/create".
	Path string
	// Fields are the body and query fields that decided (image,
	// privileged, binds, cap_add, user ...), for the audit log; nil when
	// none did.
	Fields map[string]any
}

// capability is a group of endpoints a role must name to get.
type capability uint8

const (
	capBuild capability = 1 << iota
	capPlugins
	capSwarm
	capSecrets
	capPrune
	capPorts
)

// capabilities, in the order the policy lists them. Each is as strong as
// it says: build runs code as root with the daemon's network (dockerd
// allows the network=host entitlement by default) and can tag any image
// name; plugins installs managed plugins, which ask for host privileges;
// swarm joins this daemon to a swarm (whose managers then run tasks here)
// and reads the unlock key, so it is as good as admin.
var capabilities = []struct {
	c    capability
	name string
	what string
}{
	{capBuild, "build", "POST /build, /build/prune, /build/cancel, BuildKit's /session and /grpc"},
	{capPlugins, "plugins", "/plugins/*: install, configure, enable and remove plugins"},
	{capSwarm, "swarm", "/swarm/*, /services/*, /nodes/*, /tasks/*: including joining a swarm, which is as good as admin"},
	{capSecrets, "secrets", "/secrets/*, /configs/*, and services that use secrets or configs"},
	{capPrune, "prune", "POST /containers/prune, /images/prune, /volumes/prune, /networks/prune: other users' data too"},
	{capPorts, "ports", "publish host ports below the host's first unprivileged port (-p 443:443), whose traffic dockerd's NAT takes from the host's own services"},
}

func capabilityNamed(name string) (capability, bool) {
	for _, c := range capabilities {
		if c.name == name {
			return c.c, true
		}
	}
	return 0, false
}

func capabilityName(c capability) string {
	for _, x := range capabilities {
		if x.c == c {
			return x.name
		}
	}
	return "?"
}

// Built-in roles. The default role of DefaultPolicy is readonly: a
// certificate whose holder has no role recorded may look, not touch.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleReadonly  = "readonly"
)

// Built-in roles for the tenants of per-container sockets ('dtls gateway
// socket add NAME --role ROLE'): each is what one kind of tool calls, read
// from its source (tenantRoles).
const (
	RoleProxy    = "proxy"
	RoleUpdater  = "updater"
	RoleCIRunner = "ci-runner"
)

var builtinRoles = []string{RoleAdmin, RoleDeveloper, RoleReadonly, RoleProxy, RoleUpdater, RoleCIRunner} // the first three cannot be redefined

// roleLevel is what a role's built-in base grants.
type roleLevel uint8

const (
	rolesNone roleLevel = iota // a role without a base: its allow rules and capabilities only
	rolesRead                  // readonly
	rolesDev                   // developer
	rolesAll                   // admin
)

// role is a resolved role: its base chain flattened.
type role struct {
	name  string
	base  string // as written; "" for built-ins and roles without a base
	desc  string
	level roleLevel
	caps  capability
	allow []*pattern // own and inherited
	deny  []*pattern
	// replaces: a container its allow rules let it change (stop, kill,
	// remove, rename, start) and that it did not create must be one it
	// could create as it is now (the updater's rule, tenantRoles).
	replaces bool
	// recordInput: the gateway records what holders of the role type
	// into exec and attach streams, not only what they see (own, else
	// the base's).
	recordInput bool
}

// unixMode is the policy for requests over dockerd's unix socket.
type unixMode uint8

const (
	unixAllow unixMode = iota
	unixDeny
	unixRole
)

// Policy decides Docker API requests by role. It is immutable once made,
// and safe for concurrent use.
type Policy struct {
	defaultRole string
	unix        unixMode
	unixRole    string
	roles       map[string]*role
	protected   []string // host paths no role but admin may mount; "/" is implied
	bindRoots   []string // host paths under which other roles may mount; "{user}" is the caller's name
	maxPids     int64    // when > 0, every container of a role but admin needs a pids limit up to it
	// firstPort, when > 0, stands for the host's first unprivileged port
	// (tests); 0 reads it from the host (hostFirstUnprivilegedPort).
	firstPort int
	// unixUsers and unixGroups give local callers of the gateway's own
	// unix socket their role, by account and by group name (local.go).
	unixUsers, unixGroups map[string]string
}

// defaultProtectedPaths are the host paths (and everything under them)
// that a role other than admin may not bind-mount nor mount as a local
// volume's device. The list: "/" itself (handled apart: it is
// under nothing), /etc, /root, /run and /var/run (the Docker socket, and
// /var/run is usually a link to /run), /var/lib/docker, /proc, /sys,
// /dev, /boot. Added here: the programs and libraries root runs (/bin,
// /sbin, /lib*, /usr), /var/lib (containerd, kubelet and every service's
// state, /var/lib/docker included) and /var/spool (cron's crontabs): a
// writable mount of any of them is root on the host.
var defaultProtectedPaths = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
	"/proc", "/root", "/run", "/sbin", "/sys", "/usr",
	"/var/lib", "/var/lib/docker", "/var/run", "/var/spool",
}

// DefaultPolicy is the built-in policy: the roles admin, developer and
// readonly, readonly by default, the unix socket allowed.
//
//   - admin may do everything.
//   - readonly may read: list and inspect containers, images, networks,
//     volumes, execs; /_ping, /version, /info, /events, /system/df. Not the
//     reads that copy data out: GET or HEAD .../archive (docker cp),
//     /containers/{id}/export, /images/get and /images/{name}/get (docker
//     save), /containers/{id}/logs, /containers/{id}/attach/ws (a GET that
//     writes to stdin). GET-only is not read-only (docker-socket-proxy#182).
//     Nor the reads that make dockerd reach a registry, from the host's
//     network (/images/search, /distribution): a developer's, as a pull.
//   - developer may also create, run, stop and remove containers, read
//     their logs, attach, exec (not privileged, not as root), pull and
//     remove images, create and remove networks and volumes, docker login
//     (POST /auth) - but nothing that owns the host: see the checks of
//     POST /containers/create in body.go. Not docker cp (archive) nor
//     export, commit, tag, push, load, container update: they read or write
//     any container's files as root, or replace an image others run.
//
// Capabilities (build, plugins, swarm, secrets, prune, ports) are off but for
// admin; a policy file gives them to its roles.
func DefaultPolicy() *Policy {
	p := &Policy{defaultRole: RoleReadonly, unix: unixAllow, roles: map[string]*role{}, protected: defaultProtectedPaths}
	p.roles[RoleAdmin] = &role{name: RoleAdmin, level: rolesAll, desc: "everything"}
	p.roles[RoleDeveloper] = &role{name: RoleDeveloper, level: rolesDev, desc: "create and run containers, but nothing that owns the host"}
	p.roles[RoleReadonly] = &role{name: RoleReadonly, level: rolesRead, desc: "reads, but not those that copy data out"}
	for _, t := range tenantRoles {
		r := &role{name: t.name, base: t.base, desc: t.desc, caps: t.caps, replaces: t.replaces}
		if b := p.roles[t.base]; b != nil {
			r.level = b.level
		}
		for _, s := range t.allow {
			pt, err := parsePattern(s)
			if err != nil {
				panic("authz: built-in role " + t.name + ": " + err.Error())
			}
			r.allow = append(r.allow, pt)
		}
		for _, s := range t.deny {
			pt, err := parsePattern(s)
			if err != nil {
				panic("authz: built-in role " + t.name + ": " + err.Error())
			}
			r.deny = append(r.deny, pt)
		}
		p.roles[t.name] = r
	}
	return p
}

// Roles lists the roles the policy defines, sorted.
func (p *Policy) Roles() []string {
	names := make([]string, 0, len(p.roles))
	for n := range p.roles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// HasRole reports whether the policy defines the role.
func (p *Policy) HasRole(name string) bool {
	_, ok := p.roles[name]
	return ok
}

// RecordsInput reports whether the gateway records what holders of the
// role type into exec and attach streams (the role's "record_input"),
// besides what they see.
func (p *Policy) RecordsInput(role string) bool {
	r, ok := p.roles[role]
	return ok && r.recordInput
}

// DefaultRole is the role of an identity without one.
func (p *Policy) DefaultRole() string { return p.defaultRole }

// LoadPolicy reads a policy file (the format is ParsePolicy's). Errors
// name the file, the place in it and the bad value.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", path, err)
	}
	return p, nil
}

// ParsePolicy reads a policy: a JSON object (testdata/policy.json is an
// example) with these keys, all optional:
//
//	{
//	  "default_role": "readonly",
//	  "unix": "allow",
//	  "unix_users": {"alice": "developer"},
//	  "unix_groups": {"devs": "readonly"},
//	  "protected_paths": ["/srv/secrets"],
//	  "bind_roots": ["/srv/work/{user}"],
//	  "max_pids": 4096,
//	  "roles": {
//	    "ci":       {"base": "developer", "capabilities": ["build"]},
//	    "auditor":  {"base": "readonly", "deny": ["GET /events"]},
//	    "deployer": {"base": "readonly", "allow": ["POST /containers/{id}/restart"],
//	                 "description": "restarts what is deployed"},
//	    "contractor": {"base": "developer", "record_input": true}
//	  }
//	}
//
// default_role is the role of a certificate whose holder has none recorded
// (readonly when absent). unix decides requests over dockerd's unix
// socket: "allow" (the default: the socket's own root:docker 0660 mode
// decides, and an admin is never locked out), "deny", or "role:NAME" (as
// if sent by a holder of role NAME). protected_paths adds host paths to
// those no role but admin may mount (defaultProtectedPaths). bind_roots
// are the host paths under which a role that is not admin may bind-mount
// (none by default: no host path at all); "{user}" is the caller's
// certificate name, so "/srv/work/{user}" gives each holder their own
// directory. A source is judged where it resolves on the host. max_pids,
// when set, makes every container of such a role carry a pids limit of
// at most that many processes. unix_users and unix_groups give the local
// accounts that call the gateway's own unix socket (not dockerd's) their
// role, by account name and by group name (LocalRole): an account named
// in neither is denied.
//
// A role is built from blocks: a base (a built-in role: admin, developer,
// readonly, proxy, updater, ci-runner; or a role of the file; none means
// nothing), capabilities (build, plugins, swarm, secrets, prune, ports), allow
// and deny rules, and record_input (the gateway records what its holders
// type into exec and attach streams, not only what they see; inherited
// from the base unless set). A rule is "METHOD /path":
// METHOD is GET (which covers HEAD), HEAD, POST, PUT, DELETE, OPTIONS or
// "*"; the path has no API version prefix and no query; a segment "{name}"
// takes a whole variable of the Docker route (the {id} of
// "/containers/{id}/json", which may hold slashes as an image name does),
// never one of its literals, so "GET /containers/{id}" matches no route
// rather than "GET /containers/x/archive"; literal segments may spell a
// variable's value ("POST /containers/web/restart"); a last segment "*"
// takes the rest, or nothing. A rule must match a route dockerd has.
//
// Deny rules come first, then everything for a role based on admin, then
// what the base and capabilities grant, then allow rules. The checks of
// request bodies (body.go) apply to every role not based on admin,
// whatever allowed the request. The built-in roles cannot be redefined;
// extend one under another name.
//
// Unknown keys, duplicate keys, unknown roles, capabilities and methods,
// rules that match no Docker API endpoint and base cycles are errors that
// name their place: `roles.ci.capabilities[0]: unknown capability "bild":
// want build, plugins, swarm, secrets, prune or ports`.
func ParsePolicy(data []byte) (*Policy, error) {
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(data, err)
	}
	p := DefaultPolicy()
	p.protected = slices.Clone(defaultProtectedPaths)
	f := &policyFile{defs: map[string]json.RawMessage{}}
	if err := object(raw, "", func(key string, val json.RawMessage) error { return p.parseMember(f, key, val) }); err != nil {
		return nil, err
	}
	parsed := map[string]*roleDef{}
	for _, name := range f.order {
		d, err := parseRoleDef(name, f.defs[name])
		if err != nil {
			return nil, err
		}
		parsed[name] = d
	}
	for _, name := range f.order {
		delete(p.roles, name) // a tenant role the file redefines
	}
	for _, name := range f.order {
		if _, err := p.resolve(name, parsed, nil); err != nil {
			return nil, err
		}
	}
	if f.haveDefault {
		if !p.HasRole(f.defaultRole) {
			return nil, fmt.Errorf("default_role: unknown role %q: want one of %s", f.defaultRole, strings.Join(p.Roles(), ", "))
		}
		p.defaultRole = f.defaultRole
	}
	if err := p.setUnix(f.unix); err != nil {
		return nil, err
	}
	if err := p.checkUnixMaps(); err != nil {
		return nil, err
	}
	return p, nil
}

// policyFile is what ParsePolicy gathers before the roles resolve.
type policyFile struct {
	defaultRole, unix string
	haveDefault       bool
	defs              map[string]json.RawMessage
	order             []string
}

// parseMember reads one top-level member of a policy file.
func (p *Policy) parseMember(f *policyFile, key string, val json.RawMessage) error {
	switch key {
	case "default_role":
		f.haveDefault = true
		return str(val, key, &f.defaultRole)
	case "unix":
		return str(val, key, &f.unix)
	case "protected_paths":
		return p.parseProtected(val)
	case "bind_roots":
		return p.parseBindRoots(val)
	case "max_pids":
		if err := json.Unmarshal(val, &p.maxPids); err != nil || p.maxPids < 0 {
			return fmt.Errorf("max_pids: want a whole number, 0 for none, got %s", val)
		}
		return nil
	case "unix_users", "unix_groups":
		return p.parseUnixMap(key, val)
	case "roles":
		return object(val, "roles", func(name string, def json.RawMessage) error {
			// admin, developer and readonly are the policy's ground. The
			// tenant roles came later: a file that already defined a
			// role of one of their names keeps its own (it replaces the
			// built-in one), so that no policy stops loading, and every
			// call is denied, on an upgrade.
			if slices.Contains(builtinRoles[:3], name) {
				return fmt.Errorf("roles.%s: the built-in role %q cannot be redefined: give the role another name, with \"base\": %q", name, name, name)
			}
			if !validRoleName().MatchString(name) {
				return fmt.Errorf("roles.%q: invalid role name: want lowercase letters, digits, '-' and '_', starting with a letter", name)
			}
			f.defs[name] = def
			f.order = append(f.order, name)
			return nil
		})
	}
	return fmt.Errorf("unknown key %q: want default_role, unix, unix_users, unix_groups, protected_paths, bind_roots, max_pids or roles", key)
}

// parseProtected reads protected_paths.
func (p *Policy) parseProtected(val json.RawMessage) error {
	const key = "protected_paths"
	var paths []string
	if err := strs(val, key, &paths); err != nil {
		return err
	}
	for i, s := range paths {
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("%s[%d]: want an absolute path, got %q", key, i, s)
		}
		if c := path.Clean(s); c == "/" {
			return fmt.Errorf("%s[%d]: %q: \"/\" itself is always protected; a list entry protects a directory and what is under it", key, i, s)
		} else if !slices.Contains(p.protected, c) {
			p.protected = append(p.protected, c)
		}
	}
	return nil
}

// setUnix applies the "unix" setting once the roles are known.
func (p *Policy) setUnix(unix string) error {
	switch {
	case unix == "" || unix == "allow":
	case unix == "deny":
		p.unix = unixDeny
	case strings.HasPrefix(unix, "role:"):
		name := strings.TrimPrefix(unix, "role:")
		if !p.HasRole(name) {
			return fmt.Errorf("unix: unknown role %q: want one of %s", name, strings.Join(p.Roles(), ", "))
		}
		p.unix, p.unixRole = unixRole, name
	default:
		return fmt.Errorf(`unix: want "allow", "deny" or "role:NAME", got %q`, unix)
	}
	return nil
}

// parseBindRoots reads bind_roots: absolute, clean paths, none of them
// "/" nor a protected path or one under it (a root that contains one is
// allowed: what is protected under it stays refused). "{user}" may stand
// for a whole segment: each holder gets their own directory.
func (p *Policy) parseBindRoots(val json.RawMessage) error {
	var roots []string
	if err := strs(val, "bind_roots", &roots); err != nil {
		return err
	}
	for i, s := range roots {
		at := fmt.Sprintf("bind_roots[%d]", i)
		if s == "/" {
			return fmt.Errorf("%s: \"/\" is the host's whole file system", at)
		}
		if !cleanAbs(s) || strings.HasSuffix(s, "/") {
			return fmt.Errorf("%s: want a clean absolute path, got %q", at, s)
		}
		for _, seg := range strings.Split(s[1:], "/") {
			if strings.Contains(seg, "{") && seg != "{user}" || strings.Contains(seg, "}") && seg != "{user}" {
				return fmt.Errorf("%s: %q: \"{user}\" is the only placeholder, and it makes a whole segment", at, s)
			}
		}
		for _, q := range p.protected {
			if within(s, q) {
				return fmt.Errorf("%s: %q is the protected host path %s or under it", at, s, q)
			}
		}
		p.bindRoots = append(p.bindRoots, s)
	}
	return nil
}

// validRoleName is authority.ValidateRole's syntax (package authority
// keeps the inventory; a role a policy defines must be one it can record).
var validRoleName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`) })

// roleDef is a role as the file writes it.
type roleDef struct {
	base, desc  string
	caps        capability
	allow, deny []*pattern
	recordInput *bool // nil: the base's
}

func parseRoleDef(name string, raw json.RawMessage) (*roleDef, error) {
	at := "roles." + name
	d := &roleDef{}
	err := object(raw, at, func(key string, val json.RawMessage) error {
		switch key {
		case "base":
			return str(val, at+".base", &d.base)
		case "description":
			return str(val, at+".description", &d.desc)
		case "record_input":
			var b bool
			if err := json.Unmarshal(val, &b); err != nil {
				return fmt.Errorf("%s.record_input: want true or false, got %s", at, val)
			}
			d.recordInput = &b
			return nil
		case "capabilities":
			var list []string
			if err := strs(val, at+".capabilities", &list); err != nil {
				return err
			}
			for i, c := range list {
				bit, ok := capabilityNamed(c)
				if !ok {
					names := make([]string, len(capabilities))
					for j, x := range capabilities {
						names[j] = x.name
					}
					return fmt.Errorf("%s.capabilities[%d]: unknown capability %q: want %s or %s", at, i, c,
						strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
				}
				d.caps |= bit
			}
			return nil
		case "allow", "deny":
			var list []string
			if err := strs(val, at+"."+key, &list); err != nil {
				return err
			}
			for i, s := range list {
				pt, err := parsePattern(s)
				if err != nil {
					return fmt.Errorf("%s.%s[%d]: %w", at, key, i, err)
				}
				if key == "allow" {
					d.allow = append(d.allow, pt)
				} else {
					d.deny = append(d.deny, pt)
				}
			}
			return nil
		}
		return fmt.Errorf("%s: unknown key %q: want base, capabilities, allow, deny, record_input or description", at, key)
	})
	return d, err
}

// resolve flattens a role and its bases into p.roles.
func (p *Policy) resolve(name string, defs map[string]*roleDef, chain []string) (*role, error) {
	if r, ok := p.roles[name]; ok {
		return r, nil
	}
	if i := slices.Index(chain, name); i >= 0 {
		cycle := append(slices.Clone(chain[i:]), name)
		return nil, fmt.Errorf("roles.%s.base: cycle %s", chain[len(chain)-1], strings.Join(cycle, " -> "))
	}
	d := defs[name]
	r := &role{name: name, base: d.base, desc: d.desc, caps: d.caps}
	if d.base != "" {
		if _, ok := defs[d.base]; !ok && !slices.Contains(builtinRoles, d.base) {
			return nil, fmt.Errorf("roles.%s.base: unknown role %q: want %s or a role of this file", name, d.base, strings.Join(builtinRoles, ", "))
		}
		b, err := p.resolve(d.base, defs, append(chain, name))
		if err != nil {
			return nil, err
		}
		r.level, r.caps, r.replaces, r.recordInput = b.level, r.caps|b.caps, b.replaces, b.recordInput
		r.allow, r.deny = slices.Clone(b.allow), slices.Clone(b.deny)
	}
	if d.recordInput != nil {
		r.recordInput = *d.recordInput
	}
	r.allow = append(r.allow, d.allow...)
	r.deny = append(r.deny, d.deny...)
	p.roles[name] = r
	return r, nil
}

// object calls fn for each member of a JSON object, in order. A duplicate
// key is an error: encoding/json would silently keep the last one.
func object(raw json.RawMessage, at string, fn func(key string, val json.RawMessage) error) error {
	name := at
	if name == "" {
		name = "the policy"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("%s: want a JSON object", name)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		key := t.(string) // dec.More and valid JSON: a key comes next
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if seen[key] {
			return fmt.Errorf("%s: duplicate key %q", name, key)
		}
		seen[key] = true
		if err := fn(key, val); err != nil {
			return err
		}
	}
	return nil
}

func str(raw json.RawMessage, at string, s *string) error {
	if err := json.Unmarshal(raw, s); err != nil {
		return fmt.Errorf("%s: want a string, got %s", at, raw)
	}
	return nil
}

func strs(raw json.RawMessage, at string, s *[]string) error {
	if err := json.Unmarshal(raw, s); err != nil {
		return fmt.Errorf("%s: want a list of strings, got %s", at, raw)
	}
	return nil
}

// jsonError places a JSON syntax error at its line and column.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	// Offset counts the bytes read, the bad one included; at the end of
	// the input the error is after the last byte.
	pos := len(data)
	if se.Error() != "unexpected end of JSON input" {
		pos = max(min(int(se.Offset), len(data))-1, 0)
	}
	line := 1 + bytes.Count(data[:pos], []byte("\n"))
	col := pos - bytes.LastIndexByte(data[:pos], '\n')
	return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, se)
}

// Decide decides a request. A request without a method or URI, with a URI
// CanonicalPath refuses (to every role: dockerd routes none of them), or
// for a role the policy does not define is denied. Over the unix socket
// (SourceUnix) the policy's "unix" setting decides; from any other source
// the identity's role does (the default role when it has none), in this
// order: its deny rules; everything for a role based on admin; the route's
// level (readonly's reads, developer's work, a capability); its allow
// rules; else deny. A role not based on admin must speak API 1.24 or
// later, and what it is allowed passes the checks of its body or query
// (body.go), which deny a body that is missing, empty or not JSON.
//
// The route is dockerd's (routes, in path.go): the method and the
// canonical path select it as mux would, so a query, a percent-encoded
// slash or a suffix cannot make one endpoint pass for another.
func (p *Policy) Decide(id Identity, r Request) Decision {
	if r.Method == "" || r.URI == "" {
		return Decision{Rule: "request: incomplete", Reason: "the request has no method or no URI"}
	}
	u, err := parseURI(r.URI)
	if err != nil {
		return Decision{Rule: "request: path", Reason: err.Error(), Path: u.path}
	}
	name, via := id.Role, ""
	if id.Source == SourceUnix {
		switch p.unix {
		case unixAllow:
			return Decision{Allow: true, Rule: "unix: allow", Path: u.path,
				Reason: `the local unix socket is allowed by the policy ("unix": "allow"); its file mode decides who may use it`}
		case unixDeny:
			return Decision{Rule: "unix: deny", Path: u.path,
				Reason: `the local unix socket is denied by the policy ("unix": "deny")`}
		}
		name, via = p.unixRole, "unix: "
	}
	if name == "" && id.Source == SourceLocal {
		// A local caller without a role is no one the policy knows:
		// never the default role, which is a certificate holder's.
		return Decision{Rule: "local: no role", Path: u.path, Reason: fmt.Sprintf("%s has no role", id.User)}
	}
	if name == "" {
		name = p.defaultRole
	}
	rl, ok := p.roles[name]
	if !ok {
		return Decision{Rule: via + name + ": unknown role", Path: u.path,
			Reason: fmt.Sprintf("role %q is not defined by the policy (it defines %s)", name, strings.Join(p.Roles(), ", "))}
	}
	return p.decide(rl, via+rl.name+": ", id, r, u)
}

func (p *Policy) decide(rl *role, prefix string, id Identity, r Request, u requestURI) Decision {
	d := Decision{Path: u.path}
	deny := func(rule, reason string) Decision {
		d.Rule, d.Reason = prefix+rule, reason
		return d
	}
	if rl.level != rolesAll && u.version != "" && !apiVersionOK(u.version) {
		return deny("API version", fmt.Sprintf("API version %q is older than 1.24 or malformed: before 1.24, starting a container could carry a HostConfig the policy does not check", u.version))
	}
	ps := splitPath(u.path)
	rt := routes().resolve(r.Method, ps)
	var ts []token
	if len(rl.deny) > 0 || len(rl.allow) > 0 {
		ts = rt.tokens(ps)
	}
	m := &ruleMatcher{method: r.Method, rt: rt, ts: ts, env: r.Env}
	for _, pt := range rl.deny {
		if m.matches(pt, true) {
			return deny("deny "+pt.text, fmt.Sprintf("%s %s is denied by the policy rule %q", r.Method, u.path, pt.text))
		}
	}
	if rl.level == rolesAll {
		d.Allow, d.Rule, d.Reason = true, prefix+"everything", fmt.Sprintf("role %s may do everything", rl.name)
		return d
	}
	if rt == nil {
		return deny("unknown endpoint", fmt.Sprintf("%s %s is not a Docker API endpoint the policy knows: only admin may call it", r.Method, u.path))
	}
	rule, byAllow := "", false
	switch {
	case rt.level == levelRead && rl.level >= rolesRead, rt.level == levelDev && rl.level >= rolesDev:
		rule = rt.String()
	case rt.level == levelCap && rl.caps&rt.cap != 0:
		rule = "capability " + capabilityName(rt.cap) + ": " + rt.String()
	}
	if rule == "" {
		for _, pt := range rl.allow {
			if m.matches(pt, false) {
				rule, byAllow = "allow "+pt.text, true
				break
			}
		}
	}
	if rule == "" {
		return deny("default deny: "+rt.String(), notAllowedReason(rt))
	}
	if rt.body != bodyNone || rt.own != "" {
		c := p.check(rl, rt, id, r, u, !byAllow)
		d.Fields = c.fields
		if c.field != "" {
			return deny(rule+": "+c.field, c.reason)
		}
		if n := fieldsSize(c.fields); n > maxAuditFields {
			return deny(rule+": record", fmt.Sprintf("what this call is decided on takes %d bytes, more than an audit record keeps (%d): refused, so that no call runs that its record does not show whole", n, maxAuditFields))
		}
	}
	d.Allow, d.Rule, d.Reason = true, prefix+rule, "allowed: "+rt.what
	return d
}

// notAllowedReason says why a route is out of a role's reach.
func notAllowedReason(rt *route) string {
	switch rt.level {
	case levelCap:
		return fmt.Sprintf("%s needs the %s capability: %s", rt, capabilityName(rt.cap), rt.what)
	case levelDev:
		return fmt.Sprintf("%s is for developer and admin: %s", rt, rt.what)
	case levelRead:
		return fmt.Sprintf("%s is not granted to this role: %s", rt, rt.what)
	}
	return fmt.Sprintf("%s is for admin only: %s", rt, rt.what)
}

// Describe lists what a role may do, one line each, for 'dtls authz
// explain': its blocks, its deny rules, what its base and capabilities
// grant route by route, its allow rules, and the checks of request bodies.
// It is nil for a role the policy does not define.
func (p *Policy) Describe(name string) []string {
	rl, ok := p.roles[name]
	if !ok {
		return nil
	}
	out := []string{roleHead(rl)}
	var caps []string
	for _, c := range capabilities {
		if rl.level == rolesAll || rl.caps&c.c != 0 {
			caps = append(caps, c.name)
		}
	}
	if len(caps) > 0 {
		out = append(out, "capabilities: "+strings.Join(caps, ", "))
	}
	if p.defaultRole == rl.name {
		out = append(out, "default role: certificates without a role get this one")
	}
	if rl.recordInput {
		out = append(out, "record_input: the gateway records what its holders type into exec and attach streams")
	}
	if l := p.localsOf(rl.name); l != "" {
		out = append(out, l)
	}
	if p.unix == unixRole && p.unixRole == rl.name {
		out = append(out, "unix socket: requests over dockerd's unix socket get this role")
	}
	for _, pt := range rl.deny {
		out = append(out, "deny  "+pt.text+"  (policy rule, before all else)")
	}
	if rl.level == rolesAll {
		return append(out, "allow everything else")
	}
	out = append(out, "deny  API versions before 1.24")
	out = append(out, replacesRule(rl)...)
	for _, rt := range routes().all {
		via := ""
		switch {
		case rt.level == levelRead && rl.level >= rolesRead, rt.level == levelDev && rl.level >= rolesDev:
		case rt.level == levelCap && rl.caps&rt.cap != 0:
			via = "  (capability " + capabilityName(rt.cap) + ")"
		default:
			continue
		}
		out = append(out, fmt.Sprintf("allow %s: %s%s", rt, rt.what, via))
		out = append(out, checksOf(rt)...)
	}
	for _, pt := range rl.allow {
		out = append(out, "allow "+pt.text+"  (policy rule)")
	}
	out = append(out, "deny  everything else")
	return out
}

// roleHead is Describe's first line: "role ci-runner: built in, based on
// developer (a CI runner ...)".
func roleHead(rl *role) string {
	head := "role " + rl.name
	builtin := slices.Contains(builtinRoles, rl.name)
	switch {
	case rl.base != "" && builtin:
		head += ": built in, based on " + rl.base
	case rl.base != "":
		head += ": based on " + rl.base
	case builtin:
		head += ": built in"
	default:
		head += ": no base"
	}
	if rl.desc != "" {
		head += " (" + rl.desc + ")"
	}
	return head
}

// replacesRule is Describe's line for the updater's rule, if the role has it.
func replacesRule(rl *role) []string {
	if !rl.replaces {
		return nil
	}
	return []string{
		"deny  stopping, killing, removing, renaming or starting a container it did not create and could not create as it is now (its replacement must pass the create checks)",
		"      a create may send back MaskedPaths and ReadonlyPaths that hold every path dockerd 20.10 masks or makes read-only, and, on a cgroup v1 host, CgroupnsMode \"host\" (what an inspect reports)",
	}
}

// firstUnprivilegedPort is the lowest port a process without
// CAP_NET_BIND_SERVICE may bind on this host.
func (p *Policy) firstUnprivilegedPort() int {
	if p.firstPort > 0 {
		return p.firstPort
	}
	return hostFirstUnprivilegedPort()
}

// hostFirstUnprivilegedPort reads net.ipv4.ip_unprivileged_port_start
// (Linux 4.11; ip-sysctl.rst), in the network namespace of the plugin or
// gateway, which is dockerd's: 1024 where it cannot be read, the kernel's
// fixed value before it existed and on other systems. Read once: the
// decision must not cost a file read, and an admin who changes it
// restarts the plugin or gateway (README).
var hostFirstUnprivilegedPort = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 65536 {
		return 1024
	}
	return n
})
