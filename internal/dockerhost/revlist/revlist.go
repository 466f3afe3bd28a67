// Package revlist follows the revocation list of the fleet's online CA for
// a Docker host's authorization plugin. A host enrolled with the CA (`dtls
// init --ca-url`) has no copy of the fleet's inventory: what it knows of
// revocations is the CRL the CA signs and serves at fleet.PathCRL. A
// Follower fetches that list every few seconds, accepts it only when the
// fleet CA signed it and it is not older than the one in force, keeps the
// last good one on disk so that a restart keeps enforcing it, and answers
// the plugin's question for every API call: is this client certificate of
// the fleet CA still good, and with which role.
//
// dockerd itself checks no CRL (moby#27778): without the plugin, a revoked
// certificate of the fleet works until it expires (24 h,
// fleet.DefaultClientValidity).
package revlist

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Files the Follower keeps in its CacheDir (the host's state directory).
const (
	// CacheFile is the last good revocation list, DER, exactly as the CA
	// served it. It is public (the CA serves it to anyone) and signed, so
	// it is 0644 like a certificate.
	CacheFile = "fleet-crl.der"
	// StatusFile is the Follower's Status as JSON, rewritten after every
	// fetch, for `dtls audit`.
	StatusFile = "fleet-crl.json"

	CacheMode  fs.FileMode = 0o644
	StatusMode fs.FileMode = 0o644
)

const (
	// FetchTimeout bounds one fetch of the list, connection included.
	FetchTimeout = 10 * time.Second
	// MaxCRLBytes bounds what is read of an answer. An entry of the
	// online CA's list is about 53 bytes (a 20-byte serial, the time, the
	// reason): about 633 000 entries. The CA bounds the superseded
	// certificates it lists per certificate (caserver.MaxListedRenewals):
	// 100 000 clients at their worst make 15.9 MB, half of it, which
	// leaves room for the hosts' certificates and the revocations.
	MaxCRLBytes = 32 << 20
	// logEvery is how often a failure that goes on is repeated in the log
	// (a change of state is logged at once).
	logEvery = time.Minute
	// maxVerified bounds the cache of verified certificates.
	maxVerified = 4096
)

// reasonSuperseded is the CRL reason code of a certificate replaced by a
// renewal (RFC 5280 5.3.1 superseded).
const reasonSuperseded = 4

// Config configures a Follower.
type Config struct {
	// URL is the online CA's base URL (https://ca.example.com:8443, no
	// path); the list is fetched from URL + fleet.PathCRL.
	URL string
	// CAs are the fleet CA's certificates (the state directory's ca.pem,
	// current first). The list must be signed by one of them, a client
	// certificate must chain to one, and the CA server's TLS certificate
	// too.
	CAs []*x509.Certificate
	// CAFile, when set, is the file CAs were read from (PEM, the host's
	// ca.pem): each Refresh reads it again when its size or time of
	// change differs, so that a host whose ca.pem a renewal rewrote
	// during a rotation of the online CA (both CAs, then the new one)
	// follows it without a restart of the plugin. A file that cannot
	// be read or holds no certificate keeps the CAs in use.
	CAFile string
	// Interval is how often the list is fetched (fleet.DefaultCRLRefresh
	// when <= 0).
	Interval time.Duration
	// CacheDir holds CacheFile and StatusFile; "" keeps nothing on disk.
	CacheDir string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logf receives operational messages, one line each without a
	// trailing newline (the list obtained, the CA unreachable); may be
	// nil. It is called from the fetching goroutine.
	Logf func(format string, args ...any)
}

// Status is what the Follower knows of the list, as StatusFile records it.
type Status struct {
	// URL is the CA's base URL.
	URL string `json:"url"`
	// RefreshSeconds is the fetch interval.
	RefreshSeconds float64 `json:"refresh_seconds"`
	// LastAttempt is the time of the last fetch, LastSuccess that of the
	// last one that gave a good list (the same one or a newer one).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is why the last fetch failed; "" when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// Number, ThisUpdate, NextUpdate, Revoked and Issuer describe the list
	// in force (empty when there is none): its CRL number (decimal), its
	// times, its number of entries and the CA that signed it.
	Number     string    `json:"number,omitempty"`
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	Revoked    int       `json:"revoked"`
	Issuer     string    `json:"issuer,omitempty"`
	// Stale says that the list's NextUpdate had passed when the status was
	// taken: the list is still enforced (it is the newest the host has),
	// but the CA has not been reached for a long time.
	Stale bool `json:"stale"`
	// CacheError is why CacheFile could not be written; "" when it could.
	CacheError string `json:"cache_error,omitempty"`
}

// HasList reports whether a list is in force.
func (s Status) HasList() bool { return s.Number != "" }

// Refresh is the fetch interval.
func (s Status) Refresh() time.Duration {
	return time.Duration(s.RefreshSeconds * float64(time.Second))
}

// ReadStatus reads dir/StatusFile.
func ReadStatus(dir string) (*Status, error) {
	p := filepath.Join(dir, StatusFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return &s, nil
}

// Follower follows the fleet CA's revocation list. Its Identify is safe
// for concurrent use and does not wait for a fetch.
type Follower struct {
	cfg  Config
	base string // URL without a trailing slash
	// cas are the fleet CAs in use: replaced whole when CAFile changes.
	cas atomic.Pointer[caSet]
	// client fetches the list: made again with the CAs of a changed
	// CAFile.
	clientMu sync.Mutex
	client   *fleet.Client
	// caStamp identifies the CAFile read last (refreshMu).
	caStamp fileStamp
	now     func() time.Time
	logf    func(format string, args ...any)

	list atomic.Pointer[list]

	// refreshMu makes one Refresh at a time; it guards the fields below
	// it.
	refreshMu sync.Mutex
	failing   bool
	lastLog   time.Time
	cached    []byte // what CacheFile holds
	statusErr string // why StatusFile could not be written

	statusMu sync.Mutex
	status   Status

	// verified maps a certificate's DER to the CA it chains to, so that
	// the signature is checked once, not twice per API call.
	vmu      sync.RWMutex
	verified map[string]*x509.Certificate

	cancel context.CancelFunc
	done   chan struct{}
}

// caSet is the fleet CAs and their pool.
type caSet struct {
	certs []*x509.Certificate
	roots *x509.CertPool
}

func newCASet(cas []*x509.Certificate) *caSet {
	s := &caSet{certs: cas, roots: x509.NewCertPool()}
	for _, ca := range cas {
		s.roots.AddCert(ca)
	}
	return s
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// list is a revocation list in force.
type list struct {
	der        []byte
	issuer     *x509.Certificate
	number     *big.Int
	thisUpdate time.Time
	nextUpdate time.Time
	revoked    map[string]entry // by serial, lowercase hex (pki.Serial)
}

type entry struct {
	at     time.Time
	reason int
}

// New makes a Follower; it fetches nothing yet (see Start and Refresh). It
// refuses a URL that is not https:// and an empty CAs.
func New(c Config) (*Follower, error) {
	// As fleet.ParseURL: the paths of fleet are absolute.
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("CA URL %q: want https://HOST[:PORT]", c.URL)
	}
	if len(c.CAs) == 0 {
		return nil, errors.New("no fleet CA certificate to check the revocation list against")
	}
	f := &Follower{cfg: c, base: "https://" + u.Host,
		now: c.Now, logf: c.Logf, verified: map[string]*x509.Certificate{}}
	f.cas.Store(newCASet(c.CAs))
	if c.CAFile != "" {
		if fi, err := os.Stat(c.CAFile); err == nil {
			f.caStamp = fileStamp{fi.Size(), fi.ModTime()}
		}
	}
	if f.cfg.Interval <= 0 {
		f.cfg.Interval = fleet.DefaultCRLRefresh
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.logf == nil {
		f.logf = func(string, ...any) {}
	}
	f.client = f.newClient(c.CAs)
	f.status = Status{URL: f.base, RefreshSeconds: f.cfg.Interval.Seconds()}
	return f, nil
}

// newClient is the CA server's client (fleet.Client.CRL): it trusts only
// cas (the CA server's certificate is signed by the fleet CA), speaks TLS
// 1.2 or later, follows no redirect, honours HTTPS_PROXY and NO_PROXY, and
// gives up on a fetch after FetchTimeout. Its connection is kept between
// fetches: a fetch every 5 s then costs one request, not a TLS handshake.
func (f *Follower) newClient(cas []*x509.Certificate) *fleet.Client {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return &fleet.Client{URL: f.base, Roots: pool, Timeout: FetchTimeout}
}

// URL is the CA's base URL.
func (f *Follower) URL() string { return f.base }

// Interval is the fetch interval in use.
func (f *Follower) Interval() time.Duration { return f.cfg.Interval }

// Start loads the cached list (so that a restart keeps enforcing the last
// list while the CA cannot be reached), then fetches the list at once and
// every Interval in a goroutine, until ctx is done or Close. Call it once.
func (f *Follower) Start(ctx context.Context) {
	f.LoadCache()
	ctx, f.cancel = context.WithCancel(ctx)
	f.done = make(chan struct{})
	go f.run(ctx)
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	// A ticker, not a sleep after each fetch: a fetch that takes a while
	// does not push the next one back, and ticks missed during a slow one
	// are dropped rather than run back to back.
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		_ = f.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the fetching started by Start and waits for it to end; the
// list in force stays in force.
func (f *Follower) Close() error {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	return nil
}

// LoadCache makes CacheFile the list in force when no list is, and when
// it is signed by the fleet CA; otherwise it logs why not. Start calls it.
func (f *Follower) LoadCache() {
	if f.cfg.CacheDir == "" {
		return
	}
	f.refreshMu.Lock()
	defer f.refreshMu.Unlock()
	if st, err := ReadStatus(f.cfg.CacheDir); err == nil && st.URL == f.base {
		// What the previous run knew, until the first fetch says more.
		f.statusMu.Lock()
		f.status.LastAttempt, f.status.LastSuccess, f.status.LastError = st.LastAttempt, st.LastSuccess, st.LastError
		f.statusMu.Unlock()
	}
	p := filepath.Join(f.cfg.CacheDir, CacheFile)
	der, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		var l *list
		if l, err = f.parse(der); err == nil {
			if f.list.Load() == nil {
				f.list.Store(l)
				f.cached = der
				f.setList(l)
				f.logf("enforcing the cached revocation list %s of %s (number %s, %d entries) until the CA at %s answers",
					p, stamp(l.thisUpdate), l.number, len(l.revoked), f.base)
			}
			return
		}
	}
	f.logf("cached revocation list %s not used: %v", p, err)
}

// Refresh fetches the list once and makes it the list in force when it is
// good; a failure keeps the list in force. It records the outcome in the
// status (and StatusFile) and logs a change (the CA reached again or not
// reached any more), repeating a failure that goes on once a minute.
func (f *Follower) Refresh(ctx context.Context) error {
	f.refreshMu.Lock()
	defer f.refreshMu.Unlock()
	f.reloadCAs()
	at := f.now()
	der, err := f.fetch(ctx)
	if ctx.Err() != nil {
		// Stopping: not an outage of the CA.
		return ctx.Err()
	}
	var l *list
	cur := f.list.Load()
	switch {
	case err != nil:
	case cur != nil && bytes.Equal(der, cur.der):
		l = cur
	default:
		if l, err = f.parse(der); err == nil {
			err = f.newer(l, cur)
		}
		if err != nil {
			err = fmt.Errorf("the CA at %s served a revocation list that is refused: %w", f.base, err)
		}
	}
	if err != nil {
		f.failed(at, err)
		return err
	}
	if l != cur {
		f.list.Store(l)
		if cur == nil || cur.number.Cmp(l.number) != 0 {
			f.logf("revocation list of the CA at %s: number %s of %s, %d entries", f.base, l.number, stamp(l.thisUpdate), len(l.revoked))
		}
	}
	f.succeeded(at, l)
	return nil
}

// reloadCAs reads CAFile again when it changed (see Config.CAFile).
func (f *Follower) reloadCAs() {
	if f.cfg.CAFile == "" {
		return
	}
	fi, err := os.Stat(f.cfg.CAFile)
	if err != nil {
		return
	}
	stamp := fileStamp{fi.Size(), fi.ModTime()}
	if stamp == f.caStamp {
		return
	}
	b, err := os.ReadFile(f.cfg.CAFile)
	if err != nil {
		f.logf("cannot read the fleet CA certificates %q again: %v; keeping the %d in use", f.cfg.CAFile, err, len(f.CAs()))
		return
	}
	cas, _ := pki.ParseCertificates(b)
	f.caStamp = stamp
	if len(cas) == 0 {
		f.logf("the fleet CA certificates %q hold no certificate; keeping the %d in use", f.cfg.CAFile, len(f.CAs()))
		return
	}
	f.cas.Store(newCASet(cas))
	f.vmu.Lock()
	clear(f.verified)
	f.vmu.Unlock()
	f.clientMu.Lock()
	old := f.client
	f.client = f.newClient(cas)
	f.clientMu.Unlock()
	old.CloseIdleConnections()
	names := make([]string, len(cas))
	for i, c := range cas {
		names[i] = fmt.Sprintf("%q", c.Subject.CommonName)
	}
	f.logf("fleet CA certificates %q changed: following %s", f.cfg.CAFile, strings.Join(names, " and "))
}

// CAs are the fleet CA certificates in use, current first.
func (f *Follower) CAs() []*x509.Certificate { return f.cas.Load().certs }

// fetch GETs the list (fleet.Client.CRL); parse checks it. Every failure
// says that the CA could not be reached: the list in force stays in force.
func (f *Follower) fetch(ctx context.Context) ([]byte, error) {
	f.clientMu.Lock()
	client := f.client
	f.clientMu.Unlock()
	b, err := client.CRL(ctx)
	var ue *fleet.UnreachableError
	switch {
	case errors.As(err, &ue):
		return nil, err // "cannot reach the CA at URL: ..."
	case err != nil:
		return nil, fmt.Errorf("cannot reach the CA at %s: GET %s: %w", f.base, fleet.PathCRL, err)
	case len(b) > MaxCRLBytes:
		return nil, fmt.Errorf("the CA at %s served a revocation list of more than %d MiB: refused", f.base, MaxCRLBytes>>20)
	}
	return b, nil
}

// parse parses a DER (or PEM) CRL and checks that a fleet CA signed it
// (RFC 5280 6.3.3 (f), (g)) and that it has a CRL number (5.2.3: a
// conforming CA always includes one; without it a rollback cannot be
// told).
func (f *Follower) parse(der []byte) (*list, error) {
	if b, _ := pem.Decode(der); b != nil && b.Type == "X509 CRL" {
		der = b.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("not a CRL: %w", err)
	}
	var issuer *x509.Certificate
	var sigErr error
	cas := f.CAs()
	for _, ca := range cas {
		if !bytes.Equal(crl.RawIssuer, ca.RawSubject) {
			continue
		}
		if sigErr = crl.CheckSignatureFrom(ca); sigErr == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		if sigErr != nil {
			return nil, fmt.Errorf("its signature does not verify with the fleet CA %q: %w", cas[0].Subject.CommonName, sigErr)
		}
		return nil, fmt.Errorf("it is issued by %q, not by the fleet CA %q", crl.Issuer.CommonName, cas[0].Subject.CommonName)
	}
	if crl.Number == nil {
		return nil, errors.New("it has no CRL number")
	}
	l := &list{der: der, issuer: issuer, number: crl.Number, thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate,
		revoked: make(map[string]entry, len(crl.RevokedCertificateEntries))}
	for _, e := range crl.RevokedCertificateEntries {
		l.revoked[e.SerialNumber.Text(16)] = entry{at: e.RevocationTime, reason: e.ReasonCode}
	}
	return l, nil
}

// newer refuses a list older than the one in force: whoever sits between
// the host and the CA could otherwise serve an older list, signed by the
// CA, from before a revocation. The online CA records the last number in
// its inventory and signs the next list with a higher one (at least the
// time of signing in milliseconds; store.NextCRLNumber), so the number
// grows across a CA rotation, a restart and a clock set back.
func (f *Follower) newer(l, cur *list) error {
	if cur == nil {
		return nil
	}
	switch c := l.number.Cmp(cur.number); {
	case c < 0:
		return fmt.Errorf("its number %s is lower than %s, that of the list in force (an older list served again)", l.number, cur.number)
	case c == 0 && l.thisUpdate.Before(cur.thisUpdate):
		return fmt.Errorf("it has the number %s of the list in force but an older thisUpdate (%s, not %s)", l.number, stamp(l.thisUpdate), stamp(cur.thisUpdate))
	}
	return nil
}

// failed records a failed fetch and logs it when it is news.
func (f *Follower) failed(at time.Time, err error) {
	f.statusMu.Lock()
	f.status.LastAttempt, f.status.LastError = at, err.Error()
	f.statusMu.Unlock()
	// The status file (what 'dtls audit' reads) first, then the log: one
	// who reads the log and then runs 'dtls audit' sees the same outage.
	f.writeStatus()
	if !f.failing || at.Sub(f.lastLog) >= logEvery || at.Before(f.lastLog) {
		f.failing, f.lastLog = true, at
		if l := f.list.Load(); l != nil {
			f.logf("%v; enforcing the revocation list of %s (number %s)", err, stamp(l.thisUpdate), l.number)
		} else {
			f.logf("%v; no revocation list yet: every certificate of the fleet CA is denied", err)
		}
	}
}

// succeeded records a good fetch, writes the list to CacheFile when it
// is new there, and logs the end of an outage.
func (f *Follower) succeeded(at time.Time, l *list) {
	cacheErr := ""
	if f.cfg.CacheDir != "" && !bytes.Equal(f.cached, l.der) {
		p := filepath.Join(f.cfg.CacheDir, CacheFile)
		if err := atomicfile.Write(p, l.der, CacheMode); err != nil {
			cacheErr = err.Error()
			f.logf("cannot keep the revocation list for a restart: %v", err)
		} else {
			f.cached = l.der
		}
	}
	f.statusMu.Lock()
	f.status.LastAttempt, f.status.LastSuccess, f.status.LastError, f.status.CacheError = at, at, "", cacheErr
	f.statusMu.Unlock()
	f.setList(l)
	f.writeStatus() // before the log, as in failed
	if f.failing {
		f.failing = false
		f.logf("the CA at %s answers again", f.base)
	}
}

// setList records l in the status.
func (f *Follower) setList(l *list) {
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	f.status.Number, f.status.ThisUpdate, f.status.NextUpdate = l.number.String(), l.thisUpdate.UTC(), l.nextUpdate.UTC()
	f.status.Revoked, f.status.Issuer = len(l.revoked), l.issuer.Subject.CommonName
}

// writeStatus writes StatusFile; a failure is logged when it is new, as
// it would otherwise repeat every Interval.
func (f *Follower) writeStatus() {
	if f.cfg.CacheDir == "" {
		return
	}
	st := f.Status()
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(f.cfg.CacheDir, StatusFile), append(b, '\n'), StatusMode)
	}
	switch {
	case err == nil:
		f.statusErr = ""
	case err.Error() != f.statusErr:
		f.statusErr = err.Error()
		f.logf("cannot record the revocation list's status for dtls audit: %v", err)
	}
}

// Status is what the Follower knows now; Stale is computed at Now.
func (f *Follower) Status() Status {
	f.statusMu.Lock()
	s := f.status
	f.statusMu.Unlock()
	s.Stale = s.HasList() && !s.NextUpdate.IsZero() && f.now().After(s.NextUpdate)
	return s
}

// Issued reports whether cert names a fleet CA as its issuer (by name, and
// by key identifier when both have one). Such a certificate is for
// Identify to decide; others are not the fleet's.
func (f *Follower) Issued(cert *x509.Certificate) bool {
	for _, ca := range f.CAs() {
		if bytes.Equal(cert.RawIssuer, ca.RawSubject) &&
			(len(cert.AuthorityKeyId) == 0 || len(ca.SubjectKeyId) == 0 || bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId)) {
			return true
		}
	}
	return false
}

// Identify says who holds a client certificate of the fleet CA: its
// common name and the role the CA recorded in it (fleet.CertRole; "" is
// the policy's default). It refuses, saying why, a certificate that does
// not chain to the fleet CA as a client certificate or is not valid now
// (dockerd checked it already: this fails closed should its
// configuration trust more), one the list in force names (revoked, or
// superseded by a renewal), one without a role or with the CA operator's,
// and every certificate while no list was ever obtained. A list whose
// nextUpdate has passed is still enforced: it is the newest the host has.
func (f *Follower) Identify(cert *x509.Certificate) (user, role string, err error) {
	now := f.now()
	serial := cert.SerialNumber.Text(16)
	name := cert.Subject.CommonName
	if _, err := f.chain(cert, now); err != nil {
		return "", "", err
	}
	l := f.list.Load()
	if l == nil {
		return "", "", fmt.Errorf("no revocation list from the CA at %s yet: certificate %s of %q is denied until one is fetched", f.base, serial, name)
	}
	// The list is signed by one fleet CA and speaks for the serials of
	// all of them: during a rotation of the online CA, its list (signed
	// by the CA that signs at the moment) names the revoked and
	// superseded certificates of both CAs. Serials are 159 random bits,
	// so those of two CAs do not collide. This is dtls's own reading of
	// its CA's list, not an RFC 5280 indirect CRL.
	if e, ok := l.revoked[serial]; ok {
		if e.reason == reasonSuperseded {
			return "", "", &SupersededError{Serial: serial, Name: name, At: e.at}
		}
		return "", "", fmt.Errorf("certificate %s of %q is revoked on the CA (%s)", serial, name, stamp(e.at))
	}
	role, ok := fleet.CertRole(cert)
	switch {
	case !ok:
		return "", "", fmt.Errorf("certificate %s of %q records no role (an organizationalUnit %q): the fleet CA did not issue it to a Docker client",
			serial, name, fleet.RoleOU("ROLE"))
	case role == fleet.OperatorRole:
		return "", "", fmt.Errorf("certificate %s of %q is a CA operator's (role %q), which opens no Docker daemon", serial, name, role)
	}
	return name, role, nil
}

// SupersededError refuses a certificate the CA's list names as replaced
// by a renewal (reason superseded), not revoked. Superseded says so to the
// gateway, which refuses it from the next request on but lets its open
// streams run; the CA lists a revoked one with its revocation's reason.
type SupersededError struct {
	Serial, Name string
	At           time.Time
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("certificate %s of %q was replaced by a renewal (%s)", e.Serial, e.Name, stamp(e.At))
}

// Superseded reports that the refusal is for a renewal alone.
func (e *SupersededError) Superseded() bool { return true }

// chain checks that cert is a client certificate of a fleet CA valid at
// now, and returns that CA. The signature check is done once per
// certificate; the validity periods are checked at every call.
func (f *Follower) chain(cert *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	f.vmu.RLock()
	ca := f.verified[string(cert.Raw)]
	f.vmu.RUnlock()
	if ca == nil {
		chains, err := cert.Verify(x509.VerifyOptions{Roots: f.cas.Load().roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, fmt.Errorf("certificate %s of %q is not a valid client certificate of the fleet CA: %w", cert.SerialNumber.Text(16), cert.Subject.CommonName, err)
		}
		ca = chains[0][len(chains[0])-1]
		f.vmu.Lock()
		if len(f.verified) >= maxVerified {
			clear(f.verified)
		}
		f.verified[string(cert.Raw)] = ca
		f.vmu.Unlock()
		return ca, nil
	}
	for _, c := range []*x509.Certificate{cert, ca} {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, fmt.Errorf("certificate %s of %q is not valid at %s (valid from %s to %s)",
				c.SerialNumber.Text(16), c.Subject.CommonName, stamp(now), stamp(c.NotBefore), stamp(c.NotAfter))
		}
	}
	return ca, nil
}

// stamp formats a time for messages.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Inventory is the authorization plugin's inventory on a host of the
// fleet: certificates that name the fleet CA as their issuer are decided
// by Fleet, every other by Local (the host's own inventory, for a host
// that also issues certificates itself; nil denies them).
type Inventory struct {
	Fleet *Follower
	Local interface {
		Identify(cert *x509.Certificate) (user, role string, err error)
	}
}

// Identify implements authz.Inventory.
func (i Inventory) Identify(cert *x509.Certificate) (user, role string, err error) {
	if i.Fleet.Issued(cert) {
		return i.Fleet.Identify(cert)
	}
	ca := i.Fleet.CAs()[0].Subject.CommonName
	if i.Local == nil {
		return "", "", fmt.Errorf("certificate %s of %q is not from the fleet CA %q", cert.SerialNumber.Text(16), cert.Subject.CommonName, ca)
	}
	user, role, err = i.Local.Identify(cert)
	if err != nil {
		return "", "", fmt.Errorf("not from the fleet CA %q, and refused by this host's inventory: %w", ca, err)
	}
	return user, role, nil
}
