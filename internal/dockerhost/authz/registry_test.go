package authz

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegistryRecordsOwners: the response phase of each create records
// its caller as the owner (containers, the named volumes a create makes,
// volumes, networks, execs); renames and removals follow; the book is
// kept (0600) across a restart of the plugin; a refused identity records
// nothing; and an exec is known by its exact ID only. A volume is
// recorded only when dockerd has it after the create: a top-level Binds
// beside a HostConfig, which dockerd ignores, records nothing.
func TestRegistryRecordsOwners(t *testing.T) {
	ca := newTestCA(t, "ca")
	dev, adm := ca.client(t, "dev", 10), ca.client(t, "adm", 11)
	inv := newFakeInventory()
	inv.add(dev, "developer")
	inv.add(adm, "admin")
	book := filepath.Join(t.TempDir(), "owners.json")
	docker := startFakeDockerd(t)
	docker.volume(t, "cache", "local")
	docker.volume(t, "data", "local")
	open := func() *Registry {
		r, err := OpenRegistry(book, docker.client)
		require.NoError(t, err)
		return r
	}
	reg := open()
	tp := startPlugin(t, Config{Inventory: inv, Objects: reg})
	answered := func(r mobyRequest, status int, resp string) {
		t.Helper()
		r.ResponseStatusCode, r.ResponseBody = status, []byte(resp)
		require.True(t, tp.ask(t, pathAuthZRes, r).Allow)
	}
	cid, aid, xid := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("e", 64)
	answered(tlsRequest("POST", "/v1.41/containers/create?name=devbox", dev).withBody(`{"Image":"x","Binds":["ghost:/g"],"HostConfig":{"Binds":["cache:/c"]}}`),
		201, `{"Id":"`+cid+`","Warnings":[]}`)
	answered(tlsRequest("POST", "/v1.41/containers/create?name=admbox", adm).withBody(`{"Image":"x"}`), 201, `{"Id":"`+aid+`"}`)
	answered(tlsRequest("POST", "/v1.41/volumes/create", dev).withBody(`{"Name":"data"}`), 201, `{"Name":"data","Driver":"local"}`)
	answered(tlsRequest("POST", "/v1.41/networks/create", adm).withBody(`{"Name":"prod"}`), 201, `{"Id":"`+strings.Repeat("c", 64)+`"}`)
	answered(tlsRequest("POST", "/v1.41/containers/devbox/exec", dev).withBody(`{"Cmd":["ls"]}`), 201, `{"Id":"`+xid+`"}`)
	// A refused create records nothing; neither does a failed one.
	answered(tlsRequest("POST", "/v1.41/containers/create?name=x", adm).withBody(`{"Image":"x"}`), 500, `{"message":"no"}`)
	// A build that tags in its caller's namespace records it; one that
	// tags outside any (an admin's) records nothing.
	// (dockerd reports a streamed answer's status as 0: no WriteHeader.)
	answered(tlsRequest("POST", "/v1.41/build?t=127.0.0.1%3A5000%2Fdev%2Fapp%3A1", dev), 0, `{"stream":"Step 1/1"}`)
	answered(tlsRequest("POST", "/v1.41/build?t=prod%3A1", adm), 200, `{"stream":"Step 1/1"}`)

	owners := func(r *Registry) map[string]string {
		r.mu.Lock()
		defer r.mu.Unlock()
		m := map[string]string{}
		for _, e := range r.book {
			m[string(e.Kind)+" "+e.Name+" "+e.ID[:min(len(e.ID), 4)]] = e.Owner
		}
		return m
	}
	assert.Equal(t, map[string]string{
		"container devbox aaaa": "dev", "container admbox bbbb": "adm", "volume cache cach": "dev",
		"volume data data": "dev", "network prod cccc": "adm", "exec  eeee": "dev", "namespace dev dev": "dev",
	}, owners(reg))
	assert.True(t, reg.Owns("dev"))
	assert.True(t, reg.Owns("adm"))
	assert.False(t, reg.Owns("prod"), "a tag's name is no owner")
	o, err := reg.Lookup(KindExec, xid)
	require.NoError(t, err)
	assert.Equal(t, "dev", o.Owner)
	o, err = reg.Lookup(KindExec, xid[:12])
	require.NoError(t, err)
	assert.False(t, o.Exists, "an exec is known by its whole ID only")
	nodocker, err := OpenRegistry("", nil)
	require.NoError(t, err)
	_, err = nodocker.Lookup(KindContainer, "devbox")
	assert.ErrorContains(t, err, "no connection to dockerd", "fail closed without dockerd")

	// Rename and removal by name, ID prefix; then a restart.
	answered(tlsRequest("POST", "/v1.41/containers/devbox/rename?name=web", dev), 204, "")
	answered(tlsRequest("DELETE", "/v1.41/containers/bbbb", adm), 204, "")
	answered(tlsRequest("DELETE", "/v1.41/volumes/data", dev), 204, "")
	fi, err := os.Stat(book)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, map[string]string{
		"container web aaaa": "dev", "volume cache cach": "dev", "network prod cccc": "adm", "exec  eeee": "dev", "namespace dev dev": "dev",
	}, owners(open()))
	b, err := os.ReadFile(book)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"Image"`, "the book keeps owners, not bodies")
}

// TestRegistryBound: the oldest entry goes first when the book is full.
func TestRegistryBound(t *testing.T) {
	r, err := OpenRegistry("", nil)
	require.NoError(t, err)
	// A namespace, the oldest entry of all, is never pushed out: a pull
	// into it would be allowed again (a flood of one's own volumes).
	require.NoError(t, r.claimNamespace("cici", "/v1.41/build?t=cici%2Fapp%3A1"))
	for i := range maxOwned + 2 {
		r.set(KindVolume, "v"+strconv.Itoa(i), "v"+strconv.Itoa(i), "u")
	}
	assert.Equal(t, maxOwned, len(r.book), "the volumes and the namespace")
	_, ok := r.book[string(KindVolume)+"/v0"]
	assert.False(t, ok, "the oldest went")
	_, ok = r.book[string(KindVolume)+"/v"+strconv.Itoa(maxOwned+1)]
	assert.True(t, ok, "the newest stays")
	assert.True(t, r.Owns("cici"), "cici's namespace was pushed out")
}

// TestRegistryExecsBoundApart: execs made in a loop push out only execs.
func TestRegistryExecsBoundApart(t *testing.T) {
	r, err := OpenRegistry("", nil)
	require.NoError(t, err)
	r.set(KindContainer, strings.Repeat("c", 64), "web", "bob")
	for i := range maxOwnedExecs + 5 {
		r.set(KindExec, "e"+strconv.Itoa(i), "", "mallory")
	}
	o, _ := r.Lookup(KindExec, "e0")
	assert.False(t, o.Exists, "the oldest exec went")
	assert.Equal(t, maxOwnedExecs, r.execs)
	r.mu.Lock()
	_, ok := r.book[string(KindContainer)+"/"+strings.Repeat("c", 64)]
	r.mu.Unlock()
	assert.True(t, ok, "bob's container stays")
}

// TestRegistryUnreadableSetAside: a book that cannot be read is renamed
// aside and a new one is kept at its path.
func TestRegistryUnreadableSetAside(t *testing.T) {
	dir := t.TempDir()
	book := filepath.Join(dir, "owners.json")
	require.NoError(t, os.WriteFile(book, []byte("{not json"), 0o600))
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	r, note, err := OpenRegistryKept(book, nil, now)
	require.NoError(t, err)
	assert.Contains(t, note, "set aside as "+book+".unreadable-20261207T050000Z")
	assert.FileExists(t, book+".unreadable-20261207T050000Z")
	r.mu.Lock()
	r.set(KindExec, "x", "", "alice")
	require.NoError(t, r.save())
	r.mu.Unlock()
	r2, note, err := OpenRegistryKept(book, nil, now)
	require.NoError(t, err)
	assert.Empty(t, note)
	o, _ := r2.Lookup(KindExec, "x")
	assert.True(t, o.Exists, "the new book is kept")
}

// TestRegistryVolumeBoundToItsDirectory: a volume's owner is that
// volume's, bound to its directory's identity, not its name's: a volume
// removed where the book cannot see it (over dockerd's own socket, by a
// prune) and made again under the name by someone else is nobody's, and
// a developer may then neither mount nor remove it. A volume of another
// driver, and an entry of a book older than identities, are nobody's.
func TestRegistryVolumeBoundToItsDirectory(t *testing.T) {
	ca := newTestCA(t, "ca")
	dev := ca.client(t, "dev", 10)
	inv := newFakeInventory()
	inv.add(dev, "developer")
	docker := startFakeDockerd(t)
	docker.volume(t, "pgdata", "local")
	docker.volume(t, "remote", "nfsplugin")
	reg, err := OpenRegistry(filepath.Join(t.TempDir(), "owners.json"), docker.client)
	require.NoError(t, err)
	tp := startPlugin(t, Config{Inventory: inv, Objects: reg})
	for _, name := range []string{"pgdata", "remote"} {
		r := tlsRequest("POST", "/v1.41/volumes/create", dev).withBody(`{"Name":"` + name + `"}`)
		r.ResponseStatusCode, r.ResponseBody = 201, []byte(`{"Name":"`+name+`"}`)
		require.True(t, tp.ask(t, pathAuthZRes, r).Allow)
	}
	owner := func(name string) string {
		t.Helper()
		o, err := reg.Lookup(KindVolume, name)
		require.NoError(t, err)
		require.True(t, o.Exists)
		return o.Owner
	}
	mount := tlsRequest("POST", "/v1.41/containers/create", dev).withBody(`{"Image":"x","HostConfig":{"Binds":["pgdata:/d"]}}`)
	remove := tlsRequest("DELETE", "/v1.41/volumes/pgdata", dev)
	assert.Equal(t, "dev", owner("pgdata"))
	assert.True(t, tp.ask(t, pathAuthZReq, mount).Allow, "dev's own volume")
	assert.Equal(t, "", owner("remote"), "another driver's volume has no directory to bind to")

	// The first creator's: another identity's create of the same volume
	// (an admin mounting it, or a create racing dev's, which dockerd
	// answers with the same volume) does not take it over.
	adm := ca.client(t, "adm", 11)
	inv.add(adm, "admin")
	for _, r := range []mobyRequest{
		tlsRequest("POST", "/v1.41/volumes/create", adm).withBody(`{"Name":"pgdata"}`),
		tlsRequest("POST", "/v1.41/containers/create", adm).withBody(`{"Image":"x","HostConfig":{"Binds":["pgdata:/d"]}}`),
	} {
		r.ResponseStatusCode, r.ResponseBody = 201, []byte(`{"Name":"pgdata","Id":"`+strings.Repeat("f", 64)+`"}`)
		require.True(t, tp.ask(t, pathAuthZRes, r).Allow)
		assert.Equal(t, "dev", owner("pgdata"), r.RequestURI)
	}

	// Removed and made again where the book does not see it.
	docker.volume(t, "pgdata", "local")
	assert.Equal(t, "", owner("pgdata"), "a volume made again under the name is not dev's")
	out := tp.ask(t, pathAuthZReq, mount)
	assert.False(t, out.Allow, "mount another's volume of the same name")
	assert.Contains(t, out.Msg, `"pgdata"`)
	assert.False(t, tp.ask(t, pathAuthZReq, remove).Allow, "remove another's volume of the same name")

	// An entry without an identity (a book written before them).
	reg.mu.Lock()
	reg.set(KindVolume, "pgdata", "pgdata", "dev")
	reg.mu.Unlock()
	assert.Equal(t, "", owner("pgdata"), "unbound entry")
}

// fakeDockerd answers the plugin's lookups of volumes (GET
// /v1.41/volumes/NAME) from directories under root, as dockerd's local
// driver keeps them (root/volumes/NAME/_data), of an exec by its whole
// ID, and 404 to the rest.
type fakeDockerd struct {
	root    string
	client  *DockerClient
	mu      sync.Mutex
	drivers map[string]string
}

func startFakeDockerd(t *testing.T) *fakeDockerd {
	t.Helper()
	dir := shortTempDir(t) // a unix socket's path is short
	f := &fakeDockerd{root: dir, drivers: map[string]string{}}
	sock := filepath.Join(dir, "d.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v1.41/exec/"); ok && len(id) == 64+len("/json") {
			// Any exec dockerd would know by its whole ID.
			_ = json.NewEncoder(w).Encode(map[string]string{"ID": strings.TrimSuffix(id, "/json")})
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/v1.41/volumes/")
		f.mu.Lock()
		driver, known := f.drivers[name]
		f.mu.Unlock()
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"Name": name, "Driver": driver,
			"Mountpoint": filepath.Join(dir, "volumes", name, "_data")})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.client = NewDockerClient(sock)
	return f
}

// volume makes the volume name of driver, or makes it again: its
// directory removed and made anew, as dockerd does for a volume removed
// and created again.
func (f *fakeDockerd) volume(t *testing.T, name, driver string) {
	t.Helper()
	d := filepath.Join(f.root, "volumes", name)
	require.NoError(t, os.RemoveAll(d))
	require.NoError(t, os.MkdirAll(filepath.Join(d, "_data"), 0o755))
	f.mu.Lock()
	f.drivers[name] = driver
	f.mu.Unlock()
}
