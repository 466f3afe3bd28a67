package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
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

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/dockerhost/revlist"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// forwarder relays loopback TCP connections to addr until Close: the CA
// as the host reaches it, which the test can take away.
type forwarder struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newForwarder(t *testing.T, addr string) *forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &forwarder{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, u)
			f.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(f.Close)
	return f
}

func (f *forwarder) URL() string { return "https://" + f.l.Addr().String() }

// Close stops listening and cuts the relayed connections.
func (f *forwarder) Close() {
	f.l.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// fleetPlugin is 'dtls authz serve' as its own process on a socket in a
// temporary directory.
type fleetPlugin struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	client *http.Client
}

func startFleetPlugin(t *testing.T, args ...string) *fleetPlugin {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "dtls-az")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "dtls-authz.sock")
	p := &fleetPlugin{out: &syncBuffer{}}
	// dockerd's configuration: none (its defaults, the local socket
	// only), unless args name one.
	p.cmd = exec.Command(dtlsExe(t), append([]string{"authz", "serve", "--socket", socket,
		"--daemon-json", filepath.Join(dir, "daemon.json"), "--systemd-dir", dir}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("plugin output:\n%s", tailString(p.out.String(), 4000))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for authority.ProbeAuthz(socket, time.Second) != nil {
		require.True(t, time.Now().Before(deadline), "plugin did not come up:\n%s", p.out.String())
		time.Sleep(20 * time.Millisecond)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	p.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return p
}

func (p *fleetPlugin) stop(t *testing.T) {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	}
}

// ask sends the AuthZReq dockerd sends for GET /containers/json from the
// holder of certPEM (moby pkg/authorization: User is the certificate's
// CN, the peer certificate a PEM in a JSON []byte) and returns whether it
// is allowed, and the message.
func (p *fleetPlugin) ask(t *testing.T, certPEM []byte) (bool, string) {
	t.Helper()
	cert, err := pki.ParseCertificate(certPEM)
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{
		"User": cert.Subject.CommonName, "UserAuthNMethod": "TLS",
		"RequestMethod": "GET", "RequestUri": "/v1.41/containers/json",
		"RequestPeerCertificates": [][]byte{certPEM},
	})
	require.NoError(t, err)
	resp, err := p.client.Post("http://plugin/AuthZPlugin.AuthZReq", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Allow bool
		Msg   string
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Allow, out.Msg
}

// TestAuthzServeFollowsFleetCA: on a host enrolled with an online CA
// (server.json's ca_url), 'dtls authz serve' takes each fleet client's
// role from its certificate, refuses one revoked on the CA within 10 s of
// the revocation (the default 5 s refresh), keeps refusing it while the
// CA cannot be reached and after a restart, says so in its log and in
// 'dtls audit', and refuses certificates of another CA.
func TestAuthzServeFollowsFleetCA(t *testing.T) {
	t.Parallel()
	ca := catest.Start(t, catest.Options{})
	fwd := newForwarder(t, strings.TrimPrefix(ca.URL, "https://"))
	work := t.TempDir()
	state := filepath.Join(work, "state")
	require.NoError(t, os.Mkdir(state, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(state, authority.CACertFile), ca.CAPEM, 0o444))
	srv, err := json.Marshal(authority.Server{DockerHost: "tcp://docker1.example.com:2376", CAURL: fwd.URL()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(state, authority.ServerRecord), srv, 0o600))
	policy := filepath.Join(work, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644))
	args := []string{"--state-dir", state, "--policy", policy, "--audit-log", filepath.Join(work, "authz.log")}

	alice, _ := ca.Client(t, "alice", "developer")
	bob, _ := ca.Client(t, "bob", "readonly")
	other, err := pki.NewCA(pki.CARequest{Now: time.Now(), CommonName: "another CA"})
	require.NoError(t, err)
	mallory, err := other.Issue(pki.Request{Kind: pki.KindClient, CommonName: "mallory", Now: time.Now()})
	require.NoError(t, err)

	p := startFleetPlugin(t, args...)
	poll := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			require.True(t, time.Now().Before(deadline), "%s: not within %s", what, within)
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The socket may answer before the line is written.
	following := "dtls authz: following the revocation list of the CA at " + fwd.URL() + " (every 5s, kept in " + filepath.Join(state, revlist.CacheFile) + ")"
	poll("the log names the CA", 10*time.Second, func() bool { return strings.Contains(p.out.String(), following) })
	// The first fetch runs in the background.
	poll("first list", 10*time.Second, func() bool { ok, _ := p.ask(t, alice); return ok })
	ok, _ := p.ask(t, bob)
	assert.True(t, ok)
	ok, msg := p.ask(t, mallory.CertPEM)
	assert.False(t, ok)
	assert.Contains(t, msg, "is not from the fleet CA \"dtls catest CA\"")

	// Revoked on the CA: refused within the documented 10 s.
	opCert, opKey := ca.Operator(t)
	resp, err := ca.HTTPClient(t, opCert, opKey).Post(ca.URL+fleet.PathRevoke, "application/json", strings.NewReader(`{"key": "alice", "reason": 1}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	revokedAt := time.Now()
	poll("alice refused", 10*time.Second, func() bool { ok, _ := p.ask(t, alice); return !ok })
	t.Logf("revocation enforced after %s", time.Since(revokedAt).Round(time.Millisecond))
	ok, msg = p.ask(t, alice)
	assert.False(t, ok)
	assert.Regexp(t, `^denied: certificate [0-9a-f]+ of "alice" is revoked on the CA \(.*\) \(rule plugin: certificate not accepted\)$`, msg)
	ok, _ = p.ask(t, bob)
	assert.True(t, ok, "others unaffected")

	// The CA goes away: the last list stays in force, and the log says so.
	fwd.Close()
	poll("outage logged", 15*time.Second, func() bool { return strings.Contains(p.out.String(), "cannot reach the CA at "+fwd.URL()) })
	assert.Regexp(t, `dtls-authz: cannot reach the CA at `+fwd.URL()+`: .*; enforcing the revocation list of \S+ \(number \d+\)`, p.out.String())
	ok, _ = p.ask(t, alice)
	assert.False(t, ok)
	ok, _ = p.ask(t, bob)
	assert.True(t, ok)

	// dtls audit says so too, and fails once the outage lasts.
	daemonJSON := filepath.Join(work, "daemon.json")
	require.NoError(t, os.WriteFile(daemonJSON, []byte(`{"authorization-plugins": ["dtls-authz"]}`), 0o644))
	auditArgs := []string{"audit", "-o", "json", "--state-dir", state, "--daemon-json", daemonJSON, "--systemd-dir", work, "--socket", filepath.Join(work, "none.sock")}
	finding := func(at time.Time) (status, title string, code int) {
		t.Helper()
		out, stderr, code := dtls(t, at, auditArgs...)
		var rep struct {
			Findings []struct{ ID, Status, Title string }
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), stderr)
		for _, f := range rep.Findings {
			if f.ID == "fleet-crl" {
				return f.Status, f.Title, code
			}
		}
		t.Fatalf("no fleet-crl finding: %s", out)
		return "", "", 0
	}
	// The last good fetch was less than three refreshes ago.
	status, title, _ := finding(time.Now())
	assert.Equal(t, "WARN", status, title)
	assert.Contains(t, title, "the authorization plugin's last fetch of the revocation list from the CA at "+fwd.URL()+" failed: cannot reach the CA")
	status, title, code := finding(time.Now().Add(time.Minute))
	assert.Equal(t, "FAIL", status)
	assert.Equal(t, exitAuditFail, code)
	assert.Regexp(t, `^the authorization plugin enforces the revocation list of \S+ \(number \d+, 1 entries\); it cannot reach the CA at `+fwd.URL()+`: `, title)

	// Restarted while the CA is down: the kept list is in force at once.
	p.stop(t)
	p = startFleetPlugin(t, args...)
	ok, msg = p.ask(t, alice)
	assert.False(t, ok)
	assert.Contains(t, msg, "is revoked on the CA")
	ok, _ = p.ask(t, bob)
	assert.True(t, ok)
	assert.Contains(t, p.out.String(), "dtls-authz: enforcing the cached revocation list "+filepath.Join(state, revlist.CacheFile))
	fi, err := os.Stat(filepath.Join(state, revlist.CacheFile))
	require.NoError(t, err)
	assert.Equal(t, revlist.CacheMode, fi.Mode().Perm())
}

// TestAuthzServeFleetFlags: --crl-refresh and --ca-url are checked before
// anything starts; a fleet host without the CA's certificate is an error
// that says how to enrol.
func TestAuthzServeFleetFlags(t *testing.T) {
	state := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--crl-refresh", "100ms"}, exitUsage, "--crl-refresh: want 1s or more, got 100ms"},
		{[]string{"--ca-url", "http://ca.example.com"}, exitUsage, `--ca-url: want https://HOST[:PORT], got "http://ca.example.com"`},
		{[]string{"--ca-url", "https://ca.example.com:8443"}, 1, "the fleet CA's certificate, to check the revocation list of https://ca.example.com:8443 against: open " + filepath.Join(state, "ca.pem")},
	} {
		_, stderr, code := dtls(t, time.Now(), append([]string{"authz", "serve", "--state-dir", state, "--socket", filepath.Join(state, "s.sock"), "--audit-log", "-",
			"--daemon-json", filepath.Join(state, "daemon.json"), "--systemd-dir", state}, c.args...)...)
		assert.Equal(t, c.code, code, stderr)
		assert.Contains(t, stderr, c.want)
	}
	_, stderr, _ := dtls(t, time.Now(), "authz", "serve", "--state-dir", state, "--ca-url", "https://ca.example.com:8443", "--socket", filepath.Join(state, "s.sock"), "--audit-log", "-",
		"--daemon-json", filepath.Join(state, "daemon.json"), "--systemd-dir", state)
	assert.Contains(t, stderr, "dtls: hint: enrol this host first")
}
