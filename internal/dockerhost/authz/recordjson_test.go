package authz

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reflectRecord is the record as encoding/json's reflection writes it
// (what MarshalJSON returned before appendRecord): the reference the
// written-out encoder must equal byte for byte.
func reflectRecord(t *testing.T, r AuditRecord) []byte {
	type alias AuditRecord
	b, err := json.Marshal(struct {
		Time string `json:"time"`
		alias
	}{r.Time.UTC().Format(auditTimeFormat), alias(r)})
	require.NoError(t, err)
	return b
}

// TestAppendRecordMatchesJSON: every field set or empty, and strings
// with what encoding/json escapes (quotes, backslashes, control
// characters, HTML's <>&, invalid UTF-8, U+2028, non-ASCII).
func TestAppendRecordMatchesJSON(t *testing.T) {
	strs := []string{"", "alice", `a"b`, `c:\d`, "<script>&</script>", "tab\there\nnl", "\x00\x1f\x7f", "caf\u00e9",
		"\u2028\u2029", "bad\xff\xfeutf8", "ſ K", strings.Repeat("x", 300), "/v1.41/containers/json?all=1&filters={}"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return strs[rng.IntN(len(strs))] }
	num := func() int64 {
		return []int64{0, 1, -1, 1 << 40, -(1 << 62)}[rng.IntN(5)]
	}
	for i := 0; i < 1000; i++ {
		r := AuditRecord{Time: time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)).In(time.FixedZone("x", 3600*rng.IntN(5))),
			Phase: pick(), Decision: pick(), User: pick(), Role: pick(), Serial: pick(), Source: pick(), Method: pick(),
			Path: pick(), URI: pick(), Rule: pick(), Reason: pick(), Status: int(num()), Seq: uint64(rng.Int64N(3)) * 12345,
			Prev: pick(), Issuer: pick(), CN: pick(), UID: pick(), PID: int(num()), Comm: pick(), Socket: pick(),
			DurationUS: num(), BytesIn: num(), BytesOut: num()}
		switch k := rng.IntN(30); {
		case k < 10:
			r.Fields = map[string]any{pick(): pick(), "n": num(), "b": true, "list": []string{pick()}, "m": map[string]any{pick(): nil}}
		case k == 10:
			// Over maxAuditFields: bounded keeps its start.
			r.Fields = map[string]any{"binds": strings.Repeat(pick()+"<&>", 30000)}
		case k < 20:
			r.Fields = map[string]any{"binds": strings.Repeat(pick()+"<&>", 300)}
		}
		got, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, string(reflectRecord(t, r)), string(got), "record %d", i)
		// The trail's line (bounded) is the reference encoding of the
		// bounded record.
		br, _ := r.bounded()
		require.Equal(t, string(reflectRecord(t, br)), string(r.marshal()), "record %d", i)
	}
}
