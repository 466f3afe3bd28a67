package recording

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a fake clock stepping 100 ms at each reading.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(100 * time.Millisecond); return c.t }

var t0 = time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)

func newRec(t *testing.T, dir string, tty bool, id string) *Recorder {
	t.Helper()
	c := &clock{t: t0}
	r, err := Create(dir, Header{DTLS: Meta{ID: id, Kind: "exec", User: "alice", Container: "c0ffee", Command: []string{"sh"}, TTY: tty, Start: t0}}, c.now, nil)
	require.NoError(t, err)
	return r
}

// frame is a Docker multiplexed frame (moby pkg/stdcopy).
func frame(stream byte, s string) []byte {
	h := make([]byte, 8, 8+len(s))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(s)))
	return append(h, s...)
}

func readEvents(t *testing.T, path string) (Header, []Event) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	require.True(t, sc.Scan())
	var h Header
	require.NoError(t, json.Unmarshal(sc.Bytes(), &h))
	var evs []Event
	for sc.Scan() {
		// Each line is JSON encoding/json reads.
		var raw []any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &raw), sc.Text())
		ev, err := parseEvent(sc.Bytes())
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	return h, evs
}

func TestRecordDemultiplexesFramesCutAnywhere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions")
	r := newRec(t, dir, false, "id-1")
	var stream []byte
	var want strings.Builder
	for i := range 50 {
		o, e := strings.Repeat("o", i%7)+"out\n", "err "+strings.Repeat("é", i%3)+"\n"
		stream = append(append(stream, frame(1, o)...), frame(2, e)...)
		want.WriteString(o + e)
	}
	// Pieces of every size, cutting headers, payloads and UTF-8 runes.
	rng := rand.New(rand.NewSource(1))
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.Intn(13))
		require.NoError(t, r.Output(stream[:n]))
		stream = stream[n:]
	}
	require.NoError(t, r.Close("cut: certificate revoked"))
	st, err := os.Stat(r.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dst.Mode().Perm())

	h, evs := readEvents(t, r.Path())
	assert.Equal(t, 2, h.Version)
	assert.Equal(t, t0.Unix(), h.Timestamp)
	assert.Equal(t, "alice", h.DTLS.User)
	assert.Equal(t, "o", h.DTLS.Stderr)
	var got strings.Builder
	for _, ev := range evs[:len(evs)-1] {
		assert.Equal(t, CodeOutput, ev.Code)
		assert.True(t, utf8.ValidString(ev.Data))
		got.WriteString(ev.Data)
	}
	assert.Equal(t, want.String(), got.String())
	last := evs[len(evs)-1]
	assert.Equal(t, Event{Time: last.Time, Code: "m", Data: "cut: certificate revoked"}, last)
	assert.Greater(t, last.Time, evs[0].Time)
}

func TestRecordTTYRawAndInput(t *testing.T) {
	dir := t.TempDir()
	r := newRec(t, dir, true, "id-2")
	require.NoError(t, r.Output([]byte("$ ")))
	require.NoError(t, r.Input([]byte("ls\r")))
	// Control bytes, quotes, an invalid byte, U+2028.
	require.NoError(t, r.Output([]byte("\x1b[1mbold\x1b[0m \"q\" \\ \xff \u2028\r\n")))
	require.NoError(t, r.Close(EndedStream))
	_, evs := readEvents(t, r.Path())
	require.Len(t, evs, 4)
	assert.Equal(t, []string{"o", "i", "o", "m"}, []string{evs[0].Code, evs[1].Code, evs[2].Code, evs[3].Code})
	assert.Equal(t, "ls\r", evs[1].Data)
	assert.Equal(t, "\x1b[1mbold\x1b[0m \"q\" \\ \ufffd \u2028\r\n", evs[2].Data)
	assert.Equal(t, EndedStream, evs[3].Data)
	assert.InDelta(t, 0.1, evs[0].Time, 1e-9)
}

// A full disk (/dev/full) fails the recording: the next Output says so,
// and Close.
func TestRecordWriteFailure(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full")
	}
	defer full.Close()
	r, err := create(t.TempDir(), Header{DTLS: Meta{ID: "full", TTY: true, Start: t0}}, nil, full, nil)
	require.NoError(t, err)
	big := bytes.Repeat([]byte("x"), bufferSize*2)
	require.NoError(t, r.Output(big), "the first write is queued")
	deadline := time.Now().Add(5 * time.Second)
	for r.Output([]byte("y")) == nil {
		require.True(t, time.Now().Before(deadline), "no write error within 5s")
		time.Sleep(time.Millisecond)
	}
	err = r.Close("x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left")
}

func TestCreateRefusesBadIDAndExisting(t *testing.T) {
	dir := t.TempDir()
	_, err := Create(dir, Header{DTLS: Meta{ID: "../x"}}, nil, nil)
	assert.EqualError(t, err, `recording id "../x": want letters, digits, '-' and '_'`)
	r := newRec(t, dir, true, "same")
	require.NoError(t, r.Close(EndedStream))
	_, err = Create(dir, Header{DTLS: Meta{ID: "same"}}, nil, nil)
	assert.ErrorIs(t, err, os.ErrExist)
}

func TestListPlayPrune(t *testing.T) {
	dir := t.TempDir()
	a := newRec(t, dir, true, "a")
	require.NoError(t, a.Output([]byte("hello ")))
	require.NoError(t, a.Output([]byte("world\r\n")))
	require.NoError(t, a.Close(EndedStream))
	c := &clock{t: t0.Add(time.Hour)}
	b, err := Create(dir, Header{DTLS: Meta{ID: "b", Kind: "attach", User: "bob", Container: "deadbeef", ContainerName: "web", Start: t0.Add(time.Hour)}}, c.now, nil)
	require.NoError(t, err)
	require.NoError(t, b.Output(frame(1, "x\n")))
	require.NoError(t, b.Close("cut: revoked"))

	all, err := List(dir, Filter{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "a", all[0].DTLS.ID)
	assert.Equal(t, EndedStream, all[0].Ended)
	assert.Equal(t, 300*time.Millisecond, all[0].Duration)
	assert.Equal(t, "cut: revoked", all[1].Ended)
	for _, f := range []Filter{{User: "bob"}, {Container: "web"}, {Container: "dead"}, {Since: t0.Add(time.Minute)}} {
		got, err := List(dir, f)
		require.NoError(t, err)
		require.Len(t, got, 1, "%+v", f)
		assert.Equal(t, "b", got[0].DTLS.ID)
	}
	none, err := List(filepath.Join(dir, "missing"), Filter{})
	require.NoError(t, err)
	assert.Empty(t, none)

	var out bytes.Buffer
	var slept []time.Duration
	s, err := Play(context.Background(), dir, "a", &out, PlayOptions{Speed: 2, Sleep: func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}})
	require.NoError(t, err)
	assert.Equal(t, "hello world\r\n", out.String())
	assert.Equal(t, EndedStream, s.Ended)
	assert.Equal(t, []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}, slept)
	_, err = Play(context.Background(), dir, "nope", &out, PlayOptions{})
	assert.ErrorIs(t, err, ErrNotFound)

	// A recording cut in the middle of its last line (the gateway was
	// killed) plays up to it and lists with no closing marker; a broken
	// line before the last is an error.
	cut, err := os.ReadFile(filepath.Join(dir, "a.cast"))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(cut), "\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.cast"), []byte(lines[0]+lines[1]+lines[2][:7]), 0o600))
	out.Reset()
	s, err = Play(context.Background(), dir, "c", &out, PlayOptions{Terminal: true})
	require.NoError(t, err)
	assert.Equal(t, "hello "+termReset, out.String(), "on a terminal, a reset ends the output")
	assert.Empty(t, s.Ended)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.cast"), []byte(lines[0]+lines[1][:5]+"\n"+lines[2]), 0o600))
	_, err = Play(context.Background(), dir, "c", &out, PlayOptions{})
	assert.ErrorContains(t, err, "line 2: not an event line")
	require.NoError(t, os.Remove(filepath.Join(dir, "c.cast")))

	// Age: a is made old; size: only one fits.
	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "a.cast"), old, old))
	size := sizeOf(t, dir, "a")
	removed, err := Prune(dir, Retention{MaxAge: 24 * time.Hour}, time.Now(), map[string]bool{})
	require.NoError(t, err)
	assert.Equal(t, []Removed{{ID: "a", Size: size, User: "alice", Command: []string{"sh"}, Old: true}}, removed, "named after whose session it was")
	removed, err = Prune(dir, Retention{MaxSize: 1}, time.Now(), map[string]bool{"b": true})
	require.NoError(t, err)
	assert.Empty(t, removed, "an open recording is kept")
	size = sizeOf(t, dir, "b")
	removed, err = Prune(dir, Retention{MaxSize: 1}, time.Now(), nil)
	require.NoError(t, err)
	require.Len(t, removed, 1)
	assert.Equal(t, Removed{ID: "b", Size: size, User: "bob", Command: removed[0].Command}, removed[0])
}

func sizeOf(t *testing.T, dir, id string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, id+Ext))
	if err != nil {
		return -1 // removed already: the caller's expectation fails
	}
	return fi.Size()
}

// BenchmarkRecord: the recorder alone, in MB/s of stream written to
// disk, on a tty's
// text and on Docker's multiplexed frames of binary zeros (the exec
// bench's 'head -c ... /dev/zero', the worst case: six bytes of JSON per
// byte).
func BenchmarkRecord(b *testing.B) {
	text := bytes.Repeat([]byte("total 48\r\ndrwxr-xr-x  2 root root 4096 Dec  7 07:00 \x1b[01;34mbin\x1b[0m\r\n"), 4000)[:256<<10]
	zeros := make([]byte, 256<<10)
	framed := append(frame(1, string(zeros[:len(zeros)-8])), nil...)
	for _, c := range []struct {
		name string
		tty  bool
		data []byte
	}{{"tty-text", true, text}, {"frames-zeros", false, framed}, {"tty-zeros", true, zeros}} {
		b.Run(c.name, func(b *testing.B) {
			r, err := Create(b.TempDir(), Header{DTLS: Meta{ID: "bench", TTY: c.tty, Start: time.Now()}}, nil, nil)
			require.NoError(b, err)
			b.SetBytes(int64(len(c.data)))
			b.ResetTimer()
			for range b.N {
				if err := r.Output(c.data); err != nil {
					b.Fatal(err)
				}
			}
			// Until all is on disk: the queue drained, the file synced.
			require.NoError(b, r.Close(EndedStream))
			b.StopTimer()
		})
	}
}

// The event encoder writes what encoding/json reads back as the same
// string it makes of the bytes (invalid UTF-8 as U+FFFD).
func TestAppendJSONStringAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	alphabet := []byte("a\x00\x1b\n\r\t\"\\\x7f\xff\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80 ")
	for range 5000 {
		// Mostly plain text, so that runs of 8 plain bytes and more
		// (the word-at-a-time path) meet every other kind of byte.
		p := make([]byte, rng.Intn(100))
		for i := range p {
			p[i] = alphabet[rng.Intn(len(alphabet))]
			if rng.Intn(5) > 0 {
				p[i] = byte(0x20 + rng.Intn(0x60))
			}
		}
		enc := appendJSONString(nil, p)
		var got string
		require.NoError(t, json.Unmarshal(enc, &got), "%q -> %s", p, enc)
		want, err := json.Marshal(string(p))
		require.NoError(t, err)
		var wantS string
		require.NoError(t, json.Unmarshal(want, &wantS))
		assert.Equal(t, wantS, got, "%q", p)
	}
}

// TestBudget: the open recordings that share a budget write at most its
// bytes together; the one whose event does not fit fails with ErrBudget
// and writes no more; a closed one gives its bytes back.
func TestBudget(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1700000000, 0)
	b := NewBudget(4096)
	one, err := Create(dir, Header{DTLS: Meta{ID: "one", TTY: true, Start: t0}}, nil, b)
	require.NoError(t, err)
	two, err := Create(dir, Header{DTLS: Meta{ID: "two", TTY: true, Start: t0}}, nil, b)
	require.NoError(t, err)
	require.NoError(t, one.Output(bytes.Repeat([]byte("a"), 1500)))
	// Zero bytes are six each in JSON: this one does not fit.
	require.NoError(t, two.Output(make([]byte, 1000)))
	assert.ErrorIs(t, two.Close("ended"), ErrBudget)
	require.NoError(t, one.Close("ended"))
	st, err := os.Stat(filepath.Join(dir, "two"+Ext))
	require.NoError(t, err)
	assert.Less(t, st.Size(), int64(1000), "the event that did not fit was written")
	// Both closed: the whole budget is there again.
	three, err := Create(dir, Header{DTLS: Meta{ID: "three", TTY: true, Start: t0}}, nil, b)
	require.NoError(t, err)
	require.NoError(t, three.Output(bytes.Repeat([]byte("b"), 3500)))
	require.NoError(t, three.Close("ended"))
	// Without a bound, nothing fails.
	assert.Nil(t, NewBudget(0))
	four, err := Create(dir, Header{DTLS: Meta{ID: "four", TTY: true, Start: t0}}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, four.Output(make([]byte, 1<<20)))
	require.NoError(t, four.Close("ended"))
}
