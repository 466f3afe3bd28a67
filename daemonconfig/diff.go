package daemonconfig

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// diffContext is the number of unchanged lines shown around a change, as in
// diff -u.
const diffContext = 3

// Diff writes a unified diff (as diff -u prints it, with 3 lines of context)
// of old against new to w, headed "--- path" and "+++ path (dtls)". It
// writes nothing when they are equal. It is meant for --dry-run: daemon.json
// files are small, so a plain LCS over lines is enough.
func Diff(w io.Writer, path string, old, new []byte) error {
	if bytes.Equal(old, new) {
		return nil
	}
	a, b := splitLines(old), splitLines(new)
	ops := diffLines(a, b)

	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s (dtls)\n", path, path)
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk runs from diffContext lines before this change to
		// diffContext lines after the last change that is at most
		// 2*diffContext unchanged lines away from the next one.
		start := max(0, i-diffContext)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		writeHunk(&sb, ops[start:end])
		i = end
	}
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return fmt.Errorf("write diff of %q: %w", path, err)
	}
	return nil
}

type diffOp struct {
	kind   byte // ' ', '-' or '+'
	line   string
	oldNum int // 1-based line number in old (for ' ' and '-')
	newNum int // 1-based line number in new (for ' ' and '+')
}

func writeHunk(sb *strings.Builder, ops []diffOp) {
	oldStart, newStart, oldCount, newCount := 0, 0, 0, 0
	for _, op := range ops {
		if op.kind != '+' {
			if oldCount == 0 {
				oldStart = op.oldNum
			}
			oldCount++
		}
		if op.kind != '-' {
			if newCount == 0 {
				newStart = op.newNum
			}
			newCount++
		}
	}
	// diff -u names the line before an empty range, 0 for an empty file.
	if oldCount == 0 {
		oldStart = ops[0].oldNum - 1
	}
	if newCount == 0 {
		newStart = ops[0].newNum - 1
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(oldStart, oldCount), hunkRange(newStart, newCount))
	for _, op := range ops {
		text, hasNL := strings.CutSuffix(op.line, "\n")
		sb.WriteByte(op.kind)
		sb.WriteString(strings.TrimSuffix(text, "\r"))
		sb.WriteByte('\n')
		if !hasNL {
			sb.WriteString("\\ No newline at end of file\n")
		}
	}
}

func hunkRange(start, count int) string {
	if count == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, count)
}

// splitLines splits b after each "\n", keeping it, so that a missing final
// newline shows as a difference.
func splitLines(b []byte) []string {
	var lines []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		lines = append(lines, string(b[:i]))
		b = b[i:]
	}
	return lines
}

// diffLines computes an edit script from a to b with a longest common
// subsequence table, after trimming the common prefix and suffix.
func diffLines(a, b []string) []diffOp {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
	lcs := make([][]int, len(ma)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(mb)+1)
	}
	for i := len(ma) - 1; i >= 0; i-- {
		for j := len(mb) - 1; j >= 0; j-- {
			if ma[i] == mb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}

	var ops []diffOp
	ai, bi := 0, 0
	add := func(kind byte, line string) {
		op := diffOp{kind: kind, line: line}
		if kind != '+' {
			ai++
			op.oldNum = ai
		}
		if kind != '-' {
			bi++
			op.newNum = bi
		}
		// Record the numbers before an insertion or deletion too, for
		// empty ranges in hunk headers.
		if kind == '+' {
			op.oldNum = ai + 1
		}
		if kind == '-' {
			op.newNum = bi + 1
		}
		ops = append(ops, op)
	}
	for _, l := range a[:pre] {
		add(' ', l)
	}
	i, j := 0, 0
	for i < len(ma) || j < len(mb) {
		switch {
		case i < len(ma) && j < len(mb) && ma[i] == mb[j]:
			add(' ', ma[i])
			i++
			j++
		case i < len(ma) && (j == len(mb) || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions first, as diff -u shows a changed block.
			add('-', ma[i])
			i++
		default:
			add('+', mb[j])
			j++
		}
	}
	for _, l := range a[len(a)-suf:] {
		add(' ', l)
	}
	return ops
}
