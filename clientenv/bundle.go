// Package clientenv owns the client side of dtls: the bundle directory a
// developer receives (ca.pem, cert.pem, key.pem and the dtls.json metadata)
// and the shell code that `dtls env` prints so that
//
//	eval "$(dtls env)"
//
// points the Docker CLI at the daemon with DOCKER_HOST, DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH, the variables documented in the Docker CLI reference
// ("Environment variables", https://docs.docker.com/reference/cli/docker/#environment-variables)
// and set in the same way by docker-machine's `env` command
// (docker/machine commands/env.go).
//
// `dtls env` runs in every shell start-up, so this package is deliberately
// cheap: standard library only, no certificate parsing, a handful of stat
// calls and one small JSON file read. It never prints and never exits; it
// takes io.Writers and returns errors, and the cmd layer does the rest.
package clientenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MetaFile is the name of the metadata file in a bundle directory.
const MetaFile = "dtls.json"

// EnvCertPath is the environment variable that overrides the default bundle
// directory (see CertPath). It is dtls's own variable rather than
// DOCKER_CERT_PATH because DOCKER_CERT_PATH is an output of `dtls env`:
// reading it back would make a second `dtls env` in a shell follow whatever
// the first one set.
const EnvCertPath = "DTLS_CERT_PATH"

// BundleFiles are the files a bundle must hold. The names are the ones the
// Docker CLI reads from DOCKER_CERT_PATH ("ca.pem", "cert.pem", "key.pem";
// see "Secure by default" / "Protect the Docker daemon socket" in the Docker
// docs, https://docs.docker.com/engine/security/protect-access/), so a bundle
// directory can be used as DOCKER_CERT_PATH as it is.
var BundleFiles = []string{CAFile, CertFile, KeyFile}

// The files of a bundle, by role: the CA certificates the daemon is
// verified with, the client certificate and its private key.
const (
	CAFile   = "ca.pem"
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Meta is what dtls records about a bundle, stored as MetaFile in the bundle
// directory. Unknown fields are ignored when reading so that a bundle written
// by a newer dtls still loads.
type Meta struct {
	// Name is the client name, the CN of the client certificate.
	Name string `json:"name"`
	// DockerHost is the DOCKER_HOST value, e.g. "tcp://srv.example.com:2376".
	DockerHost string `json:"docker_host"`
	// Server is the name of the server the bundle is for.
	Server string `json:"server"`
	// NotAfter is the client certificate's expiry, recorded here so that
	// callers can warn about it without parsing the certificate.
	NotAfter time.Time `json:"not_after"`
	// Serial is the hex serial number of the client certificate.
	Serial string `json:"serial"`
	// CAURL is the online CA the bundle was enrolled with (`dtls enroll`),
	// which `dtls agent` renews it through; empty for a bundle from a
	// local CA.
	CAURL string `json:"ca_url,omitempty"`
}

// Bundle is a loaded bundle directory.
type Bundle struct {
	// Dir is the absolute, cleaned path of the bundle directory. It is what
	// DOCKER_CERT_PATH is set to, and it must be absolute because the Docker
	// CLI resolves a relative DOCKER_CERT_PATH against whatever directory the
	// user happens to be in when running docker later.
	Dir string
	// Meta is the content of the bundle's MetaFile.
	Meta Meta
}

// missingError reports a bundle directory or file that does not exist. It
// unwraps to fs.ErrNotExist so that callers can add a hint with errors.Is.
type missingError struct {
	dir, path string
}

func (e *missingError) Error() string {
	if e.path == e.dir {
		return fmt.Sprintf("bundle %q: no such directory", e.dir)
	}
	return fmt.Sprintf("bundle %q: missing %q", e.dir, e.path)
}

func (e *missingError) Unwrap() error { return fs.ErrNotExist }

// LoadBundle loads the bundle in dir. It checks that dir is a directory that
// holds every file of BundleFiles and MetaFile, parses MetaFile, and returns
// the bundle with Dir made absolute. Errors name the absolute path involved,
// e.g. `bundle "/x": missing "/x/key.pem"`; a missing directory or file
// matches fs.ErrNotExist with errors.Is.
//
// LoadBundle does not parse the certificates: it runs on every shell
// start-up, and the Docker CLI reports a bad certificate itself.
func LoadBundle(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &missingError{dir: abs, path: abs}
	case err != nil:
		return nil, fmt.Errorf("bundle %q: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("bundle %q: not a directory", abs)
	}
	for _, name := range BundleFiles {
		p := filepath.Join(abs, name)
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, &missingError{dir: abs, path: p}
		case err != nil:
			return nil, fmt.Errorf("bundle %q: %w", abs, err)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("bundle %q: %q is not a regular file", abs, p)
		}
	}
	metaPath := filepath.Join(abs, MetaFile)
	data, err := os.ReadFile(metaPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &missingError{dir: abs, path: metaPath}
	case err != nil:
		return nil, fmt.Errorf("bundle %q: %w", abs, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read bundle metadata %q: %w", metaPath, describeJSONError(data, err))
	}
	// Checked here, where every command reads a bundle, and not only at
	// import: a directory copied into the store (scp -r, then 'dtls
	// use') reached 'dtls env' and the Docker contexts unchecked (found
	// by a red team).
	if m.DockerHost != "" {
		if _, _, err := ParseDockerHost(m.DockerHost); err != nil {
			return nil, fmt.Errorf("bundle metadata %q: docker_host: %w", metaPath, err)
		}
	}
	if m.CAURL != "" {
		if err := CheckCAURL(m.CAURL); err != nil {
			return nil, fmt.Errorf("bundle metadata %q: ca_url: %w", metaPath, err)
		}
	}
	return &Bundle{Dir: abs, Meta: m}, nil
}

// MarshalMeta returns the content of MetaFile for m: indented JSON with a
// trailing newline, so the file reads well with cat and diffs cleanly.
func MarshalMeta(m Meta) ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode bundle metadata: %w", err)
	}
	return append(data, '\n'), nil
}

// describeJSONError turns encoding/json's byte offsets into a line and
// column, which is what a person editing dtls.json needs.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 {
		// Not a syntax or type error but a bad value, e.g. a not_after
		// that is not RFC 3339: the error says which.
		return err
	}
	// Offset counts the bytes read before the error was noticed, so the
	// offending byte is the one before it.
	i := min(max(int(off)-1, 0), len(data))
	line, col := 1, 1
	for _, c := range data[:i] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}
