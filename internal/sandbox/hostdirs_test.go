//go:build linux

package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClaimHostDirs: the plugin directories dtls's tests make are removed
// by the last test process that used them, and those the host had are
// kept.
func TestClaimHostDirs(t *testing.T) {
	root := t.TempDir()
	plugins, docker := filepath.Join(root, "run/docker/plugins"), filepath.Join(root, "run/docker")
	oldDirs, oldMarker := hostPluginDirs, hostDirsMarker
	hostPluginDirs, hostDirsMarker = []string{plugins, docker}, filepath.Join(root, "marker")
	t.Cleanup(func() { hostPluginDirs, hostDirsMarker = oldDirs, oldMarker })

	first := ClaimHostDirs()
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	second := ClaimHostDirs() // another process, which finds them made
	sock := filepath.Join(plugins, "x.sock")
	require.NoError(t, os.WriteFile(sock, nil, 0o600))
	first()
	assert.DirExists(t, plugins, "still in use by the second")
	assert.FileExists(t, hostDirsMarker)
	require.NoError(t, os.Remove(sock))
	second()
	assert.NoDirExists(t, docker)
	assert.NoFileExists(t, hostDirsMarker)

	// A claim of a process that died before its release does not keep
	// them.
	rel := ClaimHostDirs()
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	b, err := os.ReadFile(hostDirsMarker)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(hostDirsMarker, []byte(strings.Replace(string(b), `"users":[`, `"users":["999999999/1",`, 1)), 0o600))
	rel()
	assert.NoDirExists(t, docker)
	assert.NoFileExists(t, hostDirsMarker)

	// Directories the host had stay.
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	ClaimHostDirs()()
	assert.DirExists(t, plugins)
}
