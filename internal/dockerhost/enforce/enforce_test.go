package enforce

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// options are those of a host with no inventory yet, every path in dir.
func options(t *testing.T) (Options, *bytes.Buffer) {
	dir := t.TempDir()
	daemonJSON := filepath.Join(dir, "daemon.json")
	require.NoError(t, os.WriteFile(daemonJSON, []byte(`{"hosts": ["unix://`+filepath.Join(dir, "docker.sock")+`"]}`), 0o644))
	var log bytes.Buffer
	return Options{StateDir: filepath.Join(dir, "state"), Policy: filepath.Join(dir, "policy.json"), PolicyOptional: true,
		AuditLog: filepath.Join(dir, "log", "audit.log"), DaemonJSON: daemonJSON, Protect: []string{filepath.Join(dir, "plugins")},
		Log: &log, LogPrefix: "test: "}, &log
}

// TestOpenWithoutInventory: on a host whose inventory cannot be read,
// the configuration still assembles, says so, and its engine denies a
// client certificate (closed); the trail's directory is made 0700, and the
// state, the trail, the policy, daemon.json and the extra paths are
// protected from mounts.
func TestOpenWithoutInventory(t *testing.T) {
	o, log := options(t)
	en, err := Open(o)
	require.NoError(t, err)
	defer en.Close()
	assert.Nil(t, en.Follower, "no online CA: no follower")
	assert.Contains(t, log.String(), "every TCP request is denied until it can be read")
	fi, err := os.Stat(filepath.Dir(o.AuditLog))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	for _, p := range []string{o.StateDir, filepath.Dir(o.AuditLog), o.Policy, o.DaemonJSON, o.Protect[0]} {
		assert.Contains(t, en.Config.Protected, p)
	}
	e, err := authz.NewEngine(en.Config)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "alice"}}
	c := e.Identify(leaf)
	assert.NotEmpty(t, c.Refused, "a certificate no inventory holds is refused")
	en.Start(context.Background()) // no follower: nothing to start
}

// TestOpenFleetWithoutCA: a host told to follow an online CA with no
// certificate of it to check the list against does not start.
func TestOpenFleetWithoutCA(t *testing.T) {
	o, _ := options(t)
	o.CAURL, o.CRLRefresh, o.Now = "https://127.0.0.1:1", time.Second, time.Now
	_, err := Open(o)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNoFleetCA), "%v", err)
	assert.Contains(t, err.Error(), "https://127.0.0.1:1")
}
