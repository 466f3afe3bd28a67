package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What a role that is not admin may set when it creates a container is a
// list: every field of the create body (container.Config, HostConfig,
// NetworkingConfig, moby api/types/container) is named below with what
// may be in it, and a field the list does not name, a field a later API
// version adds among them, is refused with its name. dockerd reads the
// body with encoding/json, whose field names match in any case (and
// Unicode's simple folding: "ſ" is "s"), so the names are matched the way
// it matches them.

// fieldRule is what a field of the create body may hold.
type fieldRule uint8

const (
	anyValue  fieldRule = iota // inside the container only
	zeroOnly                   // only its zero value: null, false, 0, "", [], {}
	nullOnly                   // absent or null: an empty list means something
	floorList                  // absent, null, or a list that holds every path of dockerd's default (defaultPaths)
	checkedBy                  // checked by its own rule below
)

// configFields are container.Config's: what runs inside the container.
var configFields = map[string]fieldRule{
	"Hostname": anyValue, "Domainname": anyValue, "User": anyValue,
	"AttachStdin": anyValue, "AttachStdout": anyValue, "AttachStderr": anyValue,
	"ExposedPorts": anyValue, "Tty": anyValue, "OpenStdin": anyValue, "StdinOnce": anyValue,
	"Env": anyValue, "Cmd": anyValue, "Healthcheck": anyValue, "ArgsEscaped": anyValue,
	"Image": anyValue, "Volumes": anyValue, "WorkingDir": anyValue, "Entrypoint": anyValue,
	"NetworkDisabled": anyValue, "MacAddress": anyValue, "OnBuild": anyValue, "Labels": anyValue,
	"StopSignal": anyValue, "StopTimeout": anyValue, "Shell": anyValue,
	"HostConfig": checkedBy, "NetworkingConfig": checkedBy,
}

// hostConfigFields are HostConfig's and its Resources'. What reaches the
// host is checked or must stay zero: the namespaces, capabilities,
// devices, security options, mounts, the log driver (syslog, gelf or
// fluentd write to any address or host socket), the cgroup parent and
// namespace, the OOM score and killer, the pids limit, sysctls, the
// runtime, real-time CPU time.
var hostConfigFields = map[string]fieldRule{
	"Binds": checkedBy, "ContainerIDFile": anyValue, "LogConfig": checkedBy, "NetworkMode": checkedBy,
	"PortBindings": checkedBy, "RestartPolicy": anyValue, "AutoRemove": anyValue, "VolumeDriver": checkedBy,
	"VolumesFrom": checkedBy, "ConsoleSize": anyValue, "Annotations": zeroOnly, "CapAdd": zeroOnly,
	"CapDrop": anyValue, "CgroupnsMode": checkedBy, "Dns": anyValue, "DnsOptions": anyValue,
	"DnsSearch": anyValue, "ExtraHosts": anyValue, "GroupAdd": anyValue, "IpcMode": checkedBy,
	"Cgroup": zeroOnly, "Links": checkedBy, "OomScoreAdj": checkedBy, "PidMode": checkedBy,
	"Privileged": zeroOnly, "PublishAllPorts": anyValue, "ReadonlyRootfs": anyValue, "SecurityOpt": checkedBy,
	"StorageOpt": zeroOnly, "Tmpfs": anyValue, "UTSMode": checkedBy, "UsernsMode": checkedBy,
	"ShmSize": anyValue, "Sysctls": checkedBy, "Runtime": checkedBy, "Isolation": checkedBy,
	"Capabilities": zeroOnly, "Init": anyValue, "Mounts": checkedBy,
	"MaskedPaths": nullOnly, "ReadonlyPaths": nullOnly,
	// Resources
	"CpuShares": anyValue, "Memory": anyValue, "NanoCpus": anyValue, "CgroupParent": zeroOnly,
	"BlkioWeight": anyValue, "BlkioWeightDevice": anyValue, "BlkioDeviceReadBps": anyValue,
	"BlkioDeviceWriteBps": anyValue, "BlkioDeviceReadIOps": anyValue, "BlkioDeviceWriteIOps": anyValue,
	"CpuPeriod": anyValue, "CpuQuota": anyValue, "CpuRealtimePeriod": zeroOnly, "CpuRealtimeRuntime": zeroOnly,
	"CpusetCpus": anyValue, "CpusetMems": anyValue, "Devices": zeroOnly, "DeviceCgroupRules": zeroOnly,
	"DeviceRequests": zeroOnly, "KernelMemory": anyValue, "KernelMemoryTCP": anyValue,
	"MemoryReservation": anyValue, "MemorySwap": anyValue, "MemorySwappiness": anyValue,
	"OomKillDisable": zeroOnly, "PidsLimit": checkedBy, "Ulimits": checkedBy,
	"CpuCount": anyValue, "CpuPercent": anyValue, "IOMaximumIOps": anyValue, "IOMaximumBandwidth": anyValue,
}

// zeroReason says why a zero-only field must stay zero.
var zeroReason = map[string]string{
	"Annotations":        "OCI annotations go to the runtime, which may act on them (crun reads run.oci.*)",
	"CapAdd":             "added capabilities (--cap-add) are not allowed: SYS_ADMIN, SYS_MODULE, ALL and others own the host",
	"Cgroup":             "joining another cgroup (--cgroup) is not allowed",
	"Privileged":         "a privileged container (--privileged) has every capability and every device of the host",
	"StorageOpt":         "storage driver options (--storage-opt) are not allowed",
	"Capabilities":       "a capability set (API 1.40) is not allowed",
	"CgroupParent":       "a cgroup parent (--cgroup-parent) places the container in any cgroup of the host, out of its limits",
	"CpuRealtimePeriod":  "real-time CPU time (--cpu-rt-period) can starve the host",
	"CpuRealtimeRuntime": "real-time CPU time (--cpu-rt-runtime) can starve the host",
	"Devices":            "host devices (--device) are not allowed",
	"DeviceCgroupRules":  "device cgroup rules (--device-cgroup-rule) are not allowed: they open host devices",
	"DeviceRequests":     "device requests (--gpus) are not allowed",
	"OomKillDisable":     "disabling the OOM killer (--oom-kill-disable) lets the container take the host's memory",
	"MaskedPaths":        "replacing the masked paths (--security-opt systempaths=unconfined) unmasks /proc and /sys files of the host kernel",
	"ReadonlyPaths":      "replacing the read-only paths (--security-opt systempaths=unconfined) makes /proc/sys and /proc/sysrq-trigger writable",
}

// jsonFold folds a field name as encoding/json matches names (its
// foldName: each rune upper-cased after being lower-cased).
func jsonFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}

// lookupField finds a member's canonical name in idx; ASCII names, all of
// Docker's, are folded without an allocation.
func lookupField(idx map[string]string, key []byte) (string, bool) {
	var buf [64]byte
	if len(key) <= len(buf) {
		n := 0
		for ; n < len(key) && key[n] < utf8.RuneSelf; n++ {
			ch := key[n]
			if 'a' <= ch && ch <= 'z' {
				ch -= 'a' - 'A'
			}
			buf[n] = ch
		}
		if n == len(key) {
			name, ok := idx[string(buf[:n])]
			return name, ok
		}
	}
	name, ok := idx[jsonFold(string(key))]
	return name, ok
}

// fieldIndex maps folded names to their canonical name.
func fieldIndex(tables ...map[string]fieldRule) map[string]string {
	idx := map[string]string{}
	for _, t := range tables {
		for name := range t {
			idx[jsonFold(name)] = name
		}
	}
	return idx
}

// eachMember calls fn for each member of a JSON object, in order,
// duplicates included (dockerd keeps the last; the checks see them all).
// It reads raw by hand (a body encoding/json has already accepted, so
// valid JSON): a json.Decoder's tokens cost an allocation each, on every
// create. It returns false when raw is not an object.
func eachMember(raw []byte, fn func(key []byte, val json.RawMessage)) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return i < len(raw)
		}
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		end := skipValue(raw, i)
		if end < 0 || raw[i] != '"' {
			return false
		}
		key := raw[i:end]
		k := key[1 : len(key)-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(key, &s) != nil {
				return false
			}
			k = []byte(s)
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = skipSpace(raw, i+1)
		end = skipValue(raw, i)
		if end < 0 {
			return false
		}
		fn(k, raw[i:end])
		i = end
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value at b[i:], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	depth, inStr := 0, false
	for j := i; j < len(b); j++ {
		ch := b[j]
		switch {
		case inStr:
			if ch == '\\' {
				j++
			} else if ch == '"' {
				inStr = false
				if depth == 0 {
					return j + 1
				}
			}
		case ch == '"':
			inStr = true
		case ch == '{' || ch == '[':
			depth++
		case ch == '}' || ch == ']':
			depth--
			if depth == 0 {
				return j + 1
			}
			if depth < 0 {
				return j
			}
		case depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'):
			return j
		}
	}
	if depth == 0 && !inStr {
		return len(b)
	}
	return -1
}

// isZeroJSON reports whether a JSON value is its type's zero value.
func isZeroJSON(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return true
	case v[0] == '{':
		zero := true
		ok := eachMember(v, func(_ []byte, val json.RawMessage) { zero = zero && isZeroJSON(val) })
		return ok && zero
	case v[0] == '[':
		return len(bytes.TrimSpace(v[1:len(v)-1])) == 0
	case v[0] == '"':
		return len(v) == 2
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		f, err := strconv.ParseFloat(string(v), 64)
		return err == nil && f == 0
	}
	s := string(v)
	return s == "null" || s == "false"
}

// checkFields applies a field table to the members of one object: at is
// the path shown in errors ("HostConfig."). Members that hold an object
// of checked fields are walked by the caller.
func checkFields(c *checkResult, raw []byte, at string, idx map[string]string, tables ...map[string]fieldRule) {
	walkFields(c, raw, at, idx, nil, tables...)
}

// walkFields is checkFields that also hands each known member to then
// (when not nil), so that one pass reads an object.
func walkFields(c *checkResult, raw []byte, at string, idx map[string]string, then func(name string, val json.RawMessage), tables ...map[string]fieldRule) {
	eachMember(raw, func(k []byte, val json.RawMessage) {
		name, ok := lookupField(idx, k)
		if !ok {
			key := string(k)
			if !utf8.ValidString(key) {
				key = fmt.Sprintf("%q", key)
			}
			c.fail(at+key, fmt.Sprintf("%s%s is not a field a container may be created with by this role (the allowed fields are listed by 'dtls authz explain')", at, key))
			return
		}
		var rule fieldRule
		for _, t := range tables {
			if r, ok := t[name]; ok {
				rule = r
			}
		}
		switch {
		case rule == zeroOnly && !isZeroJSON(val):
			c.set(strings.ToLower(name), json.RawMessage(val))
			c.fail(at+name, zeroReason[name])
		case listRefused(rule, name, val):
			c.set(strings.ToLower(name), json.RawMessage(val))
			c.fail(at+name, zeroReason[name])
		}
		if then != nil {
			then(name, val)
		}
	})
}

// mountFields are a mount's (moby api/types/mount.Mount) and its
// VolumeOptions': a volume's Subpath (API 1.45) mounts a path inside it,
// which a container may have made a symbolic link; cluster options are
// swarm's.
var (
	mountFields = map[string]fieldRule{
		"Type": checkedBy, "Source": checkedBy, "Target": anyValue, "ReadOnly": anyValue, "Consistency": anyValue,
		"BindOptions": anyValue, "VolumeOptions": checkedBy, "TmpfsOptions": anyValue, "ClusterOptions": zeroOnly,
	}
	volumeOptionFields = map[string]fieldRule{"NoCopy": anyValue, "Labels": anyValue, "DriverConfig": checkedBy, "Subpath": zeroOnly}
	mountIndex         = fieldIndex(mountFields)
	volumeOptionIndex  = fieldIndex(volumeOptionFields)
)

func init() {
	zeroReason["ClusterOptions"] = "cluster volume options are swarm's"
	zeroReason["Subpath"] = "a volume's subpath (API 1.45) mounts a path inside the volume, which a container may have made a symbolic link"
}

// checkMountItems applies the mount tables to the items of a Mounts
// list; at is the list's place ("HostConfig.").
func checkMountItems(c *checkResult, val json.RawMessage, at string) {
	var items []json.RawMessage
	if json.Unmarshal(val, &items) != nil {
		return
	}
	for i, item := range items {
		field := fmt.Sprintf("%sMounts[%d].", at, i)
		walkFields(c, item, field, mountIndex, func(name string, v json.RawMessage) {
			if name == "VolumeOptions" && string(bytes.TrimSpace(v)) != "null" {
				checkFields(c, v, field+"VolumeOptions.", volumeOptionIndex, volumeOptionFields)
			}
		}, mountFields)
	}
}

var (
	createIndex  = fieldIndex(configFields, hostConfigFields)
	hostIndex    = fieldIndex(hostConfigFields)
	netConfIndex = fieldIndex(map[string]fieldRule{"EndpointsConfig": checkedBy})
	createTables = []map[string]fieldRule{configFields, hostConfigFields}
	// copyFields are hostConfigFields for a role that replaces
	// containers (the updater): the masked and read-only paths of the
	// original come back in its copy (defaultPaths).
	copyFields = func() map[string]fieldRule {
		m := maps.Clone(hostConfigFields)
		m["MaskedPaths"], m["ReadonlyPaths"] = floorList, floorList
		return m
	}()
	copyTables    = []map[string]fieldRule{configFields, copyFields}
	allowedFields = func() []string {
		var names []string
		for n, r := range hostConfigFields {
			if r != zeroOnly && r != nullOnly && r != floorList {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return names
	}()
)

// logDrivers are the log drivers a role that is not admin may choose, and
// their options: they write to dockerd's own files or to journald.
// syslog, gelf, fluentd, splunk, awslogs and the others send the logs to
// an address, a host socket included (syslog-address=unix:///...).
var logDrivers = map[string][]string{
	"":          {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size"},
	"json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size"},
	"local":     {"max-size", "max-file", "compress", "mode", "max-buffer-size"},
	"journald":  {"tag", "labels", "labels-regex", "env", "env-regex", "mode", "max-buffer-size"},
	"none":      {},
}

// defaultPaths are the paths dockerd masks and makes read-only in every
// container that is not privileged, as dockerd 20.10 lists them (moby
// oci/defaults.go, DefaultLinuxSpec); later versions add to them
// (/sys/devices/virtual/powercap, /proc/interrupts). dockerd stores them
// in the HostConfig it creates (daemon/create.go: "Set it to the default
// if nil"), so an inspect reports them, and a client that creates a copy
// of a container from its inspect sends them back (watchtower's
// GetCreateHostConfig, pkg/container/container.go). A list that holds
// all of them masks at least what dockerd 20.10 would; one that leaves
// one out (--security-opt systempaths=unconfined sends an empty list)
// unmasks a file of the host kernel. Only a role that replaces
// containers (the updater) may send such a list; the paths a later
// dockerd adds (powercap's energy counters, a side channel) are not
// among them, so that a copy made on dockerd 20.10 passes: on a later
// dockerd the updater could leave those out.
var defaultPaths = map[string][]string{
	"MaskedPaths": {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"},
	"ReadonlyPaths": {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
}

// listRefused reports whether a field of rule nullOnly is not null, or
// one of rule floorList neither null nor a list of strings with every
// path of defaultPaths[name]; it is false of the fields of other rules.
func listRefused(rule fieldRule, name string, val json.RawMessage) bool {
	null := string(bytes.TrimSpace(val)) == "null"
	switch {
	case rule == nullOnly:
		return !null
	case rule != floorList || null:
		return false
	}
	return !holdsDefaultPaths(name, val)
}

// holdsDefaultPaths reports whether val is a list of strings with every
// path of defaultPaths[name].
func holdsDefaultPaths(name string, val json.RawMessage) bool {
	var list []string
	if json.Unmarshal(val, &list) != nil {
		return false
	}
	for _, p := range defaultPaths[name] {
		if !slices.Contains(list, p) {
			return false
		}
	}
	return true
}
