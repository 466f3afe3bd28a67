package authz

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzEachMember: the hand-written reader of object members sees what
// encoding/json (dockerd's reader) sees: the same keys, the last value of
// each, for every object encoding/json accepts.
func FuzzEachMember(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "cli28", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{`{}`, ` { "a" : [1, {"b":"}"}] , "a":"x\"y", "\u0041":null } `, `{"k":"\\"}`, `{"a":1e5,"b":-0.0,"c":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		got := map[string]json.RawMessage{}
		if !eachMember(b, func(k []byte, v json.RawMessage) { got[string(k)] = append(json.RawMessage(nil), v...) }) {
			t.Fatalf("eachMember refused %q", b)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: keys %d, encoding/json %d", b, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				t.Fatalf("%q: key %q: %q, encoding/json %q", b, k, got[k], v)
			}
		}
	})
}
