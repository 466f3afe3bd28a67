package cmd

import (
	"net/http"
	"os"
	"strings"
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
// is refused, with an audit record saying why; without stdin it goes on
// (output only, as logs), and so does developer's (its input is not
// recorded, TestGatewayAttachWebsocket).
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
	ws := func(query string) string {
		return "GET /v1.41/containers/carlsh/attach/ws?" + query + " HTTP/1.1\r\nHost: docker\r\n" +
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
			"Origin: http://localhost\r\n\r\n"
	}
	for _, q := range []string{"stream=1&stdin=1&stdout=1", "stream=1&stdin=true&stdout=1", "stdin=yes&stream=1&stdin=0"} {
		assert.Equal(t, []int{http.StatusServiceUnavailable}, h.rawExchange(t, "carl", ws(q), 1), "carl's websocket attach with stdin (%s) went on unrecorded", q)
	}
	assert.Equal(t, []int{http.StatusSwitchingProtocols}, h.rawExchange(t, "carl", ws("stream=1&stdout=1&stdin=0"), 1), "an attach without stdin is refused")
	recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "carl"})
	require.NoError(t, err)
	n := 0
	for _, r := range recs {
		if r.Rule == gateway.RuleRecording && r.Path == "/containers/carlsh/attach/ws" && strings.Contains(r.Reason, "cannot be recorded") {
			n++
		}
	}
	assert.Equal(t, 3, n, "the refusals' audit records")
}
