package agent_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/agent"
	"github.com/dtls-tool/dtls/internal/catest"
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
// it), at step switch once (its certificate is then of the new CA), and
// after the finish once (ca.pem holds the new CA alone); between those,
// nothing. Force ('dtls agent --now') renews whatever the schedule.
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

	forced := &agent.Agent{Force: true}
	before := pki.Serial(certOf(t, dir))
	res, err = forced.RenewIfDue(ctx, dir, clk.Now())
	require.NoError(t, err)
	assert.True(t, res.Renewed)
	assert.Equal(t, "renewal asked for (--now)", res.Early)
	assert.Equal(t, before, res.Replaced)

	_, err = ca.Server.FinishRotation(false)
	require.NoError(t, err)
	res = look()
	require.True(t, res.Renewed, "after the finish: renewed at the next look")
	assert.Equal(t, "ca.pem is not the CA's: its CA rotation is over", res.Early)
	cas := caCerts(t, dir)
	require.Len(t, cas, 1)
	assert.True(t, cas[0].Equal(next))
	res = look()
	assert.False(t, res.Renewed)
}
