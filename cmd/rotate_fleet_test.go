package cmd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// flServeCAHost makes a CA host's state directory ('dtls ca init') and
// serves it on loopback as 'dtls ca serve' does, until the test ends.
func flServeCAHost(t *testing.T) (dir, url string, s interface {
	NewToken(fleet.TokenRequest) (fleet.TokenResponse, error)
}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url = "https://" + ln.Addr().String()
	res, err := cahost.InitHost(cahost.InitOptions{StateDir: filepath.Join(t.TempDir(), "ca"), Listen: ln.Addr().String(),
		Hosts: []string{"127.0.0.1"}, URL: url, Now: time.Now()})
	require.NoError(t, err)
	h, err := cahost.OpenHost(res.StateDir)
	require.NoError(t, err)
	srv, err := h.Server(nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, srv, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		h.Close()
	})
	return res.StateDir, url, srv
}

func flCAs(t *testing.T, p string) []string {
	t.Helper()
	cs, err := pki.ParseCertificates(flRead(t, p))
	require.NoError(t, err)
	var out []string
	for _, c := range cs {
		out = append(out, pki.Serial(c))
	}
	return out
}

// TestRotateCAOnline: 'dtls rotate-ca --operator DIR' rotates the online
// CA in three steps: a laptop's agent and a fleet host's 'renew --server'
// get a ca.pem with both CAs, then certificates of the new CA; the finish
// is refused while they hold certificates of the old CA, and afterwards
// the CA has, and serves, only the new one.
func TestRotateCAOnline(t *testing.T) {
	t.Parallel()
	caDir, url, srv := flServeCAHost(t)
	op := filepath.Join(caDir, cahost.OperatorDir)
	oldCA := flCAs(t, filepath.Join(caDir, cahost.CACertFile))[0]
	token := func(req fleet.TokenRequest) string {
		resp, err := srv.NewToken(req)
		require.NoError(t, err)
		return resp.Token
	}

	// A fleet host and a laptop.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "systemd"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "daemon.json"), []byte("{}\n"), 0o644))
	state, certs := filepath.Join(dir, "state"), filepath.Join(dir, "certs")
	_, stderr, code := dtls(t, time.Now(), append([]string{"init", "--ca-url", url, "--token",
		token(fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example.com", Hosts: []string{"127.0.0.1"}})}, flHostArgs(dir)...)...)
	require.Equal(t, 0, code, stderr)
	env, root, _ := flLaptopEnv(t)
	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", url, token(fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"}),
		"--docker-host", "tcp://docker1.example.com:2376")
	require.Equal(t, 0, code, stderr)
	bundle := filepath.Join(root, "docker1.example.com")
	ag := &agent.Agent{}
	renewLaptop := func() {
		t.Helper()
		res, err := ag.RenewIfDue(context.Background(), bundle, flDue(t, bundle))
		require.NoError(t, err)
		require.True(t, res.Renewed)
	}

	out, stderr, code := dtls(t, time.Now(), "rotate-ca", "--operator", op, "--status")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "no CA rotation in progress")
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--switch")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "dtls: error: no CA rotation in progress: nothing to switch; start one with 'dtls rotate-ca'")
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--restart")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--restart does not apply to an online CA's rotation")

	// Step 1: trust.
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "step 1 of 3")
	cas := flCAs(t, filepath.Join(op, "ca.pem"))
	require.Len(t, cas, 2, "the operator's bundle trusts both CAs")
	newCA := cas[1]
	assert.Equal(t, oldCA, cas[0])
	assert.FileExists(t, filepath.Join(caDir, cahost.NextCACertFile))
	assert.Equal(t, os.FileMode(0o400), flMode(t, filepath.Join(caDir, cahost.NextCAKeyFile)))
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--finish")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "switch it first: dtls rotate-ca --switch")
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "a CA rotation is already in progress: it is at step 1 of 3; next: dtls rotate-ca --switch")

	// The agent and renew --server install both CAs, certificates still
	// of the old CA.
	renewLaptop()
	assert.Equal(t, []string{oldCA, newCA}, flCAs(t, filepath.Join(bundle, "ca.pem")))
	assert.Equal(t, oldCA, issuerSerial(t, filepath.Join(bundle, "cert.pem"), filepath.Join(op, "ca.pem")))
	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "the CA certificates changed: "+filepath.Join(certs, "ca.pem")+" now holds")
	assert.Contains(t, stderr, "restart it to trust the new CA")
	assert.Equal(t, []string{oldCA, newCA}, flCAs(t, filepath.Join(certs, "ca.pem")))

	// Step 2: switch. The operator's own certificate is renewed from
	// the new CA at once.
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--switch")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "step 2 of 3")
	assert.Contains(t, stderr, "renewed the operator's certificate")
	assert.Equal(t, newCA, issuerSerial(t, filepath.Join(op, "cert.pem"), filepath.Join(op, "ca.pem")))

	out, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--status")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "CA rotation: step 2 of 3 (switch)")
	assert.Regexp(t, `client "alice" serial [0-9a-f]+`, out)
	assert.Regexp(t, `server "docker1.example.com" serial [0-9a-f]+`, out)
	assert.Contains(t, out, "next: dtls rotate-ca --finish --operator "+op)

	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--finish")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "cannot drop the old CA yet: 2 certificates still chain to the old CA")
	assert.Contains(t, stderr, `client "alice"`)

	// Renewed again: of the new CA now.
	renewLaptop()
	assert.Equal(t, newCA, issuerSerial(t, filepath.Join(bundle, "cert.pem"), filepath.Join(op, "ca.pem")))
	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, stderr, "the CA certificates changed")
	assert.Equal(t, newCA, issuerSerial(t, filepath.Join(certs, "server-cert.pem"), filepath.Join(op, "ca.pem")))

	// Step 3: finish.
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--finish")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "step 3 of 3")
	assert.Equal(t, []string{newCA}, flCAs(t, filepath.Join(op, "ca.pem")))
	assert.Equal(t, []string{newCA}, flCAs(t, filepath.Join(caDir, cahost.CACertFile)))
	assert.Equal(t, newCA, issuerSerial(t, filepath.Join(caDir, cahost.TLSCertFile), filepath.Join(op, "ca.pem")))
	for _, f := range []string{cahost.RotationFile, cahost.NextCACertFile, cahost.NextCAKeyFile} {
		assert.NoFileExists(t, filepath.Join(caDir, f))
	}
	out, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--status")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "no CA rotation in progress")

	// The host and the laptop follow: only the new CA.
	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{newCA}, flCAs(t, filepath.Join(certs, "ca.pem")))
	renewLaptop()
	assert.Equal(t, []string{newCA}, flCAs(t, filepath.Join(bundle, "ca.pem")))

	// Three renewals in a row: the CA's bound (caserver.MaxListedRenewals)
	// refuses a fourth for now, saying until when; the new key is kept
	// for the next try.
	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	assert.Equal(t, exitFailure, code)
	assert.Regexp(t, `dtls: error: server "docker1\.example\.com" \(serial [0-9a-f]+\) renewed too recently: next renewal allowed after \S+ `, stderr)
	assert.Contains(t, stderr, "dtls: hint: run 'dtls renew --server' again after that time")
	assert.FileExists(t, filepath.Join(state, authority.PendingServerKeyFile))
}

// issuerSerial is the serial of the CA of caFile that signed the
// certificate in certFile.
func issuerSerial(t *testing.T, certFile, caFile string) string {
	t.Helper()
	c, err := pki.ParseCertificate(flRead(t, certFile))
	require.NoError(t, err)
	cas, err := pki.ParseCertificates(flRead(t, caFile))
	require.NoError(t, err)
	for _, ca := range cas {
		if c.CheckSignatureFrom(ca) == nil {
			return pki.Serial(ca)
		}
	}
	return ""
}

// TestRotateCAOnlineSwitchRefused: 'dtls rotate-ca --operator DIR
// --switch' is refused, as the local one, while a laptop enrolled before
// step 1 has not renewed (its ca.pem trusts only the old CA): the refusal
// and --status name it. 'dtls agent --once' renews a laptop at once during
// the rotation, although it is not due; --force switches without the
// other one and names it as cut.
func TestRotateCAOnlineSwitchRefused(t *testing.T) {
	t.Parallel()
	caDir, url, srv := flServeCAHost(t)
	op := filepath.Join(caDir, cahost.OperatorDir)
	laptop := func(name string) map[string]string {
		tok, err := srv.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: name, Role: "developer"})
		require.NoError(t, err)
		env, _, _ := flLaptopEnv(t)
		_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", url, tok.Token, "--docker-host", "tcp://docker1.example.com:2376")
		require.Equal(t, 0, code, stderr)
		return env
	}
	alice := laptop("alice")
	laptop("bob")

	_, stderr, code := dtls(t, time.Now(), "rotate-ca", "--operator", op)
	require.Equal(t, 0, code, stderr)
	out, stderr, code := dtls(t, time.Now(), "rotate-ca", "--operator", op, "--status")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "holding up 'dtls rotate-ca --switch': clients issued before step 1")
	assert.Regexp(t, `client "alice" serial [0-9a-f]+`, out)
	assert.Regexp(t, `client "bob" serial [0-9a-f]+`, out)

	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--switch")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "dtls: error: cannot switch the daemon to the new CA: 2 clients of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA): ")
	assert.Contains(t, stderr, `"alice" (serial `)
	assert.Contains(t, stderr, `"bob" (serial `)
	out, _, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--status")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "step 1 of 3", "a refused switch changed the step")

	// alice's agent renews at its next run, far from due.
	_, stderr, code = runWithEnv(t, time.Now(), alice, "agent", "--once")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `before its schedule: the CA is rotating (step trust): ca.pem does not trust both CAs yet`)
	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--switch")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "1 client of the old CA would not verify it")
	assert.NotContains(t, stderr, `"alice"`)

	_, stderr, code = dtls(t, time.Now(), "rotate-ca", "--operator", op, "--switch", "--force")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "step 2 of 3")
	assert.Contains(t, stderr, "clients whose ca.pem trusts only the old CA (--force): they cannot verify a host renewed from now on until they renew (1):")
	assert.Regexp(t, `client "bob" serial [0-9a-f]+`, stderr)
}
