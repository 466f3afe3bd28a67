package authz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mobyRequest and mobyPeerCertificate are moby's authorization.Request and
// PeerCertificate (pkg/authorization/api.go), copied so that the tests send
// exactly what dockerd sends, encoded by moby's own MarshalJSON.
type mobyRequest struct {
	User                    string                 `json:"User,omitempty"`
	UserAuthNMethod         string                 `json:"UserAuthNMethod,omitempty"`
	RequestMethod           string                 `json:"RequestMethod,omitempty"`
	RequestURI              string                 `json:"RequestUri,omitempty"`
	RequestBody             []byte                 `json:"RequestBody,omitempty"`
	RequestHeaders          map[string]string      `json:"RequestHeaders,omitempty"`
	RequestPeerCertificates []*mobyPeerCertificate `json:"RequestPeerCertificates,omitempty"`
	ResponseStatusCode      int                    `json:"ResponseStatusCode,omitempty"`
	ResponseBody            []byte                 `json:"ResponseBody,omitempty"`
	ResponseHeaders         map[string]string      `json:"ResponseHeaders,omitempty"`
}

type mobyPeerCertificate x509.Certificate

func (pc *mobyPeerCertificate) MarshalJSON() ([]byte, error) {
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pc.Raw})
	return json.Marshal(b)
}

// tlsRequest is what dockerd's authorization middleware sends for a TLS
// client (moby pkg/authorization/middleware.go): User is the leaf's CN.
func tlsRequest(method, uri string, certs ...*x509.Certificate) mobyRequest {
	r := mobyRequest{RequestMethod: method, RequestURI: uri, UserAuthNMethod: "TLS",
		RequestHeaders: map[string]string{"User-Agent": "Docker-Client/27.0.0 (linux)"}}
	if len(certs) > 0 {
		r.User = certs[0].Subject.CommonName
	}
	for _, c := range certs {
		r.RequestPeerCertificates = append(r.RequestPeerCertificates, (*mobyPeerCertificate)(c))
	}
	return r
}

// withBody adds a JSON body, which dockerd sends only with that
// Content-Type (authz.go sendBody).
func (r mobyRequest) withBody(body string) mobyRequest {
	r.RequestBody = []byte(body)
	r.RequestHeaders = map[string]string{"Content-Type": "application/json"}
	return r
}

// testCA is a self-made CA that issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert, key}
}

func (ca *testCA) client(t testing.TB, cn string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// fakeInventory holds certificates by serial and content, as
// authority.Reader does, and can revoke them.
type fakeInventory struct {
	mu      sync.Mutex
	certs   map[string]*x509.Certificate
	roles   map[string]string
	revoked map[string]bool
	calls   int
}

func newFakeInventory() *fakeInventory {
	return &fakeInventory{certs: map[string]*x509.Certificate{}, roles: map[string]string{}, revoked: map[string]bool{}}
}

func (f *fakeInventory) add(c *x509.Certificate, role string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs[serial(c)] = c
	f.roles[c.Subject.CommonName] = role
}

func (f *fakeInventory) revoke(c *x509.Certificate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[serial(c)] = true
}

func (f *fakeInventory) Identify(c *x509.Certificate) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	s := serial(c)
	held, ok := f.certs[s]
	switch {
	case !ok:
		return "", "", fmt.Errorf("certificate %q serial %s is not in the inventory", c.Subject.CommonName, s)
	case !bytes.Equal(held.Raw, c.Raw):
		return "", "", fmt.Errorf("certificate %q serial %s is not the one the inventory holds under that serial", c.Subject.CommonName, s)
	case f.revoked[s]:
		return "", "", fmt.Errorf("certificate %q serial %s is revoked", held.Subject.CommonName, s)
	}
	return held.Subject.CommonName, f.roles[held.Subject.CommonName], nil
}

// testPlugin is a plugin serving on a unix socket in a short temp dir, a
// client that dials it, and its audit trail.
type testPlugin struct {
	*Plugin
	socket string
	audit  string
	client *http.Client
	log    *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the plugin's goroutines.
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

// shortTempDir is a temp dir under /tmp: unix socket paths are limited to
// 107 bytes, which t.TempDir() can exceed.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "az")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startPlugin(t testing.TB, c Config) *testPlugin {
	t.Helper()
	dir := shortTempDir(t)
	tp := &testPlugin{socket: filepath.Join(dir, "dtls-authz.sock"), audit: filepath.Join(dir, "audit.log"), log: &syncBuffer{}}
	if c.Audit == nil {
		a, err := OpenAuditLog(tp.audit, 0, 0, nil)
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		c.Audit = a
	}
	c.Log = tp.log
	p, err := NewPlugin(c)
	require.NoError(t, err)
	tp.Plugin = p
	l, err := Listen(tp.socket)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()
	t.Cleanup(func() {
		assert.NoError(t, p.Close())
		assert.NoError(t, <-served)
	})
	tp.client = unixClient(tp.socket)
	t.Cleanup(tp.client.CloseIdleConnections)
	return tp
}

// unixClient is an HTTP client that dials socket, as dockerd's plugin
// client does.
func unixClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
}

// post sends a raw body to the plugin and returns the status and answer.
func (tp *testPlugin) post(t testing.TB, path string, body []byte) (int, authzResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost"+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Accept", mediaType)
	resp, err := tp.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out authzResponse
	require.NoError(t, json.Unmarshal(b, &out), "answer %q", b)
	return resp.StatusCode, out
}

// ask sends an AuthZReq (or AuthZRes) encoded as dockerd encodes it.
func (tp *testPlugin) ask(t testing.TB, path string, r mobyRequest) authzResponse {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	status, out := tp.post(t, path, b)
	require.Equal(t, http.StatusOK, status)
	return out
}

// lastRecord is the newest audit record.
func (tp *testPlugin) lastRecord(t testing.TB) AuditRecord {
	t.Helper()
	recs, err := ReadAudit(tp.audit, AuditFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	return recs[len(recs)-1]
}

func TestActivate(t *testing.T) {
	tp := startPlugin(t, Config{})
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost/Plugin.Activate", nil)
	require.NoError(t, err)
	resp, err := tp.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, mediaType, resp.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"Implements": ["authz"]}`, string(b))
}

func TestUnknownMethodAndVerb(t *testing.T) {
	tp := startPlugin(t, Config{})
	status, out := tp.post(t, "/VolumeDriver.Create", []byte(`{}`))
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, `dtls-authz: unknown method "/VolumeDriver.Create"`, out.Err)

	resp, err := tp.client.Get("http://plugin.moby.localhost/AuthZPlugin.AuthZReq")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestPeerCertificateEncoding pins moby's encoding: each certificate is a
// JSON string holding base64 of the PEM text.
func TestPeerCertificateEncoding(t *testing.T) {
	ca := newTestCA(t, "ca")
	c := ca.client(t, "alice", 7)
	b, err := json.Marshal(tlsRequest("GET", "/_ping", c))
	require.NoError(t, err)
	var raw struct{ RequestPeerCertificates []string }
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Len(t, raw.RequestPeerCertificates, 1)
	assert.True(t, strings.HasPrefix(raw.RequestPeerCertificates[0], "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"), "base64 of -----BEGIN CERTIFICATE-----")

	var req authzRequest
	require.NoError(t, json.Unmarshal(b, &req))
	got, err := req.RequestPeerCertificates[0].parse()
	require.NoError(t, err)
	assert.Equal(t, c.Raw, got.Raw)
}

func TestAuthZReq(t *testing.T) {
	ca, other := newTestCA(t, "dtls CA"), newTestCA(t, "another CA")
	alice, bob, carol, root := ca.client(t, "alice", 101), ca.client(t, "bob", 102), ca.client(t, "carol", 103), ca.client(t, "root", 104)
	inv := newFakeInventory()
	inv.add(alice, "developer")
	inv.add(bob, "") // the policy's default role
	inv.add(carol, "admin")
	inv.add(root, "admin")
	inv.revoke(carol)
	tp := startPlugin(t, Config{Inventory: inv})
	def := DefaultPolicy().DefaultRole()

	privileged := `{"Image":"alpine","HostConfig":{"Privileged":true}}`
	tests := []struct {
		name      string
		req       mobyRequest
		allow     bool
		msg       string // exact message; "" to check the policy format instead
		source    Source
		user      string
		serial    string
		role      string
		rule      string
		reasonHas string
	}{
		{name: "default role reads", req: tlsRequest("GET", "/v1.47/containers/json?all=1", bob),
			allow: true, source: SourceTCP, user: "bob", serial: "66", role: def},
		{name: "default role may not create", req: tlsRequest("POST", "/v1.47/containers/create", bob).withBody(`{"Image":"alpine"}`),
			source: SourceTCP, user: "bob", serial: "66", role: def},
		{name: "developer creates", req: tlsRequest("POST", "/v1.47/containers/create", alice).withBody(`{"Image":"alpine"}`),
			allow: true, source: SourceTCP, user: "alice", serial: "65", role: "developer"},
		{name: "developer may not run privileged", req: tlsRequest("POST", "/v1.47/containers/create", alice).withBody(privileged),
			source: SourceTCP, user: "alice", serial: "65", role: "developer", reasonHas: "rivileged"},
		{name: "admin runs privileged", req: tlsRequest("POST", "/containers/create", root).withBody(privileged),
			allow: true, source: SourceTCP, user: "root", serial: "68", role: "admin"},
		{name: "chain: the first certificate is the client", req: tlsRequest("GET", "/containers/json", alice, ca.cert),
			allow: true, source: SourceTCP, user: "alice", serial: "65", role: "developer"},
		{name: "revoked with a known name", req: tlsRequest("GET", "/containers/json", carol),
			msg:    `denied: certificate "carol" serial 67 is revoked (rule plugin: certificate not accepted)`,
			source: SourceTCP, user: "carol", serial: "67", rule: ruleNotAccepted},
		{name: "unknown serial with a known name", req: tlsRequest("GET", "/containers/json", ca.client(t, "alice", 999)),
			msg:    `denied: certificate "alice" serial 3e7 is not in the inventory (rule plugin: certificate not accepted)`,
			source: SourceTCP, user: "alice", serial: "3e7", rule: ruleNotAccepted},
		{name: "another CA's certificate with a known serial and name", req: tlsRequest("GET", "/containers/json", other.client(t, "root", 104)),
			msg:    `denied: certificate "root" serial 68 is not the one the inventory holds under that serial (rule plugin: certificate not accepted)`,
			source: SourceTCP, user: "root", serial: "68", rule: ruleNotAccepted},
		{name: "user is not the certificate's name", req: func() mobyRequest { r := tlsRequest("GET", "/containers/json", bob); r.User = "root"; return r }(),
			msg:    `denied: dockerd sent user "root" but the client certificate (serial 66) is "bob" (rule plugin: user is not the certificate's name)`,
			source: SourceTCP, user: "bob", serial: "66", rule: ruleUserMismatch},
		{name: "TCP with a user and no certificate", req: mobyRequest{User: "root", UserAuthNMethod: "TLS", RequestMethod: "GET", RequestURI: "/containers/json"},
			msg:    `denied: TCP request without a client certificate (user "root", authentication "TLS") (rule plugin: no client certificate)`,
			source: SourceTCP, user: "root", rule: ruleNoCertificate},
		{name: "TCP with an authentication method and no certificate", req: mobyRequest{UserAuthNMethod: "TLS", RequestMethod: "GET", RequestURI: "/containers/json"},
			msg:    `denied: TCP request without a client certificate (user "", authentication "TLS") (rule plugin: no client certificate)`,
			source: SourceTCP, rule: ruleNoCertificate},
		{name: "unix socket", req: mobyRequest{RequestMethod: "POST", RequestURI: "/v1.47/containers/create", RequestBody: []byte(privileged),
			RequestHeaders: map[string]string{"Content-Type": "application/json"}},
			allow: true, source: SourceUnix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tp.ask(t, pathAuthZReq, tt.req)
			rec := tp.lastRecord(t)
			assert.Equal(t, tt.allow, out.Allow, "answer %+v, record %+v", out, rec)
			assert.Empty(t, out.Err)
			assert.Equal(t, PhaseRequest, rec.Phase)
			assert.Equal(t, map[bool]string{true: DecisionAllow, false: DecisionDeny}[tt.allow], rec.Decision)
			assert.Equal(t, string(tt.source), rec.Source)
			assert.Equal(t, tt.user, rec.User)
			assert.Equal(t, tt.serial, rec.Serial)
			assert.Equal(t, tt.role, rec.Role)
			assert.Equal(t, tt.req.RequestMethod, rec.Method)
			assert.Equal(t, tt.req.RequestURI, rec.URI)
			if want, err := CanonicalPath(tt.req.RequestURI); assert.NoError(t, err) {
				assert.Equal(t, want, rec.Path)
			}
			assert.WithinDuration(t, time.Now(), rec.Time, time.Minute)
			if tt.rule != "" {
				assert.Equal(t, tt.rule, rec.Rule)
			}
			assert.Contains(t, rec.Reason, tt.reasonHas)
			switch {
			case tt.allow:
				assert.Empty(t, out.Msg)
			case tt.msg != "":
				assert.Equal(t, tt.msg, out.Msg)
			default:
				// A policy denial names the user, the role, the reason and
				// the rule, as the Docker user reads it.
				assert.Equal(t, fmt.Sprintf("denied for %s (role %s): %s (rule %s)", tt.user, tt.role, rec.Reason, rec.Rule), out.Msg)
				assert.NotEmpty(t, rec.Reason)
				assert.NotEmpty(t, rec.Rule)
			}
		})
	}
}

// TestRevocationTakesEffectAtOnce: the inventory is asked at every
// request, so a certificate revoked between two requests is refused at the
// second, without a restart.
func TestRevocationTakesEffectAtOnce(t *testing.T) {
	ca := newTestCA(t, "ca")
	alice := ca.client(t, "alice", 5)
	inv := newFakeInventory()
	inv.add(alice, "developer")
	tp := startPlugin(t, Config{Inventory: inv})
	req := tlsRequest("GET", "/containers/json", alice)
	require.True(t, tp.ask(t, pathAuthZReq, req).Allow)
	inv.revoke(alice)
	out := tp.ask(t, pathAuthZReq, req)
	assert.False(t, out.Allow)
	assert.Contains(t, out.Msg, "is revoked")
	assert.Contains(t, tp.log.String(), `certificate "alice" serial 5 refused: certificate "alice" serial 5 is revoked`)
}

func TestNoInventoryDeniesTCP(t *testing.T) {
	ca := newTestCA(t, "ca")
	tp := startPlugin(t, Config{})
	out := tp.ask(t, pathAuthZReq, tlsRequest("GET", "/containers/json", ca.client(t, "alice", 5)))
	assert.Equal(t, authzResponse{Msg: "denied: the certificate inventory could not be opened: every TCP request is denied (rule plugin: no inventory)"}, out)
	assert.True(t, tp.ask(t, pathAuthZReq, mobyRequest{RequestMethod: "GET", RequestURI: "/containers/json"}).Allow, "the unix socket")
}

// TestMalformedCalls: whatever dockerd (or anyone on the socket) sends to
// AuthZReq gets HTTP 200 and a denial saying why, and the plugin keeps
// serving on the same connection.
func TestMalformedCalls(t *testing.T) {
	ca := newTestCA(t, "ca")
	alice := ca.client(t, "alice", 5)
	inv := newFakeInventory()
	inv.add(alice, "admin")
	tp := startPlugin(t, Config{Inventory: inv})
	good, err := json.Marshal(tlsRequest("GET", "/containers/json", alice))
	require.NoError(t, err)

	withCert := func(pemText string) []byte {
		b, err := json.Marshal(map[string]any{"User": "alice", "UserAuthNMethod": "TLS", "RequestMethod": "GET",
			"RequestUri": "/containers/json", "RequestPeerCertificates": []any{[]byte(pemText)}})
		require.NoError(t, err)
		return b
	}
	huge := append(append([]byte(`{"RequestMethod":"GET","RequestUri":"/containers/json","RequestBody":"`),
		bytes.Repeat([]byte("A"), maxRequestBytes)...), `"}`...)
	tests := []struct {
		name string
		body []byte
		msg  string
	}{
		{"invalid JSON", []byte(`{"RequestMethod": "GET",`),
			"denied: malformed request from dockerd: invalid JSON: unexpected end of JSON input (rule plugin: malformed request)"},
		{"not an object", []byte(`[1, 2]`),
			"denied: malformed request from dockerd: invalid JSON: json: cannot unmarshal array into Go value of type authz.authzRequest (rule plugin: malformed request)"},
		{"empty body", nil,
			"denied: malformed request from dockerd: empty body (rule plugin: malformed request)"},
		{"over the limit", huge,
			"denied: malformed request from dockerd: more than 16 MiB (rule plugin: malformed request)"},
		{"no RequestMethod", []byte(`{"RequestUri": "/containers/json"}`),
			"denied: malformed request from dockerd: no RequestMethod or no RequestUri (rule plugin: malformed request)"},
		{"no RequestUri", []byte(`{"RequestMethod": "GET"}`),
			"denied: malformed request from dockerd: no RequestMethod or no RequestUri (rule plugin: malformed request)"},
		{"null", []byte(`null`),
			"denied: malformed request from dockerd: no RequestMethod or no RequestUri (rule plugin: malformed request)"},
		{"certificate not PEM", withCert("not a certificate"),
			"denied: peer certificate 1 of 1 does not parse: no PEM block (rule plugin: unparsable certificate)"},
		{"PEM of a key", withCert("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
			`denied: peer certificate 1 of 1 does not parse: PEM block of type "PRIVATE KEY", want CERTIFICATE (rule plugin: unparsable certificate)`},
		{"certificate DER garbage", withCert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
			"denied: peer certificate 1 of 1 does not parse: x509: malformed certificate (rule plugin: unparsable certificate)"},
		{"certificate not a string", []byte(`{"User":"alice","RequestMethod":"GET","RequestUri":"/","RequestPeerCertificates":[42]}`),
			"denied: malformed request from dockerd: invalid JSON: json: cannot unmarshal number into Go struct field authzRequest.RequestPeerCertificates of type authz.pemCertificate (rule plugin: malformed request)"},
		{"null certificate", []byte(`{"User":"alice","RequestMethod":"GET","RequestUri":"/","RequestPeerCertificates":[null]}`),
			"denied: peer certificate 1 of 1 does not parse: empty (rule plugin: unparsable certificate)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := tp.post(t, pathAuthZReq, tt.body)
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, authzResponse{Msg: tt.msg}, out)
			rec := tp.lastRecord(t)
			assert.Equal(t, DecisionDeny, rec.Decision)
			assert.Equal(t, PhaseRequest, rec.Phase)

			// Still serving, on the same client.
			status, out = tp.post(t, pathAuthZReq, good)
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, authzResponse{Allow: true}, out)
		})
	}
	assert.Contains(t, tp.log.String(), "dtls-authz: request phase: malformed request from dockerd: invalid JSON")
}

// TestResponsePhase: AuthZRes is always allowed and recorded with the
// status, linkable to the request record by user, serial, method and URI.
func TestResponsePhase(t *testing.T) {
	ca := newTestCA(t, "ca")
	alice := ca.client(t, "alice", 5)
	inv := newFakeInventory()
	inv.add(alice, "developer")
	tp := startPlugin(t, Config{Inventory: inv})

	req := tlsRequest("POST", "/v1.47/containers/create?name=web", alice).withBody(`{"Image":"alpine"}`)
	require.True(t, tp.ask(t, pathAuthZReq, req).Allow)
	res := req
	res.ResponseStatusCode = http.StatusCreated
	res.ResponseHeaders = map[string]string{"Content-Type": "application/json"}
	res.ResponseBody = []byte(`{"Id":"abc","Warnings":[]}`)
	assert.Equal(t, authzResponse{Allow: true}, tp.ask(t, pathAuthZRes, res))

	// A hijacked or streamed response has no status (omitempty).
	attach := tlsRequest("POST", "/v1.47/containers/abc/attach?stream=1", alice)
	assert.Equal(t, authzResponse{Allow: true}, tp.ask(t, pathAuthZRes, attach))

	// Revoked in between: the response is still allowed (never blocked).
	inv.revoke(alice)
	assert.Equal(t, authzResponse{Allow: true}, tp.ask(t, pathAuthZRes, res))

	// And a malformed one too.
	status, out := tp.post(t, pathAuthZRes, []byte(`{`))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, authzResponse{Allow: true}, out)

	recs, err := ReadAudit(tp.audit, AuditFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 5)
	reqRec, resRec := recs[0], recs[1]
	assert.Equal(t, PhaseRequest, reqRec.Phase)
	assert.Equal(t, PhaseResponse, resRec.Phase)
	assert.Equal(t, DecisionAllow, resRec.Decision)
	assert.Equal(t, http.StatusCreated, resRec.Status)
	assert.Zero(t, reqRec.Status)
	for _, r := range []AuditRecord{reqRec, resRec} {
		assert.Equal(t, "alice", r.User)
		assert.Equal(t, "5", r.Serial)
		assert.Equal(t, "developer", r.Role)
		assert.Equal(t, "tcp", r.Source)
		assert.Equal(t, "POST", r.Method)
		assert.Equal(t, "/v1.47/containers/create?name=web", r.URI)
		assert.Equal(t, "/containers/create", r.Path)
	}
	assert.Equal(t, PhaseResponse, recs[2].Phase)
	assert.Zero(t, recs[2].Status)
	assert.Equal(t, "/containers/abc/attach", recs[2].Path)
	assert.Equal(t, DecisionAllow, recs[3].Decision)
	assert.Equal(t, "alice", recs[3].User, "the certificate's name when the inventory refuses it")
	assert.Empty(t, recs[3].Role)
	assert.Equal(t, DecisionAllow, recs[4].Decision)
	assert.Equal(t, ruleMalformed, recs[4].Rule)
}

func TestWarnMode(t *testing.T) {
	ca := newTestCA(t, "ca")
	bob := ca.client(t, "bob", 6)
	inv := newFakeInventory()
	inv.add(bob, "")
	tp := startPlugin(t, Config{Inventory: inv, Mode: ModeWarn})

	tests := []struct {
		name     string
		req      mobyRequest
		decision string
	}{
		{"allowed stays allow", tlsRequest("GET", "/containers/json", bob), DecisionAllow},
		{"denied becomes warn", tlsRequest("POST", "/containers/create", bob).withBody(`{"Image":"alpine","HostConfig":{"Privileged":true}}`), DecisionWarn},
		{"unknown certificate becomes warn", tlsRequest("GET", "/containers/json", ca.client(t, "bob", 66)), DecisionWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, authzResponse{Allow: true}, tp.ask(t, pathAuthZReq, tt.req))
			rec := tp.lastRecord(t)
			assert.Equal(t, tt.decision, rec.Decision)
			if tt.decision == DecisionWarn {
				assert.NotEmpty(t, rec.Reason, "what enforce would have said")
			}
		})
	}
	// Even a malformed call is allowed in warn mode.
	status, out := tp.post(t, pathAuthZReq, []byte(`{`))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, authzResponse{Allow: true}, out)
	assert.Equal(t, DecisionWarn, tp.lastRecord(t).Decision)
}

func TestNewPluginRejectsUnknownMode(t *testing.T) {
	_, err := NewPlugin(Config{Mode: "audit"})
	assert.EqualError(t, err, `invalid authorization mode "audit": want "enforce" or "warn"`)
}

// panicInventory fails in the worst way.
type panicInventory struct{}

func (panicInventory) Identify(*x509.Certificate) (string, string, error) {
	panic("inventory exploded")
}

func TestPanicIsADenial(t *testing.T) {
	ca := newTestCA(t, "ca")
	tp := startPlugin(t, Config{Inventory: panicInventory{}})
	req := tlsRequest("GET", "/containers/json", ca.client(t, "alice", 5))
	out := tp.ask(t, pathAuthZReq, req)
	assert.Equal(t, authzResponse{Msg: "denied: internal error: inventory exploded (rule plugin: internal error)"}, out)
	assert.Equal(t, authzResponse{Allow: true}, tp.ask(t, pathAuthZRes, req), "a response is never blocked")
	assert.Contains(t, tp.log.String(), "dtls-authz: internal error in the request phase: inventory exploded\ngoroutine ")
	// And the plugin still serves.
	assert.True(t, tp.ask(t, pathAuthZReq, mobyRequest{RequestMethod: "GET", RequestURI: "/_ping"}).Allow)
}

// validPolicy is a policy file the policy engine accepts.
const validPolicy = `{"default_role": "readonly"}` + "\n"

// TestPolicyReload: a policy file that is broken at start, or breaks later,
// denies every TCP request with the reason while the unix socket still
// works; fixing the file takes effect without a restart.
func TestPolicyReload(t *testing.T) {
	ca := newTestCA(t, "ca")
	bob := ca.client(t, "bob", 6)
	inv := newFakeInventory()
	inv.add(bob, "")
	dir := shortTempDir(t)
	policy := filepath.Join(dir, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": `), 0o644))
	tp := startPlugin(t, Config{Inventory: inv, PolicyPath: policy, ReloadEvery: time.Millisecond})

	tcp := tlsRequest("GET", "/containers/json", bob)
	unix := mobyRequest{RequestMethod: "GET", RequestURI: "/containers/json"}
	deniedForPolicy := func(t *testing.T) {
		t.Helper()
		out := tp.ask(t, pathAuthZReq, tcp)
		require.False(t, out.Allow)
		assert.True(t, strings.HasPrefix(out.Msg, "denied for bob: every TCP request is denied until the policy is fixed: "), out.Msg)
		assert.Contains(t, out.Msg, policy)
		assert.True(t, strings.HasSuffix(out.Msg, " (rule plugin: policy invalid)"), out.Msg)
		assert.Equal(t, rulePolicyInvalid, tp.lastRecord(t).Rule)
		assert.True(t, tp.ask(t, pathAuthZReq, unix).Allow, "the unix socket still works")
	}
	// eventually polls until the plugin answers tcp as wanted.
	eventually := func(t *testing.T, allow bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for tp.ask(t, pathAuthZReq, tcp).Allow != allow {
			if time.Now().After(deadline) {
				t.Fatalf("the plugin did not reload %s within 10s; log:\n%s", policy, tp.log.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	deniedForPolicy(t)
	assert.Contains(t, tp.log.String(), fmt.Sprintf("dtls-authz: policy %q: invalid JSON at line 1, column 18: unexpected end of JSON input: every TCP request is denied until the policy is fixed\n", policy))

	require.NoError(t, os.WriteFile(policy, []byte(validPolicy), 0o644))
	eventually(t, true)
	assert.Contains(t, tp.log.String(), fmt.Sprintf("dtls-authz: policy %q reloaded\n", policy))

	// Broken again, by replacing the file (a new inode).
	tmp := policy + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte("{]"), 0o644))
	require.NoError(t, os.Rename(tmp, policy))
	eventually(t, false)
	deniedForPolicy(t)

	// Removed.
	require.NoError(t, os.Remove(policy))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(tp.ask(t, pathAuthZReq, tcp).Msg, "cannot be read: no such file or directory") {
		require.False(t, time.Now().After(deadline), "a removed policy file is not noticed: %s", tp.log.String())
		time.Sleep(5 * time.Millisecond)
	}
	deniedForPolicy(t)

	require.NoError(t, os.WriteFile(policy, []byte(validPolicy), 0o644))
	eventually(t, true)
}

// TestOptionalPolicyFollowed: the default policy path (PolicyOptional),
// absent at start, is the built-in policy; a file created there later is
// loaded within the reload period, an invalid one denies every TCP
// request, and once it is removed the built-in policy applies again. Each
// step is said in the log.
func TestOptionalPolicyFollowed(t *testing.T) {
	ca := newTestCA(t, "ca")
	bob := ca.client(t, "bob", 6)
	inv := newFakeInventory()
	inv.add(bob, "")
	policy := filepath.Join(shortTempDir(t), "authz-policy.json")
	tp := startPlugin(t, Config{Inventory: inv, PolicyPath: policy, PolicyOptional: true, ReloadEvery: 10 * time.Millisecond})
	tcp := tlsRequest("GET", "/containers/json", bob)
	// answer polls, for at most a second and a half, until the plugin's
	// answer to bob contains want.
	answer := func(t *testing.T, allow bool, want string) {
		t.Helper()
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			out := tp.ask(t, pathAuthZReq, tcp)
			if out.Allow == allow && strings.Contains(out.Msg, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want allow=%v %q, got %+v; log:\n%s", allow, want, out, tp.log.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Absent: the built-in policy, whose default role reads.
	answer(t, true, "")
	assert.Equal(t, fmt.Sprintf("dtls-authz: policy %q absent: the built-in policy applies until it is created\n", policy), tp.log.String())

	// Created: a default role that may do nothing.
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": "nobody", "roles": {"nobody": {}}}`), 0o644))
	answer(t, false, "denied for bob (role nobody)")
	assert.Contains(t, tp.log.String(), fmt.Sprintf("dtls-authz: policy %q created: loaded in place of the built-in policy\n", policy))

	// Invalid: closed, as any invalid policy file.
	require.NoError(t, os.WriteFile(policy, []byte(`{"default_role": `), 0o644))
	answer(t, false, "every TCP request is denied until the policy is fixed")
	assert.True(t, tp.ask(t, pathAuthZReq, mobyRequest{RequestMethod: "GET", RequestURI: "/containers/json"}).Allow, "the unix socket still works")

	// Removed: the built-in policy again.
	require.NoError(t, os.Remove(policy))
	answer(t, true, "")
	assert.Contains(t, tp.log.String(), fmt.Sprintf("dtls-authz: policy %q removed: the built-in policy applies\n", policy))
	assert.Equal(t, "readonly", tp.lastRecord(t).Role)
}

func TestPolicyLoadedAtStart(t *testing.T) {
	dir := shortTempDir(t)
	policy := filepath.Join(dir, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(validPolicy), 0o644))
	tp := startPlugin(t, Config{PolicyPath: policy})
	assert.Equal(t, fmt.Sprintf("dtls-authz: policy %q loaded\n", policy), tp.log.String())
}

// TestConcurrentCalls: many connections at once, each answered, each
// recorded on a whole line.
func TestConcurrentCalls(t *testing.T) {
	ca := newTestCA(t, "ca")
	alice, bob := ca.client(t, "alice", 5), ca.client(t, "bob", 6)
	inv := newFakeInventory()
	inv.add(alice, "admin")
	inv.add(bob, "")
	tp := startPlugin(t, Config{Inventory: inv})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, want := alice, true
			if w%2 == 1 {
				c, want = bob, false
			}
			b, _ := json.Marshal(tlsRequest("POST", "/containers/create", c).withBody(`{"Image":"alpine"}`))
			for range each {
				resp, err := tp.client.Post("http://plugin.moby.localhost"+pathAuthZReq, mediaType, bytes.NewReader(b))
				if err != nil {
					errs <- err
					return
				}
				var out authzResponse
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err == nil && out.Allow != want {
					err = fmt.Errorf("%s: allow %v, want %v (%s)", c.Subject.CommonName, out.Allow, want, out.Msg)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs, err := ReadAudit(tp.audit, AuditFilter{})
	require.NoError(t, err)
	assert.Len(t, recs, workers*each)
	denied, err := ReadAudit(tp.audit, AuditFilter{User: "bob", Decision: DecisionDeny})
	require.NoError(t, err)
	assert.Len(t, denied, workers/2*each)
}

func TestListen(t *testing.T) {
	t.Run("socket mode 0600, removed on close", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		l, err := Listen(path)
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.Equal(t, fs.ModeSocket|0o600, fi.Mode()&(fs.ModeType|fs.ModePerm))
		assert.Equal(t, path, l.Addr().String())
		entries, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no temporary directory left behind")

		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		c.Close()
		require.NoError(t, <-accepted)

		require.NoError(t, l.Close())
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("creates the directory", func(t *testing.T) {
		dir := filepath.Join(shortTempDir(t), "plugins")
		l, err := Listen(filepath.Join(dir, "p.sock"))
		require.NoError(t, err)
		defer l.Close()
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	})
	t.Run("refuses a regular file", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		require.NoError(t, os.WriteFile(path, []byte("precious"), 0o644))
		_, err := Listen(path)
		assert.EqualError(t, err, fmt.Sprintf(`listen on %q: it exists and is not a socket (a regular file): remove it if it is not needed`, path))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "precious", string(b))
	})
	t.Run("refuses a directory", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		require.NoError(t, os.Mkdir(path, 0o700))
		_, err := Listen(path)
		assert.EqualError(t, err, fmt.Sprintf(`listen on %q: it exists and is not a socket (a directory): remove it if it is not needed`, path))
	})
	t.Run("refuses a live socket", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		live, err := net.Listen("unix", path)
		require.NoError(t, err)
		defer live.Close()
		_, err = Listen(path)
		assert.EqualError(t, err, fmt.Sprintf(`listen on %q: another process is listening on that socket`, path))
	})
	t.Run("replaces a stale socket", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		stale.SetUnlinkOnClose(false)
		require.NoError(t, stale.Close())
		before, err := os.Lstat(path)
		require.NoError(t, err)

		l, err := Listen(path)
		require.NoError(t, err)
		defer l.Close()
		after, err := os.Lstat(path)
		require.NoError(t, err)
		assert.False(t, os.SameFile(before, after), "a new socket")
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := net.Dial("unix", path)
		require.NoError(t, err)
		c.Close()
	})
	t.Run("close leaves a replacing socket alone", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "dtls-authz.sock")
		l, err := Listen(path)
		require.NoError(t, err)
		require.NoError(t, os.Remove(path))
		l2, err := Listen(path)
		require.NoError(t, err)
		defer l2.Close()
		require.NoError(t, l.Close())
		_, err = os.Lstat(path)
		assert.NoError(t, err, "the second listener's socket is still there")
	})
	t.Run("path too long", func(t *testing.T) {
		path := "/tmp/" + strings.Repeat("x", 110) + ".sock"
		_, err := Listen(path)
		assert.EqualError(t, err, fmt.Sprintf("socket path %q is 120 bytes long: unix socket paths are limited to 107", path))
	})
}

func TestListenFDs(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		n    int
		err  string
	}{
		{name: "not activated", env: map[string]string{}},
		{name: "for another process", env: map[string]string{"LISTEN_PID": "41", "LISTEN_FDS": "1"}},
		{name: "one socket", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "1"}, n: 1},
		{name: "two sockets", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}, n: 2},
		{name: "zero", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "0"}},
		{name: "bad pid", env: map[string]string{"LISTEN_PID": "x", "LISTEN_FDS": "1"}, err: `socket activation: invalid LISTEN_PID "x"`},
		{name: "no count", env: map[string]string{"LISTEN_PID": "42"}, err: `socket activation: invalid LISTEN_FDS ""`},
		{name: "negative count", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "-1"}, err: `socket activation: invalid LISTEN_FDS "-1"`},
		{name: "absurd count", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "99999999"}, err: `socket activation: invalid LISTEN_FDS "99999999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := listenFDs(func(k string) string { return tt.env[k] }, 42)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.n, n)
		})
	}
}

func TestListenersFromSystemdNotActivated(t *testing.T) {
	t.Setenv("LISTEN_PID", "1") // systemd's, not ours
	t.Setenv("LISTEN_FDS", "1")
	ls, err := ListenersFromSystemd()
	require.NoError(t, err)
	assert.Empty(t, ls)
	_, set := os.LookupEnv("LISTEN_FDS")
	assert.False(t, set, "the variables are removed")
}

// systemdChildEnv makes the test binary, run again by
// TestListenersFromSystemd, play the socket-activated plugin.
const systemdChildEnv = "DTLS_AUTHZ_TEST_SYSTEMD_CHILD"

// TestListenersFromSystemd runs the test binary again the way systemd runs
// a socket-activated service: the listening socket as fd 3, LISTEN_FDS,
// and LISTEN_PID set to the child's own pid before exec (by sh's exec).
// The parent connects before the child serves: the connection waits in
// the socket's backlog, as dockerd's do while the plugin restarts.
func TestListenersFromSystemd(t *testing.T) {
	if mode := os.Getenv(systemdChildEnv); mode != "" {
		systemdChild(t, mode)
		return
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no sh to set LISTEN_PID before exec: %v", err)
		}
		t.Skip("no sh to set LISTEN_PID before exec")
	}
	dir := shortTempDir(t)
	tests := []struct {
		mode   string
		listen func(t *testing.T) (*os.File, func())
	}{
		{"serve", func(t *testing.T) (*os.File, func()) {
			path := filepath.Join(dir, "activated.sock")
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			require.NoError(t, err)
			require.NoError(t, os.Chmod(path, 0o666)) // systemd's default SocketMode
			f, err := l.File()
			require.NoError(t, err)
			return f, func() { l.Close() }
		}},
		{"tcp", func(t *testing.T) (*os.File, func()) {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			f, err := l.File()
			require.NoError(t, err)
			return f, func() { l.Close() }
		}},
		// The gateway's: a TCP socket is what it wants, a unix one not.
		{"gateway-tcp", func(t *testing.T) (*os.File, func()) {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			f, err := l.File()
			require.NoError(t, err)
			return f, func() { l.Close() }
		}},
		{"gateway-unix", func(t *testing.T) (*os.File, func()) {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "gateway.sock"), Net: "unix"})
			require.NoError(t, err)
			f, err := l.File()
			require.NoError(t, err)
			return f, func() { l.Close() }
		}},
		{"file", func(t *testing.T) (*os.File, func()) {
			f, err := os.Create(filepath.Join(dir, "not-a-socket"))
			require.NoError(t, err)
			return f, func() {}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			f, closeListener := tt.listen(t)
			defer closeListener()
			defer f.Close()
			cmd := exec.Command(sh, "-c", `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=dtls-authz.socket exec "$0" "$@"`,
				os.Args[0], "-test.run=^TestListenersFromSystemd$", "-test.v")
			cmd.Env = append(os.Environ(), systemdChildEnv+"="+tt.mode)
			cmd.ExtraFiles = []*os.File{f}
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			defer func() {
				stdin.Close()
				err := cmd.Wait()
				assert.NoError(t, err, "child:\n%s", out.String())
				assert.Contains(t, out.String(), "--- PASS: TestListenersFromSystemd", "the child ran the test")
			}()
			if tt.mode != "serve" {
				return
			}
			path := filepath.Join(dir, "activated.sock")
			c := unixClient(path)
			defer c.CloseIdleConnections()
			resp, err := c.Post("http://plugin.moby.localhost"+pathActivate, mediaType, nil)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.JSONEq(t, `{"Implements":["authz"]}`, string(b))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "a socket open to all is closed down")
		})
	}
}

// systemdChild is the socket-activated side of TestListenersFromSystemd.
func systemdChild(t *testing.T, mode string) {
	if strings.HasPrefix(mode, "gateway-") {
		gatewaySystemdChild(t, mode)
		return
	}
	ls, err := ListenersFromSystemd()
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		_, set := os.LookupEnv(k)
		assert.False(t, set, "%s is removed from the environment", k)
	}
	switch mode {
	case "tcp":
		require.Error(t, err)
		assert.Regexp(t, `^socket activation: fd 3 \(dtls-authz.socket\) is a tcp socket \(127.0.0.1:\d+\), not a unix socket: the plugin must not listen on the network$`, err.Error())
		return
	case "file":
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "socket activation: fd 3 (dtls-authz.socket) is not a socket: "), err.Error())
		return
	}
	require.NoError(t, err)
	require.Len(t, ls, 1)
	p, err := NewPlugin(Config{})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- p.Serve(ls[0]) }()
	// Serve until the parent closes stdin.
	_, _ = io.Copy(io.Discard, os.Stdin)
	require.NoError(t, p.Close())
	require.NoError(t, <-served)
}

// gatewaySystemdChild is the gateway's side: TCPListenersFromSystemd takes
// a listening TCP socket and refuses a unix one.
func gatewaySystemdChild(t *testing.T, mode string) {
	ls, err := TCPListenersFromSystemd()
	if mode == "gateway-unix" {
		require.Error(t, err)
		assert.Regexp(t, `^socket activation: fd 3 \(dtls-authz.socket\) is a unix socket \(.*gateway.sock\), not a TCP socket$`, err.Error())
		return
	}
	require.NoError(t, err)
	require.Len(t, ls, 1)
	addr, ok := ls[0].Addr().(*net.TCPAddr)
	require.True(t, ok, "%T", ls[0].Addr())
	assert.True(t, addr.IP.IsLoopback())
	ls[0].Close()
}
