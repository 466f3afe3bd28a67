package authz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// Ownership: a role that is not admin acts only on the containers,
// volumes, networks and execs its holder created. The plugin learns who
// created what from the response phase of each create (dockerd sends the
// request again with the response: moby pkg/authorization/authz.go
// AuthZResponse), and resolves a reference (a name, an ID, an ID prefix)
// by asking dockerd itself, so that the object judged is the one dockerd
// acts on: dockerd's own lookup order (daemon/container.go GetContainer:
// full ID, then name, then unique prefix) is not copied, it is called.

// ObjectKind is a kind of Docker object with an owner.
type ObjectKind string

const (
	KindContainer ObjectKind = "container"
	KindVolume    ObjectKind = "volume"
	KindNetwork   ObjectKind = "network"
	KindExec      ObjectKind = "exec"
	// KindImage is looked up for rules that name an image; images have
	// no owner.
	KindImage ObjectKind = "image"
	// KindNamespace is an image namespace a build tagged in: its
	// builder's, recorded so that another's pull does not write into it
	// (Owns) even when its builder owns nothing else.
	KindNamespace ObjectKind = "namespace"
)

// Object is a Docker object as the policy judges it.
type Object struct {
	Kind   ObjectKind
	ID     string // container or network ID, volume name, exec ID
	Name   string
	Exists bool
	// Owner is who created it through the plugin ("" when the plugin did
	// not see it created: before it ran, or by dockerd itself).
	Owner string
	// HostConfig is a container's HostConfig as dockerd reports it now.
	HostConfig json.RawMessage
	// Networks are the networks a container is connected to now
	// (NetworkSettings.Networks), by name: those joined after its
	// create ('docker network connect') are not in its HostConfig.
	Networks []string
	// Driver and Options are a volume's or a network's driver and its
	// options.
	Driver  string
	Options map[string]string
	// Container is an exec's container ID.
	Container string
	// Tags are an image's repository tags.
	Tags []string
	// Identity is a local volume's (volumeIdentity): what its owner in
	// the book is bound to, since dockerd gives a name to a volume made
	// again after the first is gone.
	Identity string
}

// names are the names an object answers to, for a rule that names one:
// its name, its whole ID, and an image's ID without its algorithm and
// its tags as written and with Docker Hub's implied prefixes
// ("victim:1", "library/victim:1", "docker.io/library/victim:1").
func (o Object) names() []string {
	var out []string
	for _, v := range []string{o.Name, o.ID} {
		if v != "" {
			out = append(out, v)
		}
	}
	if o.Kind != KindImage {
		return out
	}
	if id, ok := strings.CutPrefix(o.ID, "sha256:"); ok {
		out = append(out, id)
	}
	for _, t := range o.Tags {
		out = append(out, t)
		if repo, ok := strings.CutSuffix(t, ":latest"); ok {
			out = append(out, repo)
		}
		if !strings.Contains(t, "/") {
			out = append(out, "library/"+t, "docker.io/library/"+t, "index.docker.io/library/"+t)
		} else if first, _, _ := strings.Cut(t, "/"); !strings.ContainsAny(first, ".:") && first != "localhost" {
			out = append(out, "docker.io/"+t, "index.docker.io/"+t)
		}
	}
	return out
}

// Objects resolves references as dockerd does and says who owns what.
type Objects interface {
	Lookup(kind ObjectKind, ref string) (Object, error)
}

// Owners is Objects that also says whether a name owns anything: an
// identity the book knows, whose image namespace another's pull may not
// write into (checkPullNamespace).
type Owners interface {
	Owns(owner string) bool
}

// unixOwner is the owner of what is created over dockerd's unix socket:
// no certificate name can be it (pki.ValidateName: letters, digits and
// ".", "_", "@", "-"; never ":").
const unixOwner = "unix:"

// ownerOf is the owner key of an identity.
func ownerOf(id Identity) string {
	if id.Source == SourceUnix {
		return unixOwner
	}
	return id.User
}

// maxOwned bounds the book: the oldest entries go first (objects removed
// by --rm, a prune or dockerd itself never send a DELETE through the
// plugin). An entry evicted makes its object unknown: denied to every
// role but admin, never allowed to the wrong one.
const maxOwned = 100000

// lookupHeader carries the plugin's secret on its own lookups, so that it
// recognises them whatever the policy says of the unix socket.
const lookupHeader = "X-Dtls-Authz-Lookup"

// Registry is the plugin's Objects: a book of owners, kept in a file
// (0600) across restarts, and dockerd's answers for the rest.
type Registry struct {
	path   string
	docker *DockerClient // nil: every lookup of a container, volume or network fails (closed)

	mu    sync.Mutex
	seq   uint64
	execs int                   // entries of KindExec in book
	book  map[string]ownedEntry // kind "/" id
}

type ownedEntry struct {
	Kind  ObjectKind `json:"kind"`
	ID    string     `json:"id"`
	Name  string     `json:"name,omitempty"`
	Owner string     `json:"owner"`
	Seq   uint64     `json:"seq"`
	// Identity is a volume's when its owner was recorded: the owner is
	// that volume's only, not a later one of the same name.
	Identity string `json:"identity,omitempty"`
}

// OpenRegistry reads the book at path ("" keeps it in memory only; a
// missing file is an empty book) and asks docker for the rest.
func OpenRegistry(path string, docker *DockerClient) (*Registry, error) {
	r := &Registry{path: path, docker: docker, book: map[string]ownedEntry{}}
	if path == "" {
		return r, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("read the owners' book %q: %w", path, err)
	}
	var list []ownedEntry
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("read the owners' book %q: %w", path, err)
	}
	for _, e := range list {
		r.book[string(e.Kind)+"/"+e.ID] = e
		r.seq = max(r.seq, e.Seq)
		if e.Kind == KindExec {
			r.execs++
		}
	}
	return r, nil
}

// OpenRegistryKept is OpenRegistry for the plugin: a book that cannot be
// read is set aside (renamed PATH.unreadable-TIME, kept for the admin)
// and a new one is started at path, kept as before; what the old one knew
// is then admin's only (closed), and note says so.
func OpenRegistryKept(path string, docker *DockerClient, now time.Time) (r *Registry, note string, err error) {
	r, err = OpenRegistry(path, docker)
	if err == nil || path == "" {
		return r, "", err
	}
	aside := path + ".unreadable-" + now.UTC().Format("20060102T150405Z")
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, "", fmt.Errorf("%w; and setting it aside: %w", err, rerr)
	}
	r, err = OpenRegistry(path, docker)
	if err != nil {
		return nil, "", err
	}
	return r, fmt.Sprintf("the owners' book %q could not be read: set aside as %s and started anew (what it recorded is admin's only now)", path, aside), nil
}

// Lookup implements Objects. An exec is known by its exact ID only, as
// dockerd knows it (daemon/exec.go getExecConfig).
func (r *Registry) Lookup(kind ObjectKind, ref string) (Object, error) {
	o := Object{Kind: kind, ID: ref}
	switch {
	case r.docker != nil:
		// An exec too: its container is dockerd's to say.
		var err error
		if o, err = r.docker.lookup(kind, ref); err != nil || !o.Exists {
			return o, err
		}
	case kind != KindExec:
		return o, errors.New("the plugin has no connection to dockerd to look objects up (--docker)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.book[string(kind)+"/"+o.ID]; ok {
		if kind == KindVolume && (e.Identity == "" || e.Identity != o.Identity) {
			// Not the volume recorded: that one was removed where the
			// book could not see it (over dockerd's own socket, by a
			// prune) and this one made again under its name, by anyone.
			// Nobody's, then (closed); an entry of a book older than
			// identities is nobody's too.
			delete(r.book, string(kind)+"/"+o.ID)
			_ = r.save()
			return o, nil
		}
		o.Exists, o.Owner = true, e.Owner
		if o.Name == "" {
			o.Name = e.Name
		}
	}
	return o, nil
}

// Owns implements Owners: whether owner created anything the book still
// records. A scan of the book, for a pull, which is rare next to the
// lookups.
func (r *Registry) Owns(owner string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.book {
		if e.Owner == owner {
			return true
		}
	}
	return false
}

// maxOwnedExecs bounds the execs apart: dockerd forgets an exec a while
// after it ends, the book is never told, and a caller making execs in a
// loop must push out only execs, never another's containers.
const maxOwnedExecs = 10000

// set records owner for an object; r.mu is held.
func (r *Registry) set(kind ObjectKind, id, name, owner string) {
	r.seq++
	key := string(kind) + "/" + id
	_, had := r.book[key]
	r.book[key] = ownedEntry{Kind: kind, ID: id, Name: name, Owner: owner, Seq: r.seq}
	if kind == KindExec {
		if !had {
			r.execs++
		}
		if r.execs > maxOwnedExecs {
			r.evict(func(e ownedEntry) bool { return e.Kind == KindExec })
		}
		return
	}
	if len(r.book)-r.execs > maxOwned {
		// A namespace is never dropped: a pull into it would be allowed
		// again (its entries are one per identity that builds, a few).
		r.evict(func(e ownedEntry) bool { return e.Kind != KindExec && e.Kind != KindNamespace })
	}
}

// setVolume records owner for the volume name whose identity is given,
// unless that volume has one already: a named volume is its first
// creator's. Another identity that creates or mounts it later (an admin,
// a role an allow rule lets, two creates of one name at once, which
// dockerd both answers with the same volume) does not take it over;
// r.mu is held.
func (r *Registry) setVolume(name, identity, owner string) {
	if e, ok := r.book[string(KindVolume)+"/"+name]; ok && e.Identity == identity {
		return
	}
	r.set(KindVolume, name, name, owner)
	e := r.book[string(KindVolume)+"/"+name]
	e.Identity = identity
	r.book[string(KindVolume)+"/"+name] = e
}

// evict drops the oldest entry that which selects; r.mu is held.
func (r *Registry) evict(which func(ownedEntry) bool) {
	oldest, key := ^uint64(0), ""
	for k, e := range r.book {
		if which(e) && e.Seq < oldest {
			oldest, key = e.Seq, k
		}
	}
	if e, ok := r.book[key]; ok {
		if e.Kind == KindExec {
			r.execs--
		}
		delete(r.book, key)
	}
}

// forget drops the entry whose ID, name or unique ID prefix is ref, as
// the DELETE that removed it named it; r.mu is held.
func (r *Registry) forget(kind ObjectKind, ref string) {
	if _, ok := r.book[string(kind)+"/"+ref]; ok {
		delete(r.book, string(kind)+"/"+ref)
		return
	}
	match := ""
	for k, e := range r.book {
		if e.Kind != kind {
			continue
		}
		if e.Name != "" && e.Name == strings.TrimPrefix(ref, "/") {
			delete(r.book, k)
			return
		}
		if strings.HasPrefix(e.ID, ref) {
			if match != "" {
				return // ambiguous: dockerd refused it too
			}
			match = k
		}
	}
	if match != "" {
		delete(r.book, match)
	}
}

// observe follows one answered API call: creates record their caller as
// the owner, renames and removals follow.
func (r *Registry) observe(owner string, req *authzRequest, p string) error {
	if r == nil {
		return nil
	}
	if req.RequestMethod == "POST" && p == "/build" {
		return r.claimNamespace(owner, req.RequestURI)
	}
	if req.ResponseStatusCode/100 != 2 {
		return nil
	}
	segs := splitPath(p)
	q := url.Values{}
	if _, query, ok := strings.Cut(req.RequestURI, "?"); ok {
		q, _ = url.ParseQuery(query)
	}
	var resp struct {
		ID   string `json:"Id"`
		Name string
	}
	_ = json.Unmarshal(req.ResponseBody, &resp)
	vols := r.madeVolumes(req, p, resp.ID, resp.Name)
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed bool
	switch req.RequestMethod {
	case "POST":
		changed = r.observePost(owner, req, p, segs, q, resp.ID, vols)
	case "DELETE":
		changed = r.observeDelete(segs)
	}
	if !changed {
		return nil
	}
	return r.save()
}

// claimNamespace records owner's image namespace when the build at uri
// tags in it (a build tags in its caller's namespace only: tagProblem).
// Whatever the answer: dockerd answers a build 200 even when it fails,
// and its authorization middleware reports the status of a streamed
// answer, which never set one explicitly, as 0 (moby
// pkg/authorization/response.go); the build was allowed, and a claim of
// one's own namespace takes nothing from anyone.
func (r *Registry) claimNamespace(owner, uri string) error {
	_, query, _ := strings.Cut(uri, "?")
	q, _ := url.ParseQuery(query)
	if !slices.ContainsFunc(q["t"], func(t string) bool { ns, ok := imageNamespace(t); return ok && ns == owner }) {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.book[string(KindNamespace)+"/"+owner]; ok {
		// Recorded already, and never evicted (set).
		return nil
	}
	r.set(KindNamespace, owner, owner, owner)
	return r.save()
}

// madeVolumes looks the named volumes an answered create made or took up
// in dockerd, before the book is locked (in the plugin a lookup comes
// back through it): their names and identities, for those that are local
// volumes now. A name dockerd did not make is not recorded (a top-level
// Binds, which dockerd ignores beside a HostConfig, names a volume that
// does not exist; whoever makes it later is its owner), and no volume is
// recorded without an identity to bind its owner to.
func (r *Registry) madeVolumes(req *authzRequest, p, id, name string) map[string]string {
	var names []string
	switch {
	case req.RequestMethod != "POST" || r.docker == nil:
		return nil
	case p == "/containers/create" && id != "":
		names = namedVolumes(req.RequestBody)
	case p == "/volumes/create" && name != "":
		names = []string{name}
	}
	vols := map[string]string{}
	for _, n := range names {
		if o, err := r.docker.lookup(KindVolume, n); err == nil && o.Exists && o.Identity != "" {
			vols[o.ID] = o.Identity
		}
	}
	return vols
}

// observePost records what a POST created or renamed, and the volumes
// (madeVolumes) a create made; r.mu is held.
func (r *Registry) observePost(owner string, req *authzRequest, p string, segs []string, q url.Values, id string, vols map[string]string) bool {
	last := ""
	if len(segs) >= 3 && segs[0] == "containers" {
		last = segs[len(segs)-1]
	}
	switch {
	case p == "/containers/create" && id != "":
		r.set(KindContainer, id, q.Get("name"), owner)
		// Named volumes the create made (or took): dockerd creates a
		// missing one itself, without a call of its own.
		for v, identity := range vols {
			r.setVolume(v, identity, owner)
		}
	case p == "/volumes/create":
		for v, identity := range vols {
			r.setVolume(v, identity, owner)
		}
		return len(vols) > 0
	case p == "/networks/create" && id != "":
		var body struct{ Name string }
		_ = json.Unmarshal(req.RequestBody, &body)
		r.set(KindNetwork, id, body.Name, owner)
	case last == "exec" && id != "":
		r.set(KindExec, id, "", owner)
	case last == "rename":
		r.rename(strings.Join(segs[1:len(segs)-1], "/"), q.Get("name"))
	default:
		return false
	}
	return true
}

// rename follows a container's rename; r.mu is held.
func (r *Registry) rename(ref, name string) {
	for k, e := range r.book {
		if e.Kind == KindContainer && (e.ID == ref || e.Name == ref || strings.HasPrefix(e.ID, ref)) {
			e.Name = name
			r.book[k] = e
			return
		}
	}
}

// observeDelete forgets a removed container, volume or network; r.mu is
// held.
func (r *Registry) observeDelete(segs []string) bool {
	if len(segs) < 2 {
		return false
	}
	kind, ok := map[string]ObjectKind{"containers": KindContainer, "volumes": KindVolume, "networks": KindNetwork}[segs[0]]
	if !ok {
		return false
	}
	r.forget(kind, strings.Join(segs[1:], "/"))
	return true
}

// namedVolumes lists the named volumes a create body mounts (Binds
// "name:/dst", Mounts of type volume with a Source).
func namedVolumes(body []byte) []string {
	var b createBody
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	var out []string
	for _, h := range []*hostConfig{&b.hostConfig, b.HostConfig} {
		if h == nil {
			continue
		}
		for _, bind := range h.Binds {
			if src, _, ok := strings.Cut(bind, ":"); ok && src != "" && !strings.HasPrefix(src, "/") {
				out = append(out, src)
			}
		}
		for _, m := range h.Mounts {
			if strings.EqualFold(m.Type, "volume") && m.Source != "" {
				out = append(out, m.Source)
			}
		}
	}
	return out
}

// volumeIdentity is the identity (dirIdentity) of a local volume's own
// directory, the parent of its mount point: DATA-ROOT/volumes/NAME, made
// with the volume and removed with it, never a mount point itself (the
// local driver's type= options mount on _data). "" for another driver's
// volume, whose directory is the driver's to say: such a volume has no
// owner (closed).
func volumeIdentity(driver, mountpoint string) string {
	if driver != "local" || filepath.Base(mountpoint) != "_data" {
		return ""
	}
	return dirIdentity(filepath.Dir(mountpoint))
}

// save writes the book atomically; r.mu is held.
func (r *Registry) save() error {
	if r.path == "" {
		return nil
	}
	list := make([]ownedEntry, 0, len(r.book))
	for _, e := range r.book {
		list = append(list, e)
	}
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.path, data, 0o600); err != nil {
		return fmt.Errorf("write the owners' book: %w", err)
	}
	return nil
}

// DockerClient asks dockerd, over its unix socket, what a reference names.
type DockerClient struct {
	hc    *http.Client
	token string
}

// NewDockerClient talks to dockerd's unix socket at path. Its requests
// carry a secret of this process that the plugin allows whatever the
// policy says of the unix socket: they come back through the plugin.
func NewDockerClient(path string) *DockerClient {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return &DockerClient{
		token: hex.EncodeToString(b),
		hc: &http.Client{
			Timeout: 10 * time.Second,
			// A reference that dockerd's router redirects ("..", "//")
			// names no object: never followed to another one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
				MaxIdleConns: 4,
			},
		},
	}
}

// isLookup reports whether a call is one of this client's own.
func (d *DockerClient) isLookup(headers map[string]string) bool {
	return d != nil && header(headers, lookupHeader) == d.token
}

func (d *DockerClient) lookup(kind ObjectKind, ref string) (Object, error) {
	o := Object{Kind: kind, ID: ref}
	var what string
	switch kind {
	case KindContainer:
		what = "containers/" + url.PathEscape(ref) + "/json"
	case KindVolume:
		what = "volumes/" + url.PathEscape(ref)
	case KindNetwork:
		what = "networks/" + url.PathEscape(ref)
	case KindExec:
		what = "exec/" + url.PathEscape(ref) + "/json"
	case KindImage:
		what = "images/" + url.PathEscape(ref) + "/json"
	default:
		return o, fmt.Errorf("no lookup of a %s", kind)
	}
	req, err := http.NewRequest(http.MethodGet, "http://docker/v1.41/"+what, nil)
	if err != nil {
		return o, err
	}
	req.Header.Set(lookupHeader, d.token)
	resp, err := d.hc.Do(req)
	if err != nil {
		return o, fmt.Errorf("look %s %q up in dockerd: %w", kind, ref, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case err != nil:
		return o, fmt.Errorf("look %s %q up in dockerd: %w", kind, ref, err)
	case resp.StatusCode == http.StatusNotFound:
		return o, nil
	case resp.StatusCode/100 == 3:
		return o, fmt.Errorf("look %s %q up in dockerd: not a reference dockerd routes as it is (%s)", kind, ref, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return o, fmt.Errorf("look %s %q up in dockerd: %s: %s", kind, ref, resp.Status, strings.TrimSpace(string(body)))
	}
	var v struct {
		ID         string `json:"Id"`
		Name       string
		Driver     string
		Mountpoint string // a volume's
		Options    map[string]string
		HostConfig json.RawMessage
		// An exec's (moby api/types ContainerExecInspect).
		ContainerID string
		// An image's.
		RepoTags []string
		// A container's networks.
		NetworkSettings struct {
			Networks map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return o, fmt.Errorf("look %s %q up in dockerd: %w", kind, ref, err)
	}
	o.Exists, o.Name, o.Driver, o.Options, o.HostConfig = true, strings.TrimPrefix(v.Name, "/"), v.Driver, v.Options, v.HostConfig
	o.Container, o.Tags = v.ContainerID, v.RepoTags
	for n := range v.NetworkSettings.Networks {
		o.Networks = append(o.Networks, n)
	}
	slices.Sort(o.Networks)
	if kind == KindVolume {
		o.ID, o.Identity = v.Name, volumeIdentity(v.Driver, v.Mountpoint)
	} else {
		o.ID = v.ID
	}
	return o, nil
}
