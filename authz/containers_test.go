package authz

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExecAsRootFollowsHowTheContainerWasCreated: the plugin records each
// container from the response phase of its create (as dockerd sends it:
// the request body again, the response body with the ID), follows renames
// and removals, keeps the record across a restart, and lets a developer
// exec as root only into a container a developer could have created.
func TestExecAsRootFollowsHowTheContainerWasCreated(t *testing.T) {
	ca := newTestCA(t, "ca")
	dev, adm := ca.client(t, "dev", 10), ca.client(t, "adm", 11)
	inv := newFakeInventory()
	inv.add(dev, "developer")
	inv.add(adm, "admin")
	book := filepath.Join(t.TempDir(), "containers.json")
	start := func() *testPlugin {
		b, err := OpenContainerBook(book)
		require.NoError(t, err)
		return startPlugin(t, Config{Inventory: inv, Containers: b})
	}
	tp := start()
	created := func(who string, id, name, body string) {
		t.Helper()
		c := dev
		if who == "adm" {
			c = adm
		}
		uri := "/v1.41/containers/create"
		if name != "" {
			uri += "?name=" + name
		}
		r := tlsRequest("POST", uri, c).withBody(body)
		require.True(t, tp.ask(t, pathAuthZReq, r).Allow, "%s creates %s", who, name)
		r.ResponseStatusCode, r.ResponseBody = 201, []byte(`{"Id":"`+id+`","Warnings":[]}`)
		require.True(t, tp.ask(t, pathAuthZRes, r).Allow)
	}
	exec := func(ref, body string) authzResponse {
		t.Helper()
		return tp.ask(t, pathAuthZReq, tlsRequest("POST", "/v1.41/containers/"+ref+"/exec", dev).withBody(body))
	}
	plainID, privID := strings.Repeat("a", 64), strings.Repeat("b", 64)
	created("dev", plainID, "devbox", `{"Image":"alpine","Env":["TOKEN=s3cret"],"HostConfig":{}}`)
	created("adm", privID, "privbox", `{"Image":"alpine","HostConfig":{"Privileged":true}}`)

	root := `{"User":"root","Cmd":["sh"]}`
	assert.True(t, exec("devbox", root).Allow, "a container the developer created")
	assert.True(t, exec(plainID[:12], `{"User":"0:0","Cmd":["sh"]}`).Allow, "by ID prefix")
	out := exec("privbox", root)
	assert.False(t, out.Allow)
	assert.Contains(t, out.Msg, `into container "privbox" is not allowed: this role could not have created it (HostConfig.Privileged`)
	out = exec("elsewhere", root)
	assert.False(t, out.Allow)
	assert.Contains(t, out.Msg, `the plugin does not know how container "elsewhere" was created`)
	out = exec("devbox", `{"Privileged":true,"Cmd":["sh"]}`)
	assert.False(t, out.Allow, "a privileged exec is never allowed")
	assert.True(t, exec("privbox", `{"User":"nobody","Cmd":["sh"]}`).Allow, "not as root: the container's checks do not apply")

	// Renamed, then a restart of the plugin: it still knows.
	r := tlsRequest("POST", "/v1.41/containers/devbox/rename?name=devbox2", dev)
	require.True(t, tp.ask(t, pathAuthZReq, r).Allow)
	r.ResponseStatusCode = 204
	tp.ask(t, pathAuthZRes, r)
	tp = start()
	assert.True(t, exec("devbox2", root).Allow)
	assert.False(t, exec("devbox", root).Allow)

	// The record keeps only what the policy checks: no Env.
	b, err := OpenContainerBook(book)
	require.NoError(t, err)
	kept, ok := b.CreateBody("devbox2")
	require.True(t, ok)
	assert.NotContains(t, string(kept), "s3cret")

	// Removed: unknown again.
	r = tlsRequest("DELETE", "/v1.41/containers/"+plainID, dev)
	require.True(t, tp.ask(t, pathAuthZReq, r).Allow)
	r.ResponseStatusCode = 204
	tp.ask(t, pathAuthZRes, r)
	assert.False(t, exec("devbox2", root).Allow)
}
