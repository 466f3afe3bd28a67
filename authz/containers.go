package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/dtls-tool/dtls/atomicfile"
)

// Containers answers, for an exec as root, whether the policy would have
// let the exec's role create the container: the issue of a root exec is
// not root itself (a role that may create a container may run it as root)
// but root in a container the role could not have made (moby#21249-style
// escapes need the container's privileges, not the exec's).
type Containers interface {
	// CreateBody returns the checked fields of the body the container
	// ref (an ID, a unique ID prefix or a name) was created with, and
	// false when it is unknown.
	CreateBody(ref string) ([]byte, bool)
}

// maxContainers bounds the book: the oldest entries go first (containers
// removed by --rm or a prune never send a DELETE through the plugin).
const maxContainers = 10000

// ContainerBook records the containers created through dockerd while the
// plugin runs, from the response phase of POST /containers/create (the
// response body has the ID, the request URI the name, and dockerd sends
// the request body again with the response: moby
// pkg/authorization/authz.go AuthZResponse), follows renames and
// removals, and keeps only the fields the policy checks (no Env, Cmd or
// labels, which may hold secrets) in a file (0600), so that a restarted
// plugin still knows them. A container created before the plugin first
// ran is unknown: a root exec into it is denied (fail closed).
type ContainerBook struct {
	path string
	mu   sync.Mutex
	book containerFile
}

type containerFile struct {
	// Order lists the IDs oldest first.
	Order []string                  `json:"order"`
	ByID  map[string]containerEntry `json:"containers"`
}

type containerEntry struct {
	Name string          `json:"name,omitempty"`
	Body json.RawMessage `json:"create"`
}

// NewContainerBook is an empty book kept at path ("" for memory only).
func NewContainerBook(path string) *ContainerBook {
	return &ContainerBook{path: path, book: containerFile{ByID: map[string]containerEntry{}}}
}

// OpenContainerBook reads the book at path (a missing file is an empty
// book); "" keeps it in memory only.
func OpenContainerBook(path string) (*ContainerBook, error) {
	b := NewContainerBook(path)
	if path == "" {
		return b, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("read container book %q: %w", path, err)
	}
	if err := json.Unmarshal(data, &b.book); err != nil {
		return nil, fmt.Errorf("read container book %q: %w", path, err)
	}
	if b.book.ByID == nil {
		b.book.ByID = map[string]containerEntry{}
	}
	return b, nil
}

// CreateBody implements Containers.
func (b *ContainerBook) CreateBody(ref string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.resolve(ref)
	if !ok {
		return nil, false
	}
	return b.book.ByID[id].Body, true
}

// resolve finds ref as dockerd does (daemon/container.go GetContainer):
// a full ID, a name, then a unique ID prefix; b.mu is held.
func (b *ContainerBook) resolve(ref string) (string, bool) {
	if _, ok := b.book.ByID[ref]; ok {
		return ref, true
	}
	name := strings.TrimPrefix(ref, "/")
	for id, e := range b.book.ByID {
		if e.Name != "" && e.Name == name {
			return id, true
		}
	}
	found := ""
	for id := range b.book.ByID {
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != "" {
				return "", false // ambiguous: dockerd refuses it too
			}
			found = id
		}
	}
	return found, found != ""
}

// observe follows one answered API call.
func (b *ContainerBook) observe(req *authzRequest, path string) error {
	if b == nil || req.ResponseStatusCode/100 != 2 {
		return nil
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	q := url.Values{}
	if _, query, ok := strings.Cut(req.RequestURI, "?"); ok {
		q, _ = url.ParseQuery(query)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case req.RequestMethod == "POST" && path == "/containers/create":
		var resp struct{ Id string }
		if err := json.Unmarshal(req.ResponseBody, &resp); err != nil || resp.Id == "" {
			return nil
		}
		var cb createBody
		if err := json.Unmarshal(req.RequestBody, &cb); err != nil {
			return nil // the request phase denied it for every role but admin
		}
		kept, err := json.Marshal(cb)
		if err != nil {
			return err
		}
		b.remove(resp.Id)
		b.book.ByID[resp.Id] = containerEntry{Name: q.Get("name"), Body: kept}
		b.book.Order = append(b.book.Order, resp.Id)
		for len(b.book.Order) > maxContainers {
			b.remove(b.book.Order[0])
		}
	case req.RequestMethod == "POST" && len(segs) == 3 && segs[0] == "containers" && segs[2] == "rename":
		id, ok := b.resolve(segs[1])
		if !ok {
			return nil
		}
		e := b.book.ByID[id]
		e.Name = q.Get("name")
		b.book.ByID[id] = e
	case req.RequestMethod == "DELETE" && len(segs) == 2 && segs[0] == "containers":
		id, ok := b.resolve(segs[1])
		if !ok {
			return nil
		}
		b.remove(id)
	default:
		return nil
	}
	return b.save()
}

// remove drops id; b.mu is held.
func (b *ContainerBook) remove(id string) {
	if _, ok := b.book.ByID[id]; !ok {
		return
	}
	delete(b.book.ByID, id)
	for i, o := range b.book.Order {
		if o == id {
			b.book.Order = append(b.book.Order[:i], b.book.Order[i+1:]...)
			break
		}
	}
}

// save writes the book atomically; b.mu is held.
func (b *ContainerBook) save() error {
	if b.path == "" {
		return nil
	}
	data, err := json.Marshal(b.book)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(b.path, data, 0o600); err != nil {
		return fmt.Errorf("write container book: %w", err)
	}
	return nil
}
