package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

// TestAuditGatewayMode: a TCP listener the enabled gateway serves passes,
// with dockerd on its local socket only; installed but not enabled is a
// WARN (no remote access); dockerd on TCP beside it is a way past it, and
// without TLS a FAIL as in plugin mode. Without the gateway's unit nothing
// changes.
func TestAuditGatewayMode(t *testing.T) {
	now := time.Now()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "none.sock")
	h := newHost(t, now, sock)
	tlsKeys := map[string]any{
		"tlsverify": true,
		"tlscacert": filepath.Join(h.certs, "ca.pem"),
		"tlscert":   filepath.Join(h.certs, "server-cert.pem"),
		"tlskey":    filepath.Join(h.certs, "server-key.pem"),
	}
	local := map[string]any{"hosts": []string{"unix://" + sock}}
	for k, v := range tlsKeys {
		local[k] = v
	}

	// Plugin mode, no plugin: unchanged.
	rep := Run(context.Background(), h.config(now))
	assert.Empty(t, byID(rep, "gateway"))
	requireOne(t, rep, "daemon-authz", Warn, "2.12")

	// Recorded in gateway mode, the unit missing: nothing serves TCP.
	h.writeDaemonJSON(t, local)
	cfg := h.config(now)
	cfg.Gateway = true
	rep = Run(context.Background(), cfg)
	f := requireOne(t, rep, "gateway", Warn, "")
	assert.Contains(t, f.Title, "recorded in gateway mode but dtls-gateway.socket is not installed")

	// The gateway installed, not enabled.
	unit := filepath.Join(h.systemd, gatewaySocketUnit)
	write(t, unit, []byte("[Socket]\nListenStream=127.0.0.1:2376\n[Install]\nWantedBy=sockets.target\n"), 0o644)
	rep = Run(context.Background(), h.config(now))
	f = requireOne(t, rep, "gateway", Warn, "")
	assert.Contains(t, f.Title, "installed but not enabled")
	requireOne(t, rep, "daemon-authz", Warn, "2.12")

	// Enabled.
	wants := filepath.Join(h.systemd, "sockets.target.wants")
	require.NoError(t, os.Mkdir(wants, 0o755))
	require.NoError(t, os.Symlink("../"+gatewaySocketUnit, filepath.Join(wants, gatewaySocketUnit)))
	rep = Run(context.Background(), h.config(now))
	require.False(t, rep.Failed(), failures(rep))
	f = requireOne(t, rep, "gateway", Pass, "2.7")
	assert.Contains(t, f.Title, "TCP 127.0.0.1:2376 is served by the dtls gateway")
	requireOne(t, rep, "daemon-tcp-tls", Pass, "2.7")
	requireOne(t, rep, "daemon-authz", Pass, "2.12")
	assert.Empty(t, byID(rep, "gateway-bypass"))

	// dockerd on TCP beside it, with TLS: a way past the roles.
	beside := map[string]any{"hosts": []string{"unix://" + sock, "tcp://127.0.0.1:2377"}}
	for k, v := range tlsKeys {
		beside[k] = v
	}
	h.writeDaemonJSON(t, beside)
	rep = Run(context.Background(), h.config(now))
	requireOne(t, rep, "gateway-bypass", Warn, "")
	requireOne(t, rep, "daemon-tcp-tls", Pass, "2.7")

	// Without TLS: a FAIL, as always.
	h.writeDaemonJSON(t, map[string]any{"hosts": []string{"unix://" + sock, "tcp://127.0.0.1:2375"}})
	rep = Run(context.Background(), h.config(now))
	assert.True(t, rep.Failed())
	requireOne(t, rep, "daemon-tcp-tls", Fail, "2.7")
	requireOne(t, rep, "gateway-bypass", Warn, "")
}
