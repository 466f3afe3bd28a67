package authz

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dtls-tool/dtls/internal/dirwatch"
)

// Phases of an audit record: dockerd asks the plugin before it handles a
// request (AuthZReq) and again with the response (AuthZRes).
const (
	PhaseRequest  = "request"
	PhaseResponse = "response"
)

// Decisions of an audit record. DecisionWarn is a request that enforce mode
// would have denied and warn mode allowed.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionWarn  = "warn"
)

// auditTimeFormat is RFC 3339 with all nine digits of nanoseconds, so that
// records sort as text and line up (time.RFC3339Nano drops trailing zeros).
const auditTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// AuditRecord is one line of the audit trail: one decision of the plugin.
// A request-phase record and the response-phase record of the same API call
// share User, Serial, Source, Method and URI (dockerd sends the same request
// fields in both phases); a response record exists only for an allowed
// request.
type AuditRecord struct {
	// Time is when the plugin decided, written in UTC with nanoseconds.
	Time time.Time `json:"time"`
	// Phase is PhaseRequest or PhaseResponse.
	Phase string `json:"phase"`
	// Decision is DecisionAllow, DecisionDeny or DecisionWarn.
	Decision string `json:"decision"`
	// User is the certificate holder's name in the inventory (the
	// certificate's CN when the inventory refused it); empty for the unix
	// socket.
	User string `json:"user,omitempty"`
	// Role is the role the request was decided for (the policy's default
	// role when the inventory records none).
	Role string `json:"role,omitempty"`
	// Serial is the client certificate's serial number in hex, as in the
	// inventory.
	Serial string `json:"serial,omitempty"`
	// Source is "tcp" or "unix".
	Source string `json:"source,omitempty"`
	// Method is the HTTP method of the API call.
	Method string `json:"method,omitempty"`
	// Path is the canonical API path (no version prefix, no query).
	Path string `json:"path,omitempty"`
	// URI is the request-target as dockerd received it.
	URI string `json:"uri,omitempty"`
	// Fields are the parts of the request body the decision looked at
	// (image, privileged, mounts, ...).
	Fields map[string]any `json:"fields,omitempty"`
	// Rule names the policy rule (or "plugin: ..." for a decision taken
	// before the policy, such as a revoked certificate).
	Rule string `json:"rule,omitempty"`
	// Reason says why, in words.
	Reason string `json:"reason,omitempty"`
	// Status is the HTTP status of the response (response phase only); 0
	// when dockerd did not know it: a hijacked or streamed response, or a
	// handler error (see authzRequest).
	Status int `json:"status,omitempty"`

	// Seq and Prev chain the trail (chain.go): Seq numbers the records
	// from 1, Prev is "sha256:HEX" of the previous line's bytes (without
	// its newline), GenesisPrev for the first record ever. Set by
	// AuditLog.Write; a value given by the caller is overwritten.
	Seq  uint64 `json:"seq,omitempty"`
	Prev string `json:"prev,omitempty"`
	// Issuer and CN are the client certificate's issuer (its RFC 2253
	// string) and subject common name, next to Serial.
	Issuer string `json:"issuer,omitempty"`
	CN     string `json:"cn,omitempty"`
	// UID, PID and Socket name the peer of a local call (its account's
	// name in User): the unix socket's peer credentials (SO_PEERCRED),
	// where the enforcement point can read them; empty otherwise.
	UID string `json:"uid,omitempty"`
	PID int    `json:"pid,omitempty"`
	// Comm is that process's command name (/proc/PID/comm), read while
	// a pidfd showed it was still the process that connected.
	Comm   string `json:"comm,omitempty"`
	Socket string `json:"socket,omitempty"`
	// DurationUS is the call's duration in microseconds, BytesIn and
	// BytesOut the bytes of its request and response bodies, where the
	// enforcement point sees the whole call (the plugin does not).
	DurationUS int64 `json:"duration_us,omitempty"`
	BytesIn    int64 `json:"bytes_in,omitempty"`
	BytesOut   int64 `json:"bytes_out,omitempty"`
}

// maxAuditValue bounds each string of a record, and maxAuditFields the
// fields as a whole: a caller must not be able to flush the trail's five
// rotated files with a few calls of huge names or paths (a record then
// keeps the value's start and says how long it was). A call allowed
// with more fields than maxAuditFields is denied instead (Policy.decide):
// an exec whose command began with 9 KB of padding ran with only the
// padding recorded (found by a red team). 8 KiB, not more: allowed
// creates with 60 KiB of fields (3,000 security options) rotated the
// trail out in seconds (a third round).
const (
	maxAuditValue  = 1024
	maxAuditFields = 8 << 10
)

// fieldsSize is the length of the fields' JSON, as the record holds them
// (0 for none; more than any bound for fields that cannot be marshalled,
// which no record would show).
func fieldsSize(f map[string]any) int {
	if len(f) == 0 {
		return 0
	}
	b, err := json.Marshal(f)
	if err != nil {
		return math.MaxInt
	}
	return len(b)
}

// bounded is r with long values cut, and its Fields marshalled (nil for
// none).
func (r AuditRecord) bounded() (AuditRecord, []byte) {
	for _, s := range []*string{&r.User, &r.Role, &r.Serial, &r.Source, &r.Method, &r.Path, &r.URI, &r.Rule, &r.Reason,
		&r.Issuer, &r.CN, &r.UID, &r.Socket} {
		*s = cut(*s, maxAuditValue)
	}
	if len(r.Fields) == 0 {
		return r, nil
	}
	b, err := json.Marshal(r.Fields)
	if err != nil || len(b) > maxAuditFields {
		r.Fields = map[string]any{"truncated": fmt.Sprintf("%d bytes of fields", len(b)), "start": cut(string(b), maxAuditValue)}
		b, _ = json.Marshal(r.Fields)
	}
	return r, b
}

// marshal is the bounded record's JSON line body (appendRecord).
func (r AuditRecord) marshal() []byte {
	r, fields := r.bounded()
	return appendRecord(make([]byte, 0, 512), &r, fields)
}

// cut keeps the first n bytes of s (whole runes), saying how long it was.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:i], len(s))
}

// MarshalJSON writes Time in UTC with a fixed nine-digit fraction, the
// other fields as their tags say (appendRecord).
func (r AuditRecord) MarshalJSON() ([]byte, error) {
	var fields []byte
	if len(r.Fields) > 0 {
		var err error
		if fields, err = json.Marshal(r.Fields); err != nil {
			return nil, err
		}
	}
	return appendRecord(make([]byte, 0, 512), &r, fields), nil
}

// AuditLog writes audit records as JSON lines to a file, rotated by size,
// and to another writer (stdout, for journald). Each line is chained to the
// one before it (chain.go), across rotations and restarts. It is safe for
// concurrent use.
type AuditLog struct {
	// qmu guards the records waiting for the file (queue) and whether a
	// writer is writing them (leading); qcond wakes the waiters.
	qmu     sync.Mutex
	qcond   sync.Cond
	queue   []*pendingRecord
	leading bool

	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	fi       os.FileInfo // f's identity, to notice path removed or replaced
	// watch says when path may name another file than f (check stats it
	// only then: a stat of the path was a third of a record's cost).
	watch   *dirwatch.Watch
	recheck bool
	size    int64
	also    io.Writer
	closed  bool
	// sync makes each write wait for fsync(2) (SyncEachRecord).
	sync bool

	// seq and head are the chain's position: the last record's Seq and
	// the hash of its line (GenesisPrev before the first record).
	seq  uint64
	head string
	// resync is set after a failed write: the file's end is read again
	// before the next write, to end a line the failure cut short.
	resync bool
	// batches counts the writes to the file (each of one or more records).
	batches uint64
	status  *trailStatus // nil without a file
	now     func() time.Time
}

// OpenAuditLog opens (creating it, mode 0600) the audit trail at path, whose
// directory must exist, and appends to it. When a write would take the file
// over maxSize bytes it is rotated: path.1 becomes path.2 and so on, path
// becomes path.1, and the oldest beyond maxFiles rotated files is dropped.
// maxSize <= 0 never rotates; maxFiles <= 0 keeps no rotated file. Every
// record is also written to also, when not nil. An empty path writes only to
// also.
//
// The chain goes on from the last complete line on disk (path, else path.1
// when path is empty). A last line cut short by a crash is ended with a
// newline and kept as it is, and a record saying so (PhaseTrail, RuleTorn)
// goes on from the last complete line. The trail's state is kept in
// path.status (TrailStatus). A trail that cannot be written at the start
// (a full disk) is no error: the writes fail, saying why, until it can.
//
// An existing file's looser mode is tightened to 0600: the trail names users
// and what they ran.
func OpenAuditLog(path string, maxSize int64, maxFiles int, also io.Writer) (*AuditLog, error) {
	l := &AuditLog{path: path, maxSize: maxSize, maxFiles: maxFiles, also: also, head: GenesisPrev, now: time.Now}
	l.qcond.L = &l.qmu
	if path == "" {
		return l, nil
	}
	// Watched before it is opened: a rename in between is heard.
	l.watch = dirwatch.Entries(filepath.Dir(path), filepath.Base(path))
	if err := l.open(); err != nil {
		l.watch.Close()
		return nil, err
	}
	l.status = openTrailStatus(path, l.now)
	if err := l.resume(true); err != nil {
		l.resync = true
		l.status.fail(err)
	}
	return l, nil
}

// SyncEachRecord makes every record wait for fsync(2) of the file before
// Write returns. Off by default: write(2) alone puts the record in the
// kernel's page cache, where it survives a crash or kill of the plugin;
// only a crash of the kernel or a power loss can then lose the last
// records, and fsync costs a disk flush per API call.
func (l *AuditLog) SyncEachRecord(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sync = on
}

// open opens l.path for appending and learns its size.
func (l *AuditLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log %q: %w", l.path, unwrapPath(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log %q: %w", l.path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("open audit log %q: not a regular file", l.path)
	}
	if fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("open audit log %q: %w", l.path, unwrapPath(err))
		}
	}
	l.f, l.fi, l.size = f, fi, fi.Size()
	return nil
}

// TrailError is a record that could not be written to the audit trail's
// file (or, without a file, to its only writer): the caller must not let
// the call it records change anything (see Plugin, Config.AuditFailure).
type TrailError struct{ Err error }

func (e *TrailError) Error() string { return e.Err.Error() }
func (e *TrailError) Unwrap() error { return e.Err }

// Write appends one record as one JSON line, chained to the one before,
// and returns once the line is in the file (write(2) returned; fsync too
// with SyncEachRecord), then written to also. A zero Time is set to now.
// When the file cannot be written the error is a *TrailError and also
// gets nothing (the caller records what it did instead with Fallback); an
// error of also alone is a plain error.
//
// Records written at the same time go to the file together, in one
// write(2) (with O_APPEND, so that readers never see half a line mixed
// with another) and one stat(2) of the path, as a database's group commit
// does: the first writer to find no write in progress writes every line
// queued by then, in the order they were queued, while the others wait
// for it. Each Write still returns only once its own line is in the file.
// Under a gateway's parallel calls this is most of what the trail costs
// (internal/bench/gatewaylat, 16 connections).
func (l *AuditLog) Write(r AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Seq, r.Prev = 0, ""
	p := &pendingRecord{body: r.marshal()}
	if l.path == "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.writeAlso(p.body)
	}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	for l.leading && !p.done {
		l.qcond.Wait()
	}
	if p.done {
		l.qmu.Unlock()
		return p.err
	}
	batch := l.queue
	l.queue, l.leading = nil, true
	l.qmu.Unlock()

	l.mu.Lock()
	l.writeBatch(batch)
	l.mu.Unlock()

	l.qmu.Lock()
	for _, q := range batch {
		q.done = true
	}
	l.leading = false
	l.qcond.Broadcast()
	l.qmu.Unlock()
	return p.err
}

// pendingRecord is a marshalled record waiting for the file, and what
// became of it.
type pendingRecord struct {
	body []byte
	done bool
	err  error
}

// writeAlso writes a record of a trail without a file to its only
// writer; l.mu is held.
func (l *AuditLog) writeAlso(body []byte) error {
	if l.closed {
		return &TrailError{errors.New("audit log is closed")}
	}
	line := l.chain(body)
	if _, err := l.also.Write(line); err != nil {
		return &TrailError{fmt.Errorf("write audit record: %w", err)}
	}
	l.advance(line)
	return nil
}

// writeBatch writes the lines of batch to the file, then to also, and
// sets each record's error; l.mu is held.
func (l *AuditLog) writeBatch(batch []*pendingRecord) {
	fail := func(err error) {
		for _, p := range batch {
			p.err = err
		}
	}
	if l.closed {
		fail(&TrailError{errors.New("audit log is closed")})
		return
	}
	lines, rerr, err := l.writeFile(batch)
	if err != nil {
		l.status.fail(err)
		fail(&TrailError{err})
		return
	}
	l.status.ok()
	if l.also != nil {
		if _, err := l.also.Write(lines); err != nil {
			rerr = errors.Join(rerr, fmt.Errorf("write audit record: %w", err))
		}
	}
	fail(rerr)
}

// Fallback records a call whose record Write could not put in the file:
// it goes to also alone (journald), outside the chain, and the trail's
// status counts it, and counts the call as denied for it when denied.
func (l *AuditLog) Fallback(r AuditRecord, denied bool) error {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Seq, r.Prev = 0, ""
	line := r.marshal()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.unrecorded(denied)
	if l.also == nil || l.f == nil {
		return nil
	}
	if _, err := l.also.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	return nil
}

// writeFile rotates if needed and appends the lines of the batch's
// marshalled record bodies, chained in order, in one write; l.mu is held.
// A write cut short is undone (the file truncated back, the chain left
// where it was), or, when that fails too, ended by the next write
// (resync). A rotation that fails is rerr: the lines are in the file
// still open, only the size limit is missed.
func (l *AuditLog) writeFile(batch []*pendingRecord) (lines []byte, rerr, err error) {
	if err := l.check(); err != nil {
		return nil, nil, err
	}
	// Rotated before the lines are chained: the rotation's own record
	// comes first in the new file.
	if l.maxSize > 0 && l.size > 0 && l.size+batchSize(batch) > l.maxSize {
		if rerr = l.rotate(); rerr != nil {
			// Keep appending to the file still open, and try again only
			// after another maxSize bytes rather than shifting the rotated
			// files on every record.
			l.size = 0
		}
	}
	seq, head := l.seq, l.head
	for _, p := range batch {
		line := l.chain(p.body)
		l.advance(line)
		if len(batch) == 1 {
			lines = line
		} else {
			lines = append(lines, line...)
		}
	}
	before := l.size
	n, err := l.f.Write(lines)
	l.size += int64(n)
	l.batches++
	if err == nil && l.sync {
		err = l.f.Sync()
	}
	if err != nil {
		l.seq, l.head = seq, head
		// Written whole but not synced counts as not written: the
		// callers are told so (and deny), so the lines, which say
		// their calls went on, are taken back too.
		if n > 0 && l.f.Truncate(before) == nil {
			l.size = before
		}
		l.resync = true
		return nil, rerr, fmt.Errorf("write audit log %q: %w", l.path, unwrapPath(err))
	}
	return lines, rerr, nil
}

// check reopens a trail whose file was removed or replaced under it (the
// chain goes on in the new file, from the record before, so that verify
// shows what was lost) and ends a line a failed write cut short.
func (l *AuditLog) check() error {
	// A change heard is kept until a stat has dealt with it.
	l.recheck = l.recheck || l.watch.Changed()
	if l.recheck {
		if fi, err := os.Stat(l.path); err != nil || !os.SameFile(fi, l.fi) {
			old := l.f
			if err := l.open(); err != nil {
				return err
			}
			old.Close()
			l.recheck = false
			if err := l.appendLine(l.chain(l.trailRecord(RuleReplaced,
				fmt.Sprintf("the audit log %s was removed or replaced while the plugin had it open: its records up to seq %d are gone from this place", l.path, l.seq)))); err != nil {
				return err
			}
		}
		l.recheck = false
	}
	if l.resync {
		if err := l.resume(false); err != nil {
			return err
		}
		l.resync = false
	}
	return nil
}

// appendLine writes a chained line the log makes itself and advances the
// chain.
func (l *AuditLog) appendLine(line []byte) error {
	if err := l.appendRaw(line); err != nil {
		l.resync = true
		return err
	}
	l.advance(line)
	return nil
}

// batchSize is about how many bytes the batch's lines take: their
// bodies and the chain's seq and prev.
func batchSize(batch []*pendingRecord) int64 {
	n := 0
	for _, p := range batch {
		n += len(p.body) + 100
	}
	return int64(n)
}

// rotate shifts path.N-1 to path.N ... path to path.1 and opens a new path;
// l.mu is held. On error the current file stays open, so that no record is
// lost, only the size limit. When the shift drops a file (path.N, or path
// itself with no rotated file kept), a RuleRotatedOut record names the
// last record it held.
func (l *AuditLog) rotate() error {
	dropped := l.path
	if l.maxFiles > 0 {
		dropped = rotatedName(l.path, l.maxFiles)
	}
	var gone chainHead
	var goneHash string
	if last, _, err := readTail(dropped); err == nil && len(last) > 0 {
		gone, _ = parseHead(last)
		goneHash = lineHash(last)
	}
	record := func() error {
		if gone.Seq == 0 {
			return nil
		}
		return l.appendLine(l.chain(l.rotatedRecord(dropped, gone.Seq, goneHash)))
	}
	// Written before the renames, at the end of the file that becomes
	// path.1: a crash between the two leaves the record of a drop not
	// done yet, which verify takes as records kept longer, never as
	// records missing (written after, a crash made a trail no one
	// touched look tampered with: a second red team round). Without a
	// rotated file, the file dropped is this one: the record goes first
	// in the next.
	if l.maxFiles > 0 {
		if err := record(); err != nil {
			return err
		}
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("rotate audit log %q: %w", l.path, unwrapPath(err))
	}
	for i := l.maxFiles - 1; i >= 1; i-- {
		err := os.Rename(rotatedName(l.path, i), rotatedName(l.path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate audit log: %w", err)
		}
	}
	var err error
	if l.maxFiles > 0 {
		err = os.Rename(l.path, rotatedName(l.path, 1))
	} else {
		err = os.Remove(l.path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	old := l.f
	if err := l.open(); err != nil {
		return err
	}
	old.Close()
	if l.maxFiles > 0 {
		return nil
	}
	return record()
}

func rotatedName(path string, i int) string { return path + "." + strconv.Itoa(i) }

// Close flushes the file to disk and closes it; Write fails afterwards.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.status.close()
	l.watch.Close()
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close audit log %q: %w", l.path, unwrapPath(err))
	}
	return nil
}

// AuditFilter selects audit records; zero fields select everything.
type AuditFilter struct {
	// User keeps the records of this user only.
	User string
	// Since keeps the records at or after this time.
	Since time.Time
	// Decision keeps "allow", "deny" or "warn" records only.
	Decision string
}

func (f AuditFilter) match(r *AuditRecord) bool {
	return (f.User == "" || r.User == f.User) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
		(f.Decision == "" || r.Decision == f.Decision)
}

// ReadAudit reads the audit trail at path and its rotated files, oldest
// first (path.N ... path.1, then path), and returns the records f selects,
// in that order. Lines that are not a JSON record (the torn last line of a
// crash, say) are skipped. It is an error when neither path nor any
// rotated file exists.
func ReadAudit(path string, f AuditFilter) ([]AuditRecord, error) {
	files, err := auditFiles(path)
	if err != nil {
		return nil, err
	}
	var out []AuditRecord
	for _, name := range files {
		if out, err = readAuditFile(name, f, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// auditFiles lists path's rotated files, highest number (oldest) first,
// then path itself if it exists.
func auditFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read audit log %q: %w", path, unwrapPath(err))
	}
	type rotated struct {
		n    int
		name string
	}
	var rs []rotated
	current := false
	for _, e := range entries {
		name := e.Name()
		if name == base {
			current = true
			continue
		}
		suffix, ok := strings.CutPrefix(name, base+".")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 1 || strconv.Itoa(n) != suffix {
			continue
		}
		rs = append(rs, rotated{n, filepath.Join(dir, name)})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n })
	var files []string
	for _, r := range rs {
		files = append(files, r.name)
	}
	if current {
		files = append(files, path)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read audit log %q: %w", path, fs.ErrNotExist)
	}
	return files, nil
}

func readAuditFile(name string, f AuditFilter, out []AuditRecord) ([]AuditRecord, error) {
	file, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		// Rotated away between the listing and now.
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log %q: %w", name, unwrapPath(err))
	}
	defer file.Close()
	br := bufio.NewReader(file)
	for {
		line, err := br.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var r AuditRecord
			if json.Unmarshal(line, &r) == nil && !r.Time.IsZero() && f.match(&r) {
				out = append(out, r)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read audit log %q: %w", name, err)
		}
	}
}

// unwrapPath drops the *fs.PathError wrapper, whose text repeats the path
// the caller's message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
