package authz

import (
	"encoding/json"
	"fmt"
	"net/url"
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

func mountSummary(ms []mountSpec) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Type + ":" + m.Source + ":" + m.Target
	}
	return out
}

func isLocalDriver(name string) bool { return name == "" || name == "local" }

// networkBody is the body of POST /networks/create.
type networkBody struct {
	Name       string
	Driver     string
	Ingress    bool
	EnableIPv6 bool
	Options    map[string]string
	IPAM       *struct {
		Driver  string
		Config  []json.RawMessage
		Options map[string]string
	}
}

// networkFields are what a role that is not admin may create a network
// with (moby api/types/network CreateRequest).
var (
	networkFields = map[string]fieldRule{
		"Name": checkedBy, "CheckDuplicate": anyValue, "Driver": checkedBy, "Scope": anyValue, "Internal": anyValue,
		"Attachable": anyValue, "Ingress": zeroOnly, "IPAM": checkedBy, "EnableIPv6": zeroOnly, "Options": checkedBy,
		"Labels": anyValue, "ConfigOnly": zeroOnly, "ConfigFrom": zeroOnly,
	}
	networkIndex = fieldIndex(networkFields)
	// networkOptions are the driver options that change nothing outside
	// the network: its MTU, whether its containers talk to each other or
	// are masqueraded.
	networkOptions = []string{"com.docker.network.driver.mtu", "com.docker.network.bridge.enable_icc", "com.docker.network.bridge.enable_ip_masquerade"}
)

func init() {
	zeroReason["Ingress"] = "an ingress network carries the swarm's published ports"
	zeroReason["EnableIPv6"] = "an IPv6 network turns on IPv6 forwarding for the whole host (net.ipv6.conf.all.forwarding), which then ignores router advertisements"
	zeroReason["ConfigOnly"] = "config-only networks are admin's"
	zeroReason["ConfigFrom"] = "a network made from another's config takes its addresses"
}

// checkNetwork allows networks of the bridge and overlay drivers, with
// addresses from dockerd's own pools: macvlan and ipvlan put containers
// on a host interface (parent=eth0); a bridge named after an existing
// host bridge puts them on it; a subnet of the caller's choice makes the
// host route those addresses (a DNS server's, the cloud metadata
// service's, the online CA's) into the caller's containers.
func checkNetwork(c *checkResult, raw []byte, b *networkBody) {
	c.set("name", b.Name)
	c.set("driver", b.Driver)
	checkFields(c, raw, "", networkIndex, networkFields)
	checkObjectName(c, b.Name, "Name")
	switch b.Driver {
	case "", "bridge", "overlay":
	default:
		c.fail("Driver", fmt.Sprintf("networks of driver %q are not allowed: only bridge and overlay", b.Driver))
	}
	for k, v := range b.Options {
		if strings.EqualFold(k, "com.docker.network.bridge.name") {
			c.set("bridge_name", v)
			c.fail("Options", fmt.Sprintf("naming the bridge (%s=%s) may put containers on an existing host bridge", k, v))
		} else if !containsString(networkOptions, k) {
			c.fail("Options", fmt.Sprintf("network option %q is not allowed: only %s", k, strings.Join(networkOptions, ", ")))
		}
	}
	if m := b.IPAM; m != nil {
		switch {
		case m.Driver != "" && m.Driver != "default":
			c.fail("IPAM.Driver", fmt.Sprintf("IPAM driver %q is not allowed: only dockerd's default", m.Driver))
		case len(m.Config) > 0:
			c.set("ipam_config", m.Config)
			c.fail("IPAM.Config", "choosing the network's subnet, range or gateway (--subnet, --ip-range, --gateway) is not allowed: the host would route those addresses into the network; dockerd picks a free one from its pools")
		case len(m.Options) > 0:
			c.fail("IPAM.Options", "IPAM options are not allowed")
		}
	}
}

// maxObjectName bounds the names a role that is not admin gives: the
// owners' book and the audit trail keep them.
const maxObjectName = 128

// checkObjectName refuses a container or network name that is too long,
// or made of hexadecimal digits only: dockerd looks a reference up by
// name before ID prefix, so such a name would capture another's
// reference to an object whose ID starts with it (an admin's docker cp
// to an ID prefix shown by docker ps would land in the caller's
// container).
func checkObjectName(c *checkResult, name, field string) {
	n := strings.TrimPrefix(name, "/")
	switch {
	case len(n) > maxObjectName:
		c.fail(field, fmt.Sprintf("a name of %d bytes is too long: at most %d", len(n), maxObjectName))
	case isHexRef(n):
		c.fail(field, fmt.Sprintf("the name %q is made of hexadecimal digits only, which reads as an ID prefix: another's reference to an ID starting with it would find this object; choose a name with another letter", n))
	}
}

// serviceBody is the body of POST /services/create and
// /services/{id}/update (swarm.ServiceSpec).
type serviceBody struct {
	Name         string
	TaskTemplate struct {
		ContainerSpec *struct {
			Image         string
			Mounts        []mountSpec
			Privileges    *servicePrivileges
			CapabilityAdd []string
			Ulimits       []ulimit // API 1.41
			Secrets       []json.RawMessage
			Configs       []json.RawMessage
		}
		PluginSpec json.RawMessage
		Runtime    string
		Networks   []struct{ Target string }
	}
	Networks []struct{ Target string } // deprecated place of TaskTemplate.Networks
	// EndpointSpec.Ports are published on every node (ingress) or on the
	// task's (host mode), as a container's PortBindings are.
	EndpointSpec *struct {
		Ports []struct{ PublishedPort int }
	}
}

// servicePrivileges is a service's ContainerSpec.Privileges.
type servicePrivileges struct {
	SELinuxContext *struct {
		Disable          bool
		User, Role, Type string
	}
	Seccomp  *struct{ Mode string }
	AppArmor *struct{ Mode string }
}

// check allows only the defaults: SELinux on with its own labels, the
// default seccomp and AppArmor profiles.
func (pv *servicePrivileges) check(c *checkResult) {
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

// checkService checks a service's task template as a container's
// HostConfig. The docker CLI sends --network host as the host network's
// ID (testdata/cli28/service-host.json), which the policy cannot tell from
// another network's: only the name "host" is caught. The swarm
// capability is as good as admin anyway (it may join the daemon to a
// swarm someone else manages).
func (k *checker) checkService(b *serviceBody) {
	c, rl := &k.c, k.rl
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
	if e := b.EndpointSpec; e != nil && rl.caps&capPorts == 0 {
		first := k.p.firstUnprivilegedPort()
		for _, p := range e.Ports {
			if p.PublishedPort > 0 && p.PublishedPort < first {
				c.fail("EndpointSpec.Ports", fmt.Sprintf("published port %d is below %d, the host's first unprivileged port (net.ipv4.ip_unprivileged_port_start): the ports capability publishes it", p.PublishedPort, first))
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
		pv.check(c)
	}
	if why := ulimitsProblem(cs.Ulimits); why != "" {
		c.set("ulimits", cs.Ulimits)
		c.fail("TaskTemplate.ContainerSpec.Ulimits", why)
	}
	if len(cs.Mounts) > 0 {
		c.set("mounts", mountSummary(cs.Mounts))
		k.checkMounts(cs.Mounts, "TaskTemplate.ContainerSpec.Mounts")
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
// send it (a chunked body has no Content-Length header). It returns the
// image pulled when it is a pull ("" otherwise).
func checkPull(c *checkResult, r Request, u requestURI) string {
	q, err := url.ParseQuery(u.query)
	if err != nil {
		c.fail("query", fmt.Sprintf("the query of POST /images/create is not what dockerd reads: %v", err))
		return ""
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
	return from
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
