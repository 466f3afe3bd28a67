package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
	"github.com/dtls-tool/dtls/internal/sysunit"
)

// TestInitAuthzUsesPackagedUnits: with the dtls package's units in
// --packaged-unit-dir, 'dtls init --authz' writes no copy of them to the
// systemd directory (a copy there would shadow the packaged unit and keep
// its settings through package upgrades), only docker.service's drop-in,
// which the package cannot ship without enabling the plugin. A packaged
// unit with other settings is not the one init means: it writes its own.
func TestInitAuthzUsesPackagedUnits(t *testing.T) {
	dir := t.TempDir()
	state, certs, daemonJSON := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "daemon.json")
	systemd, pkg, socket := filepath.Join(dir, "systemd"), filepath.Join(dir, "pkg"), filepath.Join(dir, "authz.sock")
	require.NoError(t, os.WriteFile(daemonJSON, []byte("{}\n"), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	require.NoError(t, os.Mkdir(pkg, 0o755))
	exe, err := os.Executable()
	require.NoError(t, err)
	policy := ""
	if _, err := os.Stat(defaultAuthzPolicy); err == nil {
		policy = defaultAuthzPolicy
	}
	units := authority.AuthzUnits(exe, socket, state, defaultAuditLog, policy, daemonJSON)
	for n, u := range units {
		require.NoError(t, os.WriteFile(filepath.Join(pkg, n), append([]byte("# Installed by the dtls package.\n"), u...), 0o644))
	}
	args := []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd,
		"--listen", "tcp://127.0.0.1:2376", "--host", "localhost", "--authz", "--authz-socket", socket, "--packaged-unit-dir", pkg}
	_, stderr, code := dtls(t, time.Now(), args...)
	require.Equal(t, 0, code, stderr)
	for _, n := range []string{authority.AuthzServiceUnit, authority.AuthzSocketUnit} {
		assert.NoFileExists(t, filepath.Join(systemd, n))
		assert.Contains(t, stderr, n+": the packaged unit in "+pkg+" is used")
	}
	assert.FileExists(t, filepath.Join(systemd, "docker.service.d", authority.AuthzDockerDropIn))

	// An older package's unit, with another command line.
	svc := filepath.Join(pkg, authority.AuthzServiceUnit)
	require.NoError(t, os.WriteFile(svc, []byte(strings.Replace(string(units[authority.AuthzServiceUnit]), " serve ", " serve --old ", 1)), 0o644))
	_, stderr, code = dtls(t, time.Now(), args...)
	require.Equal(t, 0, code, stderr)
	written, err := os.ReadFile(filepath.Join(systemd, authority.AuthzServiceUnit))
	require.NoError(t, err, stderr)
	assert.Equal(t, string(units[authority.AuthzServiceUnit]), string(written))
	assert.NoFileExists(t, filepath.Join(systemd, authority.AuthzSocketUnit))
}

// TestCAInitUsesPackagedUnit: 'dtls ca init' writes no dtls-ca.service
// when the package installed one with the settings it would write, and
// says which unit runs the CA; with other settings (another state
// directory) it writes its own.
func TestCAInitUsesPackagedUnit(t *testing.T) {
	dir := t.TempDir()
	state, units, pkg := filepath.Join(dir, "ca"), filepath.Join(dir, "units"), filepath.Join(dir, "pkg")
	require.NoError(t, os.Mkdir(pkg, 0o755))
	exe, err := os.Executable()
	require.NoError(t, err)
	packaged := filepath.Join(pkg, cahost.UnitName)
	require.NoError(t, os.WriteFile(packaged, append([]byte("# Installed by the dtls package.\n"), sysunit.CA(exe, state)...), 0o644))
	args := []string{"ca", "init", "--state-dir", state, "--unit-dir", units, "--packaged-unit-dir", pkg,
		"--host", "ca.example", "--listen", "127.0.0.1:8888"}
	_, stderr, code := dtls(t, time.Now(), args...)
	require.Equal(t, 0, code, stderr)
	assert.NoFileExists(t, filepath.Join(units, cahost.UnitName))
	assert.Contains(t, stderr, "systemd unit: "+packaged+" (the package's)\n")
	assert.Contains(t, stderr, "next: systemctl daemon-reload && systemctl enable --now "+cahost.UnitName+"\n")

	other := filepath.Join(dir, "other-ca")
	_, stderr, code = dtls(t, time.Now(), "ca", "init", "--state-dir", other, "--unit-dir", units, "--packaged-unit-dir", pkg,
		"--host", "ca.example", "--listen", "127.0.0.1:8888")
	require.Equal(t, 0, code, stderr)
	unit, err := os.ReadFile(filepath.Join(units, cahost.UnitName))
	require.NoError(t, err, stderr)
	assert.Equal(t, string(cahost.Unit(exe, other)), string(unit))
	assert.Contains(t, stderr, "systemd unit: "+filepath.Join(units, cahost.UnitName)+"\n")
}
