package daemonconfig

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// FuzzMerge checks Merge's promises on any input: valid JSON in, valid JSON
// out; keys it does not own keep their exact text; TLS verification is on
// and the listen address is served; a second merge is a no-op.
func FuzzMerge(f *testing.F) {
	for _, tc := range mergeCases(f) {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changes, err := Merge(in, testSettings)
		if err != nil {
			return
		}
		require.True(t, json.Valid(out), "invalid output %q from %q", out, in)
		require.True(t, gjson.ValidBytes(out), "gjson rejects output %q", out)

		before, after := topLevelRaw(in), topLevelRaw(out)
		for k, raw := range before {
			if managed[k] {
				continue
			}
			assert.Equal(t, raw, after[k], "value of %q changed", k)
		}
		for k := range after {
			_, was := before[k]
			assert.True(t, was || managed[k], "key %q appeared", k)
		}
		assert.Equal(t, "true", after["tlsverify"])
		assert.NotContains(t, after, "tls")
		assert.NotContains(t, after, "host")
		var hosts []string
		require.NoError(t, json.Unmarshal([]byte(after["hosts"]), &hosts))
		assert.Contains(t, hosts, testSettings.Listen)
		var cfg struct {
			TLSVerify bool   `json:"tlsverify"`
			Key       string `json:"tlskey"`
		}
		require.NoError(t, json.Unmarshal(out, &cfg))
		assert.True(t, cfg.TLSVerify)
		assert.Equal(t, testSettings.Key, cfg.Key)

		again, changes2, err := Merge(out, testSettings)
		require.NoError(t, err)
		assert.Equal(t, string(out), string(again), "not idempotent; first changes: %q", changes)
		assert.Empty(t, changes2)
	})
}

// topLevelRaw maps each top-level key to the raw text of its first value.
func topLevelRaw(b []byte) map[string]string {
	m := map[string]string{}
	if len(b) >= 3 && string(b[:3]) == "\xEF\xBB\xBF" {
		b = b[3:]
	}
	gjson.ParseBytes(b).ForEach(func(k, v gjson.Result) bool {
		if _, ok := m[k.String()]; !ok {
			m[k.String()] = v.Raw
		}
		return true
	})
	return m
}
