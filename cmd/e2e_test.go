package cmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

// runWithEnv runs dtls in-process with env as its whole environment.
func runWithEnv(t *testing.T, now time.Time, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(args, IO{
		In: strings.NewReader(""), Out: &out, ErrOut: &errOut,
		Now:    func() time.Time { return now },
		Getenv: func(k string) string { return env[k] },
	})
	return out.String(), errOut.String(), code
}

// dtls runs the command in-process and returns stdout, stderr and the exit
// code.
func dtls(t *testing.T, now time.Time, args ...string) (string, string, int) {
	t.Helper()
	return runWithEnv(t, now, nil, args...)
}

// dockerCLI finds the Docker CLI; the tests need it as much as dockerd.
func dockerCLI(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("docker")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker CLI not found: %v", err)
		}
		t.Skipf("docker CLI not found: %v", err)
	}
	return p
}

// runDocker runs the Docker CLI with a clean environment: no DOCKER_*
// variable and no ~/.docker of the user running the tests.
func runDocker(t *testing.T, docker string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tlsHost is a Docker host as 'dtls init' leaves it, every path under one
// sandbox directory, with a real dockerd started from the merged daemon.json
// and listening with tlsverify on 127.0.0.1:Port.
type tlsHost struct {
	Dir, State, Certs, DaemonJSON, Systemd string
	Port                                   int
	Daemon                                 *sandbox.Daemon
}

// newTLSHost runs 'dtls init' at initNow (with extra flags) into a
// daemon.json that already holds the sandbox's keys, then starts dockerd.
// Both are cleaned up when t ends.
func newTLSHost(t *testing.T, initNow time.Time, extra ...string) *tlsHost {
	t.Helper()
	sandbox.Require(t)
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	h := &tlsHost{Dir: dir, State: filepath.Join(dir, "state"), Certs: filepath.Join(dir, "certs"),
		DaemonJSON: filepath.Join(dir, "daemon.json"), Systemd: filepath.Join(dir, "systemd"), Port: port}
	require.NoError(t, atomicfile.Write(h.DaemonJSON, sandbox.BaseConfig(dir), 0o644))
	require.NoError(t, os.Mkdir(h.Systemd, 0o755))
	_, stderr, code := dtls(t, initNow, append([]string{"init",
		"--state-dir", h.State, "--certs-dir", h.Certs, "--daemon-json", h.DaemonJSON, "--systemd-dir", h.Systemd,
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1"}, extra...)...)
	require.Equal(t, 0, code, stderr)
	h.Daemon, err = sandbox.Start(context.Background(), dir, h.DaemonJSON)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, h.Daemon.Stop()) })
	return h
}

// TestEndToEnd is the whole flow against a real dockerd: init merges into a
// daemon.json that already holds the sandbox's keys, dockerd starts from it,
// a client bundle plus `dtls env` lets the Docker CLI in over verified TLS,
// and every wrong client is refused.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	docker := dockerCLI(t)
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.Ed25519, pki.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			endToEnd(t, docker, kt)
		})
	}
}

func endToEnd(t *testing.T, docker string, kt pki.KeyType) {
	now := time.Now()
	// The CA is made in the past so that the expired client certificate
	// below was once valid under it.
	h := newTLSHost(t, now.Add(-90*24*time.Hour), "--key-type", string(kt))
	dir, state, certs, port := h.Dir, h.State, h.Certs, h.Port

	bundle := filepath.Join(dir, "alice")
	_, stderr, code := dtls(t, now, "issue-client", "alice", "--state-dir", state, "--out", bundle, "--key-type", string(kt))
	require.Equal(t, 0, code, stderr)

	// The developer's side: eval the output of dtls env in bash, then run
	// docker version against the daemon.
	envOut, stderr, code := dtls(t, now, "env", "--cert-path", bundle, "--shell", "bash")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, envOut, fmt.Sprintf("export DOCKER_HOST='tcp://127.0.0.1:%d'", port))
	script := filepath.Join(dir, "env.sh")
	require.NoError(t, os.WriteFile(script, []byte(envOut), 0o600))
	out, err := runDocker(t, "/bin/bash", nil, "-c", `eval "$(cat "$1")" && exec "$2" version --format '{{.Server.Version}}'`, "bash", script, docker)
	require.NoError(t, err, out)
	assert.Regexp(t, `^\d+\.\d+`, strings.TrimSpace(out))

	host := []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1"}
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	require.NoError(t, err)

	// A client with no certificate at all.
	noCert := writeCertDir(t, caPEM, nil, nil)
	// A client whose certificate comes from another CA.
	other, err := pki.NewCA(pki.CARequest{KeyType: kt, Now: now})
	require.NoError(t, err)
	foreign, err := other.Issue(pki.Request{Kind: pki.KindClient, CommonName: "mallory", KeyType: kt, Now: now})
	require.NoError(t, err)
	foreignDir := writeCertDir(t, caPEM, foreign.CertPEM, foreign.KeyPEM)
	// A client presenting the server's own certificate: signed by the
	// right CA, but its extended key usage is serverAuth only.
	srvCert, err := os.ReadFile(filepath.Join(certs, "server-cert.pem"))
	require.NoError(t, err)
	srvKey, err := os.ReadFile(filepath.Join(certs, "server-key.pem"))
	require.NoError(t, err)
	serverAsClient := writeCertDir(t, caPEM, srvCert, srvKey)
	// A client certificate from the right CA that has expired.
	expiredBundle := filepath.Join(dir, "old")
	_, stderr, code = dtls(t, now.Add(-60*24*time.Hour), "issue-client", "old", "--state-dir", state, "--out", expiredBundle, "--days", "30", "--key-type", string(kt))
	require.Equal(t, 0, code, stderr)
	oldCert, err := pki.ParseCertificate(mustRead(t, filepath.Join(expiredBundle, "cert.pem")))
	require.NoError(t, err)
	require.True(t, oldCert.NotAfter.Before(now), "the test certificate must be expired")
	// The same CA also accepts it if it were valid: prove that expiry is the
	// only reason for the refusal.
	ca, err := pki.ParseCertificate(caPEM)
	require.NoError(t, err)
	require.NoError(t, pki.Verify(oldCert, []*x509.Certificate{ca}, pki.KindClient, now.Add(-40*24*time.Hour)))

	for name, certDir := range map[string]string{
		"no certificate":      noCert,
		"another CA":          foreignDir,
		"server's own cert":   serverAsClient,
		"expired client cert": expiredBundle,
	} {
		t.Run(name, func(t *testing.T) {
			out, err := runDocker(t, docker, append(host, "DOCKER_CERT_PATH="+certDir), "version", "--format", "{{.Server.Version}}")
			require.Error(t, err, "the daemon accepted a client with %s: %s", name, out)
			// The refusal must come from the TLS handshake, not from a
			// daemon that is down. TLS 1.3 clients send their certificate
			// after the handshake completes on their side, so the refusal
			// may arrive as an alert or as a reset of the connection.
			assert.Regexp(t, `remote error: tls|certificate|connection reset by peer|broken pipe|EOF`, out)
			assert.NotContains(t, out, "connection refused")
		})
	}

	// After all refusals the good client still works: the daemon is up.
	out, err = runDocker(t, docker, append(host, "DOCKER_CERT_PATH="+bundle), "version", "--format", "{{.Server.Version}}")
	require.NoError(t, err, out)
}

// writeCertDir makes a DOCKER_CERT_PATH directory; a nil cert leaves
// cert.pem and key.pem out.
func writeCertDir(t *testing.T, ca, cert, key []byte) string {
	t.Helper()
	d := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(d, "ca.pem"), ca, 0o644))
	if cert != nil {
		require.NoError(t, os.WriteFile(filepath.Join(d, "cert.pem"), cert, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(d, "key.pem"), key, 0o600))
	}
	return d
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// TestLifecycleDockerd runs renew --server and a CA rotation against a
// real dockerd: after the renewal and a restart the daemon presents the new
// serial and clients still connect; during the rotation clients of both
// CAs connect; after --finish and a restart the old CA's client is refused
// and the new one's connects.
func TestLifecycleDockerd(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	docker := dockerCLI(t)
	now := time.Now()
	h := newTLSHost(t, now)
	dir, state, certs, port, d := h.Dir, h.State, h.Certs, h.Port, h.Daemon
	run := func(args ...string) string {
		t.Helper()
		_, stderr, code := dtls(t, now, append(args, "--state-dir", state)...)
		require.Equal(t, 0, code, stderr)
		return stderr
	}

	alice := filepath.Join(dir, "alice")
	run("issue-client", "alice", "--out", alice)
	host := []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", port), "DOCKER_TLS_VERIFY=1"}
	connects := func(bundle string) error {
		t.Helper()
		out, err := runDocker(t, docker, append(host, "DOCKER_CERT_PATH="+bundle), "version", "--format", "{{.Server.Version}}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	require.NoError(t, connects(alice))

	// renew --server: a restart is needed, then the new serial is served.
	before := servedSerial(t, port, alice)
	out := run("renew", "--server")
	assert.Contains(t, out, "restart needed")
	renewed := serialOfFile(t, filepath.Join(certs, authority.ServerCertFile))
	require.NotEqual(t, before, renewed)
	assert.Equal(t, before, servedSerial(t, port, alice), "dockerd serves the old certificate until restarted")
	require.NoError(t, d.Restart(context.Background()))
	assert.Equal(t, renewed, servedSerial(t, port, alice))
	require.NoError(t, connects(alice))

	// rotate-ca: alice (old CA) and bob (new CA) both connect.
	run("rotate-ca")
	bob := filepath.Join(dir, "bob")
	run("issue-client", "bob", "--out", bob)
	require.NoError(t, d.Restart(context.Background()))
	assert.NoError(t, connects(alice), "old-CA client during the rotation")
	assert.NoError(t, connects(bob), "new-CA client during the rotation")

	// --switch (alice's bundle at its recorded path trusts both CAs) and
	// --finish: alice is refused, bob connects.
	run("rotate-ca", "--switch", "--force")
	run("rotate-ca", "--finish", "--force")
	require.NoError(t, d.Restart(context.Background()))
	err := connects(alice)
	require.Error(t, err, "the daemon accepted a client of the dropped CA")
	assert.Regexp(t, `remote error: tls|certificate|connection reset by peer|broken pipe|EOF`, err.Error())
	assert.NoError(t, connects(bob))
}

// servedSerial connects to the daemon with a bundle and returns the serial
// of the certificate it presents.
func servedSerial(t *testing.T, port int, bundle string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(bundle, "cert.pem"), filepath.Join(bundle, "key.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(mustRead(t, filepath.Join(bundle, "ca.pem"))))
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	return pki.Serial(conn.ConnectionState().PeerCertificates[0])
}

// serialOfFile is the hex serial of the certificate in a PEM file.
func serialOfFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	c, err := pki.ParseCertificate(b)
	require.NoError(t, err)
	return pki.Serial(c)
}
