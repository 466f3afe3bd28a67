package agent_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

const dockerHost = "tcp://docker.example.com:2376"

// enroll enrols name with a new token into DIR/bundle and returns the
// bundle directory.
func enroll(t *testing.T, ca *catest.CA, name string) (string, *agent.Enrolled) {
	t.Helper()
	tok, err := fleet.ParseToken(ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: name, Role: "developer"}))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "store", name)
	e, err := agent.Enroll(context.Background(), agent.EnrollRequest{Dir: dir, CAURL: ca.URL, Token: tok, DockerHost: dockerHost, Now: time.Now()})
	require.NoError(t, err)
	return dir, e
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func certOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificate(read(t, filepath.Join(dir, "cert.pem")))
	require.NoError(t, err)
	return c
}

// TestEnroll: the bundle is written with the bundle store's modes, its
// dtls.json names the CA, and its key is the one whose public half the
// request carried: the private key was made here, and the certificate is
// for it.
func TestEnroll(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	dir, e := enroll(t, ca, "alice")

	assert.Equal(t, os.FileMode(0o700), mode(t, dir))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "key.pem")))
	for _, f := range []string{"ca.pem", "cert.pem", "dtls.json"} {
		assert.Equal(t, os.FileMode(0o644), mode(t, filepath.Join(dir, f)), f)
	}
	assert.ElementsMatch(t, []string{"ca.pem", "cert.pem", "key.pem", "dtls.json"}, entries(t, dir))
	// Nothing else next to it: no saved key, no temporary directory.
	assert.Equal(t, []string{"alice"}, entries(t, filepath.Dir(dir)))

	key, err := pki.ParsePrivateKey(read(t, filepath.Join(dir, "key.pem")))
	require.NoError(t, err)
	csr, err := pki.ParseCSR(e.CSR)
	require.NoError(t, err)
	assert.True(t, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey), "key.pem is the key of the request sent")
	cert := certOf(t, dir)
	assert.True(t, pki.KeyMatches(cert, key))
	assert.Equal(t, "alice", cert.Subject.CommonName)
	assert.Equal(t, "developer", e.Role)
	assert.Equal(t, string(ca.CAPEM), string(read(t, filepath.Join(dir, "ca.pem"))))

	b, err := clientenv.LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, ca.URL, b.Meta.CAURL)
	assert.Equal(t, dockerHost, b.Meta.DockerHost)
	assert.Equal(t, "docker.example.com", b.Meta.Server)
	assert.Equal(t, pki.Serial(cert), b.Meta.Serial)
	files, err := fixture.ReadBundleDir(dir)
	require.NoError(t, err)
	_, err = bundle.Verify(files, time.Now())
	require.NoError(t, err)
}

// TestEnrollRefusedWritesNothing: a used token, a CA that cannot be
// reached, and a server that is not the token's CA each fail with their
// error, and leave nothing on disk: not the bundle, not the saved key, not
// the directories made for it.
func TestEnrollRefusedWritesNothing(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	other := catest.Start(t, catest.Options{})
	used := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	usedTok, err := fleet.ParseToken(used)
	require.NoError(t, err)
	_, err = agent.Enroll(context.Background(), agent.EnrollRequest{Dir: filepath.Join(t.TempDir(), "first"), CAURL: ca.URL, Token: usedTok, DockerHost: dockerHost, Now: time.Now()})
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	fresh, err := fleet.ParseToken(ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"}))
	require.NoError(t, err)
	foreign, err := fleet.ParseToken(other.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "carol"}))
	require.NoError(t, err)

	for _, tc := range []struct {
		name, url string
		tok       fleet.Token
		want      string
	}{
		{"used token", ca.URL, usedTok, "enrolment token already used"},
		{"CA down", down, fresh, "cannot reach the CA at " + down + ": "},
		{"wrong CA", ca.URL, foreign, "is not the CA of the token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "store", "bundle")
			_, err := agent.Enroll(context.Background(), agent.EnrollRequest{Dir: dir, CAURL: tc.url, Token: tc.tok, DockerHost: dockerHost, Now: time.Now()})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, entries(t, root), "a failed enrolment left files")
		})
	}
	// The fresh token was never used up by the failures.
	_, err = agent.Enroll(context.Background(), agent.EnrollRequest{Dir: filepath.Join(t.TempDir(), "b"), CAURL: ca.URL, Token: fresh, DockerHost: dockerHost, Now: time.Now()})
	require.NoError(t, err)
}

// TestEnrollExisting: a bundle already there is refused before the CA is
// asked (the token stays usable), and replaced with Replace.
func TestEnrollExisting(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	dir, first := enroll(t, ca, "alice")
	tok, err := fleet.ParseToken(ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	require.NoError(t, err)
	r := agent.EnrollRequest{Dir: dir, CAURL: ca.URL, Token: tok, DockerHost: dockerHost, Now: time.Now()}
	_, err = agent.Enroll(context.Background(), r)
	var exists *bundle.ExistsError
	require.ErrorAs(t, err, &exists)
	assert.Equal(t, pki.Serial(first.Cert), pki.Serial(certOf(t, dir)))
	r.Replace = true
	second, err := agent.Enroll(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, pki.Serial(second.Cert), pki.Serial(certOf(t, dir)))
	assert.NotEqual(t, pki.Serial(first.Cert), pki.Serial(second.Cert))
}

// TestEnrollResumesSavedKey: an enrolment killed after the CA answered
// and before the bundle was written (its key saved, the token used) is
// finished by running it again: the CA answers the same certificate to
// the holder of that key.
func TestEnrollResumesSavedKey(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	tok, err := fleet.ParseToken(ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "dave"}))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "dave")
	// What the killed run did: save the key, send its request.
	csrPEM, keyPEM, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(dir), ".dave.enroll-key.pem"), keyPEM, 0o600))
	resp, err := (&fleet.Client{URL: ca.URL}).Enroll(context.Background(), tok, csrPEM)
	require.NoError(t, err)

	e, err := agent.Enroll(context.Background(), agent.EnrollRequest{Dir: dir, CAURL: ca.URL, Token: tok, DockerHost: dockerHost, Now: time.Now()})
	require.NoError(t, err)
	assert.True(t, e.Resumed)
	assert.Equal(t, resp.Certificate, string(read(t, filepath.Join(dir, "cert.pem"))))
	assert.Equal(t, string(keyPEM), string(read(t, filepath.Join(dir, "key.pem"))))
	assert.Equal(t, []string{"dave"}, entries(t, filepath.Dir(dir)), "the saved key is gone")
}

// dueOf is when c is due for renewal without jitter: two thirds into its
// lifetime.
func dueOf(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// makeContext makes the docker context name from the bundle in dir, as
// 'dtls context create' does.
func makeContext(t *testing.T, cfg, name, dir string) {
	t.Helper()
	src, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.NoError(t, dockercontext.Create(cfg, dockercontext.Context{
		Name: name, Host: dockerHost, Description: "dtls bundle for " + dockerHost, Bundle: src,
		CA: read(t, filepath.Join(dir, "ca.pem")), Cert: read(t, filepath.Join(dir, "cert.pem")), Key: read(t, filepath.Join(dir, "key.pem")),
	}, false))
}

func contextFile(cfg, name, file string) string {
	_, tlsDir := dockercontext.Paths(cfg, name)
	return filepath.Join(tlsDir, "docker", file)
}

// TestRenewShortLived: a certificate that lives a few seconds is due at
// two thirds of its lifetime; the agent renews it with a new key, over mutual TLS with the
// current one, rewrites the bundle whole (modes kept, no pending key
// left) and the docker context made from it; the old certificate is
// superseded at the CA.
func TestRenewShortLived(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: 20 * time.Second})
	dir, e := enroll(t, ca, "alice")
	cfg := t.TempDir()
	makeContext(t, cfg, "prod", dir)
	oldKey := read(t, filepath.Join(dir, "key.pem"))

	// Not due yet; due at two thirds of the lifetime.
	a := &agent.Agent{DockerConfig: cfg}
	res, err := a.RenewIfDue(context.Background(), dir, e.Cert.NotBefore)
	require.NoError(t, err)
	require.False(t, res.Renewed)
	res, err = a.RenewIfDue(context.Background(), dir, dueOf(e.Cert))
	require.NoError(t, err)
	require.True(t, res.Renewed)
	assert.False(t, res.Resumed)
	assert.Equal(t, pki.Serial(e.Cert), res.Replaced)
	assert.Equal(t, []string{"prod"}, res.Contexts)

	cert := certOf(t, dir)
	assert.Equal(t, res.Serial, pki.Serial(cert))
	assert.Equal(t, "alice", cert.Subject.CommonName)
	newKey := read(t, filepath.Join(dir, "key.pem"))
	assert.NotEqual(t, string(oldKey), string(newKey), "a new key at each renewal")
	key, err := pki.ParsePrivateKey(newKey)
	require.NoError(t, err)
	assert.True(t, pki.KeyMatches(cert, key))
	assert.Equal(t, os.FileMode(0o700), mode(t, dir))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "key.pem")))
	assert.ElementsMatch(t, []string{"ca.pem", "cert.pem", "key.pem", "dtls.json"}, entries(t, dir))
	assert.Equal(t, []string{"alice"}, entries(t, filepath.Dir(dir)))
	b, err := clientenv.LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, res.Serial, b.Meta.Serial)
	assert.Equal(t, ca.URL, b.Meta.CAURL)

	assert.Equal(t, string(read(t, filepath.Join(dir, "cert.pem"))), string(read(t, contextFile(cfg, "prod", "cert.pem"))))
	assert.Equal(t, string(newKey), string(read(t, contextFile(cfg, "prod", "key.pem"))))
	assert.Equal(t, os.FileMode(0o600), mode(t, contextFile(cfg, "prod", "key.pem")))

	old, err := ca.Store.Get(pki.Serial(e.Cert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, old.Status)

	// The new bundle works against the CA: it renews in turn.
	res2, err := a.RenewIfDue(context.Background(), dir, dueOf(cert))
	require.NoError(t, err)
	assert.True(t, res2.Renewed)
	assert.Equal(t, res.Serial, res2.Replaced)
}

// TestRenewSchedule: a certificate is due at two thirds of its lifetime,
// less the jitter; before that the agent changes nothing.
func TestRenewSchedule(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: time.Hour})
	dir, e := enroll(t, ca, "alice")
	life := e.Cert.NotAfter.Sub(e.Cert.NotBefore)
	due := e.Cert.NotBefore.Add(life * 2 / 3)

	a := &agent.Agent{Jitter: func(l time.Duration) time.Duration { return l / 20 }}
	res, err := a.RenewIfDue(context.Background(), dir, due.Add(-life/20-time.Second))
	require.NoError(t, err)
	assert.False(t, res.Renewed)
	assert.WithinDuration(t, due.Add(-life/20), res.Due, time.Millisecond)
	assert.Equal(t, pki.Serial(e.Cert), pki.Serial(certOf(t, dir)))

	res, err = a.RenewIfDue(context.Background(), dir, due.Add(-life/20))
	require.NoError(t, err)
	assert.True(t, res.Renewed)

	// RandomJitter stays within a tenth of the lifetime.
	for range 100 {
		j := agent.RandomJitter(life)
		require.True(t, j >= 0 && j < life/10, "%s", j)
	}
}

// TestRenewResumesAfterCrash: a renewal killed after the CA answered and
// before the bundle was installed (its key saved as the pending key, the
// old certificate superseded at the CA) is finished by the next run: the
// CA answers the same successor for the pending key, and the bundle gets
// it. The next run uses the old certificate to authenticate, which the CA
// accepts only for that retry.
func TestRenewResumesAfterCrash(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: 20 * time.Second})
	dir, e := enroll(t, ca, "alice")
	cfg := t.TempDir()
	makeContext(t, cfg, "prod", dir)

	// The killed run: the pending key saved, the CA asked, nothing
	// installed.
	csrPEM, keyPEM, err := pki.NewCSR("alice", "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, agent.PendingKeyFile), keyPEM, 0o600))
	pair, err := tls.X509KeyPair(read(t, filepath.Join(dir, "cert.pem")), read(t, filepath.Join(dir, "key.pem")))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert)
	succ, err := (&fleet.Client{URL: ca.URL, Roots: roots, Certificate: &pair}).Renew(context.Background(), csrPEM)
	require.NoError(t, err)
	old, err := ca.Store.Get(pki.Serial(e.Cert))
	require.NoError(t, err)
	require.Equal(t, store.StatusSuperseded, old.Status)
	// It was killed in the middle of the install, too.
	require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(dir), ".alice.tmp-123"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(dir), ".alice.tmp-123", "key.pem"), keyPEM, 0o600))

	res, err := (&agent.Agent{DockerConfig: cfg}).RenewIfDue(context.Background(), dir, time.Now())
	require.NoError(t, err)
	assert.True(t, res.Renewed)
	assert.True(t, res.Resumed)
	assert.Equal(t, succ.Certificate, string(read(t, filepath.Join(dir, "cert.pem"))), "the same successor")
	assert.Equal(t, string(keyPEM), string(read(t, filepath.Join(dir, "key.pem"))))
	assert.Equal(t, succ.Certificate, string(read(t, contextFile(cfg, "prod", "cert.pem"))))
	assert.ElementsMatch(t, []string{"ca.pem", "cert.pem", "key.pem", "dtls.json"}, entries(t, dir))
	assert.Equal(t, []string{"alice"}, entries(t, filepath.Dir(dir)), "the temporary directory with a key is gone")
}

// TestRenewRevoked: the CA refuses to renew a revoked certificate; the
// error says so, the bundle stays as it was, and no pending key is left.
func TestRenewRevoked(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: 20 * time.Second})
	dir, e := enroll(t, ca, "mallory")
	opCert, opKey := ca.Operator(t)
	pair, err := tls.X509KeyPair(opCert, opKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert)
	_, err = (&fleet.Client{URL: ca.URL, Roots: roots, Certificate: &pair}).Revoke(context.Background(), fleet.RevokeRequest{Key: "mallory", Reason: 1})
	require.NoError(t, err)
	before := read(t, filepath.Join(dir, "cert.pem"))

	_, err = (&agent.Agent{}).RenewIfDue(context.Background(), dir, dueOf(e.Cert))
	var refused *agent.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "the CA at "+ca.URL+" refused to renew \"mallory\" (serial "+pki.Serial(e.Cert))
	assert.Contains(t, err.Error(), "revoked")
	assert.False(t, fleet.Retryable(err))
	assert.Equal(t, string(before), string(read(t, filepath.Join(dir, "cert.pem"))))
	assert.ElementsMatch(t, []string{"ca.pem", "cert.pem", "key.pem", "dtls.json"}, entries(t, dir))
}

// fakeClock is a clock and a timer the test drives: Run's waits are
// handed to the test, which moves the time and fires them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	waits  chan time.Duration
	fire   chan time.Time
	events chan agent.Event
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Duration, 1), fire: make(chan time.Time), events: make(chan agent.Event, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

// next waits for Run to sleep and returns for how long it asked.
func (c *fakeClock) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not wait")
	}
	return 0
}

// wake moves the clock to now and ends Run's wait.
func (c *fakeClock) wake(t *testing.T, now time.Time) {
	t.Helper()
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
	select {
	case c.fire <- now:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not take the timer")
	}
}

func (c *fakeClock) event(t *testing.T) agent.Event {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return agent.Event{}
}

func setCAURL(t *testing.T, dir, url string) {
	t.Helper()
	var m clientenv.Meta
	require.NoError(t, json.Unmarshal(read(t, filepath.Join(dir, clientenv.MetaFile)), &m))
	m.CAURL = url
	b, err := clientenv.MarshalMeta(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, clientenv.MetaFile), b, 0o644))
}

// TestRun drives the agent's loop with its clock: it sleeps until the
// certificate is due (at most MaxSleep at a time), retries a CA that
// cannot be reached with a growing delay keeping the bundle and the
// pending key, resumes with that key once the CA answers, and stops, with
// an error, when the CA refuses the only bundle.
func TestRun(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: time.Hour})
	dir, e := enroll(t, ca, "alice")
	due := e.Cert.NotBefore.Add(e.Cert.NotAfter.Sub(e.Cert.NotBefore) * 2 / 3)
	start := time.Now()
	clk := newFakeClock(start)
	a := &agent.Agent{Now: clk.Now, After: clk.After, Report: func(ev agent.Event) { clk.events <- ev }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func() ([]string, error) { return []string{dir}, nil }) }()

	// Not due: it sleeps, at most MaxSleep.
	assert.Equal(t, min(agent.MaxSleep, due.Sub(start)), clk.next(t))

	// Due, but the CA is down: it keeps the bundle and its pending key,
	// and retries after MinBackoff, then twice that.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	setCAURL(t, dir, down)
	clk.wake(t, due)
	ev := clk.event(t)
	require.Error(t, ev.Err)
	assert.Contains(t, ev.Err.Error(), "cannot reach the CA at "+down)
	assert.Equal(t, due.Add(agent.MinBackoff), ev.Retry)
	assert.Equal(t, agent.MinBackoff, clk.next(t))
	pending := read(t, filepath.Join(dir, agent.PendingKeyFile))
	assert.Equal(t, pki.Serial(e.Cert), pki.Serial(certOf(t, dir)))
	clk.wake(t, due.Add(agent.MinBackoff))
	ev = clk.event(t)
	assert.Equal(t, due.Add(agent.MinBackoff+2*agent.MinBackoff), ev.Retry)
	assert.Equal(t, 2*agent.MinBackoff, clk.next(t))

	// The CA is back: the renewal resumes with the pending key.
	setCAURL(t, dir, ca.URL)
	clk.wake(t, due.Add(3*agent.MinBackoff))
	ev = clk.event(t)
	require.NoError(t, ev.Err)
	require.NotNil(t, ev.Result)
	assert.True(t, ev.Result.Renewed)
	assert.True(t, ev.Result.Resumed)
	assert.Equal(t, string(pending), string(read(t, filepath.Join(dir, "key.pem"))))
	clk.next(t)

	// Revoked: the next renewal is refused and Run stops.
	opCert, opKey := ca.Operator(t)
	pair, err := tls.X509KeyPair(opCert, opKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert)
	_, err = (&fleet.Client{URL: ca.URL, Roots: roots, Certificate: &pair}).Revoke(context.Background(), fleet.RevokeRequest{Key: "alice"})
	require.NoError(t, err)
	renewed := certOf(t, dir)
	clk.wake(t, renewed.NotBefore.Add(renewed.NotAfter.Sub(renewed.NotBefore)*2/3))
	ev = clk.event(t)
	var refused *agent.RefusedError
	require.True(t, errors.As(ev.Err, &refused), "%v", ev.Err)
	assert.True(t, ev.Retry.IsZero())
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "refused to renew every bundle")
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestRenewCrashPoints: what a run killed at each other step leaves, the
// next run finishes. Before the CA saw the pending key: the CA signs it
// then. In the middle of the directory swap where the platform has no
// atomic exchange (the old bundle moved to .NAME.tmp-X.old, the new one not
// in place yet): the old bundle is put back and the renewal resumed. After
// the bundle was installed, before the contexts: the next look, not due,
// brings them up to date.
func TestRenewCrashPoints(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: time.Hour})
	ctx := context.Background()

	t.Run("pending key not sent", func(t *testing.T) {
		dir, _ := enroll(t, ca, "p1")
		_, keyPEM, err := pki.NewCSR("p1", "")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, agent.PendingKeyFile), keyPEM, 0o600))
		// Not due: a pending renewal is finished all the same.
		res, err := (&agent.Agent{}).RenewIfDue(ctx, dir, time.Now())
		require.NoError(t, err)
		assert.True(t, res.Renewed)
		assert.True(t, res.Resumed)
		assert.Equal(t, string(keyPEM), string(read(t, filepath.Join(dir, "key.pem"))))
		assert.NotContains(t, entries(t, dir), agent.PendingKeyFile)
	})

	t.Run("swap interrupted", func(t *testing.T) {
		dir, e := enroll(t, ca, "p2")
		_, keyPEM, err := pki.NewCSR("p2", "")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, agent.PendingKeyFile), keyPEM, 0o600))
		parent := filepath.Dir(dir)
		require.NoError(t, os.Rename(dir, filepath.Join(parent, ".p2.tmp-42.old")))
		require.NoError(t, os.Mkdir(filepath.Join(parent, ".p2.tmp-42"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(parent, ".p2.tmp-42", "key.pem"), keyPEM, 0o600))

		res, err := (&agent.Agent{}).RenewIfDue(ctx, dir, time.Now())
		require.NoError(t, err)
		assert.True(t, res.Resumed)
		assert.Equal(t, pki.Serial(e.Cert), res.Replaced)
		assert.Equal(t, string(keyPEM), string(read(t, filepath.Join(dir, "key.pem"))))
		assert.Equal(t, []string{"p2"}, entries(t, parent))
	})

	t.Run("contexts not refreshed", func(t *testing.T) {
		dir, e := enroll(t, ca, "p3")
		cfg := t.TempDir()
		makeContext(t, cfg, "p3ctx", dir)
		// Renewed without the contexts (as if killed right after the
		// install).
		res, err := (&agent.Agent{}).RenewIfDue(ctx, dir, dueOf(e.Cert))
		require.NoError(t, err)
		require.True(t, res.Renewed)
		assert.NotEqual(t, string(read(t, filepath.Join(dir, "cert.pem"))), string(read(t, contextFile(cfg, "p3ctx", "cert.pem"))))

		res, err = (&agent.Agent{DockerConfig: cfg}).RenewIfDue(ctx, dir, time.Now())
		require.NoError(t, err)
		assert.False(t, res.Renewed)
		assert.Equal(t, []string{"p3ctx"}, res.Contexts)
		assert.Equal(t, string(read(t, filepath.Join(dir, "cert.pem"))), string(read(t, contextFile(cfg, "p3ctx", "cert.pem"))))
		assert.Equal(t, string(read(t, filepath.Join(dir, "key.pem"))), string(read(t, contextFile(cfg, "p3ctx", "key.pem"))))
		// Up to date: nothing to do the next time.
		res, err = (&agent.Agent{DockerConfig: cfg}).RenewIfDue(ctx, dir, time.Now())
		require.NoError(t, err)
		assert.Empty(t, res.Contexts)
	})
}
