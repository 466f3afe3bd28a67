package recording

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// Summary is a recording as 'dtls sessions ls' shows it.
type Summary struct {
	Header
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Duration is the time of the last event.
	Duration time.Duration `json:"duration"`
	// Ended is the closing marker's text; empty when the recording has
	// none (its stream is open, or the gateway was killed).
	Ended string `json:"ended,omitempty"`
}

// Filter selects recordings: empty fields select all.
type Filter struct {
	User string
	// Container matches the container's ID (or a prefix of it) or name.
	Container string
	Since     time.Time
}

func (f Filter) match(h Header) bool {
	m := h.DTLS
	switch {
	case f.User != "" && m.User != f.User:
		return false
	case f.Container != "" && !strings.HasPrefix(m.Container, f.Container) && strings.TrimPrefix(m.ContainerName, "/") != strings.TrimPrefix(f.Container, "/"):
		return false
	case !f.Since.IsZero() && m.Start.Before(f.Since):
		return false
	}
	return true
}

// List reads the headers of dir's recordings and returns those f
// selects, oldest first. A missing directory holds none.
func List(dir string, f Filter) ([]Summary, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+Ext))
	if err != nil {
		return nil, fmt.Errorf("list recordings in %q: %w", dir, err)
	}
	var out []Summary
	for _, p := range names {
		s, err := summarize(p)
		if err != nil {
			return nil, err
		}
		if f.match(s.Header) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DTLS.Start.Before(out[j].DTLS.Start) })
	return out, nil
}

// tailSize is how much of a recording's end is read for its last event.
const tailSize = 64 << 10

func summarize(path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("read recording %q: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Summary{}, fmt.Errorf("read recording %q: %w", path, err)
	}
	s := Summary{Path: path, Size: st.Size()}
	br := bufio.NewReader(f)
	line, err := br.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return Summary{}, fmt.Errorf("read recording %q: %w", path, err)
	}
	if err := json.Unmarshal(line, &s.Header); err != nil || s.Header.Version != 2 {
		return Summary{}, fmt.Errorf("recording %q: its first line is no asciicast v2 header", path)
	}
	off := max(st.Size()-tailSize, int64(len(line)))
	tail := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(tail, off); err != nil && err != io.EOF {
		return Summary{}, fmt.Errorf("read recording %q: %w", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(tail, "\n"), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		ev, err := parseEvent(lines[i])
		if err != nil {
			continue // the first line of the tail may be cut
		}
		s.Duration = time.Duration(ev.Time * float64(time.Second))
		if ev.Code == CodeMarker {
			s.Ended = ev.Data
		}
		break
	}
	return s, nil
}

// Event is one event line.
type Event struct {
	Time float64
	Code string
	Data string
}

func parseEvent(line []byte) (Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil || len(raw) != 3 {
		return Event{}, fmt.Errorf("not an event line: %.40q", line)
	}
	var ev Event
	if json.Unmarshal(raw[0], &ev.Time) != nil || json.Unmarshal(raw[1], &ev.Code) != nil || json.Unmarshal(raw[2], &ev.Data) != nil {
		return Event{}, fmt.Errorf("not an event line: %.40q", line)
	}
	return ev, nil
}

// Path is the file of recording id in dir.
func Path(dir, id string) (string, error) {
	id = strings.TrimSuffix(id, Ext)
	if !validID(id) {
		return "", fmt.Errorf("recording id %q: want letters, digits, '-' and '_'", id)
	}
	p := filepath.Join(dir, id+Ext)
	if _, err := os.Stat(p); err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("recording %q in %q: %w", id, dir, ErrNotFound)
		}
		return "", fmt.Errorf("recording %q: %w", id, err)
	}
	return p, nil
}

// Open opens recording id of dir, to export it as it is.
func Open(dir, id string) (*os.File, error) {
	p, err := Path(dir, id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open recording %q: %w", p, err)
	}
	return f, nil
}

// PlayOptions say how Play replays.
type PlayOptions struct {
	// Speed divides the recorded delays; 0 writes everything at once.
	Speed float64
	// Sleep waits (time.Sleep, or ctx-aware in tests); nil: a timer
	// that ctx stops.
	Sleep func(ctx context.Context, d time.Duration) error
	// IncludeInput writes "i" events too (they are echoed in the output
	// anyway with a tty).
	IncludeInput bool
	// Terminal: out is a terminal, and the output ends with a reset
	// (termReset) of what the recording may have left on.
	Terminal bool
}

// Play writes recording id's output to out with its timing divided by
// o.Speed, and returns its header and closing marker. What would act
// beyond the screen is left out, and on a terminal a reset ends the
// output (terminalFilter): the recorded user chose every byte, and what
// the caller prints next (who ran the session) must show.
func Play(ctx context.Context, dir, id string, out io.Writer, o PlayOptions) (Summary, error) {
	tf := &terminalFilter{w: out}
	defer func() {
		if tf.wrote && o.Terminal {
			// Best effort: a failed write of out is the error returned.
			_, _ = io.WriteString(out, termReset)
		}
	}()
	return play(ctx, dir, id, tf, o)
}

func play(ctx context.Context, dir, id string, out io.Writer, o PlayOptions) (Summary, error) {
	p, err := Path(dir, id)
	if err != nil {
		return Summary{}, err
	}
	s, err := summarize(p)
	if err != nil {
		return Summary{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return Summary{}, fmt.Errorf("open recording %q: %w", p, err)
	}
	defer f.Close()
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	sc.Scan() // the header, read by summarize
	var last float64
	var cut error
	for n := 2; sc.Scan(); n++ {
		if cut != nil {
			return s, cut
		}
		ev, err := parseEvent(sc.Bytes())
		if err != nil {
			// Only the last line may be cut (a gateway killed while
			// writing it): it is left out.
			cut = fmt.Errorf("recording %q line %d: %w", p, n, err)
			continue
		}
		if o.Speed > 0 && ev.Time > last {
			if err := o.Sleep(ctx, time.Duration((ev.Time-last)/o.Speed*float64(time.Second)).Round(time.Microsecond)); err != nil {
				return s, err
			}
		}
		last = max(last, ev.Time)
		if ev.Code == CodeOutput || ev.Code == CodeInput && o.IncludeInput {
			if _, err := io.WriteString(out, ev.Data); err != nil {
				return s, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read recording %q: %w", p, err)
	}
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retention bounds the recordings kept.
type Retention struct {
	// MaxAge removes recordings last written longer ago (0: no bound).
	MaxAge time.Duration
	// MaxSize removes the oldest recordings while dir holds more bytes
	// (0: no bound).
	MaxSize int64
}

// Removed is a recording Prune removed.
type Removed struct {
	ID   string
	Size int64
	// User and Command are its header's: whose session it was (empty
	// when the header could not be read).
	User    string
	Command []string
	// Old: older than Retention.MaxAge; else removed for MaxSize.
	Old bool
}

// Prune removes recordings of dir beyond r, oldest first, never one in
// keep (streams still recording), and returns what it removed.
func Prune(dir string, r Retention, now time.Time, keep map[string]bool) ([]Removed, error) {
	if r.MaxAge <= 0 && r.MaxSize <= 0 {
		return nil, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+Ext))
	if err != nil {
		return nil, fmt.Errorf("list recordings in %q: %w", dir, err)
	}
	type file struct {
		id   string
		path string
		mod  time.Time
		size int64
	}
	var files []file
	var total int64
	for _, p := range names {
		st, err := os.Stat(p)
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, file{strings.TrimSuffix(filepath.Base(p), Ext), p, st.ModTime(), st.Size()})
		total += st.Size()
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	var removed []Removed
	for _, f := range files {
		old := r.MaxAge > 0 && now.Sub(f.mod) > r.MaxAge
		big := r.MaxSize > 0 && total > r.MaxSize
		if !old && !big || keep[f.id] {
			continue
		}
		rm := Removed{ID: f.id, Size: f.size, Old: old}
		if s, err := summarize(f.path); err == nil {
			rm.User, rm.Command = s.DTLS.User, s.DTLS.Command
		}
		if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("remove recording %q: %w", f.path, err)
		}
		total -= f.size
		removed = append(removed, rm)
	}
	return removed, nil
}
