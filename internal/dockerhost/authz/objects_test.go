package authz

import (
	"encoding/json"
	"strings"
)

// fakeObjects answers lookups from a table, as dockerd and the owners'
// book would: by ID, name or unique ID prefix.
type fakeObjects map[ObjectKind][]Object

func (f fakeObjects) Lookup(kind ObjectKind, ref string) (Object, error) {
	var found []Object
	for _, o := range f[kind] {
		if o.ID == ref || o.Name == ref {
			return o, nil
		}
		if kind != KindExec && kind != KindVolume && strings.HasPrefix(o.ID, ref) {
			found = append(found, o)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return Object{Kind: kind, ID: ref}, nil
}

// Owns implements Owners: whether any object of the table is owner's.
func (f fakeObjects) Owns(owner string) bool {
	for _, os := range f {
		for _, o := range os {
			if o.Owner == owner {
				return true
			}
		}
	}
	return false
}

func hc(s string) json.RawMessage { return json.RawMessage(s) }

// testObjects: alice's and others' containers, volumes, networks, execs.
func testObjects() fakeObjects {
	plain := hc(`{"NetworkMode":"default","IpcMode":"private","CgroupnsMode":"host","LogConfig":{"Type":"json-file","Config":{}},"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats",` +
		`"/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],` +
		`"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}`)
	c := func(id, name, owner string, h json.RawMessage) Object {
		return Object{Kind: KindContainer, ID: id, Name: name, Owner: owner, Exists: true, HostConfig: h}
	}
	v := func(name, owner string, opts map[string]string) Object {
		return Object{Kind: KindVolume, ID: name, Name: name, Owner: owner, Exists: true, Driver: "local", Options: opts}
	}
	return fakeObjects{
		KindContainer: {
			c(strings.Repeat("a", 64), "web", "alice", plain),
			c("c1"+strings.Repeat("0", 62), "c1", "alice", plain),
			c(strings.Repeat("b", 64), "adminbox", "root-admin", hc(`{"Privileged":true}`)),
			c(strings.Repeat("c", 64), "hostnet", "alice", hc(`{"NetworkMode":"host"}`)),
			c(strings.Repeat("d", 64), "joined", "alice", hc(`{"IpcMode":"container:web"}`)),
			c(strings.Repeat("e", 64), "other", "bob", plain),
			c(strings.Repeat("f", 64), "privbox", "alice", hc(`{"Privileged":true}`)),
			c(strings.Repeat("9", 64), "etcbox", "alice", hc(`{"Binds":["/etc:/host-etc:ro"]}`)),
			c(strings.Repeat("8", 64), "legacy", "", plain),
			c(strings.Repeat("5", 64), "beef", "alice", plain),
		},
		KindVolume: {
			v("admindata", "root-admin", nil),
			v("etcvol", "alice", map[string]string{"type": "none", "o": "bind", "device": "/etc"}),
			v("mine", "alice", nil),
		},
		KindNetwork: {
			{Kind: KindNetwork, ID: "4b6c1f2a9e0d" + strings.Repeat("0", 52), Name: "host", Driver: "host", Exists: true},
			{Kind: KindNetwork, ID: strings.Repeat("7", 64), Name: "devnet", Driver: "bridge", Owner: "alice", Exists: true},
			{Kind: KindNetwork, ID: strings.Repeat("6", 64), Name: "prodnet", Driver: "bridge", Owner: "root-admin", Exists: true},
			{Kind: KindNetwork, ID: strings.Repeat("4", 64), Name: "bead", Driver: "bridge", Owner: "alice", Exists: true},
		},
		KindImage: {
			{Kind: KindImage, ID: "sha256:" + strings.Repeat("9", 64), Exists: true, Tags: []string{"victim:1"}},
			{Kind: KindImage, ID: "sha256:" + strings.Repeat("8", 64), Exists: true, Tags: []string{"127.0.0.1:5000/bob/app:1"}},
		},
		KindExec: {
			{Kind: KindExec, ID: strings.Repeat("1", 64), Owner: "alice", Exists: true},
			{Kind: KindExec, ID: strings.Repeat("2", 64), Owner: "bob", Exists: true},
			{Kind: KindExec, ID: strings.Repeat("3", 64), Owner: "alice", Exists: true, Container: strings.Repeat("b", 64)},
		},
	}
}
