package authz

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ChainPoint is one record of the chain: where it is and what it holds.
type ChainPoint struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Seq  uint64 `json:"seq"`
	// Hash is the hash of the record's line, which the next record holds.
	Hash string `json:"hash"`
	// Prev is the hash the record holds of the one before it.
	Prev string `json:"prev"`
}

func (p ChainPoint) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Anchor is a chain head sent elsewhere earlier (AuditHead): the record
// of seq Seq must still be there with that hash.
type Anchor struct {
	Seq  uint64
	Hash string
}

// ParseAnchor reads an anchor as dtls authz log --head prints it: "SEQ
// sha256:HEX" (or "SEQ:sha256:HEX").
func ParseAnchor(s string) (Anchor, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		seq, hash, ok = strings.Cut(s, ":")
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	hex, _ := strings.CutPrefix(strings.TrimSpace(hash), "sha256:")
	if !ok || err != nil || n == 0 || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ sha256:HEX, as dtls authz log --head prints it", s)
	}
	return Anchor{Seq: n, Hash: "sha256:" + hex}, nil
}

// Break is the first place where the chain does not hold.
type Break struct {
	At ChainPoint `json:"at"`
	// Kind is "removed", "changed", "reordered", "torn" or "anchor".
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Where names the break's place: file and line, and seq when the line
// has one.
func (b *Break) Where() string {
	if b.At.Seq == 0 {
		return b.At.String()
	}
	return fmt.Sprintf("%s (seq %d)", b.At, b.At.Seq)
}

// Verification is what VerifyAudit found.
type Verification struct {
	Files   []string `json:"files"`
	Records int      `json:"records"`
	// Unchained counts the records before the chain's start, written by a
	// version of the plugin without a chain: they cannot be checked.
	Unchained int `json:"unchained,omitempty"`
	// Start is the chain's first record: its Prev is GenesisPrev when the
	// trail is whole since its first record, else the hash of a record
	// rotated out of existence.
	Start ChainPoint `json:"start"`
	// Head is the last record, the one to send elsewhere.
	Head ChainPoint `json:"head"`
	// Torn are the lines cut short by a crash that the record after them
	// acknowledges (RuleTorn).
	Torn []ChainPoint `json:"torn,omitempty"`
	// Rotated is the newest RuleRotatedOut record: the chain's start must
	// be the record after the last one it says was dropped. nil when no
	// rotation dropped a file (or the trail is older than that record).
	Rotated *ChainPoint `json:"rotated,omitempty"`
	// RotatedThrough is the last seq Rotated says was dropped.
	RotatedThrough uint64 `json:"rotated_through,omitempty"`
	// Anchor says how the anchor given was found ("" without one).
	Anchor string `json:"anchor,omitempty"`
	// Break is the first record removed, changed or reordered; nil when
	// the chain holds.
	Break *Break `json:"break,omitempty"`
}

// Genesis reports whether the chain starts at the trail's first record.
func (v *Verification) Genesis() bool { return v.Start.Prev == GenesisPrev }

// entry is one line of the trail as VerifyAudit reads it.
type entry struct {
	ChainPoint
	json     bool // the line is a JSON object
	complete bool // it ends with a newline
	rule     string
	rotated  rotatedOut // of a RuleRotatedOut record
}

// VerifyAudit checks the chain of the audit trail at path and its rotated
// files, oldest first, and reports the first record removed, changed or
// reordered: a record whose seq is not the one after the record before
// it (removed, when that seq is nowhere in the trail, else reordered), or
// whose prev is not the hash of the line before it (that line changed),
// or a line that is not a record (changed, or cut short: only the crash's
// RuleTorn record after it makes a cut line no break). A change to the
// very last records, or their removal, shows only against an anchor: the
// head sent elsewhere earlier, which must still be in the trail.
func VerifyAudit(path string, anchor *Anchor) (*Verification, error) {
	files, err := auditFiles(path)
	if err != nil {
		return nil, err
	}
	v := &Verification{Files: files}
	var es []entry
	for _, name := range files {
		if es, err = readEntries(name, es); err != nil {
			return nil, err
		}
	}
	v.check(es)
	if anchor != nil && v.Break == nil {
		v.checkAnchor(es, *anchor)
	}
	return v, nil
}

// readEntries appends the lines of the file name.
func readEntries(name string, es []entry) ([]entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read audit log %q: %w", name, unwrapPath(err))
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			e := entry{ChainPoint: ChainPoint{File: name, Line: n}, complete: line[len(line)-1] == '\n'}
			line = bytes.TrimSuffix(line, []byte("\n"))
			e.Hash = lineHash(line)
			if h, ok := parseHead(line); ok {
				e.json, e.Seq, e.Prev, e.rule = true, h.Seq, h.Prev, h.Rule
				e.rotated, _ = h.rotated()
			}
			es = append(es, e)
		}
		if errors.Is(err, io.EOF) {
			return es, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read audit log %q: %w", name, err)
		}
	}
}

// check walks the entries; it stops at the first break.
func (v *Verification) check(es []entry) {
	present := map[uint64]bool{}
	for _, e := range es {
		if e.json && e.Seq > 0 {
			present[e.Seq] = true
		}
	}
	var last *entry // the last record of the chain
	var cut *entry  // a line that is not a record, after last
	for i := range es {
		e := &es[i]
		if !e.complete {
			v.breakAt(e, "torn", "the last line is cut short: the file was truncated, or the plugin crashed while writing and has not started since (it then marks the line)")
			return
		}
		if !e.json {
			if cut != nil || last == nil {
				v.breakAt(e, "changed", "this line is not an audit record")
				return
			}
			cut = e
			continue
		}
		v.Records++
		if e.Seq == 0 {
			if last != nil {
				v.breakAt(e, "changed", "this record has no place in the chain (no seq): it was changed or inserted")
				return
			}
			v.Unchained++
			continue
		}
		if last == nil {
			v.Start = e.ChainPoint
			if i > 0 && es[i-1].json && es[i-1].Seq == 0 && e.Prev != es[i-1].Hash {
				v.breakAt(&es[i-1], "changed", "the record before the chain's start is not the one its first record holds")
				return
			}
		} else if !v.link(last, cut, e, present) {
			return
		}
		if cut != nil {
			v.Torn = append(v.Torn, cut.ChainPoint)
			cut = nil
		}
		last = e
		v.Head = e.ChainPoint
	}
	if cut != nil {
		v.breakAt(cut, "changed", "this line is not an audit record")
		return
	}
	v.checkStart(es)
}

// checkStart checks the chain's start against the newest rotation
// record: the oldest record left must be the one after the last record
// the rotation dropped. A later start means records were deleted beyond
// what rotation drops (an earlier one, records kept longer, is no break).
func (v *Verification) checkStart(es []entry) {
	var r *entry
	for i := range es {
		if e := &es[i]; e.rotated.ThroughSeq > 0 && (r == nil || e.rotated.ThroughSeq > r.rotated.ThroughSeq) {
			r = e
		}
	}
	if v.Start.Seq == 0 || v.Genesis() && r == nil {
		return
	}
	start := &es[0]
	for i := range es {
		if es[i].ChainPoint == v.Start {
			start = &es[i]
		}
	}
	// A start the trail explains: after the records of an older dtls
	// without a chain (checked in check), or the record saying the file
	// was removed or replaced while open.
	if r == nil && (v.Unchained > 0 || start.rule == RuleReplaced) {
		return
	}
	if r == nil {
		// No rotation dropped a file, yet the first record follows one
		// that is gone: the oldest files, the genesis's included, were
		// deleted (a second red team round: verify passed). A trail a
		// dtls without rotation records rotated shows this too, until
		// its next rotation.
		v.breakAt(start, "removed", fmt.Sprintf("the chain starts at seq %d, after a record that is not in the trail, and no rotation record says the records before it were dropped by rotation (or the trail was rotated by a dtls that wrote none)", v.Start.Seq))
		return
	}
	v.Rotated, v.RotatedThrough = &r.ChainPoint, r.rotated.ThroughSeq
	want := r.rotated.ThroughSeq + 1
	switch {
	case v.Start.Seq > want:
		v.breakAt(start, "removed", fmt.Sprintf("the records before the chain's start are missing: seq %s (the last rotation, at %s, dropped those up to seq %d only)",
			seqRange(want, v.Start.Seq-1), r.ChainPoint, r.rotated.ThroughSeq))
	case v.Start.Seq == want && v.Start.Prev != r.rotated.ThroughHash:
		v.breakAt(start, "changed", fmt.Sprintf("the chain's first record does not follow the last record the rotation at %s dropped (seq %d, %s)",
			r.ChainPoint, r.rotated.ThroughSeq, r.rotated.ThroughHash))
	}
}

// link checks that e follows last (with a cut line between them, maybe).
func (v *Verification) link(last, cut, e *entry, present map[uint64]bool) bool {
	want := last.Seq + 1
	switch {
	case cut != nil && (e.rule != RuleTorn || e.Seq != want || e.Prev != last.Hash):
		v.breakAt(cut, "changed", "this line is not an audit record, and the record after it does not say it was cut short by a crash")
	case e.Seq > want && !present[want]:
		v.breakAt(e, "removed", fmt.Sprintf("the records before this one are missing: seq %s (the one before, at %s, is seq %d)",
			seqRange(want, e.Seq-1), last.ChainPoint, last.Seq))
	case e.Seq != want:
		v.breakAt(e, "reordered", fmt.Sprintf("seq %d comes after seq %d (at %s): records were moved", e.Seq, last.Seq, last.ChainPoint))
	case e.Prev != last.Hash:
		v.breakAt(last, "changed", fmt.Sprintf("record seq %d was changed after it was written: the next record (%s, seq %d) holds another hash of it",
			last.Seq, e.ChainPoint, e.Seq))
	default:
		return true
	}
	return false
}

func seqRange(a, b uint64) string {
	if a == b {
		return strconv.FormatUint(a, 10)
	}
	return fmt.Sprintf("%d to %d", a, b)
}

func (v *Verification) breakAt(e *entry, kind, detail string) {
	v.Break = &Break{At: e.ChainPoint, Kind: kind, Detail: detail}
}

// checkAnchor looks for the anchor's record.
func (v *Verification) checkAnchor(es []entry, a Anchor) {
	switch {
	case v.Start.Seq > 0 && a.Seq < v.Start.Seq && v.Rotated != nil && a.Seq <= v.RotatedThrough:
		v.Anchor = fmt.Sprintf("seq %d was dropped by rotation: the rotation record at %s says so", a.Seq, v.Rotated)
		return
	case v.Start.Seq == 0 || a.Seq < v.Start.Seq:
		// Nothing says the anchored record was rotated out: removed.
		v.Break = &Break{At: v.Start, Kind: "anchor", Detail: fmt.Sprintf(
			"the anchor's record seq %d is missing: the chain starts at seq %d, and no rotation record says the records before it were dropped by rotation", a.Seq, v.Start.Seq)}
		return
	case a.Seq > v.Head.Seq:
		v.Break = &Break{At: v.Head, Kind: "anchor", Detail: fmt.Sprintf(
			"the anchor's record seq %d is missing: the trail ends at seq %d (the records after it were removed, or the file truncated)", a.Seq, v.Head.Seq)}
		return
	}
	for i := range es {
		if e := &es[i]; e.json && e.Seq == a.Seq {
			if e.Hash != a.Hash {
				v.breakAt(e, "anchor", fmt.Sprintf("record seq %d is not the one anchored: its hash is %s, the anchor's %s", a.Seq, e.Hash, a.Hash))
				return
			}
			v.Anchor = fmt.Sprintf("seq %d found at %s with the anchored hash", a.Seq, e.ChainPoint)
			return
		}
	}
}

// AuditHead returns the last record of the chain of the trail at path
// (the newest file that holds a complete line): the seq and hash to send
// elsewhere, so that a later VerifyAudit with it as anchor shows records
// removed from the end or the whole trail rewritten.
func AuditHead(path string) (ChainPoint, error) {
	files, err := auditFiles(path)
	if err != nil {
		return ChainPoint{}, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		last, _, err := readTail(files[i])
		if err != nil {
			return ChainPoint{}, err
		}
		if len(last) == 0 {
			continue
		}
		h, _ := parseHead(last)
		if h.Seq == 0 {
			return ChainPoint{}, fmt.Errorf("audit log %q: its last record has no seq: the trail is not chained", files[i])
		}
		return ChainPoint{File: files[i], Seq: h.Seq, Hash: lineHash(last), Prev: h.Prev}, nil
	}
	return ChainPoint{}, fmt.Errorf("audit log %q: no record", path)
}
