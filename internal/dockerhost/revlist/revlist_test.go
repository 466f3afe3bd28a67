package revlist

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Both are what the plugin asks.
var (
	_ authz.Inventory = (*Follower)(nil)
	_ authz.Inventory = Inventory{}
)

func TestMain(m *testing.M) {
	// cfssl, under pki, logs every signature at info level.
	cflog.Level = cflog.LevelError
	os.Exit(m.Run())
}

// caServer is the fleet CA's revocation list served over HTTPS on
// loopback, with a server certificate the fleet CA signed, as `dtls ca
// serve` serves it.
type caServer struct {
	ca    *pki.CA
	srv   *httptest.Server
	crl   atomic.Pointer[[]byte]
	gets  atomic.Int64
	codes atomic.Int64 // an HTTP status to answer instead, when not 0
}

func newCAServer(t testing.TB, ca *pki.CA, tlsCA *pki.CA) *caServer {
	t.Helper()
	s := &caServer{ca: ca}
	srvCert, err := tlsCA.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"127.0.0.1", "localhost"}, Now: time.Now()})
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(srvCert.CertPEM, srvCert.KeyPEM)
	require.NoError(t, err)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gets.Add(1)
		if r.URL.Path != fleet.PathCRL || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if c := s.codes.Load(); c != 0 {
			http.Error(w, "the CA is restarting", int(c))
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(*s.crl.Load())
	}))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// publish makes the server serve der.
func (s *caServer) publish(der []byte) { s.crl.Store(&der) }

// signCRL is a DER CRL of ca with number n listing revoked.
func signCRL(t testing.TB, ca *pki.CA, n int64, now time.Time, revoked ...pki.Revoked) []byte {
	t.Helper()
	p, err := ca.CRL(revoked, n, now, time.Hour)
	require.NoError(t, err)
	b, _ := pem.Decode(p)
	require.NotNil(t, b)
	return b.Bytes
}

// client is a 24-hour client certificate from ca, with the role in its
// OU as the online CA records it (no OU when role is "-").
func client(t testing.TB, ca *pki.CA, name, role string, now time.Time) *x509.Certificate {
	t.Helper()
	csr, _, err := pki.NewCSR(name, "")
	require.NoError(t, err)
	var ou []string
	if role != "-" {
		ou = []string{fleet.RoleOU(role)}
	}
	c, _, err := ca.SignCSR(pki.CSRRequest{Kind: pki.KindClient, CommonName: name, OrganizationalUnit: ou, CSR: csr, Now: now, Validity: fleet.DefaultClientValidity})
	require.NoError(t, err)
	return c
}

func revoked(c *x509.Certificate, at time.Time, reason int) pki.Revoked {
	return pki.Revoked{Serial: c.SerialNumber, At: at, Reason: reason}
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

// logLines collects the Follower's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

// fleetEnv is a fleet CA, its server, a host's state directory and a
// Follower of that host.
type fleetEnv struct {
	ca    *pki.CA
	srv   *caServer
	dir   string
	clock *clock
	log   *logLines
	f     *Follower
}

func newFleet(t testing.TB) *fleetEnv {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Hour), CommonName: "fleet CA"})
	require.NoError(t, err)
	e := &fleetEnv{ca: ca, srv: newCAServer(t, ca, ca), dir: t.TempDir(), clock: &clock{t: now}, log: &logLines{}}
	e.srv.publish(signCRL(t, ca, 100, now))
	e.f = e.follower(t, e.srv.srv.URL)
	return e
}

func (e *fleetEnv) follower(t testing.TB, url string) *Follower {
	t.Helper()
	f, err := New(Config{URL: url, CAs: []*x509.Certificate{e.ca.Cert}, CacheDir: e.dir, Now: e.clock.Now, Logf: e.log.Logf})
	require.NoError(t, err)
	return f
}

func TestNewRefusesBadConfig(t *testing.T) {
	ca, err := pki.NewCA(pki.CARequest{Now: time.Now()})
	require.NoError(t, err)
	cas := []*x509.Certificate{ca.Cert}
	for _, u := range []string{"http://ca.example.com", "ca.example.com:8443", "https://", "https://u:p@ca.example.com", "https://ca.example.com/?x=1", "https://ca.example.com/ca", "https://:8443"} {
		_, err := New(Config{URL: u, CAs: cas})
		assert.EqualError(t, err, fmt.Sprintf("CA URL %q: want https://HOST[:PORT]", u))
	}
	_, err = New(Config{URL: "https://ca.example.com"})
	assert.EqualError(t, err, "no fleet CA certificate to check the revocation list against")
	f, err := New(Config{URL: "https://ca.example.com:8443/", CAs: cas})
	require.NoError(t, err)
	assert.Equal(t, "https://ca.example.com:8443", f.URL())
	assert.Equal(t, fleet.DefaultCRLRefresh, f.Interval())
}

// TestRevocationAfterOneRefresh: a certificate the CA revokes is denied
// after the next fetch; the others keep their roles.
func TestRevocationAfterOneRefresh(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	alice := client(t, e.ca, "alice", "developer", now)
	bob := client(t, e.ca, "bob", "readonly", now)
	carol := client(t, e.ca, "carol", "admin", now)
	ctx := context.Background()

	require.NoError(t, e.f.Refresh(ctx))
	for _, c := range []struct {
		cert       *x509.Certificate
		user, role string
	}{{alice, "alice", "developer"}, {bob, "bob", "readonly"}, {carol, "carol", "admin"}} {
		user, role, err := e.f.Identify(c.cert)
		require.NoError(t, err)
		assert.Equal(t, c.user, user)
		assert.Equal(t, c.role, role)
	}

	e.srv.publish(signCRL(t, e.ca, 101, now, revoked(alice, now, 1), revoked(carol, now, 4)))
	require.NoError(t, e.f.Refresh(ctx))
	_, _, err := e.f.Identify(alice)
	assert.EqualError(t, err, fmt.Sprintf("certificate %s of \"alice\" is revoked on the CA (%s)", pki.Serial(alice), now.UTC().Format(time.RFC3339)))
	_, _, err = e.f.Identify(carol)
	assert.EqualError(t, err, fmt.Sprintf("certificate %s of \"carol\" was replaced by a renewal (%s)", pki.Serial(carol), now.UTC().Format(time.RFC3339)))
	// A renewal, not a revocation: the gateway keeps what carol's
	// certificate has open (authz.Caller.Superseded), not alice's.
	var sup *SupersededError
	assert.ErrorAs(t, err, &sup)
	_, _, err = e.f.Identify(alice)
	assert.False(t, errors.As(err, &sup), "a revoked certificate is refused as superseded")
	user, role, err := e.f.Identify(bob)
	require.NoError(t, err)
	assert.Equal(t, []string{"bob", "readonly"}, []string{user, role})

	st := e.f.Status()
	assert.Equal(t, "101", st.Number)
	assert.Equal(t, 2, st.Revoked)
	assert.Equal(t, "fleet CA", st.Issuer)
	assert.Empty(t, st.LastError)
	assert.Equal(t, now, st.LastSuccess)
	assert.False(t, st.Stale)
	assert.Len(t, e.log.matching("number 101 of"), 1, e.log.lines)

	// The list is kept on disk, as served, for a restart.
	b, err := os.ReadFile(filepath.Join(e.dir, CacheFile))
	require.NoError(t, err)
	assert.Equal(t, *e.srv.crl.Load(), b)
	fi, err := os.Stat(filepath.Join(e.dir, CacheFile))
	require.NoError(t, err)
	assert.Equal(t, CacheMode, fi.Mode().Perm())
	onDisk, err := ReadStatus(e.dir)
	require.NoError(t, err)
	assert.Equal(t, "101", onDisk.Number)
	assert.Equal(t, e.srv.srv.URL, onDisk.URL)
	assert.Equal(t, 5.0, onDisk.RefreshSeconds)
}

// TestCADownKeepsLastList: while the CA cannot be reached the last list
// is enforced, the status says so, and the log says it once, then once a
// minute, and when the CA is back.
func TestCADownKeepsLastList(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	alice := client(t, e.ca, "alice", "developer", now)
	bob := client(t, e.ca, "bob", "readonly", now)
	ctx := context.Background()
	e.srv.publish(signCRL(t, e.ca, 101, now, revoked(alice, now, 1)))
	require.NoError(t, e.f.Refresh(ctx))

	// An HTTP error, then nothing listening.
	e.srv.codes.Store(http.StatusServiceUnavailable)
	err := e.f.Refresh(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach the CA at "+e.srv.srv.URL+": GET /api/v1/dtls/crl: the server at "+e.srv.srv.URL+" answered /api/v1/dtls/crl with HTTP 503 and no dtls answer (\"the CA is restarting\")")
	e.srv.srv.Close()
	for range 3 {
		e.clock.Add(5 * time.Second)
		err = e.f.Refresh(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cannot reach the CA at "+e.srv.srv.URL+": ")
	}
	_, _, err = e.f.Identify(alice)
	assert.ErrorContains(t, err, "is revoked on the CA")
	_, _, err = e.f.Identify(bob)
	assert.NoError(t, err)

	st := e.f.Status()
	assert.Contains(t, st.LastError, "cannot reach the CA at "+e.srv.srv.URL)
	assert.Equal(t, now, st.LastSuccess)
	assert.Equal(t, now.Add(15*time.Second), st.LastAttempt)
	assert.Equal(t, "101", st.Number)
	onDisk, err := ReadStatus(e.dir)
	require.NoError(t, err)
	assert.Equal(t, st.LastError, onDisk.LastError)
	assert.WithinDuration(t, now.Add(15*time.Second), onDisk.LastAttempt, 0)

	want := fmt.Sprintf("; enforcing the revocation list of %s (number 101)", now.Add(-5*time.Minute).UTC().Format(time.RFC3339))
	down := e.log.matching("cannot reach the CA at " + e.srv.srv.URL)
	require.Len(t, down, 1, "logged once, not at every fetch: %q", e.log.lines)
	assert.True(t, strings.HasSuffix(down[0], want), down[0])

	e.clock.Add(time.Minute)
	require.Error(t, e.f.Refresh(ctx))
	assert.Len(t, e.log.matching("cannot reach the CA"), 2, "repeated after a minute")
}

// TestCABackIsLogged: the end of an outage is logged, and the status
// clears its error.
func TestCABackIsLogged(t *testing.T) {
	e := newFleet(t)
	ctx := context.Background()
	e.srv.codes.Store(http.StatusBadGateway)
	require.Error(t, e.f.Refresh(ctx))
	assert.Len(t, e.log.matching("no revocation list yet: every certificate of the fleet CA is denied"), 1, e.log.lines)
	e.srv.codes.Store(0)
	require.NoError(t, e.f.Refresh(ctx))
	assert.Len(t, e.log.matching("the CA at "+e.srv.srv.URL+" answers again"), 1, e.log.lines)
	assert.Empty(t, e.f.Status().LastError)
}

// TestRestartWithCacheAndCADown: a plugin restarted while the CA is down
// enforces the list it had, at once.
func TestRestartWithCacheAndCADown(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	alice := client(t, e.ca, "alice", "developer", now)
	bob := client(t, e.ca, "bob", "readonly", now)
	e.srv.publish(signCRL(t, e.ca, 101, now, revoked(alice, now, 1)))
	require.NoError(t, e.f.Refresh(context.Background()))
	e.srv.srv.Close()

	f := e.follower(t, e.srv.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	defer f.Close()
	_, _, err := f.Identify(alice)
	assert.ErrorContains(t, err, "is revoked on the CA")
	user, _, err := f.Identify(bob)
	require.NoError(t, err)
	assert.Equal(t, "bob", user)
	assert.Len(t, e.log.matching("enforcing the cached revocation list "+filepath.Join(e.dir, CacheFile)), 1, e.log.lines)
	assert.WithinDuration(t, now, f.Status().LastSuccess, 0, "the last success is the previous run's")

	// The first fetch fails and says so; the list stays.
	deadline := time.Now().Add(20 * time.Second)
	for f.Status().LastError == "" {
		require.True(t, time.Now().Before(deadline), "no fetch")
		time.Sleep(10 * time.Millisecond)
	}
	_, _, err = f.Identify(alice)
	assert.ErrorContains(t, err, "is revoked on the CA")
}

// TestCacheNotTrustedBlindly: a cached list the fleet CA did not sign is
// not used.
func TestCacheNotTrustedBlindly(t *testing.T) {
	e := newFleet(t)
	other, err := pki.NewCA(pki.CARequest{Now: e.clock.Now(), CommonName: "fleet CA"})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, CacheFile), signCRL(t, other, 500, e.clock.Now()), 0o644))
	e.f.LoadCache()
	assert.False(t, e.f.Status().HasList())
	assert.Len(t, e.log.matching("not used: its signature does not verify"), 1, e.log.lines)
}

// TestListRefused: a list another CA signed, one older than the list in
// force, and something that is not a list are refused; the list in force
// stays.
func TestListRefused(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	alice := client(t, e.ca, "alice", "developer", now)
	ctx := context.Background()
	e.srv.publish(signCRL(t, e.ca, 101, now, revoked(alice, now, 1)))
	require.NoError(t, e.f.Refresh(ctx))

	sameName, err := pki.NewCA(pki.CARequest{Now: now, CommonName: "fleet CA"})
	require.NoError(t, err)
	otherName, err := pki.NewCA(pki.CARequest{Now: now, CommonName: "evil CA"})
	require.NoError(t, err)
	prefix := "the CA at " + e.srv.srv.URL + " served a revocation list that is refused: "
	for _, c := range []struct {
		name string
		der  []byte
		want string
	}{
		{"another CA of the same name", signCRL(t, sameName, 900, now), prefix + "its signature does not verify with the fleet CA \"fleet CA\""},
		{"another CA", signCRL(t, otherName, 900, now), prefix + "it is issued by \"evil CA\", not by the fleet CA \"fleet CA\""},
		{"an older list", signCRL(t, e.ca, 100, now), prefix + "its number 100 is lower than 101, that of the list in force (an older list served again)"},
		{"the same number, older", signCRL(t, e.ca, 101, now.Add(-time.Minute)), prefix + "it has the number 101 of the list in force but an older thisUpdate"},
		{"not a CRL", []byte("<html>maintenance</html>"), prefix + "not a CRL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.srv.publish(c.der)
			err := e.f.Refresh(ctx)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.want), err.Error())
			assert.Equal(t, err.Error(), e.f.Status().LastError)
			_, _, err = e.f.Identify(alice)
			assert.ErrorContains(t, err, "is revoked on the CA", "the list in force stays")
			assert.Equal(t, "101", e.f.Status().Number)
		})
	}
	// A newer list with the same number is taken.
	e.srv.publish(signCRL(t, e.ca, 101, now.Add(time.Minute)))
	require.NoError(t, e.f.Refresh(ctx))
	_, _, err = e.f.Identify(alice)
	assert.NoError(t, err)
}

// TestNoListDenies: without a list ever obtained, every certificate of the
// fleet is denied, saying why.
func TestNoListDenies(t *testing.T) {
	e := newFleet(t)
	alice := client(t, e.ca, "alice", "developer", e.clock.Now())
	_, _, err := e.f.Identify(alice)
	assert.EqualError(t, err, fmt.Sprintf("no revocation list from the CA at %s yet: certificate %s of \"alice\" is denied until one is fetched", e.srv.srv.URL, pki.Serial(alice)))
	e.srv.srv.Close()
	require.Error(t, e.f.Refresh(context.Background()))
	_, _, err = e.f.Identify(alice)
	assert.ErrorContains(t, err, "no revocation list from the CA at")
}

// TestIdentifyChecksTheCertificate: a certificate of another CA, one that
// has expired, one without a role or with the operator's, a server
// certificate: each refused. The role "" (the policy's default) is taken.
func TestIdentifyChecksTheCertificate(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	require.NoError(t, e.f.Refresh(context.Background()))

	other, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Hour), CommonName: "fleet CA"})
	require.NoError(t, err)
	mallory := client(t, other, "mallory", "admin", now)
	_, _, err = e.f.Identify(mallory)
	assert.ErrorContains(t, err, fmt.Sprintf("certificate %s of \"mallory\" is not a valid client certificate of the fleet CA: x509: ", pki.Serial(mallory)))

	norole := client(t, e.ca, "norole", "-", now)
	_, _, err = e.f.Identify(norole)
	assert.EqualError(t, err, fmt.Sprintf("certificate %s of \"norole\" records no role (an organizationalUnit \"dtls-role:ROLE\"): the fleet CA did not issue it to a Docker client", pki.Serial(norole)))
	op := client(t, e.ca, "ops", fleet.OperatorRole, now)
	_, _, err = e.f.Identify(op)
	assert.ErrorContains(t, err, "is a CA operator's (role \"ca-operator\"), which opens no Docker daemon")
	dflt := client(t, e.ca, "dflt", "", now)
	user, role, err := e.f.Identify(dflt)
	require.NoError(t, err)
	assert.Equal(t, []string{"dflt", ""}, []string{user, role})

	srv, err := e.ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: []string{"docker1.example.com"}, Now: now})
	require.NoError(t, err)
	_, _, err = e.f.Identify(srv.Cert)
	assert.ErrorContains(t, err, "is not a valid client certificate of the fleet CA")

	// Expiry is checked at every call, also for a certificate verified
	// before.
	alice := client(t, e.ca, "alice", "developer", now)
	_, _, err = e.f.Identify(alice)
	require.NoError(t, err)
	e.clock.Add(fleet.DefaultClientValidity + time.Minute)
	_, _, err = e.f.Identify(alice)
	assert.ErrorContains(t, err, fmt.Sprintf("certificate %s of \"alice\" is not valid at ", pki.Serial(alice)))

	// Inventory: another CA's certificate goes to the local inventory,
	// or is refused without one.
	inv := Inventory{Fleet: e.f}
	_, _, err = inv.Identify(mallory)
	assert.EqualError(t, err, fmt.Sprintf("certificate %s of \"mallory\" is not from the fleet CA \"fleet CA\"", pki.Serial(mallory)))
	assert.True(t, e.f.Issued(alice))
	assert.False(t, e.f.Issued(mallory), "same name, another key")
}

// TestInventoryRoutes: the fleet's certificates are decided by the
// Follower, the others by the local inventory.
func TestInventoryRoutes(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	require.NoError(t, e.f.Refresh(context.Background()))
	local, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Hour), CommonName: "host CA"})
	require.NoError(t, err)
	dave := client(t, local, "dave", "-", now)
	alice := client(t, e.ca, "alice", "developer", now)
	inv := Inventory{Fleet: e.f, Local: localInventory{dave.SerialNumber.Text(16): "admin"}}
	user, role, err := inv.Identify(dave)
	require.NoError(t, err)
	assert.Equal(t, []string{"dave", "admin"}, []string{user, role})
	user, role, err = inv.Identify(alice)
	require.NoError(t, err)
	assert.Equal(t, []string{"alice", "developer"}, []string{user, role})
	erin := client(t, local, "erin", "-", now)
	_, _, err = inv.Identify(erin)
	assert.EqualError(t, err, "not from the fleet CA \"fleet CA\", and refused by this host's inventory: serial "+pki.Serial(erin)+" is not in the inventory")
}

// localInventory is a host's own inventory: roles by serial.
type localInventory map[string]string

func (l localInventory) Identify(c *x509.Certificate) (string, string, error) {
	r, ok := l[c.SerialNumber.Text(16)]
	if !ok {
		return "", "", fmt.Errorf("serial %s is not in the inventory", c.SerialNumber.Text(16))
	}
	return c.Subject.CommonName, r, nil
}

// TestStaleListStillEnforced: a list past its nextUpdate is enforced, and
// the status says it is stale.
func TestStaleListStillEnforced(t *testing.T) {
	e := newFleet(t)
	now := e.clock.Now()
	alice := client(t, e.ca, "alice", "developer", now)
	e.srv.publish(signCRL(t, e.ca, 101, now, revoked(alice, now, 1)))
	require.NoError(t, e.f.Refresh(context.Background()))
	e.srv.srv.Close()
	e.clock.Add(2 * time.Hour) // the list lasts an hour
	require.Error(t, e.f.Refresh(context.Background()))
	st := e.f.Status()
	assert.True(t, st.Stale)
	onDisk, err := ReadStatus(e.dir)
	require.NoError(t, err)
	assert.True(t, onDisk.Stale)
	_, _, err = e.f.Identify(alice)
	assert.ErrorContains(t, err, "is revoked on the CA")
}

// TestTLSVerified: a server whose certificate the fleet CA did not sign
// is not trusted, whatever list it serves.
func TestTLSVerified(t *testing.T) {
	e := newFleet(t)
	other, err := pki.NewCA(pki.CARequest{Now: time.Now(), CommonName: "other CA"})
	require.NoError(t, err)
	imposter := newCAServer(t, e.ca, other)
	imposter.publish(signCRL(t, e.ca, 100, time.Now()))
	f := e.follower(t, imposter.srv.URL)
	err = f.Refresh(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach the CA at "+imposter.srv.URL+": ")
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	assert.False(t, f.Status().HasList())
}

// TestStartFetchesAtOnceAndFollows: Start fetches without waiting for the
// first tick, and follows the CA's changes; Close stops it.
func TestStartFetchesAtOnceAndFollows(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA(pki.CARequest{Now: now.Add(-time.Hour), CommonName: "fleet CA"})
	require.NoError(t, err)
	srv := newCAServer(t, ca, ca)
	srv.publish(signCRL(t, ca, 100, now))
	alice := client(t, ca, "alice", "developer", now)
	f, err := New(Config{URL: srv.srv.URL, CAs: []*x509.Certificate{ca.Cert}, Interval: 50 * time.Millisecond, CacheDir: t.TempDir()})
	require.NoError(t, err)
	f.Start(context.Background())
	waitFor(t, func() bool { _, _, err := f.Identify(alice); return err == nil })
	srv.publish(signCRL(t, ca, 101, now, revoked(alice, now, 1)))
	waitFor(t, func() bool {
		_, _, err := f.Identify(alice)
		return err != nil && strings.Contains(err.Error(), "revoked")
	})
	require.NoError(t, f.Close())
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkIdentify: the plugin asks twice per API call, with a list of a
// thousand entries.
func BenchmarkIdentify(b *testing.B) {
	e := newFleet(b)
	now := e.clock.Now()
	entries := make([]pki.Revoked, 1000)
	for i := range entries {
		entries[i] = pki.Revoked{Serial: new(big.Int).Lsh(big.NewInt(int64(i+1)), 100), At: now, Reason: 1}
	}
	e.srv.publish(signCRL(b, e.ca, 101, now, entries...))
	require.NoError(b, e.f.Refresh(context.Background()))
	alice := client(b, e.ca, "alice", "developer", now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.f.Identify(alice); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIdentifyFirstSight: a certificate the plugin has not seen
// before costs a signature check.
func BenchmarkIdentifyFirstSight(b *testing.B) {
	e := newFleet(b)
	require.NoError(b, e.f.Refresh(context.Background()))
	alice := client(b, e.ca, "alice", "developer", e.clock.Now())
	b.ReportAllocs()
	for b.Loop() {
		e.f.vmu.Lock()
		clear(e.f.verified)
		e.f.vmu.Unlock()
		if _, _, err := e.f.Identify(alice); err != nil {
			b.Fatal(err)
		}
	}
}
