package crashtest

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The kinds of command the kill loop runs.
const (
	kIssueNew     = "issue-client NEW"
	kIssueMulti   = "issue-client NEW NEW [NEW]"
	kIssueForce   = "issue-client EXISTING --force"
	kRenewName    = "renew NAME"
	kRenewExpire  = "renew --expiring 10000d"
	kRenewServer  = "renew --server"
	kRevoke       = "revoke NAME"
	kCRL          = "crl"
	kRotate       = "rotate-ca"
	kRotateSwitch = "rotate-ca --switch --force"
	kRotateFinish = "rotate-ca --finish --force"
	kInit         = "init"
	kInitForce    = "init --force"
	kInitGateway  = "init --gateway"
)

var kinds = []string{kIssueNew, kIssueMulti, kIssueForce, kRenewName, kRenewExpire, kRenewServer,
	kRevoke, kCRL, kRotate, kRotateSwitch, kRotateFinish, kInit, kInitForce, kInitGateway}

// refusals are the documented refusals a run that was not killed may end
// with (exit 1): anything else must exit 0. The kill loop picks names from
// the inventory, but a killed run may have changed it in a way 'dtls list'
// shows only afterwards.
var refusals = map[string][]string{
	kRotate:       {"a CA rotation is already in progress"},
	kRotateSwitch: {"no CA rotation in progress", "the daemon already presents a server certificate of the new CA"},
	kRotateFinish: {"no CA rotation in progress", "the daemon still presents a server certificate of the old CA"},
	kRevoke:       {"every matching certificate is already revoked or expired"},
	kRenewName:    {"a revoked certificate is not renewed"},
}

const (
	// maxClients bounds the client bundles on disk, so that 'renew
	// --expiring', 'rotate-ca' and Check cost the same at iteration 3000
	// as at 30.
	maxClients = 24
	// sweepEvery is how often every kind runs once without a kill.
	sweepEvery = 50
	// noKillPercent of the runs are not killed.
	noKillPercent = 15
	// logTail is how many iterations a failure prints.
	logTail = 8
)

// TestKillLoop starts dtls commands and kills them with SIGKILL at random
// moments; after each, the next command ('dtls list -o json', which takes
// the lock and finishes or undoes what a killed run left) must succeed and
// Check must find nothing. A run that is not killed must exit 0 or with a
// documented refusal. Every 50 iterations and at the end, each kind of
// command also runs once, not killed, with its preconditions made true,
// and must exit 0.
//
// Environment:
//
//	DTLS_BIN               the dtls binary to test (default: ./cmd/dtls built with -tags dtlsfailpoints)
//	DTLS_KILL_ITERATIONS   iterations (default 300; 30 with -short), shared out between the loops
//	DTLS_KILL_LOOPS        independent loops run in parallel, each on an install of its own
//	                       (default 3): a run waits on fsync more than it computes
//	DTLS_KILL_SEED         the math/rand seed of the first loop (loop i has SEED+i), printed by
//	                       every run: replays its choices (commands, names, delays; where a kill
//	                       lands still varies)
//	DTLS_KILL_MAX_DELAY    the longest kill delay (default 30ms; a kind's delays are also
//	                       bounded by its longest run seen, so that kills land inside it)
//	DTLS_KILL_KEEP_GOING   set: do not stop at the first inconsistency; report only the
//	                       iterations that show a new kind of problem (marked NEW), and
//	                       a table of all kinds at the end
//	DTLS_KILL_KEEP_STATE   a directory: the install as the first failure found it is
//	                       copied there (the test's own directory is removed)
func TestKillLoop(t *testing.T) {
	t.Parallel()
	n := envInt(t, "DTLS_KILL_ITERATIONS", 300)
	if testing.Short() && os.Getenv("DTLS_KILL_ITERATIONS") == "" {
		n = 30
	}
	loops := envInt(t, "DTLS_KILL_LOOPS", 3)
	require.Positive(t, loops, "DTLS_KILL_LOOPS")
	seed := int64(envInt(t, "DTLS_KILL_SEED", int(time.Now().UnixNano())))
	maxDelay := 30 * time.Millisecond
	if s := os.Getenv("DTLS_KILL_MAX_DELAY"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "DTLS_KILL_MAX_DELAY")
		require.Positive(t, d, "DTLS_KILL_MAX_DELAY")
		maxDelay = d
	}
	for i := range loops {
		iters := n / loops
		if i < n%loops {
			iters++
		}
		s := seed + int64(i)
		t.Run(fmt.Sprintf("loop%d", i+1), func(t *testing.T) {
			t.Parallel()
			killLoop(t, iters, s, maxDelay)
		})
	}
}

// killLoop is one loop of TestKillLoop: n iterations from seed.
func killLoop(t *testing.T, n int, seed int64, maxDelay time.Duration) {
	t.Logf("seed %d, %d iterations: replay with DTLS_KILL_LOOPS=1 DTLS_KILL_SEED=%d DTLS_KILL_ITERATIONS=%d", seed, n, seed, n)

	in := newInstall(t)
	in.setUp(t)
	lp := &loop{
		t: t, in: in, rng: rand.New(rand.NewSource(seed)), seed: seed, maxDelay: maxDelay,
		keepGoing: os.Getenv("DTLS_KILL_KEEP_GOING") != "",
		checker:   &Checker{Layout: in.l},
		classes:   map[string]*problemClass{},
		seen:      map[string]bool{},
		stats:     map[string]*kindStats{},
	}
	start := time.Now()
	if !lp.observe("setup", nil) {
		return
	}
	for i := 1; i <= n; i++ {
		if !lp.iteration(i) {
			return
		}
		if i%sweepEvery == 0 && i < n && !lp.sweep(i) {
			return
		}
	}
	lp.sweep(n)
	lp.summary(n, time.Since(start))
}

// loop is the kill loop's state.
type loop struct {
	t         *testing.T
	in        *install
	rng       *rand.Rand
	seed      int64
	maxDelay  time.Duration
	keepGoing bool
	checker   *Checker

	recs     []Record // the last 'dtls list -o json'
	nextName int
	log      []logEntry
	classes  map[string]*problemClass
	seen     map[string]bool // problems reported, verbatim
	failures int
	stats    map[string]*kindStats
}

type logEntry struct {
	at   string // iteration, or sweep step
	kind string
	res  *result
	next string // what the next command said, and the check
}

func (e logEntry) String() string {
	s := fmt.Sprintf("[%s] %s", e.at, e.kind)
	if e.res != nil {
		s += "\n    " + e.res.String()
	}
	if e.next != "" {
		s += "\n    next: " + strings.ReplaceAll(e.next, "\n", "\n          ")
	}
	return s
}

type kindStats struct {
	runs, killed, finishedFirst, noKill, refused int
	longest                                      time.Duration // of the runs not killed
}

type problemClass struct {
	example string
	first   string // iteration
	count   int
}

// iteration runs one random command with a random kill delay, then the
// next command and the check. It returns false when the loop must stop.
func (lp *loop) iteration(i int) bool {
	kind := kinds[lp.rng.Intn(len(kinds))]
	kind, args := lp.command(kind, fmt.Sprint(i), true)
	// Two draws every iteration, whatever the outcome, so that a seed
	// replays the same choices.
	kill, frac := lp.rng.Intn(100) >= noKillPercent, lp.rng.Float64()
	st := lp.stat(kind)
	delay := noKill
	if kill {
		// Up to the longest run of this kind seen, so that kills land
		// while it works rather than after it is done.
		bound := lp.maxDelay
		if st.longest > 0 && st.longest < bound {
			bound = st.longest
		}
		delay = time.Duration(frac * float64(bound)).Truncate(time.Microsecond)
	}
	res := lp.in.run(delay, args...)
	if !res.killed {
		st.longest = max(st.longest, res.took)
	}
	st.runs++
	switch {
	case res.killed:
		st.killed++
	case res.noKill:
		st.noKill++
	default:
		st.finishedFirst++
	}
	var problems []string
	if !res.killed && res.exit != 0 {
		if refused(kind, res.stderr) {
			st.refused++
		} else {
			problems = append(problems, fmt.Sprintf("%s was not killed and exited %d: %s", kind, res.exit, firstLine(res.stderr)))
		}
	}
	lp.log = append(lp.log, logEntry{at: fmt.Sprint(i), kind: kind, res: &res})
	return lp.observe(fmt.Sprint(i), problems)
}

// sweep runs every kind once, not killed, after making its preconditions
// true, and requires exit 0 of each.
func (lp *loop) sweep(i int) bool {
	var (
		rotateCA = lp.in.with("rotate-ca")
		switchCA = lp.in.with("rotate-ca", "--switch", "--force")
		finishCA = lp.in.with("rotate-ca", "--finish", "--force")
	)
	for j, kind := range kinds {
		at := fmt.Sprintf("sweep@%d/%d", i, j+1)
		var pres [][]string
		switch step := lp.rotationStep(); kind {
		case kRotate:
			pres = map[int][][]string{1: {switchCA, finishCA}, 2: {finishCA}}[step]
		case kRotateSwitch:
			pres = map[int][][]string{0: {rotateCA}, 2: {finishCA, rotateCA}}[step]
		case kRotateFinish:
			pres = map[int][][]string{0: {rotateCA, switchCA}, 1: {switchCA}}[step]
		case kRenewName, kRevoke:
			if len(lp.goodClients()) == 0 {
				name := lp.newName()
				pres = [][]string{lp.in.with("issue-client", name, "--out", filepath.Join(lp.in.l.Bundles, name))}
			}
		}
		for _, pre := range pres {
			res := lp.in.run(noKill, pre...)
			lp.log = append(lp.log, logEntry{at: at + " precondition", kind: kind, res: &res})
			var problems []string
			if res.exit != 0 {
				problems = append(problems, fmt.Sprintf("precondition of %s exited %d: %s", kind, res.exit, firstLine(res.stderr)))
			}
			if !lp.observe(at+" precondition", problems) {
				return false
			}
		}
		kind, args := lp.command(kind, at, false)
		res := lp.in.run(noKill, args...)
		lp.log = append(lp.log, logEntry{at: at, kind: kind, res: &res})
		var problems []string
		if res.exit != 0 {
			problems = append(problems, fmt.Sprintf("%s with its preconditions met exited %d: %s", kind, res.exit, firstLine(res.stderr)))
		}
		if !lp.observe(at, problems) {
			return false
		}
	}
	return true
}

// observe runs the next command and Check, and reports problems (those
// passed in and those found). It returns false when the loop must stop.
func (lp *loop) observe(at string, problems []string) bool {
	recs, res, err := lp.in.list()
	next := "dtls list -o json: ok"
	if s := strings.TrimSpace(res.stderr); s != "" {
		next += ", stderr: " + tail(s, 600)
	}
	if err != nil {
		problems = append(problems, "the next command failed: "+err.Error())
		next = err.Error()
	} else {
		lp.recs = recs
		var ps Problems
		if err := lp.checker.Check(recs); errors.As(err, &ps) {
			problems = append(problems, ps...)
		} else if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		next += fmt.Sprintf("; %d problems", len(problems))
	}
	if len(lp.log) == 0 || lp.log[len(lp.log)-1].at != at {
		lp.log = append(lp.log, logEntry{at: at, kind: "(state check)"})
	}
	lp.log[len(lp.log)-1].next = next
	if len(problems) == 0 {
		return true
	}
	return lp.report(at, problems)
}

// report fails the test with problems and the last iterations' log. In
// keep-going mode only problems of a new class are reported.
func (lp *loop) report(at string, problems []string) bool {
	fresh := 0
	shown := make([]string, len(problems))
	for i, p := range problems {
		shown[i] = p
		c := classify(p)
		pc := lp.classes[c]
		if pc == nil {
			pc = &problemClass{example: p, first: at}
			lp.classes[c] = pc
			fresh++
			if lp.keepGoing {
				shown[i] = "NEW " + p
			}
		}
		if !lp.seen[p] {
			// A leftover that stays is one occurrence, not one per
			// iteration.
			lp.seen[p] = true
			pc.count++
		}
	}
	if lp.failures == 0 {
		lp.keepState(at)
	}
	lp.failures++
	if lp.keepGoing && fresh == 0 {
		return true
	}
	from := max(0, len(lp.log)-logTail)
	var b strings.Builder
	for _, e := range lp.log[from:] {
		b.WriteString(e.String() + "\n")
	}
	// "17", "sweep@50/3", "sweep@50/3 precondition": the loop's iteration.
	iters := strings.TrimPrefix(strings.Fields(at)[0], "sweep@")
	iters, _, _ = strings.Cut(iters, "/")
	lp.t.Errorf("seed %d, iteration %s: %d problems:\n  %s\n\nlast %d log entries:\n%s\nreplay: DTLS_KILL_LOOPS=1 DTLS_KILL_SEED=%d DTLS_KILL_ITERATIONS=%s (where a kill lands varies between runs)",
		lp.seed, at, len(shown), strings.Join(shown, "\n  "), len(lp.log)-from, b.String(), lp.seed, iters)
	return lp.keepGoing
}

// summary logs what ran, and the problem classes in keep-going mode.
func (lp *loop) summary(n int, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d iterations in %v (seed %d)\n", n, took.Round(time.Millisecond), lp.seed)
	fmt.Fprintf(&b, "  %-30s %5s %7s %14s %7s %8s %8s\n", "kind", "runs", "killed", "done-pre-kill", "no-kill", "refused", "longest")
	for _, k := range kinds {
		if s := lp.stats[k]; s != nil {
			fmt.Fprintf(&b, "  %-30s %5d %7d %14d %7d %8d %8v\n", k, s.runs, s.killed, s.finishedFirst, s.noKill, s.refused, s.longest.Round(time.Millisecond))
		}
	}
	if len(lp.classes) > 0 {
		keys := make([]string, 0, len(lp.classes))
		for k := range lp.classes {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return lp.classes[keys[i]].count > lp.classes[keys[j]].count })
		fmt.Fprintf(&b, "problem classes (distinct occurrences, first iteration, example):\n")
		for _, k := range keys {
			c := lp.classes[k]
			fmt.Fprintf(&b, "  %4d  %-12s %s\n", c.count, c.first, c.example)
		}
	}
	lp.t.Log(b.String())
}

// keepState copies the install, as the first failure found it, to
// $DTLS_KILL_KEEP_STATE/seed-SEED-AT when that is set.
func (lp *loop) keepState(at string) {
	dir := os.Getenv("DTLS_KILL_KEEP_STATE")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, fmt.Sprintf("seed-%d-%s", lp.seed, strings.NewReplacer("@", "-", "/", "-", " ", "-").Replace(at)))
	copyInstall(lp.t, lp.in.l, NewLayout(dst), nil)
	lp.t.Logf("state at the first failure copied to %s", dst)
}

func (lp *loop) stat(kind string) *kindStats {
	if lp.stats[kind] == nil {
		lp.stats[kind] = &kindStats{}
	}
	return lp.stats[kind]
}

// command turns a kind into arguments, picking names from the last
// inventory. A kind that has nothing to work on becomes another, and so
// does a new issue when capped and the client bundles are at maxClients
// (the kind that runs is returned).
func (lp *loop) command(kind, at string, capped bool) (string, []string) {
	in := lp.in
	if kind == kIssueNew || kind == kIssueMulti {
		if lp.clientBundles() >= maxClients {
			lp.retire(at)
		}
		if capped && lp.clientBundles() >= maxClients && len(lp.goodClients()) > 0 {
			kind = kRevoke
		}
	}
	if (kind == kRenewName || kind == kRevoke) && len(lp.goodClients()) == 0 {
		kind = kIssueNew
	}
	if kind == kIssueForce && len(lp.allClients()) == 0 {
		kind = kIssueNew
	}
	switch kind {
	case kIssueNew:
		name := lp.newName()
		return kind, in.with("issue-client", name, "--out", filepath.Join(in.l.Bundles, name))
	case kIssueMulti:
		args := []string{"issue-client"}
		for range 2 + lp.rng.Intn(2) {
			args = append(args, lp.newName())
		}
		return kind, in.with(append(args, "--out", in.l.Bundles)...)
	case kIssueForce:
		name := pick(lp.rng, lp.allClients())
		return kind, in.with("issue-client", name, "--out", filepath.Join(in.l.Bundles, name), "--force")
	case kRenewName:
		return kind, in.with("renew", pick(lp.rng, lp.goodClients()))
	case kRenewExpire:
		return kind, in.with("renew", "--expiring", "10000d")
	case kRenewServer:
		return kind, in.with("renew", "--server")
	case kRevoke:
		return kind, in.with("revoke", pick(lp.rng, lp.goodClients()))
	case kCRL:
		return kind, in.with("crl")
	case kRotate:
		return kind, in.with("rotate-ca")
	case kRotateSwitch:
		return kind, in.with("rotate-ca", "--switch", "--force")
	case kRotateFinish:
		return kind, in.with("rotate-ca", "--finish", "--force")
	case kInit:
		return kind, in.initArgs()
	case kInitForce:
		return kind, in.initArgs("--force")
	case kInitGateway:
		return kind, in.initArgs("--gateway")
	}
	panic("unknown kind " + kind)
}

// rotationStep is the step of a CA rotation the install is at, as dtls
// derives it: 0 without state/ca-old.pem, 2 when the daemon's server
// certificate is of the current CA ('rotate-ca --switch'), else 1.
func (lp *loop) rotationStep() int {
	if _, err := os.Lstat(filepath.Join(lp.in.l.StateDir, oldCACertFile)); err != nil {
		return 0
	}
	ca, err := os.ReadFile(filepath.Join(lp.in.l.StateDir, caCertFile))
	if err != nil {
		return 1
	}
	srv, err := os.ReadFile(filepath.Join(lp.in.l.CertsDir, serverCertFile))
	if err != nil {
		return 1
	}
	cas, err1 := ParseCertificates(ca)
	srvs, err2 := ParseCertificates(srv)
	if err1 == nil && err2 == nil && srvs[0].CheckSignatureFrom(cas[0]) == nil {
		return 2
	}
	return 1
}

func (lp *loop) newName() string {
	lp.nextName++
	return fmt.Sprintf("u%04d", lp.nextName)
}

// goodClients are the names of client certificates in use (valid,
// expiring) whose bundle is under the bundles directory.
func (lp *loop) goodClients() []string {
	return lp.clientNames(func(r Record) bool { return r.Good() })
}

// allClients are the names of every client certificate recorded.
func (lp *loop) allClients() []string {
	return lp.clientNames(func(Record) bool { return true })
}

func (lp *loop) clientNames(keep func(Record) bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range lp.recs {
		if r.Kind == "client" && keep(r) && filepath.Dir(r.Path) == lp.in.l.Bundles && !seen[r.Name] {
			seen[r.Name] = true
			out = append(out, r.Name)
		}
	}
	sort.Strings(out)
	return out
}

// clientBundles counts the client bundle directories on disk.
func (lp *loop) clientBundles() int {
	n := 0
	entries, _ := os.ReadDir(lp.in.l.Bundles)
	for _, e := range entries {
		if _, err := os.Lstat(filepath.Join(lp.in.l.Bundles, e.Name(), clientCertFile)); err == nil {
			n++
		}
	}
	return n
}

// retire removes the bundle directories of clients none of whose
// certificates is in use (all revoked or superseded), as an operator
// would, to keep the population bounded.
func (lp *loop) retire(at string) {
	good := map[string]bool{}
	for _, n := range lp.goodClients() {
		good[n] = true
	}
	var gone []string
	for _, n := range lp.allClients() {
		dir := filepath.Join(lp.in.l.Bundles, n)
		if _, err := os.Lstat(dir); err == nil && !good[n] {
			if err := os.RemoveAll(dir); err != nil {
				lp.t.Fatalf("retire %s: %v", dir, err)
			}
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		lp.log = append(lp.log, logEntry{at: at, kind: "(harness) removed the bundles of revoked clients " + strings.Join(gone, ", ")})
	}
}

func refused(kind, stderr string) bool {
	for _, s := range refusals[kind] {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

func pick(rng *rand.Rand, names []string) string { return names[rng.Intn(len(names))] }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

var (
	hexRun   = regexp.MustCompile(`[0-9a-f]{12,}`)
	tmpName  = regexp.MustCompile(`\.tmp-[^/ ]*`)
	certList = regexp.MustCompile(`\((client|server) "[^)]*\)`)
	bundleOf = regexp.MustCompile(`bundles/[^/\s]+`)
	nameOf   = regexp.MustCompile(`(client|server) "[^"]*"`)
	number   = regexp.MustCompile(`\d+`)
	rootPath = regexp.MustCompile(`/\S*/`)
)

// classify is a problem's message with the serials, names, numbers and
// temporary suffixes taken out, so that one bug counts as one class.
func classify(p string) string {
	p = tmpName.ReplaceAllString(p, ".tmp-*")
	p = hexRun.ReplaceAllString(p, "<hex>")
	p = certList.ReplaceAllString(p, "(…)")
	p = bundleOf.ReplaceAllString(p, "bundles/<name>")
	p = nameOf.ReplaceAllString(p, `$1 "<name>"`)
	p = rootPath.ReplaceAllString(p, "/…/")
	return number.ReplaceAllString(p, "N")
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "%s=%q", name, s)
	return n
}
