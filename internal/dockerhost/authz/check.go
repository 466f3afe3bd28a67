package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Env is what the policy learns from the host beyond the request: who
// owns what, what a reference names, which host paths are dtls's and
// dockerd's own.
type Env struct {
	// Objects resolves references and owners; nil fails every lookup
	// (denied).
	Objects Objects
	// Protected are more host paths no role but admin may mount: dtls's
	// state, certs and log directories, the policy file, dockerd's
	// data-root, exec-root and sockets.
	Protected []string
	// Resolve resolves a host path (resolveHostPath when nil).
	Resolve func(string) string
	// CheckRoot says why a bind root may not be mounted, "" when it may
	// (rootProblem, on this host, when nil).
	CheckRoot func(string) string
	// HostCgroupns: dockerd's default cgroup namespace on this host is
	// the host's (a cgroup v1 host, HostCgroupnsDefault), so a copy of a
	// container that asks for it asks for what the original got
	// (defaultCgroupns).
	HostCgroupns bool
}

// checker applies the checks of one request for one caller.
type checker struct {
	p      *Policy
	rl     *role
	caller string // owner key (ownerOf)
	env    *Env
	c      checkResult
	paths  *hostPaths
	// topLevelUnused: the body has a HostConfig, so the top-level fields
	// are checked as values but set no limit.
	topLevelUnused bool
}

func (p *Policy) newChecker(rl *role, id Identity, env *Env) *checker {
	if env == nil {
		env = &Env{}
	}
	return &checker{p: p, rl: rl, caller: ownerOf(id), env: env}
}

func (k *checker) resolve(path string) string {
	if k.env.Resolve != nil {
		return k.env.Resolve(path)
	}
	return resolveHostPath(path)
}

// checkRoot judges a bind root on the host (Env.CheckRoot in tests).
func (k *checker) checkRoot(root string) string {
	if k.env.CheckRoot != nil {
		return k.env.CheckRoot(root)
	}
	return rootProblem(root, k.resolveFixed)
}

// resolveFixed resolves a path of the policy or the host's own (a
// protected path, a bind root), which changes rarely: cached.
func (k *checker) resolveFixed(path string) string {
	if k.env.Resolve != nil {
		return k.env.Resolve(path)
	}
	return resolveCached(path)
}

// hostPaths computes the protected paths (as written and resolved) and
// the bind roots once per request.
func (k *checker) hostPaths() *hostPaths {
	if k.paths != nil {
		return k.paths
	}
	if k.env.Resolve == nil {
		k.paths = cachedHostPaths(k.p, k.env.Protected, k.buildHostPaths)
		return k.paths
	}
	k.paths = k.buildHostPaths()
	return k.paths
}

// hostPathsCache keeps the last policy's resolved paths for a second:
// every create with a bind would resolve some forty paths again.
var hostPathsCache struct {
	sync.Mutex
	p    *Policy
	prot []string
	at   time.Time
	h    *hostPaths
}

func cachedHostPaths(p *Policy, prot []string, build func() *hostPaths) *hostPaths {
	c := &hostPathsCache
	c.Lock()
	defer c.Unlock()
	now := time.Now()
	if c.h != nil && c.p == p && slices.Equal(c.prot, prot) && now.Sub(c.at) < time.Second && !now.Before(c.at) {
		return c.h
	}
	c.p, c.prot, c.at, c.h = p, slices.Clone(prot), now, build()
	return c.h
}

// buildHostPaths resolves the protected paths and takes the bind roots.
func (k *checker) buildHostPaths() *hostPaths {
	h := &hostPaths{roots: k.p.bindRoots}
	seen := map[string]bool{}
	for _, list := range [][]string{k.p.protected, k.env.Protected} {
		for _, q := range list {
			for _, v := range []string{filepath.Clean(q), k.resolveFixed(q)} {
				if !seen[v] && v != "/" {
					seen[v] = true
					h.protected = append(h.protected, v)
				}
			}
		}
	}
	return h
}

// lookup resolves ref through Env.Objects.
func (k *checker) lookup(kind ObjectKind, ref string) (Object, error) {
	if k.env.Objects == nil {
		return Object{Kind: kind, ID: ref}, fmt.Errorf("who created %s %q is known only to the running plugin, which asks dockerd", kind, ref)
	}
	return k.env.Objects.Lookup(kind, ref)
}

// owned fails unless ref names an existing object the caller created;
// it returns the object.
func (k *checker) owned(kind ObjectKind, ref, field string) (Object, bool) {
	o, err := k.lookup(kind, ref)
	k.c.set(string(kind), ref)
	switch {
	case err != nil:
		k.c.fail(field, fmt.Sprintf("%v: denied (fail closed)", err))
		return o, false
	case !o.Exists:
		k.c.fail(field, fmt.Sprintf("no %s %q: a role that is not admin acts only on what it created", kind, ref))
		return o, false
	}
	if o.ID != ref {
		k.c.set(string(kind)+"_id", o.ID)
	}
	if (kind == KindContainer || kind == KindNetwork) && isHexRef(ref) && !strings.HasPrefix(o.ID, ref) {
		// Found by its name, which also reads as an ID prefix: renamed
		// between this check and dockerd's own lookup, the same
		// reference would name another's object by its ID.
		k.c.fail(field, fmt.Sprintf("%s %q is named by a reference that also reads as an ID prefix: use its ID (%.12s) or rename it to a name that is not hexadecimal", kind, ref, o.ID))
		return o, false
	}
	if o.Owner != k.caller {
		who := "someone else"
		if o.Owner == "" {
			who = "nobody dtls saw (created before it ran, or over dockerd's unix socket without it)"
		}
		k.c.fail(field, fmt.Sprintf("%s %q was created by %s: a role that is not admin acts only on what its holder created", kind, ref, who))
		return o, false
	}
	return o, true
}

// hostConfig is what the policy reads of Docker's HostConfig: the fields
// whose values are checked (the field table of create.go keeps the rest
// zero or lets it be).
type hostConfig struct {
	Binds        []string
	NetworkMode  string
	VolumesFrom  []string
	VolumeDriver string
	CapAdd       strSlice
	IpcMode      string
	PidMode      string
	UTSMode      string
	UsernsMode   string
	CgroupnsMode string
	Privileged   bool
	SecurityOpt  []string
	Devices      []struct{ PathOnHost string }
	Mounts       []mountSpec
	LogConfig    struct {
		Type   string
		Config map[string]string
	}
	Links       []string
	OomScoreAdj int
	PidsLimit   *int64
	Ulimits     []ulimit
	Sysctls     map[string]string
	Runtime     string
	Isolation   string
	// PortBindings is nat.PortMap: container port ("80/tcp") to the host
	// addresses and ports dockerd binds for it.
	PortBindings map[string][]struct {
		HostIP   string `json:"HostIp"`
		HostPort string
	}
}

// mountSpec is Docker's mount.Mount, in HostConfig.Mounts and a service's
// ContainerSpec.Mounts.
type mountSpec struct {
	Type          string
	Source        string
	Target        string
	BindOptions   *struct{ Propagation string }
	VolumeOptions *struct {
		DriverConfig *struct {
			Name    string
			Options map[string]string
		}
	}
}

// createBody is the body of POST /containers/create. dockerd 20.10 reads
// HostConfig's fields at the top level too: runconfig's
// ContainerConfigWrapper embeds *container.HostConfig ("Deprecated.
// Exported to read attributes from json that are not in the inner host
// config structure") and uses it when "HostConfig" is absent, so
// {"Image":"alpine","Privileged":true} is a privileged container. Both
// are checked.
type createBody struct {
	hostConfig
	Image            string
	HostConfig       *hostConfig
	NetworkingConfig *struct {
		EndpointsConfig map[string]json.RawMessage
	}
}

// check applies the route's check to the request.
func (p *Policy) check(rl *role, rt *route, id Identity, r Request, u requestURI, owner bool) checkResult {
	k := p.newChecker(rl, id, r.Env)
	switch {
	case rt.own != "" && owner:
		k.checkOwner(rt, u)
	case rt.own == KindContainer && (rt.live || rl.replaces && changes(rt)):
		// An allow rule lifts the ownership rule, not this one: a
		// container exec'd into, attached to or started must still be
		// one the role could create. So must one the updater
		// (tenantRoles) stops, removes or renames without having
		// created it: the copy it makes next would be refused after
		// the original is gone.
		k.checkLiveRef(pathVar(rt, u))
		if rl.replaces && rt.method == "DELETE" && k.c.field == "" {
			k.checkRemoveVolumes(pathVar(rt, u), u)
		}
	}
	if k.c.field != "" {
		return k.c
	}
	if why := formBodyProblem(r.Headers); why != "" {
		k.c.fail("Content-Type", why)
		return k.c
	}
	switch rt.body {
	case bodyNone:
		return k.c
	case queryImageCreate:
		if from := checkPull(&k.c, r, u); from != "" {
			k.checkPullNamespace(from)
		}
		return k.c
	case queryStart:
		checkStart(&k.c, u)
		return k.c
	case queryImageDelete:
		checkImageDelete(&k.c, u)
		if k.c.field == "" {
			k.checkImageDeleteNamespace(pathVar(rt, u))
		}
		return k.c
	case queryRename:
		q, _ := url.ParseQuery(u.query)
		checkObjectName(&k.c, q.Get("name"), "name")
		if header(r.Headers, "Content-Length") != "0" {
			// dockerd reads the new name from a form body before the
			// query (net/http ParseForm), and never sends such a body
			// to the plugin: the name judged must be the only one.
			k.c.fail("body", "a rename has an empty body (Content-Length: 0): a form body would carry another name, and the plugin cannot see it")
		}
		return k.c
	case queryBuild:
		if why := buildBodyProblem(r.Headers); why != "" {
			k.c.fail("Content-Type", why)
			return k.c
		}
		k.checkBuild(u, id)
		return k.c
	}
	body := bytes.Trim(r.Body, " \t\r\n") // JSON's white space only: dockerd reads no other
	switch {
	case len(body) == 0:
		// The same engine decides for the plugin and the gateway: the
		// message says what each can have been given.
		k.c.fail("body", fmt.Sprintf("%s needs its JSON body checked and none came: the request had none, or, to the authorization plugin, "+
			"dockerd did not forward it (a chunked, empty or over-4-MiB body, or one whose Content-Type is not application/json: "+
			"CVE-2024-41110, moby#36317, moby#39331)", rt))
		return k.c
	case body[0] != '{':
		k.c.fail("body", fmt.Sprintf("%s needs a JSON object as its body", rt))
		return k.c
	}
	err := k.checkBody(rt, body, u)
	if err != nil {
		k.c = checkResult{}
		k.c.fail("body", fmt.Sprintf("the body of %s is not what dockerd reads: %v", rt, err))
	}
	return k.c
}

// checkRemoveVolumes refuses the removal of a container the caller did
// not create together with its anonymous volumes (docker rm -v: "v" as
// dockerd reads a boolean, moby api/server/httputils BoolValue): they
// hold its holder's data, which no copy gets back (an image's VOLUME is
// in no HostConfig, and the copy's are new), and the updater's allow
// rule is for replacing containers, not for erasing another's data.
// watchtower sends v=1 only with --remove-volumes.
func (k *checker) checkRemoveVolumes(ref string, u requestURI) {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		k.c.fail("query", fmt.Sprintf("the query of DELETE /containers/{id} is not what dockerd reads: %v", err))
		return
	}
	switch v := strings.ToLower(strings.TrimSpace(q.Get("v"))); v {
	case "", "0", "no", "false", "none":
	default:
		if o, err := k.lookup(KindContainer, ref); err == nil && o.Exists && o.Owner == k.caller {
			return // its own copy's
		}
		k.c.set("v", v)
		k.c.fail("v", "removing the volumes of a container you did not create (docker rm -v) erases its holder's data, which no copy gets back: remove it without v")
	}
}

// changes reports whether a route changes the object it names: every
// method but GET and HEAD.
func changes(rt *route) bool { return rt.method != "GET" && rt.method != "HEAD" }

// checkBody decodes a JSON body as dockerd does and applies its route's
// check; the error is the decoder's.
func (k *checker) checkBody(rt *route, body []byte, u requestURI) error {
	var err error
	switch rt.body {
	case bodyCreate:
		var b createBody
		if err = json.Unmarshal(body, &b); err == nil {
			k.checkCreate(body, &b)
			if q, qerr := url.ParseQuery(u.query); qerr != nil {
				k.c.fail("query", fmt.Sprintf("the query of %s is not what dockerd reads: %v", rt, qerr))
			} else if name := q.Get("name"); name != "" {
				checkObjectName(&k.c, name, "name")
			}
		}
	case bodyExec:
		var b execBody
		if err = json.Unmarshal(body, &b); err == nil {
			k.checkExec(&b)
		}
	case bodyService:
		var b serviceBody
		if err = json.Unmarshal(body, &b); err == nil {
			k.checkService(&b)
		}
	case bodyVolume:
		var b volumeBody
		if err = json.Unmarshal(body, &b); err == nil {
			k.checkVolume(&b)
		}
	case bodyNetwork:
		var b networkBody
		if err = json.Unmarshal(body, &b); err == nil {
			checkNetwork(&k.c, body, &b)
			k.checkNetworkNameFree(b.Name)
		}
	case bodyConnect:
		var b connectBody
		if err = json.Unmarshal(body, &b); err == nil {
			k.checkNetworkName(pathVar(rt, u), "network")
			k.owned(KindContainer, b.Container, "Container")
		}
	}
	return err
}

// checkOwner applies a route's ownership rule: the object its variable
// names must be the caller's; a container that is started, restarted,
// attached to or exec'd into must also still be one this role could
// create (its host paths resolved again now, the role perhaps changed
// since).
// pathVar is the value of a route's first variable in the request path.
func pathVar(rt *route, u requestURI) string {
	for _, t := range rt.tokens(splitPath(u.path)) {
		if !t.lit {
			return t.value
		}
	}
	return ""
}

func (k *checker) checkOwner(rt *route, u requestURI) {
	ref := pathVar(rt, u)
	o, ok := k.owned(rt.own, ref, string(rt.own))
	if ok && rt.own == KindExec && o.Container != "" {
		// The exec's container, as dockerd knows it, is the caller's
		// too: an exec made on another's container by a race is not
		// started.
		k.owned(KindContainer, o.Container, "container")
	}
	if !ok || rt.own != KindContainer || !rt.live {
		return
	}
	k.checkLive(o, "container "+ref, "", 0)
}

// checkLiveRef checks the container ref names as it is now, whoever
// created it.
func (k *checker) checkLiveRef(ref string) {
	o, err := k.lookup(KindContainer, ref)
	switch {
	case err != nil:
		k.c.fail("container", fmt.Sprintf("%v: denied (fail closed)", err))
	case !o.Exists:
		k.c.fail("container", fmt.Sprintf("no container %q", ref))
	case isHexRef(ref) && !strings.HasPrefix(o.ID, ref):
		// As in owned: found by its name, which also reads as an ID
		// prefix. The updater names its own container so and renames
		// it between this check and dockerd's own lookup: the same
		// reference then names, by its ID, a container this check never
		// saw (another's, privileged), which it kills, removes or starts.
		k.c.fail("container", fmt.Sprintf("container %q is named by a reference that also reads as an ID prefix: use its ID (%.12s) or rename it to a name that is not hexadecimal", ref, o.ID))
	default:
		k.checkLive(o, "container "+ref, "", 0)
		if k.c.field != "" {
			return
		}
		// A network joined after the create is in no HostConfig. The
		// updater's copy joins each of the original's networks
		// (watchtower: NetworkConnect): one of another identity's is
		// refused then, after the original is gone.
		for _, n := range o.Networks {
			k.checkNetworkName(n, "NetworkSettings.Networks")
		}
	}
}

// isHexRef reports whether ref could be an ID prefix: lowercase hex.
func isHexRef(ref string) bool {
	if ref == "" {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkLive checks an existing container's HostConfig as dockerd reports
// it, as its create body would have been.
func (k *checker) checkLive(o Object, what, field string, depth int) {
	var h hostConfig
	if err := json.Unmarshal(o.HostConfig, &h); err != nil || len(o.HostConfig) == 0 {
		k.c.fail("HostConfig", fmt.Sprintf("%s: dockerd did not report its HostConfig: denied (fail closed)", what))
		return
	}
	inner := &checker{p: k.p, rl: k.rl, caller: k.caller, env: k.env, paths: k.paths}
	inner.checkHostConfig(&h, "", true, depth+1)
	checkLiveFields(&inner.c, o.HostConfig)
	if inner.c.field != "" {
		if field == "" {
			field = inner.c.field
		}
		k.c.fail(field, fmt.Sprintf("%s is not one this role could create now: %s", what, inner.c.reason))
	}
}

// checkLiveFields applies the create's zero-only fields to an existing
// container's HostConfig, and asks its masked and read-only paths to hold
// dockerd's defaults (dockerd reports them filled in; null only for a
// privileged container, refused apart). hostConfig reads only the fields
// whose values are checked: without this, a container made with
// --security-opt systempaths=unconfined (/proc/sys writable: core_pattern
// runs a program of the container's as root on the host), a device cgroup
// rule (mknod of the host's disks), a cgroup parent or a GPU request
// passed as one "this role could create now", for the updater's kill,
// removal, rename and start of another's, and for an exec into one's own
// made under a stronger role.
// A field the table does not know (one dockerd reports, not sends) is
// left to the checks of hostConfig.
func checkLiveFields(c *checkResult, raw json.RawMessage) {
	eachMember(raw, func(k []byte, val json.RawMessage) {
		name, ok := lookupField(hostIndex, k)
		if !ok {
			return
		}
		rule := copyFields[name]
		if rule == zeroOnly && !isZeroJSON(val) || listRefused(rule, name, val) {
			c.set(strings.ToLower(name), val)
			c.fail(name, zeroReason[name])
		}
	})
}

// createFields are the field tables of a create body for the caller's
// role: a role that replaces containers sends their inspect back
// (copyFields).
func (k *checker) createFields() (tables []map[string]fieldRule, host map[string]fieldRule) {
	if k.rl.replaces {
		return copyTables, copyFields
	}
	return createTables, hostConfigFields
}

func (k *checker) checkCreate(raw []byte, b *createBody) {
	k.c.set("image", b.Image)
	tables, host := k.createFields()
	// One pass over the body, one over its HostConfig.
	walkFields(&k.c, raw, "", createIndex, func(name string, val json.RawMessage) {
		null := string(bytes.TrimSpace(val)) == "null"
		switch {
		case name == "Mounts":
			checkMountItems(&k.c, val, "")
		case name == "HostConfig" && !null:
			walkFields(&k.c, val, "HostConfig.", hostIndex, func(name string, val json.RawMessage) {
				if name == "Mounts" {
					checkMountItems(&k.c, val, "HostConfig.")
				}
			}, host)
		case name == "NetworkingConfig" && !null:
			checkFields(&k.c, val, "NetworkingConfig.", netConfIndex, map[string]fieldRule{"EndpointsConfig": checkedBy})
		}
	}, tables...)
	if b.HostConfig != nil {
		k.checkHostConfig(b.HostConfig, "HostConfig.", false, 0)
		// dockerd uses "HostConfig" when it is there (runconfig
		// getHostConfig): the top level's missing pids limit is not the
		// container's.
		k.topLevelUnused = true
	}
	k.checkHostConfig(&b.hostConfig, "", false, 0)
	if b.NetworkingConfig != nil {
		for name := range b.NetworkingConfig.EndpointsConfig {
			k.checkNetworkName(name, "NetworkingConfig.EndpointsConfig")
		}
	}
}

// checkNetworkName refuses the host network, by name or by ID: dockerd
// takes a network's ID as well as its name (the docker CLI sends a
// service's --network host as the ID).
func (k *checker) checkNetworkName(name, field string) {
	switch strings.ToLower(name) {
	case "", "default", "bridge", "none":
		return
	case "host":
		k.c.set("network_mode", name)
		k.c.fail(field, `the "host" network shares the host's network stack`)
		return
	}
	o, err := k.lookup(KindNetwork, name)
	switch {
	case err != nil:
		k.c.fail(field, fmt.Sprintf("network %q: %v: denied (fail closed)", name, err))
	case !o.Exists:
		// dockerd refuses a network it does not have.
	case o.Driver == "host" || strings.EqualFold(o.Name, "host"):
		k.c.set("network_mode", name)
		k.c.fail(field, fmt.Sprintf("network %q is the host's network (driver %q): it shares the host's network stack", name, o.Driver))
	case isHexRef(name) && !strings.HasPrefix(o.ID, name):
		// Found by name, which also reads as an ID prefix: removed or
		// renamed before dockerd's own lookup, it names another's.
		k.c.fail(field, fmt.Sprintf("network %q is named by a reference that also reads as an ID prefix: use its ID (%.12s)", name, o.ID))
	case o.Name == "bridge" || o.Name == "none":
		// dockerd's own, by ID.
	case o.Owner != k.caller:
		// Another's network reaches their containers' services.
		k.c.set("network", name)
		k.c.fail(field, fmt.Sprintf("network %q was created by someone else: a role that is not admin joins only the default networks and its own", name))
	}
}

// checkNetworkNameFree refuses a network name that one exists under
// already, whoever's: dockerd 20.10 makes a second network of a name
// (CheckDuplicate false, or two creates at once) with a warning, and
// from then on every reference by that name is ambiguous to it and to
// the policy's lookup through it, which denies: its owner could no
// longer run a container on it, connect, or remove it by name.
func (k *checker) checkNetworkNameFree(name string) {
	if name == "" || len(name) > maxObjectName+1 {
		// None, or refused for its length already (checkObjectName):
		// dockerd is not asked about a name of a megabyte.
		return
	}
	o, err := k.lookup(KindNetwork, name)
	switch {
	case err != nil:
		k.c.fail("Name", fmt.Sprintf("network %q: %v: denied (fail closed)", name, err))
	case o.Exists:
		k.c.fail("Name", fmt.Sprintf("a network named %q exists already: a second one would make the name ambiguous to dockerd, and its owner could no longer use it by name", name))
	}
}

// checkHostConfig checks the values of a HostConfig; at is "HostConfig."
// or "" for the top-level fields. live is a HostConfig dockerd reports
// for an existing container (its defaults filled in); depth counts the
// containers joined to get here.
func (k *checker) checkHostConfig(h *hostConfig, at string, live bool, depth int) {
	c := &k.c
	if h.Privileged {
		c.set("privileged", true)
		c.fail(at+"Privileged", zeroReason["Privileged"])
	}
	if len(h.CapAdd) > 0 {
		c.set("cap_add", []string(h.CapAdd))
		c.fail(at+"CapAdd", fmt.Sprintf("added capabilities (--cap-add %s) are not allowed: SYS_ADMIN, SYS_MODULE, ALL and others own the host", strings.Join(h.CapAdd, ",")))
	}
	if len(h.Devices) > 0 {
		c.fail(at+"Devices", zeroReason["Devices"])
	}
	k.checkNamespaces(h, at, live, depth)
	for _, o := range h.SecurityOpt {
		c.set("security_opt", h.SecurityOpt)
		if why := securityOptProblem(o); why != "" {
			c.fail(at+"SecurityOpt", fmt.Sprintf("--security-opt %q %s", o, why))
		}
	}
	if len(h.Binds) > 0 {
		c.set("binds", h.Binds)
	}
	for _, b := range h.Binds {
		k.checkBind(b, at+"Binds", h.VolumeDriver)
	}
	if len(h.Mounts) > 0 {
		c.set("mounts", mountSummary(h.Mounts))
		k.checkMounts(h.Mounts, at+"Mounts")
	}
	if !isLocalDriver(h.VolumeDriver) {
		c.set("volume_driver", h.VolumeDriver)
		c.fail(at+"VolumeDriver", fmt.Sprintf("volume driver %q is not allowed: only the local driver, whose volumes the policy can check", h.VolumeDriver))
	}
	for _, ref := range h.VolumesFrom {
		c.set("volumes_from", h.VolumesFrom)
		name, _, _ := strings.Cut(ref, ":")
		if o, ok := k.owned(KindContainer, name, at+"VolumesFrom"); ok {
			k.checkJoined(o, at+"VolumesFrom", depth)
		}
	}
	for _, l := range h.Links {
		// A link hands the linked container's environment to this one.
		c.set("links", h.Links)
		name, _, _ := strings.Cut(strings.TrimPrefix(l, "/"), ":")
		if !live {
			k.owned(KindContainer, name, at+"Links")
		}
	}
	if live {
		// Where an existing container logs, and its pids limit, do not
		// make an exec into it or a join any stronger: the daemon's own
		// defaults (log-driver) fill them in.
		return
	}
	if drv, ok := logDrivers[h.LogConfig.Type]; !ok {
		c.set("log_driver", h.LogConfig.Type)
		c.fail(at+"LogConfig.Type", fmt.Sprintf("log driver %q is not allowed: only json-file, local, journald and none, which write to dockerd's files or the journal (others send to any address or host socket)", h.LogConfig.Type))
	} else {
		for opt := range h.LogConfig.Config {
			if !containsString(drv, opt) {
				c.fail(at+"LogConfig.Config", fmt.Sprintf("log option %q is not allowed for driver %q", opt, h.LogConfig.Type))
			}
		}
	}
	if h.OomScoreAdj < 0 {
		c.set("oom_score_adj", h.OomScoreAdj)
		c.fail(at+"OomScoreAdj", fmt.Sprintf("a negative OOM score (--oom-score-adj %d) makes the kernel kill the host's processes first", h.OomScoreAdj))
	}
	k.checkPids(h, at)
	k.checkPorts(h, at)
	if why := ulimitsProblem(h.Ulimits); why != "" {
		k.c.set("ulimits", h.Ulimits)
		k.c.fail(at+"Ulimits", why)
	}
	for s := range h.Sysctls {
		// Only the network sysctls, which dockerd allows in the
		// container's own network namespace (moby daemon/oci_linux.go).
		if !strings.HasPrefix(s, "net.") {
			c.set("sysctls", h.Sysctls)
			c.fail(at+"Sysctls", fmt.Sprintf("sysctl %q is not allowed: only net.* in the container's own network namespace", s))
		}
	}
	switch h.Runtime {
	case "", "runc", "io.containerd.runc.v2":
	default:
		c.set("runtime", h.Runtime)
		c.fail(at+"Runtime", fmt.Sprintf("runtime %q is not allowed: only runc", h.Runtime))
	}
	switch h.Isolation {
	case "", "default":
	default:
		c.fail(at+"Isolation", fmt.Sprintf("isolation %q is not allowed", h.Isolation))
	}
}

// checkPorts refuses a published host port below the host's first
// unprivileged port (net.ipv4.ip_unprivileged_port_start, 1024 unless an
// admin lowered it): dockerd binds it as root, and its NAT rules take the
// host's traffic to that port before any host service listening there
// sees it, so -p 22:22 or -p 443:443 would hand the host's own SSH or web
// clients to the container. A port that the host lets any user bind is a
// developer's too, as under rootless Podman. No host port ("" or "0")
// is an ephemeral one. The ports capability lifts the rule (an updater
// that replaces a web server on 443).
func (k *checker) checkPorts(h *hostConfig, at string) {
	if k.rl.caps&capPorts != 0 {
		return
	}
	first := k.p.firstUnprivilegedPort()
	for _, port := range slices.Sorted(maps.Keys(h.PortBindings)) {
		for _, b := range h.PortBindings[port] {
			lo, err := hostPortStart(b.HostPort)
			switch {
			case err != nil:
				k.c.set("port_bindings", h.PortBindings)
				k.c.fail(at+"PortBindings", fmt.Sprintf("host port %q of %s: %v", b.HostPort, port, err))
			case lo != 0 && lo < first:
				k.c.set("port_bindings", h.PortBindings)
				k.c.fail(at+"PortBindings", fmt.Sprintf("host port %s of %s is below %d, the host's first unprivileged port (net.ipv4.ip_unprivileged_port_start): dockerd binds it as root, and its NAT rules take the host's own traffic to it", b.HostPort, port, first))
			}
		}
	}
}

// hostPortStart is the first port of a HostPort as dockerd reads it
// (go-connections nat.ParsePortRange): "", a port, or a range "A-B"; 0
// for none.
func hostPortStart(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("not a port or a range of ports")
	}
	if isRange {
		b, err := strconv.ParseUint(hi, 10, 16)
		if err != nil || b < a {
			return 0, fmt.Errorf("not a port or a range of ports")
		}
	}
	return int(a), nil
}

// checkPids refuses an explicitly unlimited pids limit, and without a
// limit at or under the policy's max_pids when it sets one.
func (k *checker) checkPids(h *hostConfig, at string) {
	n := int64(0)
	if h.PidsLimit != nil {
		n = *h.PidsLimit
	}
	max := k.p.maxPids
	if at == "" && k.topLevelUnused {
		max = 0
	}
	switch {
	case n < 0:
		k.c.set("pids_limit", n)
		k.c.fail(at+"PidsLimit", "an unlimited pids limit (--pids-limit -1) lets the container fork until the host cannot")
	case max > 0 && (n == 0 || n > max):
		k.c.set("pids_limit", n)
		k.c.fail(at+"PidsLimit", fmt.Sprintf("the policy asks for a pids limit of at most %d (--pids-limit %d); got %d (0 is none)", max, max, n))
	}
}

// checkNamespaces allows a private namespace, or joining one of the
// caller's own containers that has no host namespace itself.
func (k *checker) checkNamespaces(h *hostConfig, at string, live bool, depth int) {
	for _, ns := range []struct {
		field, key, value, what string
		ok                      []string
	}{
		{"PidMode", "pid_mode", h.PidMode, "PID namespace (--pid host: every process of the host, and signals to them)", []string{"", "private"}},
		{"NetworkMode", "network_mode", h.NetworkMode, "network stack (--network host: its interfaces and services on localhost)", nil},
		{"IpcMode", "ipc_mode", h.IpcMode, "IPC namespace (--ipc host)", []string{"", "private", "shareable", "none"}},
		{"UTSMode", "uts_mode", h.UTSMode, "UTS namespace (--uts host: it can change the host's name)", []string{""}},
		{"UsernsMode", "userns_mode", h.UsernsMode, "user namespace (--userns host: root in the container is root on the host when dockerd remaps users)", []string{""}},
		{"CgroupnsMode", "cgroupns_mode", h.CgroupnsMode, "cgroup namespace (--cgroupns host: the host's cgroup tree)", []string{"", "private"}},
	} {
		v := ns.value
		if v == "" || ns.field == "CgroupnsMode" && k.defaultCgroupns(v, live) {
			continue
		}
		k.c.set(ns.key, v)
		if name, ok := strings.CutPrefix(v, "container:"); ok {
			if o, ok := k.owned(KindContainer, name, at+ns.field); ok {
				k.checkJoined(o, at+ns.field, depth)
			}
			continue
		}
		if ns.field == "NetworkMode" {
			k.checkNetworkName(v, at+ns.field)
			continue
		}
		if !containsString(ns.ok, v) {
			if strings.EqualFold(v, "host") {
				k.c.fail(at+ns.field, "the host's "+ns.what+" is not allowed")
			} else {
				k.c.fail(at+ns.field, fmt.Sprintf("%s %q is not allowed: want %s", ns.field, v, strings.Join(quoteAll(ns.ok[1:]), ", ")))
			}
		}
	}
}

// defaultCgroupns reports whether a cgroup namespace mode passes as
// dockerd's own default. An existing container (live) is judged by its
// mode as dockerd reports it, whatever the host. A role that replaces
// containers (the updater, tenantRoles) may also ask for "host" on a
// cgroup v1 host, where it is dockerd's default (moby
// daemon/daemon_unix.go, the default-cgroupns-mode it picks): an inspect
// reports it, and the copy made from the inspect (watchtower's
// GetCreateHostConfig) sends it back. Other roles are still refused an
// explicit --cgroupns host.
func (k *checker) defaultCgroupns(v string, live bool) bool {
	return live || k.rl.replaces && k.env.HostCgroupns && v == "host"
}

// checkJoined checks a container whose namespaces or volumes another
// joins: it must be one this role could create. Joins are followed one
// level: a container joined to another is not joined again.
func (k *checker) checkJoined(o Object, field string, depth int) {
	if depth > 0 {
		k.c.fail(field, fmt.Sprintf("container %q joins another container itself: joins are followed one level only", o.Name))
		return
	}
	k.checkLive(o, "joined container "+o.Name, field, depth)
}

// checkBind checks one Binds entry: "src:dst[:mode]" (moby volume/mounts
// linux_parser), a bind mount when src is an absolute path, a named
// volume otherwise, an anonymous volume without a ":".
func (k *checker) checkBind(b, field, driver string) {
	src, _, ok := strings.Cut(b, ":")
	if _, mode, ok := strings.Cut(strings.TrimPrefix(b[len(src):], ":"), ":"); ok {
		for opt := range strings.SplitSeq(mode, ",") {
			if why := propagationProblem(opt); why != "" {
				k.c.fail(field, fmt.Sprintf("-v %s: %s", b, why))
			}
		}
	}
	switch {
	case !ok || src == "":
		return
	case strings.HasPrefix(src, "/"):
		if why := k.hostPaths().judgeBindSource(src, k.caller, k.resolve, k.resolveFixed, k.checkRoot); why != "" {
			k.c.fail(field, fmt.Sprintf("bind mount of %s (-v %s) is not allowed: %s", src, b, why))
		}
	default:
		k.checkNamedVolume(src, field, nil)
	}
}

// checkNamedVolume checks a named volume a container mounts: an existing
// one must be the caller's and its options safe; a missing one is made
// by dockerd with opts (a mount's DriverConfig), which must be safe.
func (k *checker) checkNamedVolume(name, field string, opts map[string]string) {
	o, err := k.lookup(KindVolume, name)
	switch {
	case err != nil:
		k.c.fail(field, fmt.Sprintf("volume %q: %v: denied (fail closed)", name, err))
		return
	case !o.Exists:
		if why := k.localVolumeProblem(opts); why != "" {
			k.c.fail(field, "a local volume "+why)
		}
		return
	}
	if _, ok := k.owned(KindVolume, name, field); !ok {
		return
	}
	if !isLocalDriver(o.Driver) {
		k.c.fail(field, fmt.Sprintf("volume %q has driver %q: only local volumes, whose options the policy can check", name, o.Driver))
		return
	}
	if why := k.localVolumeProblem(o.Options); why != "" {
		k.c.fail(field, fmt.Sprintf("volume %q is a local volume that %s", name, why))
	}
}

// checkMounts checks HostConfig.Mounts or a service's ContainerSpec.Mounts.
func (k *checker) checkMounts(ms []mountSpec, at string) {
	for i, m := range ms {
		field := fmt.Sprintf("%s[%d]", at, i)
		if m.BindOptions != nil {
			if why := propagationProblem(m.BindOptions.Propagation); why != "" {
				k.c.fail(field+".BindOptions.Propagation", why)
			}
		}
		switch strings.ToLower(m.Type) {
		case "bind":
			if why := k.hostPaths().judgeBindSource(m.Source, k.caller, k.resolve, k.resolveFixed, k.checkRoot); why != "" {
				k.c.fail(field, fmt.Sprintf("bind mount of %s (--mount type=bind,src=%s) is not allowed: %s", m.Source, m.Source, why))
			}
		case "volume":
			var opts map[string]string
			driver := ""
			if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
				opts, driver = m.VolumeOptions.DriverConfig.Options, m.VolumeOptions.DriverConfig.Name
			}
			if !isLocalDriver(driver) {
				k.c.fail(field+".VolumeOptions.DriverConfig.Name", fmt.Sprintf("volume driver %q is not allowed: only the local driver", driver))
				continue
			}
			if m.Source == "" {
				if why := k.localVolumeProblem(opts); why != "" {
					k.c.fail(field+".VolumeOptions.DriverConfig", "a local volume "+why)
				}
				continue
			}
			k.checkNamedVolume(m.Source, field, opts)
		case "tmpfs":
		default:
			k.c.fail(field+".Type", fmt.Sprintf("mount type %q is not allowed: bind, volume or tmpfs", m.Type))
		}
	}
}

// localVolumeProblem checks the options of a local volume (moby
// volume/local: "type", "o" and "device" are mount(8)'s -t, -o and
// device). Allowed: no options (a directory under dockerd's data-root),
// a tmpfs, and a bind (o=bind or rbind, whatever the type: the kernel
// ignores the type of a bind mount) of a host path a bind mount could
// take. Anything else mounts a host device or file system, and a network
// file system is mounted by root on the host, as the host: an NFS server
// trusts the host's address and a reserved source port (AUTH_SYS, RFC
// 5531 section 8.2; nfs(5) resvport), so a developer would mount every
// export meant for the Docker host, and CIFS reads root's credentials
// file (mount.cifs(8) credentials=) or root's Kerberos cache (cruid=,
// sec=krb5). Option names are matched in any case. "" when allowed.
func (k *checker) localVolumeProblem(opts map[string]string) string {
	var typ, o, device string
	for key, v := range opts {
		switch strings.ToLower(key) {
		case "type":
			typ = strings.ToLower(v)
		case "o":
			o = v
		case "device":
			device = v
		default:
			return fmt.Sprintf("with option %q is not allowed: only type, o and device", key)
		}
	}
	// dockerd splits o at commas and takes a flag only when an item is
	// its name exactly (moby/sys/mount parseOptions): "BIND" or " bind"
	// is file-system data for the kernel, and the volume a new mount of
	// its type (the host's debugfs, with tracefs inside), not a bind.
	bind := false
	for opt := range strings.SplitSeq(o, ",") {
		switch opt {
		case "bind", "rbind":
			bind = true
		}
	}
	switch {
	case len(opts) == 0:
		return ""
	case bind:
		if why := k.hostPaths().judgeBindSource(device, k.caller, k.resolve, k.resolveFixed, k.checkRoot); why != "" {
			return fmt.Sprintf("binding %s (o %q) is not allowed: %s", device, o, why)
		}
		return ""
	case typ == "tmpfs":
		return ""
	case networkFS[typ]:
		return fmt.Sprintf("of type %q (o %q) is a network file system, which the host mounts with its own identity (its address and a reserved port for NFS, root's credentials for CIFS): admin only", typ, o)
	}
	return fmt.Sprintf("of type %q on device %q (o %q) mounts a host device or file system: not allowed", typ, device, o)
}

// networkFS are the network file systems mount(8) and its helpers know
// under those type names: named in the refusal, which says why.
var networkFS = map[string]bool{"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true,
	"ceph": true, "glusterfs": true, "9p": true, "afs": true, "fuse.sshfs": true}

// volumeBody is the body of POST /volumes/create.
type volumeBody struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
}

// checkVolume allows a local volume with safe options, under a name that
// is free or already the caller's (dockerd answers a create of an
// existing volume with that volume, which would then be recorded as the
// caller's).
func (k *checker) checkVolume(b *volumeBody) {
	k.c.set("name", b.Name)
	k.c.set("driver", b.Driver)
	if len(b.DriverOpts) > 0 {
		k.c.set("driver_opts", b.DriverOpts)
	}
	if !isLocalDriver(b.Driver) {
		k.c.fail("Driver", fmt.Sprintf("volume driver %q is not allowed: only the local driver, whose options the policy can check", b.Driver))
		return
	}
	if why := k.localVolumeProblem(b.DriverOpts); why != "" {
		k.c.fail("DriverOpts", "a local volume "+why)
		return
	}
	if b.Name == "" {
		return
	}
	o, err := k.lookup(KindVolume, b.Name)
	switch {
	case err != nil:
		k.c.fail("Name", fmt.Sprintf("volume %q: %v: denied (fail closed)", b.Name, err))
	case o.Exists && o.Owner != k.caller:
		k.c.fail("Name", fmt.Sprintf("volume %q exists and was not created by you: creating it again would hand it to you", b.Name))
	}
}

// execBody is the body of POST /containers/{id}/exec.
type execBody struct {
	User       string
	Privileged bool
	Cmd        strSlice
}

// checkExec denies a privileged exec in any container: it has every
// capability, even in a container that has none (moby daemon/exec.go).
// The container itself is the caller's and one this role could create
// (the route's ownership rule), so an exec as any user, root included, is
// no more than the role could do with a container of its own.
func (k *checker) checkExec(b *execBody) {
	k.c.set("cmd", []string(b.Cmd))
	if b.User != "" {
		k.c.set("user", b.User)
	}
	if b.Privileged {
		k.c.set("privileged", true)
		k.c.fail("Privileged", "a privileged exec (docker exec --privileged) has every capability, even in a container that has not")
	}
}

// connectBody is the body of POST /networks/{id}/connect and disconnect.
type connectBody struct {
	Container string
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// checksOf lists a route's checks, for Describe.
func checksOf(rt *route) []string {
	var cs []string
	if rt.own != "" {
		s := fmt.Sprintf("the %s is not one its holder created (unless an allow rule of the policy names the route)", rt.own)
		if rt.live {
			s += ", or no longer one this role could create"
		}
		cs = append(cs, s)
	}
	switch rt.body {
	case bodyCreate:
		cs = append(cs,
			"a field of HostConfig but these: "+strings.Join(allowedFields, ", ")+" (and those of container.Config, which act inside the container)",
			"Privileged, CapAdd, Capabilities, Devices, DeviceRequests, DeviceCgroupRules, CgroupParent, Cgroup, OomKillDisable, StorageOpt, Annotations, real-time CPU: set at all; MaskedPaths, ReadonlyPaths: given at all",
			"PidMode, IpcMode, UTSMode, UsernsMode, CgroupnsMode \"host\"; the host network by name or ID; \"container:X\" unless X is the caller's and one this role could create",
			"SecurityOpt but no-new-privileges, seccomp=builtin, apparmor=docker-default, label=level:..., writable-cgroups=false",
			"a bind mount (Binds, Mounts, a local volume with o=bind) whose source, resolved on the host, is not under a bind root, or is, holds or lies under a protected path",
			"a named volume that exists and is not the caller's, or whose options mount a host path or device; VolumesFrom and Links of containers not the caller's",
			"a log driver but json-file, local, journald, none; a negative OOM score; an unlimited pids limit (or over max_pids); sysctls but net.*; a runtime but runc; an unknown ulimit, or rtprio above 0",
			"a published host port below the host's first unprivileged port (net.ipv4.ip_unprivileged_port_start), without the ports capability",
		)
	case bodyExec:
		cs = append(cs, "Privileged")
	case bodyService:
		cs = append(cs,
			"ContainerSpec: CapabilityAdd, Privileges (SELinux disabled or typed, seccomp or AppArmor off or custom), mounts a container could not have, ulimits it could not have; a published port below the host's first unprivileged port, without the ports capability",
			"secrets and configs without the secrets capability; the \"host\" network by name; plugin services",
		)
	case bodyVolume:
		cs = append(cs, "a driver but local; local options that mount a host path (o=bind) outside the bind roots, a device, or a network file system (nfs, cifs...); a name that exists and is not the caller's")
	case bodyNetwork:
		cs = append(cs, "drivers other than bridge and overlay (macvlan and ipvlan attach to host interfaces); com.docker.network.bridge.name; Ingress; a name a network has already")
	case bodyConnect:
		cs = append(cs, "the container, or the network (but bridge and none), is not one its holder created")
	case queryImageCreate:
		cs = append(cs, "a pull only (fromImage) with an empty body: no import (fromSrc) from a URL or a tar")
	case queryStart:
		cs = append(cs, "a checkpoint or checkpoint-dir (CRIU restore from a host directory)")
	case queryImageDelete:
		cs = append(cs, "force (docker rmi -f): images are shared; a tag in the namespace of another identity the owners' book knows")
	case queryBuild:
		cs = append(cs, "networkmode host, another's container or network; cgroupparent; isolation; an unknown ulimit or rtprio above 0; a tag outside the caller's namespace; remote; a parameter not known safe")
	}
	for i, c := range cs {
		cs[i] = "      denied when: " + c
	}
	return cs
}

// checkImageDelete refuses a forced removal: images have no owner, and
// force untags an image others' stopped containers use (docker rmi -f).
// Without it dockerd refuses to remove an image any container uses.
func checkImageDelete(c *checkResult, u requestURI) {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		c.fail("query", fmt.Sprintf("the query of DELETE /images/{name} is not what dockerd reads: %v", err))
		return
	}
	if f := q.Get("force"); f != "" && f != "0" && !strings.EqualFold(f, "false") {
		c.set("force", f)
		c.fail("force", "removing an image by force (docker rmi -f) is for admin only: images are shared, and force removes one that others' containers use")
	}
}

// checkImageDeleteNamespace refuses the removal of an image tagged in
// the namespace of another identity the owners' book knows, by that tag
// or by the image's ID (which removes its one tag): images are shared,
// but one in cici's namespace is the image cici built or pulled, and
// runs.
func (k *checker) checkImageDeleteNamespace(ref string) {
	owners, known := k.env.Objects.(Owners)
	if !known {
		return
	}
	refs := []string{ref}
	o, err := k.lookup(KindImage, ref)
	if err != nil {
		k.c.fail("name", fmt.Sprintf("image %q: %v: denied (fail closed)", ref, err))
		return
	}
	refs = append(refs, o.Tags...)
	for _, t := range refs {
		if ns, ok := imageNamespace(t); ok && ns != k.caller && owners.Owns(ns) {
			k.c.set("image", ref)
			k.c.fail("name", fmt.Sprintf("the image %q is tagged %q, in the namespace of %q, another identity: removing it would remove their image", ref, t, ns))
			return
		}
	}
}

// propagationProblem refuses a mount propagation that lets the
// container's mounts out to the host: shared or rshared on a workspace
// carries a tmpfs mounted exec,suid inside it, or a volume, to the host's
// side of the bind root, where the holder's account runs what is there.
// Private (the default), slave and their recursive forms keep them in.
func propagationProblem(opt string) string {
	switch opt {
	case "shared", "rshared":
		return fmt.Sprintf("propagation %q lets the container's mounts out onto the host: only private, rprivate, slave or rslave", opt)
	}
	return ""
}

// ulimit is one of HostConfig.Ulimits, and of a build's ulimits= (go-units
// Ulimit).
type ulimit struct {
	Name       string
	Hard, Soft int64
}

// ulimitNames are the limits a container may set: what it can do with
// them stays inside its own cgroups (memory, pids, CPU weight). dockerd
// hands a name to the runtime as "RLIMIT_"+upper case (moby
// daemon/oci_linux.go), so they are matched without case. rtprio is
// allowed at 0 only: above, the container's processes ask for real-time
// scheduling without CAP_SYS_NICE, which no cgroup weight bounds where
// the kernel has no real-time group scheduling (Debian's, Ubuntu's): the
// starvation --cpu-rt-runtime is refused for. Any other name is refused.
var ulimitNames = map[string]bool{
	"core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true,
	"msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rttime": true,
	"sigpending": true, "stack": true, "rtprio": true,
}

// ulimitsProblem says why a container may not have the limits us.
func ulimitsProblem(us []ulimit) string {
	for _, u := range us {
		name := strings.ToLower(u.Name)
		switch {
		case !ulimitNames[name]:
			return fmt.Sprintf("ulimit %q is not allowed: only core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rttime, sigpending, stack, and rtprio at 0", u.Name)
		case name == "rtprio" && (u.Soft != 0 || u.Hard != 0):
			return fmt.Sprintf("ulimit %s=%d:%d lets the container's processes take real-time scheduling without CAP_SYS_NICE, which can starve the host (as --cpu-rt-runtime): only rtprio=0", u.Name, u.Soft, u.Hard)
		}
	}
	return ""
}

// formBodyProblem refuses a request whose body is a form, on any route:
// dockerd's handlers read their parameters with net/http's ParseForm and
// FormValue, which take a urlencoded body's values before the query's and
// a multipart/form-data body's for a key the query lacks, appending the
// rest; the plugin is never sent such a body, and no route of the Docker
// API takes one. An empty body carries no values.
func formBodyProblem(h map[string]string) string {
	if header(h, "Content-Length") == "0" {
		return ""
	}
	if mt, ok := FormMediaType(header(h, "Content-Type")); ok {
		return fmt.Sprintf("a form body (%s) is not part of the Docker API: dockerd would read parameters from it that were not judged", mt)
	}
	return ""
}

// FormMediaType returns the media type of the Content-Type ct, and
// whether net/http reads a body of it as a form (ParseForm: urlencoded;
// FormValue: multipart/form-data; any multipart here): the engine and the
// gateway refuse such a body. A Content-Type that does not parse is none
// to net/http either.
func FormMediaType(ct string) (string, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", false
	}
	return mt, mt == "application/x-www-form-urlencoded" || strings.HasPrefix(mt, "multipart/")
}

// buildContextTypes are the media types of a build's body, its context:
// a tar, compressed or not, as the Docker CLI (application/x-tar) and
// docker-py (application/tar) send it, or none. Any other could be a
// form dockerd reads parameters from (formBodyProblem).
var buildContextTypes = map[string]bool{"": true, "application/x-tar": true, "application/tar": true}

// buildBodyProblem refuses a build whose body is not a context.
func buildBodyProblem(h map[string]string) string {
	ct := header(h, "Content-Type")
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return fmt.Sprintf("Content-Type %q of a build does not parse: %v", ct, err)
		}
	}
	if !buildContextTypes[mt] {
		return fmt.Sprintf("a build's body is its context: Content-Type %q is not allowed (application/x-tar, application/tar or none)", ct)
	}
	return ""
}

// buildParams are the query parameters of POST /build a role that is not
// admin may give (moby api/server/router/build newImageBuildOptions, API
// 1.41): the rest is refused, named. Those that reach the host are
// checked below: the tags, the network mode, the ulimits; a cgroup
// parent, an isolation and a context dockerd fetches are refused.
var buildParams = map[string]bool{
	"t": true, "dockerfile": true, "q": true, "nocache": true, "rm": true, "forcerm": true, "pull": true,
	"buildargs": true, "labels": true, "cachefrom": true, "memory": true, "memswap": true,
	"cpushares": true, "cpusetcpus": true, "cpusetmems": true, "cpuperiod": true, "cpuquota": true,
	"shmsize": true, "squash": true, "extrahosts": true, "platform": true, "target": true,
	"outputs": true, "networkmode": true, "ulimits": true, "version": true, "session": true, "buildid": true,
	"remote": true, "cgroupparent": true, "isolation": true,
}

// checkBuild checks the query of POST /build as a container's create:
// the build's RUN steps run in containers with this network mode, cgroup
// parent and ulimits (the classic builder; BuildKit's own requests go
// through /session and /grpc, which the plugin cannot read). The host
// network is refused (its loopback services), so are another's
// container or network, a cgroup parent, an isolation, real-time
// priority, and a parameter not known safe.
func (k *checker) checkBuild(u requestURI, id Identity) {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		k.c.fail("query", fmt.Sprintf("the query of POST /build is not what dockerd reads: %v", err))
		return
	}
	for _, p := range slices.Sorted(maps.Keys(q)) { // the same one named at every run
		if !buildParams[p] {
			k.c.fail(p, fmt.Sprintf("the build parameter %q is not allowed (not known to be safe)", p))
		}
	}
	if v := q.Get("ulimits"); v != "" {
		var us []ulimit
		if err := json.Unmarshal([]byte(v), &us); err != nil {
			k.c.fail("ulimits", fmt.Sprintf("ulimits= is not what dockerd reads: %v", err))
		} else if why := ulimitsProblem(us); why != "" {
			k.c.set("ulimits", us)
			k.c.fail("ulimits", why)
		}
	}
	for _, t := range q["t"] {
		if why := tagProblem(t, id); why != "" {
			k.c.set("t", q["t"])
			k.c.fail("t", why)
		}
	}
	if r := q.Get("remote"); r != "" {
		// dockerd fetches it from the host's network: its loopback
		// services, the cloud metadata address.
		k.c.set("remote", r)
		k.c.fail("remote", "a build context dockerd fetches (remote=) is admin's: dockerd fetches it from the host's network; send the context")
	}
	mode := q.Get("networkmode")
	k.c.set("networkmode", mode)
	if name, ok := strings.CutPrefix(mode, "container:"); ok {
		if o, ok := k.owned(KindContainer, name, "networkmode"); ok {
			k.checkJoined(o, "networkmode", 0)
		}
	} else {
		k.checkNetworkName(mode, "networkmode")
	}
	if v := q.Get("cgroupparent"); v != "" {
		k.c.fail("cgroupparent", zeroReason["CgroupParent"])
	}
	if v := q.Get("isolation"); v != "" && v != "default" {
		k.c.fail("isolation", fmt.Sprintf("isolation %q is not allowed", v))
	}
}

// tagProblem says why a build may not tag an image t: a role that is not
// admin tags only in its own namespace, NAME/... (Docker Hub's or any
// registry's), so that a build never replaces an image another identity
// runs (POST /images/{name}/tag is admin's for the same reason). The tag
// is read as dockerd reads it, not folded: a first component with ".",
// ":" or an upper-case letter, or "localhost", is a registry
// (distribution/reference splitDockerDomain), and the namespace is the
// caller's name exactly. A name that is not a repository component
// (upper case, "@") has no namespace: "Alice" folded to "alice" would
// tag alice's images.
func tagProblem(t string, id Identity) string {
	ns, ok := imageNamespace(t)
	if id.Source == SourceUnix || id.User == "" {
		return fmt.Sprintf("the tag %q: a build over the local socket with a role tags nothing (its images have no namespace)", t)
	}
	if !repoComponent().MatchString(id.User) {
		return fmt.Sprintf("the tag %q: the name %q is not a repository namespace (lower-case letters and digits, separated by '.', '_', '__' or '-'), so a build by it tags nothing", t, id.User)
	}
	if !ok || ns != id.User {
		return fmt.Sprintf("the tag %q is not in your namespace: tag your builds %s/NAME[:TAG], so that a build never replaces an image another identity runs", t, id.User)
	}
	return ""
}

// imageNamespace is the namespace of an image reference, its first path
// component after the registry, as dockerd splits it (distribution/
// reference splitDockerDomain: a first component with ".", ":" or an
// upper-case letter, or "localhost", is a registry); ok is false for a
// name without one ("alpine", "127.0.0.1:5000/app").
func imageNamespace(ref string) (ns string, ok bool) {
	first, rest, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		first, _, ok = strings.Cut(rest, "/")
	}
	return first, ok
}

// checkPullNamespace refuses a pull into the namespace of another
// identity the owners' book knows: a pull writes the tags it pulls and
// replaces the local image, as a build or a tag does (both kept to the
// caller's namespace, or admin's), and the registry it names may be one
// the caller runs (a container publishing 127.0.0.1:5000): bob's pull of
// 127.0.0.1:5000/cici/app:1 would replace the image cici built and runs.
// A namespace nobody the book knows has (library images, a vendor's) is
// anyone's to pull.
func (k *checker) checkPullNamespace(from string) {
	ns, ok := imageNamespace(from)
	owners, known := k.env.Objects.(Owners)
	if !ok || ns == k.caller || !known || !owners.Owns(ns) {
		return
	}
	k.c.fail("fromImage", fmt.Sprintf("the image %q is in the namespace of %q, another identity: a pull would replace its images (a pull writes the tags it pulls, as a build or a tag does)", from, ns))
}

// repoComponent is a path component of an image's name (distribution's
// reference grammar, path-component); compiled when first used, not at
// every start of dtls.
var repoComponent = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$`)
})
