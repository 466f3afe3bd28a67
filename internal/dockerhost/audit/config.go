package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dtls-tool/dtls/daemonconfig"
)

// daemonConf is dockerd's configuration as the audit sees it: daemon.json
// plus the flags of docker.service's ExecStart.
type daemonConf struct {
	path string
	// keys are daemon.json's top-level keys; nil when it was not read.
	keys map[string]json.RawMessage
	unit *daemonconfig.Unit
	// flags are the unit's flags by long name (without "--"), each with
	// its values; a boolean flag without a value has "".
	flags map[string][]string

	hosts                      []string // effective: flags, else file
	tls, tlsVerify             bool
	tlsCACert, tlsCert, tlsKey string
	authz                      []string
}

// socket is the daemon's unix socket: the first unix:// host, else the
// default (also when the unit uses fd://, socket activation by docker.socket,
// whose ListenStream is /run/docker.sock, i.e. /var/run/docker.sock).
func (d *daemonConf) socket() string {
	for _, h := range d.hosts {
		if p, ok := strings.CutPrefix(h, "unix://"); ok && p != "" {
			return p
		}
	}
	return DefaultSocket
}

// flagKey maps dockerd flags to the daemon.json keys that conflict with
// them where the names differ (moby daemon/config: a flag's NamedOption
// name, or the plural key of a repeatable flag).
var flagKey = map[string]string{
	"host":                  "hosts",
	"authorization-plugin":  "authorization-plugins",
	"label":                 "labels",
	"registry-mirror":       "registry-mirrors",
	"insecure-registry":     "insecure-registries",
	"storage-opt":           "storage-opts",
	"exec-opt":              "exec-opts",
	"log-opt":               "log-opts",
	"dns-opt":               "dns-opts",
	"default-ulimit":        "default-ulimits",
	"add-runtime":           "runtimes",
	"default-address-pool":  "default-address-pools",
	"node-generic-resource": "node-generic-resources",
}

// flagBool is the value of a boolean flag: given without a value, or "=true".
func flagBool(vals []string) (set, v bool) {
	if len(vals) == 0 {
		return false, false
	}
	last := vals[len(vals)-1]
	return true, last == "" || last == "true" || last == "1"
}

func (d *daemonConf) jsonBool(key string) (set, v bool) {
	raw, ok := d.keys[key]
	if !ok {
		return false, false
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return true, false
	}
	return true, b
}

func (d *daemonConf) jsonString(key string) string {
	var s string
	_ = json.Unmarshal(d.keys[key], &s)
	return s
}

// jsonStrings reads a list of strings, or a single string.
func (d *daemonConf) jsonStrings(key string) ([]string, error) {
	raw, ok := d.keys[key]
	if !ok {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%q is neither a string nor a list of strings", key)
	}
	return []string{s}, nil
}

// checkDaemonConfig reads daemon.json and the systemd unit and checks how
// dockerd listens.
func (a *auditor) checkDaemonConfig() *daemonConf {
	d := &daemonConf{path: a.cfg.DaemonJSON, flags: map[string][]string{}}
	readable := a.readDaemonJSON(d)
	a.readUnit(d)

	conflicts := flagConflicts(d)
	// daemon.json named but not read (permission denied, malformed): the
	// unit alone does not say what dockerd is given, so what depends on
	// the file is SKIP, never PASS.
	unread := ""
	if d.path != "" && !readable {
		unread = fmt.Sprintf("%s was not read: \"hosts\", \"tls\" and \"tlsverify\" may be set there", d.path)
	}
	a.addFlagConflicts(d, conflicts, unread)
	a.effectiveSettings(d)
	a.checkHostKey(d)

	switch {
	case !readable && d.unit == nil:
		a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Skip, Title: "TCP listeners not checked", Detail: "neither daemon.json nor docker.service could be read"})
	case unread != "":
		a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Skip, Title: "TCP listeners not checked", Detail: unread})
	default:
		a.checkListeners(d)
	}
	g := a.readGateway()
	a.checkGateway(d, g)
	a.checkAuthzPlugins(d, readable, g)
	return d
}

// flagConflicts lists the settings given both as a dockerd flag and in
// daemon.json, sorted. dockerd refuses to start when a setting is given
// both ways ("the following directives are specified both as a flag and
// in the configuration file"; Docker docs, "Configure the Docker daemon").
func flagConflicts(d *daemonConf) []string {
	var conflicts []string
	if d.unit != nil && len(unitHosts(d.unit)) > 0 {
		if _, ok := d.keys["hosts"]; ok {
			where := d.unit.Path
			if d.unit.VarSource != "" {
				where += ", " + d.unit.VarSource
			}
			conflicts = append(conflicts, fmt.Sprintf("hosts (flag -H %s in %s)", strings.Join(unitHosts(d.unit), " -H "), where))
		}
	}
	for name := range d.flags {
		key := name
		if k, ok := flagKey[name]; ok {
			key = k
		}
		if _, ok := d.keys[key]; ok {
			conflicts = append(conflicts, fmt.Sprintf("%s (flag --%s)", key, name))
		}
	}
	sort.Strings(conflicts)
	return conflicts
}

// addFlagConflicts reports flagConflicts' result; unread says why
// daemon.json could not be compared, when it could not.
func (a *auditor) addFlagConflicts(d *daemonConf, conflicts []string, unread string) {
	if len(conflicts) > 0 {
		a.add(Finding{ID: "daemon-flag-conflict", Status: Fail,
			Title:  fmt.Sprintf("dockerd will not start: set both as a flag and in %s: %s", d.path, strings.Join(conflicts, ", ")),
			Detail: "dockerd refuses a setting given both on its command line and in daemon.json",
			Fix:    "sudo dtls init (moves -H into \"hosts\" with a systemd drop-in), or remove the flag with a drop-in in /etc/systemd/system/docker.service.d"})
	} else if unread != "" && d.unit != nil {
		a.add(Finding{ID: "daemon-flag-conflict", Status: Skip, Title: "flags of docker.service not compared with daemon.json", Detail: unread})
	} else if d.unit != nil || d.keys != nil {
		a.add(Finding{ID: "daemon-flag-conflict", Status: Pass, Title: "no setting is given both as a dockerd flag and in daemon.json"})
	}
}

// effectiveSettings fills d's hosts, TLS settings and authorization
// plugins from the flags and daemon.json. A flag wins where both exist
// (dockerd would not start anyway).
func (a *auditor) effectiveSettings(d *daemonConf) {
	fileHosts, err := d.jsonStrings("hosts")
	if err != nil {
		a.add(Finding{ID: "daemon-json-syntax", Status: Fail, Title: fmt.Sprintf("%s: %v", d.path, err), Detail: "dockerd cannot read \"hosts\" and will not start", Fix: `make "hosts" a list of strings, e.g. ["unix:///var/run/docker.sock"]`})
	}
	// With hosts both as flags and in the file dockerd does not start at
	// all; check every listener either would have.
	// dockerd trims each entry and reads an empty one as its default
	// socket (moby opts.ParseHost), so " tcp://0.0.0.0:2375" listens on
	// TCP.
	for _, h := range append(fileHosts, unitHostsOrNil(d.unit)...) {
		if h = strings.TrimSpace(h); h != "" && !contains(d.hosts, h) {
			d.hosts = append(d.hosts, h)
		}
	}
	if set, v := flagBool(d.flags["tls"]); set {
		d.tls = v
	} else {
		_, d.tls = d.jsonBool("tls")
	}
	if set, v := flagBool(d.flags["tlsverify"]); set {
		d.tlsVerify = v
	} else {
		_, d.tlsVerify = d.jsonBool("tlsverify")
	}
	pick := func(key string) string {
		if v := d.flags[key]; len(v) > 0 {
			return v[len(v)-1]
		}
		return d.jsonString(key)
	}
	d.tlsCACert, d.tlsCert, d.tlsKey = pick("tlscacert"), pick("tlscert"), pick("tlskey")
	d.authz = append(d.authz, d.flags["authorization-plugin"]...)
	if p, err := d.jsonStrings("authorization-plugins"); err == nil {
		d.authz = append(d.authz, p...)
	}
}

// checkHostKey warns of the singular "host" key: dockerd accepts it (it
// is the --host flag's name, so the unknown-key check passes) but decodes
// only "hosts", so whatever it lists is never listened on.
func (a *auditor) checkHostKey(d *daemonConf) {
	if single, _ := d.jsonStrings("host"); len(single) > 0 || d.keys["host"] != nil {
		a.add(Finding{ID: "daemon-host-key", CIS: "2.7", Status: Warn,
			Title:  fmt.Sprintf("%s has a singular \"host\" key (%s) that dockerd ignores", d.path, strings.Join(single, ", ")),
			Detail: "only \"hosts\" is read: the daemon does not listen where \"host\" says, and TLS meant for it is not in effect",
			Fix:    "sudo dtls init (migrates \"host\" into \"hosts\" with TLS), or rename the key to \"hosts\""})
	}
}

// checkAuthzPlugins reports whether dockerd runs an authorization plugin.
func (a *auditor) checkAuthzPlugins(d *daemonConf, readable bool, g gatewayConf) {
	switch {
	case len(d.authz) > 0:
		a.add(Finding{ID: "daemon-authz", CIS: "2.12", Status: Pass, Title: "authorization plugins: " + strings.Join(d.authz, ", ")})
	case g.serves():
		// The gateway decides every remote call with the plugin's policy
		// engine; the local socket is root's (CIS 2.12 asks for
		// authorization of remote access).
		a.add(Finding{ID: "daemon-authz", CIS: "2.12", Status: Pass, Title: "remote calls are authorized by the dtls gateway (roles on every request)"})
	case readable || d.unit != nil:
		a.add(Finding{ID: "daemon-authz", CIS: "2.12", Status: Warn,
			Title:  "no authorization plugin: every client the daemon accepts can do anything, i.e. is root on this host",
			Detail: "with mutual TLS, anyone holding a client certificate from the CA; an AuthZ plugin can restrict what each may do",
			Fix:    "sudo dtls init --authz --restart (the dtls plugin: per-user roles, revocation the daemon enforces, an audit trail)"})
	}
}

func (a *auditor) readDaemonJSON(d *daemonConf) bool {
	if d.path == "" {
		return false
	}
	b, err := os.ReadFile(d.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// No daemon.json: dockerd runs on its defaults (the local
			// socket only).
			d.keys = map[string]json.RawMessage{}
			return true
		}
		a.add(Finding{ID: "daemon-json-syntax", Status: Skip, Title: "daemon.json not read", Detail: why(d.path, err)})
		return false
	}
	// encoding/json, like dockerd, keeps the last of duplicate keys.
	if err := json.Unmarshal(b, &d.keys); err != nil {
		a.add(Finding{ID: "daemon-json-syntax", Status: Fail,
			Title:  fmt.Sprintf("%s is not valid JSON: %v", d.path, err),
			Detail: "dockerd will not start with it",
			Fix:    "dockerd --validate --config-file " + d.path + " (Docker 23 and later) shows where"})
		d.keys = nil
		return false
	}
	return true
}

// unitHosts are the -H flags dockerd gets from its unit, written in
// ExecStart or hidden in a variable such as $DOCKER_OPTS.
func unitHosts(u *daemonconfig.Unit) []string {
	return append(append([]string(nil), u.Hosts...), u.VarHosts...)
}

func unitHostsOrNil(u *daemonconfig.Unit) []string {
	if u == nil {
		return nil
	}
	return unitHosts(u)
}

func (a *auditor) readUnit(d *daemonConf) {
	if len(a.cfg.SystemdDirs) == 0 {
		return
	}
	u, err := daemonconfig.FindUnit(a.cfg.SystemdDirs)
	if err != nil {
		a.add(Finding{ID: "daemon-unit", Status: Skip, Title: "docker.service not read", Detail: err.Error()})
		return
	}
	if u == nil {
		return
	}
	d.unit = u
	// Expanded has the variables of ExecStart ($DOCKER_OPTS from
	// EnvironmentFile) filled in, so flags hidden there are seen too; it
	// is read by the same parser init uses to write the drop-in.
	d.flags = daemonconfig.DockerdFlagMap(u.Expanded)
	if cf := d.flags["config-file"]; len(cf) > 0 && a.cfg.DaemonJSON != "" && filepath.Clean(cf[len(cf)-1]) != filepath.Clean(a.cfg.DaemonJSON) {
		a.add(Finding{ID: "daemon-unit", Status: Warn,
			Title: fmt.Sprintf("docker.service starts dockerd with --config-file %s, not %s", cf[len(cf)-1], a.cfg.DaemonJSON),
			Fix:   "dtls audit --daemon-json " + cf[len(cf)-1]})
	}
}

// checkListeners checks every TCP listener for TLS with client verification
// (CIS 2.7; https://docs.docker.com/engine/security/protect-access/).
func (a *auditor) checkListeners(d *daemonConf) {
	var tcp []string
	for _, h := range d.hosts {
		if strings.HasPrefix(h, "tcp://") || !strings.Contains(h, "://") {
			tcp = append(tcp, h)
		}
	}
	if len(tcp) == 0 {
		a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Pass, Title: "dockerd listens on no TCP address (local socket only)"})
		return
	}
	for _, h := range tcp {
		port := tcpPort(h)
		switch {
		case d.tlsVerify:
			a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Pass, Title: fmt.Sprintf("%s requires TLS client certificates (tlsverify)", h)})
		case d.tls:
			a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Fail,
				Title:  fmt.Sprintf("%s uses TLS without tlsverify: any client connects and is root on this host", h),
				Detail: "\"tls\" alone encrypts but does not check client certificates",
				Fix:    "sudo dtls init (sets \"tlsverify\": true with a CA), then restart docker"})
		default:
			a.add(Finding{ID: "daemon-tcp-tls", CIS: "2.7", Status: Fail,
				Title:  fmt.Sprintf("%s accepts plain-text connections without authentication: anyone who reaches it is root on this host", h),
				Detail: "the Engine API has no authentication of its own; only tlsverify keeps strangers out",
				Fix:    fmt.Sprintf("sudo dtls init --listen tcp://0.0.0.0:2376 (and remove %s from \"hosts\"), then restart docker", h)})
		}
		if port == "2375" {
			st := Fail
			detail := "2375 is the plain-text Docker port: scanners look for open daemons there"
			if d.tlsVerify {
				st = Warn
				detail = "2375 is the conventional plain-text port; clients and firewalls expect TLS on 2376"
			}
			a.add(Finding{ID: "daemon-port-2375", Status: st, Title: fmt.Sprintf("%s listens on port 2375", h), Detail: detail,
				Fix: "use tcp://HOST:2376 in \"hosts\" (sudo dtls init --listen tcp://0.0.0.0:2376)"})
		}
	}
}

// tcpPort is the port of a tcp:// host (or a bare HOST:PORT, which dockerd
// also reads as TCP).
func tcpPort(h string) string {
	if !strings.Contains(h, "://") {
		h = "tcp://" + h
	}
	u, err := url.Parse(h)
	if err != nil {
		return ""
	}
	_, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return ""
	}
	return p
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
