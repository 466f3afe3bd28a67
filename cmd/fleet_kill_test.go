package cmd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// runKilled starts dtls with args and sends it SIGKILL after delay, unless
// it ends first. It reports whether the kill ended it, and its output.
func runKilled(t *testing.T, exe string, delay time.Duration, args ...string) (killed bool, out string, err error) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	// A killed run's temporary files (init's merged daemon.json for
	// dockerd --validate) stay in the test's directory, not in /tmp.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case err = <-done:
		return false, buf.String(), err
	case <-timer.C:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = <-done
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return true, buf.String(), err
			}
		}
		return false, buf.String(), err
	}
}

// checkEnrolledBundle checks that dir holds a whole bundle: its key is its
// certificate's, the certificate chains to the CA, and no key is left
// outside the bundle's final files (no pending key, no temporary
// directory next to it).
func checkEnrolledBundle(t *testing.T, ca *catest.CA, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	require.NoError(t, err, "bundle %s", dir)
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	require.NoError(t, pki.Verify(cert, []*x509.Certificate{ca.CACert}, pki.KindClient, time.Now()))
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	require.Contains(t, string(caPEM), strings.TrimSpace(string(ca.CAPEM)))
	require.NoFileExists(t, filepath.Join(dir, agent.PendingKeyFile))
	entries, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), "enroll-key.pem"),
			"%s left next to the bundle", e.Name())
	}
	return cert
}

// TestFleetKill9 kills `dtls enroll` and `dtls agent --once` with SIGKILL
// at random moments of their runs. After each kill, the same command run
// again finishes the work: enroll with the same token installs the
// bundle, the agent renews; the bundle is then whole, its certificate is
// good in the CA's inventory, and no key is left anywhere but in it.
func TestFleetKill9(t *testing.T) {
	t.Parallel()
	cflog.Level = cflog.LevelError
	iterations := 40
	if testing.Short() {
		iterations = 10
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	// The CA's clock is 65 s behind: its 90 s certificates are past two
	// thirds of their life when they are made, so every agent run renews,
	// and each is still valid 25 s of real time, for a loaded machine;
	// the CA's bound on renewals (caserver.MaxListedRenewals) is lifted
	// for this loop.
	ca := catest.Start(t, catest.Options{ClientValidity: 90 * time.Second, MaxListedRenewals: -1, Now: func() time.Time { return time.Now().Add(-65 * time.Second) }})
	exe := dtlsExe(t)
	root := t.TempDir()
	good := func(c *x509.Certificate) {
		t.Helper()
		rec, err := ca.Store.Get(pki.Serial(c))
		require.NoError(t, err)
		require.NotNil(t, rec, "certificate %s in the bundle is not in the CA's inventory", pki.Serial(c))
		require.Equal(t, store.StatusGood, rec.Status)
	}

	// Enrolment: a full run first, to know how long one takes.
	enroll := func(name string) []string {
		tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: name, Role: "readonly"})
		return []string{"enroll", ca.URL, tok, "--dir", filepath.Join(root, name), "--docker-host", "tcp://127.0.0.1:2376"}
	}
	start := time.Now()
	killed, out, err := runKilled(t, exe, time.Minute, enroll("first")...)
	require.False(t, killed)
	require.NoError(t, err, out)
	span := time.Since(start)
	kills := 0
	for i := 0; i < iterations/2; i++ {
		name := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		args := enroll(name)
		killed, out, err := runKilled(t, exe, time.Duration(rng.Int63n(int64(span))), args...)
		if killed {
			kills++
			// Killed before the bundle was in place: the same command,
			// with the same token, finishes the work.
			if _, serr := os.Stat(filepath.Join(root, name)); serr != nil {
				_, out, err = runKilled(t, exe, time.Minute, args...)
			} else {
				// The next command on the bundle (the agent) finishes
				// what the enrolment left.
				_, out, err = runKilled(t, exe, time.Minute, "agent", "--once", "--jitter=false", "--dir", filepath.Join(root, name))
			}
		}
		require.NoError(t, err, "iteration %d (killed %v): %s", i, killed, out)
		good(checkEnrolledBundle(t, ca, filepath.Join(root, name)))
	}

	// Renewal: kill the agent, then let it run, on a bundle enrolled
	// now (not the first one, whose certificate the enrolments' loop may
	// have outlived).
	dir := filepath.Join(root, "renewer")
	killed, out, err = runKilled(t, exe, time.Minute, enroll("renewer")...)
	require.False(t, killed)
	require.NoError(t, err, out)
	start = time.Now()
	killed, out, err = runKilled(t, exe, time.Minute, "agent", "--once", "--jitter=false", "--dir", dir)
	require.False(t, killed)
	require.NoError(t, err, out)
	require.Contains(t, out, "renewed")
	span = time.Since(start)
	renewals := 0
	for i := 0; i < iterations/2; i++ {
		before := checkEnrolledBundle(t, ca, dir)
		killed, out, err := runKilled(t, exe, time.Duration(rng.Int63n(int64(span))), "agent", "--once", "--jitter=false", "--dir", dir)
		if killed {
			kills++
			_, out, err = runKilled(t, exe, time.Minute, "agent", "--once", "--jitter=false", "--dir", dir)
		}
		require.NoError(t, err, "iteration %d (killed %v): %s", i, killed, out)
		after := checkEnrolledBundle(t, ca, dir)
		good(after)
		if pki.Serial(after) != pki.Serial(before) {
			renewals++
		}
	}
	t.Logf("%d runs killed; %d renewals", kills, renewals)
	require.Positive(t, kills, "no run was killed before it ended")
	require.Equal(t, iterations/2, renewals, "every agent run renews a certificate past two thirds of its life")
}

// TestFleetInitKill9 kills `dtls init --ca-url URL --token T` at random
// moments. The same command run again finishes the work: it finishes an
// interrupted change first, keeps a host that is set up, and otherwise
// enrols with the saved key, to which the CA answers the same
// certificate for the used token. The host is then
// whole: the server key and certificate match and chain to the fleet CA,
// daemon.json has tlsverify, and no key is left beside the state
// directory.
func TestFleetInitKill9(t *testing.T) {
	t.Parallel()
	cflog.Level = cflog.LevelError
	iterations := 16
	if testing.Short() {
		iterations = 4
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	ca := catest.Start(t, catest.Options{})
	exe := dtlsExe(t)
	host := func() (string, []string) {
		w := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(w, "systemd"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(w, "daemon.json"), []byte("{}\n"), 0o644))
		return w, []string{"init", "--state-dir", filepath.Join(w, "state"), "--certs-dir", filepath.Join(w, "certs"),
			"--daemon-json", filepath.Join(w, "daemon.json"), "--systemd-dir", filepath.Join(w, "systemd"),
			"--listen", "tcp://127.0.0.1:2376"}
	}
	token := func() string {
		return ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "localhost", Hosts: []string{"localhost", "127.0.0.1"}})
	}
	check := func(w string) {
		t.Helper()
		certs := filepath.Join(w, "certs")
		pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "server-cert.pem"), filepath.Join(certs, "server-key.pem"))
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		require.NoError(t, err)
		require.NoError(t, pki.Verify(cert, []*x509.Certificate{ca.CACert}, pki.KindServer, time.Now()))
		cfg, err := os.ReadFile(filepath.Join(w, "daemon.json"))
		require.NoError(t, err)
		require.Contains(t, string(cfg), `"tlsverify": true`)
		for _, d := range []string{w, certs, filepath.Join(w, "state")} {
			entries, err := os.ReadDir(d)
			require.NoError(t, err)
			for _, e := range entries {
				require.False(t, strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), "enroll-key.pem"),
					"%s left in %s", e.Name(), d)
			}
		}
	}

	w, args := host()
	start := time.Now()
	killed, out, err := runKilled(t, exe, time.Minute, append(args, "--ca-url", ca.URL, "--token", token())...)
	require.False(t, killed)
	require.NoError(t, err, out)
	check(w)
	span := time.Since(start)
	kills := 0
	for i := 0; i < iterations; i++ {
		w, args := host()
		enrol := append(args, "--ca-url", ca.URL, "--token", token())
		killed, out, err := runKilled(t, exe, time.Duration(rng.Int63n(int64(span))), enrol...)
		if killed {
			kills++
			_, out, err = runKilled(t, exe, time.Minute, enrol...)
		}
		require.NoError(t, err, "iteration %d (killed %v): %s", i, killed, out)
		check(w)
	}
	t.Logf("%d of %d runs killed", kills, iterations)
	require.Positive(t, kills, "no run was killed before it ended")
}
