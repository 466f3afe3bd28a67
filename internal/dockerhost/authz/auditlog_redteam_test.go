package authz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedteamGroupCommitUnderRotation: writers at once and a file rotated
// every few records: every record whose Write returned nil is in the
// trail exactly once, each writer's in its order, none whose Write failed
// is, and the chain holds.
func TestRedteamGroupCommitUnderRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenAuditLog(path, 4<<10, 1000, nil)
	require.NoError(t, err)
	ok, failed := writeAtOnce(l, 16, 100, func(w, i int) string { return fmt.Sprintf("/w%d/%d", w, i) })
	require.NoError(t, l.Close())
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	seen := map[string]int{}
	last := map[string]int{}
	for _, r := range recs {
		if r.Phase != PhaseRequest {
			continue
		}
		seen[r.URI]++
		var w, i int
		_, err := fmt.Sscanf(r.URI, "/w%d/%d", &w, &i)
		require.NoError(t, err)
		if p, found := last[r.User]; found {
			assert.Greater(t, i, p, "%s's records out of order", r.User)
		}
		last[r.User] = i
	}
	for uri := range ok {
		assert.Equal(t, 1, seen[uri], "%s written once", uri)
	}
	for uri := range failed {
		assert.Zero(t, seen[uri], "%s failed but is in the trail", uri)
	}
	assert.Len(t, seen, len(ok))
	v, err := VerifyAudit(path, nil)
	require.NoError(t, err)
	assert.Nil(t, v.Break)
}

// TestRedteamGroupCommitDiskFull: writers at once on a trail whose
// filesystem (a 64 KiB tmpfs) fills up: the records whose Write returned
// nil are in the trail once each, none whose Write failed is, and the
// chain holds.
func TestRedteamGroupCommitDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root to mount a tmpfs")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
	t.Cleanup(func() { assert.NoError(t, syscall.Unmount(dir, syscall.MNT_DETACH)) })
	path := filepath.Join(dir, "audit.log")
	l, err := OpenAuditLog(path, 32<<10, 2, nil)
	require.NoError(t, err)
	ok, failed := writeAtOnce(l, 8, 200, func(w, i int) string { return fmt.Sprintf("/w%d/%d/%s", w, i, strings.Repeat("x", 200)) })
	require.NoError(t, l.Close())
	require.NotEmpty(t, failed, "the disk never filled")
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	seen := map[string]int{}
	for _, r := range recs {
		if r.Phase == PhaseRequest {
			seen[r.URI]++
		}
	}
	for uri := range ok {
		assert.Equal(t, 1, seen[uri], "%s written once", uri)
	}
	for uri := range failed {
		assert.Zero(t, seen[uri], "%s failed but is in the trail", uri)
	}
	v, err := VerifyAudit(path, nil)
	require.NoError(t, err)
	assert.Nil(t, v.Break, "%+v", v.Break)
}

// writeAtOnce has writers write each request records at once to l, the
// URI of writer w's i-th being uri(w, i), and returns the URIs whose Write
// returned nil and those whose Write failed.
func writeAtOnce(l *AuditLog, writers, each int, uri func(w, i int) string) (ok, failed map[string]bool) {
	var mu sync.Mutex
	ok, failed = map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				u := uri(w, i)
				err := l.Write(AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: fmt.Sprint("w", w), URI: u})
				mu.Lock()
				if err == nil {
					ok[u] = true
				} else {
					failed[u] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok, failed
}
