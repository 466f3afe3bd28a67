package cahost

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/pki"
)

// TestExampleUnit: examples/dtls-ca.service is what init writes for the
// default paths.
func TestExampleUnit(t *testing.T) {
	b, err := os.ReadFile("../../../../examples/dtls-ca.service")
	require.NoError(t, err)
	assert.Equal(t, string(Unit("/usr/local/bin/dtls", DefaultStateDir)), string(b))
}

// TestInitHostAndServe: the state directory InitHost makes serves: a
// token enrols, the operator bundle's certificate may list the inventory,
// and cancelling the context stops Serve without error.
func TestInitHostAndServe(t *testing.T) { testInitHostAndServe(t, "") }

func testInitHostAndServe(t *testing.T, dsn string) {
	dir := t.TempDir()
	units := filepath.Join(dir, "units")
	require.NoError(t, os.Mkdir(units, 0o755))
	res, err := InitHost(InitOptions{
		StateDir: filepath.Join(dir, "ca"), Hosts: []string{"127.0.0.1"}, DBURL: dsn,
		UnitDir: units, Exe: "/opt/dtls", Now: time.Now(),
	})
	require.NoError(t, err)
	assert.Equal(t, "https://127.0.0.1:8888", res.Config.URL)
	assert.Equal(t, filepath.Join(units, UnitName), res.UnitPath)
	unit, err := os.ReadFile(res.UnitPath)
	require.NoError(t, err)
	assert.Equal(t, string(Unit("/opt/dtls", res.StateDir)), string(unit))
	if dsn != "" {
		_, err := os.Stat(filepath.Join(res.StateDir, DBFile))
		assert.ErrorIs(t, err, os.ErrNotExist, "no SQLite file with a PostgreSQL inventory")
	}

	h, err := OpenHost(res.StateDir)
	require.NoError(t, err)
	defer h.Close()
	s, err := h.Server(nil, nil)
	require.NoError(t, err)
	tok, err := s.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, s, ln) }()

	roots := x509.NewCertPool()
	roots.AddCert(res.CACert)
	op, err := tls.LoadX509KeyPair(filepath.Join(res.OperatorDir, "cert.pem"), filepath.Join(res.OperatorDir, "key.pem"))
	require.NoError(t, err)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{op}},
	}}
	url := "https://" + ln.Addr().String()
	csr, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	body, err := json.Marshal(fleet.EnrollRequest{Token: tok.Token, CSR: string(csr)})
	require.NoError(t, err)
	resp, err := client.Post(url+fleet.PathEnroll, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = client.Get(url + fleet.PathCerts)
	require.NoError(t, err)
	var env struct {
		Result []store.Record `json:"result"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	names := map[string]store.Kind{}
	for _, r := range env.Result {
		names[r.Name] = r.Kind
	}
	assert.Equal(t, map[string]store.Kind{"dtls online CA": store.KindCA, "127.0.0.1": store.KindServer,
		DefaultOperator: store.KindClient, "alice": store.KindClient}, names)

	cancel()
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(ShutdownTimeout + 10*time.Second):
		t.Fatal("Serve did not stop")
	}
}

// TestInitHostRefusesAndLeavesNothing: an existing state directory is
// refused without Force; a failure (an unreadable database URL file)
// leaves no state directory and no temporary one; a temporary directory
// left by a killed init is removed by the next.
func TestInitHostRefusesAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "ca")
	_, err := InitHost(InitOptions{StateDir: state, Hosts: []string{"ca.example"}, DBURLFile: filepath.Join(dir, "missing"), Now: time.Now()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read the database URL: open "+filepath.Join(dir, "missing"))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing left")

	killed := filepath.Join(dir, ".ca.tmp-123")
	require.NoError(t, os.Mkdir(killed, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(killed, CAKeyFile), []byte("half"), 0o400))
	_, err = InitHost(InitOptions{StateDir: state, Hosts: []string{"ca.example"}, Now: time.Now()})
	require.NoError(t, err)
	entries, err = os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "ca", entries[0].Name())
	fi, err := os.Stat(state)
	require.NoError(t, err)
	assert.Equal(t, DirMode, fi.Mode().Perm())

	caPEM, err := os.ReadFile(filepath.Join(state, CACertFile))
	require.NoError(t, err)
	_, err = InitHost(InitOptions{StateDir: state, Hosts: []string{"ca.example"}, Now: time.Now()})
	assert.ErrorIs(t, err, ErrStateExists)
	again, err := os.ReadFile(filepath.Join(state, CACertFile))
	require.NoError(t, err)
	assert.Equal(t, caPEM, again)

	_, err = InitHost(InitOptions{StateDir: state, Hosts: []string{"ca.example"}, Now: time.Now(), Force: true})
	require.NoError(t, err)
	again, err = os.ReadFile(filepath.Join(state, CACertFile))
	require.NoError(t, err)
	assert.NotEqual(t, caPEM, again, "a new CA")
	entries, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "the old state directory is gone")

	// Force never replaces a directory that is not a CA's state.
	other := filepath.Join(dir, "dtls")
	require.NoError(t, os.Mkdir(other, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(other, "ca-key.pem"), []byte("the Docker host's CA key"), 0o400))
	_, err = InitHost(InitOptions{StateDir: other, Hosts: []string{"ca.example"}, Now: time.Now(), Force: true})
	assert.EqualError(t, err, `refusing to replace "`+other+`": it has no ca.json, so it is not an online CA's state directory`)
	b, err := os.ReadFile(filepath.Join(other, "ca-key.pem"))
	require.NoError(t, err)
	assert.Equal(t, "the Docker host's CA key", string(b))
}

// TestInitHostPostgres: the inventory in PostgreSQL, given as a URL or in
// a file.
func TestInitHostPostgres(t *testing.T) {
	t.Parallel()
	testInitHostAndServe(t, pgsandbox.Start(t))
}

func TestInitHostPostgresURLFile(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "db-url")
	require.NoError(t, os.WriteFile(f, []byte(dsn+"\n"), 0o600))
	res, err := InitHost(InitOptions{StateDir: filepath.Join(dir, "ca"), Hosts: []string{"ca.example"}, DBURLFile: f, Now: time.Now()})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(res.StateDir, ConfigFile))
	require.NoError(t, err)
	assert.NotContains(t, string(b), dsn, "ca.json names the file, not the URL")
	h, err := OpenHost(res.StateDir)
	require.NoError(t, err)
	defer h.Close()
	role, err := h.Store.Role(DefaultOperator)
	require.NoError(t, err)
	assert.Equal(t, fleet.OperatorRole, role)
}

// TestInitHostRefusesUnitInjection: a state directory systemd would read
// as more than one word never reaches the unit, and nothing is made (a
// second red team round: a newline wrote ExecStartPre=+).
func TestInitHostRefusesUnitInjection(t *testing.T) {
	base := t.TempDir()
	for _, dir := range []string{base + "/st\nExecStartPre=+/tmp/evil", base + "/a b", base + "/%h"} {
		_, err := InitHost(InitOptions{StateDir: dir, Hosts: []string{"127.0.0.1"}, Exe: "/opt/dtls", Now: time.Now()})
		require.Error(t, err, "%q", dir)
		assert.Contains(t, err.Error(), "cannot go into a systemd unit")
		_, err = os.Stat(dir)
		assert.True(t, os.IsNotExist(err), "%q made", dir)
	}
	_, err := InitHost(InitOptions{StateDir: base + "/ok", Hosts: []string{"127.0.0.1"}, Exe: "/opt/my dtls", Now: time.Now()})
	assert.ErrorContains(t, err, "the dtls program")
}
