package cahost

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/pki"
)

// TestRotateLegacyFinish: a finish journaled by a dtls from before the
// engine's journal (rotation.json at step "finishing", the next CA and
// listener files written) and killed after the CA certificate was moved
// is finished by the next open.
func TestRotateLegacyFinish(t *testing.T) {
	res, err := InitHost(InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	dir := res.StateDir
	p := func(name string) string { return filepath.Join(dir, name) }
	h, err := OpenHost(dir)
	require.NoError(t, err)
	s, err := h.Server(nil, nil)
	require.NoError(t, err)
	_, err = s.TLSConfig(h.TLSCert, h.TLSKey)
	require.NoError(t, err)
	_, err = s.BeginRotation()
	require.NoError(t, err)
	_, err = s.SwitchRotation(false)
	require.NoError(t, err)
	h.Close()

	h, err = OpenHost(dir)
	require.NoError(t, err)
	next := h.Next
	listener, err := next.Issue(pki.Request{Kind: pki.KindServer, CommonName: "127.0.0.1", Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	h.Close()
	require.NoError(t, os.WriteFile(p(NextTLSCertFile), listener.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(p(NextTLSKeyFile), listener.KeyPEM, 0o600))
	b, err := json.Marshal(engine.RotationRecord{Step: legacyFinishing})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p(RotationFile), b, 0o600))
	// Killed after the CA's certificate was moved and its file removed.
	require.NoError(t, os.WriteFile(p(CACertFile), next.CertPEM, 0o644))
	require.NoError(t, os.Remove(p(NextCACertFile)))

	h, err = OpenHost(dir)
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, "", h.Step)
	assert.True(t, h.CA.Cert.Equal(next.Cert))
	assert.Equal(t, next.KeyPEM, h.CA.KeyPEM)
	assert.Equal(t, listener.CertPEM, h.TLSCert)
	assert.Equal(t, CAKeyMode, perm(t, p(CAKeyFile)))
	assert.Equal(t, KeyMode, perm(t, p(TLSKeyFile)))
	for _, f := range []string{RotationFile, NextCACertFile, NextCAKeyFile, NextTLSCertFile, NextTLSKeyFile} {
		assert.False(t, exists(p(f)), f)
	}
}
