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
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

// Modes of what Install writes (bundle.Allowed has the files').
const (
	// DirMode is a bundle directory's mode: it holds a private key.
	DirMode fs.FileMode = 0o700
	// PendingKeyMode is the pending key's.
	PendingKeyMode fs.FileMode = 0o600
)

// PendingKeyFile is the journal of a renewal, in the bundle directory: the
// new key, written (atomically, 0600) before the CA is asked to sign it.
// A run killed after that asks again for the same key, and the CA answers
// with the same successor (its renewal is idempotent for the key of the
// certificate that superseded the one presented). Installing the renewed
// bundle removes it, in the same rename.
const PendingKeyFile = "pending-key.pem"

// Install writes files as the bundle directory dir, whole: they go to a
// fresh temporary directory next to dir (0700; key.pem 0600, the rest
// 0644), which then takes dir's place in one step (atomicfile.ReplaceDir).
// A reader sees the old bundle or the new one; anything else the old
// directory held, the pending key included, goes with it. The parent
// directory is made 0700 when missing; an existing one is left as it is.
func Install(dir string, files []bundle.File) error {
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.MkdirAll(parent, DirMode); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("bundle %q exists and is not a directory", dir)
	}
	own := make([]bundle.File, len(files))
	for i, f := range files {
		mode, ok := bundle.Allowed[f.Name]
		if !ok {
			return fmt.Errorf("write bundle %q: unexpected file %q", dir, f.Name)
		}
		own[i] = bundle.File{Name: f.Name, Data: f.Data, Mode: mode}
	}
	return bundle.WriteDir(dir, own)
}

// recoverDir finishes or undoes what a killed Install (or context refresh)
// left next to dir. Where the platform cannot swap two directories in one
// step, atomicfile.ReplaceDir moves dir to TMP.old first: when dir is
// missing, that is the directory as it was, and it is put back. Then every
// temporary directory and file of dir's (".NAME.tmp-*") is removed: one may
// hold a private key; so is the enrolment's saved key once the bundle holds
// it. The caller holds the lock on dir's parent.
func recoverDir(dir string) error {
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	temps := tempsOf(parent, "."+base+".tmp-")
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		for _, t := range temps {
			if strings.HasSuffix(t, ".old") {
				if err := os.Rename(t, dir); err != nil {
					return fmt.Errorf("put back %q from %q: %w", dir, t, err)
				}
				if err := atomicfile.SyncDir(parent); err != nil {
					return err
				}
				break
			}
		}
	}
	for _, t := range temps {
		if err := os.RemoveAll(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %q left by an interrupted run: %w", t, err)
		}
	}
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
