//go:build !windows

// Not on Windows: internal/sandbox, which runs the test daemon, uses
// syscall.Kill and does not build there (and dockerd with TLS on TCP is a
// Linux daemon anyway).

package daemoncheck

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// The certificates are made here with crypto/x509, not with package pki:
// clientenv must not depend on pki, and neither do its tests.

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var serialCounter struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serialCounter.Lock()
	defer serialCounter.Unlock()
	serialCounter.n++
	return big.NewInt(serialCounter.n)
}

func newKey(t testing.TB) (crypto.Signer, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newTestCA(t testing.TB, cn string, now time.Time) *testCA {
	t.Helper()
	key, _ := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-48 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf describes a certificate for testCA.issue.
type leafSpec struct {
	cn                  string
	eku                 x509.ExtKeyUsage
	hosts               []string
	notBefore, notAfter time.Time
}

func (ca *testCA) issue(t testing.TB, l leafSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	key, keyPEM := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: l.cn},
		NotBefore:    l.notBefore,
		NotAfter:     l.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{l.eku},
	}
	for _, h := range l.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM
}

// client issues a client certificate valid from yesterday for a day more.
func (ca *testCA) client(t testing.TB, cn string, now time.Time) (certPEM, keyPEM []byte) {
	return ca.issue(t, leafSpec{cn: cn, eku: x509.ExtKeyUsageClientAuth, notBefore: now.Add(-24 * time.Hour), notAfter: now.Add(24 * time.Hour)})
}

// writeCheckBundle writes a bundle directory for the test and loads it.
func writeCheckBundle(t testing.TB, caPEM, certPEM, keyPEM []byte, dockerHost string) *clientenv.Bundle {
	t.Helper()
	return writeBundleIn(t, t.TempDir(), caPEM, certPEM, keyPEM, dockerHost)
}

// writeBundleIn writes a bundle directory in dir and loads it.
func writeBundleIn(t testing.TB, dir string, caPEM, certPEM, keyPEM []byte, dockerHost string) *clientenv.Bundle {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	meta, err := clientenv.MarshalMeta(clientenv.Meta{Name: "alice", DockerHost: dockerHost, Server: "test"})
	require.NoError(t, err)
	for name, data := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM, clientenv.MetaFile: meta} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	b, err := clientenv.LoadBundle(dir)
	require.NoError(t, err)
	return b
}

// tlsKeyPair is a server configuration with certPEM and keyPEM.
func tlsKeyPair(certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}, nil
}

// tlsDaemon is the one sandboxed dockerd with TLS that the tests of this
// package share: starting one takes a couple of seconds.
type tlsDaemon struct {
	ca *testCA
	// host is tcp://localhost:PORT; the server certificate is for
	// localhost and 127.0.0.1.
	host string
	// port is PORT, on 127.0.0.1.
	port int
	// otherHost is tcp://127.0.0.2:PORT2, the same daemon on an address
	// the certificate lacks.
	otherHost string
	// bundle is a working bundle for host.
	bundle *clientenv.Bundle
	dir    string
	d      *sandbox.Daemon
}

var sharedDockerd struct {
	once sync.Once
	td   *tlsDaemon
	err  error
}

// TestMain stops the shared daemon once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if td := sharedDockerd.td; td != nil {
		if err := td.d.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop the test dockerd: %v\n", err)
			code = 1
		}
		os.RemoveAll(td.dir)
	}
	os.Exit(code)
}

// sharedDaemon returns the package's TLS dockerd, starting it on first use.
func sharedDaemon(t *testing.T) *tlsDaemon {
	t.Helper()
	sandbox.Require(t)
	sharedDockerd.once.Do(func() {
		sharedDockerd.err = errors.New("the shared dockerd failed to start in an earlier test")
		start := time.Now()
		sharedDockerd.td, sharedDockerd.err = startTLSDaemon(t)
		t.Logf("started the shared TLS dockerd in %s", time.Since(start).Round(time.Millisecond))
	})
	require.NoError(t, sharedDockerd.err)
	return sharedDockerd.td
}

func startTLSDaemon(t *testing.T) (*tlsDaemon, error) {
	now := time.Now()
	ca := newTestCA(t, "dtls test CA", now)
	dir, err := sandbox.NewDir()
	if err != nil {
		return nil, err
	}
	port, err := sandbox.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// 127.0.0.2 is loopback too on Linux (lo holds 127.0.0.0/8).
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("find a free port on 127.0.0.2: %w", err)
	}
	port2 := l.Addr().(*net.TCPAddr).Port
	l.Close()

	srvCert, srvKey := ca.issue(t, leafSpec{cn: "localhost", eku: x509.ExtKeyUsageServerAuth,
		hosts: []string{"localhost", "127.0.0.1"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)})
	files := map[string][]byte{"ca.pem": ca.pem, "server-cert.pem": srvCert, "server-key.pem": srvKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal(sandbox.BaseConfig(dir), &cfg); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg["hosts"] = append(cfg["hosts"].([]any), fmt.Sprintf("tcp://127.0.0.1:%d", port), fmt.Sprintf("tcp://127.0.0.2:%d", port2))
	cfg["tlsverify"] = true
	cfg["tlscacert"] = filepath.Join(dir, "ca.pem")
	cfg["tlscert"] = filepath.Join(dir, "server-cert.pem")
	cfg["tlskey"] = filepath.Join(dir, "server-key.pem")
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfgPath := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	td := &tlsDaemon{
		ca: ca, port: port, dir: dir,
		host:      fmt.Sprintf("tcp://localhost:%d", port),
		otherHost: fmt.Sprintf("tcp://127.0.0.2:%d", port2),
	}
	// The bundle lives in the daemon's directory: it outlives the test
	// that starts the daemon.
	cert, key := ca.client(t, "alice", now)
	td.bundle = writeBundleIn(t, filepath.Join(dir, "alice"), ca.pem, cert, key, td.host)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if td.d, err = sandbox.Start(ctx, dir, cfgPath); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return td, nil
}

// daemonVersion asks the daemon's unix socket for its version, to compare.
func (td *tlsDaemon) version(t *testing.T) string {
	t.Helper()
	client := td.d.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://docker/version")
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct{ Version string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	require.NotEmpty(t, v.Version)
	return v.Version
}

// TestCheckDockerd runs Check against a real dockerd with TLS for each way
// a bundle can fail, and once where it works.
func TestCheckDockerd(t *testing.T) {
	td := sharedDaemon(t)
	now := time.Now()
	other := newTestCA(t, "another CA", now)
	goodCert, goodKey := td.ca.client(t, "alice", now)
	foreignCert, foreignKey := other.client(t, "mallory", now)
	expiredCert, expiredKey := td.ca.issue(t, leafSpec{cn: "alice", eku: x509.ExtKeyUsageClientAuth, notBefore: now.Add(-60 * 24 * time.Hour), notAfter: now.Add(-30 * 24 * time.Hour)})
	futureCert, futureKey := td.ca.issue(t, leafSpec{cn: "alice", eku: x509.ExtKeyUsageClientAuth, notBefore: now.Add(24 * time.Hour), notAfter: now.Add(48 * time.Hour)})
	// Signed by the right CA, but for server authentication only: dockerd
	// refuses it after the handshake has completed on the client's side.
	serverCert, serverKey := td.ca.issue(t, leafSpec{cn: "alice", eku: x509.ExtKeyUsageServerAuth, hosts: []string{"x"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	freePort, err := sandbox.FreePort()
	require.NoError(t, err)

	tests := []struct {
		name       string
		ca         []byte
		cert, key  []byte
		host       string
		problem    Problem
		msg        []string // substrings of the message
		hint       string   // a substring of the hint
		serverName string   // on success
	}{
		{name: "ok by name", ca: td.ca.pem, cert: goodCert, key: goodKey, host: td.host, serverName: "localhost"},
		{name: "ok by address", ca: td.ca.pem, cert: goodCert, key: goodKey, host: fmt.Sprintf("tcp://127.0.0.1:%d", td.port), serverName: "127.0.0.1"},
		{
			name: "untrusted server", ca: other.pem, cert: goodCert, key: goodKey, host: td.host,
			problem: ProblemUntrustedServer,
			msg:     []string{`issued by "dtls test CA"`, `ca.pem ("another CA") does not hold`},
			hint:    "dtls renew alice --archive -",
		},
		{
			name: "name mismatch", ca: td.ca.pem, cert: goodCert, key: goodKey, host: td.otherHost,
			problem: ProblemNameMismatch,
			msg:     []string{`not valid for "127.0.0.2": it is valid for "localhost", "127.0.0.1"`},
			hint:    "dtls env --host",
		},
		{
			name: "client expired", ca: td.ca.pem, cert: expiredCert, key: expiredKey, host: td.host,
			problem: ProblemClientExpired,
			msg:     []string{`the client certificate "alice"`, "expired on " + now.Add(-30*24*time.Hour).UTC().Format("2006-01-02")},
			hint:    "dtls renew alice --archive -",
		},
		{
			name: "client not yet valid", ca: td.ca.pem, cert: futureCert, key: futureKey, host: td.host,
			problem: ProblemClientExpired,
			msg:     []string{"is not valid before", "clock says"},
			hint:    "clock",
		},
		{
			name: "client from another CA", ca: td.ca.pem, cert: foreignCert, key: foreignKey, host: td.host,
			problem: ProblemClientRejected,
			msg:     []string{"wants a client certificate that this bundle does not have", "TLS alert"},
			hint:    `accepts client certificates from "dtls test CA" only, and cert.pem is from "another CA"`,
		},
		{
			name: "client certificate for servers only", ca: td.ca.pem, cert: serverCert, key: serverKey, host: td.host,
			problem: ProblemClientRejected,
			msg:     []string{`refused the client certificate "alice"`},
			hint:    "dtls renew alice --archive -",
		},
		{
			name: "no listener", ca: td.ca.pem, cert: goodCert, key: goodKey, host: fmt.Sprintf("tcp://127.0.0.1:%d", freePort),
			problem: ProblemNoListener,
			msg:     []string{fmt.Sprintf("nothing listens on 127.0.0.1:%d (connection refused)", freePort)},
			hint:    "dockerd runs",
		},
		{
			name: "unknown host", ca: td.ca.pem, cert: goodCert, key: goodKey, host: "tcp://dtls-test.invalid:2376",
			problem: ProblemNoListener,
			msg:     []string{`cannot resolve "dtls-test.invalid"`},
			hint:    "DNS",
		},
		{
			name: "key does not match", ca: td.ca.pem, cert: goodCert, key: foreignKey, host: td.host,
			problem: ProblemBundle,
			msg:     []string{"key.pem is not the key of cert.pem"},
			hint:    "dtls import",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeCheckBundle(t, tt.ca, tt.cert, tt.key, tt.host)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := Check(ctx, b, "", now)
			if tt.problem == "" {
				require.NoError(t, err)
				t.Logf("%+v", *res)
				assert.Equal(t, td.version(t), res.Version)
				assert.Regexp(t, `^1\.\d+$`, res.APIVersion)
				assert.Equal(t, tt.serverName, res.ServerName)
				assert.Equal(t, tt.host, res.DockerHost)
				assert.Regexp(t, `^TLS 1\.[23]$`, res.TLSVersion)
				assert.Positive(t, res.Took)
				return
			}
			require.Error(t, err)
			t.Logf("%s\nhint: %s\ncause: %v", err, hintOf(err), errors.Unwrap(err))
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.problem, ce.Problem, "%v (cause %v)", ce, ce.Err)
			for _, m := range tt.msg {
				assert.Contains(t, ce.Msg, m)
			}
			assert.Contains(t, ce.Hint, tt.hint)
			assert.Equal(t, ce.Msg, err.Error())
			assert.Nil(t, res)
		})
	}

	// After all the refusals, the daemon still answers the good bundle:
	// none of the failures above came from a daemon that had gone away.
	_, err = Check(context.Background(), td.bundle, "", now)
	assert.NoError(t, err)
}

func hintOf(err error) string {
	var ce *CheckError
	if errors.As(err, &ce) {
		return ce.Hint
	}
	return ""
}

// quietLog keeps the test servers' "TLS handshake error" lines, which
// the refusals cause on purpose, out of the test output.
var quietLog = log.New(io.Discard, "", 0)

// TestCheckLocalServers covers the answers a real dockerd does not give:
// servers that are not Docker daemons, and a 403 from an authorization
// plugin (dockerd's wording is copied from moby pkg/authorization).
func TestCheckLocalServers(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "dtls test CA", now)
	srvCert, srvKey := ca.issue(t, leafSpec{cn: "localhost", eku: x509.ExtKeyUsageServerAuth, hosts: []string{"127.0.0.1"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	cert, key := ca.client(t, "alice", now)
	pair, err := tlsKeyPair(srvCert, srvKey)
	require.NoError(t, err)

	tlsServer := func(h http.HandlerFunc) string {
		s := httptest.NewUnstartedServer(h)
		s.TLS = pair
		s.Config.ErrorLog = quietLog
		s.StartTLS()
		t.Cleanup(s.Close)
		return "tcp://" + s.Listener.Addr().String()
	}
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	go func() {
		// Accept and hold the connections without a word.
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	// TLS servers that close the connection once the handshake is done:
	// one that asks for a client certificate, as a TLS 1.3 server may
	// close after refusing the certificate without sending an alert, and
	// one that does not ask, which is no dockerd with tlsverify.
	closing := func(cfg *tls.Config) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = tls.Server(c, cfg).Handshake()
				c.Close()
			}
		}()
		return "tcp://" + l.Addr().String()
	}
	asking := pair.Clone()
	asking.ClientAuth = tls.RequireAnyClientCert
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") }))
	t.Cleanup(plain.Close)
	expiredSrvCert, expiredSrvKey := ca.issue(t, leafSpec{cn: "localhost", eku: x509.ExtKeyUsageServerAuth, hosts: []string{"127.0.0.1"}, notBefore: now.Add(-2 * time.Hour), notAfter: now.Add(-time.Hour)})
	expiredPair, err := tlsKeyPair(expiredSrvCert, expiredSrvKey)
	require.NoError(t, err)
	expired := httptest.NewUnstartedServer(http.NotFoundHandler())
	expired.TLS = expiredPair
	expired.Config.ErrorLog = quietLog
	expired.StartTLS()
	t.Cleanup(expired.Close)

	tests := []struct {
		name    string
		host    string
		timeout time.Duration
		problem Problem
		msg     string
		msgRe   string // instead of msg: a regular expression
	}{
		{
			name: "web server", problem: ProblemNotDocker,
			host: tlsServer(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Server", "nginx"); http.NotFound(w, nil) }),
			msg:  `does not answer like a Docker daemon: GET /_ping gave "404 Not Found" (Server: "nginx")`,
		},
		{
			name: "ping without Api-Version", problem: ProblemNotDocker,
			host: tlsServer(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") }),
			msg:  `GET /_ping gave "200 OK"`,
		},
		{
			name: "authorization plugin", problem: ProblemClientRejected,
			host: tlsServer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"message":"authorization denied by plugin dtls-authz: denied: certificate revoked"}`)
			}),
			msg: "refused the request GET /_ping: authorization denied by plugin dtls-authz: denied: certificate revoked",
		},
		{
			name: "closed after the handshake", problem: ProblemClientRejected, host: closing(asking),
			msg: `closed the connection right after the TLS handshake without answering: it most likely refused the client certificate "alice"`,
		},
		{
			name: "closed without asking for a certificate", problem: ProblemNotDocker, host: closing(pair),
			msg: "did not ask for a client certificate",
		},
		{
			name: "plain HTTP", problem: ProblemNotDocker, host: "tcp://" + plain.Listener.Addr().String(),
			msg: "answers plain HTTP, not TLS",
		},
		{
			name: "silent", problem: ProblemNotDocker, host: "tcp://" + silent.Addr().String(), timeout: 300 * time.Millisecond,
			// The time left of the context's 300ms when the check began:
			// a few ms less on a loaded machine.
			msgRe: `accepted the connection but did not complete a TLS handshake within (300|2[0-9][0-9])ms$`,
		},
		{
			name: "expired server certificate", problem: ProblemServerCert, host: "tcp://" + expired.Listener.Addr().String(),
			msg: "certificate has expired or is not yet valid",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeCheckBundle(t, ca.pem, cert, key, tt.host)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := Check(ctx, b, "", now)
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			t.Logf("%s\nhint: %s", ce, ce.Hint)
			assert.Equal(t, tt.problem, ce.Problem, "%v (cause %v)", ce, ce.Err)
			if tt.msgRe != "" {
				assert.Regexp(t, tt.msgRe, ce.Msg)
			} else {
				assert.Contains(t, ce.Msg, tt.msg)
			}
		})
	}
}

// TestCheckRefusesBadInput covers what Check refuses before dialing.
func TestCheckRefusesBadInput(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "dtls test CA", now)
	cert, key := ca.client(t, "alice", now)

	// LoadBundle refuses such a bundle; Check refuses it still.
	b := writeCheckBundle(t, ca.pem, cert, key, "tcp://127.0.0.1:1")
	b.Meta.DockerHost = "unix:///var/run/docker.sock"
	_, err := Check(context.Background(), b, "", now)
	assert.EqualError(t, err, `daemon URL "unix:///var/run/docker.sock": want tcp://HOST:PORT`)
	var ce *CheckError
	assert.False(t, errors.As(err, &ce), "a bad URL is the caller's mistake, not a CheckError")

	for _, tt := range []struct {
		name   string
		mutate func(dir string)
		msg    string
	}{
		{"missing key", func(dir string) { require.NoError(t, os.Remove(filepath.Join(dir, "key.pem"))) }, `cannot read key.pem: no such file or directory`},
		{"ca.pem not PEM", func(dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("junk"), 0o600))
		}, `ca.pem holds no PEM certificate`},
		{"cert.pem is a key", func(dir string) { require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), key, 0o600)) }, `cert.pem holds no PEM certificate`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := writeCheckBundle(t, ca.pem, cert, key, "tcp://127.0.0.1:1")
			tt.mutate(b.Dir)
			_, err := Check(context.Background(), b, "", now)
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, ProblemBundle, ce.Problem)
			assert.Equal(t, fmt.Sprintf("bundle %q: %s", b.Dir, tt.msg), ce.Msg)
		})
	}
}

// TestClassifyTimeouts covers timeouts that a test cannot cause for real
// without a network that drops packets.
func TestClassifyTimeouts(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "dtls test CA", now)
	cert, key := ca.client(t, "alice", now)
	b := writeCheckBundle(t, ca.pem, cert, key, "tcp://192.0.2.1:2376")
	creds, err := loadCheckCredentials(b, now)
	require.NoError(t, err)
	target, err := parseCheckTarget(b.Meta.DockerHost)
	require.NoError(t, err)
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}

	for _, tt := range []struct {
		name                 string
		connected, handshake bool
		problem              Problem
		msg                  string
	}{
		{"dropped", false, false, ProblemNoListener, "no answer from 192.0.2.1:2376 within 10s"},
		{"no TLS", true, false, ProblemNotDocker, "did not complete a TLS handshake within 10s"},
		{"no HTTP", true, true, ProblemNotDocker, "no HTTP answer came within 10s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &checker{target: target, creds: creds, timeout: 10 * time.Second, connected: tt.connected, handshakeDone: tt.handshake}
			e := c.classify(timeout)
			assert.Equal(t, tt.problem, e.Problem)
			assert.Contains(t, e.Msg, tt.msg)
			assert.ErrorIs(t, e, context.DeadlineExceeded)
		})
	}
}

func TestParseCheckTarget(t *testing.T) {
	for _, tt := range []struct{ in, host, addr, base, err string }{
		{in: "tcp://docker.example.com:2376", host: "docker.example.com", addr: "docker.example.com:2376", base: "https://docker.example.com:2376"},
		{in: "tcp://docker.example.com", host: "docker.example.com", addr: "docker.example.com:2376", base: "https://docker.example.com:2376"},
		{in: "tcp://[::1]:2376", host: "::1", addr: "[::1]:2376", base: "https://[::1]:2376"},
		{in: "tcp://h:1/base/", host: "h", addr: "h:1", base: "https://h:1/base"},
		{in: "ssh://h", err: `daemon URL "ssh://h": want tcp://HOST:PORT`},
		{in: "", err: `daemon URL "": want tcp://HOST:PORT`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCheckTarget(tt.in)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, checkTarget{url: tt.in, host: tt.host, addr: tt.addr, base: tt.base}, got)
		})
	}
}

// TestDockerPyIgnoresCAWithRequestsCABundle proves that the warning of
// clientenv.PythonCAWarning is about a real failure: a real docker-py, with the
// bundle in DOCKER_CERT_PATH, works against the daemon, and fails with a
// certificate verification error as soon as REQUESTS_CA_BUNDLE or
// CURL_CA_BUNDLE names a file without the bundle's CA. It lives here, next
// to the shared daemon, rather than in pyenv_test.go, which stays portable.
func TestDockerPyIgnoresCAWithRequestsCABundle(t *testing.T) {
	td := sharedDaemon(t)
	pythons := dockerPythons(t)
	version := td.version(t)

	// The remedy of the warning: a file with the system's CAs and the
	// bundle's.
	system := "/etc/ssl/certs/ca-certificates.crt"
	sysData, err := os.ReadFile(system)
	if err != nil {
		// No system bundle: any file without the daemon's CA does.
		system = filepath.Join(t.TempDir(), "other.pem")
		sysData = newTestCA(t, "another CA", time.Now()).pem
		require.NoError(t, os.WriteFile(system, sysData, 0o644))
	}
	combined := filepath.Join(t.TempDir(), "combined.pem")
	require.NoError(t, os.WriteFile(combined, append(append(sysData, '\n'), td.ca.pem...), 0o644))

	for _, py := range pythons {
		t.Run(py.name, func(t *testing.T) {
			for _, tt := range []struct {
				name string
				env  []string
				// set: clientenv.PythonCAOverrides reports a variable.
				set, fail bool
			}{
				{name: "no variable"},
				{name: "empty REQUESTS_CA_BUNDLE", env: []string{"REQUESTS_CA_BUNDLE="}},
				{name: "REQUESTS_CA_BUNDLE", env: []string{"REQUESTS_CA_BUNDLE=" + system}, set: true, fail: true},
				{name: "CURL_CA_BUNDLE", env: []string{"CURL_CA_BUNDLE=" + system}, set: true, fail: true},
				// The warning's remedy works (clientenv.PythonCAOverrides cannot
				// tell, and still reports the variable).
				{name: "REQUESTS_CA_BUNDLE with the bundle's CA", env: []string{"REQUESTS_CA_BUNDLE=" + combined}, set: true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					// Most of a case is Python importing docker-py: the
					// cases run at once.
					t.Parallel()
					// clientenv.PythonCAOverrides sees what requests reads.
					getenv := func(name string) string {
						for _, kv := range tt.env {
							if k, v, _ := strings.Cut(kv, "="); k == name {
								return v
							}
						}
						return ""
					}
					assert.Equal(t, tt.set, len(clientenv.PythonCAOverrides(getenv)) > 0)

					cmd := exec.Command(py.path, "-c", `import docker; print(docker.from_env().version()["Version"])`)
					cmd.Env = append(pythonEnv(), "DOCKER_HOST="+td.host, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+td.bundle.Dir)
					cmd.Env = append(cmd.Env, tt.env...)
					out, err := cmd.CombinedOutput()
					if !tt.fail {
						require.NoError(t, err, "%s", out)
						assert.Equal(t, version, strings.TrimSpace(string(out)))
						return
					}
					require.Error(t, err, "docker-py ignored %s: %s", tt.env, out)
					t.Logf("docker-py %s with %s printed:\n%s", py.version, tt.env, lastLines(string(out), 3))
					assert.Contains(t, string(out), "CERTIFICATE_VERIFY_FAILED")
					assert.Contains(t, string(out), "unable to get local issuer certificate")
				})
			}
		})
	}
}

// pythonEnv is this process's environment without what would change
// docker-py's behaviour: Docker's variables, the CA variables under test and
// proxies.
func pythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "DOCKER_"), k == "REQUESTS_CA_BUNDLE", k == "CURL_CA_BUNDLE",
			strings.HasSuffix(strings.ToLower(k), "_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type dockerPython struct{ name, path, version string }

// dockerPythons returns the Python interpreters that can import docker:
// Debian's /usr/bin/python3 with python3-docker (installed with apt-get
// when missing: this test runs as root, since dockerd needs it), and the
// python3 of $PATH when it is another interpreter with docker-py. Without
// any, the test is skipped, or fails under CI=true.
func dockerPythons(t *testing.T) []dockerPython {
	t.Helper()
	stop := t.Skipf
	if os.Getenv("CI") == "true" {
		stop = t.Fatalf
	}
	probe := func(path string) (dockerPython, bool) {
		out, err := exec.Command(path, "-c", "import docker, os, sys; print(docker.__version__, os.path.realpath(sys.executable))").Output()
		if err != nil {
			return dockerPython{}, false
		}
		version, exe, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		return dockerPython{name: "docker-py " + version, path: exe, version: version}, true
	}
	var found []dockerPython
	debian, ok := probe("/usr/bin/python3")
	if !ok {
		if _, err := exec.LookPath("apt-get"); err != nil {
			stop("docker-py: /usr/bin/python3 cannot import docker, and there is no apt-get to install python3-docker")
			return nil
		}
		if out, err := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "python3-docker").CombinedOutput(); err != nil {
			// Perhaps the package lists are stale or absent.
			if out2, err := exec.Command("apt-get", "update").CombinedOutput(); err != nil {
				stop("docker-py: apt-get install python3-docker: %v\n%s\napt-get update: %s", err, out, out2)
				return nil
			}
			if out, err := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "python3-docker").CombinedOutput(); err != nil {
				stop("docker-py: apt-get install python3-docker: %v\n%s", err, out)
				return nil
			}
		}
		if debian, ok = probe("/usr/bin/python3"); !ok {
			t.Fatalf("docker-py: /usr/bin/python3 cannot import docker after apt-get install python3-docker")
		}
	}
	found = append(found, debian)
	if p, err := exec.LookPath("python3"); err == nil {
		if other, ok := probe(p); ok && other.path != debian.path {
			found = append(found, other)
		}
	}
	return found
}
