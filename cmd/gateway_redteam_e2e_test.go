package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
)

// TestGatewayRedteamWebsocketInput: the holder of a role whose input the
// policy records ("record_input") attaches to a shell of theirs over a
// websocket (GET /containers/{id}/attach/ws?stdin=1), which the gateway
// cannot record: what they type would reach the container unrecorded,
// 'docker attach' refused nothing it records. With the gateway's
// default (--sessions-on-failure refuse) the websocket attach with stdin
// is refused, with an audit record saying why. Without stdin it would be
// output only, as logs, but dockerd reads the query's stdin only from API
// 1.42 on (before, stdin is attached whatever the query says), and
// dockerd 20.10 speaks 1.41: "stdin=0" on a 1.41 path, or on a path
// without a version, is refused as well (an attacker helper typed into
// carl's shell that way, unrecorded). (Every role's: the gateway records
// every interactive session's output, TestGatewayAttachWebsocket.)
func TestGatewayRedteamWebsocketInput(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly", "roles": {"contractor": {"base": "developer", "record_input": true}}}`+"\n"), 0o644))
	h.issue(t, "carl", "contractor", "--policy", h.Policy)
	importImage(t, h.Daemon, "tool:1", map[string]string{"t": toolBinary(t)})
	waitFor(t, 10*time.Second, "carl runs a container", func() bool {
		_, err := h.as(t, "carl", "run", "-d", "-i", "--name", "carlsh", "tool:1", "/t", "cat")
		return err == nil
	})
	wsAt := func(version, query string) string {
		return "GET " + version + "/containers/carlsh/attach/ws?" + query + " HTTP/1.1\r\nHost: docker\r\n" +
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
			"Origin: http://localhost\r\n\r\n"
	}
	ws := func(query string) string { return wsAt("/v1.41", query) }
	for _, q := range []string{"stream=1&stdin=1&stdout=1", "stream=1&stdin=true&stdout=1", "stdin=yes&stream=1&stdin=0", "stream=1&stdout=1&stdin=0"} {
		assert.Equal(t, []int{http.StatusServiceUnavailable}, h.rawExchange(t, "carl", ws(q), 1), "carl's websocket attach with stdin (%s) went on unrecorded", q)
	}
	assert.Equal(t, []int{http.StatusServiceUnavailable}, h.rawExchange(t, "carl", wsAt("", "stream=1&stdout=1&stdin=0"), 1), "an attach without a version, stdin=0, went on unrecorded")
	// On 1.42 the query says: the gateway lets it through, and dockerd
	// 20.10, which speaks 1.41, refuses the version.
	assert.Equal(t, []int{http.StatusBadRequest}, h.rawExchange(t, "carl", wsAt("/v1.42", "stream=1&stdout=1&stdin=0"), 1), "a 1.42 attach without stdin")
	recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "carl"})
	require.NoError(t, err)
	n := 0
	for _, r := range recs {
		if r.Rule == gateway.RuleRecording && r.Path == "/containers/carlsh/attach/ws" && strings.Contains(r.Reason, "cannot be recorded") {
			n++
		}
	}
	assert.Equal(t, 5, n, "the refusals' audit records")
}

// containerSocketCallName is the name the test binary answers to when it
// makes one call to a gateway's per-container socket (TestMain).
const containerSocketCallName = "dtls-test-socket-call"

// socketCall sends one request to the gateway's per-container socket at
// path and returns the status and body, from a process in a PID namespace
// of its own, as a container's process calls it: the gateway refuses a
// host process there. The test binary does it, run again under
// containerSocketCallName.
func socketCall(t *testing.T, path, method, uri string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := &exec.Cmd{Path: self, Args: []string{containerSocketCallName, path, method, uri}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	status, body, ok := strings.Cut(string(out), " ")
	require.True(t, ok, "%q", out)
	n, err := strconv.Atoi(status)
	require.NoError(t, err, "%q", out)
	return n, body
}

// containerSocketCallMain is socketCall's process: PATH METHOD URI as its
// arguments; it prints the answer's status, a space and its body.
func containerSocketCallMain() {
	path, method, uri := os.Args[1], os.Args[2], os.Args[3]
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, uri)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
	os.Exit(0)
}

// TestGatewayRedteamUpdaterLive: containers made over dockerd's own
// socket that the updater could not create, though their HostConfig's
// checked fields are harmless: --security-opt systempaths=unconfined
// (dockerd reports empty MaskedPaths and ReadonlyPaths: /proc/sys
// writable), a device cgroup rule, a cgroup parent. The updater
// (socket:wt) is refused their start and removal, as the README says
// ("only when it could create that container as it is now"); a plain
// container of the same image it may remove.
func TestGatewayRedteamUpdaterLive(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	d := h.Daemon
	root := []string{"DOCKER_HOST=unix://" + d.Socket}
	require.NoError(t, d.TinyImage(context.Background(), "tiny:1"))
	socketsDir := filepath.Join(h.Dir, "sockets")
	_, stderr, code := h.dtls(t, "gateway", "socket", "add", "wt", "--role", "updater", "--policy", h.Policy,
		"--state-dir", h.State, "--sockets-dir", socketsDir)
	require.Equal(t, 0, code, stderr)
	sock := filepath.Join(socketsDir, "wt.sock")
	waitFor(t, 10*time.Second, "the socket "+sock, func() bool { _, err := os.Lstat(sock); return err == nil })
	for name, opts := range map[string][]string{
		"unconf":   {"--security-opt", "systempaths=unconfined"},
		"devrule":  {"--device-cgroup-rule", "b *:* rwm"},
		"cgparent": {"--cgroup-parent", "/dtls-redteam"},
		"plainbox": nil,
	} {
		args := append(append([]string{"create", "--name", name, "--network", "none"}, opts...), "tiny:1", "/x")
		out, err := runDocker(t, h.docker, root, args...)
		require.NoError(t, err, out)
	}
	for _, tt := range []struct{ name, field string }{{"unconf", "MaskedPaths"}, {"devrule", "DeviceCgroupRules"}, {"cgparent", "CgroupParent"}} {
		for _, m := range [][2]string{{"POST", "/v1.41/containers/" + tt.name + "/start"}, {"DELETE", "/v1.41/containers/" + tt.name + "?force=1"}} {
			status, body := socketCall(t, sock, m[0], m[1])
			assert.Equal(t, http.StatusForbidden, status, "%s %s: %s", m[0], m[1], body)
			assert.Contains(t, body, ": "+tt.field+")", "%s %s", m[0], m[1])
		}
		out, err := runDocker(t, h.docker, root, "inspect", "-f", "{{.State.Status}}", tt.name)
		require.NoError(t, err, out)
		assert.Equal(t, "created", strings.TrimSpace(out), "%s was touched", tt.name)
	}
	status, body := socketCall(t, sock, "DELETE", "/v1.41/containers/plainbox?force=1")
	assert.Equal(t, http.StatusNoContent, status, body)
}
