package authority

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// TestIssueClientRoleOfName: a role is recorded per name, so a second
// certificate of a name that holds a good one with another role is refused
// (naming both roles and the serial) and changes nothing, unless
// ChangeRole, which reports every certificate that gets the new role. The
// same role, no role (the name's role is kept), a name whose certificates
// are all revoked, and a bundle replaced with --force change no other
// certificate and are not refused.
func TestIssueClientRoleOfName(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	n := 0
	issue := func(name, role string, change, force bool, dir string) ([]*Issued, error) {
		if dir == "" {
			n++
			dir = filepath.Join(out, name+string(rune('a'+n)))
		}
		return a.IssueClients(ClientRequest{Names: []string{name}, Dir: func(string) string { return dir }, DockerHost: "tcp://h:2376",
			KeyType: pki.ECDSAP256, Role: role, ChangeRole: change, Force: force, Now: time.Now()})
	}
	countClients := func() int {
		recs, err := a.Store.All()
		require.NoError(t, err)
		c := 0
		for _, r := range recs {
			if r.Kind == store.KindClient {
				c++
			}
		}
		return c
	}

	first, err := issue("alice", "developer", false, false, "")
	require.NoError(t, err)
	s1 := first[0].Record.Serial
	assert.Equal(t, "developer", first[0].Role)
	assert.Nil(t, first[0].RoleChange)

	before := countClients()
	refusedDir := filepath.Join(out, "refused")
	_, err = issue("alice", "admin", false, false, refusedDir)
	require.ErrorIs(t, err, ErrRoleChange)
	assert.EqualError(t, err, `"alice" holds client certificate serial `+s1+` with role developer: a new one with role admin would give it role admin too (a role is recorded per name)`)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, `give --change-role to change the role of every certificate of "alice", issue with --role developer, or use another name`, e.Hint)
	role, err := a.Role("alice")
	require.NoError(t, err)
	assert.Equal(t, "developer", role, "a refusal changes no role")
	assert.Equal(t, before, countClients(), "a refusal signs nothing")
	assert.NoDirExists(t, refusedDir)

	// The same role, and no role: the name's role, nothing else changes.
	same, err := issue("alice", "developer", false, false, "")
	require.NoError(t, err)
	assert.Nil(t, same[0].RoleChange)
	inherited, err := issue("alice", "", false, false, "")
	require.NoError(t, err)
	assert.Equal(t, "developer", inherited[0].Role)
	assert.Nil(t, inherited[0].RoleChange)

	// Asked for: every good certificate of alice gets the new role, and
	// the change says which.
	changed, err := issue("alice", "admin", true, false, "")
	require.NoError(t, err)
	c := changed[0].RoleChange
	require.NotNil(t, c)
	assert.Equal(t, "alice", c.Name)
	assert.Equal(t, "developer", c.From)
	assert.Equal(t, "admin", c.To)
	assert.ElementsMatch(t, []string{s1, same[0].Record.Serial, inherited[0].Record.Serial}, c.Serials)
	role, err = a.Role("alice")
	require.NoError(t, err)
	assert.Equal(t, "admin", role)

	// The policy's default role is a role too.
	bobDir := filepath.Join(out, "bob")
	bob, err := issue("bob", "", false, false, bobDir)
	require.NoError(t, err)
	assert.Equal(t, "", bob[0].Role)
	_, err = issue("bob", "admin", false, false, "")
	assert.EqualError(t, err, `"bob" holds client certificate serial `+bob[0].Record.Serial+` with the policy's default role: a new one with role admin would give it role admin too (a role is recorded per name)`)
	require.ErrorAs(t, err, &e)
	assert.Contains(t, e.Hint, "issue with no --role")
	// Replacing bob's only bundle supersedes its certificate: no other
	// certificate changes.
	replaced, err := issue("bob", "admin", false, true, bobDir)
	require.NoError(t, err)
	assert.Nil(t, replaced[0].RoleChange)

	// A name whose certificates are all revoked: nothing to change.
	carol, err := issue("carol", "admin", false, false, "")
	require.NoError(t, err)
	_, err = a.Revoke(carol[0].Record.Serial, 0, time.Now())
	require.NoError(t, err)
	_, err = issue("carol", "readonly", false, false, "")
	require.NoError(t, err)

	// dtls role: the change names the good certificates.
	c, err = a.SetRole("carol", "developer", time.Now())
	require.NoError(t, err)
	require.Len(t, c.Serials, 1)
	assert.NotEqual(t, carol[0].Record.Serial, c.Serials[0], "not the revoked one")
	assert.Equal(t, "readonly", c.From)
}

// TestIssueNameCase: a name that differs only in case from one the
// inventory has, or from another name of the same request, is refused,
// with nothing issued; the name itself again is not.
func TestIssueNameCase(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	issue := func(names ...string) error {
		_, err := a.IssueClients(ClientRequest{Names: names, Dir: func(n string) string { return filepath.Join(out, n+time.Now().Format("150405.000000000")) },
			DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Role: "developer", Now: time.Now()})
		return err
	}
	require.NoError(t, issue("alice"))
	before, err := a.Store.All()
	require.NoError(t, err)
	err = issue("Alice")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Alice" differs only in case from "alice", a name the inventory has`)
	err = issue("bob", "BOB")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"bob" differs only in case from "BOB"`)
	after, err := a.Store.All()
	require.NoError(t, err)
	assert.Equal(t, len(before), len(after), "a refused issue recorded certificates")
	require.NoError(t, issue("alice"), "the same name again")
}
