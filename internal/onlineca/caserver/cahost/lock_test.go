package cahost

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
)

// TestOpenHostWaitsForAStep: a second run opening the state directory
// ('dtls ca token') while the server holds the lock for a rotation's step
// waits for it, and only then recovers: it neither removes the step's
// temporary files nor replays its journal half written.
func TestOpenHostWaitsForAStep(t *testing.T) {
	res, err := InitHost(InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	dir := res.StateDir
	// The server's step, in progress: the lock held, a temporary file
	// written (engine.Recover would remove it as a killed run's).
	step, err := engine.AcquireLock(dir, 0, nil)
	require.NoError(t, err)
	tmp := filepath.Join(dir, ".ca-next.pem.tmp-1")
	require.NoError(t, os.WriteFile(tmp, []byte("being written"), 0o600))

	opened := make(chan error, 1)
	go func() {
		h, err := OpenHost(dir)
		if err == nil {
			h.Close()
		}
		opened <- err
	}()
	assert.Never(t, func() bool {
		_, err := os.Stat(tmp)
		return err != nil || len(opened) > 0
	}, 500*time.Millisecond, 10*time.Millisecond, "the step's file was removed, or the open did not wait")

	step.Release()
	select {
	case err := <-opened:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("OpenHost did not return once the lock was released")
	}
	assert.NoFileExists(t, tmp, "a killed run's temporary file, recovered once the lock is free")
}

// TestLockKeepsTheDirectoryOwner: a lock file made by root in a state
// directory of another user (the online CA's, run as dtls) is that
// user's, who can then take the lock.
func TestLockKeepsTheDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root")
		}
		t.Skip("needs root to own files for another user")
	}
	dir := filepath.Join(t.TempDir(), "ca")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, 65534, 65534))
	l, err := engine.AcquireLock(dir, 0, nil)
	require.NoError(t, err)
	l.Release()
	fi, err := os.Stat(filepath.Join(dir, engine.LockFile))
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, [2]uint32{65534, 65534}, [2]uint32{st.Uid, st.Gid})
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
