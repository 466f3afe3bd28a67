// Package dockercontext writes Docker CLI contexts for a dtls bundle, in the
// Docker CLI's own context store format (docker/cli cli/context/store):
//
//	$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json
//	$DOCKER_CONFIG/contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem
//
// and the ".dockercontext" export format that `docker context import`
// reads: a tar holding meta.json and tls/docker/{ca,cert,key}.pem.
//
// It writes files directly rather than running the docker CLI, so that
// dtls works on a machine where docker is installed later, and so that the
// write is atomic: the TLS directory first, then meta.json, which is what
// makes the context exist.
package dockercontext

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// nameRE is the Docker CLI's rule for context names (docker/cli
// cli/command/context/create.go, validateContextName's restrictedNamePattern).
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`) })

// ValidateName accepts the names the Docker CLI accepts for a context:
// "default" is reserved by the CLI for the environment-based context.
func ValidateName(name string) error {
	if name == "default" {
		return fmt.Errorf("invalid context name %q: reserved by the Docker CLI", name)
	}
	if !nameRE().MatchString(name) {
		return fmt.Errorf("invalid context name %q: use at least two of letters, digits, '_', '.', '+', '-', starting with a letter or digit", name)
	}
	return nil
}

// Context is a Docker context for a TLS endpoint.
type Context struct {
	// Name is the context's name.
	Name string
	// Description is shown by `docker context ls`.
	Description string
	// Host is the daemon URL, tcp://HOST:PORT.
	Host string
	// CA, Cert and Key are the PEM contents of ca.pem, cert.pem, key.pem.
	CA, Cert, Key []byte
	// Bundle is the bundle directory the context was made from, recorded
	// in its metadata so that a renewed bundle refreshes it.
	Bundle string
}

// bundleKey is the metadata key naming the bundle a context came from.
// docker/cli keeps unknown metadata keys as they are.
const bundleKey = "dtls.bundle"

// meta is docker/cli's store.Metadata with the "docker" endpoint's
// EndpointMeta (docker/cli cli/context/docker/load.go) and the CLI's
// DockerContext metadata (Description).
type meta struct {
	Name      string                  `json:"Name"`
	Metadata  map[string]any          `json:"Metadata"`
	Endpoints map[string]endpointMeta `json:"Endpoints"`
}

type endpointMeta struct {
	Host          string `json:"Host"`
	SkipTLSVerify bool   `json:"SkipTLSVerify"`
}

func (c Context) metaJSON() ([]byte, error) {
	md := map[string]any{"Description": c.Description}
	if c.Bundle != "" {
		md[bundleKey] = c.Bundle
	}
	return json.Marshal(meta{
		Name:      c.Name,
		Metadata:  md,
		Endpoints: map[string]endpointMeta{"docker": {Host: c.Host}},
	})
}

// MadeFrom lists the contexts of configDir made from the bundle directory
// dir (by 'dtls context create'), by name.
func MadeFrom(configDir, dir string) ([]Context, error) {
	metas, err := filepath.Glob(filepath.Join(configDir, "contexts", "meta", "*", "meta.json"))
	if err != nil {
		return nil, err
	}
	var out []Context
	for _, p := range metas {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("docker context %q: %w", p, err)
		}
		var m meta
		if json.Unmarshal(b, &m) != nil {
			continue // not one of ours to read
		}
		src, _ := m.Metadata[bundleKey].(string)
		if src != dir || m.Name == "" {
			continue
		}
		desc, _ := m.Metadata["Description"].(string)
		out = append(out, Context{Name: m.Name, Description: desc, Host: m.Endpoints["docker"].Host, Bundle: src})
	}
	return out, nil
}

// ID is the directory name the Docker CLI uses for a context: the hex
// SHA-256 of its name (docker/cli store.contextdirOf).
func ID(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

// ConfigDir returns the Docker CLI's configuration directory: $DOCKER_CONFIG
// when set, else ~/.docker (docker/cli cli/config.Dir).
func ConfigDir(getenv func(string) string) (string, error) {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Abs(d)
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("docker config directory: %w (set DOCKER_CONFIG)", err)
		}
	}
	return filepath.Join(home, ".docker"), nil
}

// Paths returns the meta.json file and the TLS directory of the context
// name in configDir.
func Paths(configDir, name string) (metaFile, tlsDir string) {
	id := ID(name)
	return filepath.Join(configDir, "contexts", "meta", id, "meta.json"),
		filepath.Join(configDir, "contexts", "tls", id)
}

// ExistsError reports a context that already exists.
type ExistsError struct{ Name, Path string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("docker context %q already exists (%s)", e.Name, e.Path)
}

// Exists reports whether the context name exists in configDir.
func Exists(configDir, name string) (bool, error) {
	m, _ := Paths(configDir, name)
	_, err := os.Stat(m)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Create writes c into the context store of configDir with Write. An
// existing context of the same name is an *ExistsError unless force.
func Create(configDir string, c Context, force bool) error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	metaFile, _ := Paths(configDir, c.Name)
	if ok, err := Exists(configDir, c.Name); err != nil {
		return fmt.Errorf("docker context %q: %w", c.Name, err)
	} else if ok && !force {
		return &ExistsError{Name: c.Name, Path: metaFile}
	}
	return Write(configDir, c)
}

// tlsFiles are a context's TLS files, as the Docker CLI's store lays them
// out (docker/cli cli/context/store: tls/<id>/docker/{ca,cert,key}.pem),
// with the modes of its own store: the key 0600, the rest 0644.
func (c Context) tlsFiles() []atomicfile.File {
	return []atomicfile.File{
		{Name: "docker/ca.pem", Data: c.CA, Mode: 0o644},
		{Name: "docker/cert.pem", Data: c.Cert, Mode: 0o644},
		{Name: "docker/key.pem", Data: c.Key, Mode: 0o600},
	}
}

// Write is the one writer of a Docker context: it writes c into the
// context store of configDir, replacing one of the same name. The TLS
// directory is replaced whole, in one step (atomicfile.WriteDir): the
// Docker CLI reads ca.pem, cert.pem and key.pem one after the other, and
// a kill at any instant must not leave it a new certificate beside the
// old key. meta.json, which makes the context exist, is written
// (atomically) after the TLS files, and only when it changes.
// Directories are 0700.
func Write(configDir string, c Context) error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	metaFile, tlsDir := Paths(configDir, c.Name)
	for _, d := range []string{filepath.Join(configDir, "contexts"), filepath.Dir(tlsDir), filepath.Dir(metaFile)} {
		if err := atomicfile.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// What a killed Write left: its temporary directory may hold a key.
	if err := atomicfile.RecoverDir(tlsDir); err != nil {
		return err
	}
	if err := atomicfile.WriteDir(tlsDir, c.tlsFiles(), 0o700); err != nil {
		return fmt.Errorf("docker context %q: %w", c.Name, err)
	}
	if c.metaCurrent(metaFile) {
		return nil
	}
	data, err := c.metaJSON()
	if err != nil {
		return err
	}
	return atomicfile.Write(metaFile, data, 0o644)
}

// metaCurrent reports whether metaFile already says what c does.
func (c Context) metaCurrent(metaFile string) bool {
	data, err := c.metaJSON()
	if err != nil {
		return false
	}
	b, err := os.ReadFile(metaFile)
	return err == nil && bytes.Equal(b, data)
}

// current reports whether the TLS files of context c in configDir are
// exactly c's.
func (c Context) current(configDir string) bool {
	_, tlsDir := Paths(configDir, c.Name)
	for _, f := range c.tlsFiles() {
		b, err := os.ReadFile(filepath.Join(tlsDir, filepath.FromSlash(f.Name)))
		if err != nil || !bytes.Equal(b, f.Data) {
			return false
		}
	}
	return c.metaCurrent(filepath.Join(configDir, "contexts", "meta", ID(c.Name), "meta.json"))
}

// Source is a bundle's content as its contexts hold it.
type Source struct {
	// Dir is the bundle directory; the contexts made from it record it
	// as it resolves (symbolic links followed).
	Dir string
	// Host is the daemon URL (dtls.json docker_host).
	Host string
	// CA, Cert and Key are the PEM of ca.pem, cert.pem and key.pem.
	CA, Cert, Key []byte
}

// Resolved is dir as the contexts made from it record it: absolute,
// symbolic links followed when it exists.
func Resolved(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		dir = a
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return dir
}

// Refresh is the one refresh of the contexts made from a bundle ('dtls
// context create', 'dtls enroll --context'): each one, and each of add
// (a context to make from the bundle, named and described), gets src's
// files and daemon URL with Write, unless it holds them already. It
// returns the names it wrote. A context a killed run left behind is
// brought up to date by the next Refresh. Import, enroll, renew's import
// and the agent call it after the bundle is in place.
func Refresh(configDir string, src Source, add ...Context) ([]string, error) {
	dir := Resolved(src.Dir)
	ctxs, err := MadeFrom(configDir, dir)
	if err != nil {
		return nil, fmt.Errorf("find the docker contexts made from %s: %w", src.Dir, err)
	}
	for _, a := range add {
		if !slices.ContainsFunc(ctxs, func(c Context) bool { return c.Name == a.Name }) {
			ctxs = append(ctxs, a)
		}
	}
	var done []string
	for _, c := range ctxs {
		c.CA, c.Cert, c.Key, c.Host, c.Bundle = src.CA, src.Cert, src.Key, src.Host, dir
		if c.current(configDir) {
			continue
		}
		if err := Write(configDir, c); err != nil {
			return done, &RefreshError{Name: c.Name, Bundle: src.Dir, Err: err}
		}
		done = append(done, c.Name)
	}
	return done, nil
}

// RefreshError is a context Refresh failed to write.
type RefreshError struct {
	Name, Bundle string
	Err          error
}

func (e *RefreshError) Error() string {
	return fmt.Sprintf("refresh docker context %q made from %s: %v", e.Name, e.Bundle, e.Err)
}
func (e *RefreshError) Unwrap() error { return e.Err }

// Export writes c to w in the format of `docker context export` (docker/cli
// cli/context/store.Export), which `docker context import NAME FILE` reads:
// an uncompressed tar of meta.json, then the directories tls and
// tls/docker, then tls/docker/{ca,cert,key}.pem.
func Export(w io.Writer, c Context) error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	data, err := c.metaJSON()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mt := time.Unix(0, 0)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime = mt
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	steps := []struct {
		h    *tar.Header
		body []byte
	}{
		{&tar.Header{Name: "meta.json", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}, data},
		{&tar.Header{Name: "tls", Mode: 0o700, Typeflag: tar.TypeDir}, nil},
		{&tar.Header{Name: "tls/docker", Mode: 0o700, Typeflag: tar.TypeDir}, nil},
		{&tar.Header{Name: "tls/docker/ca.pem", Mode: 0o600, Size: int64(len(c.CA)), Typeflag: tar.TypeReg}, c.CA},
		{&tar.Header{Name: "tls/docker/cert.pem", Mode: 0o600, Size: int64(len(c.Cert)), Typeflag: tar.TypeReg}, c.Cert},
		{&tar.Header{Name: "tls/docker/key.pem", Mode: 0o600, Size: int64(len(c.Key)), Typeflag: tar.TypeReg}, c.Key},
	}
	for _, s := range steps {
		if err := add(s.h, s.body); err != nil {
			return fmt.Errorf("export docker context %q: %w", c.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export docker context %q: %w", c.Name, err)
	}
	return nil
}
