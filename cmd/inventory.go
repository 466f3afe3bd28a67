package cmd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

// State directory files of the inventory.
const (
	dbFile     = "dtls.db"
	lockFile   = "dtls.lock"
	journalDir = "journal"
	crlFile    = "crl.pem"
)

// lockState takes an exclusive flock on STATE_DIR/dtls.lock, held until the
// returned function is called or the process dies (the kernel drops it, so
// a kill -9 never leaves a stale lock). Every command that signs or writes
// records holds it, so parallel runs queue instead of interleaving.
func lockState(stateDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(stateDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %q: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// failPoint ends the process at a named point when DTLS_TEST_FAIL_AT says
// so: tests use it to check that a run killed there leaves nothing
// half-written and that the next run works. It exits at once, as a crash
// would: no deferred cleanup runs.
func failPoint(io IO, name string) {
	if io.Getenv != nil && io.Getenv("DTLS_TEST_FAIL_AT") == name {
		fmt.Fprintf(io.ErrOut, "dtls: injected failure at %s\n", name)
		os.Exit(97)
	}
}

// inventory is the open database plus the lock that guards it.
type inventory struct {
	*store.Store
	stateDir string
	unlock   func()
}

func (inv *inventory) Close() {
	inv.Store.Close()
	inv.unlock()
}

// openInventory locks the state directory, opens the database (importing
// an install made before the database existed), and finishes or undoes
// whatever a killed run left in the journal.
func openInventory(io IO, stateDir string) (*inventory, error) {
	if err := checkStateDir(stateDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, withHint(err, "run 'sudo dtls init' first, or point --state-dir at the directory it used")
		}
		return nil, err
	}
	unlock, err := lockState(stateDir)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(stateDir, dbFile))
	if err != nil {
		unlock()
		return nil, withHint(err, "restore %s from a backup; moved aside, it is replaced by a new inventory holding only the CA and the copies in %s/", filepath.Join(stateDir, dbFile), filepath.Join(stateDir, issuedDir))
	}
	inv := &inventory{Store: st, stateDir: stateDir, unlock: unlock}
	if st.Created {
		if err := inv.importExisting(); err != nil {
			inv.Close()
			return nil, err
		}
	}
	if err := inv.recover(io); err != nil {
		inv.Close()
		return nil, err
	}
	return inv, nil
}

// importExisting records what an install from before the database holds:
// the CA (STATE_DIR/ca.pem) and the copies in STATE_DIR/issued/SERIAL.pem.
// Of several certificates of one kind and name, the newest is good and the
// others are superseded.
func (inv *inventory) importExisting() error {
	var recs []store.Record
	caSerial := ""
	if b, err := os.ReadFile(filepath.Join(inv.stateDir, caCertFile)); err == nil {
		if c, err := pki.ParseCertificate(b); err == nil {
			caSerial = pki.Serial(c)
			recs = append(recs, store.FromCert(c, b, "ca", caSerial, inv.stateDir))
		}
	}
	srv, _ := readServer(inv.stateDir)
	paths, _ := filepath.Glob(filepath.Join(inv.stateDir, issuedDir, "*.pem"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("import %q: %w", p, err)
		}
		c, err := pki.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("import %q: %w", p, err)
		}
		kind := store.KindOf(c)
		path := ""
		if kind == "server" && srv != nil {
			path = filepath.Join(srv.CertsDir, serverCertFile)
		}
		r := store.FromCert(c, b, kind, caSerial, path)
		if caSerial != "" {
			if ca, err := pki.ParseCertificate(recs[0].PEMBytes()); err == nil && c.CheckSignatureFrom(ca) != nil {
				r.CASerial = ""
			}
		}
		recs = append(recs, r)
	}
	newest := map[string]int{}
	for i, r := range recs {
		k := r.Kind + "/" + r.Name
		if j, ok := newest[k]; !ok || r.NotBefore.After(recs[j].NotBefore) {
			newest[k] = i
		}
	}
	for i := range recs {
		if newest[recs[i].Kind+"/"+recs[i].Name] != i {
			recs[i].Status = store.StatusSuperseded
		}
	}
	return inv.Insert(recs, nil)
}

// ensureRecorded inserts a record unless its serial is already there.
func (inv *inventory) ensureRecorded(r store.Record) error {
	ok, err := inv.Has(r.Serial)
	if err != nil || ok {
		return err
	}
	return inv.Insert([]store.Record{r}, nil)
}

// issuance is one certificate on its way to disk and into the inventory.
type issuance struct {
	Record store.Record `json:"record"`
	// Supersedes is the serial of the certificate this one replaces.
	Supersedes string `json:"supersedes,omitempty"`
	// Bundle is a bundle directory written whole (client, issue-server).
	Bundle string `json:"bundle,omitempty"`
	// ServerCert and ServerKey are the daemon's files, written one by
	// one; the journal keeps the key so that a killed run is finished
	// rather than left with a key that does not match the certificate.
	ServerCert string `json:"server_cert,omitempty"`
	ServerKey  string `json:"server_key,omitempty"`
	KeyPEM     []byte `json:"key_pem,omitempty"`

	files   []bundleFile
	replace bool
}

type journal struct {
	Entries []*issuance `json:"entries"`
}

// commit writes issued certificates to disk and records them, in an order
// that a kill at any point cannot turn into a record without its files or a
// half-written bundle:
//
//  1. the journal (STATE_DIR/journal/ID.json, 0600) lists what is about to
//     be written;
//  2. each bundle is written to a temporary directory and renamed into
//     place (complete or absent); the daemon's server files are written
//     one by one;
//  3. the records go into the database in one transaction, with the
//     status changes (superseded) they bring;
//  4. the journal is removed.
//
// A run killed before 3 is repaired by the next one (recover): a bundle
// that made it into place is recorded, one that did not is cleaned away,
// and the daemon's server files are rolled forward. After 3, the journal
// is merely stale.
func (inv *inventory) commit(io IO, items []*issuance) error {
	if len(items) == 0 {
		return nil
	}
	dir := filepath.Join(inv.stateDir, journalDir)
	if err := atomicfile.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	jpath := filepath.Join(dir, hex.EncodeToString(id)+".json")
	if err := writeJSON(jpath, journal{items}, 0o600); err != nil {
		return err
	}
	failPoint(io, "after-journal")
	for i, it := range items {
		if err := it.writeFiles(); err != nil {
			// Undo the new bundles this run put in place; a
			// replacement (renew, --force) or a server file already
			// written cannot be undone (the old one is gone): record
			// it, so that no certificate is out without its record.
			inv.rollback(items[:i])
			if rerr := inv.recordLanded(items[:i+1]); rerr != nil {
				// The journal stays: the next run records them.
				return fmt.Errorf("%w (and recording what was written: %v)", err, rerr)
			}
			if it.ServerCert != "" {
				// The key may be written and the certificate not:
				// the journal stays, and the next run finishes both.
				return fmt.Errorf("%w (the next dtls run finishes writing %s)", err, it.ServerCert)
			}
			os.Remove(jpath)
			return err
		}
		failPoint(io, "after-bundle")
	}
	recs := make([]store.Record, len(items))
	changes := map[string]string{}
	for i, it := range items {
		recs[i] = it.Record
		if it.Supersedes != "" {
			changes[it.Supersedes] = store.StatusSuperseded
		}
	}
	if err := inv.Insert(recs, changes); err != nil {
		// The journal stays: replacements and server files are in
		// place and the next run records them (recover).
		inv.rollback(items)
		return err
	}
	failPoint(io, "after-record")
	if err := os.Remove(jpath); err != nil {
		return fmt.Errorf("remove journal: %w", err)
	}
	return nil
}

func (it *issuance) writeFiles() error {
	if it.Bundle != "" {
		return writeBundle(it.Bundle, it.files, it.replace)
	}
	if it.ServerCert != "" {
		if err := atomicfile.MkdirAll(filepath.Dir(it.ServerCert), 0o755); err != nil {
			return err
		}
		if err := atomicfile.Write(it.ServerKey, it.KeyPEM, keyMode); err != nil {
			return err
		}
		return atomicfile.Write(it.ServerCert, []byte(it.Record.PEM), certMode)
	}
	return nil
}

// recordLanded records, of items a failed run wrote, those still in place
// after rollback: replaced bundles and the daemon's server files.
func (inv *inventory) recordLanded(items []*issuance) error {
	var recs []store.Record
	changes := map[string]string{}
	for _, it := range items {
		landed := false
		switch {
		case it.Bundle != "":
			got, err := os.ReadFile(filepath.Join(it.Bundle, "cert.pem"))
			if err != nil {
				got, _ = os.ReadFile(filepath.Join(it.Bundle, serverCertFile))
			}
			landed = bytes.Equal(got, []byte(it.Record.PEM))
		case it.ServerCert != "":
			got, _ := os.ReadFile(it.ServerCert)
			landed = bytes.Equal(got, []byte(it.Record.PEM))
		}
		if landed {
			recs = append(recs, it.Record)
			if it.Supersedes != "" {
				changes[it.Supersedes] = store.StatusSuperseded
			}
		}
	}
	if len(recs) == 0 {
		return nil
	}
	return inv.Insert(recs, changes)
}

// rollback removes new bundles (not replacements) written by a failed run.
func (inv *inventory) rollback(items []*issuance) {
	for _, it := range items {
		if it.Bundle != "" && !it.replace {
			os.RemoveAll(it.Bundle)
		}
	}
}

// recover finishes or undoes every journal a killed run left behind.
func (inv *inventory) recover(io IO) error {
	paths, _ := filepath.Glob(filepath.Join(inv.stateDir, journalDir, "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read journal %q: %w", p, err)
		}
		var j journal
		if err := json.Unmarshal(b, &j); err != nil {
			// A journal is written atomically: this one is not ours.
			return fmt.Errorf("read journal %q: %w", p, err)
		}
		var recs []store.Record
		changes := map[string]string{}
		for _, it := range j.Entries {
			ok, err := inv.Has(it.Record.Serial)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
			landed := false
			switch {
			case it.Bundle != "":
				cleanTemp(it.Bundle)
				got, err := os.ReadFile(filepath.Join(it.Bundle, "cert.pem"))
				if err != nil {
					got, _ = os.ReadFile(filepath.Join(it.Bundle, serverCertFile))
				}
				landed = bytes.Equal(got, []byte(it.Record.PEM))
			case it.ServerCert != "":
				if err := it.writeFiles(); err != nil {
					return fmt.Errorf("finish interrupted server certificate %s: %w", it.ServerCert, err)
				}
				landed = true
			}
			if landed {
				recs = append(recs, it.Record)
				if it.Supersedes != "" {
					changes[it.Supersedes] = store.StatusSuperseded
				}
				fmt.Fprintf(io.ErrOut, "recovered from an interrupted run: recorded %s %q serial %s\n", it.Record.Kind, it.Record.Name, it.Record.Serial)
			}
		}
		if err := inv.Insert(recs, changes); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// cleanTemp removes the temporary directories writeBundle leaves when
// killed, and puts back a bundle that was moved aside for a replacement
// that never landed.
func cleanTemp(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*"))
	for _, t := range tmps {
		if strings.HasSuffix(t, ".old") {
			if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
				if os.Rename(t, dir) == nil {
					continue
				}
			}
		}
		os.RemoveAll(t)
	}
}

// displayStatus is a record's status as list shows it.
func displayStatus(r store.Record, now time.Time, window time.Duration) string {
	switch {
	case r.Status == store.StatusRevoked || r.Status == store.StatusSuperseded:
		return r.Status
	case !now.Before(r.NotAfter):
		return "expired"
	case r.NotAfter.Before(now.Add(window)):
		return "expiring"
	}
	return "valid"
}

// newestActive returns, of records, the newest good one of kind (any kind
// when kind is ""), or nil.
func newestActive(recs []store.Record, kind string) *store.Record {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].NotBefore.After(recs[j].NotBefore) })
	for i := range recs {
		if recs[i].Status == store.StatusGood && (kind == "" || recs[i].Kind == kind) {
			return &recs[i]
		}
	}
	return nil
}
