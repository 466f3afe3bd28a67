package authority

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGroupMembers: the group's listed members and the accounts whose
// primary group it is, once each; none for a group that is not there.
func TestGroupMembers(t *testing.T) {
	dir := t.TempDir()
	group, passwd := filepath.Join(dir, "group"), filepath.Join(dir, "passwd")
	require.NoError(t, os.WriteFile(group, []byte("root:x:0:\n# a comment\ndocker:x:999:alice,bob\nstaff:x:50:\n"), 0o644))
	require.NoError(t, os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\nbob:x:1001:999::/home/bob:/bin/sh\ncarol:x:1002:999::/home/carol:/bin/sh\n"), 0o644))
	m, err := groupMembers(group, passwd, "docker")
	require.NoError(t, err)
	assert.Equal(t, []string{"alice", "bob", "carol (primary group)"}, m)
	m, err = groupMembers(group, passwd, "nogroup")
	require.NoError(t, err)
	assert.Empty(t, m)
}

// TestPlanLocal: --local records the group daemon.json had and asks for
// root; a later run without it asks for that group back ("" takes the
// key out); --local without --gateway is refused.
func TestPlanLocal(t *testing.T) {
	dir := t.TempDir()
	dj := filepath.Join(dir, "daemon.json")
	require.NoError(t, os.WriteFile(dj, []byte(`{"group": "dockerusers"}`), 0o644))
	r := InitRequest{StateDir: dir, DaemonJSON: dj, Gateway: true, Local: true}
	g, rec, lc, err := planLocal(r)
	require.NoError(t, err)
	assert.True(t, g.Set)
	assert.Equal(t, "root", g.Name)
	assert.Equal(t, "dockerusers", rec)
	assert.Equal(t, "dockerusers", lc.Group)

	b, err := jsonIndent(Server{Local: true, LocalGroup: ""})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ServerRecord), b, 0o600))
	r.Local = false
	g, _, lc, err = planLocal(r)
	require.NoError(t, err)
	assert.True(t, g.Set)
	assert.Empty(t, g.Name, "dockerd's default comes back")
	assert.True(t, lc.Undone)
	assert.Equal(t, "docker", lc.Group)

	_, _, _, err = planLocal(InitRequest{StateDir: dir, Local: true})
	assert.EqualError(t, err, "--local needs --gateway: the local socket accounts use instead of dockerd's is the gateway's")
}
