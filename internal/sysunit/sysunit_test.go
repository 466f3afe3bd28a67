package sysunit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
)

// TestPackagedUnits: the package holds the units of the issue, each
// service hardened, none of them enabled by anything but an admin, and
// each with the packaged paths.
func TestPackagedUnits(t *testing.T) {
	sys := System()
	assert.Equal(t, []string{"dtls-authz.service", "dtls-authz.socket", "dtls-ca.service", "dtls-gateway.service",
		"dtls-gateway.socket", "dtls-renew.service", "dtls-renew.timer"}, Names(sys))
	assert.Equal(t, []string{"dtls-agent.service"}, Names(UserUnits()))
	for _, n := range Names(sys) {
		u := string(sys[n])
		assert.True(t, strings.HasPrefix(u, "# Installed by the dtls package; installing enabled nothing.\n# Enable: "), n)
		assert.NotContains(t, u, "/usr/local/bin", n)
		if !strings.HasSuffix(n, ".service") {
			continue
		}
		assert.Contains(t, u, "\nExecStart="+Exe+" ", n)
		for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "ProtectHome=",
			"CapabilityBoundingSet=", "RestrictAddressFamilies=", "UMask=0077", "SystemCallArchitectures=native"} {
			assert.Contains(t, u, "\n"+want, "%s: %s", n, want)
		}
	}
	// Root, but with no capability where owner access is enough.
	assert.Contains(t, string(sys[RenewService]), "\nCapabilityBoundingSet=\n")
	// The CA is the one service that needs no root.
	assert.Contains(t, string(sys[cahost.UnitName]), "\nUser=dtls\nGroup=dtls\nStateDirectory=dtls-ca\n")
	assert.NotContains(t, string(sys[authority.AuthzServiceUnit]), "User=")
	// The plugin and the gateway judge host paths (binds, devices, /tmp)
	// as dockerd sees them: no private or empty copy of any.
	for _, n := range []string{authority.AuthzServiceUnit, GatewayServiceUnit} {
		for _, hidden := range []string{"PrivateTmp", "PrivateDevices", "ProtectHome=yes", "TemporaryFileSystem"} {
			assert.NotContains(t, string(authority.UnitSettings(sys[n])), hidden, n)
		}
	}
	assert.Contains(t, string(UserUnits()[AgentUnit]), "\nExecStart=/usr/bin/dtls agent\n")
}

// TestPackagedUnitsAreInits: what init --authz and ca init would write
// with the packaged paths is, setting for setting, what the package
// installs, so that they use the packaged units (authority.PackagedUnit)
// and write no copy; a unit with another setting is not taken for it.
func TestPackagedUnitsAreInits(t *testing.T) {
	dir := t.TempDir()
	for n, u := range System() {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), u, 0o644))
	}
	for n, u := range authority.AuthzUnits(Exe, AuthzSocket, StateDir, AuditLog, "", "") {
		assert.True(t, authority.PackagedUnit(dir, n, u), n)
	}
	assert.True(t, authority.PackagedUnit(dir, cahost.UnitName, CA(Exe, cahost.DefaultStateDir)))
	assert.False(t, authority.PackagedUnit(dir, cahost.UnitName, CA(Exe, "/var/lib/other-ca")))
	assert.False(t, authority.PackagedUnit(dir, cahost.UnitName, CA("/usr/local/bin/dtls", cahost.DefaultStateDir)))
	policy := authority.AuthzUnits(Exe, AuthzSocket, StateDir, AuditLog, ConfigDir+"/authz-policy.json", "")
	assert.False(t, authority.PackagedUnit(dir, authority.AuthzServiceUnit, policy[authority.AuthzServiceUnit]))
	assert.False(t, authority.PackagedUnit("", cahost.UnitName, CA(Exe, cahost.DefaultStateDir)))
}

// TestCAUnitOutsideVarLib: a state directory systemd cannot hand to the
// user (not under /var/lib) keeps the unit ca init writes, as root.
func TestCAUnitOutsideVarLib(t *testing.T) {
	assert.Equal(t, cahost.Unit(Exe, "/srv/ca"), CA(Exe, "/srv/ca"))
	assert.NotContains(t, string(CA(Exe, "/var/lib/a/b")), "User=")
}

// TestExamplesAreTheseUnits: examples/ shows the units of this package
// with /usr/local/bin/dtls ('make install'), byte for byte.
func TestExamplesAreTheseUnits(t *testing.T) {
	const exe = "/usr/local/bin/dtls"
	want := map[string][]byte{"agent/dtls-agent.service": Agent(exe)}
	for n, u := range Renew(exe) {
		want["fleet-host/"+n] = u
	}
	for p, u := range want {
		have, err := os.ReadFile(filepath.Join("..", "..", "examples", p))
		require.NoError(t, err)
		assert.Equal(t, string(u), string(have), "examples/%s: write it from sysunit", p)
	}
}
