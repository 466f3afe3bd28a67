package authority

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackagedUnit: a packaged unit is the one init would write when its
// settings are, whatever its comments and blank lines say; one setting
// apart, or no such file, or no package directory, it is not.
func TestPackagedUnit(t *testing.T) {
	dir := t.TempDir()
	want := AuthzUnits("/usr/bin/dtls", "/run/docker/plugins/dtls-authz.sock", "/var/lib/dtls", "/var/log/dtls/authz.log", "", "")[AuthzServiceUnit]
	assert.False(t, PackagedUnit(dir, AuthzServiceUnit, want), "no file")
	assert.False(t, PackagedUnit("", AuthzServiceUnit, want), "no package directory")
	packaged := append([]byte("# Installed by the dtls package.\n\n; enable it with systemctl\n"), want...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, AuthzServiceUnit), packaged, 0o644))
	assert.True(t, PackagedUnit(dir, AuthzServiceUnit, want))
	other := AuthzUnits("/usr/local/bin/dtls", "/run/docker/plugins/dtls-authz.sock", "/var/lib/dtls", "/var/log/dtls/authz.log", "", "")[AuthzServiceUnit]
	assert.False(t, PackagedUnit(dir, AuthzServiceUnit, other), "another binary")
	assert.Equal(t, "[Unit]\nA=b\n", string(UnitSettings([]byte("# c\n[Unit]\n\n  A=b  \n;x\n"))))
}
