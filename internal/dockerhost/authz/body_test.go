package authz

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/sjson"
)

// cli reads a body the docker CLI 28 sent (testdata/cli28/README.md).
func cli(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cli28", name+".json"))
	require.NoError(t, err)
	return b
}

// with sets fields of a JSON body: path, value pairs (sjson paths); a
// value of type raw is set as JSON.
func with(t testing.TB, body []byte, kv ...any) []byte {
	t.Helper()
	require.Zero(t, len(kv)%2)
	for i := 0; i < len(kv); i += 2 {
		var err error
		if r, ok := kv[i+1].(raw); ok {
			body, err = sjson.SetRawBytes(body, kv[i].(string), []byte(r))
		} else {
			body, err = sjson.SetBytes(body, kv[i].(string), kv[i+1])
		}
		require.NoError(t, err)
	}
	return body
}

type raw string

// post is a request as dockerd forwards a JSON body.
func post(uri string, body []byte) Request {
	return Request{Method: "POST", URI: uri, Body: body, Headers: map[string]string{
		"Content-Type": "application/json", "Content-Length": strconv.Itoa(len(body)),
	}}
}

// okRoots takes every bind root as safe on the host: the host's own
// judgement of a root is TestBindRootOnTheHost's.
func okRoots(string) string { return "" }

type bodyCase struct {
	name string
	body []byte
	rule string // the whole rule: allowed when it has no check suffix
	why  string // part of the reason of a denial
}

// runBodyCases decides each body for developer alice at uri, with
// /home/dev as a bind root and testObjects.
func runBodyCases(t *testing.T, uri string, cases []bodyCase) {
	t.Helper()
	p, err := ParsePolicy([]byte(`{"bind_roots": ["/home/dev", "/home/dev/src", "/home/dev/data", "/home/{user}/src", "/tmp/x"]}`))
	require.NoError(t, err)
	p.firstPort = 1024 // the host's own may differ
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(uri, c.body)
			r.Env = &Env{Objects: testObjects(), CheckRoot: okRoots}
			d := p.Decide(Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}, r)
			assert.Equal(t, c.rule, d.Rule)
			assert.Equal(t, c.why == "", d.Allow, d.Reason)
			if c.why != "" {
				assert.Contains(t, d.Reason, c.why)
			}
		})
	}
}

func TestBodyCreate(t *testing.T) {
	const create = "/v1.41/containers/create"
	const ok = "developer: POST /containers/create"
	deny := func(field string) string { return ok + ": " + field }
	run := cli(t, "run-alpine")
	runWith := func(kv ...any) []byte { return with(t, run, kv...) }
	cases := []bodyCase{
		{"docker run alpine", run, ok, ""},
		{"docker run -v /home/dev/src:/src", cli(t, "run-bind-src"), ok, ""},
		{"docker run --privileged", cli(t, "run-privileged"), deny("HostConfig.Privileged"), "privileged container"},
		{"-v /var/run/docker.sock:/var/run/docker.sock", cli(t, "run-docker-sock"), deny("HostConfig.Binds"),
			"bind mount of /var/run/docker.sock (-v /var/run/docker.sock:/var/run/docker.sock) is not allowed: /var/run/docker.sock"},
		{"-v /:/host", cli(t, "run-root-fs"), deny("HostConfig.Binds"), `/ is the host's whole file system`},
		{"-v /etc/:/x", cli(t, "run-etc-slash"), deny("HostConfig.Binds"), "/etc/ is /etc, a protected host path"},
		{"--mount type=bind,src=/run,dst=/x", cli(t, "run-mount-bind-run"), deny("HostConfig.Mounts[0]"), "bind mount of /run"},
		{"--pid host --network host --ipc host --uts host --userns host", cli(t, "run-host-namespaces"), deny("HostConfig.PidMode"), "PID namespace"},
		{"--pid host", runWith("HostConfig.PidMode", "host"), deny("HostConfig.PidMode"), "--pid host"},
		{"--network host", runWith("HostConfig.NetworkMode", "host"), deny("HostConfig.NetworkMode"), `the "host" network`},
		{"--ipc host", runWith("HostConfig.IpcMode", "host"), deny("HostConfig.IpcMode"), "--ipc host"},
		{"--uts host", runWith("HostConfig.UTSMode", "host"), deny("HostConfig.UTSMode"), "--uts host"},
		{"--userns host", runWith("HostConfig.UsernsMode", "host"), deny("HostConfig.UsernsMode"), "--userns host"},
		{"NetworkMode HOST", runWith("HostConfig.NetworkMode", "HOST"), deny("HostConfig.NetworkMode"), `the "host" network`},
		{"the host network by its ID", runWith("HostConfig.NetworkMode", "4b6c1f2a9e0d"), deny("HostConfig.NetworkMode"), `is the host's network`},
		{"a network of one's own", runWith("HostConfig.NetworkMode", "devnet"), ok, ""},
		{"another's network", runWith("HostConfig.NetworkMode", "prodnet"), deny("HostConfig.NetworkMode"), "someone else"},
		{"one's own network by a name that reads as an ID prefix", runWith("HostConfig.NetworkMode", "bead"), deny("HostConfig.NetworkMode"), "also reads as an ID prefix"},
		{"another's network in NetworkingConfig", runWith("NetworkingConfig.EndpointsConfig.prodnet", raw(`{}`)), deny("NetworkingConfig.EndpointsConfig"), "someone else"},
		{"--network container:web --pid container:web", cli(t, "run-container-namespaces"), ok, ""},
		{"--pid container:adminbox", runWith("HostConfig.PidMode", "container:adminbox"), deny("HostConfig.PidMode"), "was created by someone else"},
		{"--network container:hostnet (own, but with the host's network)", runWith("HostConfig.NetworkMode", "container:hostnet"), deny("HostConfig.NetworkMode"),
			`joined container hostnet is not one this role could create now: the "host" network`},
		{"--ipc container:joined (own, itself joined)", runWith("HostConfig.IpcMode", "container:joined"), deny("HostConfig.IpcMode"), "joins are followed one level only"},
		{"--pid container:ghost", runWith("HostConfig.PidMode", "container:ghost"), deny("HostConfig.PidMode"), `no container "ghost"`},
		{"--ipc shareable", runWith("HostConfig.IpcMode", "shareable"), ok, ""},
		{"--cgroupns host", runWith("HostConfig.CgroupnsMode", "host"), deny("HostConfig.CgroupnsMode"), "cgroup namespace"},
		{"--cgroupns private", runWith("HostConfig.CgroupnsMode", "private"), ok, ""},
		{"the host network in NetworkingConfig", runWith("NetworkingConfig.EndpointsConfig.host", raw(`{}`)), deny("NetworkingConfig.EndpointsConfig"), `the "host" network`},
		{"--cap-add SYS_ADMIN", cli(t, "run-cap-add"), deny("HostConfig.CapAdd"), "--cap-add"},
		{"--cap-add ALL", runWith("HostConfig.CapAdd", raw(`["ALL"]`)), deny("HostConfig.CapAdd"), "--cap-add"},
		{"CapAdd as a string (moby strslice)", runWith("HostConfig.CapAdd", "SYS_ADMIN"), deny("HostConfig.CapAdd"), "--cap-add"},
		{"--cap-drop ALL", runWith("HostConfig.CapDrop", raw(`["ALL"]`)), ok, ""},
		{"Capabilities (API 1.40)", runWith("HostConfig.Capabilities", raw(`["CAP_SYS_ADMIN"]`)), deny("HostConfig.Capabilities"), "capability set"},
		{"--device /dev/sda", cli(t, "run-device"), deny("HostConfig.Devices"), "--device"},
		{"--gpus all", cli(t, "run-gpus"), deny("HostConfig.DeviceRequests"), "--gpus"},
		{"--device-cgroup-rule", runWith("HostConfig.DeviceCgroupRules", raw(`["c 1:3 mr"]`)), deny("HostConfig.DeviceCgroupRules"), "device cgroup rules"},
		{"seccomp=unconfined apparmor=unconfined", cli(t, "run-unconfined"), deny("HostConfig.SecurityOpt"), `"seccomp=unconfined" turns seccomp off`},
		{"seccomp=profile.json", cli(t, "run-seccomp-profile"), deny("HostConfig.SecurityOpt"), "replaces the seccomp profile"},
		{"systempaths=unconfined", cli(t, "run-systempaths"), deny("HostConfig.MaskedPaths"), "unmasks /proc"},
		{"ReadonlyPaths only", runWith("HostConfig.ReadonlyPaths", raw(`[]`)), deny("HostConfig.ReadonlyPaths"), "/proc/sysrq-trigger"},
		{"--mount type=volume local o=bind device=/etc", cli(t, "run-mount-volume-bind-etc"), deny("HostConfig.Mounts[0].VolumeOptions.DriverConfig"),
			`a local volume binding /etc (o "bind") is not allowed: /etc is /etc, a protected host path`},
		{"--mount type=volume local o=bind type=ext4 device=/etc (the type of a bind is ignored)",
			runWith("HostConfig.Mounts", raw(`[{"Type":"volume","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"ext4","o":"bind","device":"/etc"}}}}]`)),
			deny("HostConfig.Mounts[0].VolumeOptions.DriverConfig"), "binding /etc"},
		{"-v data:/x, an existing volume of someone else", runWith("HostConfig.Binds", []string{"admindata:/x"}), deny("HostConfig.Binds"), `volume "admindata" was created by someone else`},
		{"-v etcvol:/x, one's own volume made from /etc", runWith("HostConfig.Binds", []string{"etcvol:/x"}), deny("HostConfig.Binds"), `volume "etcvol" is a local volume that binding /etc`},
		{"-v mine:/x, one's own volume", runWith("HostConfig.Binds", []string{"mine:/x"}), ok, ""},
		{"-v fresh:/x, a new volume", runWith("HostConfig.Binds", []string{"fresh:/x"}), ok, ""},
		{"--mount src=admindata", runWith("HostConfig.Mounts", raw(`[{"Type":"volume","Source":"admindata","Target":"/x"}]`)), deny("HostConfig.Mounts[0]"), "someone else"},
		{"--log-driver syslog to a host socket", runWith("HostConfig.LogConfig", raw(`{"Type":"syslog","Config":{"syslog-address":"unix:///run/systemd/journal/syslog"}}`)),
			deny("HostConfig.LogConfig.Type"), `log driver "syslog" is not allowed`},
		{"--log-opt max-size", runWith("HostConfig.LogConfig", raw(`{"Type":"json-file","Config":{"max-size":"10m"}}`)), ok, ""},
		{"--log-opt of another driver", runWith("HostConfig.LogConfig", raw(`{"Type":"json-file","Config":{"fluentd-address":"x"}}`)), deny("HostConfig.LogConfig.Config"), "fluentd-address"},
		{"--oom-score-adj -1000", runWith("HostConfig.OomScoreAdj", -1000), deny("HostConfig.OomScoreAdj"), "negative OOM score"},
		{"--oom-score-adj 500", runWith("HostConfig.OomScoreAdj", 500), ok, ""},
		{"-p 8080:80", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}`)), ok, ""},
		{"-p 80 (an ephemeral port)", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostIp":"","HostPort":""}]}`)), ok, ""},
		{"-p 1024:22", runWith("HostConfig.PortBindings", raw(`{"22/tcp":[{"HostPort":"1024"}]}`)), ok, ""},
		{"-p 22:22", runWith("HostConfig.PortBindings", raw(`{"22/tcp":[{"HostIp":"","HostPort":"22"}]}`)), deny("HostConfig.PortBindings"),
			"host port 22 of 22/tcp is below 1024, the host's first unprivileged port"},
		{"-p 127.0.0.1:53:53/udp", runWith("HostConfig.PortBindings", raw(`{"53/udp":[{"HostIp":"127.0.0.1","HostPort":"53"}]}`)), deny("HostConfig.PortBindings"), "below 1024"},
		{"-p 1000-1030:80 (a range from below)", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostPort":"1000-1030"}]}`)), deny("HostConfig.PortBindings"), "host port 1000-1030"},
		{"the second binding of a port", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostPort":"8080"},{"HostPort":"443"}]}`)), deny("HostConfig.PortBindings"), "host port 443"},
		{"hostport in lower case, twice", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"hostport":"8080","HOSTPORT":"80"}]}`)), deny("HostConfig.PortBindings"), "host port 80 "},
		{"a host port dockerd cannot read", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostPort":"+80"}]}`)), deny("HostConfig.PortBindings"), `host port "+80" of 80/tcp: not a port`},
		{"a reversed range", runWith("HostConfig.PortBindings", raw(`{"80/tcp":[{"HostPort":"9000-8000"}]}`)), deny("HostConfig.PortBindings"), "not a port or a range"},
		{"PortBindings at the top level (API < 1.24 reading)", with(t, []byte(`{"Image":"alpine"}`), "PortBindings", raw(`{"22/tcp":[{"HostPort":"22"}]}`)), deny("PortBindings"), "below 1024"},
		{"--pids-limit -1", runWith("HostConfig.PidsLimit", -1), deny("HostConfig.PidsLimit"), "unlimited pids limit"},
		{"--cgroup-parent", runWith("HostConfig.CgroupParent", "/"), deny("HostConfig.CgroupParent"), "cgroup parent"},
		{"--oom-kill-disable", runWith("HostConfig.OomKillDisable", true), deny("HostConfig.OomKillDisable"), "OOM killer"},
		{"--sysctl kernel.*", runWith("HostConfig.Sysctls", raw(`{"kernel.shm_rmid_forced":"1"}`)), deny("HostConfig.Sysctls"), "only net.*"},
		{"--runtime", runWith("HostConfig.Runtime", "runsc-debug"), deny("HostConfig.Runtime"), "only runc"},
		{"--volume-driver", runWith("HostConfig.VolumeDriver", "rexray"), deny("HostConfig.VolumeDriver"), "only the local driver"},
		{"--link adminbox", runWith("HostConfig.Links", []string{"/adminbox:/x/db"}), deny("HostConfig.Links"), "someone else"},
		{"--volumes-from web (own)", runWith("HostConfig.VolumesFrom", []string{"web"}), ok, ""},
		{"an unknown field", runWith("HostConfig.Frobnicate", true), deny("HostConfig.Frobnicate"), "is not a field"},
		{"an unknown top-level field", runWith("Platform", "linux"), deny("Platform"), "is not a field"},
		{"a field in Unicode folding (ſ is s)", []byte(`{"Image":"alpine","HostConfig":{"Privileged":false,"Bindſ":["/:/h"]}}`), deny("HostConfig.Binds"), "whole file system"},
		{"ſ in another field", []byte(`{"Image":"alpine","HostConfig":{"OomKillDiſable":true}}`), deny("HostConfig.OomKillDisable"), "OOM killer"},
		{"--mount type=volume local o=bind device=/home/dev/data",
			runWith("HostConfig.Mounts", raw(`[{"Type":"volume","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/home/dev/data"}}}}]`)), ok, ""},
		{"--mount type=bind,src=/home/dev,bind-propagation=rshared",
			runWith("HostConfig.Mounts", raw(`[{"Type":"bind","Source":"/home/dev","Target":"/x","BindOptions":{"Propagation":"rshared"}}]`)),
			deny("HostConfig.Mounts[0].BindOptions.Propagation"), `propagation "rshared" lets the container's mounts out`},
		{"--mount type=bind,src=/home/dev,bind-propagation=rslave",
			runWith("HostConfig.Mounts", raw(`[{"Type":"bind","Source":"/home/dev","Target":"/x","BindOptions":{"Propagation":"rslave"}}]`)), ok, ""},
		{"-v /home/dev:/ws:rshared", runWith("HostConfig.Binds", []string{"/home/dev:/ws:rshared"}), deny("HostConfig.Binds"), `propagation "rshared"`},
		{"-v /home/dev:/ws:ro,shared", runWith("HostConfig.Binds", []string{"/home/dev:/ws:ro,shared"}), deny("HostConfig.Binds"), `propagation "shared"`},
		{"-v /home/dev:/ws:ro,z", runWith("HostConfig.Binds", []string{"/home/dev:/ws:ro,z"}), ok, ""},
		{"--mount type=BIND,src=/etc", runWith("HostConfig.Mounts", raw(`[{"Type":"BIND","Source":"/etc","Target":"/x"}]`)), deny("HostConfig.Mounts[0]"), "bind mount of /etc"},
		{"--mount type=tmpfs", runWith("HostConfig.Mounts", raw(`[{"Type":"tmpfs","Target":"/tmp"}]`)), ok, ""},
		{"--mount volume-subpath", runWith("HostConfig.Mounts", raw(`[{"Type":"volume","Source":"mine","Target":"/x","VolumeOptions":{"Subpath":"etc"}}]`)),
			deny("HostConfig.Mounts[0].VolumeOptions.Subpath"), "subpath"},
		{"a mount's unknown field", runWith("HostConfig.Mounts", raw(`[{"Type":"tmpfs","Target":"/tmp","Frob":1}]`)), deny("HostConfig.Mounts[0].Frob"), "is not a field"},
		{"--volumes-from other", cli(t, "run-volumes-from"), deny("HostConfig.VolumesFrom"), "someone else"},
		{"--annotation", runWith("HostConfig.Annotations", raw(`{"run.oci.keep_original_groups":"1"}`)), deny("HostConfig.Annotations"), "OCI annotations"},
		{"--sysctl net.*", runWith("HostConfig.Sysctls", raw(`{"net.ipv4.ip_forward":"1"}`)), ok, ""},
		// dockerd 20.10 reads HostConfig's fields at the top level too
		{"top-level Privileged, no HostConfig", []byte(`{"Image":"alpine","Privileged":true}`), deny("Privileged"), "privileged"},
		{"top-level Binds beside HostConfig", []byte(`{"Image":"alpine","Binds":["/:/h"],"HostConfig":{}}`), deny("Binds"), `/ is the host's whole file system`},
		// encoding/json, as dockerd: field names in any case, the last of duplicate keys
		{"lower-case keys", []byte(`{"image":"alpine","hostconfig":{"privileged":true}}`), deny("HostConfig.Privileged"), "privileged"},
		{"duplicate key, last true", []byte(`{"Image":"alpine","HostConfig":{"Privileged":false,"Privileged":true}}`), deny("HostConfig.Privileged"), "privileged"},
		// every occurrence is checked, stricter than the last one dockerd keeps
		{"duplicate key, last false", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true,"Privileged":false}}`), deny("HostConfig.Privileged"), "privileged"},
		{"HostConfig, then null", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true},"HostConfig":null}`), deny("HostConfig.Privileged"), "privileged"},
		{"duplicate HostConfig, last empty", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true},"HostConfig":{}}`), deny("HostConfig.Privileged"), "privileged"},
		// bodies the plugin cannot judge (CVE-2024-41110, moby#39331, moby#36317)
		{"no body", nil, deny("body"), "CVE-2024-41110"},
		{"empty body", []byte{}, deny("body"), "needs its JSON body checked and none came"},
		{"blank body", []byte(" \n"), deny("body"), "needs its JSON body checked and none came"},
		{"null", []byte("null"), deny("body"), "needs a JSON object"},
		{"array", []byte(`[{"Image":"alpine"}]`), deny("body"), "needs a JSON object"},
		{"garbage", []byte(`{"Image":"alpine",`), deny("body"), "not what dockerd reads"},
		{"trailing data", []byte(`{"Image":"alpine"} {"Privileged":true}`), deny("body"), "not what dockerd reads"},
		{"wrong type", []byte(`{"Image":"alpine","HostConfig":{"Privileged":"true"}}`), deny("body"), "not what dockerd reads"},
	}
	for _, b := range []struct {
		bind string
		why  string // "" when allowed
	}{
		{"/var//run/docker.sock:/s", "not a clean absolute path"},
		{"/run/docker.sock:/s:ro", "/run/docker.sock is under /run"},
		{"/var/run/:/x", "is /run, a protected host path"},
		{"/home/alice/../../etc:/x", "not a clean absolute path"},
		{"/etc/./shadow:/s:ro", "not a clean absolute path"},
		{"/root/.ssh:/k", "/root/.ssh is under /root"},
		{"/var/lib/docker:/d", "/var/lib/docker is /var/lib/docker, a protected host path"},
		{"/proc:/p", "/proc is /proc, a protected host path"},
		{"/sys/fs/cgroup:/c", "/sys/fs/cgroup is under /sys"},
		{"/dev:/d", "/dev is /dev, a protected host path"},
		{"/boot:/b", "/boot is /boot, a protected host path"},
		{"/usr/bin:/b", "/usr/bin is /usr/bin"},
		{"/var/spool/cron:/c", "/var/spool/cron is under /var/spool"},
		{"/var:/v", "/var contains /var/lib, a protected host path"},
		{"/home:/h", "/home is not a bind root"},
		{"//:/h", "not a clean absolute path"},
		{"/.:/h", "not a clean absolute path"},
		{"/etc:ro", "/etc is /etc, a protected host path"}, // dockerd: an anonymous volume at /etc; denied all the same
		{"/etcetera:/x", "is not a bind root"},
		{"/running:/x", "is not a bind root"},
		{"/home/alice/src:/src:rw", ""},
		{"/home/alicex:/x", "is not a bind root"},
		{"/home/alice/src/app:/x", "is below the bind root /home/alice/src: only a bind root itself may be mounted"},
		{"/home/bob/src:/x", "is not a bind root"},
		{"/tmp/x:/x", ""},
		{"mine:/x", ""}, // a named volume of alice's
		{"/etc", ""},    // an anonymous volume at /etc in the container
	} {
		rule := ok
		if b.why != "" {
			rule = deny("HostConfig.Binds")
		}
		cases = append(cases, bodyCase{"-v " + b.bind, runWith("HostConfig.Binds", []string{b.bind}), rule, b.why})
	}
	for _, o := range []struct{ opt, why string }{
		{"no-new-privileges", ""},
		{"no-new-privileges=true", ""},
		{"no-new-privileges=false", ""},
		{"no-new-privileges:true", ""},
		{"seccomp=builtin", ""},
		{"apparmor=docker-default", ""},
		{"label=level:s0:c100,c200", ""},
		{"label:level:s0:c100", ""},
		{"writable-cgroups=false", ""},
		{"seccomp=unconfined", "turns seccomp off"},
		{"seccomp:unconfined", "turns seccomp off"},
		{"apparmor=unconfined", "turns AppArmor off"},
		{"apparmor:unconfined", "turns AppArmor off"},
		{"apparmor=chrome", "another AppArmor profile"},
		{"label=disable", "turns SELinux labelling off"},
		{"label:disable", "turns SELinux labelling off"},
		{"disable", "turns SELinux labelling off"},
		{"label=type:spc_t", "SELinux user, role or type"},
		{"systempaths=unconfined", "unmasks /proc"},
		{"writable-cgroups", "writable"},
		{"writable-cgroups=true", "writable"},
		{"SECCOMP=unconfined", "is not a security option dockerd knows"},
		{"bogus", "is not a security option dockerd knows"},
	} {
		rule := ok
		if o.why != "" {
			rule = deny("HostConfig.SecurityOpt")
		}
		cases = append(cases, bodyCase{"--security-opt " + o.opt, runWith("HostConfig.SecurityOpt", []string{o.opt}), rule, o.why})
	}
	runBodyCases(t, create, cases)
}

func TestBodyCreateFields(t *testing.T) {
	p := DefaultPolicy()
	dev := Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}
	d := p.Decide(dev, post("/v1.41/containers/create", cli(t, "run-docker-sock")))
	assert.False(t, d.Allow)
	assert.Equal(t, map[string]any{
		"image":        "alpine",
		"binds":        []string{"/var/run/docker.sock:/var/run/docker.sock"},
		"network_mode": "default",
	}, d.Fields)
	d = p.Decide(dev, post("/v1.41/containers/create", cli(t, "run-privileged")))
	assert.Equal(t, true, d.Fields["privileged"])
	d = p.Decide(dev, post("/v1.41/containers/create", cli(t, "run-alpine")))
	assert.True(t, d.Allow)
	assert.Equal(t, map[string]any{"image": "alpine", "network_mode": "default"}, d.Fields)
}

func TestBodyExec(t *testing.T) {
	const exec = "/v1.41/containers/c1/exec"
	const ok = "developer: POST /containers/{id}/exec"
	plain := cli(t, "exec-plain")
	cases := []bodyCase{
		{"docker exec c1 ls", plain, ok, ""},
		{"docker exec --privileged", cli(t, "exec-privileged"), ok + ": Privileged", "a privileged exec"},
		{"docker exec -u root: one's own container", cli(t, "exec-root"), ok, ""},
		{"no body", nil, ok + ": body", "CVE-2024-41110"},
		{"garbage", []byte("{"), ok + ": body", "not what dockerd reads"},
	}
	runBodyCases(t, exec, cases)
	// Without -u: the container's own user, root in an admin's; by name,
	// ID prefix, or a container nobody the plugin saw created.
	for ref, why := range map[string]string{
		"web":                   "",
		"aaaa":                  "",
		"adminbox":              "was created by someone else",
		strings.Repeat("b", 12): "was created by someone else",
		"other":                 "was created by someone else",
		"legacy":                "created by nobody dtls saw",
		"ghost":                 `no container "ghost"`,
		"privbox":               "is not one this role could create now: a privileged container",
		"etcbox":                "is not one this role could create now: bind mount of /etc",
		"hostnet":               `is not one this role could create now: the "host" network`,
	} {
		rule := ok
		if why != "" {
			rule = ok + ": container"
			if strings.Contains(why, "could create") {
				rule = ok + ": " + map[string]string{"privbox": "Privileged", "etcbox": "Binds", "hostnet": "NetworkMode"}[ref]
			}
		}
		runBodyCases(t, "/v1.41/containers/"+ref+"/exec", []bodyCase{{"exec into " + ref, plain, rule, why}})
	}
}

func TestBodyVolume(t *testing.T) {
	const ok = "developer: POST /volumes/create"
	vol := func(driver string, opts string) []byte {
		return []byte(`{"Name":"v","Driver":"` + driver + `","DriverOpts":` + opts + `}`)
	}
	runBodyCases(t, "/v1.41/volumes/create", []bodyCase{
		{"docker volume create data", cli(t, "volume-plain"), ok, ""},
		{"local, o=bind, device=/etc", cli(t, "volume-bind-etc"), ok + ": DriverOpts",
			`a local volume binding /etc (o "bind") is not allowed: /etc is /etc, a protected host path`},
		{"driver \"\", device=/var/run", vol("", `{"type":"none","o":"bind","device":"/var/run"}`), ok + ": DriverOpts", "is /run, a protected host path"},
		{"o=rbind,ro device=/root/", vol("local", `{"type":"none","o":"ro,rbind","device":"/root/"}`), ok + ": DriverOpts", "/root/ is /root"},
		{"relative device", vol("local", `{"type":"none","o":"bind","device":"etc"}`), ok + ": DriverOpts", "not a clean absolute path"},
		{"option names in capitals", vol("local", `{"TYPE":"none","O":"bind","DEVICE":"/etc"}`), ok + ": DriverOpts", "/etc is /etc"},
		{"bind with another type", vol("local", `{"type":"ext4","o":"bind","device":"/etc"}`), ok + ": DriverOpts", "binding /etc"},
		{"a host disk", vol("local", `{"type":"ext4","device":"/dev/sdb1"}`), ok + ": DriverOpts", "mounts a host device or file system"},
		{"overlay lowerdir=/etc", vol("local", `{"type":"overlay","device":"overlay","o":"lowerdir=/home/x:/etc,upperdir=/tmp/u,workdir=/tmp/w"}`), ok + ": DriverOpts", "mounts a host device"},
		{"an unknown option", vol("local", `{"type":"tmpfs","device":"tmpfs","size":"1g"}`), ok + ": DriverOpts", `option "size"`},
		{"bind of /home/dev/data", vol("local", `{"type":"none","o":"bind","device":"/home/dev/data"}`), ok, ""},
		{"bind of /srv (no bind root)", vol("local", `{"type":"none","o":"bind","device":"/srv"}`), ok + ": DriverOpts", "is not a bind root"},
		{"bind below a root", vol("local", `{"type":"none","o":"bind","device":"/home/dev/data/x"}`), ok + ": DriverOpts", "is below the bind root"},
		{"tmpfs", vol("local", `{"type":"tmpfs","device":"tmpfs","o":"size=100m"}`), ok, ""},
		{"nfs", vol("local", `{"type":"nfs","o":"addr=10.0.0.1,rw","device":":/etc"}`), ok + ": DriverOpts", `type "nfs" (o "addr=10.0.0.1,rw") is a network file system`},
		{"NFS4 in capitals", vol("local", `{"Type":"NFS4","o":"addr=127.0.0.1","device":":/"}`), ok + ": DriverOpts", "admin only"},
		{"cifs with root's credentials file", vol("local", `{"type":"cifs","o":"credentials=/root/.smb","device":"//10.0.0.1/share"}`), ok + ": DriverOpts", "network file system"},
		{"sshfs", vol("local", `{"type":"fuse.sshfs","device":"root@10.0.0.1:/"}`), ok + ": DriverOpts", "network file system"},
		{"nfs without its type", vol("local", `{"o":"addr=10.0.0.1","device":":/export"}`), ok + ": DriverOpts", "mounts a host device or file system"},
		// not a bind to dockerd, which takes a flag by its exact name:
		// a new mount of its type
		{"o=BIND of debugfs", vol("local", `{"type":"debugfs","o":"BIND","device":"/home/dev/data"}`), ok + ": DriverOpts", `of type "debugfs"`},
		{"o=' bind' of debugfs", vol("local", `{"type":"debugfs","o":"ro, bind","device":"/home/dev/data"}`), ok + ": DriverOpts", `of type "debugfs"`},
		{"o=Rbind of nfs", vol("local", `{"type":"nfs","o":"sloppy,Rbind,addr=10.0.0.1","device":"/home/dev/data"}`), ok + ": DriverOpts", "network file system"},
		{"another driver", vol("rexray", `{"device":"/etc"}`), ok + ": Driver", "only the local driver"},
		{"an admin's name: a create would hand it over", []byte(`{"Name":"admindata"}`), ok + ": Name", "exists and was not created by you"},
		{"one's own name again", []byte(`{"Name":"mine"}`), ok, ""},
		{"no body", nil, ok + ": body", "CVE-2024-41110"},
	})
}

func TestBodyNetwork(t *testing.T) {
	const ok = "developer: POST /networks/create"
	bridge := cli(t, "network-bridge")
	runBodyCases(t, "/v1.41/networks/create", []bodyCase{
		{"another's name, CheckDuplicate false", with(t, bridge, "Name", "prodnet", "CheckDuplicate", false), ok + ": Name", `a network named "prodnet" exists already`},
		{"one's own name again", with(t, bridge, "Name", "devnet"), ok + ": Name", "would make the name ambiguous"},
		{"a free name", with(t, bridge, "Name", "newnet"), ok, ""},
		{"--subnet", with(t, bridge, "IPAM.Config", raw(`[{"Subnet":"198.51.100.0/29"}]`)), ok + ": IPAM.Config", "choosing the network's subnet"},
		{"--ipv6", with(t, bridge, "EnableIPv6", true), ok + ": EnableIPv6", "IPv6 forwarding"},
		{"--ipam-driver", with(t, bridge, "IPAM.Driver", "acme"), ok + ": IPAM.Driver", `IPAM driver "acme"`},
		{"--config-from", with(t, bridge, "ConfigFrom", raw(`{"Network":"prodcfg"}`)), ok + ": ConfigFrom", "another's config"},
		{"-o host_binding_ipv4", with(t, bridge, "Options", raw(`{"com.docker.network.bridge.host_binding_ipv4":"10.0.0.1"}`)), ok + ": Options", "is not allowed"},
		{"-o mtu", with(t, bridge, "Options", raw(`{"com.docker.network.driver.mtu":"1400"}`)), ok, ""},
		{"a hex name", with(t, bridge, "Name", "cafe01"), ok + ": Name", "hexadecimal digits only"},
		{"an unknown field", with(t, bridge, "Frob", 1), ok + ": Frob", "is not a field"},
		{"docker network create net1", bridge, ok, ""},
		{"overlay", with(t, bridge, "Driver", "overlay"), ok, ""},
		{"-d macvlan -o parent=eth0", cli(t, "network-macvlan"), ok + ": Driver", `networks of driver "macvlan" are not allowed`},
		{"-d ipvlan", with(t, bridge, "Driver", "ipvlan"), ok + ": Driver", `"ipvlan"`},
		{"an existing host bridge", with(t, bridge, "Options", raw(`{"com.docker.network.bridge.name":"br0"}`)), ok + ": Options", "br0"},
		{"--ingress", with(t, bridge, "Ingress", true), ok + ": Ingress", "ingress network"},
		{"no body", nil, ok + ": body", "CVE-2024-41110"},
	})
}

func TestBodyService(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {
		"deployer": {"base": "developer", "capabilities": ["swarm"]},
		"keeper":   {"base": "deployer", "capabilities": ["secrets"]}}}`))
	require.NoError(t, err)
	p.firstPort = 1024
	plain := cli(t, "service-plain")
	for _, c := range []struct {
		name, role, uri string
		body            []byte
		rule, why       string
	}{
		{"docker service create alpine", "deployer", "/services/create", plain, "deployer: capability swarm: POST /services/create", ""},
		{"update", "deployer", "/services/s1/update?version=3", plain, "deployer: capability swarm: POST /services/{id}/update", ""},
		{"without swarm", RoleDeveloper, "/services/create", plain, "developer: default deny: POST /services/create", "needs the swarm capability"},
		{"--mount /etc --cap-add --network host", "deployer", "/services/create", cli(t, "service-host"),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.CapabilityAdd", "added capabilities"},
		{"--mount type=bind,src=/etc", "deployer", "/services/create",
			with(t, plain, "TaskTemplate.ContainerSpec.Mounts", raw(`[{"Type":"bind","Source":"/etc","Target":"/x"}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Mounts[0]", "/etc is /etc, a protected host path"},
		{"--network host by name", "deployer", "/services/create", with(t, plain, "TaskTemplate.Networks", raw(`[{"Target":"host"}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.Networks", `"host" network`},
		{"seccomp unconfined", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"Seccomp":{"Mode":"unconfined"}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.Seccomp", `"unconfined"`},
		{"apparmor disabled", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"AppArmor":{"Mode":"disabled"}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.AppArmor", `"disabled"`},
		{"selinux disabled", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"SELinuxContext":{"Disable":true}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.SELinuxContext", "SELinux"},
		{"--ulimit rtprio=99", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Ulimits", raw(`[{"Name":"rtprio","Soft":99,"Hard":99}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Ulimits", "real-time scheduling"},
		{"a plugin service", "deployer", "/services/create", with(t, plain, "TaskTemplate.Runtime", "plugin", "TaskTemplate.PluginSpec", raw(`{"Name":"x"}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.Runtime", "managed plugin"},
		{"secrets without the capability", "deployer", "/services/create",
			with(t, plain, "TaskTemplate.ContainerSpec.Secrets", raw(`[{"SecretName":"db","SecretID":"x"}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Secrets", "secrets capability"},
		{"secrets with the capability", "keeper", "/services/create",
			with(t, plain, "TaskTemplate.ContainerSpec.Secrets", raw(`[{"SecretName":"db","SecretID":"x"}]`)),
			"keeper: capability swarm: POST /services/create", ""},
		{"--publish 22:22", "deployer", "/services/create", with(t, plain, "EndpointSpec", raw(`{"Ports":[{"TargetPort":22,"PublishedPort":22,"PublishMode":"ingress"}]}`)),
			"deployer: capability swarm: POST /services/create: EndpointSpec.Ports", "published port 22 is below 1024"},
		{"--publish 8080:80", "deployer", "/services/create", with(t, plain, "EndpointSpec", raw(`{"Ports":[{"TargetPort":80,"PublishedPort":8080}]}`)),
			"deployer: capability swarm: POST /services/create", ""},
		{"no body", "deployer", "/services/create", nil, "deployer: capability swarm: POST /services/create: body", "CVE-2024-41110"},
		{"admin, no body", RoleAdmin, "/services/create", nil, "admin: everything", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(Identity{User: "bob", Role: c.role, Source: SourceTCP}, post("/v1.41"+c.uri, c.body))
			assert.Equal(t, c.rule, d.Rule)
			assert.Equal(t, c.why == "", d.Allow, d.Reason)
			assert.Contains(t, d.Reason, c.why)
		})
	}
}

func TestBodyPullAndStart(t *testing.T) {
	p := DefaultPolicy()
	dev := Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}
	pull := "/v1.41/images/create?fromImage=docker.io%2Flibrary%2Falpine&tag=latest"
	for _, c := range []struct {
		name    string
		uri     string
		headers map[string]string
		rule    string
		why     string
	}{
		// what the docker CLI 28 sends for docker pull alpine
		{"docker pull", pull, map[string]string{"Content-Length": "0"}, "developer: POST /images/create", ""},
		{"import from a URL", "/v1.41/images/create?fromSrc=http%3A%2F%2F169.254.169.254%2Flatest&repo=x", map[string]string{"Content-Length": "0"},
			"developer: POST /images/create: fromSrc", "importing an image"},
		{"import from a tar", "/v1.41/images/create?fromSrc=-&repo=nginx&tag=latest", map[string]string{"Content-Length": "1048576", "Content-Type": "application/x-tar"},
			"developer: POST /images/create: fromSrc", "importing an image"},
		{"a chunked body", pull, map[string]string{}, "developer: POST /images/create: body", "Content-Length: 0"},
		{"a form body", pull, map[string]string{"Content-Length": "22", "Content-Type": "application/x-www-form-urlencoded"},
			"developer: POST /images/create: Content-Type", "form body"},
		{"a multipart form body", pull, map[string]string{"Content-Length": "222", "Content-Type": "Multipart/Form-Data; boundary=x"},
			"developer: POST /images/create: Content-Type", "form body (multipart/form-data)"},
		{"another body", pull, map[string]string{"Content-Length": "22", "Content-Type": "text/plain"},
			"developer: POST /images/create: body", "Content-Length: 0"},
		{"a bad query", "/v1.41/images/create?fromImage=%zz", map[string]string{"Content-Length": "0"}, "developer: POST /images/create: query", "not what dockerd reads"},
		// a pull writes the tags it pulls: not into another identity's
		// namespace (bob owns a container in the book), whatever the
		// registry; into one's own, or one nobody has, yes
		{"a pull into bob's namespace", "/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Fbob%2Fapp&tag=1", map[string]string{"Content-Length": "0"},
			"developer: POST /images/create: fromImage", `the image "127.0.0.1:5000/bob/app" is in the namespace of "bob", another identity`},
		{"bob's namespace on Docker Hub", "/v1.41/images/create?fromImage=bob%2Fapp&tag=1", map[string]string{"Content-Length": "0"},
			"developer: POST /images/create: fromImage", `namespace of "bob"`},
		{"bob's namespace, docker.io spelt out", "/v1.41/images/create?fromImage=docker.io%2Fbob%2Fapp%3A1", map[string]string{"Content-Length": "0"},
			"developer: POST /images/create: fromImage", `namespace of "bob"`},
		{"bob's namespace, every tag", "/v1.41/images/create?fromImage=localhost%2Fbob%2Fapp", map[string]string{"Content-Length": "0"},
			"developer: POST /images/create: fromImage", `namespace of "bob"`},
		{"one's own namespace", "/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Falice%2Fapp&tag=1", map[string]string{"Content-Length": "0"}, "developer: POST /images/create", ""},
		{"a namespace nobody has", "/v1.41/images/create?fromImage=bitnami%2Fnginx&tag=1", map[string]string{"Content-Length": "0"}, "developer: POST /images/create", ""},
		{"a registry without a namespace", "/v1.41/images/create?fromImage=127.0.0.1%3A5000%2Fbob&tag=1", map[string]string{"Content-Length": "0"}, "developer: POST /images/create", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(dev, Request{Method: "POST", URI: c.uri, Headers: c.headers, Env: &Env{Objects: testObjects()}})
			assert.Equal(t, c.rule, d.Rule)
			assert.Equal(t, c.why == "", d.Allow, d.Reason)
			assert.Contains(t, d.Reason, c.why)
		})
	}
	env := &Env{Objects: testObjects()}
	d := p.Decide(dev, Request{Method: "POST", URI: "/v1.41/containers/c1/start", Env: env})
	assert.True(t, d.Allow, d.Reason)
	d = p.Decide(dev, Request{Method: "POST", URI: "/v1.41/containers/c1/start?checkpoint=cp1&checkpoint-dir=/tmp/cp", Env: env})
	assert.False(t, d.Allow)
	assert.Equal(t, "developer: POST /containers/{id}/start: checkpoint", d.Rule)
	assert.Equal(t, map[string]any{"container": "c1", "container_id": "c1" + strings.Repeat("0", 62), "checkpoint": "cp1", "checkpoint_dir": "/tmp/cp"}, d.Fields)
	// Started again later: its bind sources are judged as they resolve now.
	d = p.Decide(dev, Request{Method: "POST", URI: "/v1.41/containers/etcbox/start", Env: env})
	assert.False(t, d.Allow)
	assert.Contains(t, d.Reason, "is not one this role could create now")
}

func TestBodyProtectedPathsAdded(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"protected_paths": ["/srv/secrets/", "/data/docker"], "bind_roots": ["/srv", "/srv/secretsx", "/srv/public", "/data", "/home/alice/code"]}`))
	require.NoError(t, err)
	dev := Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}
	run := cli(t, "run-alpine")
	for bind, allow := range map[string]bool{
		"/srv/secrets:/s":      false,
		"/srv/secrets/db:/s":   false,
		"/data/docker/x:/x":    false,
		"/srv/secretsx:/s":     true,
		"/srv/public:/p":       true,
		"/etc:/e":              false, // the built-in ones stay
		"/home/alice/code:/co": true,
	} {
		r := post("/containers/create", with(t, run, "HostConfig.Binds", []string{bind}))
		r.Env = &Env{CheckRoot: okRoots}
		d := p.Decide(dev, r)
		assert.Equal(t, allow, d.Allow, "%s: %s", bind, d.Reason)
	}
}

func TestBodyAdminIsNotChecked(t *testing.T) {
	p := DefaultPolicy()
	admin := Identity{User: "root", Role: RoleAdmin, Source: SourceTCP}
	for _, body := range [][]byte{nil, {}, []byte("garbage"), cli(t, "run-privileged"), cli(t, "run-docker-sock")} {
		d := p.Decide(admin, post("/v1.41/containers/create", body))
		assert.True(t, d.Allow, "%q", body)
		assert.Equal(t, "admin: everything", d.Rule)
		assert.Nil(t, d.Fields)
	}
	d := p.Decide(admin, post("/v1.41/containers/c1/exec", cli(t, "exec-root")))
	assert.True(t, d.Allow)
}

// TestPortsCapability: a role with the ports capability publishes a host
// port below the first unprivileged one; its base role does not.
func TestPortsCapability(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"roles": {"web": {"base": "developer", "capabilities": ["ports"]}}}`))
	require.NoError(t, err)
	p.firstPort = 1024
	body := with(t, cli(t, "run-alpine"), "HostConfig.PortBindings", raw(`{"443/tcp":[{"HostPort":"443"}]}`))
	for role, allow := range map[string]bool{"web": true, RoleDeveloper: false} {
		r := post("/v1.41/containers/create", body)
		r.Env = &Env{Objects: testObjects(), CheckRoot: okRoots}
		d := p.Decide(Identity{User: "alice", Role: role, Source: SourceTCP}, r)
		assert.Equal(t, allow, d.Allow, "%s: %s", role, d.Reason)
	}
}
