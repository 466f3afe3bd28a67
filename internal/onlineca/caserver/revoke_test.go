package caserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// TestRevokeTwoHolders: a name held by a client and a server is refused,
// as the CA host's `dtls revoke` refuses it (one rule, engine.Revoke):
// revoking both would cut more than was meant. Each is revoked by its
// serial.
func TestRevokeTwoHolders(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	op := ca.HTTPClient(t, opCert, opKey)
	ca.Client(t, "twin", "admin")
	c, _ := enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "twin"}))
	_, srv := certOf(t, c)

	r := do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "twin", Reason: 1})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, `"twin" names more than one certificate holder: client "twin", server "twin"`, r.message())
	recs, err := ca.Store.ByName("twin")
	require.NoError(t, err)
	for _, rec := range recs {
		assert.Equal(t, store.StatusGood, rec.Status, "%s %s", rec.Kind, rec.Serial)
	}

	r = do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: srv.SerialNumber.Text(16), Reason: 1})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
}

// TestRevokeCancelsTokens: revoking a holder by name ends the enrolment
// tokens of that name not used yet, which would enrol it again; another
// name's token, and a token made after the revocation, still enrol.
func TestRevokeCancelsTokens(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	opCert, opKey := ca.Operator(t)
	op := ca.HTTPClient(t, opCert, opKey)
	ca.Client(t, "alice", "developer")
	pending := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	other := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"})

	r := do(t, op, http.MethodPost, ca.URL+fleet.PathRevoke, fleet.RevokeRequest{Key: "alice", Reason: 1})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	c, _ := enrol(t, ca, pending)
	assert.Equal(t, http.StatusForbidden, c.status)
	assert.Contains(t, c.message(), "enrolment token expired")
	c, _ = enrol(t, ca, other)
	assert.Equal(t, http.StatusOK, c.status, c.message())
	c, _ = enrol(t, ca, ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"}))
	assert.Equal(t, http.StatusOK, c.status, "a token made after the revocation: %s", c.message())
}
