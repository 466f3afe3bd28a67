package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
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
	"PortBindings": anyValue, "RestartPolicy": anyValue, "AutoRemove": anyValue, "VolumeDriver": checkedBy,
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
	"OomKillDisable": zeroOnly, "PidsLimit": checkedBy, "Ulimits": anyValue,
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
func eachMember(raw []byte, fn func(key string, val json.RawMessage)) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return false
		}
		fn(key, val)
	}
	return true
}

// isZeroJSON reports whether a JSON value is its type's zero value.
func isZeroJSON(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return true
	case v[0] == '{':
		zero := true
		ok := eachMember(v, func(_ string, val json.RawMessage) { zero = zero && isZeroJSON(val) })
		return ok && zero
	case v[0] == '[':
		var list []json.RawMessage
		return json.Unmarshal(v, &list) == nil && len(list) == 0
	case v[0] == '"':
		var s string
		return json.Unmarshal(v, &s) == nil && s == ""
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		var f float64
		return json.Unmarshal(v, &f) == nil && f == 0
	}
	s := string(v)
	return s == "null" || s == "false"
}

// checkFields applies a field table to the members of one object: at is
// the path shown in errors ("HostConfig."). Members that hold an object
// of checked fields are walked by the caller.
func checkFields(c *checkResult, raw []byte, at string, idx map[string]string, tables ...map[string]fieldRule) {
	eachMember(raw, func(key string, val json.RawMessage) {
		name, ok := idx[jsonFold(key)]
		if !ok {
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
		case rule == nullOnly && string(bytes.TrimSpace(val)) != "null":
			c.set(strings.ToLower(name), json.RawMessage(val))
			c.fail(at+name, zeroReason[name])
		}
	})
}

var (
	createIndex   = fieldIndex(configFields, hostConfigFields)
	hostIndex     = fieldIndex(hostConfigFields)
	netConfIndex  = fieldIndex(map[string]fieldRule{"EndpointsConfig": checkedBy})
	createTables  = []map[string]fieldRule{configFields, hostConfigFields}
	allowedFields = func() []string {
		var names []string
		for n, r := range hostConfigFields {
			if r != zeroOnly && r != nullOnly {
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
