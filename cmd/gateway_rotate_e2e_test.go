package cmd

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/pki"
)

// served is what a new connection with a bundle found: the server
// certificate the gateway served, and whether a request on it was
// answered.
type served struct {
	serial, issuer string
	err            error
}

// dialServed opens a new connection with name's bundle as it is on disk
// now, asks GET /_ping on it and says what the gateway served.
func (h *gatewayHost) dialServed(t *testing.T, name string) served {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), h.tlsConfig(t, name))
	if err != nil {
		return served{err: err}
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	s := served{serial: pki.Serial(leaf), issuer: leaf.Issuer.String()}
	if code, err := pingOn(c, bufio.NewReader(c)); err != nil || code != http.StatusOK {
		s.err = fmt.Errorf("GET /_ping: %d %v", code, err)
	}
	return s
}

// pingOn asks GET /_ping on an open connection.
func pingOn(c net.Conn, br *bufio.Reader) (int, error) {
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestGatewayRotationNoDockerdRestart: on a host in gateway mode ('dtls
// init --gateway'), 'dtls renew --server' and the three 'rotate-ca' steps
// take effect for new connections within a second or two, with the
// server certificate the gateway serves changing as each step says; a
// developer's bundle (renewed at step 1, as rotate-ca asks) works through
// every step, on new connections and on one kept open across the steps
// (one until her renewal, which supersedes the certificate it was opened
// with, refused from then on, then one with the renewed certificate); dockerd's
// process is never restarted; and no command says to restart docker.
func TestGatewayRotationNoDockerdRestart(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	// The host as 'dtls init --gateway' leaves it (the harness's init,
	// run again with --gateway: its units and daemon.json are the
	// sandbox's).
	_, stderr, code := h.dtls(t, "init", "--gateway", "--state-dir", h.State, "--certs-dir", h.Certs,
		"--daemon-json", filepath.Join(h.Dir, "init-daemon.json"), "--systemd-dir", filepath.Join(h.Dir, "systemd"),
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", h.Port), "--host", "localhost", "--host", "127.0.0.1")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, authority.ModeGateway, authority.Mode(h.State))
	h.issue(t, "alice", "developer")
	// Bob's certificate of the old CA is never renewed.
	h.issue(t, "bob", "developer")
	dockerd := h.Daemon.Pid

	// A connection kept open, across the steps.
	var kept *tls.Conn
	var keptR *bufio.Reader
	openKept := func() {
		t.Helper()
		var err error
		kept, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), h.tlsConfig(t, "alice"))
		require.NoError(t, err)
		t.Cleanup(func() { kept.Close() })
		keptR = bufio.NewReader(kept)
		code, err := pingOn(kept, keptR)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	openKept()

	first := h.dialServed(t, "alice")
	require.NoError(t, first.err)
	oldCA := firstCert(t, filepath.Join(h.State, "ca.pem")).Subject.String()
	require.Equal(t, oldCA, first.issuer)

	// step runs a host command, checks what it says of docker, and waits
	// until alice's new connections get a server certificate that want
	// accepts, and are answered.
	step := func(what string, want func(served) bool, args ...string) served {
		t.Helper()
		_, stderr, code := h.dtls(t, append(args, "--state-dir", h.State)...)
		require.Equal(t, 0, code, "%s: %s", what, stderr)
		t.Logf("%s says:\n%s", what, stderr)
		assert.Contains(t, stderr, "no restart of docker", what)
		for _, false_ := range []string{"systemctl restart docker", "restart needed", "--restart", "restart dockerd", "restart it"} {
			assert.NotContains(t, stderr, false_, "%s says to restart docker in gateway mode", what)
		}
		done := time.Now()
		var s served
		took := waitFor(t, 5*time.Second, what+": alice's new connections get the new certificates", func() bool {
			s = h.dialServed(t, "alice")
			return s.err == nil && want(s)
		})
		t.Logf("%s: in force for new connections %v after the command", what, took)
		assert.Less(t, time.Since(done), 2*time.Second, what)
		code, err := pingOn(kept, keptR)
		assert.NoError(t, err, "%s: the connection kept open was dropped", what)

		assert.Equal(t, http.StatusOK, code, what)
		assert.Equal(t, dockerd, h.Daemon.Pid, what)
		assert.NoError(t, syscall.Kill(dockerd, 0), "%s: dockerd (pid %d) is gone", what, dockerd)
		return s
	}

	renewed := step("renew --server", func(s served) bool { return s.serial != first.serial }, "renew", "--server")
	assert.Equal(t, oldCA, renewed.issuer)
	assert.Equal(t, serialOfFile(t, filepath.Join(h.Certs, "server-cert.pem")), renewed.serial)

	// Step 1: the host trusts both CAs; alice's bundle renewed from the
	// new CA is accepted.
	step("rotate-ca", func(s served) bool { return s.serial == renewed.serial }, "rotate-ca")
	// --status names the next step, with nothing to restart.
	status, stderr, code := h.dtls(t, "rotate-ca", "--status", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, status, "next: dtls rotate-ca --switch")
	assert.NotContains(t, status, "--restart", "rotate-ca --status says to restart docker in gateway mode")
	newCA := firstCert(t, filepath.Join(h.State, "ca.pem")).Subject.String()
	require.NotEqual(t, oldCA, newCA)
	_, stderr, code = h.dtls(t, "renew", "alice", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, newCA, firstCert(t, filepath.Join(h.Bundles, "alice", "cert.pem")).Issuer.String(), "alice's renewed certificate is not of the new CA")
	waitFor(t, 2*time.Second, "alice's certificate of the new CA is accepted", func() bool { return h.dialServed(t, "alice").err == nil })
	// Her certificate of the old CA is superseded: refused from its next
	// request on, as a revoked one, but its open connection is not cut
	// (a stream on it would go on: TestGatewayRenewalKeepsStreams).
	waitFor(t, 2*time.Second, "alice's superseded certificate is refused on her kept connection", func() bool {
		code, err := pingOn(kept, keptR)
		require.NoError(t, err, "the connection of alice's superseded certificate was cut")
		return code == http.StatusForbidden
	})
	openKept()

	// Step 2 (forced past bob, who was not renewed): the gateway serves
	// a certificate of the new CA. Bob's bundle at its recorded path
	// trusts both CAs since step 1: he still works.
	switched := step("rotate-ca --switch", func(s served) bool { return s.issuer == newCA }, "rotate-ca", "--switch", "--force")
	assert.NotEqual(t, renewed.serial, switched.serial)
	bob := h.dialServed(t, "bob")
	require.NoError(t, bob.err)
	assert.Equal(t, newCA, bob.issuer)
	// Revoked, as the rotation asks of a certificate of the old CA still
	// in use: his handshake passes, his requests are refused.
	_, stderr, code = h.dtls(t, "revoke", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "the dtls gateway on this host closes this certificate's open connections")
	assert.NotContains(t, stderr, "STILL ACCEPTS")
	bob = h.dialServed(t, "bob")
	require.Error(t, bob.err)
	assert.Contains(t, bob.err.Error(), "403")

	// A client that keeps TLS sessions to resume them: the gateway
	// issues none, so that every connection proves its certificate
	// against the CA bundle in force (CVE-2025-68121: resumption skipped
	// that check after a change of ClientCAs).
	resuming := h.tlsConfig(t, "alice")
	resuming.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	dialResuming := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", h.Port), resuming)
		require.NoError(t, err)
		defer c.Close()
		// A TLS 1.3 ticket would come after the handshake, with the answer.
		code, err := pingOn(c, bufio.NewReader(c))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		return c.ConnectionState().DidResume
	}
	require.False(t, dialResuming())

	// Step 3: the old CA is dropped: bob's certificate no longer passes
	// the handshake (the gateway's CA bundle was reloaded: it asks for a
	// certificate of the new CA, Go's client has none to send, "tls:
	// certificate required"); alice goes on.
	step("rotate-ca --finish", func(s served) bool {
		bob := h.dialServed(t, "bob")
		return s.issuer == newCA && bob.err != nil && strings.Contains(bob.err.Error(), "remote error: tls:")
	}, "rotate-ca", "--finish")
	assert.Equal(t, mustRead(t, filepath.Join(h.State, "ca.pem")), mustRead(t, filepath.Join(h.Certs, "ca.pem")))
	assert.False(t, dialResuming(), "a TLS session made before --finish was resumed")
	out, err := h.as(t, "alice", "ps")
	require.NoError(t, err, out)
}

// firstCert is the first certificate of a PEM file.
func firstCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := pki.ParseCertificates(mustRead(t, path))
	require.NoError(t, err)
	require.NotEmpty(t, certs)
	return certs[0]
}
