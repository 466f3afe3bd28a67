package authority

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/dirwatch"
	"github.com/dtls-tool/dtls/pki"
)

// Reader answers a long-running component's questions about the inventory
// (who holds this certificate, with which role, is it revoked) without the
// state directory's lock: it opens the database read-only (SQLite WAL), so
// that dtls commands keep writing while it reads, and it sees each change
// as soon as the command that made it has committed.
type Reader struct {
	Dir   string
	store *store.Store
	now   func() time.Time
	// opened is the database file the store opened (its device and
	// inode): SQLite keeps reading that file after it was renamed or
	// removed, so a file put in its place (a backup restored, a new
	// 'dtls init') is only seen by opening it again.
	opened fileStamp

	// The answers of Identify are kept until the inventory changes:
	// every commit changes the database's or its write-ahead log's size
	// or modification time, and a stat of both costs microseconds where
	// the two queries cost tens. The two are stat'ed again only when the
	// state directory's watch says one may have changed (dirwatch: a
	// read(2) where the two stat(2) were a tenth of what the gateway
	// spends on a call). Answers are also dropped after identifyTTL
	// whatever the files say, so that a change is seen within that time
	// even on a filesystem with coarse timestamps.
	mu      sync.Mutex
	watch   *dirwatch.Watch
	last    [2]fileStamp // the files' stamps when last stat'ed
	stamp   [2]fileStamp // the stamps the answers are of
	checked time.Time
	answers map[string]identity
}

type identity struct {
	user, role string
	err        error
}

// identifyTTL bounds how long an answer of Identify is kept.
const identifyTTL = 500 * time.Millisecond

type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
	ok       bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ok: true}
	s.dev, s.ino = fileID(fi)
	return s
}

// sameFile reports whether two stamps are of one file (device and inode;
// size and time may differ).
func (s fileStamp) sameFile(o fileStamp) bool {
	return s.ok && o.ok && s.dev == o.dev && s.ino == o.ino
}

// ErrReplaced is returned by Reader.Identify when the inventory file it
// opened is no longer the one at its path (removed, or another file put in
// its place): the Reader must be opened again (LazyReader does).
var ErrReplaced = errors.New("the inventory file was replaced or removed since it was opened")

// OpenReader opens the inventory of a state directory for reading.
func OpenReader(stateDir string) (*Reader, error) {
	db := filepath.Join(stateDir, DBFile)
	// Watched, then stamped before it is opened: a file replaced in
	// between makes the first Identify find another file, and open it
	// again.
	watch := dirwatch.Contents(stateDir, DBFile, DBFile+"-wal")
	last := [2]fileStamp{stampOf(db), stampOf(db + "-wal")}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		watch.Close()
		return nil, hint(err, "point --state-dir at the directory 'dtls init' used")
	}
	return &Reader{Dir: stateDir, store: st, now: time.Now, opened: last[0], watch: watch, last: last}, nil
}

// Close closes the inventory.
func (r *Reader) Close() error {
	r.watch.Close()
	return r.store.Close()
}

// stamps are the database's and its log's stamps now; r.mu is held.
func (r *Reader) stamps() [2]fileStamp {
	if r.watch.Changed() {
		db := filepath.Join(r.Dir, DBFile)
		r.last = [2]fileStamp{stampOf(db), stampOf(db + "-wal")}
	}
	return r.last
}

// Identify says who holds a client certificate presented to the daemon: the
// name and the role recorded for it ("" for the policy's default). It
// refuses, saying why, a certificate the inventory does not hold (by serial
// AND content, so another CA's certificate with the same serial is not
// taken for it), one it holds as revoked or superseded, an expired one, and
// one that is not a client certificate.
func (r *Reader) Identify(cert *x509.Certificate) (user, role string, err error) {
	now := r.now()
	// By serial and content: the content decides, the serial is what the
	// inventory is asked for.
	key := cert.SerialNumber.String() + " " + string(cert.Raw)
	r.mu.Lock()
	stamp := r.stamps()
	if !stamp[0].sameFile(r.opened) {
		r.mu.Unlock()
		return "", "", fmt.Errorf("%q: %w", filepath.Join(r.Dir, DBFile), ErrReplaced)
	}
	if stamp != r.stamp || now.Sub(r.checked) > identifyTTL || now.Before(r.checked) {
		r.stamp, r.checked, r.answers = stamp, now, map[string]identity{}
	}
	if a, ok := r.answers[key]; ok {
		r.mu.Unlock()
		return a.user, a.role, a.err
	}
	r.mu.Unlock()
	user, role, err = r.identify(cert)
	r.mu.Lock()
	if r.stamp == stamp && len(r.answers) < 4096 {
		r.answers[key] = identity{user: user, role: role, err: err}
	}
	r.mu.Unlock()
	return user, role, err
}

// SupersededError refuses a certificate a renewal replaced, and that is
// not revoked: its holder has a newer one. Superseded says so to the
// gateway, which refuses it from the next request on but lets its open
// streams run (a revocation cuts them).
type SupersededError struct{ Name, Serial string }

func (e *SupersededError) Error() string {
	return fmt.Sprintf("certificate %q serial %s is superseded by a newer one", e.Name, e.Serial)
}

// Superseded reports that the refusal is for a renewal alone.
func (e *SupersededError) Superseded() bool { return true }

func (r *Reader) identify(cert *x509.Certificate) (user, role string, err error) {
	serial := pki.Serial(cert)
	rec, err := r.store.Get(serial)
	if err != nil {
		return "", "", fmt.Errorf("read the inventory: %w", err)
	}
	if rec == nil {
		return "", "", fmt.Errorf("certificate %q serial %s is not in the inventory", cert.Subject.CommonName, serial)
	}
	if !sameCertificate(rec.PEM, cert) {
		return "", "", fmt.Errorf("certificate %q serial %s is not the one the inventory holds under that serial", cert.Subject.CommonName, serial)
	}
	switch {
	case rec.Kind != store.KindClient:
		return "", "", fmt.Errorf("certificate %q serial %s is a %s certificate, not a client certificate", rec.Name, serial, rec.Kind)
	case rec.Status == store.StatusRevoked:
		return "", "", fmt.Errorf("certificate %q serial %s is revoked", rec.Name, serial)
	case !r.now().Before(rec.NotAfter):
		// Before superseded: an expired certificate's open streams are
		// cut, a superseded one's are not.
		return "", "", fmt.Errorf("certificate %q serial %s expired on %s", rec.Name, serial, rec.NotAfter.UTC().Format(time.RFC3339))
	case rec.Status == store.StatusSuperseded:
		return "", "", &SupersededError{Name: rec.Name, Serial: serial}
	case rec.Status != store.StatusGood:
		return "", "", fmt.Errorf("certificate %q serial %s has status %q", rec.Name, serial, rec.Status)
	}
	role, err = r.store.Role(rec.Name)
	if err != nil {
		return "", "", err
	}
	return rec.Name, role, nil
}

func sameCertificate(recPEM string, cert *x509.Certificate) bool {
	b, _ := pem.Decode([]byte(recPEM))
	return b != nil && bytes.Equal(b.Bytes, cert.Raw)
}

// validRole is a role name: what a policy file can name.
var validRole = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`) })

// ValidateRole checks a role name's syntax (whether a policy defines it is
// the caller's check).
func ValidateRole(role string) error {
	if !validRole().MatchString(role) {
		return fmt.Errorf("invalid role %q: want lowercase letters, digits, '-' and '_', starting with a letter", role)
	}
	return nil
}

// ErrNoSuchClient is returned by SetRole for a name no client certificate
// has.
var ErrNoSuchClient = errors.New("no client certificate has that name")

// SetRole records the authorization role of a client certificate holder,
// without issuing a new certificate; "" removes it (the policy's default
// role applies). The plugin applies it from the next request on, to every
// certificate of the name: the change lists the good ones (none when the
// name has none left, or already had that role).
func (a *Authority) SetRole(name, role string, now time.Time) (*RoleChange, error) {
	if role != "" {
		if err := ValidateRole(role); err != nil {
			return nil, err
		}
	}
	recs, err := a.Store.ByName(name)
	if err != nil {
		return nil, err
	}
	client := false
	for _, r := range recs {
		client = client || r.Kind == store.KindClient
	}
	if !client {
		return nil, hint(fmt.Errorf("%q: %w", name, ErrNoSuchClient), "run 'dtls list' to see names")
	}
	cur, err := a.Store.Role(name)
	if err != nil {
		return nil, err
	}
	c := &RoleChange{Name: name, From: cur, To: role}
	if cur != role {
		if c.Serials, err = a.goodClients(name, now); err != nil {
			return nil, err
		}
	}
	return c, a.Store.Apply(store.Change{Roles: map[string]string{name: role}})
}

// Role is the role recorded for a holder ("" for the default).
func (a *Authority) Role(name string) (string, error) { return a.Store.Role(name) }

// RoleOf is the role recorded for a holder ("" for the default).
func (r *Reader) RoleOf(name string) (string, error) { return r.store.Role(name) }

// LazyReader is a Reader opened on first use, and opened again after a
// failure (at most once a second): a plugin started before 'dtls init'
// made the inventory, or while it was being restored from a backup, denies
// every certificate while it cannot read it, then follows it without a
// restart. It also opens the inventory again when the file was replaced
// (moved aside and restored from a backup, removed and made again by
// 'dtls init', the state directory renamed and made again): the Reader
// notices it with the stat it makes for its cache anyway, so the check
// costs no system call of its own.
type LazyReader struct {
	Dir string

	mu    sync.Mutex
	r     *Reader
	tried time.Time
	err   error
}

// lazyRetry is how often a LazyReader tries to open the inventory again.
const lazyRetry = time.Second

// NewLazyReader returns a LazyReader of a state directory; it opens nothing
// yet.
func NewLazyReader(stateDir string) *LazyReader { return &LazyReader{Dir: stateDir} }

func (l *LazyReader) reader() (*Reader, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.r != nil {
		return l.r, nil
	}
	if !l.tried.IsZero() && time.Since(l.tried) < lazyRetry {
		return nil, l.err
	}
	l.tried = time.Now()
	l.r, l.err = OpenReader(l.Dir)
	if l.err != nil {
		l.err = fmt.Errorf("the inventory cannot be read: %w", l.err)
	}
	return l.r, l.err
}

// Identify is Reader.Identify, or the reason the inventory cannot be read.
func (l *LazyReader) Identify(cert *x509.Certificate) (user, role string, err error) {
	r, err := l.reader()
	if err != nil {
		return "", "", err
	}
	user, role, err = r.Identify(cert)
	if !errors.Is(err, ErrReplaced) {
		return user, role, err
	}
	l.drop(r)
	if r, err = l.reader(); err != nil {
		return "", "", err
	}
	return r.Identify(cert)
}

// drop closes r, found replaced, unless another call has dropped it
// already; the next reader() opens the file at once.
func (l *LazyReader) drop(r *Reader) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.r != r {
		return
	}
	// A call still reading through r gets an error (a denial), not an
	// answer from the replaced file.
	r.Close()
	l.r, l.tried = nil, time.Time{}
}

// Close closes the inventory if it was opened.
func (l *LazyReader) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.r == nil {
		return nil
	}
	err := l.r.Close()
	l.r = nil
	return err
}
