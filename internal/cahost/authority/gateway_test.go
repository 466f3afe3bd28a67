package authority

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListenStream(t *testing.T) {
	for _, tc := range []struct{ listen, want, err string }{
		{"tcp://0.0.0.0:2376", "2376", ""},
		{"tcp://[::]:2376", "2376", ""},
		{"tcp://127.0.0.1:12376", "127.0.0.1:12376", ""},
		{"tcp://[2001:db8::1]:2376", "[2001:db8::1]:2376", ""},
		{"tcp://docker.example.com:2376", "", `--listen "tcp://docker.example.com:2376" names a host, not an address`},
		{"unix:///run/x.sock", "", "unix"},
	} {
		got, err := ListenStream(tc.listen)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.listen)
			continue
		}
		require.NoError(t, err, tc.listen)
		assert.Equal(t, tc.want, got, tc.listen)
	}
}

// TestGatewayUnitsVerify has systemd check the units init --gateway
// writes, as it would load them (systemd-analyze verify: unknown
// directives, bad values, a missing ExecStart binary, the socket without
// its service). Only outside CI may it skip where systemd-analyze is
// missing: scripts/deps.sh installs it (Debian's package systemd).
func TestGatewayUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found: scripts/deps.sh installs it (package systemd)")
		}
		t.Skip("systemd-analyze not found")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		c    GatewayUnitConfig
	}{
		{"host", GatewayUnitConfig{Listen: "tcp://0.0.0.0:2376", Docker: "unix:///var/run/docker.sock",
			StateDir: "/var/lib/dtls", CertsDir: "/etc/docker/certs", AuditLog: "/var/log/dtls/gateway.log"}},
		{"fleet with policy", GatewayUnitConfig{Listen: "tcp://10.0.0.5:2376", Docker: "unix:///run/docker.sock",
			StateDir: "/var/lib/dtls", CertsDir: "/etc/docker/certs", AuditLog: "/srv/audit/gateway.log",
			Policy: "/etc/dtls/authz-policy.json", CAURL: "https://ca.example.com:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Exe = exe
			units, err := GatewayUnits(tc.c)
			require.NoError(t, err)
			dir := t.TempDir()
			var paths []string
			for n, b := range units {
				p := filepath.Join(dir, n)
				require.NoError(t, os.WriteFile(p, b, 0o644))
				paths = append(paths, p)
			}
			// Offline: no running systemd is asked; the units' directory
			// is searched for the socket's service.
			cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...)
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				// Lines about units of the host it cannot see (docker.service,
				// sockets.target in a container) are not about these.
				if l != "" && strings.Contains(l, "dtls-gateway") {
					t.Errorf("systemd-analyze: %s", l)
				}
			}
			svc := string(units[GatewayServiceUnit])
			if tc.c.CAURL != "" {
				assert.Contains(t, svc, "--ca-url "+tc.c.CAURL)
			}
			assert.Contains(t, svc, "ReadWritePaths=/var/lib/dtls "+filepath.Dir(tc.c.AuditLog)+"\n")
		})
	}
}

// The gateway judges host paths with the plugin's engine: whatever its
// own paths, it sees the host's /home, /root, /tmp and /dev as dockerd
// does (read-only), never a private or empty copy, and holds no
// capability but CAP_DAC_READ_SEARCH, as the plugin's unit.
func TestGatewayUnitsSeeHostPaths(t *testing.T) {
	for _, c := range []GatewayUnitConfig{
		{Exe: "/usr/bin/dtls", Listen: "tcp://0.0.0.0:2376", Docker: "unix:///var/run/docker.sock",
			StateDir: "/home/ops/dtls", CertsDir: "/tmp/certs", AuditLog: "/var/log/dtls/gateway.log"},
		{Exe: "/usr/bin/dtls", Listen: "tcp://0.0.0.0:2376", Docker: "unix:///var/run/docker.sock",
			StateDir: "/var/lib/dtls", CertsDir: "/etc/docker/certs", AuditLog: "/var/log/dtls/gateway.log"},
	} {
		units, err := GatewayUnits(c)
		require.NoError(t, err)
		svc := string(units[GatewayServiceUnit])
		assert.Contains(t, svc, "\nProtectHome=read-only\n")
		assert.NotContains(t, svc, "PrivateTmp=yes")
		assert.NotContains(t, svc, "PrivateDevices=yes")
		assert.Contains(t, svc, "\nCapabilityBoundingSet=CAP_DAC_READ_SEARCH\n")
		plugin := string(AuthzUnits(c.Exe, "/run/docker/plugins/dtls-authz.sock", c.StateDir, c.AuditLog, "", "")[AuthzServiceUnit])
		for _, l := range []string{"ProtectHome=read-only", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
			assert.Contains(t, plugin, "\n"+l+"\n", "the plugin's unit and the gateway's agree on %s", l)
		}
	}
}
