package caserver_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// clientWith is an HTTPS client that trusts roots and presents certPEM
// (when not nil), with no connection kept: each call sees the listener's
// certificate of the moment.
func clientWith(t *testing.T, roots []*x509.Certificate, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

func rotateStep(t *testing.T, ca *catest.CA, op *http.Client, step string, force bool) (call, fleet.RotateResponse) {
	t.Helper()
	c := do(t, op, http.MethodPost, ca.URL+fleet.PathRotate, fleet.RotateRequest{Step: step, Force: force})
	var r fleet.RotateResponse
	if c.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(c.env.Result, &r))
	}
	return c, r
}

func caPEMs(t *testing.T, ca *catest.CA, client *http.Client) []*x509.Certificate {
	t.Helper()
	c := do(t, client, http.MethodGet, ca.URL+fleet.PathCA, nil)
	require.Equal(t, http.StatusOK, c.status)
	cas, err := pki.ParseCertificates(c.body)
	require.NoError(t, err)
	return cas
}

func crlOf(t *testing.T, ca *catest.CA, client *http.Client) *x509.RevocationList {
	t.Helper()
	c := do(t, client, http.MethodGet, ca.URL+fleet.PathCRL, nil)
	require.Equal(t, http.StatusOK, c.status)
	crl, err := x509.ParseRevocationList(c.body)
	require.NoError(t, err)
	return crl
}

func TestRotate(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	old := ca.CACert
	op := clientWith(t, []*x509.Certificate{old}, opCert, opKey)

	// Before trust: switch and finish are refused, naming the next step.
	c, _ := rotateStep(t, ca, op, fleet.RotateSwitch, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Equal(t, "no CA rotation in progress: nothing to switch; start one with 'dtls rotate-ca'", c.message())
	c, _ = rotateStep(t, ca, op, fleet.RotateFinish, false)
	assert.Equal(t, http.StatusConflict, c.status)
	c, st := rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	assert.Equal(t, fleet.RotateNone, st.Step)
	assert.Nil(t, st.Next)

	// A client and a host of the old CA.
	alice, aliceKey := ca.Client(t, "alice", "developer")
	hostResp, hostKey := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1"}))
	_, hostCert := certOf(t, hostResp)
	hostPEM := pemOf(hostCert)

	// Trust.
	c, st = rotateStep(t, ca, op, fleet.RotateTrust, false)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	assert.Equal(t, fleet.RotateTrust, st.Step)
	require.NotNil(t, st.Next)
	assert.Equal(t, pki.Serial(old), st.Current.Serial)
	assert.Equal(t, pki.Serial(old), st.Signer)
	cas := caPEMs(t, ca, op)
	require.Len(t, cas, 2)
	assert.True(t, cas[0].Equal(old))
	next := cas[1]
	assert.Equal(t, st.Next.Serial, pki.Serial(next))
	both := []*x509.Certificate{old, next}

	c, _ = rotateStep(t, ca, op, fleet.RotateTrust, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Equal(t, "a CA rotation is already in progress: it is at step 1 of 3; next: dtls rotate-ca --switch (see 'dtls rotate-ca --status')", c.message())
	c, _ = rotateStep(t, ca, op, fleet.RotateFinish, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Contains(t, c.message(), "switch it first: dtls rotate-ca --switch")

	// Enrolment during trust: still the old CA, with both CAs answered.
	bob, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob", Role: "developer"}))
	bobResp, bobCert := certOf(t, bob)
	require.NoError(t, bobCert.CheckSignatureFrom(old))
	answered, err := pki.ParseCertificates([]byte(bobResp.CA))
	require.NoError(t, err)
	require.Len(t, answered, 2)
	assert.True(t, answered[1].Equal(next))

	// Switch: refused while alice, issued before the trust, has not
	// renewed (TestRotateSwitchRefused); forced here.
	c, _ = rotateStep(t, ca, op, fleet.RotateSwitch, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Contains(t, c.message(), `"alice"`)
	c, st = rotateStep(t, ca, op, fleet.RotateSwitch, true)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	assert.Equal(t, fleet.RotateSwitch, st.Step)
	assert.Equal(t, pki.Serial(next), st.Signer)
	c, _ = rotateStep(t, ca, op, fleet.RotateSwitch, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Contains(t, c.message(), "next: dtls rotate-ca --finish")

	// Enrolment and renewal are signed by the next CA; a certificate of
	// the old CA still renews.
	carol, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "carol"}))
	_, carolCert := certOf(t, carol)
	require.NoError(t, carolCert.CheckSignatureFrom(next))
	r, newAliceKey := renew(t, ca, alice, aliceKey, nil)
	aliceResp, aliceCert := certOf(t, r)
	require.NoError(t, aliceCert.CheckSignatureFrom(next))
	assert.Len(t, caCertsOf(t, aliceResp.CA), 2)
	// alice's new certificate (of the next CA) authenticates too.
	r, _ = renew(t, ca, []byte(aliceResp.Certificate), newAliceKey, nil)
	_, alice3 := certOf(t, r)
	require.NoError(t, alice3.CheckSignatureFrom(next))

	// Finish is refused while certificates of the old CA are good:
	// the host, bob and the operator.
	c, _ = rotateStep(t, ca, op, fleet.RotateFinish, false)
	assert.Equal(t, http.StatusConflict, c.status)
	assert.Contains(t, c.message(), `server "docker1"`)
	assert.Contains(t, c.message(), `client "bob"`)
	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	names := map[string]bool{}
	for _, b := range st.Blocking {
		names[b.Name] = true
	}
	assert.Equal(t, map[string]bool{"docker1": true, "bob": true, "operator-1": true}, names)

	// Revoking bob's certificate (old CA) with an operator of the old
	// CA: it is in the list, signed by the next CA.
	c = do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "bob", Reason: 1})
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	crl := crlOf(t, ca, op)
	require.NoError(t, crl.CheckSignatureFrom(next))
	assert.Contains(t, entries(crl), pki.Serial(bobCert))
	// Superseded certificates of both CAs are listed too.
	assert.Contains(t, entries(crl), pki.Serial(aliceCert))

	// The host renews (old CA certificate): it gets one of the next CA.
	r, _ = renew(t, ca, hostPEM, hostKey, nil)
	_, host2 := certOf(t, r)
	require.NoError(t, host2.CheckSignatureFrom(next))

	// The operator renews its own, then finish is allowed.
	r, opKey2 := renew(t, ca, opCert, opKey, nil)
	opResp, _ := certOf(t, r)
	op2 := clientWith(t, both, []byte(opResp.Certificate), opKey2)
	c, st = rotateStep(t, ca, op2, fleet.RotateFinish, false)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	assert.Equal(t, fleet.RotateNone, st.Step)
	assert.Equal(t, pki.Serial(next), st.Current.Serial)
	assert.Empty(t, st.Cut)

	// Only the new CA now; the listener presents a certificate of it.
	onlyNew := clientWith(t, []*x509.Certificate{next}, []byte(opResp.Certificate), opKey2)
	cas = caPEMs(t, ca, onlyNew)
	require.Len(t, cas, 1)
	assert.True(t, cas[0].Equal(next))
	_, err = clientWith(t, []*x509.Certificate{old}, nil, nil).Get(ca.URL + fleet.PathCA)
	assert.Error(t, err, "the listener's certificate is of the new CA")
	// A certificate of the old CA no longer authenticates.
	c, _ = rotateStep(t, ca, clientWith(t, both, opCert, opKey), fleet.RotateStatus, false)
	assert.Equal(t, http.StatusForbidden, c.status)
	crl = crlOf(t, ca, onlyNew)
	require.NoError(t, crl.CheckSignatureFrom(next))
	assert.Contains(t, entries(crl), pki.Serial(bobCert), "certificates of the old CA stay listed")
}

// TestRotateSwitchRefused: the switch is refused, as the local one is
// (engine.OldOnlyClients), while a client certificate handed out before
// the trust step with a ca.pem of the old CA alone is good; the refusal
// names the holders, a renewal lifts it, --force overrides it and lists
// the clients cut. Operators do not count: they verify only the CA.
func TestRotateSwitchRefused(t *testing.T) {
	clk := &clock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now})
	opCert, opKey := ca.Operator(t)
	op := clientWith(t, []*x509.Certificate{ca.CACert}, opCert, opKey)
	alice, aliceKey := ca.Client(t, "alice", "developer")
	dave, _ := ca.Client(t, "dave", "developer")

	// carol enrols at the trust step's instant, just before it, with a
	// ca.pem of the old CA alone; bob at the same instant, just after
	// it, with both CAs.
	clk.Add(time.Hour)
	carol, carolKey := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "carol"}))
	c, st := rotateStep(t, ca, op, fleet.RotateTrust, false)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	// The whole second after the step's clock reading (x509 keeps
	// whole seconds).
	assert.True(t, st.TrustBegan.Equal(clk.Now().Truncate(time.Second).Add(time.Second)), "%s", st.TrustBegan)
	bob, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"}))
	certOf(t, bob)

	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	names := func(cs []fleet.RotationCert) []string {
		var out []string
		for _, r := range cs {
			out = append(out, r.Name)
		}
		return out
	}
	assert.ElementsMatch(t, []string{"alice", "dave", "carol"}, names(st.SwitchBlocking))

	c, _ = rotateStep(t, ca, op, fleet.RotateSwitch, false)
	require.Equal(t, http.StatusConflict, c.status, string(c.body))
	assert.Contains(t, c.message(), "cannot switch the daemon to the new CA: 3 clients of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA): ")
	for _, n := range []string{`"alice"`, `"dave"`, `"carol"`} {
		assert.Contains(t, c.message(), n)
	}
	assert.NotContains(t, c.message(), `"bob"`)
	assert.NotContains(t, c.message(), "operator")
	assert.Contains(t, c.message(), "or pass --force to switch anyway")
	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	assert.Equal(t, fleet.RotateTrust, st.Step, "a refused switch changed the step")

	// alice and carol renew: their bundles now trust both CAs.
	clk.Add(time.Second)
	_, carolCert := certOf(t, carol)
	r, _ := renew(t, ca, alice, aliceKey, nil)
	certOf(t, r)
	r, _ = renew(t, ca, pemOf(carolCert), carolKey, nil)
	certOf(t, r)
	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	assert.Equal(t, []string{"dave"}, names(st.SwitchBlocking))

	// dave has not: --force switches anyway and names him as cut.
	c, _ = rotateStep(t, ca, op, fleet.RotateSwitch, false)
	require.Equal(t, http.StatusConflict, c.status)
	assert.Contains(t, c.message(), "1 client of the old CA")
	c, st = rotateStep(t, ca, op, fleet.RotateSwitch, true)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	assert.Equal(t, fleet.RotateSwitch, st.Step)
	assert.Equal(t, []string{"dave"}, names(st.Cut))
	daveCert, err := pki.ParseCertificate(dave)
	require.NoError(t, err)
	rec, err := ca.Store.Get(pki.Serial(daveCert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusGood, rec.Status, "a forced switch cuts nobody off at the CA")
}

func TestRotateFinishForce(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	op := clientWith(t, []*x509.Certificate{ca.CACert}, opCert, opKey)
	dave, _ := ca.Client(t, "dave", "developer")
	for _, step := range []string{fleet.RotateTrust, fleet.RotateSwitch} {
		c, _ := rotateStep(t, ca, op, step, step == fleet.RotateSwitch)
		require.Equal(t, http.StatusOK, c.status, string(c.body))
	}
	c, st := rotateStep(t, ca, op, fleet.RotateFinish, true)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	cut := map[string]bool{}
	for _, r := range st.Cut {
		cut[r.Name] = true
	}
	assert.Equal(t, map[string]bool{"dave": true, "operator-1": true}, cut)
	daveCert, err := pki.ParseCertificate(dave)
	require.NoError(t, err)
	rec, err := ca.Store.Get(pki.Serial(daveCert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, rec.Status)
}

func caCertsOf(t *testing.T, p string) []*x509.Certificate {
	t.Helper()
	cs, err := pki.ParseCertificates([]byte(p))
	require.NoError(t, err)
	return cs
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestEnrolAgainSupersedes: a new enrolment for a name supersedes the
// older good certificates of that kind and name (the answer lists them),
// so an abandoned one holds up neither the switch nor the finish of a
// rotation; other names and kinds are left alone.
func TestEnrolAgainSupersedes(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	op := clientWith(t, []*x509.Certificate{ca.CACert}, opCert, opKey)
	first, _ := ca.Client(t, "alice", "developer")
	firstCert, err := pki.ParseCertificate(first)
	require.NoError(t, err)
	bob, _ := ca.Client(t, "bob", "developer")
	bobCert, err := pki.ParseCertificate(bob)
	require.NoError(t, err)
	host, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "alice"}))
	hostResp, hostCert := certOf(t, host)
	assert.Empty(t, hostResp.Superseded, "a server certificate supersedes no client's")

	c, st := rotateStep(t, ca, op, fleet.RotateTrust, false)
	require.Equal(t, http.StatusOK, c.status, string(c.body))
	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	require.Len(t, st.SwitchBlocking, 2, "alice's and bob's first certificates")

	again, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"}))
	resp, _ := certOf(t, again)
	assert.Equal(t, []string{pki.Serial(firstCert)}, resp.Superseded)
	status := func(c *x509.Certificate) store.Status {
		rec, err := ca.Store.Get(pki.Serial(c))
		require.NoError(t, err)
		return rec.Status
	}
	assert.Equal(t, store.StatusSuperseded, status(firstCert))
	assert.Equal(t, store.StatusGood, status(bobCert))
	assert.Equal(t, store.StatusGood, status(hostCert))
	assert.Contains(t, entries(crlOf(t, ca, op)), pki.Serial(firstCert), "the abandoned certificate is in the revocation list")

	c, st = rotateStep(t, ca, op, fleet.RotateStatus, false)
	require.Equal(t, http.StatusOK, c.status)
	require.Len(t, st.SwitchBlocking, 1)
	assert.Equal(t, "bob", st.SwitchBlocking[0].Name)
	for _, b := range st.Blocking {
		assert.NotEqual(t, pki.Serial(firstCert), b.Serial, "the abandoned certificate holds up the finish")
	}
}
