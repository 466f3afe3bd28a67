package authz

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestUpdaterRedteam: attacks on the updater's lifted ownership rule.
//
// An ID prefix: a harmless container has a name that reads as an ID
// prefix ("beef" here; "db" or "cafe", made by another identity or over
// dockerd's socket: no role but admin may give one such a name), and the
// ID of a privileged container starts with it. dockerd finds a name
// before an ID prefix, so the check passes on the harmless one; the
// updater renames it (allowed: it could create it) between the check
// and dockerd's own lookup, and the same reference names the privileged
// container by its ID: a kill, removal, rename or start of a container
// the updater could never create. The developer's ownership rule
// refuses such a reference; the updater's "could create it as it is
// now" must too.
//
// Fields dockerd reports that the live check did not read: a container
// made with --security-opt systempaths=unconfined (MaskedPaths and
// ReadonlyPaths empty: /proc/sys and core_pattern writable), a device
// cgroup rule (mknod of the host's disks), a cgroup parent, a GPU
// request, OomKillDisable. The updater could not create any of them, so
// it may not kill, remove, rename or start them either; nor may a
// developer exec into such a container of its own (made when the holder
// was admin: "the role perhaps changed since").
//
// The removal of another's container with its anonymous volumes (docker
// rm -v) erases data no copy gets back.
//
// A network joined after the create ('docker network connect') is in
// NetworkSettings, not in the HostConfig: the updater's copy could not
// join another's network again, so it may not remove the original.
func TestUpdaterRedteam(t *testing.T) {
	p := DefaultPolicy()
	objs := testObjects()
	live := func(id, name, owner, h string) Object {
		return Object{Kind: KindContainer, ID: id, Name: name, Owner: owner, Exists: true, HostConfig: json.RawMessage(h)}
	}
	plainNS := `"NetworkMode":"default","IpcMode":"private","LogConfig":{"Type":"json-file","Config":{}}`
	defaults := `"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],` +
		`"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]`
	objs[KindContainer] = append(objs[KindContainer],
		live(strings.Repeat("1", 64), "unconfined", "root-admin", `{`+plainNS+`,"MaskedPaths":[],"ReadonlyPaths":[]}`),
		live(strings.Repeat("2", 64), "devrule", "root-admin", `{`+plainNS+`,`+defaults+`,"DeviceCgroupRules":["b *:* rwm"]}`),
		live(strings.Repeat("3", 64), "cgparent", "root-admin", `{`+plainNS+`,`+defaults+`,"CgroupParent":"/"}`),
		live(strings.Repeat("4", 64), "gpus", "root-admin", `{`+plainNS+`,`+defaults+`,"DeviceRequests":[{"Count":-1,"Capabilities":[["gpu"]]}]}`),
		live(strings.Repeat("6", 64), "mydefault", "root-admin", `{`+plainNS+`,`+defaults+`,"OomKillDisable":false,"DeviceCgroupRules":null,"CgroupParent":"","Devices":[]}`),
		live("7"+strings.Repeat("0", 63), "mine-unconfined", "alice", `{`+plainNS+`,"MaskedPaths":[],"ReadonlyPaths":[]}`),
	)
	// Made on the default bridge, then connected to the admin's network.
	connected := live("7"+strings.Repeat("1", 63), "connected", "root-admin", `{`+plainNS+`,`+defaults+`}`)
	connected.Networks = []string{"bridge", "prodnet"}
	onBridge := live("7"+strings.Repeat("2", 63), "onbridge", "root-admin", `{`+plainNS+`,`+defaults+`}`)
	onBridge.Networks = []string{"bridge"}
	objs[KindContainer] = append(objs[KindContainer], connected, onBridge,
		live("7"+strings.Repeat("3", 63), "wtcopy", "socket:wt", `{`+plainNS+`,`+defaults+`}`))
	upd := Identity{User: "socket:wt", Role: RoleUpdater, Source: SourceLocal}
	dev := Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}
	tests := []struct {
		id                Identity
		method, uri, body string
		rule, why         string // rule "" = allowed
	}{
		{upd, "POST", "/v1.41/containers/beef/kill", "", "updater: allow POST /containers/{id}/kill: container", "also reads as an ID prefix"},
		{upd, "DELETE", "/v1.41/containers/beef?force=1", "", "updater: allow DELETE /containers/{id}: container", "also reads as an ID prefix"},
		{upd, "POST", "/v1.41/containers/beef/start", "", "updater: allow POST /containers/{id}/start: container", "also reads as an ID prefix"},
		{upd, "POST", "/v1.41/containers/" + strings.Repeat("5", 64) + "/kill", "", "", ""},
		{upd, "POST", "/v1.41/containers/unconfined/kill", "", "updater: allow POST /containers/{id}/kill: MaskedPaths", "systempaths=unconfined"},
		{upd, "POST", "/v1.41/containers/unconfined/start", "", "updater: allow POST /containers/{id}/start: MaskedPaths", "systempaths=unconfined"},
		{upd, "DELETE", "/v1.41/containers/devrule?force=1", "", "updater: allow DELETE /containers/{id}: DeviceCgroupRules", "open host devices"},
		{upd, "POST", "/v1.41/containers/cgparent/rename?name=x", "", "updater: allow POST /containers/{id}/rename: CgroupParent", "cgroup parent"},
		{upd, "POST", "/v1.41/containers/gpus/kill", "", "updater: allow POST /containers/{id}/kill: DeviceRequests", "--gpus"},
		{upd, "POST", "/v1.41/containers/mydefault/kill", "", "", ""},
		{upd, "DELETE", "/v1.41/containers/connected?force=1", "", "updater: allow DELETE /containers/{id}: NetworkSettings.Networks", `network "prodnet" was created by someone else`},
		{upd, "POST", "/v1.41/containers/onbridge/kill", "", "", ""},
		{upd, "DELETE", "/v1.41/containers/onbridge?force=1&v=1", "", "updater: allow DELETE /containers/{id}: v", "docker rm -v"},
		{upd, "DELETE", "/v1.41/containers/onbridge?force=1&v=True", "", "updater: allow DELETE /containers/{id}: v", "docker rm -v"},
		{upd, "DELETE", "/v1.41/containers/onbridge?force=1&v=0", "", "", ""},
		{upd, "DELETE", "/v1.41/containers/wtcopy?force=1&v=1", "", "", ""},
		{dev, "POST", "/v1.41/containers/mine-unconfined/exec", `{"Cmd":["sh"]}`, "developer: POST /containers/{id}/exec: MaskedPaths", "systempaths=unconfined"},
	}
	for _, tt := range tests {
		t.Run(tt.id.Role+" "+tt.method+" "+tt.uri, func(t *testing.T) {
			r := Request{Method: tt.method, URI: tt.uri, Headers: map[string]string{"Content-Length": "0"},
				Env: &Env{Objects: objs, CheckRoot: okRoots}}
			if tt.body != "" {
				r.Body, r.Headers = []byte(tt.body), map[string]string{"Content-Type": "application/json"}
			}
			d := p.Decide(tt.id, r)
			if tt.rule == "" {
				assert.True(t, d.Allow, "%s: %s", d.Rule, d.Reason)
				return
			}
			assert.False(t, d.Allow)
			assert.Equal(t, tt.rule, d.Rule, d.Reason)
			assert.Contains(t, d.Reason, tt.why)
		})
	}
}

// TestIdentifyRefusesLocalNames: a certificate whose name is a local
// caller's ("unix:alice", "socket:traefik"), dockerd's own socket's
// ("unix:") or nobody's ("") is refused, whatever its issuer vouches: in
// the owners' book it would own what they created.
func TestIdentifyRefusesLocalNames(t *testing.T) {
	ca := newTestCA(t, "dtls CA")
	inv := newFakeInventory()
	e, err := NewEngine(Config{Inventory: inv})
	assert.NoError(t, err)
	for i, name := range []string{"unix:alice", "socket:traefik", "unix:", "uid:0", "", "alice"} {
		c := ca.client(t, name, int64(200+i))
		inv.add(c, RoleDeveloper)
		got := e.Identify(c)
		if name == "alice" {
			assert.Empty(t, got.Refused)
			assert.Equal(t, "alice", got.ID.User)
			continue
		}
		assert.Equal(t, ruleNotAccepted, got.Rule, name)
		assert.Contains(t, got.Refused, "not a client name dtls issues", name)
	}
}
