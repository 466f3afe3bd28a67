package authority

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/daemonconfig"
)

// The authorization plugin's systemd units (init --authz).
const (
	AuthzSocketUnit  = "dtls-authz.socket"
	AuthzServiceUnit = "dtls-authz.service"
	// AuthzDockerDropIn orders docker.service after the plugin's socket:
	// dockerd asks the plugin about its first API call, and refuses to
	// start when it cannot reach it (about 15 s of retries: moby
	// pkg/plugins/client.go).
	AuthzDockerDropIn = "dtls-authz.conf"
)

// AuthzUnits are the systemd units of the plugin. The socket is
// socket-activated, so that API calls wait (instead of failing) while the
// plugin restarts; the service reads the inventory (it needs the state
// directory's -shm file writable for SQLite's WAL) and writes the audit
// log, and nothing else. It is given daemon.json when it is not the
// default: the plugin refuses to start when dockerd listens on TCP without
// tlsverify.
func AuthzUnits(exe, socket, stateDir, auditLog, policy, daemonJSON string) map[string][]byte {
	args := []string{exe, "authz", "serve", "--state-dir", stateDir, "--audit-log", auditLog}
	if policy != "" {
		args = append(args, "--policy", policy)
	}
	if daemonJSON != "" && daemonJSON != DefaultDaemonJSON {
		args = append(args, "--daemon-json", daemonJSON)
	}
	return map[string][]byte{
		AuthzSocketUnit: []byte(`# Written by dtls init --authz.
[Unit]
Description=dtls authorization plugin socket (for dockerd)
Before=docker.service

[Socket]
ListenStream=` + socket + `
SocketMode=0600

[Install]
WantedBy=sockets.target
`),
		AuthzServiceUnit: []byte(`# Written by dtls init --authz.
[Unit]
Description=dtls authorization plugin for dockerd
Requires=` + AuthzSocketUnit + `
After=` + AuthzSocketUnit + `
Before=docker.service

[Service]
ExecStart=` + strings.Join(args, " ") + `
Restart=always
NoNewPrivileges=yes
ProtectSystem=strict
# The plugin judges host paths as dockerd will mount them: it must see the
# host's /home, /root and /tmp as they are (read-only), never an empty or
# private copy where a link it cannot follow looks harmless.
ProtectHome=read-only
ReadWritePaths=` + stateDir + ` ` + filepath.Dir(auditLog) + `
` + logsDirectory(auditLog) + `UMask=0077
# Every record goes to the journal too (stdout): journald's default rate
# limit (10,000 lines in 30 s) dropped most of a flood, so the copy held
# nothing of it; a caller's denials are counted beyond a burst, so the
# lines stay bounded (found by a red team).
LogRateLimitIntervalSec=0
# Root for the state directory (0700) and to resolve any host path a
# container asks to mount, as dockerd will (CAP_DAC_READ_SEARCH); no other
# capability. It keeps no /tmp of its own: /tmp is a host path it judges.
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
# AF_UNIX for dockerd and journald, AF_INET(6) for the online CA's
# revocation list (--ca-url).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
# No PrivateDevices: a device a container asks for is a host path too.
# The rest as the gateway's unit, which runs the same engine.
AmbientCapabilities=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`),
	}
}

// AuthzDockerDropInContent makes docker.service want the plugin's socket
// and start after it.
var AuthzDockerDropInContent = []byte(`# Written by dtls init --authz: dockerd asks the authorization plugin
# about every API call, and must find its socket at start.
[Unit]
Wants=` + AuthzSocketUnit + `
After=` + AuthzSocketUnit + `
`)

// ProbeAuthz asks the plugin at socket to activate, as dockerd does
// (POST /Plugin.Activate), and checks that it implements "authz".
func ProbeAuthz(socket string, timeout time.Duration) error {
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	resp, err := c.Post("http://plugin/Plugin.Activate", "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(nil))
	if err != nil {
		return fmt.Errorf("authorization plugin at %s does not answer: %w", socket, err)
	}
	defer resp.Body.Close()
	var v struct{ Implements []string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("authorization plugin at %s: unexpected answer (HTTP %d)", socket, resp.StatusCode)
	}
	for _, i := range v.Implements {
		if i == "authz" {
			return nil
		}
	}
	return fmt.Errorf("authorization plugin at %s does not implement authz (it implements %v)", socket, v.Implements)
}

// authzPluginName is the plugin's name in daemon.json: the socket's base
// name without ".sock" (moby pkg/plugins/discovery.go).
func authzPluginName(socket string) string {
	return strings.TrimSuffix(filepath.Base(socket), ".sock")
}

func fileHas(path string, data []byte) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Equal(b, data)
}

// logsDirectory has systemd make the audit log's directory under
// /var/log (ReadWritePaths needs it to exist before the service starts),
// root's only.
func logsDirectory(auditLog string) string {
	rel, ok := strings.CutPrefix(filepath.Dir(auditLog), "/var/log/")
	if !ok || rel == "" {
		return ""
	}
	return "LogsDirectory=" + rel + "\nLogsDirectoryMode=0700\n"
}

// AuthzEnforced reports whether the daemon.json at daemonJSON names the
// authorization plugin whose socket is socket ('dtls authz serve', put
// there by 'dtls init --authz' once it answers): only then are roles
// enforced and a revoked certificate refused at its next call, since
// dockerd itself checks no CRL (moby#27778). dockerd reads the list only at
// start: a plugin named since then is enforced after its restart.
func AuthzEnforced(daemonJSON, socket string) (bool, error) {
	names, err := daemonconfig.AuthorizationPlugins(daemonJSON)
	if err != nil {
		return false, err
	}
	want := authzPluginName(socket)
	for _, n := range names {
		if n == want {
			return true, nil
		}
	}
	return false, nil
}
