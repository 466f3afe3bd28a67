//go:build unix

package daemonconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckProgram: root runs only a program that no other account could
// have written (found by a red team: DTLS_DOCKERD, kept by sudo, named
// a script of the caller's that init ran as root).
func TestCheckProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root")
		}
		t.Skip("as root only")
	}
	dir := t.TempDir() // under /tmp: sticky, world-writable
	require.NoError(t, os.Chmod(dir, 0o755))
	prog := filepath.Join(dir, "dockerd")
	require.NoError(t, os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755))
	assert.NoError(t, CheckProgram(prog))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(prog, link))
	assert.NoError(t, CheckProgram(link), "a link is judged by what it names")

	require.NoError(t, os.Chmod(prog, 0o775))
	assert.ErrorContains(t, CheckProgram(prog), "is writable by group or others")
	assert.ErrorContains(t, CheckProgram(link), "is writable by group or others")
	require.NoError(t, os.Chmod(prog, 0o755))

	require.NoError(t, os.Chown(prog, 65534, 65534))
	assert.ErrorContains(t, CheckProgram(prog), "is not root's (uid 65534)")
	require.NoError(t, os.Chown(prog, 0, 0))

	// A directory above it that others can write (not sticky): they could
	// replace the program.
	require.NoError(t, os.Chmod(dir, 0o777))
	assert.ErrorContains(t, CheckProgram(prog), dir+" is writable by group or others")
	require.NoError(t, os.Chmod(dir, 0o755))
	owned := filepath.Join(dir, "home")
	require.NoError(t, os.Mkdir(owned, 0o755))
	require.NoError(t, os.Chown(owned, 65534, 65534))
	inOwned := filepath.Join(owned, "dockerd")
	require.NoError(t, os.WriteFile(inOwned, []byte("#!/bin/sh\n"), 0o755))
	assert.ErrorContains(t, CheckProgram(inOwned), owned+" is not root's")
	assert.Error(t, CheckProgram(filepath.Join(dir, "missing")))
	assert.NoError(t, CheckProgram("/bin/true"))
}

func TestCheckRootDir(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root")
		}
		t.Skip("as root only")
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	certs := filepath.Join(dir, "certs")
	require.NoError(t, os.Mkdir(certs, 0o755))
	assert.NoError(t, CheckRootDir(certs))
	require.NoError(t, os.Chown(certs, 65534, 65534))
	assert.ErrorContains(t, CheckRootDir(certs), certs+" is not root's (uid 65534): refusing to write into it as root")
	require.NoError(t, os.Chown(certs, 0, 0))
	require.NoError(t, os.Chmod(certs, 0o1777))
	assert.ErrorContains(t, CheckRootDir(certs), "is writable by group or others", "a sticky certs directory is still others' to fill")
}
