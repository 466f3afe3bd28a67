package authz

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuditRecordJSON(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	r := AuditRecord{
		Time: time.Date(2025, 3, 1, 13, 4, 5, 120000000, paris), Phase: PhaseRequest, Decision: DecisionDeny,
		User: "alice", Role: "developer", Serial: "1a2b", Source: "tcp", Method: "POST",
		Path: "/containers/create", URI: "/v1.47/containers/create", Fields: map[string]any{"privileged": true, "image": "alpine"},
		Rule: "developer: containers/create: privileged", Reason: "privileged containers are not allowed",
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"time": "2025-03-01T12:04:05.120000000Z", "phase": "request", "decision": "deny",
		"user": "alice", "role": "developer", "serial": "1a2b", "source": "tcp", "method": "POST",
		"path": "/containers/create", "uri": "/v1.47/containers/create",
		"fields": {"image": "alpine", "privileged": true},
		"rule": "developer: containers/create: privileged", "reason": "privileged containers are not allowed"}`, string(b))
	assert.True(t, strings.HasPrefix(string(b), `{"time":"2025-03-01T12:04:05.120000000Z",`), "time first, UTC, nine digits: %s", b)

	var back AuditRecord
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, r.Time.Equal(back.Time))
	back.Time = r.Time
	assert.Equal(t, r, back)

	b, err = json.Marshal(AuditRecord{Time: time.Unix(0, 0), Phase: PhaseResponse, Decision: DecisionAllow, Status: 201})
	require.NoError(t, err)
	assert.Equal(t, `{"time":"1970-01-01T00:00:00.000000000Z","phase":"response","decision":"allow","status":201}`, string(b))
}

func record(i int, user, decision string, at time.Time) AuditRecord {
	return AuditRecord{Time: at, Phase: PhaseRequest, Decision: decision, User: user, Source: "tcp",
		Method: "GET", Path: fmt.Sprintf("/containers/%d/json", i), Reason: "reason"}
}

func TestOpenAuditLog(t *testing.T) {
	t.Run("creates 0600", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		l, err := OpenAuditLog(path, 0, 0, nil)
		require.NoError(t, err)
		defer l.Close()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	})
	t.Run("tightens a looser file and appends", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		require.NoError(t, os.WriteFile(path, []byte("{\"time\":\"2025-01-01T00:00:00Z\",\"decision\":\"allow\"}\n"), 0o644))
		l, err := OpenAuditLog(path, 0, 0, nil)
		require.NoError(t, err)
		require.NoError(t, l.Write(record(1, "alice", DecisionDeny, time.Now())))
		require.NoError(t, l.Close())
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
		recs, err := ReadAudit(path, AuditFilter{})
		require.NoError(t, err)
		require.Len(t, recs, 2)
		assert.Equal(t, DecisionAllow, recs[0].Decision)
		assert.Equal(t, "alice", recs[1].User)
	})
	t.Run("directory must exist", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "authz.log")
		_, err := OpenAuditLog(path, 0, 0, nil)
		assert.EqualError(t, err, fmt.Sprintf("open audit log %q: no such file or directory", path))
	})
	t.Run("not a regular file", func(t *testing.T) {
		path := t.TempDir()
		_, err := OpenAuditLog(path, 0, 0, nil)
		assert.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("open audit log %q: ", path))
	})
	t.Run("no path writes only to also", func(t *testing.T) {
		var out bytes.Buffer
		l, err := OpenAuditLog("", 100, 2, &out)
		require.NoError(t, err)
		require.NoError(t, l.Write(record(1, "alice", DecisionAllow, time.Unix(1, 0))))
		require.NoError(t, l.Close())
		assert.Equal(t, `{"seq":1,"prev":"genesis","time":"1970-01-01T00:00:01.000000000Z","phase":"request","decision":"allow","user":"alice","source":"tcp","method":"GET","path":"/containers/1/json","reason":"reason"}`+"\n", out.String())
		assert.EqualError(t, l.Write(record(2, "alice", DecisionAllow, time.Now())), "audit log is closed")
	})
	t.Run("zero time is now", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authz.log")
		l, err := OpenAuditLog(path, 0, 0, nil)
		require.NoError(t, err)
		require.NoError(t, l.Write(AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow}))
		require.NoError(t, l.Close())
		recs, err := ReadAudit(path, AuditFilter{})
		require.NoError(t, err)
		require.Len(t, recs, 1)
		assert.WithinDuration(t, time.Now(), recs[0].Time, time.Minute)
	})
}

// TestAuditRotation: with a small maxSize the trail is rotated to path.1,
// path.2; the oldest beyond maxFiles is dropped; ReadAudit reads what is
// left, oldest first, with nothing missing in between.
func TestAuditRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	const maxSize, maxFiles, n = 600, 2, 40
	l, err := OpenAuditLog(path, maxSize, maxFiles, nil)
	require.NoError(t, err)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, start.Add(time.Duration(i)*time.Second))))
	}
	require.NoError(t, l.Close())

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name() == "authz.log.status" {
			continue
		}
		names = append(names, e.Name())
		fi, err := e.Info()
		require.NoError(t, err)
		// A file may pass maxSize by the record of the rotation that
		// began it (RuleRotatedOut), a few hundred bytes.
		assert.LessOrEqual(t, fi.Size(), int64(maxSize+400), e.Name())
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), e.Name())
	}
	assert.Equal(t, []string{"authz.log", "authz.log.1", "authz.log.2"}, names)

	all, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	// Each rotation that dropped a file says so, in the chain.
	var recs []AuditRecord
	rotations := 0
	for _, r := range all {
		if r.Phase == PhaseTrail {
			assert.Equal(t, RuleRotatedOut, r.Rule)
			rotations++
			continue
		}
		recs = append(recs, r)
	}
	assert.Positive(t, rotations)
	require.NotEmpty(t, recs)
	require.Less(t, len(recs), n, "the oldest were dropped")
	first := n - len(recs)
	for i, r := range recs {
		assert.Equal(t, fmt.Sprintf("/containers/%d/json", first+i), r.Path, "record %d", i)
	}
	assert.Equal(t, fmt.Sprintf("/containers/%d/json", n-1), recs[len(recs)-1].Path)

	// Reopening continues where the file left off, and rotates in turn.
	l, err = OpenAuditLog(path, maxSize, maxFiles, nil)
	require.NoError(t, err)
	for i := n; i < n+10; i++ {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, start.Add(time.Duration(i)*time.Second))))
	}
	require.NoError(t, l.Close())
	recs, err = ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("/containers/%d/json", n+9), recs[len(recs)-1].Path)
	_, err = os.Stat(path + ".3")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestAuditRotationKeepingNoFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	l, err := OpenAuditLog(path, 300, 0, nil)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, l.Write(record(i, "alice", DecisionAllow, time.Now())))
	}
	require.NoError(t, l.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the trail and its status")
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, "/containers/9/json", recs[len(recs)-1].Path)
}

// TestAuditConcurrentWrites: writers at once, with rotation, produce whole
// lines only, in the file and in also; the lines written together (group
// commit) keep one chain, and each writer's records are in its order.
func TestAuditConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	var also bytes.Buffer // guarded by the log's own lock
	const writers, each = 16, 200
	l, err := OpenAuditLog(path, 64<<10, 100, &also)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := record(i, fmt.Sprintf("user%d", w), DecisionAllow, time.Now())
				r.Status = i + 1
				// Long lines make torn writes likelier to show.
				r.Reason = strings.Repeat(fmt.Sprint(w), 500)
				assert.NoError(t, l.Write(r))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, l.Close())

	// Every line of every file parses.
	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	files = slices.DeleteFunc(files, func(f string) bool { return f == StatusPath(path) })
	require.Greater(t, len(files), 1, "rotated")
	lines := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r AuditRecord
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "%s: %q", f, sc.Text())
			require.Equal(t, strings.Repeat(strings.TrimPrefix(r.User, "user"), 500), r.Reason)
			lines++
		}
	}
	assert.Equal(t, writers*each, lines)
	recs, err := ReadAudit(path, AuditFilter{})
	require.NoError(t, err)
	assert.Len(t, recs, writers*each)
	next := map[string]int{}
	for _, r := range recs {
		next[r.User]++
		require.Equal(t, next[r.User], r.Status, "%s's records in the order written", r.User)
	}
	v, err := VerifyAudit(path, nil)
	require.NoError(t, err)
	require.Nil(t, v.Break)
	require.True(t, v.Genesis())
	require.Equal(t, writers*each, v.Records)
	assert.Equal(t, writers*each, strings.Count(also.String(), "\n"))
	for line := range strings.SplitSeq(strings.TrimSuffix(also.String(), "\n"), "\n") {
		var r AuditRecord
		require.NoError(t, json.Unmarshal([]byte(line), &r))
	}
}

func TestReadAudit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.log")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Rotated files as OpenAuditLog leaves them, plus lines to skip.
	write := func(name string, lines ...string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	}
	line := func(r AuditRecord) string {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return string(b)
	}
	write("authz.log.10", line(record(0, "alice", DecisionAllow, t0)))
	write("authz.log.2", line(record(1, "bob", DecisionDeny, t0.Add(time.Hour))), "not json", `{"time":`)
	write("authz.log.1", line(record(2, "alice", DecisionDeny, t0.Add(2*time.Hour))), "", `{"decision":"allow"}`)
	write("authz.log", line(record(3, "alice", DecisionWarn, t0.Add(3*time.Hour))),
		line(record(4, "bob", DecisionAllow, t0.Add(4*time.Hour))), `{"time":"2025-01-01T05:00:00Z","decision":"deny","user":"torn`)
	write("authz.log.x", line(record(99, "alice", DecisionAllow, t0)))
	write("authz.log.01", line(record(98, "alice", DecisionAllow, t0)))
	write("other.log", line(record(97, "alice", DecisionAllow, t0)))

	tests := []struct {
		name string
		f    AuditFilter
		want []int
	}{
		{"all, oldest first", AuditFilter{}, []int{0, 1, 2, 3, 4}},
		{"user", AuditFilter{User: "alice"}, []int{0, 2, 3}},
		{"decision", AuditFilter{Decision: DecisionDeny}, []int{1, 2}},
		{"since, inclusive", AuditFilter{Since: t0.Add(2 * time.Hour)}, []int{2, 3, 4}},
		{"all three", AuditFilter{User: "alice", Decision: DecisionDeny, Since: t0.Add(time.Hour)}, []int{2}},
		{"nothing", AuditFilter{User: "carol"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ReadAudit(path, tt.f)
			require.NoError(t, err)
			var got []int
			for _, r := range recs {
				var i int
				_, err := fmt.Sscanf(r.Path, "/containers/%d/json", &i)
				require.NoError(t, err)
				got = append(got, i)
			}
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "nothing.log")
		_, err := ReadAudit(missing, AuditFilter{})
		assert.EqualError(t, err, fmt.Sprintf("read audit log %q: file does not exist", missing))
	})
	t.Run("only rotated files", func(t *testing.T) {
		require.NoError(t, os.Remove(path))
		recs, err := ReadAudit(path, AuditFilter{})
		require.NoError(t, err)
		assert.Len(t, recs, 3)
	})
}

// TestAuditRecordBounded: a record's values are cut, so that a few calls
// with huge names or paths cannot flush the trail's rotated files.
func TestAuditRecordBounded(t *testing.T) {
	var buf bytes.Buffer
	l, err := OpenAuditLog("", 0, 0, &buf)
	require.NoError(t, err)
	huge := strings.Repeat("x", 900<<10)
	require.NoError(t, l.Write(AuditRecord{Phase: PhaseRequest, Decision: DecisionDeny, URI: "/containers/" + huge + "/json",
		Path: "/containers/" + huge + "/json", Reason: huge, Fields: map[string]any{"name": huge}}))
	assert.Less(t, buf.Len(), 8<<10, "one record")
	assert.Contains(t, buf.String(), "bytes)")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
}
