package authz

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smallTmpfs mounts a tmpfs of size bytes under a temp dir, unmounted at
// the end of the test.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount needs root, and CI runs the tests as root")
		}
		t.Skip("mount needs root")
	}
	dir := filepath.Join(t.TempDir(), "log")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"))
	t.Cleanup(func() { assert.NoError(t, syscall.Unmount(dir, 0)) })
	return dir
}

// fill writes to dir/filler until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 512)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			return
		}
	}
}

// TestAuditTrailFullDisk: with the trail's file system full, the plugin
// (driven over its socket as dockerd drives it) denies the calls that
// change something, saying why, lets reads go on or not as configured,
// counts the denials in the trail's status, records them on the journal;
// once space is back it records again, the chain whole: no record lost,
// no half line.
func TestAuditTrailFullDisk(t *testing.T) {
	for _, mode := range []AuditFailure{AuditDenyWrites, AuditDenyAll} {
		t.Run(string(mode), func(t *testing.T) {
			dir := smallTmpfs(t, "128k")
			path := filepath.Join(dir, "authz.log")
			journal := &syncBuffer{}
			a, err := OpenAuditLog(path, 0, 0, journal)
			require.NoError(t, err)
			t.Cleanup(func() { a.Close() })
			ca := newTestCA(t, "dtls CA")
			alice := ca.client(t, "alice", 101)
			inv := newFakeInventory()
			inv.add(alice, "developer")
			tp := startPlugin(t, Config{Inventory: inv, Audit: a, AuditFailure: mode})
			create := tlsRequest("POST", "/v1.47/containers/create", alice).withBody(`{"Image":"alpine"}`)
			read := tlsRequest("GET", "/v1.47/containers/json?all=1", alice)

			require.True(t, tp.ask(t, pathAuthZReq, create).Allow)
			require.True(t, tp.ask(t, pathAuthZReq, read).Allow)
			before, err := ReadAudit(path, AuditFilter{})
			require.NoError(t, err)
			require.Len(t, before, 2)

			fill(t, dir)
			// The log's last page may hold a few more lines.
			var out authzResponse
			for range 100 {
				if out = tp.ask(t, pathAuthZReq, create); !out.Allow {
					break
				}
			}
			require.False(t, out.Allow, "a create is denied once the trail is full")
			assert.Contains(t, out.Msg, "the audit trail cannot be written")
			assert.Contains(t, out.Msg, "no space left on device")
			assert.Contains(t, out.Msg, ruleAuditFailure)

			got := tp.ask(t, pathAuthZReq, read)
			assert.Equal(t, mode == AuditDenyWrites, got.Allow, "a read: %s", got.Msg)
			// The response phase is never denied: the call is done.
			assert.True(t, tp.ask(t, pathAuthZRes, create).Allow)

			st, err := ReadTrailStatus(path)
			require.NoError(t, err)
			assert.Equal(t, TrailFailing, st.State)
			assert.Contains(t, st.LastError, "no space left on device")
			wantDenied := uint64(2)
			if mode == AuditDenyWrites {
				wantDenied = 1
			}
			// The create (and the read, deny-all) denied; the records
			// not in the file also count the response and an allowed read.
			assert.Equal(t, wantDenied, st.Denied)
			assert.Equal(t, uint64(3), st.Unrecorded)
			assert.Contains(t, journal.String(), `"rule":"`+ruleAuditFailure+`"`)

			require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
			require.True(t, tp.ask(t, pathAuthZReq, create).Allow, "space is back")
			st, err = ReadTrailStatus(path)
			require.NoError(t, err)
			assert.Equal(t, TrailWritable, st.State)

			v, err := VerifyAudit(path, nil)
			require.NoError(t, err)
			require.Nil(t, v.Break, "%+v", v.Break)
			assert.Empty(t, v.Torn, "a write cut short by the full disk was undone")
			assert.True(t, v.Genesis())
			after, err := ReadAudit(path, AuditFilter{})
			require.NoError(t, err)
			require.Greater(t, len(after), len(before))
			for i := range before {
				assert.Equal(t, before[i].Seq, after[i].Seq)
			}
			last := after[len(after)-1]
			assert.Equal(t, DecisionAllow, last.Decision)
			assert.Equal(t, "alice", last.CN)
			assert.True(t, strings.HasPrefix(last.Issuer, "CN=dtls CA"), last.Issuer)
		})
	}
}
