package gateway

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// pki is a CA of the test, its server certificate files for the gateway,
// and client certificates by name.
type testPKI struct {
	ca      *x509.Certificate
	key     *ecdsa.PrivateKey
	dir     string
	serial  int64
	clients map[string]tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &testPKI{ca: ca, key: key, dir: t.TempDir(), serial: 1, clients: map[string]tls.Certificate{}}
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	p.writeServer(t)
	return p
}

func (p *testPKI) issue(t testing.TB, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	pair.Leaf, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	return pair, certPEM, keyPEM
}

func (p *testPKI) writeServer(t testing.TB) {
	_, c, k := p.issue(t, "gateway", true)
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "server-cert.pem"), c, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "server-key.pem"), k, 0o600))
}

func (p *testPKI) client(t testing.TB, cn string) tls.Certificate {
	if c, ok := p.clients[cn]; ok {
		return c
	}
	c, _, _ := p.issue(t, cn, false)
	p.clients[cn] = c
	return c
}

// inventory gives each CN the role of its name's prefix ("admin-1" is
// admin) until the CN is revoked; the inventory itself (authority's) has
// its own tests.
type inventory struct{ revoked *sync.Map }

func (i inventory) Identify(c *x509.Certificate) (string, string, error) {
	if _, ok := i.revoked.Load(c.Subject.CommonName); ok {
		return "", "", fmt.Errorf("certificate %q is revoked", c.Subject.CommonName)
	}
	role, _, _ := strings.Cut(c.Subject.CommonName, "-")
	return c.Subject.CommonName, role, nil
}

// testGateway is a gateway on loopback in front of a real dockerd, and
// the plugin made from the same configuration.
type testGateway struct {
	g      *Gateway
	plugin *authz.Plugin
	addr   string
	pki    *testPKI
	audit  string
	d      *sandbox.Daemon
	inv    inventory
	log    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGateway(t *testing.T) *testGateway { return startGatewayMode(t, authz.ModeEnforce) }

func startGatewayMode(t testing.TB, mode authz.Mode) *testGateway {
	t.Helper()
	return startGatewayWith(t, mode, 64<<10)
}

// startGatewayWith is startGatewayMode with maxBody as the gateway's
// bound on bodies.
func startGatewayWith(t testing.TB, mode authz.Mode, maxBody int64) *testGateway {
	t.Helper()
	d := sandbox.StartForTest(t)
	p := newTestPKI(t)
	audit := filepath.Join(t.TempDir(), "audit.log")
	al, err := authz.OpenAuditLog(audit, 0, 0, nil)
	require.NoError(t, err)
	t.Cleanup(func() { al.Close() })
	reg, err := authz.OpenRegistry("", authz.NewDockerClient(d.Socket))
	require.NoError(t, err)
	inv := inventory{revoked: &sync.Map{}}
	log := &syncBuffer{}
	cfg := authz.Config{Inventory: inv, Audit: al, Objects: reg, Log: log, Mode: mode}
	engine, err := authz.NewEngine(cfg)
	require.NoError(t, err)
	plugin, err := authz.NewPlugin(cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g, err := New(Config{Listeners: []net.Listener{l}, DockerSocket: d.Socket, Engine: engine,
		CertFile: filepath.Join(p.dir, "server-cert.pem"), KeyFile: filepath.Join(p.dir, "server-key.pem"), CAFile: filepath.Join(p.dir, "ca.pem"),
		MaxBody: maxBody})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- g.Serve() }()
	t.Cleanup(func() {
		assert.NoError(t, g.Close())
		assert.NoError(t, <-done)
	})
	return &testGateway{g: g, plugin: plugin, addr: l.Addr().String(), pki: p, audit: audit, d: d, inv: inv, log: log}
}

// records waits (5 s at most) for n audit records of user and returns
// them.
func (tg *testGateway) records(t *testing.T, user string, n int) []authz.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs, err := authz.ReadAudit(tg.audit, authz.AuditFilter{User: user})
		require.NoError(t, err)
		if len(recs) >= n {
			return recs
		}
		require.True(t, time.Now().Before(deadline), "%d audit records of %s, want %d", len(recs), user, n)
		time.Sleep(20 * time.Millisecond)
	}
}

func (tg *testGateway) dial(t *testing.T, cn string) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(tg.pki.ca)
	c, err := tls.Dial("tcp", tg.addr, &tls.Config{Certificates: []tls.Certificate{tg.pki.client(t, cn)}, RootCAs: pool})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// raw writes bytes on a new connection as cn and reads the answers.
func (tg *testGateway) raw(t *testing.T, cn, data string, answers int) []*http.Response {
	t.Helper()
	c := tg.dial(t, cn)
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err := io.WriteString(c, data)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	var out []*http.Response
	for range answers {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		out = append(out, resp)
	}
	return out
}

// viaGateway sends one request through the gateway and reports whether
// the gateway let it through.
func (tg *testGateway) viaGateway(t *testing.T, cn, method, uri, body string) bool {
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, uri, len(body), body)
	rs := tg.raw(t, cn, req, 1)
	require.Len(t, rs, 1)
	b, _ := io.ReadAll(rs[0].Body)
	return !strings.Contains(string(b), "authorization denied by dtls-gateway")
}

// viaPlugin asks the plugin as dockerd would (moby
// pkg/authorization/middleware.go) and reports its answer.
func (tg *testGateway) viaPlugin(t *testing.T, cn, method, uri, body string) bool {
	cert := tg.pki.client(t, cn).Leaf
	call := map[string]any{"User": cn, "UserAuthNMethod": "TLS", "RequestMethod": method, "RequestUri": uri,
		"RequestHeaders":          map[string]string{"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(body))},
		"RequestPeerCertificates": [][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}}
	if body != "" {
		call["RequestBody"] = []byte(body)
	}
	b, err := json.Marshal(call)
	require.NoError(t, err)
	w := httptest.NewRecorder()
	tg.plugin.ServeHTTP(w, httptest.NewRequest("POST", "/AuthZPlugin.AuthZReq", bytes.NewReader(b)))
	var ans struct{ Allow bool }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ans))
	return ans.Allow
}

// TestSameDecisionsThroughBothFaces: one table of roles and requests, asked
// of the plugin (as dockerd asks it) and sent through the gateway (to a
// real dockerd), gets the same decisions.
func TestSameDecisionsThroughBothFaces(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	reqs := []struct{ method, uri, body string }{
		{"GET", "/v1.41/containers/json", ""},
		{"GET", "/_ping", ""},
		{"POST", "/v1.41/containers/create", `{"Image":"none:1"}`},
		{"POST", "/v1.41/containers/create", `{"Image":"none:1","HostConfig":{"Privileged":true}}`},
		{"POST", "/v1.41/containers/create", `{"Image":"none:1","hostconfig":{"privileged":false},"HostConfig":{"Privileged":true}}`},
		{"POST", "/v1.41/containers/create", `{"Image":"none:1","HostConfig":{"Binds":["/:/host"]}}`},
		{"POST", "/v1.41/containers/create", `{"Image":"none:1","HostConfig":{"CapAdd":"SYS_ADMIN"}}`},
		{"POST", "/v1.41/containers/create", ``},
		{"POST", "/v1.41/build", ""},
		{"GET", "/v1.41/containers/nosuch/export", ""},
		{"POST", "/v1.41/images/create?fromSrc=-", ""},
		{"POST", "/v1.41/volumes/create", `{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}`},
		{"POST", "/v1.23/containers/create", `{"Image":"none:1"}`},
		{"DELETE", "/v1.41/containers/nosuch", ""},
		{"POST", "/session", ""},
		{"GET", "/v1.41/info", ""},
	}
	for _, role := range []string{"admin", "developer", "readonly", "ghost"} {
		cn := role + "-1"
		for _, r := range reqs {
			want := tg.viaPlugin(t, cn, r.method, r.uri, r.body)
			got := tg.viaGateway(t, cn, r.method, r.uri, r.body)
			assert.Equal(t, want, got, "%s: %s %s %s: plugin allows %v, gateway %v", role, r.method, r.uri, r.body, want, got)
		}
	}
}

// TestHostileFraming: what net/http does with framing that could make the
// gateway and dockerd read different requests (both Content-Length and
// Transfer-Encoding: the chunked body is the one decided on, and the one
// forwarded; two lengths, "chunked, identity", HTTP/2's preface: refused
// before any decision), and that the gateway
// decides on what it will forward: a chunked create is decided on its
// decoded body (dockerd's plugin gets none: CVE-2024-41110), a body over
// the limit is refused, pipelined requests are decided one by one.
func TestHostileFraming(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	priv := `{"Image":"none:1","HostConfig":{"Privileged":true}}`
	chunked := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }
	for _, c := range []struct {
		name, data string
		status     []int
	}{
		// Allowed on its decoded body and forwarded whole: dockerd has no
		// such image.
		{"chunked plain create", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(`{"Image":"none:1"}`), []int{404}},
		{"chunked privileged create", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(priv), []int{403}},
		{"CL.TE: Transfer-Encoding wins", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(priv), []int{403}},
		{"two Content-Lengths", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", []int{400}},
		{"chunked, identity", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked(priv), []int{501}},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []int{400}},
		{"absolute-form", "GET http://docker/v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n", []int{400}},
		{"OPTIONS *: refused, not answered by net/http", "OPTIONS * HTTP/1.1\r\nHost: d\r\n\r\n", []int{400}},
		{"form body", "POST /v1.41/containers/x/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 12\r\n\r\ncheckpoint=c", []int{400}},
		{"multipart form body", "POST /v1.41/build?t=x HTTP/1.1\r\nHost: d\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 64\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"networkmode\"\r\n\r\nhost\r\n--b--", []int{400}},
		{"two Content-Types, neither a form", "POST /v1.41/build?t=x HTTP/1.1\r\nHost: d\r\nContent-Type: application/tar\r\nContent-Type: application/x-tar\r\nContent-Length: 64\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"networkmode\"\r\n\r\nhost\r\n--b--", []int{400}},
		{"body over the limit", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			chunked(`{"Image":"none:1","Env":["`+strings.Repeat("x", 70<<10)+`"]}`), []int{413}},
		{"pipelined: allowed then denied", "GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n" +
			"POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(priv)) + "\r\n\r\n" + priv, []int{200, 403}},
	} {
		rs := tg.raw(t, "developer-1", c.data, len(c.status))
		var got []int
		for _, r := range rs {
			got = append(got, r.StatusCode)
		}
		assert.Equal(t, c.status, got, c.name)
	}
	// No container was created by any of these.
	resp, err := tg.d.Client().Get("http://docker/containers/json?all=1")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "[]\n", string(b))
}

// TestSessionUpgrade: BuildKit's /session is one opaque stream for a role
// with the build capability (dockerd's 101 and then its HTTP/2 preface
// come through), and refused to the others.
func TestSessionUpgrade(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	req := "POST /session HTTP/1.1\r\nHost: d\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nX-Docker-Expose-Session-Uuid: u1\r\n" +
		"X-Docker-Expose-Session-Name: n\r\nX-Docker-Expose-Session-Sharedkey: k\r\n\r\n"
	rs := tg.raw(t, "developer-1", req, 1)
	require.Len(t, rs, 1)
	assert.Equal(t, http.StatusForbidden, rs[0].StatusCode)

	c := tg.dial(t, "admin-1")
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err := io.WriteString(c, req)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.Equal(t, "h2c", resp.Header.Get("Upgrade"))
	// dockerd, now an HTTP/2 server on the stream, speaks first.
	preface := make([]byte, 24)
	_, err = io.ReadFull(br, preface)
	require.NoError(t, err)
	assert.Equal(t, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", string(preface))
}

// TestKeptAliveConnectionIsCut: a connection that stays open after a
// request, idle, is closed within a second of its certificate's
// revocation, with a record; another holder's connection stays usable.
func TestKeptAliveConnectionIsCut(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	ping := func(c *tls.Conn, br *bufio.Reader) (int, error) {
		if _, err := io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	bob, other := tg.dial(t, "developer-bob"), tg.dial(t, "developer-other")
	bobR, otherR := bufio.NewReader(bob), bufio.NewReader(other)
	for _, c := range []struct {
		c  *tls.Conn
		br *bufio.Reader
	}{{bob, bobR}, {other, otherR}} {
		code, err := ping(c.c, c.br)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	tg.inv.revoked.Store("developer-bob", true)
	revoked := time.Now()
	require.NoError(t, bob.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := bobR.ReadByte()
	require.Error(t, err, "bob's connection is still open")
	assert.Less(t, time.Since(revoked), time.Second, "cut after %v", time.Since(revoked))
	code, err := ping(other, otherR)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	// bob's ping (its request's record, then its response's), then the cut.
	recs := tg.records(t, "developer-bob", 3)
	last := recs[len(recs)-1]
	assert.Equal(t, PhaseSession, last.Phase)
	assert.Equal(t, RuleSessionCut, last.Rule)
	assert.Contains(t, last.Reason, "revoked")
}

// TestBrokenTLSFilesKeepTheLastGood: server files replaced by a key that
// does not match, then by a good new pair: the gateway keeps serving the
// last good certificate, says so, and takes the good pair.
func TestBrokenTLSFilesKeepTheLastGood(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	serialOf := func() *big.Int {
		c := tg.dial(t, "admin-1")
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := serialOf()
	_, _, otherKey := tg.pki.issue(t, "unrelated", true)
	require.NoError(t, os.WriteFile(filepath.Join(tg.pki.dir, "server-key.pem"), otherKey, 0o600))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tg.log.String(), "keeping the last good ones") {
		require.True(t, time.Now().Before(deadline), "no word of the broken files: %s", tg.log.String())
		assert.Equal(t, first, serialOf())
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, first, serialOf())
	tg.pki.writeServer(t)
	deadline = time.Now().Add(2 * time.Second)
	for serialOf().Cmp(first) == 0 {
		require.True(t, time.Now().Before(deadline), "the good pair was not taken")
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWarnModeForwards: in warn mode what enforce would deny is forwarded
// to dockerd and recorded as warn.
func TestWarnModeForwards(t *testing.T) {
	t.Parallel()
	tg := startGatewayMode(t, authz.ModeWarn)
	rs := tg.raw(t, "readonly-1", "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"Image\":\"none:1\"}", 1)
	require.Len(t, rs, 1)
	assert.Equal(t, http.StatusNotFound, rs[0].StatusCode, "dockerd's answer: no such image")
	// The request's record is written before it goes on, its response's
	// when it ends.
	recs := tg.records(t, "readonly-1", 2)
	assert.Equal(t, authz.PhaseRequest, recs[0].Phase)
	assert.Equal(t, authz.DecisionWarn, recs[0].Decision)
	assert.Zero(t, recs[0].Status)
	assert.Equal(t, authz.PhaseResponse, recs[1].Phase)
	assert.Equal(t, authz.DecisionWarn, recs[1].Decision)
	assert.Equal(t, http.StatusNotFound, recs[1].Status)
	assert.Positive(t, recs[1].DurationUS)
}

// catImage imports an image whose /cat copies stdin to stdout (a static
// program built for the test) into the test's dockerd, and runs a
// container of it as admin; it returns the container's ID.
func catImage(t *testing.T, tg *testGateway) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport (\n\t\"io\"\n\t\"os\"\n\t\"time\"\n)\n\n"+
		"func main() {\n\tif len(os.Args) > 1 {\n\t\ttime.Sleep(time.Hour)\n\t}\n\tio.Copy(os.Stdout, os.Stdin)\n}\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/cat\n\ngo 1.26\n"), 0o644))
	build := fixture.GoBuild("cat", ".", "-trimpath")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	bin, err := os.ReadFile(filepath.Join(dir, "cat"))
	require.NoError(t, err)
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "cat", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}))
	_, err = tw.Write(bin)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	c := tg.d.Client()
	resp, err := c.Post("http://docker/images/create?fromSrc=-&repo=cat&tag=1", "application/x-tar", &tarball)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = c.Post("http://docker/containers/create", "application/json", strings.NewReader(`{"Image":"cat:1","Cmd":["/cat","sleep"]}`))
	require.NoError(t, err)
	var created struct {
		ID string `json:"Id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	resp, err = c.Post("http://docker/containers/"+created.ID+"/start", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	return created.ID
}

// TestExecStreamRawFraming: an exec start whose stdin follows the request
// in the same write (bytes the gateway's HTTP server reads ahead) reaches
// the process, the client's half-close ends its stdin, and the output
// comes back to its end; with "Upgrade: tcp" the answer is dockerd's 101,
// without it (older clients) 200 and the raw stream.
func TestExecStreamRawFraming(t *testing.T) {
	t.Parallel()
	tg := startGateway(t)
	id := catImage(t, tg)
	for _, upgrade := range []bool{true, false} {
		resp, err := tg.d.Client().Post("http://docker/containers/"+id+"/exec", "application/json",
			strings.NewReader(`{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Cmd":["/cat"]}`))
		require.NoError(t, err)
		var exec struct {
			ID string `json:"Id"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&exec))
		resp.Body.Close()

		c := tg.dial(t, "admin-1")
		require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
		body := `{"Detach":false,"Tty":false}`
		head := fmt.Sprintf("POST /v1.41/exec/%s/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", exec.ID, len(body))
		if upgrade {
			head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
		}
		_, err = io.WriteString(c, head+"\r\n"+body+"read ahead\n")
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		br := bufio.NewReader(c)
		answer, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		if upgrade {
			assert.Equal(t, http.StatusSwitchingProtocols, answer.StatusCode)
		} else {
			assert.Equal(t, http.StatusOK, answer.StatusCode)
		}
		// The rest is dockerd's multiplexed stream (stdcopy: an 8-byte
		// header per frame) until the process ends.
		rest, err := io.ReadAll(br)
		require.NoError(t, err)
		require.Greater(t, len(rest), 8, "upgrade %v: %q", upgrade, rest)
		assert.Equal(t, byte(1), rest[0], "a stdout frame")
		assert.Equal(t, "read ahead\n", string(rest[8:]), "upgrade %v", upgrade)
	}
}
