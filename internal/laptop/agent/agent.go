package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// The schedule. A certificate is renewed once two thirds of its lifetime
// have passed, as cert-manager does by default (renewBefore: a third of
// the duration) and as the ACME client guidance suggests (Let's Encrypt
// "renew when a third of the lifetime remains"): a CA that is down for a
// third of the lifetime (8 h of a day's certificate) still leaves time.
// The jitter moves it earlier by up to a tenth of the lifetime, at random,
// so that a fleet enrolled at once does not renew at once.
const (
	RenewAt   = 2.0 / 3
	MaxJitter = 0.1
)

// Retries after a CA that cannot be reached, or fails on its side: from
// MinBackoff, doubling, up to MaxBackoff.
const (
	MinBackoff = 30 * time.Second
	MaxBackoff = 10 * time.Minute
)

// MaxSleep bounds a wait of Run between two looks at the bundles. A
// laptop's suspend stops the monotonic clock the timer counts with, so a
// long sleep would wake up late; a look at a bundle that is not due is a
// few file reads.
const MaxSleep = 10 * time.Minute

// RandomJitter is a random duration in [0, MaxJitter × lifetime).
func RandomJitter(lifetime time.Duration) time.Duration {
	n := int64(float64(lifetime) * MaxJitter)
	if n <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(n))
}

// Agent renews bundles enrolled with an online CA (dtls.json's ca_url).
// Its clock and timer are injected, so that tests drive time.
type Agent struct {
	// DockerConfig is the Docker CLI's configuration directory: the
	// contexts made from a bundle there ('dtls context create', 'dtls
	// enroll --context') are refreshed with it. "" for none.
	DockerConfig string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// After is the timer of Run (time.After when nil).
	After func(time.Duration) <-chan time.Time
	// Jitter picks, once per certificate, how much earlier than two
	// thirds of its lifetime it is renewed (RandomJitter; nil for none).
	Jitter func(lifetime time.Duration) time.Duration
	// Timeout bounds each call to the CA (fleet.DefaultTimeout when zero).
	Timeout time.Duration
	// Report receives what Run does (nil: nothing is reported).
	Report func(Event)
	// Force renews every bundle at its look, whatever its schedule
	// ('dtls agent --now').
	Force bool

	mu      sync.Mutex
	jitters map[string]time.Duration // by certificate serial
}

// Result is what RenewIfDue found and did for one bundle.
type Result struct {
	Dir   string
	Name  string // the client's name
	CAURL string
	// Serial, NotBefore and NotAfter are the bundle's certificate's,
	// after a renewal the new one's.
	Serial              string
	NotBefore, NotAfter time.Time
	// Due is when the bundle's certificate is (or was) to be renewed.
	Due time.Time
	// Early says why it was renewed before Due ("" when it was not):
	// Force, or a rotation of the CA (RotationReason).
	Early string
	// Renewed is true when a new certificate was installed; Replaced is
	// the serial it replaced.
	Renewed  bool
	Replaced string
	// Resumed is true when the renewal was one a killed run had begun
	// (PendingKeyFile): the CA answered for the key that run made.
	Resumed bool
	// Contexts are the Docker contexts written with the bundle's files.
	Contexts []string
}

// WarnAt is when a certificate that has not been renewed draws a warning:
// once less than a third of its lifetime is left (the last 8 hours of a
// day's certificate). The agent renews it at two thirds (RenewAt): from
// then on, each failed attempt to reach the CA is a step closer to a
// laptop locked out.
func (r *Result) WarnAt() time.Time {
	return r.NotAfter.Add(-r.NotAfter.Sub(r.NotBefore) / 3)
}

// RefusedError is a renewal the CA refused (a revoked or superseded
// certificate, an expired one) or answered with something that fails the
// checks: asking again will not help. The bundle is left as it was.
type RefusedError struct {
	Dir    string
	Name   string
	Serial string
	URL    string
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the CA at %s refused to renew %q (serial %s, bundle %s): %v", e.URL, e.Name, e.Serial, e.Dir, e.Err)
}
func (e *RefusedError) Unwrap() error { return e.Err }

// Event is one thing Run did, for its Report.
type Event struct {
	Dir    string
	Result *Result // nil when Err is set
	Err    error
	// Retry is when Run tries the bundle again after a retryable error
	// (fleet.Retryable); zero when it stopped renewing it (a
	// *RefusedError) or Err is nil.
	Retry time.Time
	// NotAfter is the end of the bundle's certificate after a retryable
	// error, and Expiring is true when less than a third of its lifetime
	// is left (Result.WarnAt).
	NotAfter time.Time
	Expiring bool
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Due is when cert is to be renewed: at two thirds of its lifetime, less
// the jitter picked for it.
func (a *Agent) Due(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	due := cert.NotBefore.Add(time.Duration(float64(life) * RenewAt))
	if a.Jitter == nil {
		return due
	}
	serial := pki.Serial(cert)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jitters == nil {
		a.jitters = map[string]time.Duration{}
	}
	j, ok := a.jitters[serial]
	if !ok {
		j = a.Jitter(life)
		a.jitters[serial] = j
	}
	return due.Add(-j)
}

// loaded is a bundle read from its directory: its identity and dtls.json.
type loaded struct {
	*bundle.Identity
	meta clientenv.Meta
}

func load(dir string) (*loaded, error) {
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		return nil, err
	}
	if b.Meta.CAURL == "" {
		return nil, fmt.Errorf("bundle %q was not enrolled with an online CA (its %s has no ca_url): renew it on the CA's host ('dtls renew NAME --archive FILE', then 'dtls import FILE')", b.Dir, clientenv.MetaFile)
	}
	id, err := bundle.LoadIdentity(b.Dir)
	if err != nil {
		return nil, err
	}
	return &loaded{Identity: id, meta: b.Meta}, nil
}

// RenewIfDue renews the bundle in dir when its certificate is due at now,
// or when a killed run left a renewal to finish, and brings the Docker
// contexts made from it up to date. The steps, each atomic:
//
//  1. a new key is made here and written to PendingKeyFile (0600): the
//     journal of the renewal;
//  2. its request goes to the CA over mutual TLS with the current
//     certificate and key, and the CA's ca.pem as the only trusted root;
//  3. the answer is checked (fleet.Client.Renew), and the bundle directory
//     is replaced whole by the new one, without the pending key
//     (bundle.InstallDir);
//  4. every context made from the bundle gets the new files
//     (dockercontext.Refresh).
//
// A run killed after 1 is finished by the next one, which asks again for
// the pending key's certificate. An error that fleet.Retryable accepts
// (the CA unreachable, failing) leaves the bundle and the pending key for
// the next try; a refusal is a *RefusedError, and the pending key is
// removed with it.
func (a *Agent) RenewIfDue(ctx context.Context, dir string, now time.Time) (*Result, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", dir, err)
	}
	unlock, err := lockDir(ctx, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := recoverDir(abs); err != nil {
		return nil, err
	}
	l, err := load(abs)
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: l.Dir, Name: l.Cert.Subject.CommonName, CAURL: l.meta.CAURL, Serial: pki.Serial(l.Cert), NotBefore: l.Cert.NotBefore, NotAfter: l.Cert.NotAfter, Due: a.Due(l.Cert)}
	pendingPath := filepath.Join(l.Dir, PendingKeyFile)
	pending, err := readPending(l, pendingPath)
	if err != nil {
		return nil, err
	}

	if pending == nil && now.Before(res.Due) {
		if res.Early = a.early(ctx, l); res.Early == "" {
			if res.Contexts, err = a.syncContexts(l); err != nil {
				return res, err
			}
			return res, nil
		}
	}
	refused := func(err error) error {
		return &RefusedError{Dir: l.Dir, Name: res.Name, Serial: res.Serial, URL: l.meta.CAURL, Err: err}
	}
	if !now.Before(l.Cert.NotAfter) {
		// The CA would refuse the handshake: an expired certificate
		// proves nothing.
		removePending(pendingPath)
		return res, refused(a.expired(ctx, l))
	}
	csrPEM, pending, err := newRequest(res, l, pending, pendingPath)
	if err != nil {
		return res, err
	}

	c, err := a.client(l)
	var mismatch *bundle.KeyMismatchError
	if errors.As(err, &mismatch) {
		removePending(pendingPath)
		return res, refused(err)
	} else if err != nil {
		return res, err
	}
	defer c.CloseIdleConnections()
	resp, err := c.Renew(ctx, csrPEM)
	if err != nil {
		if fleet.Retryable(err) || ctx.Err() != nil {
			return res, err
		}
		removePending(pendingPath)
		return res, refused(err)
	}
	cert, err := pki.ParseCertificate([]byte(resp.Certificate))
	if err != nil {
		return res, err
	}
	meta := l.meta
	meta.Name, meta.Serial, meta.NotAfter = cert.Subject.CommonName, pki.Serial(cert), cert.NotAfter.UTC()
	files, err := bundle.Files([]byte(resp.CA), []byte(resp.Certificate), pending, meta)
	if err != nil {
		return res, err
	}
	if _, err := bundle.Verify(files, now); err != nil {
		removePending(pendingPath)
		return res, refused(fmt.Errorf("the renewed bundle does not work: %w", err))
	}
	if err := bundle.InstallDir(l.Dir, files); err != nil {
		return res, err
	}
	res.Renewed, res.Replaced = true, res.Serial
	res.Serial, res.NotBefore, res.NotAfter, res.Due = meta.Serial, cert.NotBefore, cert.NotAfter, a.Due(cert)
	nl := &loaded{Identity: &bundle.Identity{Dir: l.Dir, CAPEM: []byte(resp.CA), CertPEM: []byte(resp.Certificate), KeyPEM: pending, Cert: cert}, meta: meta}
	res.Contexts, err = a.syncContexts(nl)
	return res, err
}

// readPending reads the key of a renewal that a killed run left, nil when
// there is none. A pending key that is already the bundle's was installed
// (by hand): it is removed, and there is nothing to resume.
func readPending(l *loaded, pendingPath string) ([]byte, error) {
	pending, err := os.ReadFile(pendingPath)
	switch {
	case err == nil:
		if key, kerr := pki.ParsePrivateKey(pending); kerr == nil && pki.KeyMatches(l.Cert, key) {
			if err := removePending(pendingPath); err != nil {
				return nil, err
			}
			return nil, nil
		} else if kerr != nil {
			return nil, fmt.Errorf("bundle %q: %s: %w (remove it to start the renewal again)", l.Dir, PendingKeyFile, kerr)
		}
		return pending, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	default:
		return nil, fmt.Errorf("bundle %q: %w", l.Dir, err)
	}
}

// newRequest returns the CSR of the renewal and its key: the pending key's
// when a run is resumed, else a new key of the certificate's type, written
// to pendingPath before anything is sent so that a killed run can resume.
func newRequest(res *Result, l *loaded, pending []byte, pendingPath string) (csrPEM, key []byte, err error) {
	if pending != nil {
		res.Resumed = true
		csrPEM, err = fleet.CSRFor(pending)
		return csrPEM, pending, err
	}
	if csrPEM, key, err = pki.NewCSR(res.Name, pki.KeyTypeOf(l.Cert)); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(pendingPath, key, PendingKeyMode); err != nil {
		return nil, nil, err
	}
	return csrPEM, key, nil
}

// ExpiredError is a bundle whose certificate expired: it can never be
// renewed. Unreachable is the error of a call to the CA made then, when
// the CA could not be reached (or failed): the certificate expired while
// the CA was unreachable, not while the agent was not running.
type ExpiredError struct {
	NotAfter    time.Time
	Enrol       string // the command that enrols again
	Unreachable error
}

func (e *ExpiredError) Error() string {
	if e.Unreachable != nil {
		return fmt.Sprintf("the certificate expired at %s while the CA was unreachable (%v): enrol again with a new token (%s)",
			e.NotAfter.UTC().Format(time.RFC3339), e.Unreachable, e.Enrol)
	}
	return fmt.Sprintf("the certificate expired at %s: enrol again with a new token (%s)", e.NotAfter.UTC().Format(time.RFC3339), e.Enrol)
}
func (e *ExpiredError) Unwrap() error { return e.Unreachable }

// expired is the error of a bundle whose certificate expired. The CA is
// asked where its rotation is (a call that needs no valid certificate),
// so that the error says whether it can be reached.
func (a *Agent) expired(ctx context.Context, l *loaded) error {
	e := &ExpiredError{NotAfter: l.Cert.NotAfter, Enrol: fmt.Sprintf("'dtls enroll %s TOKEN --docker-host %s --force'", l.meta.CAURL, l.meta.DockerHost)}
	c, err := a.client(l)
	if err == nil {
		_, err = c.Rotation(ctx)
		c.CloseIdleConnections()
	}
	if err != nil && fleet.Retryable(err) {
		e.Unreachable = err
	}
	return e
}

// client is a client of the bundle's CA that trusts the bundle's ca.pem
// alone and authenticates with its certificate.
func (a *Agent) client(l *loaded) (*fleet.Client, error) {
	c, err := ClientFor(l.Identity, l.meta.CAURL)
	if err != nil {
		return nil, err
	}
	c.Timeout = a.Timeout
	return c, nil
}

// ClientFor is a client of the online CA at url that authenticates with
// the bundle id and trusts its ca.pem alone (bundle.Identity.Credentials:
// a *bundle.KeyMismatchError when its key is not its certificate's).
func ClientFor(id *bundle.Identity, url string) (*fleet.Client, error) {
	pair, roots, err := id.Credentials()
	if err != nil {
		return nil, err
	}
	return &fleet.Client{URL: url, Roots: roots, Certificate: pair}, nil
}

// early says why a bundle that is not due is renewed now: Force, or the
// CA's rotation (RotationReason). A CA that cannot be reached for the
// question changes nothing: the schedule decides, and the renewal, when
// due, reports it.
func (a *Agent) early(ctx context.Context, l *loaded) string {
	if a.Force {
		return "renewal asked for (--now)"
	}
	c, err := a.client(l)
	if err != nil {
		return ""
	}
	defer c.CloseIdleConnections()
	st, err := c.Rotation(ctx)
	if err != nil {
		return ""
	}
	return RotationReason(st, l.CAPEM, l.Cert)
}

// RotationReason says why a bundle with ca.pem caPEM and certificate cert
// is to be renewed at once, whatever its schedule, while its CA is where
// st says; "" when it is not. A rotation's trust step holds up its switch
// until every client issued before it has renewed (engine.OldOnlyClients:
// its ca.pem trusts the old CA alone), and its finish until every
// certificate is of the new CA: each holder renews at its next look
// rather than after two thirds of its lifetime. Outside a rotation the
// schedule decides: a ca.pem that still trusts the CA a finished rotation
// dropped (whose key is gone) is replaced at the next scheduled renewal.
func RotationReason(st *fleet.RotationState, caPEM []byte, cert *x509.Certificate) string {
	if st.Step != fleet.RotateTrust && st.Step != fleet.RotateSwitch {
		return ""
	}
	served, err := pki.ParseCertificates([]byte(st.CA))
	if err != nil {
		return ""
	}
	have, _ := pki.ParseCertificates(caPEM)
	if !sameCerts(served, have) {
		return fmt.Sprintf("the CA is rotating (step %s): ca.pem does not trust both CAs yet", st.Step)
	}
	switch st.Step {
	case fleet.RotateTrust:
		if pki.IssuedAt(cert.NotBefore, cert.NotAfter).Before(st.TrustBegan) {
			return "the CA is rotating (step trust): the certificate is from before the rotation began"
		}
	case fleet.RotateSwitch:
		for _, ca := range served {
			if pki.Serial(ca) == st.Signer && cert.CheckSignatureFrom(ca) != nil {
				return "the CA is rotating (step switch): the certificate is not of the new CA yet"
			}
		}
	}
	return ""
}

// sameCerts reports whether a and b hold the same certificates, in any
// order.
func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x.Equal(y)
		}
		if !found {
			return false
		}
	}
	return true
}

func removePending(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %q: %w", path, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// syncContexts brings every Docker context made from the bundle up to
// date with it (dockercontext.Refresh), and returns the names it wrote.
// A context left behind by a killed run is brought up to date here, at
// the next look at the bundle.
func (a *Agent) syncContexts(l *loaded) ([]string, error) {
	if a.DockerConfig == "" {
		return nil, nil
	}
	return dockercontext.Refresh(a.DockerConfig, dockercontext.Source{
		Dir: l.Dir, Host: l.meta.DockerHost, CA: l.CAPEM, Cert: l.CertPEM, Key: l.KeyPEM})
}

// bundleState is what Run keeps about one bundle between two looks.
type bundleState struct {
	failures int
	retry    time.Time
	// stopped is the serial of a certificate whose renewal was refused:
	// Run leaves the bundle alone until it holds another one (enrolled
	// again).
	stopped string
}

// Run looks after the bundles dirs lists (called again at every look, so
// that a bundle enrolled meanwhile is picked up) until ctx ends: each one
// is renewed when due (RenewIfDue), tried again with a growing delay
// (MinBackoff to MaxBackoff) after a retryable error, and left alone after
// a refusal. It returns nil when ctx ends, or an error when every bundle
// it looks after was refused.
func (a *Agent) Run(ctx context.Context, dirs func() ([]string, error)) error {
	after := a.After
	if after == nil {
		after = time.After
	}
	states := map[string]*bundleState{}
	for {
		list, err := dirs()
		if err != nil {
			return err
		}
		now := a.now()
		next := now.Add(MaxSleep)
		active := 0
		for _, d := range list {
			st := states[d]
			if st == nil {
				st = &bundleState{}
				states[d] = st
			}
			if st.stopped != "" {
				if serial, err := currentSerial(d); err == nil && serial == st.stopped {
					continue
				}
				*st = bundleState{}
			}
			active++
			if now.Before(st.retry) {
				next = earliest(next, st.retry)
				continue
			}
			res, err := a.RenewIfDue(ctx, d, now)
			if ctx.Err() != nil {
				return nil
			}
			ev := Event{Dir: d, Result: res, Err: err}
			var refused *RefusedError
			switch {
			case err == nil:
				st.failures, st.retry = 0, time.Time{}
				next = earliest(next, res.Due)
				if !res.Renewed && len(res.Contexts) == 0 {
					ev.Result = nil // nothing happened: nothing to say
				}
			case errors.As(err, &refused):
				st.stopped = refused.Serial
				active--
			default:
				st.retry = now.Add(backoff(st.failures))
				st.failures++
				ev.Retry = st.retry
				next = earliest(next, st.retry)
				if res != nil {
					ev.NotAfter, ev.Expiring = res.NotAfter, !now.Before(res.WarnAt())
				}
			}
			if a.Report != nil && (ev.Err != nil || ev.Result != nil) {
				if ev.Err != nil {
					ev.Result = nil
				}
				a.Report(ev)
			}
		}
		if len(list) > 0 && active == 0 {
			return errors.New("the CA refused to renew every bundle: enrol again with a new token ('dtls enroll URL TOKEN --docker-host tcp://HOST:PORT --force')")
		}
		wait := max(next.Sub(a.now()), 0)
		select {
		case <-ctx.Done():
			return nil
		case <-after(wait):
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// backoff is the delay after n failures in a row.
func backoff(n int) time.Duration {
	d := MinBackoff
	for i := 0; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

func currentSerial(dir string) (string, error) {
	id, err := bundle.LoadIdentity(dir)
	if err != nil {
		return "", err
	}
	return pki.Serial(id.Cert), nil
}

// EnrolledIn lists the bundles of the store root that were enrolled with an
// online CA, by directory.
func EnrolledIn(root string) ([]string, error) {
	entries, err := clientenv.List(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Err == nil && e.Bundle.Meta.CAURL != "" {
			out = append(out, e.Bundle.Dir)
		}
	}
	return out, nil
}
