package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

// TestLoadCA: both faces' loading of a CA. A clear key loads without a
// passphrase source; an encrypted one needs one, a wrong passphrase is
// told apart, and KeyPEM stays the key as it is on disk; a missing key is
// ErrNoCAKey (a host made by `dtls init --ca-from`).
func TestLoadCA(t *testing.T) {
	inv := newInventory(t)
	dir := t.TempDir()
	enc, err := pki.EncryptKey(inv.ca.KeyPEM, []byte("right"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, CACertFile), inv.ca.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, CAKeyFile), inv.ca.KeyPEM, CAKeyMode))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "enc-key.pem"), enc, CAKeyMode))
	pass := func(p string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(p), nil } }

	ca, err := LoadCA(dir, CACertFile, CAKeyFile, nil)
	require.NoError(t, err)
	assert.Equal(t, inv.ca.KeyPEM, ca.KeyPEM)

	_, err = LoadCA(dir, CACertFile, "enc-key.pem", nil)
	assert.ErrorIs(t, err, ErrNoPassphrase)
	_, err = LoadCA(dir, CACertFile, "enc-key.pem", pass("wrong"))
	assert.ErrorIs(t, err, pki.ErrWrongPassphrase)
	assert.EqualError(t, err, `CA key "`+filepath.Join(dir, "enc-key.pem")+`": wrong passphrase`)
	ca, err = LoadCA(dir, CACertFile, "enc-key.pem", pass("right"))
	require.NoError(t, err)
	assert.Equal(t, enc, ca.KeyPEM, "the decrypted key would be copied in the clear")

	_, err = LoadCA(dir, CACertFile, "absent-key.pem", nil)
	assert.ErrorIs(t, err, ErrNoCAKey)
}
