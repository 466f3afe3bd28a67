package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

// rotationLaptop is a developer's machine: a home of its own, where 'dtls
// import' installs bundles and 'dtls context create' writes contexts.
type rotationLaptop struct {
	t   *testing.T
	env map[string]string
}

func newRotationLaptop(t *testing.T) *rotationLaptop {
	home := t.TempDir()
	return &rotationLaptop{t: t, env: map[string]string{"HOME": home, "DOCKER_CONFIG": filepath.Join(home, ".docker")}}
}

// dtls runs dtls on the laptop with in as standard input; it must exit 0.
func (l *rotationLaptop) dtls(in []byte, args ...string) string {
	l.t.Helper()
	var out, errOut bytes.Buffer
	code := Run(args, IO{In: bytes.NewReader(in), Out: &out, ErrOut: &errOut, Now: time.Now, Getenv: func(k string) string { return l.env[k] }})
	require.Equal(l.t, 0, code, "laptop: dtls %v: %s", args, errOut.String())
	return errOut.String()
}

// bundle is the directory 'dtls import --name prod' installed.
func (l *rotationLaptop) bundle() string {
	return filepath.Join(l.env["HOME"], ".docker", "dtls", "prod")
}

// TestRotationKeepsLaptopsWorking rotates the CA of a real dockerd and of
// a second daemon of the fleet (issue-server, init --ca-from), while alice
// works from a bundle imported on her laptop (never the copy at its
// recorded path) and from a Docker context made from it: no step cuts her
// off. Bob's bundle, imported before the rotation and never renewed, holds
// up --switch; after --switch --force it fails with "certificate signed by
// unknown authority", so the refusal was right.
func TestRotationKeepsLaptopsWorking(t *testing.T) {
	t.Parallel()
	docker := dockerCLI(t)
	ctx := context.Background()
	now := time.Now()
	h := newTLSHost(t, now)
	host := func(at time.Time, args ...string) string {
		t.Helper()
		_, stderr, code := dtls(t, at, append(args, "--state-dir", h.State)...)
		require.Equal(t, 0, code, "dtls %v: %s", args, stderr)
		return stderr
	}

	// The second daemon: its own sandbox directory, port, certs,
	// daemon.json and state directory; its bundle is made on the CA host.
	dir2, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir2) })
	port2, err := sandbox.FreePort()
	require.NoError(t, err)
	json2 := filepath.Join(dir2, "daemon.json")
	require.NoError(t, atomicfile.Write(json2, sandbox.BaseConfig(dir2), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir2, "systemd"), 0o755))
	srv2 := filepath.Join(h.Dir, "docker2")
	host(now, "issue-server", "docker2", "--host", "localhost", "--host", "127.0.0.1", "--out", srv2)
	// On the second daemon's host (the bundle directory is copied there;
	// here it is the same machine).
	installFleet := func() {
		t.Helper()
		_, stderr, code := dtls(t, now, "init", "--ca-from", srv2, "--state-dir", filepath.Join(dir2, "state"),
			"--certs-dir", filepath.Join(dir2, "certs"), "--daemon-json", json2, "--systemd-dir", filepath.Join(dir2, "systemd"),
			"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port2))
		require.Equal(t, 0, code, stderr)
	}
	installFleet()
	d2, err := sandbox.Start(ctx, dir2, json2)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d2.Stop()) })
	// Both daemons restart at once: each waits for its own dockerd.
	restart := func(ds ...*sandbox.Daemon) {
		t.Helper()
		errs := make([]error, len(ds))
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Go(func() { errs[i] = d.Restart(ctx) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
	}

	// Alice and bob get archives and import them on their laptops; alice
	// also makes a Docker context.
	laptops := map[string]*rotationLaptop{}
	for _, n := range []string{"alice", "bob"} {
		archive := filepath.Join(h.Dir, n+".tar.gz")
		host(now, "issue-client", n, "--out", filepath.Join(h.Dir, n), "--archive", archive, "--docker-host", fmt.Sprintf("tcp://localhost:%d", h.Port))
		laptops[n] = newRotationLaptop(t)
		laptops[n].dtls(nil, "import", archive, "--name", "prod")
	}
	alice, bob := laptops["alice"], laptops["bob"]
	alice.dtls(nil, "context", "create", "prod")

	daemon1, daemon2 := fmt.Sprintf("tcp://localhost:%d", h.Port), fmt.Sprintf("tcp://localhost:%d", port2)
	// version runs 'docker version' against a daemon with a laptop's
	// bundle, or through its context when daemon is "".
	version := func(l *rotationLaptop, daemon string) error {
		t.Helper()
		env := []string{"DOCKER_HOST=" + daemon, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + l.bundle()}
		args := []string{"version", "--format", "{{.Server.Version}}"}
		if daemon == "" {
			env = []string{"DOCKER_CONFIG=" + l.env["DOCKER_CONFIG"]}
			args = append([]string{"--context", "prod"}, args...)
		}
		out, err := runDocker(t, docker, env, args...)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	aliceWorks := func(when string) {
		t.Helper()
		assert.NoError(t, version(alice, daemon1), "%s: alice's bundle against the daemon", when)
		assert.NoError(t, version(alice, daemon2), "%s: alice's bundle against the second daemon", when)
		assert.NoError(t, version(alice, ""), "%s: alice's docker context", when)
	}
	aliceWorks("before the rotation")
	require.NoError(t, version(bob, daemon1))

	// Step 1, and on the second daemon what rotate-ca says to run there.
	out := host(now, "rotate-ca")
	assert.Contains(t, out, fmt.Sprintf("then run there: sudo dtls init --ca-from %s --restart", srv2))
	installFleet()
	restart(h.Daemon, d2)
	aliceWorks("step 1")
	assert.NoError(t, version(bob, daemon1), "step 1: bob")
	laptopCA, err := pki.ParseCertificates(mustRead(t, filepath.Join(alice.bundle(), "ca.pem")))
	require.NoError(t, err)
	require.Len(t, laptopCA, 1, "the laptop's copy trusts only the old CA: the test would prove nothing")

	// Alice's renewal reaches her laptop through a pipe, as over ssh: a
	// certificate of the new CA, with both CAs (a minute later:
	// certificate times have whole seconds).
	renewed, stderr, code := dtls(t, now.Add(time.Minute), "renew", "alice", "--state-dir", h.State, "--archive", "-")
	require.Equal(t, 0, code, stderr)
	// It is signed by a CA her bundle does not trust: taken in place only
	// with the new CA's fingerprint, which the host's step 1 printed.
	newCA, err := pki.ParseCertificate(mustRead(t, filepath.Join(h.State, "ca.pem")))
	require.NoError(t, err)
	fp := pki.Fingerprint(newCA)
	assert.Contains(t, out, "dtls import FILE --new-ca "+fp)
	var refusal bytes.Buffer
	code = Run([]string{"import", "-", "--name", "prod"}, IO{In: strings.NewReader(renewed), Out: io.Discard, ErrOut: &refusal, Now: time.Now, Getenv: func(k string) string { return alice.env[k] }})
	assert.Equal(t, 1, code, refusal.String())
	assert.Contains(t, refusal.String(), "pass --new-ca "+fp)
	assert.Contains(t, alice.dtls([]byte(renewed), "import", "-", "--name", "prod", "--new-ca", fp), `refreshed docker context "prod"`)
	aliceWorks("renewed at step 1")

	// Step 2 is held up by bob, and by him only.
	_, stderr, code = dtls(t, now, "rotate-ca", "--switch", "--state-dir", h.State)
	require.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, `trusts only the old CA: client "bob"`)
	assert.Contains(t, stderr, "dtls renew bob --archive bob.tar.gz, then on bob's machine: dtls import bob.tar.gz")
	assert.Contains(t, stderr, "1 client of the old CA would not verify it")
	assert.NotContains(t, stderr, `"alice"`)
	out = host(now, "rotate-ca", "--switch", "--force")
	assert.Contains(t, out, fmt.Sprintf("dtls renew docker2, then copy %s to docker2 (it holds the server key), then run there: sudo dtls init --ca-from %s --restart", srv2, srv2))
	restart(h.Daemon)
	aliceWorks("step 2")
	err = version(bob, daemon1)
	require.Error(t, err, "bob's bundle of the old CA verified a server certificate of the new CA")
	assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority")
	// What --switch says for the second daemon.
	host(now, "renew", "docker2")
	installFleet()
	restart(d2)
	aliceWorks("step 2, second daemon switched")
	err = version(bob, daemon2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority")

	// Step 3, once bob is revoked: nothing of the old CA is in use.
	host(now, "revoke", "bob")
	out = host(now, "rotate-ca", "--finish")
	assert.Contains(t, out, "dtls renew docker2")
	restart(h.Daemon)
	aliceWorks("step 3")
	assert.Equal(t, mustRead(t, filepath.Join(h.State, "ca.pem")), mustRead(t, filepath.Join(h.Certs, "ca.pem")), "the daemon still trusts the old CA")
	// The second daemon drops the old CA once it installs a bundle renewed
	// after --finish.
	host(now, "renew", "docker2")
	installFleet()
	restart(d2)
	aliceWorks("step 3, second daemon")
	assert.Equal(t, mustRead(t, filepath.Join(h.State, "ca.pem")), mustRead(t, filepath.Join(dir2, "certs", "ca.pem")))
}
