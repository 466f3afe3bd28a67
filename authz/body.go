package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// The checks of request bodies and queries, for every role but admin.
//
// dockerd forwards a request body to the plugin only when it is JSON
// (Content-Type application/json) and not larger than 4 MiB (moby
// pkg/authorization/authz.go sendBody, maxBodySize), and some never arrive:
// a chunked or zero-length body (CVE-2024-41110), one over the limit
// (CVE-2026-34040), the body of a call the client retried after a dropped
// connection (moby#39331), a Content-Type with parameters on older daemons
// (moby#36317). Where the decision depends on the body, a missing, empty or
// unparsable body is therefore a denial.
//
// Bodies are read with encoding/json into small structs named as Docker
// names its fields, because dockerd reads them with encoding/json too: the
// same case-insensitive field names ("privileged" is Privileged), and for a
// key given twice the same value, the last one (an object given twice is
// merged into one struct, in both). So duplicate keys need no rejecting:
// they cannot make the plugin and dockerd read different values. The
// structs take the types dockerd takes (CapAdd is a string or a list, moby
// strslice); a value of another type fails both. A body with anything
// after its JSON value is refused, although dockerd 20.10 ignores it.

// checkResult is the outcome of a check: field names what denied ("" when
// nothing did), fields what decided, for the audit log.
type checkResult struct {
	field  string
	reason string
	fields map[string]any
}

func (c *checkResult) set(k string, v any) {
	if c.fields == nil {
		c.fields = map[string]any{}
	}
	c.fields[k] = v
}

// fail records the first denial only.
func (c *checkResult) fail(field, reason string) {
	if c.field == "" {
		c.field, c.reason = field, reason
	}
}

// check applies the route's check to the request.
func (p *Policy) check(rl *role, rt *route, r Request, u requestURI) checkResult {
	var c checkResult
	switch rt.body {
	case queryImageCreate:
		checkPull(&c, r, u)
		return c
	case queryStart:
		checkStart(&c, u)
		return c
	}
	body := bytes.Trim(r.Body, " \t\r\n") // JSON's white space only: dockerd reads no other
	switch {
	case len(body) == 0:
		c.fail("body", fmt.Sprintf("%s needs its JSON body checked and the plugin got none: dockerd does not forward a chunked, "+
			"empty or over-4-MiB body, nor one whose Content-Type is not application/json (CVE-2024-41110, moby#36317, moby#39331)", rt))
		return c
	case body[0] != '{':
		c.fail("body", fmt.Sprintf("%s needs a JSON object as its body", rt))
		return c
	}
	var err error
	switch rt.body {
	case bodyCreate:
		var b createBody
		if err = json.Unmarshal(body, &b); err == nil {
			p.checkCreate(&c, &b)
		}
	case bodyExec:
		var b execBody
		if err = json.Unmarshal(body, &b); err == nil {
			p.checkExec(&c, rl, &b, r, u)
		}
	case bodyService:
		var b serviceBody
		if err = json.Unmarshal(body, &b); err == nil {
			p.checkService(&c, rl, &b)
		}
	case bodyVolume:
		var b volumeBody
		if err = json.Unmarshal(body, &b); err == nil {
			p.checkVolume(&c, &b)
		}
	case bodyNetwork:
		var b networkBody
		if err = json.Unmarshal(body, &b); err == nil {
			checkNetwork(&c, &b)
		}
	}
	if err != nil {
		c = checkResult{}
		c.fail("body", fmt.Sprintf("the body of %s is not what dockerd reads: %v", rt, err))
	}
	return c
}

// checksOf lists a route's checks, for Describe.
func checksOf(k bodyKind) []string {
	var cs []string
	switch k {
	case bodyCreate:
		cs = []string{
			"Privileged; CapAdd (any); Capabilities (API 1.40)",
			"PidMode, NetworkMode, IpcMode, UTSMode, UsernsMode \"host\"; the \"host\" network in NetworkingConfig",
			"Devices, DeviceRequests, DeviceCgroupRules",
			"SecurityOpt but no-new-privileges, seccomp=builtin, apparmor=docker-default, label=level:..., writable-cgroups=false",
			"MaskedPaths, ReadonlyPaths (systempaths=unconfined); Annotations; VolumesFrom",
			"bind mounts (Binds, Mounts) and local volumes (type, o=bind, device) of a protected host path",
		}
	case bodyExec:
		cs = []string{"Privileged; User root or uid 0 into a container the role could not have created (or one the plugin does not know)"}
	case bodyService:
		cs = []string{
			"ContainerSpec: CapabilityAdd, Privileges (SELinux disabled or typed, seccomp or AppArmor off or custom), protected mounts",
			"secrets and configs without the secrets capability; the \"host\" network by name; plugin services",
		}
	case bodyVolume:
		cs = []string{"local volumes whose device (type none, o=bind, or a block device) or overlay dirs are a protected host path"}
	case bodyNetwork:
		cs = []string{"drivers other than bridge and overlay (macvlan and ipvlan attach to host interfaces); com.docker.network.bridge.name; Ingress"}
	case queryImageCreate:
		cs = []string{"a pull only (fromImage) with an empty body: no import (fromSrc) from a URL or a tar"}
	case queryStart:
		cs = []string{"a checkpoint or checkpoint-dir (CRIU restore from a host directory)"}
	}
	for i, c := range cs {
		cs[i] = "      denied when: " + c
	}
	return cs
}

// strSlice is moby's strslice.StrSlice: a JSON list of strings, or one
// string, as dockerd reads CapAdd and Cmd.
type strSlice []string

func (s *strSlice) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	list := make([]string, 0, 1)
	if err := json.Unmarshal(b, &list); err != nil {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		list = append(list, one)
	}
	*s = list
	return nil
}

// hostConfig is what the policy reads of Docker's HostConfig.
type hostConfig struct {
	Binds             []string
	NetworkMode       string
	VolumesFrom       []string
	CapAdd            strSlice
	Capabilities      []string // API 1.40 (Docker 19.03) only: the full capability set
	IpcMode           string
	PidMode           string
	UTSMode           string
	UsernsMode        string
	Privileged        bool
	SecurityOpt       []string
	Devices           []struct{ PathOnHost string }
	DeviceRequests    []json.RawMessage
	DeviceCgroupRules []string
	Mounts            []mountSpec
	MaskedPaths       []string
	ReadonlyPaths     []string
	Annotations       map[string]string
}

// mountSpec is Docker's mount.Mount, in HostConfig.Mounts and a service's
// ContainerSpec.Mounts.
type mountSpec struct {
	Type          string
	Source        string
	Target        string
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

func (p *Policy) checkCreate(c *checkResult, b *createBody) {
	c.set("image", b.Image)
	if b.HostConfig != nil {
		p.checkHostConfig(c, b.HostConfig, "HostConfig.")
	}
	p.checkHostConfig(c, &b.hostConfig, "")
	if b.NetworkingConfig != nil {
		for name := range b.NetworkingConfig.EndpointsConfig {
			if strings.EqualFold(name, "host") {
				c.set("network_mode", name)
				c.fail("NetworkingConfig.EndpointsConfig", `the "host" network shares the host's network stack`)
			}
		}
	}
}

// checkHostConfig checks a HostConfig; at is "HostConfig." or "" for the
// top-level fields.
func (p *Policy) checkHostConfig(c *checkResult, h *hostConfig, at string) {
	if h.Privileged {
		c.set("privileged", true)
		c.fail(at+"Privileged", "a privileged container (--privileged) has every capability and every device of the host")
	}
	if len(h.CapAdd) > 0 {
		c.set("cap_add", []string(h.CapAdd))
		c.fail(at+"CapAdd", fmt.Sprintf("added capabilities (--cap-add %s) are not allowed: SYS_ADMIN, SYS_MODULE, ALL and others own the host", strings.Join(h.CapAdd, ",")))
	}
	if len(h.Capabilities) > 0 {
		c.set("capabilities", h.Capabilities)
		c.fail(at+"Capabilities", "a capability set (API 1.40) is not allowed")
	}
	for _, ns := range []struct{ field, key, value, what string }{
		{"PidMode", "pid_mode", h.PidMode, "PID namespace (--pid host: every process of the host, and signals to them)"},
		{"NetworkMode", "network_mode", h.NetworkMode, "network stack (--network host: its interfaces and services on localhost)"},
		{"IpcMode", "ipc_mode", h.IpcMode, "IPC namespace (--ipc host)"},
		{"UTSMode", "uts_mode", h.UTSMode, "UTS namespace (--uts host: it can change the host's name)"},
		{"UsernsMode", "userns_mode", h.UsernsMode, "user namespace (--userns host: root in the container is root on the host when dockerd remaps users)"},
	} {
		// "container:NAME" is allowed: it joins another container's
		// namespace, not the host's. If that container runs with the
		// host's namespace, so will this one: the policy cannot see it.
		if ns.value == "" {
			continue
		}
		c.set(ns.key, ns.value)
		if strings.EqualFold(ns.value, "host") {
			c.fail(at+ns.field, "the host's "+ns.what+" is not allowed")
		}
	}
	if len(h.Devices) > 0 {
		var devs []string
		for _, d := range h.Devices {
			devs = append(devs, d.PathOnHost)
		}
		c.set("devices", devs)
		c.fail(at+"Devices", fmt.Sprintf("host devices (--device %s) are not allowed", strings.Join(devs, ",")))
	}
	if len(h.DeviceRequests) > 0 {
		c.set("device_requests", len(h.DeviceRequests))
		c.fail(at+"DeviceRequests", "device requests (--gpus) are not allowed")
	}
	if len(h.DeviceCgroupRules) > 0 {
		c.set("device_cgroup_rules", h.DeviceCgroupRules)
		c.fail(at+"DeviceCgroupRules", "device cgroup rules (--device-cgroup-rule) are not allowed: they open host devices")
	}
	if len(h.SecurityOpt) > 0 {
		c.set("security_opt", h.SecurityOpt)
		for _, o := range h.SecurityOpt {
			if why := securityOptProblem(o); why != "" {
				c.fail(at+"SecurityOpt", fmt.Sprintf("--security-opt %q %s", o, why))
			}
		}
	}
	// The docker CLI turns --security-opt systempaths=unconfined into
	// empty lists; any list replaces dockerd's defaults, which keep
	// /proc/sysrq-trigger, /proc/sys and /proc/kcore out of reach.
	if h.MaskedPaths != nil {
		c.set("masked_paths", h.MaskedPaths)
		c.fail(at+"MaskedPaths", "replacing the masked paths (--security-opt systempaths=unconfined) unmasks /proc and /sys files of the host kernel")
	}
	if h.ReadonlyPaths != nil {
		c.set("readonly_paths", h.ReadonlyPaths)
		c.fail(at+"ReadonlyPaths", "replacing the read-only paths (--security-opt systempaths=unconfined) makes /proc/sys and /proc/sysrq-trigger writable")
	}
	if len(h.Binds) > 0 {
		c.set("binds", h.Binds)
	}
	for _, b := range h.Binds {
		// moby volume/mounts linux_parser: "src:dst[:mode]"; a source that
		// is an absolute path is a bind mount, anything else a volume name.
		// "/x:ro" (an anonymous volume with a mode) is read as a bind of
		// /x: stricter than dockerd, never looser.
		src, _, ok := strings.Cut(b, ":")
		if !ok || !strings.HasPrefix(src, "/") {
			continue
		}
		if hit, ok := p.protectedPath(src); ok {
			c.fail(at+"Binds", fmt.Sprintf("bind mount of %s (-v %s) is not allowed: %s", src, b, hit))
		}
	}
	if len(h.Mounts) > 0 {
		c.set("mounts", mountSummary(h.Mounts))
		p.checkMounts(c, h.Mounts, at+"Mounts")
	}
	if len(h.VolumesFrom) > 0 {
		c.set("volumes_from", h.VolumesFrom)
		c.fail(at+"VolumesFrom", "--volumes-from takes another container's mounts, which may be the host's: the policy cannot see them")
	}
	if len(h.Annotations) > 0 {
		c.set("annotations", h.Annotations)
		c.fail(at+"Annotations", "OCI annotations go to the runtime, which may act on them (crun reads run.oci.*)")
	}
}

// securityOptProblem says what is wrong with a --security-opt, "" when
// nothing. It splits as dockerd does (moby daemon parseSecurityOpt: at the
// first "=", or else the first ":" of the deprecated form), and allows only
// what keeps the container confined. Any seccomp profile but the built-in
// one may allow every system call (the CLI inlines a profile file); any
// AppArmor profile but docker-default may be unconfined (Ubuntu 24.04
// loads profiles with flags=(unconfined)); an SELinux user, role or type
// may be unconfined (type:spc_t).
func securityOptProblem(opt string) string {
	switch opt {
	case "no-new-privileges":
		return ""
	case "writable-cgroups":
		return "makes the cgroup file system writable"
	case "disable":
		return "turns SELinux labelling off"
	}
	var k, v string
	ok := false
	if strings.Contains(opt, "=") {
		k, v, ok = strings.Cut(opt, "=")
	} else if strings.Contains(opt, ":") {
		k, v, ok = strings.Cut(opt, ":")
	}
	if !ok {
		return "is not a security option dockerd knows"
	}
	switch k {
	case "no-new-privileges":
		return ""
	case "seccomp":
		switch v {
		case "builtin":
			return ""
		case "unconfined":
			return "turns seccomp off"
		}
		return "replaces the seccomp profile, which may allow every system call"
	case "apparmor":
		switch v {
		case "docker-default":
			return ""
		case "unconfined":
			return "turns AppArmor off"
		}
		return "selects another AppArmor profile, which may be unconfined"
	case "label":
		switch {
		case strings.HasPrefix(v, "level:"):
			return ""
		case v == "disable":
			return "turns SELinux labelling off"
		}
		return "sets an SELinux user, role or type, which may be unconfined (type:spc_t)"
	case "writable-cgroups":
		if b, err := strconv.ParseBool(v); err == nil && !b {
			return ""
		}
		return "makes the cgroup file system writable"
	case "systempaths":
		return "unmasks /proc and /sys files of the host kernel"
	}
	return "is not a security option dockerd knows"
}

// protectedPath reports whether a host path is, or is under, a protected
// path, and which. It cleans the path first ("/var//run/./docker.sock",
// "/etc/", "/home/x/../../etc"); a relative path is taken from "/", as a
// mount(2) by dockerd, whose working directory is "/", would. It cannot
// see symbolic links on the host: one a container planted in a directory
// it may mount (/home/alice/src/etc -> /etc) takes a later bind mount of
// it to /etc. Rootless Docker or userns-remap makes root in a container
// not root on the host; the policy cannot.
func (p *Policy) protectedPath(src string) (string, bool) {
	c := path.Join("/", src)
	if c == "/" {
		return `"/" is the host's whole file system`, true
	}
	hit := "" // the longest protected path that holds c
	for _, q := range p.protected {
		if (c == q || strings.HasPrefix(c, q+"/")) && len(q) > len(hit) {
			hit = q
		}
	}
	switch hit {
	case "":
		return "", false
	case c:
		return c + " is a protected host path", true
	}
	return fmt.Sprintf("%s is under %s, a protected host path", c, hit), true
}

// checkMounts checks HostConfig.Mounts or a service's ContainerSpec.Mounts.
func (p *Policy) checkMounts(c *checkResult, ms []mountSpec, at string) {
	for i, m := range ms {
		field := fmt.Sprintf("%s[%d]", at, i)
		switch strings.ToLower(m.Type) {
		case "bind":
			if hit, ok := p.protectedPath(m.Source); ok {
				c.fail(field, fmt.Sprintf("bind mount of %s (--mount type=bind,src=%s) is not allowed: %s", m.Source, m.Source, hit))
			}
		case "volume":
			if m.VolumeOptions == nil || m.VolumeOptions.DriverConfig == nil {
				continue
			}
			dc := m.VolumeOptions.DriverConfig
			if isLocalDriver(dc.Name) {
				if what, ok := p.localVolumeProblem(dc.Options); ok {
					c.fail(field+".VolumeOptions.DriverConfig", "a local volume of "+what)
				}
			}
		}
	}
}

func mountSummary(ms []mountSpec) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Type + ":" + m.Source + ":" + m.Target
	}
	return out
}

func isLocalDriver(name string) bool { return name == "" || name == "local" }

// localVolumeProblem checks the options of the local volume driver (moby
// volume/local: type, o, device are mount(8)'s -t, -o and device): a
// device that is a protected host path (type none with o=bind, or a block
// device under /dev), or overlay's lowerdir, upperdir, workdir. The device
// of a network file system (nfs, cifs) is remote. Option names are matched
// in any case, stricter than the driver.
func (p *Policy) localVolumeProblem(opts map[string]string) (string, bool) {
	var typ, o, device string
	for k, v := range opts {
		switch strings.ToLower(k) {
		case "type":
			typ = strings.ToLower(v)
		case "o":
			o = v
		case "device":
			device = v
		}
	}
	remote := typ == "nfs" || typ == "nfs4" || typ == "cifs" || typ == "smb3"
	if device != "" && !remote {
		if hit, ok := p.protectedPath(device); ok {
			return fmt.Sprintf("device %s (type %q, o %q) is not allowed: %s", device, typ, o, hit), true
		}
	}
	for opt := range strings.SplitSeq(o, ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "lowerdir", "upperdir", "workdir":
			for dir := range strings.SplitSeq(v, ":") {
				if hit, ok := p.protectedPath(dir); dir != "" && ok {
					return fmt.Sprintf("%s (o %q) is not allowed: %s", dir, o, hit), true
				}
			}
		}
	}
	return "", false
}

// volumeBody is the body of POST /volumes/create.
type volumeBody struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
}

func (p *Policy) checkVolume(c *checkResult, b *volumeBody) {
	c.set("name", b.Name)
	c.set("driver", b.Driver)
	if len(b.DriverOpts) > 0 {
		c.set("driver_opts", b.DriverOpts)
	}
	if isLocalDriver(b.Driver) {
		if what, ok := p.localVolumeProblem(b.DriverOpts); ok {
			c.fail("DriverOpts", "a local volume of "+what)
		}
	}
}

// execBody is the body of POST /containers/{id}/exec.
type execBody struct {
	User       string
	Privileged bool
	Cmd        strSlice
}

// checkExec denies a privileged exec in any container: it has every
// capability, even in a container that has none (moby daemon/exec.go),
// which no role but admin could have created. An exec as root is denied
// into a container the role could not have created: the container's
// create body, as the plugin recorded it (ContainerBook), must pass the
// role's checks of POST /containers/create; an unknown container is
// denied (fail closed). An exec without User runs as the container's own
// user, which is often root: the rule stops asking for root, not root
// itself.
func (p *Policy) checkExec(c *checkResult, rl *role, b *execBody, r Request, u requestURI) {
	c.set("cmd", []string(b.Cmd))
	if b.User != "" {
		c.set("user", b.User)
	}
	if b.Privileged {
		c.set("privileged", true)
		c.fail("Privileged", "a privileged exec (docker exec --privileged) has every capability, even in a container that has not")
		return
	}
	if !isRootUser(b.User) {
		return
	}
	segs := splitPath(u.path)
	ref := strings.Join(segs[1:max(len(segs)-1, 1)], "/")
	c.set("container", ref)
	var body []byte
	ok := false
	if r.Containers != nil {
		body, ok = r.Containers.CreateBody(ref)
	}
	if !ok {
		c.fail("User", fmt.Sprintf("an exec as root (docker exec -u %s) is allowed only into a container this role could have created, "+
			"and the plugin does not know how container %q was created (it records those created while it runs)", b.User, ref))
		return
	}
	create := routes().resolve("POST", []string{"containers", "create"})
	cc := p.check(rl, create, Request{Method: "POST", URI: "/containers/create", Body: body}, requestURI{path: "/containers/create"})
	if cc.field != "" {
		c.fail("User", fmt.Sprintf("an exec as root (docker exec -u %s) into container %q is not allowed: this role could not have created it (%s: %s)",
			b.User, ref, cc.field, cc.reason))
	}
}

// isRootUser reports whether a "user[:group]" names uid 0 ("root", "0",
// "0:0", "root:root", "00"), as runc's user lookup reads a number
// (moby/sys/user GetExecUser: strconv.Atoi). A user named otherwise with
// uid 0 in the container's /etc/passwd is beyond the policy's sight.
func isRootUser(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	name = strings.TrimSpace(name)
	if strings.EqualFold(name, "root") {
		return true
	}
	n, err := strconv.Atoi(name)
	return err == nil && n == 0
}

// networkBody is the body of POST /networks/create.
type networkBody struct {
	Name    string
	Driver  string
	Ingress bool
	Options map[string]string
}

// checkNetwork allows networks of the bridge and overlay drivers: macvlan
// and ipvlan put containers on a host interface (parent=eth0), a bridge
// named after an existing host bridge puts them on it, and an ingress
// network carries the swarm's published ports.
func checkNetwork(c *checkResult, b *networkBody) {
	c.set("name", b.Name)
	c.set("driver", b.Driver)
	switch b.Driver {
	case "", "bridge", "overlay":
	default:
		c.fail("Driver", fmt.Sprintf("networks of driver %q are not allowed: only bridge and overlay", b.Driver))
	}
	for k, v := range b.Options {
		if strings.EqualFold(k, "com.docker.network.bridge.name") {
			c.set("bridge_name", v)
			c.fail("Options", fmt.Sprintf("naming the bridge (%s=%s) may put containers on an existing host bridge", k, v))
		}
	}
	if b.Ingress {
		c.set("ingress", true)
		c.fail("Ingress", "an ingress network carries the swarm's published ports")
	}
}

// serviceBody is the body of POST /services/create and
// /services/{id}/update (swarm.ServiceSpec).
type serviceBody struct {
	Name         string
	TaskTemplate struct {
		ContainerSpec *struct {
			Image      string
			Mounts     []mountSpec
			Privileges *struct {
				SELinuxContext *struct {
					Disable          bool
					User, Role, Type string
				}
				Seccomp  *struct{ Mode string }
				AppArmor *struct{ Mode string }
			}
			CapabilityAdd []string
			Secrets       []json.RawMessage
			Configs       []json.RawMessage
		}
		PluginSpec json.RawMessage
		Runtime    string
		Networks   []struct{ Target string }
	}
	Networks []struct{ Target string } // deprecated place of TaskTemplate.Networks
}

// checkService checks a service's task template as a container's
// HostConfig. The docker CLI sends --network host as the host network's
// ID (testdata/cli28/service-host.json), which the policy cannot tell from
// another network's: only the name "host" is caught. The swarm
// capability is as good as admin anyway (it may join the daemon to a
// swarm someone else manages).
func (p *Policy) checkService(c *checkResult, rl *role, b *serviceBody) {
	c.set("name", b.Name)
	t := &b.TaskTemplate
	if len(t.PluginSpec) > 0 && string(t.PluginSpec) != "null" || t.Runtime != "" && t.Runtime != "container" {
		c.set("runtime", t.Runtime)
		c.fail("TaskTemplate.Runtime", "a plugin service installs a managed plugin, with its privileges, on every node")
	}
	for _, nets := range [][]struct{ Target string }{t.Networks, b.Networks} {
		for _, n := range nets {
			if strings.EqualFold(n.Target, "host") {
				c.set("network", n.Target)
				c.fail("TaskTemplate.Networks", `the "host" network shares the host's network stack`)
			}
		}
	}
	cs := t.ContainerSpec
	if cs == nil {
		return
	}
	c.set("image", cs.Image)
	if len(cs.CapabilityAdd) > 0 {
		c.set("cap_add", cs.CapabilityAdd)
		c.fail("TaskTemplate.ContainerSpec.CapabilityAdd", fmt.Sprintf("added capabilities (--cap-add %s) are not allowed", strings.Join(cs.CapabilityAdd, ",")))
	}
	if pv := cs.Privileges; pv != nil {
		if s := pv.SELinuxContext; s != nil && (s.Disable || s.User != "" || s.Role != "" || s.Type != "") {
			c.fail("TaskTemplate.ContainerSpec.Privileges.SELinuxContext", "turning SELinux off or choosing its user, role or type is not allowed")
		}
		if s := pv.Seccomp; s != nil && s.Mode != "" && s.Mode != "default" {
			c.set("seccomp", s.Mode)
			c.fail("TaskTemplate.ContainerSpec.Privileges.Seccomp", fmt.Sprintf("seccomp mode %q is not allowed", s.Mode))
		}
		if s := pv.AppArmor; s != nil && s.Mode != "" && s.Mode != "default" {
			c.set("apparmor", s.Mode)
			c.fail("TaskTemplate.ContainerSpec.Privileges.AppArmor", fmt.Sprintf("AppArmor mode %q is not allowed", s.Mode))
		}
	}
	if len(cs.Mounts) > 0 {
		c.set("mounts", mountSummary(cs.Mounts))
		p.checkMounts(c, cs.Mounts, "TaskTemplate.ContainerSpec.Mounts")
	}
	if (len(cs.Secrets) > 0 || len(cs.Configs) > 0) && rl.caps&capSecrets == 0 {
		c.set("secrets", len(cs.Secrets))
		c.set("configs", len(cs.Configs))
		c.fail("TaskTemplate.ContainerSpec.Secrets", "a service that mounts secrets or configs needs the secrets capability: it reads them")
	}
}

// checkPull allows POST /images/create as a pull only. The same endpoint
// imports (fromSrc): an image of any name, from a tar or from a URL the
// daemon fetches (the cloud metadata service, say), which the role could
// then read. dockerd reads its parameters with net/http's ParseForm, where
// a form body comes before the query and never reaches the plugin, so the
// body must be empty: Content-Length 0, as the docker CLI and Go's client
// send it (a chunked body has no Content-Length header).
func checkPull(c *checkResult, r Request, u requestURI) {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		c.fail("query", fmt.Sprintf("the query of POST /images/create is not what dockerd reads: %v", err))
		return
	}
	from, src := q.Get("fromImage"), q.Get("fromSrc")
	c.set("from_image", from)
	if src != "" {
		c.set("from_src", src)
	}
	switch {
	case from == "":
		c.fail("fromSrc", "importing an image (docker import) is not allowed: it names any image, from a tar or a URL the daemon fetches")
	case header(r.Headers, "Content-Length") != "0":
		c.fail("body", "a pull has an empty body (Content-Length: 0): a form body would override the query, and the plugin cannot see it")
	}
}

// checkStart denies a start from a checkpoint: CRIU restores it from a
// host directory (checkpoint-dir).
func checkStart(c *checkResult, u requestURI) {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		c.fail("query", fmt.Sprintf("the query of POST /containers/{id}/start is not what dockerd reads: %v", err))
		return
	}
	if cp, dir := q.Get("checkpoint"), q.Get("checkpoint-dir"); cp != "" || dir != "" {
		c.set("checkpoint", cp)
		c.set("checkpoint_dir", dir)
		c.fail("checkpoint", "starting from a checkpoint (CRIU, from a host directory) is for admin only")
	}
}

// header looks a header up in any case: moby's authz sends Go's
// canonical names, a hand-made request may not.
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
