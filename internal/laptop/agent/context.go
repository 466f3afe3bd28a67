package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
)

// Context files, as the Docker CLI's context store lays them out
// (docker/cli cli/context/store: tls/<id>/docker/{ca,cert,key}.pem).
var contextFiles = []struct {
	name string
	mode os.FileMode
}{{"ca.pem", 0o644}, {"cert.pem", 0o644}, {"key.pem", 0o600}}

// WriteContext writes the Docker context c into configDir like
// dockercontext.Create, but replaces its TLS directory whole, in one step
// (atomicfile.ReplaceDir): the Docker CLI reads ca.pem, cert.pem and
// key.pem one after the other, and must never get a new certificate with
// the old key. meta.json, which makes the context exist, is written
// (atomically) after the TLS files, and only when it changes.
func WriteContext(configDir string, c dockercontext.Context) error {
	if err := dockercontext.ValidateName(c.Name); err != nil {
		return err
	}
	metaFile, tlsDir := dockercontext.Paths(configDir, c.Name)
	for _, d := range []string{filepath.Join(configDir, "contexts"), filepath.Join(configDir, "contexts", "tls"), filepath.Dir(metaFile)} {
		if err := atomicfile.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := recoverDir(tlsDir); err != nil {
		return err
	}
	if err := writeTLSDir(tlsDir, c); err != nil {
		return fmt.Errorf("docker context %q: %w", c.Name, err)
	}
	if metaCurrent(configDir, c) {
		return nil
	}
	// A new context, or one whose daemon URL or description changed:
	// Create writes meta.json last. It writes the TLS files again too, one
	// by one, with the content they hold already, so no reader sees a mix.
	return dockercontext.Create(configDir, c, true)
}

// metaCurrent reports whether the context's meta.json already says what c
// does: its name, daemon URL, description and bundle.
func metaCurrent(configDir string, c dockercontext.Context) bool {
	if c.Bundle == "" {
		return false
	}
	made, err := dockercontext.MadeFrom(configDir, c.Bundle)
	if err != nil {
		return false
	}
	for _, m := range made {
		if m.Name == c.Name {
			return m.Host == c.Host && m.Description == c.Description
		}
	}
	return false
}

func writeTLSDir(tlsDir string, c dockercontext.Context) (err error) {
	tmp, err := os.MkdirTemp(filepath.Dir(tlsDir), "."+filepath.Base(tlsDir)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	ep := filepath.Join(tmp, "docker")
	if err := os.Mkdir(ep, 0o700); err != nil {
		return err
	}
	data := map[string][]byte{"ca.pem": c.CA, "cert.pem": c.Cert, "key.pem": c.Key}
	for _, f := range contextFiles {
		if err := atomicfile.Write(filepath.Join(ep, f.name), data[f.name], f.mode); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := atomicfile.ReplaceDir(tmp, tlsDir); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(tlsDir))
}

// contextCurrent reports whether the TLS files of context name in
// configDir are exactly ca, cert and key.
func contextCurrent(configDir, name string, ca, cert, key []byte) bool {
	_, tlsDir := dockercontext.Paths(configDir, name)
	want := map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": key}
	for _, f := range contextFiles {
		b, err := os.ReadFile(filepath.Join(tlsDir, "docker", f.name))
		if err != nil || !bytes.Equal(b, want[f.name]) {
			return false
		}
	}
	return true
}
