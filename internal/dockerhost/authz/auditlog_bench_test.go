package authz

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkAuditWrite measures the synchronous write of one audit record,
// the cost each API call pays before dockerd hears the answer, in one run:
//
//	plain         the record marshalled and one write(2) of the line, without the
//	              chain (the trail as it was before the chain)
//	chain/discard the chain (seq, SHA-256 of the line) without a file
//	chain/file    the chain and one write(2) to the file: the default
//	chain/fsync   the same and fsync(2) at each record (--audit-fsync)
//
// Each reports the median and the 99th percentile of the calls (p50-ns,
// p99-ns) besides the mean.
//
//	go test -run '^$' -bench AuditWrite ./internal/dockerhost/authz/
func BenchmarkAuditWrite(b *testing.B) {
	rec := AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: "alice", Role: "developer", Serial: "1a2b3c4d",
		Issuer: "CN=dtls CA,O=dtls", CN: "alice", Source: "tcp", Method: "POST", Path: "/containers/create",
		URI: "/v1.47/containers/create?name=web", Fields: map[string]any{"image": "alpine", "privileged": false},
		Rule: "developer: POST /containers/create", Reason: "allowed for developer"}
	for _, bc := range []struct {
		name  string
		write func(b *testing.B) func() error
	}{
		{"plain", func(b *testing.B) func() error {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "authz.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			require.NoError(b, err)
			b.Cleanup(func() { f.Close() })
			return func() error {
				r := rec
				r.Time = time.Now()
				line, err := json.Marshal(r)
				if err != nil {
					return err
				}
				_, err = f.Write(append(line, '\n'))
				return err
			}
		}},
		{"chain/discard", func(b *testing.B) func() error {
			l, err := OpenAuditLog("", 0, 0, io.Discard)
			require.NoError(b, err)
			b.Cleanup(func() { l.Close() })
			return func() error { return l.Write(rec) }
		}},
		{"chain/file", func(b *testing.B) func() error {
			l, err := OpenAuditLog(filepath.Join(b.TempDir(), "authz.log"), 10<<20, 5, nil)
			require.NoError(b, err)
			b.Cleanup(func() { l.Close() })
			return func() error { return l.Write(rec) }
		}},
		{"chain/fsync", func(b *testing.B) func() error {
			l, err := OpenAuditLog(filepath.Join(b.TempDir(), "authz.log"), 10<<20, 5, nil)
			require.NoError(b, err)
			l.SyncEachRecord(true)
			b.Cleanup(func() { l.Close() })
			return func() error { return l.Write(rec) }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			write := bc.write(b)
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := write(); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkAuditWriteParallel is 16 writers at once, with and without
// fsync at each record: records written at the same time share one
// write(2) and one fsync(2) (group commit, AuditLog.Write). Its ns/op is
// per record; batch-records is how many records a write carried on
// average.
//
//	go test -run '^$' -bench AuditWriteParallel ./internal/dockerhost/authz/
func BenchmarkAuditWriteParallel(b *testing.B) {
	rec := AuditRecord{Phase: PhaseRequest, Decision: DecisionAllow, User: "alice", Role: "developer", Serial: "1a2b3c4d",
		Method: "GET", Path: "/containers/json", URI: "/v1.47/containers/json", Rule: "developer: GET /containers/json"}
	for _, sync := range []bool{false, true} {
		b.Run(map[bool]string{false: "file", true: "fsync"}[sync], func(b *testing.B) {
			l, err := OpenAuditLog(filepath.Join(b.TempDir(), "authz.log"), 0, 0, nil)
			require.NoError(b, err)
			defer l.Close()
			l.SyncEachRecord(sync)
			b.SetParallelism(8) // 16 writers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Write(rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(l.seq)/float64(l.batches), "batch-records")
		})
	}
}
