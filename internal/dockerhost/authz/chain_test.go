package authz

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeTrail writes n records to a trail at dir/authz.log.
func writeTrail(t *testing.T, path string, maxSize int64, maxFiles, n int) {
	t.Helper()
	l, err := OpenAuditLog(path, maxSize, maxFiles, nil)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, time.Unix(int64(i), 0))))
	}
	require.NoError(t, l.Close())
}

func verify(t *testing.T, path string, a *Anchor) *Verification {
	t.Helper()
	v, err := VerifyAudit(path, a)
	require.NoError(t, err)
	return v
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.SplitAfter(string(b), "\n")
}

func TestChainVerifies(t *testing.T) {
	t.Run("genesis", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 0, 0, 10)
		v := verify(t, path, nil)
		require.Nil(t, v.Break)
		assert.True(t, v.Genesis())
		assert.Equal(t, uint64(1), v.Start.Seq)
		assert.Equal(t, uint64(10), v.Head.Seq)
		assert.Equal(t, 10, v.Records)
		head, err := AuditHead(path)
		require.NoError(t, err)
		assert.Equal(t, v.Head.Hash, head.Hash)
		assert.Equal(t, uint64(10), head.Seq)
		first := lines(t, path)[0]
		assert.True(t, strings.HasPrefix(first, `{"seq":1,"prev":"genesis","time":"1970-01-01T00:00:00.000000000Z",`), first)
	})
	t.Run("rotated and restarted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 2, 30)
		writeTrail(t, path, 900, 2, 7) // a restart goes on from the last line
		v := verify(t, path, nil)
		require.Nil(t, v.Break, "%+v", v.Break)
		assert.Len(t, v.Files, 3)
		assert.False(t, v.Genesis(), "the oldest records were rotated out")
		assert.Greater(t, v.Start.Seq, uint64(1))
		assert.Equal(t, path+".2", v.Start.File)
		require.NotNil(t, v.Rotated, "a rotation that drops a file says so")
		assert.Equal(t, v.Start.Seq-1, v.RotatedThrough)
		assert.Greater(t, v.Head.Seq, uint64(37), "37 records and the rotations' own")
		assert.Equal(t, int(v.Head.Seq-v.Start.Seq+1), v.Records)
	})
}

// TestChainCatchesTampering: a removed, edited, moved or cut line, a
// removed rotated file, and records removed from the end (against an
// anchor) each break the chain at the first place touched.
func TestChainCatchesTampering(t *testing.T) {
	edit := func(t *testing.T, path string, f func([]string) []string) {
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(f(lines(t, path)), "")), 0o600))
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, path string)
		kind   string
		file   string // suffix of the file, "" for path
		line   int
		detail string
	}{
		{"removed line", func(t *testing.T, path string) {
			edit(t, path, func(ls []string) []string { return append(ls[:3:3], ls[4:]...) })
		}, "removed", "", 4, "seq 4 "},
		{"edited line", func(t *testing.T, path string) {
			edit(t, path, func(ls []string) []string {
				ls[3] = strings.Replace(ls[3], `"decision":"allow"`, `"decision":"deny"`, 1)
				return ls
			})
		}, "changed", "", 4, "record seq 4 was changed"},
		{"swapped lines", func(t *testing.T, path string) {
			edit(t, path, func(ls []string) []string { ls[3], ls[4] = ls[4], ls[3]; return ls })
		}, "reordered", "", 4, "seq 5 comes after seq 3"},
		{"truncated", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-40))
		}, "torn", "", 10, "cut short"},
		{"garbage line", func(t *testing.T, path string) {
			edit(t, path, func(ls []string) []string { ls[5] = "hello\n"; return ls })
		}, "changed", "", 6, "not an audit record"},
		{"edited seq", func(t *testing.T, path string) {
			edit(t, path, func(ls []string) []string { ls[2] = strings.Replace(ls[2], `"seq":3,`, `"seq":30,`, 1); return ls })
		}, "removed", "", 3, "seq 3 to 29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "authz.log")
			writeTrail(t, path, 0, 0, 10)
			tt.tamper(t, path)
			v := verify(t, path, nil)
			require.NotNil(t, v.Break)
			assert.Equal(t, tt.kind, v.Break.Kind)
			assert.Equal(t, path+tt.file, v.Break.At.File)
			assert.Equal(t, tt.line, v.Break.At.Line)
			assert.Contains(t, v.Break.Detail, tt.detail)
		})
	}

	t.Run("removed rotated file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 3, 30)
		require.Nil(t, verify(t, path, nil).Break)
		require.NoError(t, os.Remove(path+".2"))
		v := verify(t, path, nil)
		require.NotNil(t, v.Break)
		assert.Equal(t, "removed", v.Break.Kind)
		assert.Equal(t, path+".1", v.Break.At.File)
		assert.Equal(t, 1, v.Break.At.Line)
	})

	// Deleting the oldest files, or every record up to the anchor, looked
	// like retention (found by a red team): the rotation's record says
	// what it dropped.
	t.Run("oldest rotated file removed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 3, 40)
		require.Nil(t, verify(t, path, nil).Break)
		require.NoError(t, os.Remove(path+".3"))
		v := verify(t, path, nil)
		require.NotNil(t, v.Break)
		assert.Equal(t, "removed", v.Break.Kind)
		assert.Equal(t, path+".2", v.Break.At.File)
		assert.Contains(t, v.Break.Detail, "the last rotation")
	})
	t.Run("genesis file removed before any rotation dropped one", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 5, 12)
		v := verify(t, path, nil)
		require.Nil(t, v.Break)
		require.True(t, v.Genesis())
		require.Nil(t, v.Rotated, "no file dropped yet")
		last := v.Files[0]
		require.NotEqual(t, path, last, "the trail has rotated files")
		require.NoError(t, os.Remove(last))
		v = verify(t, path, nil)
		require.NotNil(t, v.Break, "the oldest file, genesis and all, removed")
		assert.Equal(t, "removed", v.Break.Kind)
	})
	t.Run("history removed through the anchor", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 3, 40)
		head, err := AuditHead(path)
		require.NoError(t, err)
		a := Anchor{Seq: head.Seq, Hash: head.Hash}
		writeTrail(t, path, 900, 3, 3)
		ok := verify(t, path, &a)
		require.Nil(t, ok.Break)
		assert.Contains(t, ok.Anchor, "found at")
		// Root keeps the last three records only.
		var all []string
		for _, f := range []string{".3", ".2", ".1", ""} {
			for _, l := range lines(t, path+f) {
				if l != "" {
					all = append(all, l)
				}
			}
			require.NoError(t, os.Remove(path+f))
		}
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(all[len(all)-3:], "")), 0o600))
		v := verify(t, path, &a)
		require.NotNil(t, v.Break)
		// Caught as the anchor's record missing with nothing saying it
		// was rotated out, or, when a rotation record is among the lines
		// kept, as records missing after the last one it dropped.
		assert.Contains(t, []string{"anchor", "removed"}, v.Break.Kind, v.Break.Detail)

		// No rotation record kept: only the anchor can tell.
		edit(t, path, func(ls []string) []string {
			var kept []string
			for _, l := range ls {
				if !strings.Contains(l, RuleRotatedOut) {
					kept = append(kept, l)
				}
			}
			return kept[len(kept)-2:]
		})
		// Nothing says a rotation dropped the records before: removed,
		// with or without the anchor (a second red team round).
		v = verify(t, path, nil)
		require.NotNil(t, v.Break)
		assert.Equal(t, "removed", v.Break.Kind)
		assert.Contains(t, v.Break.Detail, "no rotation record")
	})
	t.Run("anchor rotated out", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 900, 2, 5)
		head, err := AuditHead(path)
		require.NoError(t, err)
		writeTrail(t, path, 900, 2, 60)
		v := verify(t, path, &Anchor{Seq: head.Seq, Hash: head.Hash})
		require.Nil(t, v.Break, "%+v", v.Break)
		assert.Contains(t, v.Anchor, "dropped by rotation")
	})

	t.Run("last records removed, against an anchor", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 0, 0, 10)
		head, err := AuditHead(path)
		require.NoError(t, err)
		a, err := ParseAnchor(fmt.Sprintf("%d %s", head.Seq, head.Hash))
		require.NoError(t, err)
		v := verify(t, path, &a)
		require.Nil(t, v.Break)
		assert.Contains(t, v.Anchor, "seq 10 found at")

		edit(t, path, func(ls []string) []string { return ls[:9] })
		require.Nil(t, verify(t, path, nil).Break, "without the anchor, the end cannot be told from a shorter trail")
		v = verify(t, path, &a)
		require.NotNil(t, v.Break)
		assert.Equal(t, "anchor", v.Break.Kind)
		assert.Contains(t, v.Break.Detail, "seq 10 is missing: the trail ends at seq 9")
	})
	t.Run("anchored record rewritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 0, 0, 10)
		head, err := AuditHead(path)
		require.NoError(t, err)
		edit(t, path, func(ls []string) []string {
			ls[9] = strings.Replace(ls[9], `"decision":"allow"`, `"decision":"deny"`, 1)
			return ls
		})
		v := verify(t, path, &Anchor{Seq: head.Seq, Hash: head.Hash})
		require.NotNil(t, v.Break)
		assert.Equal(t, "anchor", v.Break.Kind)
		assert.Equal(t, 10, v.Break.At.Line)
	})
}

func TestParseAnchor(t *testing.T) {
	h := "sha256:" + strings.Repeat("ab", 32)
	for _, s := range []string{"12 " + h, "12:" + h, " 12 " + h + "\n"} {
		a, err := ParseAnchor(s)
		require.NoError(t, err, s)
		assert.Equal(t, Anchor{12, h}, a)
	}
	for _, s := range []string{"", "12", "x " + h, "0 " + h, "12 sha256:abc", "12 " + strings.Repeat("zz", 32)} {
		_, err := ParseAnchor(s)
		assert.Error(t, err, s)
	}
}

// TestChainTornLine: a line cut short by a crash is ended and marked at
// the next start, and the chain goes on from the last complete line.
func TestChainTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.log")
	writeTrail(t, path, 0, 0, 5)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"seq":6,"prev":"sha256:00","time":"2025-`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	v := verify(t, path, nil)
	require.NotNil(t, v.Break)
	assert.Equal(t, "torn", v.Break.Kind)
	assert.Equal(t, 6, v.Break.At.Line)

	writeTrail(t, path, 0, 0, 2)
	v = verify(t, path, nil)
	require.Nil(t, v.Break, "%+v", v.Break)
	require.Len(t, v.Torn, 1)
	assert.Equal(t, 6, v.Torn[0].Line)
	assert.Equal(t, uint64(8), v.Head.Seq, "5 records, the torn line's mark, 2 records")
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 8)
	assert.Equal(t, RuleTorn, recs[5].Rule)
	assert.Contains(t, recs[5].Reason, "chain goes on from the last complete line (seq 5)")

	t.Run("only the newline missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		writeTrail(t, path, 0, 0, 3)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, bytes.TrimSuffix(b, []byte("\n")), 0o600))
		writeTrail(t, path, 0, 0, 1)
		v := verify(t, path, nil)
		require.Nil(t, v.Break)
		assert.Empty(t, v.Torn)
		assert.Equal(t, uint64(4), v.Head.Seq)
	})
}

// TestChainFileRemovedWhileOpen: the log notices that its file was removed
// and goes on in a new one, saying so.
func TestChainFileRemovedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.log")
	l, err := OpenAuditLog(path, 0, 0, nil)
	require.NoError(t, err)
	defer l.Close()
	for i := range 3 {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, time.Now())))
	}
	require.NoError(t, os.Remove(path))
	require.NoError(t, l.Write(record(3, "alice", DecisionAllow, time.Now())))
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, RuleReplaced, recs[0].Rule)
	assert.Equal(t, uint64(4), recs[0].Seq)
	assert.Equal(t, uint64(5), recs[1].Seq)
	v := verify(t, path, nil)
	require.Nil(t, v.Break)
	assert.False(t, v.Genesis())
}

// TestChainAfterUnchainedTrail: a trail written before the chain existed
// is kept; the chain starts after its last line.
func TestChainAfterUnchainedTrail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.log")
	require.NoError(t, os.WriteFile(path, []byte(`{"time":"2025-01-01T00:00:00Z","decision":"allow"}`+"\n"+`{"time":"2025-01-01T00:00:01Z","decision":"deny"}`+"\n"), 0o600))
	writeTrail(t, path, 0, 0, 3)
	v := verify(t, path, nil)
	require.Nil(t, v.Break)
	assert.Equal(t, 2, v.Unchained)
	assert.Equal(t, uint64(1), v.Start.Seq)
	assert.Equal(t, 3, v.Start.Line)
	assert.False(t, v.Genesis())

	edit := lines(t, path)
	edit[1] = strings.Replace(edit[1], "deny", "allow", 1)
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(edit, "")), 0o600))
	v = verify(t, path, nil)
	require.NotNil(t, v.Break)
	assert.Equal(t, 2, v.Break.At.Line)
}

// TestChainResyncAfterFailedWrite: a write that failed half-way and could
// not be truncated back leaves a cut line; the next write ends it and
// marks it, and the chain holds.
func TestChainResyncAfterFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.log")
	l, err := OpenAuditLog(path, 0, 0, nil)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Write(record(0, "alice", DecisionAllow, time.Now())))
	// What a failed write leaves: part of the next line, and resync set.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"seq":2,"prev":"sha256:`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	l.mu.Lock()
	l.resync = true
	l.mu.Unlock()

	require.NoError(t, l.Write(record(1, "alice", DecisionAllow, time.Now())))
	v := verify(t, path, nil)
	require.Nil(t, v.Break, "%+v", v.Break)
	require.Len(t, v.Torn, 1)
	assert.Equal(t, 2, v.Torn[0].Line)
	assert.Equal(t, uint64(3), v.Head.Seq, "the record, the mark of the cut line, the record")
}

// TestChainCrashInRotation: a kill between a rotation's record and its
// renames leaves a trail that verifies (the record of a drop not done
// yet reads as records kept longer), and the next start goes on from it
// (a second red team round: with the record written after the renames,
// such a crash looked like a deletion).
func TestChainCrashInRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	l, err := OpenAuditLog(path, 900, 2, nil)
	require.NoError(t, err)
	i := 0
	for ; ; i++ {
		if _, err := os.Stat(path + ".2"); err == nil {
			break
		}
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, time.Unix(int64(i), 0))))
	}
	// Files before the next rotation, which drops path.2.
	before := map[string][]byte{}
	for _, f := range []string{"", ".1", ".2"} {
		b, err := os.ReadFile(path + f)
		require.NoError(t, err)
		before[f] = b
	}
	for {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, time.Unix(int64(i), 0))))
		i++
		b, err := os.ReadFile(path + ".2")
		require.NoError(t, err)
		if string(b) != string(before[".2"]) {
			break
		}
	}
	require.NoError(t, l.Close())
	// The crash: path.1 is the old path with the rotation's record at its
	// end, and no rename was done.
	rotated, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(rotated), string(before[""])))
	require.Contains(t, string(rotated[len(before[""]):]), RuleRotatedOut, "the record is written before the renames")
	require.NoError(t, os.WriteFile(path, rotated, 0o600))
	require.NoError(t, os.WriteFile(path+".1", before[".1"], 0o600))
	require.NoError(t, os.WriteFile(path+".2", before[".2"], 0o600))
	v := verify(t, path, nil)
	require.Nil(t, v.Break, "%+v", v.Break)
	// The next start goes on, and rotates again.
	writeTrail(t, path, 900, 2, 20)
	v = verify(t, path, nil)
	require.Nil(t, v.Break, "%+v", v.Break)
}
