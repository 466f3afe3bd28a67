package agent_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/pki"
)

// caClock is the online CA's settable clock.
type caClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *caClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *caClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func caCerts(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	cs, err := pki.ParseCertificates(read(t, filepath.Join(dir, "ca.pem")))
	require.NoError(t, err)
	return cs
}

// TestRenewDuringRotation: while the online CA rotates, a bundle that is
// far from due is renewed at the agent's next look: at step trust once
// (its ca.pem then trusts both CAs, and the switch no longer waits for
// it) and at step switch once (its certificate is then of the new CA);
// between those, and after the finish, nothing but the schedule.
func TestRenewDuringRotation(t *testing.T) {
	clk := &caClock{t: time.Now()}
	ca := catest.Start(t, catest.Options{Now: clk.Now})
	dir, _ := enroll(t, ca, "alice")
	a := &agent.Agent{}
	ctx := context.Background()
	look := func() *agent.Result {
		t.Helper()
		// A few seconds a look: the CA's certificates, backdated five
		// minutes from its clock, must verify at the real time too.
		clk.Add(10 * time.Second)
		res, err := a.RenewIfDue(ctx, dir, clk.Now())
		require.NoError(t, err)
		return res
	}
	old := ca.CACert

	res := look()
	assert.False(t, res.Renewed, "not due, no rotation")
	assert.Empty(t, res.Early)

	st, err := ca.Server.BeginRotation()
	require.NoError(t, err)
	require.NotNil(t, st.Next)
	res = look()
	require.True(t, res.Renewed, "step trust: renewed at the next look")
	assert.Equal(t, "the CA is rotating (step trust): ca.pem does not trust both CAs yet", res.Early)
	require.Len(t, caCerts(t, dir), 2)
	next := caCerts(t, dir)[1]
	assert.Equal(t, st.Next.Serial, pki.Serial(next))
	require.NoError(t, certOf(t, dir).CheckSignatureFrom(old))
	res = look()
	assert.False(t, res.Renewed, "renewed once at step trust")

	// The switch does not wait for alice: she renewed after the trust.
	_, err = ca.Server.SwitchRotation(false)
	require.NoError(t, err)
	res = look()
	require.True(t, res.Renewed, "step switch: renewed at the next look")
	assert.Equal(t, "the CA is rotating (step switch): the certificate is not of the new CA yet", res.Early)
	require.NoError(t, certOf(t, dir).CheckSignatureFrom(next))
	res = look()
	assert.False(t, res.Renewed, "renewed once at step switch")

	// After the finish the schedule decides again: ca.pem still holds
	// both CAs until the next renewal, which installs the new one alone.
	_, err = ca.Server.FinishRotation(false)
	require.NoError(t, err)
	res = look()
	assert.False(t, res.Renewed, "no rotation: not due")
	assert.Len(t, caCerts(t, dir), 2)
	res, err = a.RenewIfDue(ctx, dir, res.Due)
	require.NoError(t, err)
	require.True(t, res.Renewed)
	assert.Empty(t, res.Early)
	cas := caCerts(t, dir)
	require.Len(t, cas, 1)
	assert.True(t, cas[0].Equal(next))
}

// TestRenewNow: force ('dtls agent --now') renews whatever the schedule;
// the CA's bound on listed renewals (caserver.MaxListedRenewals) refuses
// the one after, saying when it may come.
func TestRenewNow(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	dir, _ := enroll(t, ca, "alice")
	forced := &agent.Agent{Force: true}
	for i := range 3 {
		before := pki.Serial(certOf(t, dir))
		res, err := forced.RenewIfDue(context.Background(), dir, time.Now())
		require.NoError(t, err, "renewal %d", i+1)
		assert.True(t, res.Renewed)
		assert.Equal(t, "renewal asked for (--now)", res.Early)
		assert.Equal(t, before, res.Replaced)
	}
	_, err := forced.RenewIfDue(context.Background(), dir, time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "renewed too recently: next renewal allowed after")
}

// TestRunUnreachable: a CA that cannot be reached is never fatal: Run
// retries with a growing delay and keeps the bundle; the event says when
// less than a third of the lifetime is left; once the certificate has
// expired, and only then, the bundle is refused with "expired ... while
// the CA was unreachable: enrol again", and Run stops. An expired
// certificate whose CA answers says so without blaming the CA.
func TestRunUnreachable(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: 3 * time.Hour})
	dir, e := enroll(t, ca, "alice")
	life := e.Cert.NotAfter.Sub(e.Cert.NotBefore)
	warnAt := e.Cert.NotAfter.Add(-life / 3)
	jitter := func(l time.Duration) time.Duration { return l / 10 }
	due := warnAt.Add(-life / 10)

	// Expired, the CA answering: no word of an unreachable CA.
	expired := e.Cert.NotAfter.Add(time.Second)
	_, err := (&agent.Agent{}).RenewIfDue(context.Background(), dir, expired)
	var refused *agent.RefusedError
	require.ErrorAs(t, err, &refused)
	var exp *agent.ExpiredError
	require.ErrorAs(t, err, &exp)
	assert.Nil(t, exp.Unreachable)
	assert.Contains(t, err.Error(), "the certificate expired at "+e.Cert.NotAfter.UTC().Format(time.RFC3339)+": enrol again with a new token ('dtls enroll "+ca.URL)
	assert.NotContains(t, err.Error(), "unreachable")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	setCAURL(t, dir, down)

	clk := newFakeClock(due)
	a := &agent.Agent{Now: clk.Now, After: clk.After, Jitter: jitter, Report: func(ev agent.Event) { clk.events <- ev }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func() ([]string, error) { return []string{dir}, nil }) }()

	// Due, more than a third left: a retry, no warning yet.
	ev := clk.event(t)
	require.Error(t, ev.Err)
	assert.Contains(t, ev.Err.Error(), "cannot reach the CA at "+down)
	assert.False(t, errors.As(ev.Err, &refused), "unreachable is not a refusal")
	assert.Equal(t, due.Add(agent.MinBackoff), ev.Retry)
	assert.False(t, ev.Expiring)
	assert.True(t, ev.NotAfter.Equal(e.Cert.NotAfter))
	clk.next(t)

	// Less than a third left: still retried, now with the warning.
	clk.wake(t, warnAt)
	ev = clk.event(t)
	require.Error(t, ev.Err)
	assert.True(t, ev.Expiring)
	assert.False(t, ev.Retry.IsZero())
	assert.Equal(t, 2*agent.MinBackoff, clk.next(t), "the delay grows")
	assert.Equal(t, pki.Serial(e.Cert), pki.Serial(certOf(t, dir)), "the bundle is kept")

	// Expired while the CA was unreachable: refused, with that reason.
	clk.wake(t, expired)
	ev = clk.event(t)
	require.ErrorAs(t, ev.Err, &refused)
	require.ErrorAs(t, ev.Err, &exp)
	assert.NotNil(t, exp.Unreachable)
	assert.Contains(t, ev.Err.Error(), "expired at "+e.Cert.NotAfter.UTC().Format(time.RFC3339)+" while the CA was unreachable (cannot reach the CA at "+down)
	assert.Contains(t, ev.Err.Error(), "enrol again with a new token")
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}
