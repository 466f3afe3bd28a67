// Package agent owns a client bundle enrolled with an online CA (`dtls
// enroll`, `dtls agent`): the enrolment, with a key made here that never
// leaves the machine; the renewal through the CA over mutual TLS with the
// current certificate, each time with a new key, journaled so that a kill
// at any instant is finished by the next run; and the Docker contexts made
// from the bundle, which follow it.
//
// Like every library of dtls it never prints: it returns what it did, and
// reports the events of a long run to a function the caller gives.
package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/pki"
)

// PendingKeyMode is the mode of a journaled key (PendingKeyFile, the
// enrolment's saved key): it is a private key.
const PendingKeyMode fs.FileMode = 0o600

// PendingKeyFile is the journal of a renewal, in the bundle directory: the
// new key, written (atomically, 0600) before the CA is asked to sign it.
// A run killed after that asks again for the same key, and the CA answers
// with the same successor (its renewal is idempotent for the key of the
// certificate that superseded the one presented). Installing the renewed
// bundle (bundle.InstallDir) removes it, in the same rename.
const PendingKeyFile = "pending-key.pem"

// recoverDir finishes or undoes what a killed install of the bundle dir
// left (atomicfile.RecoverDir); then removes the enrolment's saved key
// once the bundle holds it, and the temporary files of atomic writes of
// the journaled keys: one may hold a private key. The caller holds the
// lock on dir's parent.
func recoverDir(dir string) error {
	if err := atomicfile.RecoverDir(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	// The enrolment's journal (enrollKeyName): a killed atomic write of
	// it never reached its name, so its key was never sent; and a saved
	// key that the bundle holds is a finished enrolment's.
	keyPath := enrollKeyName(dir)
	for _, t := range tempsOf(parent, "."+filepath.Base(keyPath)+".tmp-") {
		if err := os.Remove(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %q left by an interrupted run: %w", t, err)
		}
	}
	if b, err := os.ReadFile(keyPath); err == nil {
		if k, err := pki.ParsePrivateKey(b); err == nil && installedKeyIs(dir, k) {
			if err := removePending(keyPath); err != nil {
				return err
			}
		}
	}
	// atomicfile's temporary files inside dir (of the pending key).
	for _, t := range tempsOf(dir, ".") {
		if !strings.Contains(filepath.Base(t), ".tmp-") {
			continue
		}
		if err := os.RemoveAll(t); err != nil {
			return fmt.Errorf("remove %q left by an interrupted run: %w", t, err)
		}
	}
	return nil
}

// tempsOf lists the entries of dir whose names start with prefix.
func tempsOf(dir, prefix string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}
