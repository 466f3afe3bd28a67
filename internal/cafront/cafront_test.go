package cafront

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

func TestRotationStep(t *testing.T) {
	assert.Equal(t, fleet.RotateTrust, RotationStep(false, false, false))
	assert.Equal(t, fleet.RotateStatus, RotationStep(true, false, false))
	assert.Equal(t, fleet.RotateSwitch, RotationStep(false, true, false))
	assert.Equal(t, fleet.RotateFinish, RotationStep(false, false, true))
}

// operatorBundle writes an operator's bundle of ca into a new directory.
func operatorBundle(t *testing.T, ca *catest.CA) string {
	t.Helper()
	certPEM, keyPEM := ca.Operator(t)
	dir := filepath.Join(t.TempDir(), "operator")
	files, err := bundle.Files(ca.CAPEM, certPEM, keyPEM, clientenv.Meta{Name: "operator", CAURL: ca.URL})
	require.NoError(t, err)
	require.NoError(t, bundle.InstallDir(dir, files))
	return dir
}

// TestOpenRemote: with a CA URL, Open is the online CA, called with the
// operator's bundle: its inventory, and a revocation there.
func TestOpenRemote(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	op := operatorBundle(t, ca)
	u, err := OperatorCAURL(op)
	require.NoError(t, err)
	assert.Equal(t, ca.URL, u)
	ca.Client(t, "alice", "dev")

	c, err := Open(Config{StateDir: filepath.Join(t.TempDir(), "no-state"), CAURL: ca.URL, Operator: op})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, ca.URL, c.Where())
	inv, err := c.Inventory(context.Background(), time.Now())
	require.NoError(t, err)
	assert.True(t, inv.Online)
	assert.Equal(t, "dev", inv.Roles["alice"])
	var alice *pki.Record
	for i, r := range inv.Records {
		if r.Name == "alice" {
			alice = &inv.Records[i]
		}
	}
	require.NotNil(t, alice, "alice in the online CA's inventory")
	assert.Equal(t, alice.NotAfter.Sub(alice.NotBefore)/3, inv.RenewBefore(*alice), "an online CA's certificate is expiring once less than a third of its life is left")

	rev, err := c.Revoke(context.Background(), "alice", pki.Reasons["keyCompromise"], time.Now())
	require.NoError(t, err)
	assert.True(t, rev.Online)
	assert.Nil(t, rev.CRL, "an online CA writes no local crl.pem")
	require.Len(t, rev.Revoked, 1)
	assert.Equal(t, alice.Serial, rev.Revoked[0].Serial)
	assert.Equal(t, alice.NotAfter.Unix(), rev.LastExpiry.Unix())
	got, err := ca.Store.Find("alice")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, pki.StatusRevoked, got[0].Status, "revoked in the online CA's inventory")
}

// TestOpenRemoteMissingOperator: an operator's bundle that is not there is
// an *OperatorError naming it, before any call.
func TestOpenRemoteMissingOperator(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	_, err := Open(Config{CAURL: "https://127.0.0.1:1", Operator: dir})
	var oe *OperatorError
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Contains(t, err.Error(), dir)
	_, err = OperatorCAURL(dir)
	assert.Error(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, clientenv.MetaFile), []byte(`{"name":"x"}`), 0o644))
	_, err = OperatorCAURL(dir)
	assert.ErrorIs(t, err, ErrNoOperatorCA)
}

// TestOpenLocal: without a CA URL, Open is the state directory's CA,
// opened as the command asks: its inventory, and a revocation that writes
// crl.pem in the same change.
func TestOpenLocal(t *testing.T) {
	_, err := Open(Config{StateDir: filepath.Join(t.TempDir(), "state"), Operator: "ignored"})
	assert.ErrorIs(t, err, os.ErrNotExist, "no state directory there")

	root := t.TempDir()
	now := time.Now()
	daemonJSON := filepath.Join(root, "etc", "daemon.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(daemonJSON), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "systemd"), 0o755))
	require.NoError(t, os.WriteFile(daemonJSON, []byte("{}\n"), 0o644))
	state := filepath.Join(root, "state")
	_, err = authority.Init(authority.InitRequest{
		StateDir: state, CertsDir: filepath.Join(root, "certs"), DaemonJSON: daemonJSON, SystemdDir: filepath.Join(root, "systemd"),
		Hosts: []string{"localhost", "127.0.0.1"}, Listen: authority.DefaultListen, KeyType: pki.ECDSAP256,
		CAValidity: pki.DefaultCAValidity, ServerValidity: pki.DefaultServerValidity,
		CAName: authority.DefaultCAName(now), Now: now,
	}, authority.Options{})
	require.NoError(t, err)
	opened := ""
	open := func(dir string) (*authority.Authority, error) {
		opened = dir
		return authority.Open(dir, authority.Options{})
	}
	c, err := Open(Config{StateDir: state, OpenLocal: open})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, state, opened, "the command's opener")
	assert.Equal(t, state, c.Where())
	_, err = c.(*Local).Authority.IssueClients(authority.ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(root, n) }, Now: now})
	require.NoError(t, err)

	inv, err := c.Inventory(context.Background(), now)
	require.NoError(t, err)
	assert.False(t, inv.Online)
	assert.NotEmpty(t, inv.CurrentCA)
	assert.Nil(t, inv.Rotation, "no rotation in progress")
	require.NotEmpty(t, inv.Records)
	assert.Equal(t, authority.RenewBefore, inv.RenewBefore(inv.Records[0]))

	rev, err := c.Revoke(context.Background(), "alice", pki.Reasons["keyCompromise"], now)
	require.NoError(t, err)
	assert.False(t, rev.Online)
	require.Len(t, rev.Revoked, 1)
	require.NotNil(t, rev.CRL)
	assert.Equal(t, 1, rev.CRL.Revoked)
	assert.FileExists(t, rev.CRL.Path)
}
