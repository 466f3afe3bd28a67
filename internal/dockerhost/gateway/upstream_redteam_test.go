package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// startGatewayMaxBody is startGateway with the gateway's default bound on
// bodies (4 MiB) instead of the tests' 64 KiB.
func startGatewayMaxBody(t *testing.T, maxBody int64) *testGateway {
	t.Helper()
	return startGatewayWith(t, authz.ModeEnforce, maxBody)
}

// containers counts the test dockerd's containers, asked directly.
func containers(t *testing.T, tg *testGateway) int {
	t.Helper()
	resp, err := tg.d.Client().Get("http://docker/containers/json?all=1")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	return strings.Count(string(b), `"Id"`)
}

// TestRedteamCreateNotSentTwice: dockerd 20.10 decodes a create's JSON
// and leaves what follows it unread (runconfig decodeContainerConfig, one
// json.Decoder.Decode); with over 256 KiB left (net/http's
// maxPostHandlerReadBytes) it answers 201, shuts the connection down and
// never reads the rest, so the gateway's write of the body's tail fails.
// dockerd acted on the request: it must not be sent again on another
// connection (a second container), and the caller gets dockerd's answer.
func TestRedteamCreateNotSentTwice(t *testing.T) {
	t.Parallel()
	tg := startGatewayMaxBody(t, DefaultMaxBody)
	require.NoError(t, tg.d.TinyImage(t.Context(), "tiny:1"))
	// A kept-alive connection to dockerd in the gateway's pool: the
	// create goes on a reused one.
	rs := tg.raw(t, "admin-1", "GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n", 1)
	require.Len(t, rs, 1)
	require.Equal(t, http.StatusOK, rs[0].StatusCode)
	body := `{"Image":"tiny:1","Cmd":["x"]}` + strings.Repeat(" ", 3<<20)
	req := fmt.Sprintf("POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	rs = tg.raw(t, "admin-1", req, 1)
	require.Len(t, rs, 1)
	b, _ := io.ReadAll(rs[0].Body)
	assert.Equal(t, 1, containers(t, tg), "containers created by one request")
	assert.Equal(t, http.StatusCreated, rs[0].StatusCode, "%s", b)
}
