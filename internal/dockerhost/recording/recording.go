// Package recording owns the gateway's recordings of exec and attach
// streams: one asciicast v2 file per stream
// (https://docs.asciinema.org/manual/asciicast/v2/), a JSON header line
// then one [time, code, data] event per line, that asciinema plays as it
// is. The header's "dtls" key (asciinema ignores keys it does not know)
// names the identity, the container, the command, the tty flag and the
// start time; the last event is a marker ("m") that says how the stream
// ended. The package writes recordings as the stream goes, lists them,
// reads them back and prunes them by age and size.
package recording

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Ext is the extension of a recording's file.
const Ext = ".cast"

// DefaultWidth and DefaultHeight are the terminal size a header names
// when the stream's is not known (dockerd's exec inspect does not give
// it; the client sends it in later resize calls).
const (
	DefaultWidth  = 80
	DefaultHeight = 24
)

// Event codes of asciicast v2. Without a tty, stderr is recorded as "o"
// too, in its place between stdout's bytes: asciicast has no code of its
// own for it and players show "o" only.
const (
	CodeOutput = "o"
	CodeInput  = "i"
	CodeMarker = "m"
)

// Ended* are the reasons of the closing marker the gateway writes.
const (
	EndedStream = "stream ended"
)

// Meta is what the header's "dtls" key holds.
type Meta struct {
	ID string `json:"id"`
	// Kind is "exec" or "attach".
	Kind   string `json:"kind"`
	User   string `json:"user,omitempty"`
	Serial string `json:"serial,omitempty"`
	Issuer string `json:"issuer,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Container is the container's ID, ContainerName its name.
	Container     string   `json:"container,omitempty"`
	ContainerName string   `json:"container_name,omitempty"`
	ExecID        string   `json:"exec_id,omitempty"`
	Command       []string `json:"command,omitempty"`
	RunAs         string   `json:"run_as,omitempty"`
	TTY           bool     `json:"tty"`
	// Input says whether the stream's input is recorded ("i" events).
	Input bool `json:"input"`
	// Start is when the stream began (the header's "timestamp" in
	// seconds, here with nanoseconds, UTC).
	Start time.Time `json:"start"`
	// Stderr says how stderr is recorded: "o" events, in order with
	// stdout's (no tty), or "tty" (a tty has no separate stderr).
	Stderr string `json:"stderr"`
}

// Header is a recording's first line.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	DTLS      Meta              `json:"dtls"`
}

// NewID is a recording's ID: its start time (sorts by time) and 8 random
// hex digits.
func NewID(start time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// validID reports whether id can name a recording's file (no path in it).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// flushEvery bounds how long an event stays in the writer's buffer.
const flushEvery = time.Second

// bufferSize is the file writer's buffer.
const bufferSize = 64 << 10

// maxEncBuffer bounds the encoding buffer kept between events (an
// event is at most one read of the stream, 6 bytes of JSON per byte).
const maxEncBuffer = 2 << 20

// queueLen bounds the reads waiting to be encoded and written: a stream
// that outruns its recording waits (nothing is dropped), and a
// recording holds at most queueLen reads of its stream (the gateway reads
// 256 KiB at most) besides its buffers.
const queueLen = 8

// chunk is one read of the stream, as it is, with its time.
type chunk struct {
	t    time.Time
	code string
	b    []byte
}

// Recorder writes one recording. Output and Input may be called from the
// two directions' goroutines at once: they queue a copy of the bytes,
// and the recorder's own goroutine demultiplexes, encodes and writes
// them, so a stream does not wait on the encoding or the disk unless it
// is queueLen reads ahead.
type Recorder struct {
	f     *os.File
	w     *bufio.Writer
	start time.Time
	now   func() time.Time

	// The writing goroutine's own: held are the bytes of a UTF-8
	// sequence cut by a read, by code, prefixed to the next event of
	// that code; demux is the 8-byte frame reader's state (no tty);
	// enc is the encoding buffer, reused.
	held    map[string][]byte
	demux   demuxer
	scratch []byte
	enc     []byte

	q    chan chunk
	done chan struct{}
	// mu guards closed and the sends on q.
	mu     sync.Mutex
	closed bool
	emu    sync.Mutex
	err    error
	// budget is what the file's bytes are taken from while it is open,
	// charged what it has taken (the writing goroutine's, then Close's).
	budget  *Budget
	charged int64
}

// ErrBudget is the failure of a recording whose next event would take
// the recordings being written past their Budget.
var ErrBudget = errors.New("the recordings being written have reached the sessions' size bound (--sessions-max-size)")

// Budget bounds the bytes the open recordings that share it write,
// together: retention (Prune) removes finished recordings only, before a
// new one starts, so without it one endless stream ('cat /dev/zero' in
// an exec, each zero byte six in JSON) would fill the disk that the
// audit trail shares. A nil Budget bounds nothing.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget is a Budget of max bytes (nil for max <= 0: no bound).
func NewBudget(max int64) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max}
}

// take reserves n bytes, or reports false when they are not there.
func (b *Budget) take(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes a closed recording held.
func (b *Budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

// Create writes the header of a new recording in dir (created 0700 when
// missing), file 0600, and starts its writer. Its bytes, header
// included, are taken from budget while it is open (nil: no bound); an
// event that does not fit fails it with ErrBudget.
func Create(dir string, h Header, now func() time.Time, budget *Budget) (*Recorder, error) {
	return create(dir, h, now, nil, budget)
}

// create is Create; events go to out instead of the file when it is
// not nil (tests: a full disk).
func create(dir string, h Header, now func() time.Time, out io.Writer, budget *Budget) (*Recorder, error) {
	if !validID(h.DTLS.ID) {
		return nil, fmt.Errorf("recording id %q: want letters, digits, '-' and '_'", h.DTLS.ID)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the sessions directory %q: %w", dir, err)
	}
	if now == nil {
		now = time.Now
	}
	h.Version = 2
	if h.Width <= 0 || h.Height <= 0 {
		h.Width, h.Height = DefaultWidth, DefaultHeight
	}
	h.Timestamp = h.DTLS.Start.Unix()
	if h.DTLS.Stderr == "" {
		h.DTLS.Stderr = CodeOutput
		if h.DTLS.TTY {
			h.DTLS.Stderr = "tty"
		}
	}
	line, err := marshalHeader(h)
	if err != nil {
		return nil, err
	}
	if !budget.take(int64(len(line))) {
		return nil, ErrBudget
	}
	path := filepath.Join(dir, h.DTLS.ID+Ext)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create recording %q: %w", path, err)
	}
	if err == nil {
		_, err = f.Write(line)
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}
	if err != nil {
		budget.give(int64(len(line)))
		return nil, fmt.Errorf("create recording %q: %w", path, err)
	}
	if out == nil {
		out = f
	}
	r := &Recorder{f: f, w: bufio.NewWriterSize(out, bufferSize), start: h.DTLS.Start, now: now,
		held: map[string][]byte{}, q: make(chan chunk, queueLen), done: make(chan struct{}),
		budget: budget, charged: int64(len(line))}
	r.demux.tty = h.DTLS.TTY
	go r.run()
	return r, nil
}

// Path is the recording's file.
func (r *Recorder) Path() string { return r.f.Name() }

func (r *Recorder) fail(err error) {
	if err == nil {
		return
	}
	r.emu.Lock()
	defer r.emu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("write recording %q: %w", r.f.Name(), err)
	}
}

// Err is the first write error: the recording is incomplete from there.
func (r *Recorder) Err() error {
	r.emu.Lock()
	defer r.emu.Unlock()
	return r.err
}

// run encodes and writes what Output and Input queued, flushing at least
// every flushEvery, until Close.
func (r *Recorder) run() {
	defer close(r.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case c, ok := <-r.q:
			if !ok {
				return
			}
			if r.Err() != nil {
				continue // the rest of a failed recording is dropped
			}
			if c.code == CodeOutput && !r.demux.tty {
				r.demux.feed(c.b, func(stream byte, b []byte) {
					// stdin (0) never comes back; stdout (1) and stderr
					// (2) are both output; systemerr (3) too (moby
					// stdcopy.Systemerr).
					r.event(c.t, CodeOutput, b)
				})
				continue
			}
			r.event(c.t, c.code, c.b)
		case <-t.C:
			if r.w.Buffered() > 0 && r.Err() == nil {
				r.fail(r.w.Flush())
			}
		}
	}
}

// Output records bytes dockerd sent: as they are with a tty, else
// Docker's multiplexed stream (8-byte frame headers, moby
// pkg/stdcopy), whose payloads are recorded, stdout and stderr alike.
// It returns the first write error, if one happened already.
func (r *Recorder) Output(p []byte) error { return r.put(CodeOutput, p) }

// Input records bytes the client sent to the stream.
func (r *Recorder) Input(p []byte) error { return r.put(CodeInput, p) }

func (r *Recorder) put(code string, p []byte) error {
	if err := r.Err(); err != nil {
		return err
	}
	c := chunk{t: r.now(), code: code, b: bytes.Clone(p)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.q <- c
	}
	return nil
}

// Close writes what is queued, the closing marker with why, flushes,
// syncs and closes the file.
func (r *Recorder) Close(why string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.Err()
	}
	r.closed = true
	close(r.q)
	r.mu.Unlock()
	<-r.done
	if r.Err() == nil {
		t := r.now()
		for code, b := range r.held {
			if len(b) > 0 {
				r.write(t, code, b)
			}
		}
		r.write(t, CodeMarker, []byte(why))
		r.fail(r.w.Flush())
	}
	if r.Err() == nil {
		r.fail(r.f.Sync())
	}
	r.fail(r.f.Close())
	// Closed, the file is retention's to bound (Prune).
	r.budget.give(r.charged)
	return r.Err()
}

// event writes one event of p, holding back a UTF-8 sequence p ends in
// the middle of (a read may cut one) until the next event of that code.
func (r *Recorder) event(t time.Time, code string, p []byte) {
	if h := r.held[code]; len(h) > 0 {
		r.scratch = append(append(r.scratch[:0], h...), p...)
		p = r.scratch
		r.held[code] = h[:0]
	}
	cut := incompleteTail(p)
	if cut > 0 {
		r.held[code] = append(r.held[code][:0], p[len(p)-cut:]...)
		p = p[:len(p)-cut]
	}
	if len(p) == 0 {
		return
	}
	r.write(t, code, p)
}

// write writes [t, code, p] and a newline.
func (r *Recorder) write(t time.Time, code string, p []byte) {
	if r.Err() != nil {
		return
	}
	secs := t.Sub(r.start).Seconds()
	if secs < 0 {
		secs = 0
	}
	b := append(r.enc[:0], '[')
	b = strconv.AppendFloat(b, secs, 'f', 6, 64)
	b = append(append(append(b, `, "`...), code...), `", `...)
	b = append(appendJSONString(b, p), "]\n"...)
	if !r.budget.take(int64(len(b))) {
		r.fail(ErrBudget)
		return
	}
	r.charged += int64(len(b))
	_, err := r.w.Write(b)
	r.fail(err)
	if cap(b) <= maxEncBuffer {
		r.enc = b
	}
}

// incompleteTail is the length of a UTF-8 sequence p ends in the middle
// of (0 when p ends whole, or in bytes that are no UTF-8 at all).
func incompleteTail(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		c := p[len(p)-i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 {
			// A leading byte: is the sequence it starts longer than what
			// is there?
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if need > i && c < 0xF8 {
				return i
			}
			return 0
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// ascii is the JSON form of each ASCII byte: itself, or its escape
// (\n, \", \u001b, ...), and its length.
var ascii = func() (t [utf8.RuneSelf]struct {
	b [6]byte
	n int
}) {
	for c := range utf8.RuneSelf {
		e := string(rune(c))
		switch {
		case c == '"' || c == '\\':
			e = `\` + e
		case c == '\n':
			e = `\n`
		case c == '\r':
			e = `\r`
		case c == '\t':
			e = `\t`
		case c < 0x20:
			e = `\u00` + string(hexDigits[c>>4]) + string(hexDigits[c&0xF])
		}
		t[c].n = copy(t[c].b[:], e)
	}
	return t
}()

// SWAR constants: each byte of a word at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainRun is the length of p's leading run of bytes JSON takes as they
// are (0x20..0x7f but '"' and '\\'), 8 bytes at a time while it can (a
// word with no byte below 0x20, none at or above 0x80, no '"', no '\\':
// the classic has-zero-byte test, Hacker's Delight 6-1), then byte by
// byte.
func plainRun(p []byte) int {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := binary.LittleEndian.Uint64(p[i:])
		q, bs := v^(ones*'"'), v^(ones*'\\')
		if (v-ones*0x20|v|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for ; i < len(p) && p[i] < utf8.RuneSelf && ascii[p[i]].n == 1; i++ {
	}
	return i
}

// appendJSONString appends p as a JSON string: valid UTF-8 as it is
// (escaped where JSON asks), each invalid byte as U+FFFD, as
// encoding/json and asciinema do. It sizes dst once for the worst case
// (6 bytes a byte) and writes in place: a stream of control bytes
// ('head -c ... /dev/zero') is the costly case.
func appendJSONString(dst, p []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 6*len(p)+2)
	b := dst[:cap(dst)]
	b[n] = '"'
	j := n + 1
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			e := &ascii[c]
			if e.n == 1 {
				k := plainRun(p[i:])
				j += copy(b[j:], p[i:i+k])
				i += k
				continue
			}
			copy(b[j:j+6], e.b[:])
			j += e.n
			i++
			continue
		}
		rn, size := utf8.DecodeRune(p[i:])
		switch {
		case rn == utf8.RuneError && size == 1:
			j += copy(b[j:], `\ufffd`)
		case rn == '\u2028' || rn == '\u2029':
			// Escaped as encoding/json does: they end lines in
			// JavaScript, where players run.
			j += copy(b[j:], `\u202`)
			b[j] = hexDigits[rn&0xF]
			j++
		default:
			j += copy(b[j:], p[i:i+size])
		}
		i += size
	}
	b[j] = '"'
	return b[:j+1]
}

// demuxer reads Docker's multiplexed stream as it comes, in pieces of
// any size: an 8-byte header (stream type, 3 zero bytes, big-endian
// uint32 length; moby pkg/stdcopy), then that many bytes of payload. It
// holds at most a header, never a payload.
type demuxer struct {
	tty    bool
	hdr    [8]byte
	nhdr   int
	left   uint32
	stream byte
}

func (d *demuxer) feed(p []byte, emit func(stream byte, b []byte)) {
	for len(p) > 0 {
		if d.left == 0 {
			k := copy(d.hdr[d.nhdr:], p)
			d.nhdr += k
			p = p[k:]
			if d.nhdr < 8 {
				return
			}
			d.nhdr = 0
			d.stream = d.hdr[0]
			d.left = uint32(d.hdr[4])<<24 | uint32(d.hdr[5])<<16 | uint32(d.hdr[6])<<8 | uint32(d.hdr[7])
			continue
		}
		n := min(uint32(len(p)), d.left)
		emit(d.stream, p[:n])
		d.left -= n
		p = p[n:]
	}
}

// marshalHeader is the header's JSON line.
func marshalHeader(h Header) ([]byte, error) {
	b, err := jsonMarshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode a recording's header: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrNotFound is returned for an ID with no recording.
var ErrNotFound = errors.New("no such recording")
