package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// SocketsFileName is the book of per-container sockets in the state
// directory: 'dtls gateway socket add|rm' write it (whole, atomically),
// the running gateway follows it.
const SocketsFileName = "gateway-sockets.json"

// ContainerSocket is one per-container socket of the book: every caller
// of SocketsDir/NAME.sock is "socket:NAME" with Role.
type ContainerSocket struct {
	Name  string    `json:"name"`
	Role  string    `json:"role"`
	Added time.Time `json:"added"`
}

// socketBook is the file's format.
type socketBook struct {
	Sockets []ContainerSocket `json:"sockets"`
}

// validSocketName: letters, digits, '-', '_' and '.', starting with a
// letter or digit (never "." nor ".."), short enough for a socket path.
var validSocketName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`) })

// ValidateSocketName checks a per-container socket's name.
func ValidateSocketName(name string) error {
	if !validSocketName().MatchString(name) {
		return fmt.Errorf("invalid socket name %q: want 1 to 63 letters, digits, '-', '_' and '.', starting with a letter or digit", name)
	}
	return nil
}

// SocketPath is the path of the per-container socket name in dir.
func SocketPath(dir, name string) string { return filepath.Join(dir, name+".sock") }

// ReadSockets reads the book at path; a missing book has no socket. A
// book that is not what SocketsFile writes is an error naming the file.
func ReadSockets(path string) ([]ContainerSocket, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the gateway's sockets %q: %w", path, err)
	}
	var b socketBook
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("read the gateway's sockets %q: %w", path, err)
	}
	seen := map[string]bool{}
	for i, s := range b.Sockets {
		if err := ValidateSocketName(s.Name); err != nil {
			return nil, fmt.Errorf("read the gateway's sockets %q: sockets[%d]: %w", path, i, err)
		}
		if s.Role == "" {
			return nil, fmt.Errorf("read the gateway's sockets %q: sockets[%d] (%s): no role", path, i, s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("read the gateway's sockets %q: socket %q is listed twice", path, s.Name)
		}
		seen[s.Name] = true
	}
	return b.Sockets, nil
}

// AddSocket puts s in the book at path, or gives an existing socket of
// that name s's role; it returns the role it had ("" for a new one).
func AddSocket(path string, s ContainerSocket) (string, error) {
	if err := ValidateSocketName(s.Name); err != nil {
		return "", err
	}
	if s.Role == "" {
		return "", fmt.Errorf("socket %q: no role", s.Name)
	}
	list, err := ReadSockets(path)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(list, func(x ContainerSocket) bool { return x.Name == s.Name })
	if i >= 0 {
		old := list[i].Role
		list[i].Role = s.Role
		return old, writeSockets(path, list)
	}
	list = append(list, s)
	slices.SortFunc(list, func(a, b ContainerSocket) int { return strings.Compare(a.Name, b.Name) })
	return "", writeSockets(path, list)
}

// RemoveSocket takes name out of the book at path and returns it; an
// unknown name is an error naming it, and nothing is written.
func RemoveSocket(path, name string) (ContainerSocket, error) {
	list, err := ReadSockets(path)
	if err != nil {
		return ContainerSocket{}, err
	}
	i := slices.IndexFunc(list, func(x ContainerSocket) bool { return x.Name == name })
	if i < 0 {
		return ContainerSocket{}, fmt.Errorf("no socket %q in %s", name, path)
	}
	s := list[i]
	return s, writeSockets(path, slices.Delete(list, i, i+1))
}

func writeSockets(path string, list []ContainerSocket) error {
	if list == nil {
		list = []ContainerSocket{}
	}
	data, err := json.MarshalIndent(socketBook{Sockets: list}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}
