package cmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

// process is a dtls command running as its own process until the test
// ends (SIGTERM to its pid, then wait).
type process struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startProcess(t *testing.T, exe string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(exe, args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("dtls %s:\n%s", strings.Join(args, " "), tailString(p.out.String(), 4000))
		}
	})
	return p
}

func (p *process) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// waitFor polls cond every 50 ms until it holds or timeout passes: the
// wait for an event in another process (a renewal, a refusal) that has no
// other signal.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// onlineCA is `dtls ca serve` on loopback with its inventory in a
// PostgreSQL server of the test.
type onlineCA struct {
	Dir, URL, DSN string
	serve         *process
	exe           string
}

func startOnlineCA(t *testing.T, exe string, clientValidity time.Duration) *onlineCA {
	t.Helper()
	dsn := pgsandbox.Start(t)
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	ca := &onlineCA{Dir: filepath.Join(t.TempDir(), "ca"), URL: fmt.Sprintf("https://127.0.0.1:%d", port), DSN: dsn, exe: exe}
	// The first operator's certificate has the client lifetime init is
	// given: an hour, so that it outlives the test; the clients' lifetime
	// is then set in ca.json, which 'dtls ca serve' reads at each start.
	_, stderr, code := dtls(t, time.Now(), "ca", "init", "--state-dir", ca.Dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--host", "127.0.0.1", "--url", ca.URL, "--db-url", dsn, "--unit-dir", "", "--client-validity", time.Hour.String())
	require.Equal(t, 0, code, stderr)
	if clientValidity != time.Hour {
		setClientValidity(t, filepath.Join(ca.Dir, "ca.json"), clientValidity)
	}
	ca.start(t)
	return ca
}

// setClientValidity changes client_validity in the online CA's ca.json,
// keeping the rest and the file's mode.
func setClientValidity(t *testing.T, path string, d time.Duration) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.Contains(t, cfg, "client_validity")
	cfg["client_validity"] = d.String()
	b, err = json.MarshalIndent(cfg, "", "  ")
	require.NoError(t, err)
	require.NoError(t, atomicfile.Write(path, append(b, '\n'), fi.Mode().Perm()))
}

func (ca *onlineCA) start(t *testing.T) {
	t.Helper()
	ca.serve = startProcess(t, ca.exe, "ca", "serve", "--state-dir", ca.Dir)
	c := ca.operator(t)
	waitFor(t, 30*time.Second, "the CA answers", func() bool {
		_, err := c.CA(context.Background())
		return err == nil
	})
}

func (ca *onlineCA) operator(t *testing.T) *fleet.Client {
	t.Helper()
	dir := filepath.Join(ca.Dir, "operator")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	return &fleet.Client{URL: ca.URL, Roots: roots, Certificate: &cert}
}

func (ca *onlineCA) token(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := dtls(t, time.Now(), append([]string{"ca", "token", "--state-dir", ca.Dir}, args...)...)
	require.Equal(t, 0, code, stderr)
	tok := strings.TrimSpace(out)
	_, err := fleet.ParseToken(tok)
	require.NoError(t, err, "stdout is the token alone: %q", out)
	return tok
}

// fleetHost is a sandboxed dockerd enrolled with the online CA, with the
// authorization plugin following the CA's revocation list.
type fleetHost struct {
	Port   int
	Plugin *authzPlugin
}

func newFleetHost(t *testing.T, ca *onlineCA) *fleetHost {
	t.Helper()
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	state, certs, daemonJSON, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "daemon.json"), filepath.Join(dir, "systemd")
	require.NoError(t, atomicfile.Write(daemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, os.Mkdir(systemd, 0o755))
	initArgs := []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", daemonJSON, "--systemd-dir", systemd,
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port)}
	tok := ca.token(t, "--host", "localhost", "--san", "127.0.0.1")
	_, stderr, code := dtls(t, time.Now(), append(initArgs, "--ca-url", ca.URL, "--token", tok)...)
	require.Equal(t, 0, code, stderr)
	// No CA key on the host: only the fleet CA's certificate.
	for _, name := range []string{"ca-key.pem"} {
		assert.NoFileExists(t, filepath.Join(state, name))
		assert.NoFileExists(t, filepath.Join(certs, name))
	}
	// The plugin follows the CA named in server.json, then init --authz
	// (no token: the host is enrolled) names it in daemon.json.
	// The list is fetched every second (the shortest --crl-refresh), not
	// every 5 s, so that a revocation shows sooner.
	h := &fleetHost{Port: port, Plugin: startAuthzPlugin(t, state, dir, "--crl-refresh", "1s")}
	_, stderr, code = dtls(t, time.Now(), append(initArgs, "--authz", "--authz-socket", h.Plugin.Socket)...)
	require.Equal(t, 0, code, stderr)
	d, err := sandbox.Start(context.Background(), dir, daemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Stop()) })
	return h
}

func bundleSerial(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	require.NoError(t, err)
	c, err := pki.ParseCertificate(b)
	require.NoError(t, err)
	return pki.Serial(c)
}

// TestFleetWithRealDockers: one online CA (PostgreSQL inventory) and two
// sandboxed dockerds enrolled with tokens, each with the plugin following
// the CA's revocation list. A client enrolled once works against both; its
// agent renews its short-lived certificate and it keeps working; after a
// revocation on the CA both daemons refuse it within 10 s and its agent's
// next renewal is refused; a used token is refused; with the CA down,
// enrolment fails and changes nothing, the agent keeps the bundle, and the
// daemons keep serving and enforcing the last list.
func TestFleetWithRealDockers(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	sandbox.Require(t)
	exe := dtlsExe(t)
	ca := startOnlineCA(t, exe, 12*time.Second)
	hosts := []*fleetHost{newFleetHost(t, ca), newFleetHost(t, ca)}

	bundles := t.TempDir()
	enroll := func(name, role string) (string, string) {
		tok := ca.token(t, "--client", name, "--role", role)
		dir := filepath.Join(bundles, name)
		_, stderr, code := dtls(t, time.Now(), "enroll", ca.URL, tok, "--dir", dir,
			"--docker-host", fmt.Sprintf("tcp://127.0.0.1:%d", hosts[0].Port))
		require.Equal(t, 0, code, stderr)
		return dir, tok
	}
	alice, aliceToken := enroll("alice", "developer")
	bob, _ := enroll("bob", "readonly")
	// The agent looks after both bundles from now on: it renews them
	// before two thirds of their 12 s lifetime, with nothing restarted.
	first := map[string]string{alice: bundleSerial(t, alice), bob: bundleSerial(t, bob)}
	agent := startProcess(t, exe, "agent", "--dir", alice, "--dir", bob)

	// A used token is refused, and nothing is written.
	reused := filepath.Join(bundles, "mallory")
	_, stderr, code := dtls(t, time.Now(), "enroll", ca.URL, aliceToken, "--dir", reused, "--docker-host", "tcp://127.0.0.1:2376")
	require.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "used")
	assert.NoDirExists(t, reused)

	as := func(bundle string, h *fleetHost, args ...string) (string, error) {
		return runDocker(t, docker, []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", h.Port), "DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + bundle}, args...)
	}
	works := func(bundle string) {
		t.Helper()
		for i, h := range hosts {
			out, err := as(bundle, h, "ps")
			require.NoError(t, err, "%s on daemon %d: %s", filepath.Base(bundle), i+1, out)
		}
	}
	works(alice)
	works(bob)
	out, err := as(bob, hosts[1], "create", "busybox")
	require.Error(t, err, "readonly creates a container: %s", out)
	assert.Contains(t, out, "dtls-authz")

	// Both bundles renewed by the agent keep working.
	for _, b := range []string{alice, bob} {
		waitFor(t, 30*time.Second, filepath.Base(b)+" renewed by the agent", func() bool { return bundleSerial(t, b) != first[b] })
	}
	works(alice)
	works(bob)

	// Revocation on the CA: both daemons refuse alice within 10 s.
	_, stderr, code = dtls(t, time.Now(), "revoke", "alice", "--operator", filepath.Join(ca.Dir, "operator"))
	require.Equal(t, 0, code, stderr)
	revokedAt := time.Now()
	for i, h := range hosts {
		waitFor(t, 10*time.Second-time.Since(revokedAt), fmt.Sprintf("daemon %d refuses alice", i+1), func() bool {
			out, err := as(alice, h, "ps")
			return err != nil && strings.Contains(out, "revoked")
		})
		t.Logf("daemon %d refused alice %s after the revocation", i+1, time.Since(revokedAt).Round(10*time.Millisecond))
	}
	works(bob)
	// Its agent's next renewal is refused.
	waitFor(t, 30*time.Second, "the agent's renewal of alice refused", func() bool {
		return strings.Contains(agent.out.String(), "revoked")
	})

	// The CA goes down.
	carolToken := ca.token(t, "--client", "carol")
	ca.serve.stop()
	carol := filepath.Join(bundles, "carol")
	_, stderr, code = dtls(t, time.Now(), "enroll", ca.URL, carolToken, "--dir", carol, "--docker-host", "tcp://127.0.0.1:2376")
	require.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "cannot reach the CA")
	assert.NoDirExists(t, carol)
	// The daemons keep serving bob and refusing alice.
	works(bob)
	for i, h := range hosts {
		out, err := as(alice, h, "ps")
		require.Error(t, err, "daemon %d let alice in with the CA down: %s", i+1, out)
	}
	// The agent cannot renew bob and keeps his bundle.
	bobSerial := bundleSerial(t, bob)
	waitFor(t, 30*time.Second, "the agent reports the CA down", func() bool {
		return strings.Contains(agent.out.String(), "cannot reach the CA")
	})
	assert.Equal(t, bobSerial, bundleSerial(t, bob))

	// Everything the CA handed out is in PostgreSQL.
	st, err := store.OpenPostgres(ca.DSN)
	require.NoError(t, err)
	defer st.Close()
	for _, b := range []string{alice, bob} {
		rec, err := st.Get(bundleSerial(t, b))
		require.NoError(t, err)
		require.NotNil(t, rec)
	}
}

// TestFleetCAKill9DuringBurst: the CA is killed (SIGKILL) while clients
// enrol concurrently; every certificate a client received is in
// PostgreSQL, and the restarted CA serves the rest.
func TestFleetCAKill9DuringBurst(t *testing.T) {
	t.Parallel()
	exe := dtlsExe(t)
	ca := startOnlineCA(t, exe, time.Hour)
	op := ca.operator(t)
	ctx := context.Background()
	const n = 300
	tokens := make([]fleet.Token, n)
	csrs := make([][]byte, n)
	for i := range tokens {
		tr, err := op.NewToken(ctx, fleet.TokenRequest{Kind: store.KindClient, Name: fmt.Sprintf("burst-%d", i), Role: "readonly"})
		require.NoError(t, err)
		tokens[i], err = fleet.ParseToken(tr.Token)
		require.NoError(t, err)
		csrs[i], _, err = pki.NewCSR("x", "")
		require.NoError(t, err)
	}
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &fleet.Client{URL: ca.URL}
			for i := range next {
				resp, err := c.Enroll(ctx, tokens[i], csrs[i])
				if err != nil {
					continue
				}
				cert, err := pki.ParseCertificate([]byte(resp.Certificate))
				if err == nil {
					mu.Lock()
					got = append(got, pki.Serial(cert))
					mu.Unlock()
				}
			}
		}()
	}
	killed := false
	for i := 0; i < n; i++ {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if !killed && k >= 60 {
			require.NoError(t, ca.serve.cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
		next <- i
	}
	close(next)
	wg.Wait()
	require.True(t, killed, "the burst ended before the kill")
	_ = ca.serve.cmd.Wait()
	require.GreaterOrEqual(t, len(got), 60)
	st, err := store.OpenPostgres(ca.DSN)
	require.NoError(t, err)
	defer st.Close()
	for _, serial := range got {
		rec, err := st.Get(serial)
		require.NoError(t, err)
		require.NotNil(t, rec, "certificate %s was handed out but is not in the inventory", serial)
	}
	t.Logf("%d certificates handed out before the kill, all in PostgreSQL", len(got))

	// The restarted CA goes on.
	ca.start(t)
	csr, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	tr, err := op.NewToken(ctx, fleet.TokenRequest{Kind: store.KindClient, Name: "after", Role: "readonly"})
	require.NoError(t, err)
	tok, err := fleet.ParseToken(tr.Token)
	require.NoError(t, err)
	_, err = (&fleet.Client{URL: ca.URL}).Enroll(ctx, tok, csr)
	require.NoError(t, err)
}
