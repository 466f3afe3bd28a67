//go:build linux

package sandbox

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClaimHostDirs: the plugin directories dtls's tests make are removed
// by the last test process that used them, and those the host had are
// kept.
func TestClaimHostDirs(t *testing.T) {
	// Short, as the host's are: the sockets made below must fit in 108 bytes.
	root, err := os.MkdirTemp("", "hd")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
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

	// A socket left by a killed test is removed by the last release, and
	// the directories with it; a socket of a live test stays, and so
	// does one the tests did not name.
	rel = ClaimHostDirs()
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	name, own := PluginSocket("authz")
	assert.Regexp(t, `^dtls-authz-test-[0-9]+-[0-9a-f]{8}$`, name)
	assert.Equal(t, filepath.Join(plugins, name+".sock"), own)
	left := filepath.Join(plugins, "dtls-authz-rt-test-999999999-0badcafe.sock")
	for _, p := range []string{own, left} {
		unixSocket(t, p)
	}
	other := ClaimHostDirs()
	assert.NoFileExists(t, left, "removed by the next claim")
	assert.FileExists(t, own, "this process's own, alive")
	require.NoError(t, os.Remove(own))
	unixSocket(t, left)
	other()
	rel()
	assert.NoDirExists(t, docker, "the killed test's socket does not keep them")
	assert.NoFileExists(t, hostDirsMarker)

	rel = ClaimHostDirs()
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	foreign := filepath.Join(plugins, "dtls-authz.sock")
	unixSocket(t, foreign)
	rel()
	assert.FileExists(t, foreign, "not a test's: never removed")
	require.NoError(t, os.Remove(foreign))

	// Directories the host had stay.
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	ClaimHostDirs()()
	assert.DirExists(t, plugins)
}

// unixSocket leaves a socket file at path, as a killed server would.
func unixSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
}

// TestUnmountUnder: mounts left below a sandbox directory (dockerd leaves
// EXEC_ROOT/netns/default) are detached, deepest first, and nothing else.
func TestUnmountUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount needs root, and CI runs the tests as root")
		}
		t.Skip("mount needs root")
	}
	dir, other := t.TempDir(), t.TempDir()
	inner, deeper, outside := filepath.Join(dir, "exec/netns"), filepath.Join(dir, "exec/netns/x"), filepath.Join(other, "keep")
	for _, d := range []string{inner, outside} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, syscall.Mount("tmpfs", inner, "tmpfs", 0, ""))
	require.NoError(t, os.MkdirAll(deeper, 0o755))
	require.NoError(t, syscall.Mount("tmpfs", deeper, "tmpfs", 0, ""))
	require.NoError(t, syscall.Mount("tmpfs", outside, "tmpfs", 0, ""))
	t.Cleanup(func() { _ = syscall.Unmount(outside, syscall.MNT_DETACH) })

	require.NoError(t, unmountUnder(dir))
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mounts), " "+dir+"/")
	assert.Contains(t, string(mounts), " "+outside+" ", "a mount outside the directory is left alone")
	require.NoError(t, os.RemoveAll(dir))
}
