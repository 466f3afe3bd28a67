package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// tenantBinary builds a static program that replays, over the Docker
// socket at /var/run/docker.sock, the calls of the tools the tenant roles
// were read from (internal/dockerhost/authz/tenant.go), then what its
// role must not do. It prints one line per call, "CALL STATUS LABEL
// BODY", for the test to judge, and "events open" once its event stream
// is open. "sleep" waits for SIGTERM; "echo" prints its arguments.
func tenantBinary(t *testing.T) string {
	return buildStatic(t, "tenant", `package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const sock = "/var/run/docker.sock"

// version is the API version the tool speaks: the Docker CLI's 1.41
// with dockerd 20.10; watchtower's default is 1.25
// (internal/flags/flags.go, DockerAPIMinVersion).
var version = "v1.41"

var client = &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
	return net.Dial("unix", sock)
}}}

// call sends one request and prints its status; the body comes back.
func call(label, method, path string, body []byte) (int, []byte) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://docker/"+version+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if label == "build" {
			req.Header.Set("Content-Type", "application/x-tar")
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Printf("CALL 0 %s %v\n", label, err)
		return 0, nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	snip := strings.ReplaceAll(string(b), "\n", " ")
	if len(snip) > 400 {
		snip = snip[:400]
	}
	fmt.Printf("CALL %d %s %s\n", resp.StatusCode, label, snip)
	return resp.StatusCode, b
}

func jsonOf(b []byte, v any) { _ = json.Unmarshal(b, v) }

func main() {
	switch os.Args[1] {
	case "sleep":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
	case "echo":
		fmt.Println(strings.Join(os.Args[2:], " "))
	case "proxy":
		proxy()
	case "updater":
		version = "v1.25"
		updater(os.Args[2])
	case "ci":
		ci(os.Args[2])
	}
}

// proxy: traefik's provider (pkg/provider/docker/pdocker.go) and
// docker-gen (internal/generator/generator.go).
func proxy() {
	call("ping", "HEAD", "/_ping", nil)
	call("version", "GET", "/version", nil)
	call("info", "GET", "/info", nil)
	_, b := call("list", "GET", "/containers/json?all=1", nil)
	var list []struct{ ID string }
	jsonOf(b, &list)
	for _, c := range list {
		call("inspect", "GET", "/containers/"+c.ID+"/json", nil)
	}
	call("networks", "GET", "/networks", nil)
	req, _ := http.NewRequest("GET", "http://docker/v1.41/events?filters="+url.QueryEscape(`+"`"+`{"type":["container"]}`+"`"+`), nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println("CALL 0 events", err)
		return
	}
	fmt.Printf("CALL %d events\n", resp.StatusCode)
	fmt.Println("events open")
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	var ev struct{ Type, Action string }
	jsonOf([]byte(line), &ev)
	fmt.Printf("event %s %s\n", ev.Type, ev.Action)
	resp.Body.Close()
	call("create", "POST", "/containers/create", []byte(`+"`"+`{"Image":"tenant:1","Cmd":["/tenant","echo"],"HostConfig":{"NetworkMode":"none"}}`+"`"+`))
	call("exec", "POST", "/containers/"+list[0].ID+"/exec", []byte(`+"`"+`{"Cmd":["/tenant","echo"]}`+"`"+`))
	call("kill", "POST", "/containers/"+list[0].ID+"/kill", nil)
}

// updater: watchtower's update of one container (pkg/container/client.go:
// ListContainers, GetContainer, PullImage, StopContainer, StartContainer,
// RemoveImageByID).
func updater(target string) {
	call("ping", "GET", "/_ping", nil)
	call("version", "GET", "/version", nil)
	_, b := call("list", "GET", "/containers/json?filters="+url.QueryEscape(`+"`"+`{"status":["running"]}`+"`"+`), nil)
	var list []struct{ ID string; Names []string }
	jsonOf(b, &list)
	var inspect map[string]json.RawMessage
	var id string
	for _, c := range list {
		_, b := call("inspect", "GET", "/containers/"+c.ID+"/json", nil)
		if len(c.Names) > 0 && c.Names[0] == "/"+target {
			jsonOf(b, &inspect)
			id = c.ID
		}
	}
	if id == "" {
		fmt.Println("no container", target)
		os.Exit(1)
	}
	var image string
	jsonOf(inspect["Image"], &image)
	call("image", "GET", "/images/"+image+"/json", nil)
	// A registry that is not there: what matters is that dockerd is
	// asked (not 403), not that the pull succeeds.
	call("pull", "POST", "/images/create?fromImage="+url.QueryEscape("127.0.0.1:1/tenant")+"&tag=2", nil)
	call("kill", "POST", "/containers/"+id+"/kill?signal=SIGTERM", nil)
	for i := 0; i < 200; i++ {
		_, b := call("wait-inspect", "GET", "/containers/"+id+"/json", nil)
		var st struct{ State struct{ Running bool } }
		jsonOf(b, &st)
		if !st.State.Running {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	call("remove", "DELETE", "/containers/"+id+"?force=1", nil)
	// The copy: the old Config at the top, its HostConfig as inspect
	// gave it, one of its networks (watchtower's StartContainer).
	var config map[string]json.RawMessage
	jsonOf(inspect["Config"], &config)
	config["HostConfig"] = inspect["HostConfig"]
	var settings struct{ Networks map[string]json.RawMessage }
	jsonOf(inspect["NetworkSettings"], &settings)
	one := map[string]json.RawMessage{}
	for k, v := range settings.Networks {
		one[k] = v
		break
	}
	config["NetworkingConfig"], _ = json.Marshal(map[string]any{"EndpointsConfig": one})
	body, _ := json.Marshal(config)
	var name string
	jsonOf(inspect["Name"], &name)
	_, b = call("recreate", "POST", "/containers/create?name="+strings.TrimPrefix(name, "/"), body)
	var created struct{ Id string }
	jsonOf(b, &created)
	// Every network but host's: disconnect from the one the create
	// named, connect to all (watchtower, docker/docker#29265).
	for k := range one {
		dis, _ := json.Marshal(map[string]any{"Container": created.Id, "Force": true})
		call("net-disconnect", "POST", "/networks/"+k+"/disconnect", dis)
	}
	for k, v := range settings.Networks {
		con, _ := json.Marshal(map[string]any{"Container": created.Id, "EndpointConfig": v})
		call("net-connect", "POST", "/networks/"+k+"/connect", con)
	}
	call("start", "POST", "/containers/"+created.Id+"/start", nil)
	call("cleanup", "DELETE", "/images/"+image+"?force=1", nil)

	priv, _ := json.Marshal(map[string]any{"Image": "tenant:1", "HostConfig": map[string]any{"Privileged": true, "NetworkMode": "none"}})
	call("create-privileged", "POST", "/containers/create", priv)
	bind, _ := json.Marshal(map[string]any{"Image": "tenant:1", "HostConfig": map[string]any{"Binds": []string{"/etc:/host-etc"}, "NetworkMode": "none"}})
	call("create-bind", "POST", "/containers/create", bind)
	call("kill-privileged", "POST", "/containers/privbox/kill", nil)
	call("remove-volume-holder", "DELETE", "/containers/dbbox?force=1", nil)
	call("exec", "POST", "/containers/"+created.Id+"/exec", []byte(`+"`"+`{"Cmd":["/tenant","echo"]}`+"`"+`))
}

// ci: gitlab-runner's docker executor running one job (executors/docker:
// docker.go, internal/exec/exec.go, internal/wait/wait.go, the volume and
// pull managers), then a job's 'docker build'.
func ci(other string) {
	call("ping", "GET", "/_ping", nil)
	call("info", "GET", "/info", nil)
	call("version", "GET", "/version", nil)
	call("image", "GET", "/images/tenant:1/json", nil)
	// The helper image: inspect, then the runner's prebuilt tar
	// (internal/prebuilt/prebuilt.go: ImageLoad or ImageImportBlocking),
	// then, when that fails, a pull (docker.go, getHelperImage).
	call("helper-inspect", "GET", "/images/"+url.PathEscape("registry.example/gitlab-runner-helper:x86_64-v1")+"/json", nil)
	call("helper-load", "POST", "/images/load?quiet=1", []byte("{}"))
	call("helper-import", "POST", "/images/create?fromSrc=-&repo="+url.QueryEscape("registry.example/gitlab-runner-helper")+"&tag=x86_64-v1", nil)
	call("pull", "POST", "/images/create?fromImage="+url.QueryEscape("127.0.0.1:1/helper")+"&tag=x", nil)
	call("volume", "POST", "/volumes/create", []byte(`+"`"+`{"Name":"ci-cache-1"}`+"`"+`))
	job, _ := json.Marshal(map[string]any{"Image": "tenant:1", "Cmd": []string{"/tenant", "echo", "job", "done"},
		"AttachStdout": true, "AttachStderr": true,
		"HostConfig": map[string]any{"Binds": []string{"ci-cache-1:/cache"}, "NetworkMode": "none", "RestartPolicy": map[string]string{"Name": "no"}}})
	_, b := call("create", "POST", "/containers/create?name=ci-job-1", job)
	var created struct{ Id string }
	jsonOf(b, &created)
	// ContainerAttach hijacks the connection before ContainerStart.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Println("CALL 0 attach", err)
		return
	}
	fmt.Fprintf(conn, "POST /v1.41/containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n", created.Id)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		fmt.Println("CALL 0 attach", err)
		return
	}
	fmt.Printf("CALL %d attach\n", resp.StatusCode)
	call("start", "POST", "/containers/"+created.Id+"/start", nil)
	out, _ := io.ReadAll(br)
	conn.Close()
	fmt.Printf("attached output %q\n", out)
	call("wait", "POST", "/containers/"+created.Id+"/wait?condition=not-running", nil)
	call("inspect", "GET", "/containers/"+created.Id+"/json", nil)
	call("logs", "GET", "/containers/"+created.Id+"/logs?stdout=1&stderr=1", nil)
	var ctx bytes.Buffer
	tw := tar.NewWriter(&ctx)
	df := []byte("FROM tenant:1\nLABEL ci=built\n")
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
	tw.Write(df)
	tw.Close()
	call("build", "POST", "/build", ctx.Bytes())
	call("remove", "DELETE", "/containers/"+created.Id+"?v=1&force=1", nil)
	call("volume-remove", "DELETE", "/volumes/ci-cache-1", nil)

	priv, _ := json.Marshal(map[string]any{"Image": "tenant:1", "HostConfig": map[string]any{"Privileged": true, "NetworkMode": "none"}})
	call("create-privileged", "POST", "/containers/create", priv)
	host, _ := json.Marshal(map[string]any{"Image": "tenant:1", "HostConfig": map[string]any{"NetworkMode": "host"}})
	call("create-host-network", "POST", "/containers/create", host)
	call("exec-other", "POST", "/containers/"+other+"/exec", []byte(`+"`"+`{"Cmd":["/tenant","echo"]}`+"`"+`))
}
`)
}

// tenantCalls reads the tenant program's "CALL STATUS LABEL BODY" lines:
// each label's statuses, in order, and the bodies of its answers.
func tenantCalls(out string) (map[string][]int, map[string]string) {
	status, body := map[string][]int{}, map[string]string{}
	re := regexp.MustCompile(`(?m)^CALL (\d+) (\S+) ?(.*)$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		var n int
		fmt.Sscan(m[1], &n)
		status[m[2]] = append(status[m[2]], n)
		body[m[2]] = m[3]
	}
	return status, body
}

// checkTenantCalls asserts that each label of allowed got a 2xx answer
// (or, for those of reached, any answer from dockerd but 403), and each
// of refused a 403 naming the socket and its role.
func checkTenantCalls(t *testing.T, out, name, role string, allowed, reached, refused []string) {
	t.Helper()
	status, body := tenantCalls(out)
	for _, l := range allowed {
		if assert.NotEmpty(t, status[l], "%s: no call %q in:\n%s", name, l, out) {
			for _, s := range status[l] {
				assert.Equal(t, 2, s/100, "%s: %s answered %d: %s", name, l, s, body[l])
			}
		}
	}
	for _, l := range reached {
		if assert.NotEmpty(t, status[l], "%s: no call %q in:\n%s", name, l, out) {
			assert.NotContains(t, []int{0, 403}, status[l][0], "%s: %s: %s", name, l, body[l])
		}
	}
	for _, l := range refused {
		if assert.NotEmpty(t, status[l], "%s: no call %q in:\n%s", name, l, out) {
			assert.Equal(t, 403, status[l][0], "%s: %s: %s", name, l, body[l])
			assert.Contains(t, body[l], "socket:"+name+" (role "+role+")")
		}
	}
}

// tenantAudit checks that the audit trail has name's calls under its
// socket, with its role, and that each method and path of allowed was
// allowed and each of denied denied.
func tenantAudit(t *testing.T, h *gatewayHost, name, role, path string, allowed, denied []string) {
	t.Helper()
	want := len(allowed) + len(denied)
	var seen map[string]string
	localRecords(t, h.Audit, "socket:"+name, func(r authz.AuditRecord) bool {
		if r.Phase != authz.PhaseRequest {
			return false
		}
		assert.Equal(t, path, r.Socket)
		assert.Equal(t, role, r.Role)
		if seen == nil {
			seen = map[string]string{}
		}
		seen[r.Method+" "+r.Path] = r.Decision
		n := 0
		for _, k := range allowed {
			if seen[k] == authz.DecisionAllow {
				n++
			}
		}
		for _, k := range denied {
			if seen[k] == authz.DecisionDeny {
				n++
			}
		}
		return n == want
	})
}

// TestGatewayTenantRolesWithRealDocker: the built-in tenant roles, each on
// a per-container socket made by 'dtls gateway socket add NAME --role
// ROLE' with no role in the policy file, against a real dockerd. In a
// container that mounts the socket at /var/run/docker.sock, a program
// replays the calls its tool makes (read from traefik's, docker-gen's,
// watchtower's and gitlab-runner's source): each is allowed, the proxy
// reads an event from the stream, the updater replaces a container it did
// not create, the CI runner attaches to, runs, waits for and removes its
// job and builds an image. What the role must not do is refused with 403
// naming the socket; every call is in the audit trail as socket:NAME.
func TestGatewayTenantRolesWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	d, ctx := h.Daemon, context.Background()
	socketsDir := filepath.Join(h.Dir, "sockets")
	root := []string{"DOCKER_HOST=unix://" + d.Socket}
	importImage(t, d, "tenant:1", map[string]string{"tenant": tenantBinary(t)})
	require.NoError(t, d.TinyImage(ctx, "tiny:1"))
	paths := map[string]string{}
	for _, s := range [][2]string{{"traefik", "proxy"}, {"watchtower", "updater"}, {"runner", "ci-runner"}} {
		out, stderr, code := h.dtls(t, "gateway", "socket", "add", s[0], "--role", s[1], "--policy", h.Policy,
			"--state-dir", h.State, "--sockets-dir", socketsDir)
		require.Equal(t, 0, code, stderr)
		paths[s[0]] = filepath.Join(socketsDir, s[0]+".sock")
		assert.Equal(t, "-v "+paths[s[0]]+":/var/run/docker.sock\n", out)
	}
	for _, p := range paths {
		waitFor(t, 10*time.Second, "the socket "+p, func() bool { _, err := os.Lstat(p); return err == nil })
	}
	// Containers the tenants did not create: made over dockerd's own
	// socket, so the owners' book knows no owner.
	out, err := runDocker(t, h.docker, root, "run", "-d", "--name", "web", "--network", "none", "--label", "traefik.enable=true",
		"tenant:1", "/tenant", "sleep")
	require.NoError(t, err, out)
	out, err = runDocker(t, h.docker, root, "create", "--name", "privbox", "--privileged", "--network", "none", "tiny:1", "/x")
	require.NoError(t, err, out)
	// A container with a volume the updater does not own: its copy
	// would hand the updater that data.
	out, err = runDocker(t, h.docker, root, "create", "--name", "dbbox", "-v", "dbdata:/data", "--network", "none", "tiny:1", "/x")
	require.NoError(t, err, out)
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := runDocker(t, h.docker, root, append([]string{"run", "--rm", "--network", "none",
			"-v", paths[name] + ":/var/run/docker.sock", "tenant:1", "/tenant"}, args...)...)
		require.NoError(t, err, out)
		return out
	}

	t.Run("proxy", func(t *testing.T) {
		id, err := runDocker(t, h.docker, root, "run", "-d", "--network", "none", "-v", paths["traefik"]+":/var/run/docker.sock",
			"tenant:1", "/tenant", "proxy")
		require.NoError(t, err, id)
		id = strings.TrimSpace(id)
		logs := func() string { out, _ := runDocker(t, h.docker, root, "logs", id); return out }
		waitFor(t, 30*time.Second, "the proxy's event stream", func() bool { return strings.Contains(logs(), "events open") })
		out, err := runDocker(t, h.docker, root, "create", "--name", "event-maker", "--network", "none", "tiny:1", "/x")
		require.NoError(t, err, out)
		out, err = runDocker(t, h.docker, root, "wait", id)
		require.NoError(t, err, out)
		out = logs()
		assert.Contains(t, out, "event container create")
		checkTenantCalls(t, out, "traefik", "proxy",
			[]string{"ping", "version", "info", "list", "inspect", "networks", "events"}, nil,
			[]string{"create", "exec", "kill"})
		assert.GreaterOrEqual(t, len(regexp.MustCompile(`(?m)^CALL 200 inspect`).FindAllString(out, -1)), 3,
			"the proxy inspects every container, whoever made it: %s", out)
		tenantAudit(t, h, "traefik", "proxy", paths["traefik"],
			[]string{"HEAD /_ping", "GET /containers/json", "GET /events"}, []string{"POST /containers/create"})
	})

	t.Run("updater", func(t *testing.T) {
		before, err := runDocker(t, h.docker, root, "inspect", "-f", "{{.Id}}", "web")
		require.NoError(t, err, before)
		out := run("watchtower", "updater", "web")
		replay := out
		checkTenantCalls(t, out, "watchtower", "updater",
			[]string{"ping", "version", "list", "inspect", "image", "kill", "remove", "recreate", "net-disconnect", "net-connect", "start"},
			[]string{"pull"},
			[]string{"cleanup", "create-privileged", "create-bind", "kill-privileged", "remove-volume-holder", "exec"})
		after, err := runDocker(t, h.docker, root, "inspect", "-f", "{{.Id}} {{.State.Running}} {{index .Config.Labels \"traefik.enable\"}}", "web")
		require.NoError(t, err, after)
		assert.NotEqual(t, strings.TrimSpace(before), strings.Fields(after)[0], "web was not replaced")
		assert.Equal(t, "true true", strings.Join(strings.Fields(after)[1:], " "), "the copy runs with the old labels")
		out, err = runDocker(t, h.docker, root, "inspect", "-f", "{{.State.Status}}", "privbox")
		require.NoError(t, err, out)
		assert.Equal(t, "created", strings.TrimSpace(out), "the refused kill left privbox alone")
		_, body := tenantCalls(replay)
		assert.Contains(t, body["remove-volume-holder"], `volume \"dbdata\" was created by nobody dtls saw`)
		tenantAudit(t, h, "watchtower", "updater", paths["watchtower"],
			[]string{"POST /containers/create", "POST /images/create"}, []string{"POST /containers/privbox/kill"})
	})

	t.Run("ci-runner", func(t *testing.T) {
		out := run("runner", "ci", "privbox")
		checkTenantCalls(t, out, "runner", "ci-runner",
			[]string{"ping", "info", "version", "image", "volume", "create", "start", "wait", "inspect", "logs", "build", "remove", "volume-remove"},
			[]string{"helper-inspect", "pull", "attach"},
			[]string{"helper-load", "helper-import", "create-privileged", "create-host-network", "exec-other"})
		assert.Contains(t, out, "CALL 101 attach")
		assert.Contains(t, out, "job done", "the attached stream carries the job's output")
		assert.Contains(t, out, `"aux":{"ID":"sha256:`, "the build made an image")
		tenantAudit(t, h, "runner", "ci-runner", paths["runner"],
			[]string{"POST /build", "POST /containers/create"}, []string{"POST /containers/privbox/exec"})
	})
}
