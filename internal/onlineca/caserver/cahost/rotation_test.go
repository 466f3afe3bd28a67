package cahost

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// openServed opens dir, and returns the host and what closes it (a kill
// here: nothing is written at close).
func openServed(t *testing.T, dir string) (*Host, func()) {
	t.Helper()
	h, err := OpenHost(dir)
	require.NoError(t, err)
	return h, func() { h.Close() }
}

// TestRotateFiles: each step of a rotation made through the server is
// in the state directory, a reopened host is at the same step, and kills
// at the commit points are recovered (a next CA without rotation.json is
// removed; a finish with its journal written is done).
func TestRotateFiles(t *testing.T) {
	res, err := InitHost(InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	dir := res.StateDir
	p := func(name string) string { return filepath.Join(dir, name) }
	server := func(h *Host) interface {
		BeginRotation() (*fleet.RotateResponse, error)
		SwitchRotation(bool) (*fleet.RotateResponse, error)
		FinishRotation(bool) (*fleet.RotateResponse, error)
		RotationStatus() (*fleet.RotateResponse, error)
	} {
		s, err := h.Server(nil, nil)
		require.NoError(t, err)
		_, err = s.TLSConfig(h.TLSCert, h.TLSKey)
		require.NoError(t, err)
		return s
	}

	// A trust killed before its commit point: the next CA's files
	// without rotation.json are removed.
	h, done := openServed(t, dir)
	_, err = server(h).BeginRotation()
	require.NoError(t, err)
	done()
	require.NoError(t, os.Remove(p(RotationFile)))
	h, done = openServed(t, dir)
	assert.Equal(t, "", h.Step)
	assert.Nil(t, h.Next)
	assert.False(t, exists(p(NextCACertFile)))
	assert.False(t, exists(p(NextCAKeyFile)))

	// Trust, committed.
	st, err := server(h).BeginRotation()
	require.NoError(t, err)
	done()
	assert.Equal(t, CAKeyMode, perm(t, p(NextCAKeyFile)))
	assert.Equal(t, CertMode, perm(t, p(NextCACertFile)))
	h, done = openServed(t, dir)
	assert.Equal(t, fleet.RotateTrust, h.Step)
	require.NotNil(t, h.Next)
	assert.Equal(t, st.Next.Serial, pki.Serial(h.Next.Cert))
	next := h.Next.Cert
	// The time the trust began is kept: the switch counts the clients
	// issued before it.
	require.False(t, st.TrustBegan.IsZero())
	assert.True(t, st.TrustBegan.Equal(h.TrustBegan), "%s, %s", st.TrustBegan, h.TrustBegan)
	began := h.TrustBegan

	// Switch, then a finish killed after its journal: the next open
	// finishes it.
	s := server(h)
	_, err = s.SwitchRotation(false)
	require.NoError(t, err)
	done()
	h, done = openServed(t, dir)
	assert.Equal(t, fleet.RotateSwitch, h.Step)
	assert.True(t, began.Equal(h.TrustBegan), "the switch kept the time the trust began")
	listener, err := h.Next.Issue(pki.Request{Kind: pki.KindServer, CommonName: "127.0.0.1", Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	r := rotation{dir, h.Store}
	ft, err := r.finishChange(listener.CertPEM, listener.KeyPEM, store.Change{})
	require.NoError(t, err)
	jb, err := json.Marshal(ft)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(p(JournalDir), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(p(JournalDir), "ca-rotate-finish-1.json"), jb, 0o600))
	// Killed after the CA's certificate was moved and its file removed.
	b, err := os.ReadFile(p(NextCACertFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p(CACertFile), b, 0o644))
	require.NoError(t, os.Remove(p(NextCACertFile)))
	done()
	h, done = openServed(t, dir)
	assert.Equal(t, "", h.Step)
	assert.True(t, h.CA.Cert.Equal(next))
	assert.Equal(t, listener.CertPEM, h.TLSCert)
	assert.Equal(t, CAKeyMode, perm(t, p(CAKeyFile)))
	assert.Equal(t, KeyMode, perm(t, p(TLSKeyFile)))
	for _, f := range []string{RotationFile, NextCACertFile, NextCAKeyFile, NextTLSCertFile, NextTLSKeyFile} {
		assert.False(t, exists(p(f)), f)
	}
	done()
}

// TestRotateFinishFiles: a finish through the server writes the new CA
// and the listener's certificate of it into place.
func TestRotateFinishFiles(t *testing.T) {
	res, err := InitHost(InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Hosts: []string{"127.0.0.1"}, Now: time.Now()})
	require.NoError(t, err)
	dir := res.StateDir
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
	_, err = s.FinishRotation(false)
	assert.ErrorContains(t, err, `client "ca-operator"`, "the operator's certificate of the old CA holds it up")
	st, err := s.FinishRotation(true)
	require.NoError(t, err)
	h.Close()

	h, err = OpenHost(dir)
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, st.Current.Serial, pki.Serial(h.CA.Cert))
	leaf, err := pki.ParseCertificate(h.TLSCert)
	require.NoError(t, err)
	require.NoError(t, leaf.CheckSignatureFrom(h.CA.Cert))
	assert.Equal(t, []string(nil), leaf.DNSNames)
	assert.Equal(t, "127.0.0.1", leaf.IPAddresses[0].String())
	for _, f := range []string{RotationFile, NextCACertFile, NextCAKeyFile, NextTLSCertFile, NextTLSKeyFile} {
		assert.False(t, exists(filepath.Join(dir, f)), f)
	}
	rec, err := h.Store.Get(pki.Serial(leaf))
	require.NoError(t, err)
	require.NotNil(t, rec, "the new listener certificate is in the inventory")
}
