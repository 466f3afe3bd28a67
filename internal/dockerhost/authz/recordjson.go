package authz

import (
	"encoding/json"
	"strconv"
)

// appendRecord appends r as encoding/json writes it through MarshalJSON
// (the keys in the struct's order, omitempty kept, strings escaped with
// HTML escaping, Fields' keys sorted), byte for byte: the trail is read
// back with encoding/json and each line's hash is of these bytes
// (chain.go). Written out rather than by reflection because every API
// call through the gateway waits for two records (BenchmarkAuditWrite:
// reflection was half of a record's cost); TestAppendRecordMatchesJSON
// holds the two encodings equal. fields is r.Fields marshalled (bounded
// does it), nil for none.
func appendRecord(b []byte, r *AuditRecord, fields []byte) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, auditTimeFormat)
	b = append(b, `","phase":`...)
	b = appendJSONString(b, r.Phase)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, r.Decision)
	b = appendStringField(b, "user", r.User)
	b = appendStringField(b, "role", r.Role)
	b = appendStringField(b, "serial", r.Serial)
	b = appendStringField(b, "source", r.Source)
	b = appendStringField(b, "method", r.Method)
	b = appendStringField(b, "path", r.Path)
	b = appendStringField(b, "uri", r.URI)
	if len(fields) > 0 {
		b = append(b, `,"fields":`...)
		b = append(b, fields...)
	}
	b = appendStringField(b, "rule", r.Rule)
	b = appendStringField(b, "reason", r.Reason)
	b = appendIntField(b, "status", int64(r.Status))
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	b = appendStringField(b, "prev", r.Prev)
	b = appendStringField(b, "issuer", r.Issuer)
	b = appendStringField(b, "cn", r.CN)
	b = appendStringField(b, "uid", r.UID)
	b = appendIntField(b, "pid", int64(r.PID))
	b = appendStringField(b, "comm", r.Comm)
	b = appendStringField(b, "socket", r.Socket)
	b = appendIntField(b, "duration_us", r.DurationUS)
	b = appendIntField(b, "bytes_in", r.BytesIn)
	b = appendIntField(b, "bytes_out", r.BytesOut)
	return append(b, '}')
}

// appendStringField appends `,"key":"value"` unless value is empty
// (omitempty).
func appendStringField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendIntField(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendJSONString appends s quoted. Printable ASCII that encoding/json
// leaves as it is (no quote, backslash, or '<', '>', '&' it escapes for
// HTML) is copied; anything else is left to encoding/json, so that
// control characters, invalid UTF-8 and U+2028/U+2029 come out as it
// writes them.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
