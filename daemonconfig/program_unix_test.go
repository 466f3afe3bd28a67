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
	got, err := CheckProgram(prog)
	require.NoError(t, err)
	assert.Equal(t, prog, got)
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(prog, link))
	got, err = CheckProgram(link)
	require.NoError(t, err, "a link in root's directory is judged by what it names")
	assert.Equal(t, prog, got, "what runs is what was checked, not the link")

	require.NoError(t, os.Chmod(prog, 0o775))
	_, err = CheckProgram(prog)
	assert.ErrorContains(t, err, "is writable by group or others")
	_, err = CheckProgram(link)
	assert.ErrorContains(t, err, "is writable by group or others")
	require.NoError(t, os.Chmod(prog, 0o755))

	require.NoError(t, os.Chown(prog, 65534, 65534))
	_, err = CheckProgram(prog)
	assert.ErrorContains(t, err, "is not root's (uid 65534)")
	require.NoError(t, os.Chown(prog, 0, 0))

	// A directory above it that others can write (not sticky): they could
	// replace the program.
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err = CheckProgram(prog)
	assert.ErrorContains(t, err, dir+" is writable by group or others")
	require.NoError(t, os.Chmod(dir, 0o755))
	owned := filepath.Join(dir, "home")
	require.NoError(t, os.Mkdir(owned, 0o755))
	require.NoError(t, os.Chown(owned, 65534, 65534))
	inOwned := filepath.Join(owned, "dockerd")
	require.NoError(t, os.WriteFile(inOwned, []byte("#!/bin/sh\n"), 0o755))
	_, err = CheckProgram(inOwned)
	assert.ErrorContains(t, err, owned+" is not root's")
	_, err = CheckProgram(filepath.Join(dir, "missing"))
	assert.Error(t, err)
	_, err = CheckProgram("/bin/true")
	assert.NoError(t, err)

	// A link to root's program in a directory another account owns: that
	// account can point it elsewhere between the check and the run (a
	// second red team round).
	theirs := filepath.Join(owned, "dockerd-link")
	require.NoError(t, os.Symlink(prog, theirs))
	_, err = CheckProgram(theirs)
	assert.ErrorContains(t, err, owned+" is not root's")
	assert.ErrorContains(t, CheckRootDir(filepath.Join(owned, ".")), "is not root's")
	dirLink := filepath.Join(owned, "certs-link")
	require.NoError(t, os.Symlink(dir, dirLink))
	assert.ErrorContains(t, CheckRootDir(dirLink), owned+" is not root's", "a link to root's directory, in another's")

	// Another account's link in a sticky directory, to root's directory:
	// its owner may flip it (a third red team round).
	sticky := filepath.Join(dir, "sticky")
	require.NoError(t, os.Mkdir(sticky, 0o755))
	require.NoError(t, os.Chmod(sticky, os.ModeSticky|0o777))
	theirLink := filepath.Join(sticky, "bob")
	require.NoError(t, os.Symlink(dir, theirLink))
	require.NoError(t, os.Lchown(theirLink, 65534, 65534))
	assert.ErrorContains(t, CheckRootDir(theirLink), theirLink+" is not root's (uid 65534)")
	rootLink := filepath.Join(sticky, "root")
	require.NoError(t, os.Symlink(dir, rootLink))
	assert.NoError(t, CheckRootDir(rootLink), "root's link in a sticky directory is root's to change")
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
	require.NoError(t, os.Chmod(certs, os.ModeSticky|0o777))
	assert.ErrorContains(t, CheckRootDir(certs), "is writable by group or others", "a sticky certs directory is still others' to fill")
}
