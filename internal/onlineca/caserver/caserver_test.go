package caserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/pki"
)

// envelope is cfssl's api.Response with this server's results.
type envelope struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Messages []any `json:"messages"`
}

// call is one request's answer.
type call struct {
	status int
	env    envelope
	body   []byte
	header http.Header
}

func (c call) message() string {
	if len(c.env.Errors) == 0 {
		return ""
	}
	return c.env.Errors[0].Message
}

func do(t *testing.T, client *http.Client, method, url string, body any) call {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	c := call{status: resp.StatusCode, body: b, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(b, &c.env), string(b))
		assert.Equal(t, c.status == http.StatusOK, c.env.Success, string(b))
	}
	return c
}

func certOf(t *testing.T, c call) (fleet.CertResponse, *x509.Certificate) {
	t.Helper()
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	var cr fleet.CertResponse
	require.NoError(t, json.Unmarshal(c.env.Result, &cr))
	cert, err := pki.ParseCertificate([]byte(cr.Certificate))
	require.NoError(t, err)
	return cr, cert
}

// enrol makes a key and enrols it with tok: the answer, and the key.
func enrol(t *testing.T, ca *catest.CA, tok string) (call, []byte) {
	t.Helper()
	csr, key, err := pki.NewCSR("ignored", "")
	require.NoError(t, err)
	return do(t, ca.HTTPClient(t, nil, nil), http.MethodPost, ca.URL+fleet.PathEnroll, fleet.EnrollRequest{Token: tok, CSR: string(csr)}), key
}

// renew renews the certificate certPEM (key keyPEM) for a new key made
// here, or for csr when given.
func renew(t *testing.T, ca *catest.CA, certPEM, keyPEM, csr []byte) (call, []byte) {
	t.Helper()
	var key []byte
	if csr == nil {
		var err error
		csr, key, err = pki.NewCSR("ignored", "")
		require.NoError(t, err)
	}
	return do(t, ca.HTTPClient(t, certPEM, keyPEM), http.MethodPost, ca.URL+fleet.PathRenew, fleet.RenewRequest{CSR: string(csr)}), key
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestEnrolClient: a client token gives a 24-hour certificate for the
// token's name with the role in its OU, whatever the CSR's subject;
// the inventory has it and the role, and the token is used.
func TestEnrolClient(t *testing.T) { testEnrolClient(t, catest.Options{}) }

func testEnrolClient(t *testing.T, o catest.Options) {
	ca := catest.Start(t, o)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"})
	c, key := enrol(t, ca, tok)
	cr, cert := certOf(t, c)
	assert.Equal(t, "alice", cert.Subject.CommonName)
	role, ok := fleet.CertRole(cert)
	assert.True(t, ok)
	assert.Equal(t, "developer", role)
	assert.Equal(t, fleet.CertResponse{Certificate: cr.Certificate, CA: string(ca.CAPEM), Kind: store.KindClient, Name: "alice",
		Role: "developer", NotAfter: cert.NotAfter}, cr)
	assert.Equal(t, store.KindClient, store.KindOf(cert))
	assert.WithinDuration(t, time.Now().Add(fleet.DefaultClientValidity), cert.NotAfter, time.Minute)
	require.NoError(t, pki.Verify(cert, []*x509.Certificate{ca.CACert}, pki.KindClient, time.Now()))
	assert.NotEmpty(t, key)

	rec, err := ca.Store.Get(pki.Serial(cert))
	require.NoError(t, err)
	require.NotNil(t, rec)
	assert.Equal(t, store.StatusGood, rec.Status)
	assert.Equal(t, pki.Serial(ca.CACert), rec.CASerial)
	r, err := ca.Store.Role("alice")
	require.NoError(t, err)
	assert.Equal(t, "developer", r)
	parsed, err := fleet.ParseToken(tok)
	require.NoError(t, err)
	st, err := ca.Store.Token(parsed.Hash())
	require.NoError(t, err)
	assert.Equal(t, pki.Serial(cert), st.UsedSerial)
}

// TestEnrolServer: a server token gives a server certificate for its
// hosts, for the server validity.
func TestEnrolServer(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example", Hosts: []string{"10.0.0.7", "docker1"}})
	c, _ := enrol(t, ca, tok)
	cr, cert := certOf(t, c)
	assert.Equal(t, store.KindServer, cr.Kind)
	assert.Empty(t, cr.Role)
	assert.Equal(t, "docker1.example", cert.Subject.CommonName)
	assert.Equal(t, []string{"docker1.example", "docker1"}, cert.DNSNames)
	require.Len(t, cert.IPAddresses, 1)
	assert.Equal(t, "10.0.0.7", cert.IPAddresses[0].String())
	assert.WithinDuration(t, time.Now().Add(pki.DefaultServerValidity), cert.NotAfter, time.Minute)
	require.NoError(t, pki.Verify(cert, []*x509.Certificate{ca.CACert}, pki.KindServer, time.Now()))
}

// TestEnrolRefused: a used, expired, unknown, malformed or foreign token
// is refused with 403 and a message that never holds the token; nothing
// is recorded.
func TestEnrolRefused(t *testing.T) {
	clk := &clock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now})
	other := catest.Start(t, catest.Options{})
	used := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	c, _ := enrol(t, ca, used)
	certOf(t, c)
	expired := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob", TTL: 60})
	foreign := other.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "carol"})
	unknownTok, err := fleet.NewToken(ca.CACert)
	require.NoError(t, err)
	before, err := ca.Store.All()
	require.NoError(t, err)
	clk.Add(time.Minute)

	for _, tc := range []struct {
		name, tok, msg string
	}{
		{"used", used, "enrolment token already used (at "},
		{"expired", expired, "enrolment token expired at "},
		{"unknown", unknownTok.String(), "unknown enrolment token: ask the CA's operator for one (dtls ca token)"},
		{"malformed", "dtls1.abc", fleet.ErrBadToken.Error()},
		{"foreign", foreign, "the enrolment token is for another CA (its CA fingerprint is not this CA's)"},
	} {
		c, _ := enrol(t, ca, tc.tok)
		assert.Equal(t, http.StatusForbidden, c.status, tc.name)
		assert.Contains(t, c.message(), tc.msg, tc.name)
		secret := strings.Split(tc.tok, ".")[1]
		assert.NotContains(t, string(c.body), secret, tc.name)
	}
	// An unknown token is refused before its request is read further:
	// with a CSR that does not even parse, the answer is still about the
	// token (a stranger's request costs a lookup, not a signature check).
	c = do(t, ca.HTTPClient(t, nil, nil), http.MethodPost, ca.URL+fleet.PathEnroll, fleet.EnrollRequest{Token: unknownTok.String(), CSR: "not a CSR"})
	assert.Equal(t, http.StatusForbidden, c.status)
	assert.Contains(t, c.message(), "unknown enrolment token")
	after, err := ca.Store.All()
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing recorded")
}

// TestEnrolRetry: the host that used a token and lost the answer gets the
// same certificate again for the same key, and nobody gets one for
// another key.
func TestEnrolRetry(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	csr, _, err := pki.NewCSR("alice", "")
	require.NoError(t, err)
	client := ca.HTTPClient(t, nil, nil)
	_, first := certOf(t, do(t, client, http.MethodPost, ca.URL+fleet.PathEnroll, fleet.EnrollRequest{Token: tok, CSR: string(csr)}))
	_, again := certOf(t, do(t, client, http.MethodPost, ca.URL+fleet.PathEnroll, fleet.EnrollRequest{Token: tok, CSR: string(csr)}))
	assert.Equal(t, first.Raw, again.Raw)
	c, _ := enrol(t, ca, tok)
	assert.Equal(t, http.StatusForbidden, c.status)
	all, err := ca.Store.ByName("alice")
	require.NoError(t, err)
	assert.Len(t, all, 1)
}

// TestEnrolConcurrent: one token used by many requests at once gives
// exactly one certificate.
func TestEnrolConcurrent(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			csr, _, err := pki.NewCSR("x", "")
			if err != nil {
				return
			}
			b, _ := json.Marshal(fleet.EnrollRequest{Token: tok, CSR: string(csr)})
			resp, err := ca.HTTPClient(t, nil, nil).Post(ca.URL+fleet.PathEnroll, "application/json", bytes.NewReader(b))
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		} else {
			assert.Equal(t, http.StatusForbidden, s)
		}
	}
	assert.Equal(t, 1, ok)
	all, err := ca.Store.ByName("alice")
	require.NoError(t, err)
	assert.Len(t, all, 1)
}

// TestRenew: a good certificate renews: a new one for the new key with the
// same name, the role the inventory has now, and the old one superseded.
// Renewing with the superseded one again for the same key (the agent's
// retry) answers the same successor; for another key, 403.
func TestRenew(t *testing.T) { testRenew(t, catest.Options{}) }

func testRenew(t *testing.T, o catest.Options) {
	ca := catest.Start(t, o)
	c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"}))
	cr, old := certOf(t, c)
	require.NoError(t, ca.Store.Apply(store.Change{Roles: map[string]string{"alice": "auditor"}}))

	csr, _, err := pki.NewCSR("alice", "")
	require.NoError(t, err)
	r, _ := renew(t, ca, []byte(cr.Certificate), key, csr)
	rr, cert := certOf(t, r)
	assert.Equal(t, "alice", cert.Subject.CommonName)
	assert.Equal(t, "auditor", rr.Role, "the role the inventory has now")
	role, _ := fleet.CertRole(cert)
	assert.Equal(t, "auditor", role)
	assert.NotEqual(t, old.SerialNumber, cert.SerialNumber)
	oldRec, err := ca.Store.Get(pki.Serial(old))
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, oldRec.Status)
	newRec, err := ca.Store.Get(pki.Serial(cert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusGood, newRec.Status)

	// The agent's retry: same old certificate, same CSR.
	r, _ = renew(t, ca, []byte(cr.Certificate), key, csr)
	_, again := certOf(t, r)
	assert.Equal(t, cert.Raw, again.Raw, "the same successor")
	// Another key with the superseded certificate: refused.
	r, _ = renew(t, ca, []byte(cr.Certificate), key, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, `client certificate "alice" (serial `+pki.Serial(old)+`) is superseded by a renewal: use the newest certificate, or enrol again with a new token`, r.message())
	all, err := ca.Store.ByName("alice")
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

// TestRenewServer: a host renews its server certificate with that
// certificate (serverAuth only) as the client certificate; the hosts
// stay.
func TestRenewServer(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example", Hosts: []string{"10.0.0.7"}}))
	cr, old := certOf(t, c)
	r, _ := renew(t, ca, []byte(cr.Certificate), key, nil)
	rr, cert := certOf(t, r)
	assert.Equal(t, store.KindServer, rr.Kind)
	assert.Equal(t, old.DNSNames, cert.DNSNames)
	assert.Equal(t, old.IPAddresses, cert.IPAddresses)
	assert.Equal(t, store.KindServer, store.KindOf(cert))
}

// TestRenewRefused: no client certificate, a revoked one, one from
// another CA, one the inventory does not have: 403, saying which.
func TestRenewRefused(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	other := catest.Start(t, catest.Options{})
	c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	cr, cert := certOf(t, c)
	require.NoError(t, ca.Store.Apply(store.Change{Revoke: []store.Revocation{{Serial: pki.Serial(cert), Reason: 1, At: time.Now()}}}))
	foreignCert, foreignKey := other.Client(t, "mallory", "admin")

	// Signed by the CA, but never recorded.
	csr, unrecordedKey, err := pki.NewCSR("ghost", "")
	require.NoError(t, err)
	_, unrecorded, err := ca.PKI.SignCSR(pki.CSRRequest{Kind: pki.KindClient, CommonName: "ghost", CSR: csr, Now: time.Now()})
	require.NoError(t, err)

	for _, tc := range []struct {
		name         string
		certPEM, key []byte
		msg          string
	}{
		{"none", nil, nil, "this call needs a client certificate from this CA (none was presented)"},
		{"revoked", []byte(cr.Certificate), key, `client certificate "alice" (serial ` + pki.Serial(cert) + `) is revoked (reason 1 at `},
		{"foreign", foreignCert, foreignKey, `client certificate "mallory" (serial `},
		{"unrecorded", unrecorded, unrecordedKey, `) is not in this CA's inventory`},
	} {
		r, _ := renew(t, ca, tc.certPEM, tc.key, nil)
		assert.Equal(t, http.StatusForbidden, r.status, tc.name)
		assert.Contains(t, r.message(), tc.msg, tc.name)
	}
	r, _ := renew(t, ca, foreignCert, foreignKey, nil)
	assert.Contains(t, r.message(), "does not verify against this CA")
	all, err := ca.Store.ByName("alice")
	require.NoError(t, err)
	assert.Len(t, all, 1, "nothing issued")
}

// TestRenewOperator: an operator's certificate renews too, keeping the
// role.
func TestRenewOperator(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	certPEM, keyPEM := ca.Operator(t)
	r, _ := renew(t, ca, certPEM, keyPEM, nil)
	rr, _ := certOf(t, r)
	assert.Equal(t, fleet.OperatorRole, rr.Role)
}

// TestOperatorPaths: the inventory, revocation and tokens need a good
// certificate whose holder has the operator role in the inventory now.
func TestOperatorPaths(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	devCert, devKey := ca.Client(t, "dev", "admin")
	c, srvKey := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example"}))
	srvCert, srv := certOf(t, c)
	require.Equal(t, store.KindServer, srvCert.Kind)

	for _, tc := range []struct {
		name         string
		certPEM, key []byte
		msg          string
	}{
		{"no certificate", nil, nil, "this call needs a client certificate from this CA (none was presented)"},
		{"not an operator", devCert, devKey, `client "dev" does not have the role "ca-operator" that this call needs`},
		{"a server", []byte(srvCert.Certificate), srvKey, `certificate "docker1.example" (serial ` + pki.Serial(srv) + `) is a server certificate, not an operator's`},
	} {
		client := ca.HTTPClient(t, tc.certPEM, tc.key)
		for _, p := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, fleet.PathCerts, nil},
			{http.MethodPost, fleet.PathRevoke, fleet.RevokeRequest{Key: "dev"}},
			{http.MethodPost, fleet.PathTokens, fleet.TokenRequest{Kind: store.KindClient, Name: "eve", Role: "admin"}},
		} {
			r := do(t, client, p.method, ca.URL+p.path, p.body)
			assert.Equal(t, http.StatusForbidden, r.status, "%s %s", tc.name, p.path)
			assert.Equal(t, tc.msg, r.message(), "%s %s", tc.name, p.path)
		}
	}

	op := ca.HTTPClient(t, opCert, opKey)
	r := do(t, op, http.MethodGet, ca.URL+fleet.PathCerts, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var recs []store.Record
	require.NoError(t, json.Unmarshal(r.env.Result, &recs))
	names := map[string]bool{}
	for _, rec := range recs {
		names[rec.Name] = true
	}
	assert.True(t, names["dev"] && names["docker1.example"] && names["operator-1"], "%v", names)

	r = do(t, op, http.MethodPost, ca.URL+fleet.PathTokens, fleet.TokenRequest{Kind: store.KindClient, Name: "eve"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var tr fleet.TokenResponse
	require.NoError(t, json.Unmarshal(r.env.Result, &tr))
	c, _ = enrol(t, ca, tr.Token)
	eve, _ := certOf(t, c)
	assert.Equal(t, caserver.DefaultClientRole, eve.Role)

	r = do(t, op, http.MethodPost, ca.URL+fleet.PathTokens, fleet.TokenRequest{Kind: store.KindClient, Name: "../x"})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, r.message(), `invalid client name "../x"`)

	r = do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "dev", Reason: 1})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var rv fleet.RevokeResponse
	require.NoError(t, json.Unmarshal(r.env.Result, &rv))
	require.Len(t, rv.Revoked, 1)
	assert.Equal(t, store.StatusRevoked, rv.Revoked[0].Status)
	assert.Equal(t, 1, rv.Revoked[0].Reason)
	r = do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "dev", Reason: 1})
	assert.Equal(t, http.StatusNotFound, r.status)
	r = do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "eve", Reason: 2})
	assert.Equal(t, http.StatusBadRequest, r.status)

	// Revoked: dev can no longer renew; an operator whose role is
	// taken away can no longer call.
	rn, _ := renew(t, ca, devCert, devKey, nil)
	assert.Equal(t, http.StatusForbidden, rn.status)
	require.NoError(t, ca.Store.Apply(store.Change{Roles: map[string]string{"operator-1": "admin"}}))
	r = do(t, op, http.MethodGet, ca.URL+fleet.PathCerts, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
}

// TestCRL: the list verifies against the CA, lists the revoked and the
// superseded certificates of this CA that have not expired (with their
// reasons), not the good ones, and follows a revocation made by another
// process within CRLMaxAge.
func TestCRL(t *testing.T) { testCRL(t, catest.Options{}) }

func testCRL(t *testing.T, o catest.Options) {
	ca := catest.Start(t, o)
	client := ca.HTTPClient(t, nil, nil)
	get := func() *x509.RevocationList {
		t.Helper()
		r := do(t, client, http.MethodGet, ca.URL+fleet.PathCRL, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "application/pkix-crl", r.header.Get("Content-Type"))
		crl, err := x509.ParseRevocationList(r.body)
		require.NoError(t, err)
		require.NoError(t, crl.CheckSignatureFrom(ca.CACert))
		return crl
	}
	first := get()
	assert.Empty(t, first.RevokedCertificateEntries)
	assert.WithinDuration(t, time.Now().Add(caserver.CRLNextUpdate), first.NextUpdate, time.Minute)

	c, key := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	cr, alice := certOf(t, c)
	r, _ := renew(t, ca, []byte(cr.Certificate), key, nil)
	_, alice2 := certOf(t, r)
	bobCert, _ := ca.Client(t, "bob", "admin")
	bob, err := pki.ParseCertificate(bobCert)
	require.NoError(t, err)
	opCert, opKey := ca.Operator(t)
	rv := do(t, ca.HTTPClient(t, opCert, opKey), http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "bob", Reason: 1})
	require.Equal(t, http.StatusOK, rv.status, string(rv.body))

	second := get()
	assert.Equal(t, 1, second.Number.Cmp(first.Number), "the number increases")
	assert.Equal(t, map[string]int{pki.Serial(alice): 4, pki.Serial(bob): 1}, entries(second))

	// Revoked by another process (dtls revoke on the CA host): listed
	// within CRLMaxAge. Poll with a deadline.
	require.NoError(t, ca.Store.Apply(store.Change{Revoke: []store.Revocation{{Serial: pki.Serial(alice2), Reason: 9, At: time.Now()}}}))
	deadline := time.Now().Add(caserver.CRLMaxAge + 5*time.Second)
	var last map[string]int
	for time.Now().Before(deadline) {
		if last = entries(get()); len(last) == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, map[string]int{pki.Serial(alice): 4, pki.Serial(bob): 1, pki.Serial(alice2): 9}, last)
}

func entries(crl *x509.RevocationList) map[string]int {
	out := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		out[(*big.Int)(e.SerialNumber).Text(16)] = e.ReasonCode
	}
	return out
}

// TestCRLLeavesExpired: a revoked certificate that has expired is no
// longer listed.
func TestCRLLeavesExpired(t *testing.T) {
	clk := &clock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now, ClientValidity: time.Hour})
	c, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	_, alice := certOf(t, c)
	require.NoError(t, ca.Store.Apply(store.Change{Revoke: []store.Revocation{{Serial: pki.Serial(alice), Reason: 1, At: clk.Now()}}}))
	der, err := ca.Server.CRL()
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	assert.Len(t, crl.RevokedCertificateEntries, 1)

	clk.Add(2 * time.Hour)
	// A revocation through the server invalidates the cache; here a
	// second process wrote, so wait out CRLMaxAge by polling.
	deadline := time.Now().Add(caserver.CRLMaxAge + 5*time.Second)
	for time.Now().Before(deadline) {
		der, err = ca.Server.CRL()
		require.NoError(t, err)
		crl, err = x509.ParseRevocationList(der)
		require.NoError(t, err)
		if len(crl.RevokedCertificateEntries) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Empty(t, crl.RevokedCertificateEntries)
}

// TestMisc: the CA certificate, cfssl's info, a wrong method, an unknown
// path, an oversized body, trailing data, an unknown key.
func TestMisc(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	client := ca.HTTPClient(t, nil, nil)
	r := do(t, client, http.MethodGet, ca.URL+fleet.PathCA, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, ca.CAPEM, r.body)

	r = do(t, client, http.MethodPost, ca.URL+caserver.CfsslInfoPath, map[string]string{})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var info struct {
		Certificate string `json:"certificate"`
	}
	require.NoError(t, json.Unmarshal(r.env.Result, &info))
	assert.Equal(t, strings.TrimSpace(string(ca.CAPEM)), info.Certificate)

	r = do(t, client, http.MethodGet, ca.URL+fleet.PathEnroll, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "method GET not allowed: use POST", r.message())
	r = do(t, client, http.MethodGet, ca.URL+"/api/v1/dtls/nope", nil)
	assert.Equal(t, http.StatusNotFound, r.status)

	r = do(t, client, http.MethodPost, ca.URL+fleet.PathEnroll, map[string]string{"token": "x", "csr": strings.Repeat("a", caserver.MaxBodyBytes)})
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	req, err := http.NewRequest(http.MethodPost, ca.URL+fleet.PathEnroll, strings.NewReader(`{"token": "x"} {}`))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "data after the object")
	// An unknown key (a newer agent's) is ignored.
	r = do(t, client, http.MethodPost, ca.URL+fleet.PathEnroll, map[string]string{"token": "dtls1.x", "csr": "", "newer": "x"})
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, fleet.ErrBadToken.Error(), r.message())
}

// The PostgreSQL variants: the same calls, with the inventory on a
// PostgreSQL server of the test's own (skipped without PostgreSQL, failed
// under CI=true).
func TestPostgresEnrolClient(t *testing.T) {
	t.Parallel()
	testEnrolClient(t, catest.Options{DSN: pgsandbox.Start(t)})
}

func TestPostgresRenew(t *testing.T) {
	t.Parallel()
	testRenew(t, catest.Options{DSN: pgsandbox.Start(t)})
}

func TestPostgresCRL(t *testing.T) {
	t.Parallel()
	testCRL(t, catest.Options{DSN: pgsandbox.Start(t)})
}

// TestPostgresTwoInstances: two CA processes on one database (two
// servers, one CA): a token is used once across both, and a revocation
// through one is in the other's list within CRLMaxAge.
func TestPostgresTwoInstances(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	a := catest.Start(t, catest.Options{DSN: dsn})
	st, err := store.OpenPostgres(dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	b, err := caserver.New(caserver.Config{Store: st, CA: a.PKI})
	require.NoError(t, err)

	tok := a.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	c, _ := enrol(t, a, tok)
	_, alice := certOf(t, c)
	// b's handler, in process: the same token is used.
	csr, _, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	body, _ := json.Marshal(fleet.EnrollRequest{Token: tok, CSR: string(csr)})
	req, err := http.NewRequest(http.MethodPost, fleet.PathEnroll, bytes.NewReader(body))
	require.NoError(t, err)
	rw := newRecorder()
	b.Handler().ServeHTTP(rw, req)
	assert.Equal(t, http.StatusForbidden, rw.status)

	_, err = b.CRL() // cached in b
	require.NoError(t, err)
	opCert, opKey := a.Operator(t)
	rv := do(t, a.HTTPClient(t, opCert, opKey), http.MethodPost, a.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "alice", Reason: 1})
	require.Equal(t, http.StatusOK, rv.status, string(rv.body))
	deadline := time.Now().Add(caserver.CRLMaxAge + 5*time.Second)
	var got map[string]int
	for time.Now().Before(deadline) {
		der, err := b.CRL()
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(der)
		require.NoError(t, err)
		if got = entries(crl); len(got) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, map[string]int{pki.Serial(alice): 1}, got)
}

// recorder is a minimal http.ResponseWriter for calling a handler in
// process.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// TestNoRecordNoCertificate: a certificate the inventory cannot record is
// not sent: the client gets a 500 without a certificate, and without the
// cause (which is in the server's log); the token stays unused.
func TestNoRecordNoCertificate(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	// Another connection makes every insert of a certificate fail, as a
	// full disk would; reads still work.
	db, err := sql.Open("sqlite", ca.DBPath)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TRIGGER fail_insert BEFORE INSERT ON certificates BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
	require.NoError(t, err)

	c, _ := enrol(t, ca, tok)
	assert.Equal(t, http.StatusInternalServerError, c.status)
	assert.Equal(t, "internal error of the online CA (its log has the cause)", c.message())
	assert.NotContains(t, string(c.body), "CERTIFICATE")
	recs, err := ca.Store.ByName("alice")
	require.NoError(t, err)
	assert.Empty(t, recs)
	parsed, err := fleet.ParseToken(tok)
	require.NoError(t, err)
	st, err := ca.Store.Token(parsed.Hash())
	require.NoError(t, err)
	assert.Empty(t, st.UsedSerial, "the token is still unused")

	// Once the inventory works again, the same token enrols.
	_, err = db.Exec(`DROP TRIGGER fail_insert`)
	require.NoError(t, err)
	c, _ = enrol(t, ca, tok)
	certOf(t, c)
}

// TestPostgresTwoInstancesRenewOnce: two CA instances on one PostgreSQL
// database renew the same certificate at the same moment, for two keys:
// one successor at most, ever (store.Change.Require), the other request
// refused.
func TestPostgresTwoInstancesRenewOnce(t *testing.T) {
	t.Parallel()
	dsn := pgsandbox.Start(t)
	a := catest.Start(t, catest.Options{DSN: dsn})
	st, err := store.OpenPostgres(dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	b, err := caserver.New(caserver.Config{Store: st, CA: a.PKI})
	require.NoError(t, err)

	for round := 0; round < 10; round++ {
		name := fmt.Sprintf("racer-%d", round)
		c, key := enrol(t, a, a.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: name}))
		cr, cert := certOf(t, c)
		csrA, _, err := pki.NewCSR("x", "")
		require.NoError(t, err)
		csrB, _, err := pki.NewCSR("x", "")
		require.NoError(t, err)
		var wg sync.WaitGroup
		var viaA call
		rw := newRecorder()
		wg.Add(2)
		go func() {
			defer wg.Done()
			viaA, _ = renew(t, a, []byte(cr.Certificate), key, csrA)
		}()
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(fleet.RenewRequest{CSR: string(csrB)})
			req, _ := http.NewRequest(http.MethodPost, fleet.PathRenew, bytes.NewReader(body))
			req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
			b.Handler().ServeHTTP(rw, req)
		}()
		wg.Wait()
		ok := 0
		for _, status := range []int{viaA.status, rw.status} {
			if status == http.StatusOK {
				ok++
			} else {
				assert.Equal(t, http.StatusForbidden, status)
			}
		}
		assert.Equal(t, 1, ok, "round %d: %d renewals succeeded", round, ok)
		recs, err := st.ByName(name)
		require.NoError(t, err)
		good := 0
		for _, r := range recs {
			if r.Status == store.StatusGood {
				good++
			}
		}
		assert.Equal(t, 1, good, "round %d: good certificates of %s", round, name)
	}
}

// TestServerTokenNotTheListener: a server certificate's hosts may not
// cover a name of the CA's own listener, whose holder could then answer
// as the CA: not that name, nor a wildcard over it, nor its IP address;
// loopback names and other hosts of the domain may.
func TestServerTokenNotTheListener(t *testing.T) {
	ca := catest.Start(t, catest.Options{ListenerHosts: []string{"ca.example.com", "192.0.2.10"}})
	for _, c := range []struct {
		name  string
		hosts []string
		why   string
	}{
		{"ca.example.com", nil, `cover "ca.example.com", a name of the CA's own listener`},
		{"web.example.com", []string{"*.example.com"}, `cover "ca.example.com"`},
		{"web.example.com", []string{"CA.Example.COM"}, `cover "ca.example.com"`},
		{"docker7", []string{"192.0.2.10"}, `cover "192.0.2.10"`},
		{"ca.example.com.", nil, `cover "ca.example.com"`},
		{"web.example.com", []string{"*.example.com."}, `cover "ca.example.com"`},
		{"web.example.com", []string{"CA.example.com."}, `cover "ca.example.com"`},
		{"docker1.example.com", []string{"127.0.0.1", "localhost"}, ""},
		{"docker2.example.com", []string{"*.docker.example.com"}, ""},
	} {
		_, err := ca.Server.NewToken(fleet.TokenRequest{Kind: store.KindServer, Name: c.name, Hosts: c.hosts})
		if c.why == "" {
			assert.NoError(t, err, "%s %v", c.name, c.hosts)
		} else if assert.Error(t, err, "%s %v", c.name, c.hosts) {
			assert.Contains(t, err.Error(), c.why)
		}
	}
	_, err := ca.Server.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: "ca.example.com"})
	assert.NoError(t, err, "a client's name is no host")

	// A token recorded before the check (an older dtls): its enrolment
	// is refused.
	tok, err := fleet.NewToken(ca.CACert)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, ca.Store.AddToken(store.Token{Kind: store.KindServer, Name: "old.example.com", Hosts: []string{"old.example.com", "*.example.com"},
		Hash: tok.Hash(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	c, _ := enrol(t, ca, tok.String())
	assert.Equal(t, http.StatusForbidden, c.status)
	assert.Contains(t, c.message(), `cover "ca.example.com"`)
}

// TestTokenNameCase: a token for a name that differs only in case from
// one the inventory has, or from a token's not used yet, is refused; the
// name itself is not. A token recorded before the check enrols nothing
// once its name's other spelling is there.
func TestTokenNameCase(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	ca.Client(t, "alice", "developer")
	_, err := ca.Server.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: "Alice"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Alice" differs only in case from "alice"`)
	_, err = ca.Server.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	assert.NoError(t, err)

	bob := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"})
	_, err = ca.Server.NewToken(fleet.TokenRequest{Kind: store.KindClient, Name: "BOB"})
	require.Error(t, err, "a pending token's name in another case")
	assert.Contains(t, err.Error(), `"BOB" differs only in case from "bob"`)

	tok, err := fleet.NewToken(ca.CACert)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, ca.Store.AddToken(store.Token{Kind: store.KindClient, Name: "Bob", Role: "admin", Hash: tok.Hash(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	c, _ := enrol(t, ca, bob)
	require.Equal(t, http.StatusForbidden, c.status, "both pending: neither enrols")
	c, _ = enrol(t, ca, tok.String())
	assert.Equal(t, http.StatusForbidden, c.status)
	assert.Contains(t, c.message(), `"Bob" differs only in case from`)
}

// TestRevokeSupersededSerial: a thief renews alice's stolen certificate
// S1 (S2, the thief's key); the operator revokes S1, the serial in
// alice's bundle: S2 is revoked with it.
func TestRevokeSupersededSerial(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	certPEM, keyPEM := ca.Client(t, "alice", "developer")
	s1, err := pki.ParseCertificate(certPEM)
	require.NoError(t, err)
	c, _ := renew(t, ca, certPEM, keyPEM, nil)
	_, s2 := certOf(t, c)
	opCert, opKey := ca.Operator(t)
	r := do(t, ca.HTTPClient(t, opCert, opKey), http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: pki.Serial(s1), Reason: 1})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	rec, err := ca.Store.Get(pki.Serial(s2))
	require.NoError(t, err)
	assert.Equal(t, store.StatusRevoked, rec.Status, "the renewal %s of the revoked serial stays %s", rec.Serial, rec.Status)
}
