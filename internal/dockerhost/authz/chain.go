package authz

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// The audit trail is a hash chain: each line starts with
// {"seq":N,"prev":"sha256:HEX", where N counts the records from 1 and HEX
// is SHA-256 of the previous line's exact bytes (without its newline).
// Rotation and restarts carry the chain on: the first record of a new file
// holds the hash of the last record of the file before it, and a plugin
// that starts goes on from the last complete line on disk. Whoever edits,
// removes or reorders a line must rewrite every line after it; sending the
// chain's head elsewhere (AuditHead, dtls authz log --head) makes even that
// visible.

// GenesisPrev is the Prev of the very first record of a trail.
const GenesisPrev = "genesis"

// PhaseTrail is the phase of the records the trail writes about itself.
const PhaseTrail = "trail"

// Rules of the trail's own records.
const (
	// RuleTorn: the last line on disk was cut short (a crash while
	// writing, or a write that failed half-way and could not be undone);
	// it is kept, ended by a newline, and the chain goes on from the last
	// complete line.
	RuleTorn = "trail: torn line"
	// RuleReplaced: the file was removed or replaced while open; the chain
	// goes on in the new file.
	RuleReplaced = "trail: file replaced"
	// RuleRotatedOut: a rotation dropped the oldest file; its fields
	// name the last record it held (through_seq, through_hash), the one
	// the oldest record left must follow (VerifyAudit). Without it, the
	// deletion of the oldest files, or of every record up to an anchor,
	// looked like retention (found by a red team).
	RuleRotatedOut = "trail: rotated out"
)

// maxTail is how much of a file's end is read to find its last line: more
// than a bounded record (maxAuditValue per string, maxAuditFields).
const maxTail = 256 << 10

// lineHash is the chain's hash of one line, without its newline.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// chain makes the line of a marshalled record (a JSON object) at the next
// position of the chain: seq and prev first, so that a reader sees the
// chain at the start of each line. l.mu is held.
func (l *AuditLog) chain(body []byte) []byte {
	line := make([]byte, 0, len(body)+100)
	line = append(line, `{"seq":`...)
	line = strconv.AppendUint(line, l.seq+1, 10)
	line = append(line, `,"prev":"`...)
	line = append(line, l.head...)
	line = append(line, `",`...)
	line = append(line, body[1:]...)
	return append(line, '\n')
}

// advance moves the chain past line, just written. l.mu is held.
func (l *AuditLog) advance(line []byte) {
	l.seq++
	l.head = lineHash(bytes.TrimSuffix(line, []byte("\n")))
}

// trailRecord is the marshalled record of something the trail says about
// itself.
func (l *AuditLog) trailRecord(rule, reason string) []byte {
	b, _ := json.Marshal(AuditRecord{Time: l.now(), Phase: PhaseTrail, Rule: rule, Reason: reason})
	return b
}

// rotatedRecord is the marshalled RuleRotatedOut record of the file
// name, dropped, whose last record was seq, of line hash hash.
func (l *AuditLog) rotatedRecord(name string, seq uint64, hash string) []byte {
	b, _ := json.Marshal(AuditRecord{Time: l.now(), Phase: PhaseTrail, Rule: RuleRotatedOut,
		Reason: fmt.Sprintf("rotation dropped the oldest file (%s): records up to seq %d are gone", filepath.Base(name), seq),
		Fields: map[string]any{"through_seq": seq, "through_hash": hash}})
	return b
}

// chainHead is the chain position a line holds, and the fields of a
// RuleRotatedOut record (kept raw: other records' fields are not read).
type chainHead struct {
	Seq    uint64          `json:"seq"`
	Prev   string          `json:"prev"`
	Rule   string          `json:"rule"`
	Fields json.RawMessage `json:"fields"`
}

// rotatedOut is what a RuleRotatedOut record says was dropped.
type rotatedOut struct {
	ThroughSeq  uint64 `json:"through_seq"`
	ThroughHash string `json:"through_hash"`
}

// rotated reads the fields of a RuleRotatedOut record; ok is false for
// any other record.
func (h chainHead) rotated() (r rotatedOut, ok bool) {
	if h.Rule != RuleRotatedOut || h.Seq == 0 {
		return r, false
	}
	return r, json.Unmarshal(h.Fields, &r) == nil && r.ThroughSeq > 0
}

// parseHead reads the chain position of a line; ok is false when the line
// is not a JSON object.
func parseHead(line []byte) (h chainHead, ok bool) {
	return h, json.Unmarshal(line, &h) == nil
}

// resume learns the chain's position from the file's end and ends a line
// cut short. At open, a file with no complete line goes on from the newest
// rotated file (a crash right after a rotation); later (after a failed
// write) the position in memory holds and only a cut line is ended.
// l.mu is held, or l is not shared yet.
func (l *AuditLog) resume(atOpen bool) error {
	last, torn, err := readTail(l.path)
	if err != nil {
		return err
	}
	if atOpen {
		if len(last) == 0 {
			last, _, err = readTail(rotatedName(l.path, 1))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		l.setHead(last)
	}
	if len(torn) == 0 {
		return nil
	}
	if h, ok := parseHead(torn); ok && h.Seq == l.seq+1 && h.Prev == l.head {
		// The whole record made it, only its newline did not.
		if err := l.appendRaw([]byte("\n")); err != nil {
			return err
		}
		l.setHead(torn)
		return nil
	}
	line := l.chain(l.trailRecord(RuleTorn, fmt.Sprintf(
		"the last line of %s was cut short (%d bytes without an end: a crash, or a write that failed): it is kept as it is, and the chain goes on from the last complete line (seq %d)",
		l.path, len(torn), l.seq)))
	// One write: the newline that ends the cut line and the record saying
	// so, so that no crash leaves the one without the other.
	if err := l.appendRaw(append([]byte("\n"), line...)); err != nil {
		return err
	}
	l.advance(line)
	return nil
}

// appendRaw writes b to the file as it is.
func (l *AuditLog) appendRaw(b []byte) error {
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("write audit log %q: %w", l.path, unwrapPath(err))
	}
	return nil
}

// setHead sets the chain's position after the complete line last (none:
// the genesis). A line of an older trail, without a position, is hashed
// all the same: the chain starts after it, at seq 1.
func (l *AuditLog) setHead(last []byte) {
	if len(last) == 0 {
		l.seq, l.head = 0, GenesisPrev
		return
	}
	h, _ := parseHead(last)
	l.seq, l.head = h.Seq, lineHash(last)
}

// readTail returns the last complete line of the file name (without its
// newline) and the bytes after it, a line cut short (none when the file
// ends with a newline).
func readTail(name string) (last, torn []byte, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log %q: %w", name, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log %q: %w", name, unwrapPath(err))
	}
	off := max(fi.Size()-maxTail, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read audit log %q: %w", name, err)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		if off > 0 {
			return nil, nil, fmt.Errorf("read audit log %q: no line end in its last %d bytes", name, maxTail)
		}
		return nil, b, nil
	}
	torn = b[end+1:]
	start := bytes.LastIndexByte(b[:end], '\n') + 1
	if start == 0 && off > 0 {
		return nil, nil, fmt.Errorf("read audit log %q: a line longer than %d bytes at its end", name, maxTail)
	}
	return b[start:end], torn, nil
}
