package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
)

// debianTool finds a program of Debian's that scripts/deps.sh installs
// (docker-compose v1, /usr/bin/python3 with python3-docker); outside CI a
// test without it is skipped, in CI it fails.
func debianTool(t *testing.T, path string, probe ...string) string {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	if out, err := exec.Command(path, probe...).CombinedOutput(); err != nil {
		stop("%s %s: %v: %s (scripts/deps.sh installs it: apt-get install -y docker-compose)", path, strings.Join(probe, " "), err, out)
	}
	return path
}

// dockerPyScript lists containers, runs an allowed container and reads
// its logs, runs a command in another (exec_run) and sends stdin through
// an exec's hijacked socket, and runs a privileged one, through the gateway with
// docker-py: API version negotiation ("auto": GET /version first) and
// verified mutual TLS from a bundle, as its documentation shows. It prints
// one JSON object of what happened.
const dockerPyScript = `
import json, socket, sys
import docker
port, bundle = sys.argv[1], sys.argv[2]
tls = docker.tls.TLSConfig(client_cert=(bundle + '/cert.pem', bundle + '/key.pem'), ca_cert=bundle + '/ca.pem', verify=True)
c = docker.DockerClient(base_url='tcp://127.0.0.1:' + port, tls=tls, version='auto')
out = {'version': c.api.api_version}
out['listed'] = [x.name for x in c.containers.list(all=True)]
ct = c.containers.run('tool:1', ['/t', 'tty'], name='pyrun', detach=True)
out['exit'] = ct.wait()['StatusCode']
out['logs'] = ct.logs().decode()
ct.remove()
box = c.containers.run('tool:1', ['/t', 'sleep'], name='pybox', detach=True)
out['exec'] = box.exec_run(['/t', 'tty']).output.decode()
# stdin through the hijacked stream: docker-py's own socket
ex = c.api.exec_create(box.id, ['/t', 'cat'], stdin=True, stdout=True, stderr=True)
sock = c.api.exec_start(ex['Id'], socket=True)
# Over TLS it is the ssl socket itself (a half-close would drop TLS):
# read until the echoed line is whole.
raw = sock._sock if isinstance(sock, socket.SocketIO) else sock
raw.settimeout(20)
raw.sendall(b'through docker-py\n')
got, payload = b'', b''
while not payload.endswith(b'\n'):
    b = raw.recv(65536)
    if not b:
        break
    got += b
    while len(got) >= 8 and len(got) >= 8 + int.from_bytes(got[4:8], 'big'):
        n = int.from_bytes(got[4:8], 'big')
        payload, got = payload + got[8:8 + n], got[8 + n:]
raw.close()
out['stdin_echo'] = payload.decode()
box.remove(force=True)
try:
    c.containers.run('tool:1', ['/t', 'tty'], name='pypriv', privileged=True, detach=True)
    out['privileged'] = 'allowed'
except docker.errors.APIError as e:
    out['privileged'] = {'status': e.status_code, 'explanation': e.explanation}
print(json.dumps(out))
`

// TestGatewayDockerPy: docker-py (Debian's python3-docker) through the
// gateway with a developer's bundle: it negotiates the API version, lists
// containers, runs a container and reads its logs, runs exec_run and
// echoes stdin through an exec's socket (its own hijack: 'Upgrade: tcp',
// then the raw stream), and is refused a privileged container with the
// gateway's message (APIError 403).
func TestGatewayDockerPy(t *testing.T) {
	t.Parallel()
	python := debianTool(t, "/usr/bin/python3", "-c", "import docker")
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	out, err := h.as(t, "dev", "create", "--name", "before", "tool:1", "/t", "sleep")
	require.NoError(t, err, out)

	script := filepath.Join(t.TempDir(), "gw.py")
	require.NoError(t, os.WriteFile(script, []byte(dockerPyScript), 0o644))
	cmd := exec.Command(python, script, strconv.Itoa(h.Port), filepath.Join(h.Bundles, "dev"))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	var got struct {
		Version    string
		Listed     []string
		Exit       int
		Logs       string
		Exec       string
		StdinEcho  string `json:"stdin_echo"`
		Privileged struct {
			Status      int
			Explanation string
		}
	}
	require.NoError(t, json.Unmarshal(b, &got), "%s", b)
	assert.NotEmpty(t, got.Version)
	assert.Contains(t, got.Listed, "before")
	assert.Equal(t, 0, got.Exit)
	assert.Equal(t, "tty=false\ngot \n", got.Logs)
	assert.Equal(t, "tty=false\ngot \n", got.Exec)
	assert.Equal(t, "through docker-py\n", got.StdinEcho)
	assert.Equal(t, 403, got.Privileged.Status, "%s", b)
	assert.Contains(t, got.Privileged.Explanation, "authorization denied by dtls-gateway")
	assert.Contains(t, got.Privileged.Explanation, "privileged")
	// Nothing of the privileged run reached dockerd.
	_, err = runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, "inspect", "pypriv")
	assert.Error(t, err, "the privileged container exists")
}

// TestGatewayComposeV1: Debian's docker-compose (v1, on docker-py) with
// DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH of a developer's
// bundle brings a service up and down through the gateway, runs a one-off
// container attached to it, and is refused a privileged service with the
// gateway's message.
func TestGatewayComposeV1(t *testing.T) {
	t.Parallel()
	compose := debianTool(t, "/usr/bin/docker-compose", "version")
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	dir := t.TempDir()
	run := func(project, file string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(compose, append([]string{"--ansi", "never", "-p", project, "-f", file}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, h.env("dev")...)
		start := time.Now()
		b, err := cmd.CombinedOutput()
		t.Logf("docker-compose %s: %v", strings.Join(args, " "), time.Since(start))
		return string(b), err
	}
	write := func(name, extra string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("version: \"2.4\"\nservices:\n  app:\n    image: tool:1\n    command: [\"/t\", \"sleep\"]\n%s", extra)), 0o644))
		return p
	}

	ok := write("ok.yml", "")
	out, err := run("gwok", ok, "up", "-d")
	require.NoError(t, err, out)
	ps, err := runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, "ps", "--format", "{{.Names}}")
	require.NoError(t, err, ps)
	assert.Contains(t, ps, "gwok_app_1")
	out, err = run("gwok", ok, "ps")
	require.NoError(t, err, out)
	assert.Contains(t, out, "gwok_app_1")
	// run: a one-off container, attached (docker-py's hijacked attach).
	out, err = run("gwok", ok, "run", "--rm", "-T", "app", "/t", "tty")
	require.NoError(t, err, out)
	assert.Contains(t, out, "tty=false\ngot \n")
	out, err = run("gwok", ok, "down")
	require.NoError(t, err, out)
	ps, err = runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, "ps", "-a", "--format", "{{.Names}}")
	require.NoError(t, err, ps)
	assert.NotContains(t, ps, "gwok_app_1")
	// Compose's default network went through the gateway too, both ways.
	seen := map[string]bool{}
	for _, r := range readTrail(t, h.Audit) {
		if r.Phase == "request" {
			seen[r.Decision+" "+r.Method+" "+r.Path] = true
		}
	}
	assert.True(t, seen["allow POST /networks/create"], "compose's network create is not in the trail")
	assert.True(t, seen["allow DELETE /networks/gwok_default"], "compose's network removal is not in the trail")

	priv := write("priv.yml", "    privileged: true\n")
	out, err = run("gwpriv", priv, "up", "-d")
	require.Error(t, err, out)
	assert.Contains(t, out, "authorization denied by dtls-gateway")
	assert.Contains(t, out, "privileged")
	ps, err = runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, "ps", "-a", "--format", "{{.Names}}")
	require.NoError(t, err, ps)
	assert.NotContains(t, ps, "gwpriv_app_1")
	out, err = run("gwpriv", priv, "down")
	require.NoError(t, err, out)
}

// TestGatewayAttachWebsocket: 'GET /containers/{id}/attach/ws', a
// websocket (RFC 6455) client's attach, goes through the gateway as one
// stream: dockerd's 101 with its Sec-WebSocket-Accept reaches the client,
// a masked frame of stdin reaches the container, and cat's echo comes
// back in a frame; another holder is refused the attach. The gateway
// cannot record a websocket's stream: by default it refuses an attach/ws
// with stdin (503, as a stream whose recording fails); this runs through
// a second gateway with --sessions-on-failure continue, which lets it go
// on with an audit record saying so.
func TestGatewayAttachWebsocket(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	h.issue(t, "bob", "developer")
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	out, err := h.as(t, "dev", "run", "-d", "-i", "--name", "att", "tool:1", "/t", "cat")
	require.NoError(t, err, out)
	// The key and its accept value of RFC 6455 section 1.3.
	req := "GET /v1.41/containers/att/attach/ws?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: http://localhost\r\n\r\n"
	assert.Equal(t, []int{http.StatusForbidden}, h.rawExchange(t, "bob", req, 1), "bob attached to dev's container")
	assert.Equal(t, []int{http.StatusServiceUnavailable}, h.rawExchange(t, "dev", req, 1), "an unrecorded interactive attach/ws went on")
	h = secondGateway(t, h, "--sessions-on-failure", "continue", "--audit-log", filepath.Join(h.Dir, "continue.log"))

	c, err := tlsDial(h, t, "dev")
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", resp.Header.Get("Sec-WebSocket-Accept"))

	// A client's frame: FIN and opcode, the mask bit and length, the key,
	// the masked payload.
	payload, key := []byte("through a websocket\n"), []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, key...)
	for i, b := range payload {
		frame = append(frame, b^key[i%4])
	}
	_, err = c.Write(frame)
	require.NoError(t, err)
	// dockerd's frames are not masked; read until the line is whole.
	var got []byte
	for !bytes.HasSuffix(got, []byte("\n")) {
		head := make([]byte, 2)
		_, err := io.ReadFull(br, head)
		require.NoError(t, err, "after %q", got)
		n := int(head[1] & 0x7f)
		require.Less(t, n, 126, "a long frame")
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		require.NoError(t, err)
		got = append(got, b...)
	}
	assert.Equal(t, string(payload), string(got))
	recs, err := authz.ReadAudit(filepath.Join(h.Dir, "continue.log"), authz.AuditFilter{User: "dev"})
	require.NoError(t, err)
	found := false
	for _, r := range recs {
		found = found || r.Rule == gateway.RuleRecording && strings.Contains(r.Reason, "the stream goes on unrecorded")
	}
	assert.True(t, found, "no audit record says the websocket attach went on unrecorded")
}
