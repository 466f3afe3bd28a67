package authz

import (
	"os"
	"path/filepath"
	"strconv"
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

type bodyCase struct {
	name string
	body []byte
	rule string // the whole rule: allowed when it has no check suffix
	why  string // part of the reason of a denial
}

// runBodyCases decides each body for developer at uri.
func runBodyCases(t *testing.T, uri string, cases []bodyCase) {
	t.Helper()
	p := DefaultPolicy()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP}, post(uri, c.body))
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
			"bind mount of /var/run/docker.sock (-v /var/run/docker.sock:/var/run/docker.sock) is not allowed: /var/run/docker.sock is under /var/run, a protected host path"},
		{"-v /:/host", cli(t, "run-root-fs"), deny("HostConfig.Binds"), `"/" is the host's whole file system`},
		{"-v /etc/:/x", cli(t, "run-etc-slash"), deny("HostConfig.Binds"), "/etc is a protected host path"},
		{"--mount type=bind,src=/run,dst=/x", cli(t, "run-mount-bind-run"), deny("HostConfig.Mounts[0]"), "bind mount of /run"},
		{"--pid host --network host --ipc host --uts host --userns host", cli(t, "run-host-namespaces"), deny("HostConfig.PidMode"), "PID namespace"},
		{"--pid host", runWith("HostConfig.PidMode", "host"), deny("HostConfig.PidMode"), "--pid host"},
		{"--network host", runWith("HostConfig.NetworkMode", "host"), deny("HostConfig.NetworkMode"), "--network host"},
		{"--ipc host", runWith("HostConfig.IpcMode", "host"), deny("HostConfig.IpcMode"), "--ipc host"},
		{"--uts host", runWith("HostConfig.UTSMode", "host"), deny("HostConfig.UTSMode"), "--uts host"},
		{"--userns host", runWith("HostConfig.UsernsMode", "host"), deny("HostConfig.UsernsMode"), "--userns host"},
		{"NetworkMode HOST", runWith("HostConfig.NetworkMode", "HOST"), deny("HostConfig.NetworkMode"), "--network host"},
		{"--network container:web --pid container:web", cli(t, "run-container-namespaces"), ok, ""},
		{"--ipc shareable --cgroupns host", runWith("HostConfig.IpcMode", "shareable", "HostConfig.CgroupnsMode", "host"), ok, ""},
		{"the host network in NetworkingConfig", runWith("NetworkingConfig.EndpointsConfig.host", raw(`{}`)), deny("NetworkingConfig.EndpointsConfig"), `the "host" network`},
		{"--cap-add SYS_ADMIN", cli(t, "run-cap-add"), deny("HostConfig.CapAdd"), "--cap-add CAP_SYS_ADMIN"},
		{"--cap-add ALL", runWith("HostConfig.CapAdd", raw(`["ALL"]`)), deny("HostConfig.CapAdd"), "--cap-add ALL"},
		{"CapAdd as a string (moby strslice)", runWith("HostConfig.CapAdd", "SYS_ADMIN"), deny("HostConfig.CapAdd"), "--cap-add SYS_ADMIN"},
		{"--cap-drop ALL", runWith("HostConfig.CapDrop", raw(`["ALL"]`)), ok, ""},
		{"Capabilities (API 1.40)", runWith("HostConfig.Capabilities", raw(`["CAP_SYS_ADMIN"]`)), deny("HostConfig.Capabilities"), "capability set"},
		{"--device /dev/sda", cli(t, "run-device"), deny("HostConfig.Devices"), "--device /dev/sda"},
		{"--gpus all", cli(t, "run-gpus"), deny("HostConfig.DeviceRequests"), "--gpus"},
		{"--device-cgroup-rule", runWith("HostConfig.DeviceCgroupRules", raw(`["c 1:3 mr"]`)), deny("HostConfig.DeviceCgroupRules"), "device cgroup rules"},
		{"seccomp=unconfined apparmor=unconfined", cli(t, "run-unconfined"), deny("HostConfig.SecurityOpt"), `"seccomp=unconfined" turns seccomp off`},
		{"seccomp=profile.json", cli(t, "run-seccomp-profile"), deny("HostConfig.SecurityOpt"), "replaces the seccomp profile"},
		{"systempaths=unconfined", cli(t, "run-systempaths"), deny("HostConfig.MaskedPaths"), "unmasks /proc"},
		{"ReadonlyPaths only", runWith("HostConfig.ReadonlyPaths", raw(`[]`)), deny("HostConfig.ReadonlyPaths"), "/proc/sysrq-trigger"},
		{"--mount type=volume local o=bind device=/etc", cli(t, "run-mount-volume-bind-etc"), deny("HostConfig.Mounts[0].VolumeOptions.DriverConfig"),
			`a local volume of device /etc (type "none", o "bind") is not allowed: /etc is a protected host path`},
		{"--mount type=volume local o=bind device=/home/dev/data",
			runWith("HostConfig.Mounts", raw(`[{"Type":"volume","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/home/dev/data"}}}}]`)), ok, ""},
		{"--mount type=bind,src=/home/dev,bind-propagation=rshared",
			runWith("HostConfig.Mounts", raw(`[{"Type":"bind","Source":"/home/dev","Target":"/x","BindOptions":{"Propagation":"rshared"}}]`)), ok, ""},
		{"--mount type=BIND,src=/etc", runWith("HostConfig.Mounts", raw(`[{"Type":"BIND","Source":"/etc","Target":"/x"}]`)), deny("HostConfig.Mounts[0]"), "bind mount of /etc"},
		{"--mount type=tmpfs", runWith("HostConfig.Mounts", raw(`[{"Type":"tmpfs","Target":"/tmp"}]`)), ok, ""},
		{"--volumes-from other", cli(t, "run-volumes-from"), deny("HostConfig.VolumesFrom"), "--volumes-from"},
		{"--annotation", runWith("HostConfig.Annotations", raw(`{"run.oci.keep_original_groups":"1"}`)), deny("HostConfig.Annotations"), "OCI annotations"},
		{"--sysctl, --cgroup-parent, --oom-kill-disable",
			runWith("HostConfig.Sysctls", raw(`{"net.ipv4.ip_forward":"1"}`), "HostConfig.CgroupParent", "/ci", "HostConfig.OomKillDisable", true), ok, ""},
		// dockerd 20.10 reads HostConfig's fields at the top level too
		{"top-level Privileged, no HostConfig", []byte(`{"Image":"alpine","Privileged":true}`), deny("Privileged"), "privileged"},
		{"top-level Binds beside HostConfig", []byte(`{"Image":"alpine","Binds":["/:/h"],"HostConfig":{}}`), deny("Binds"), `"/" is the host's whole file system`},
		// encoding/json, as dockerd: field names in any case, the last of duplicate keys
		{"lower-case keys", []byte(`{"image":"alpine","hostconfig":{"privileged":true}}`), deny("HostConfig.Privileged"), "privileged"},
		{"duplicate key, last true", []byte(`{"Image":"alpine","HostConfig":{"Privileged":false,"Privileged":true}}`), deny("HostConfig.Privileged"), "privileged"},
		{"duplicate key, last false", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true,"Privileged":false}}`), ok, ""},
		// a second object decodes into the same struct: it merges, in dockerd too
		{"HostConfig, then null", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true},"HostConfig":null}`), ok, ""},
		{"duplicate HostConfig, last empty", []byte(`{"Image":"alpine","HostConfig":{"Privileged":true},"HostConfig":{}}`), deny("HostConfig.Privileged"), "privileged"},
		// bodies the plugin cannot judge (CVE-2024-41110, moby#39331, moby#36317)
		{"no body", nil, deny("body"), "CVE-2024-41110"},
		{"empty body", []byte{}, deny("body"), "the plugin got none"},
		{"blank body", []byte(" \n"), deny("body"), "the plugin got none"},
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
		{"/var//run/docker.sock:/s", "/var/run/docker.sock is under /var/run"},
		{"/run/docker.sock:/s:ro", "/run/docker.sock is under /run"},
		{"/var/run/:/x", "/var/run is a protected host path"},
		{"/home/alice/../../etc:/x", "/etc is a protected host path"},
		{"/etc/./shadow:/s:ro", "/etc/shadow is under /etc"},
		{"/root/.ssh:/k", "/root/.ssh is under /root"},
		{"/var/lib/docker:/d", "/var/lib/docker is a protected host path"},
		{"/proc:/p", "/proc is a protected host path"},
		{"/sys/fs/cgroup:/c", "/sys/fs/cgroup is under /sys"},
		{"/dev:/d", "/dev is a protected host path"},
		{"/boot:/b", "/boot is a protected host path"},
		{"/usr/bin:/b", "/usr/bin is under /usr"},
		{"/var/spool/cron:/c", "/var/spool/cron is under /var/spool"},
		{"//:/h", `"/" is the host's whole file system`},
		{"/.:/h", `"/" is the host's whole file system`},
		{"/etc:ro", "/etc is a protected host path"}, // dockerd: an anonymous volume at /etc; denied all the same
		{"/etcetera:/x", ""},
		{"/running:/x", ""},
		{"/home/alice/src:/src:rw", ""},
		{"/tmp/x:/x", ""},
		{"etc:/x", ""}, // a named volume
		{"/etc", ""},   // an anonymous volume at /etc in the container
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
		{"docker exec -u root", cli(t, "exec-root"), ok + ": User", "docker exec -u root"},
		{"no body", nil, ok + ": body", "CVE-2024-41110"},
		{"garbage", []byte("{"), ok + ": body", "not what dockerd reads"},
	}
	for user, root := range map[string]bool{
		"0": true, "0:0": true, "root:root": true, "0:1000": true, "root:wheel": true, "00": true, " root": true, "ROOT": true,
		"1000": false, "1000:0": false, ":0": false, "nobody": false, "app:app": false, "rooty": false, "10": false,
	} {
		c := bodyCase{"-u " + user, with(t, plain, "User", user), ok, ""}
		if root {
			c.rule, c.why = ok+": User", "an exec as root"
		}
		cases = append(cases, c)
	}
	runBodyCases(t, exec, cases)
}

func TestBodyVolume(t *testing.T) {
	const ok = "developer: POST /volumes/create"
	vol := func(driver string, opts string) []byte {
		return []byte(`{"Name":"v","Driver":"` + driver + `","DriverOpts":` + opts + `}`)
	}
	runBodyCases(t, "/v1.41/volumes/create", []bodyCase{
		{"docker volume create data", cli(t, "volume-plain"), ok, ""},
		{"local, o=bind, device=/etc", cli(t, "volume-bind-etc"), ok + ": DriverOpts",
			`a local volume of device /etc (type "none", o "bind") is not allowed: /etc is a protected host path`},
		{"driver \"\", device=/var/run", vol("", `{"type":"none","o":"bind","device":"/var/run"}`), ok + ": DriverOpts", "/var/run is a protected host path"},
		{"o=rbind,ro device=/root/", vol("local", `{"type":"none","o":"ro,rbind","device":"/root/"}`), ok + ": DriverOpts", "/root is a protected host path"},
		{"relative device", vol("local", `{"type":"none","o":"bind","device":"etc"}`), ok + ": DriverOpts", "/etc is a protected host path"},
		{"option names in capitals", vol("local", `{"TYPE":"none","O":"bind","DEVICE":"/etc"}`), ok + ": DriverOpts", "/etc is a protected host path"},
		{"a host disk", vol("local", `{"type":"ext4","device":"/dev/sdb1"}`), ok + ": DriverOpts", "/dev/sdb1 is under /dev"},
		{"overlay lowerdir=/etc", vol("local", `{"type":"overlay","device":"overlay","o":"lowerdir=/home/x:/etc,upperdir=/tmp/u,workdir=/tmp/w"}`), ok + ": DriverOpts", "/etc (o "},
		{"bind of /home/dev/data", vol("local", `{"type":"none","o":"bind","device":"/home/dev/data"}`), ok, ""},
		{"tmpfs", vol("local", `{"type":"tmpfs","device":"tmpfs","o":"size=100m"}`), ok, ""},
		{"nfs", vol("local", `{"type":"nfs","o":"addr=10.0.0.1,rw","device":":/etc"}`), ok, ""},
		{"another driver", vol("rexray", `{"device":"/etc"}`), ok, ""},
		{"no body", nil, ok + ": body", "CVE-2024-41110"},
	})
}

func TestBodyNetwork(t *testing.T) {
	const ok = "developer: POST /networks/create"
	bridge := cli(t, "network-bridge")
	runBodyCases(t, "/v1.41/networks/create", []bodyCase{
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
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Mounts[0]", "/etc is a protected host path"},
		{"--network host by name", "deployer", "/services/create", with(t, plain, "TaskTemplate.Networks", raw(`[{"Target":"host"}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.Networks", `"host" network`},
		{"seccomp unconfined", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"Seccomp":{"Mode":"unconfined"}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.Seccomp", `"unconfined"`},
		{"apparmor disabled", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"AppArmor":{"Mode":"disabled"}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.AppArmor", `"disabled"`},
		{"selinux disabled", "deployer", "/services/create", with(t, plain, "TaskTemplate.ContainerSpec.Privileges", raw(`{"SELinuxContext":{"Disable":true}}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Privileges.SELinuxContext", "SELinux"},
		{"a plugin service", "deployer", "/services/create", with(t, plain, "TaskTemplate.Runtime", "plugin", "TaskTemplate.PluginSpec", raw(`{"Name":"x"}`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.Runtime", "managed plugin"},
		{"secrets without the capability", "deployer", "/services/create",
			with(t, plain, "TaskTemplate.ContainerSpec.Secrets", raw(`[{"SecretName":"db","SecretID":"x"}]`)),
			"deployer: capability swarm: POST /services/create: TaskTemplate.ContainerSpec.Secrets", "secrets capability"},
		{"secrets with the capability", "keeper", "/services/create",
			with(t, plain, "TaskTemplate.ContainerSpec.Secrets", raw(`[{"SecretName":"db","SecretID":"x"}]`)),
			"keeper: capability swarm: POST /services/create", ""},
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
			"developer: POST /images/create: body", "form body"},
		{"a bad query", "/v1.41/images/create?fromImage=%zz", map[string]string{"Content-Length": "0"}, "developer: POST /images/create: query", "not what dockerd reads"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(dev, Request{Method: "POST", URI: c.uri, Headers: c.headers})
			assert.Equal(t, c.rule, d.Rule)
			assert.Equal(t, c.why == "", d.Allow, d.Reason)
			assert.Contains(t, d.Reason, c.why)
		})
	}
	d := p.Decide(dev, Request{Method: "POST", URI: "/v1.41/containers/c1/start"})
	assert.True(t, d.Allow, d.Reason)
	d = p.Decide(dev, Request{Method: "POST", URI: "/v1.41/containers/c1/start?checkpoint=cp1&checkpoint-dir=/tmp/cp"})
	assert.False(t, d.Allow)
	assert.Equal(t, "developer: POST /containers/{id}/start: checkpoint", d.Rule)
	assert.Equal(t, map[string]any{"checkpoint": "cp1", "checkpoint_dir": "/tmp/cp"}, d.Fields)
}

func TestBodyProtectedPathsAdded(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"protected_paths": ["/srv/secrets/", "/data/docker"]}`))
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
		d := p.Decide(dev, post("/containers/create", with(t, run, "HostConfig.Binds", []string{bind})))
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
