// Package daemonconfig merges dtls's TLS settings into dockerd's daemon.json,
// and writes the systemd drop-in needed when docker.service passes -H flags.
//
// daemon.json is a file people edit by hand, so the merge is textual: it keeps
// every key it does not own byte for byte, in its place, and keeps the file's
// indentation, key order, line endings and trailing newline. Only "hosts",
// "host", "tls", "tlsverify", "tlscacert", "tlscert" and "tlskey" are
// touched. The package never prints and never exits; the command layer
// decides what to show.
package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// DefaultSocket is the local socket dockerd listens on when "hosts" is not
// set. Setting "hosts" replaces that default, so Merge adds it back when it
// creates "hosts"; without it the local docker CLI (and anything mounting
// /var/run/docker.sock) loses the daemon. See the dockerd reference, "Daemon
// socket option": https://docs.docker.com/reference/cli/dockerd/#daemon-socket-option
const DefaultSocket = "unix:///var/run/docker.sock"

// Settings are what dtls puts into daemon.json.
type Settings struct {
	// Listen is the TCP endpoint dockerd serves TLS on, e.g.
	// "tcp://0.0.0.0:2376" (2376 is the port IANA registered for Docker over
	// TLS; 2375 is the plain-text one).
	Listen string
	// CACert, Cert and Key are the absolute paths written as "tlscacert",
	// "tlscert" and "tlskey".
	CACert, Cert, Key string
	// Sockets are hosts entries that must also be present, e.g. "fd://"
	// moved out of the systemd unit's -H flag (see Unit.Hosts).
	Sockets []string
	// AuthzPlugin, when set, is an authorization plugin that must be in
	// "authorization-plugins" (others already there are kept, in their
	// order: dockerd asks each in turn and any of them can deny).
	AuthzPlugin string
	// Gateway says that the TCP endpoint is served by the dtls gateway
	// ('dtls gateway serve', socket-activated by systemd), not by dockerd:
	// Listen, and every other TCP entry, is taken out of "hosts" (dockerd
	// keeps its local sockets, the gateway's way in), while "tlsverify"
	// and the TLS files stay set, so that a TCP host added later by hand
	// still demands a client certificate. dockerd applies its TLS settings
	// to TCP listeners only (moby cmd/dockerd: listeners.Init ignores them
	// for unix:// and fd://), so they are harmless without one.
	Gateway bool
	// Group, when Set, is the group of dockerd's unix sockets ("group",
	// moby daemon/config; dockerd's default is "docker"): Name, or, when
	// Name is "", the key taken out so that dockerd's default applies.
	// 'dtls init --local' makes it "root": every member of group docker
	// is root on the host (https://docs.docker.com/engine/security/#docker-daemon-attack-surface),
	// and local accounts use the dtls gateway's own socket instead.
	Group GroupChange
}

// GroupChange is a change of daemon.json's "group" (Settings.Group).
type GroupChange struct {
	Set  bool
	Name string
}

// SyntaxError reports malformed JSON at the position of its first error.
// Line and Column are 1-based; Column counts characters, as editors do.
type SyntaxError struct {
	Line, Column int
	// Msg is encoding/json's description of the error.
	Msg string
}

// Error says where the file is malformed, e.g. "invalid JSON at line 3,
// column 1: invalid character '}' looking for beginning of object key string".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// utf8BOM is the UTF-8 byte order mark. RFC 8259 section 8.1 forbids writing
// it and lets parsers ignore it; dockerd 20.10 does not (it fails with
// "invalid character 'ï' looking for beginning of value"); moby only started
// decoding it in daemon/config.getConflictFreeConfiguration (Docker 23+).
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Merge returns in with s merged in, and one human-readable line per change,
// e.g. `added "tcp://0.0.0.0:2376" to "hosts"`. An empty (or whitespace
// only) input is treated as {}. Merge is idempotent: merging its output again
// returns the same bytes and no changes.
//
// Rules, each because of how dockerd reads the file:
//   - "hosts" keeps its entries and gains s.Listen and s.Sockets. When the
//     file had no "hosts" (or an empty one) and nothing local (unix:// or
//     fd://) is being added, DefaultSocket is added first. A string "hosts" (which dockerd
//     cannot unmarshal into its []string) becomes a list.
//   - A singular "host" key is migrated into "hosts" and removed: dockerd
//     accepts the key (it matches the --host flag's name, so its unknown-key
//     check passes) but decodes only "hosts", so "host" is silently ignored
//     and the daemon never listens on TCP.
//   - "tlsverify" is set to true and "tlscacert", "tlscert", "tlskey" to s;
//     "tls" is removed: tlsverify implies it (dockerd --help: "--tls  Use
//     TLS; implied by --tlsverify"), and on its own, in dockerd 20.10, it
//     encrypts without checking client certificates
//     (https://docs.docker.com/engine/security/protect-access/).
//   - Duplicate copies of those keys are removed: encoding/json, which
//     dockerd uses, silently keeps the last one.
//   - Keys that differ from those only in case ("TLSVerify") are an error:
//     dockerd rejects them as unknown directives.
//   - A UTF-8 byte order mark is removed (dockerd 20.10 cannot parse it).
//
// Errors: *SyntaxError for malformed JSON, and plain errors naming the key
// for a top level that is not an object or a value of the wrong type.
func Merge(in []byte, s Settings) (out []byte, changes []string, err error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	b := in
	if bytes.HasPrefix(b, utf8BOM) {
		b = b[len(utf8BOM):]
		changes = append(changes, "removed UTF-8 byte order mark (dockerd 20.10 cannot parse it)")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}\n")
	}
	if err := checkSyntax(b); err != nil {
		return nil, nil, err
	}
	b = bytes.Clone(b)
	obj, err := scanTop(b)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeyCase(obj); err != nil {
		return nil, nil, err
	}
	st := detectStyle(b, obj)
	m := &merger{b: b, st: st}
	if err := m.run(s); err != nil {
		return nil, nil, err
	}
	return m.b, append(changes, m.changes...), nil
}

func (s Settings) check() error {
	if s.Listen == "" {
		return errors.New("settings: empty listen address")
	}
	for _, f := range []struct{ name, v string }{{"tlscacert", s.CACert}, {"tlscert", s.Cert}, {"tlskey", s.Key}} {
		if !strings.HasPrefix(f.v, "/") {
			// dockerd resolves relative paths against its own working
			// directory (/ under systemd), never against the file.
			return fmt.Errorf("settings: %s %q is not an absolute path", f.name, f.v)
		}
	}
	return nil
}

// checkSyntax validates b with encoding/json, the parser dockerd uses, and
// turns its byte offset into a line and column.
func checkSyntax(b []byte) error {
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	// Offset is the number of bytes read when the error was found, so the
	// offending byte is the one before it. At the end of the input there is
	// no offending byte: point just after the last non-blank one.
	pos := int(se.Offset) - 1
	if se.Error() == "unexpected end of JSON input" {
		pos = len(bytes.TrimRight(b, " \t\r\n"))
	}
	pos = max(0, min(pos, len(b)))
	line := 1 + bytes.Count(b[:pos], []byte("\n"))
	lineStart := bytes.LastIndexByte(b[:pos], '\n') + 1
	col := 1 + utf8.RuneCount(b[lineStart:pos])
	return &SyntaxError{Line: line, Column: col, Msg: se.Error()}
}

// checkKeyCase refuses keys that differ from the ones Merge owns only in
// case, such as "TLSVerify". dockerd rejects them ("the following directives
// don't match any configuration option", moby daemon/config
// findConfigurationConflicts looks keys up case-sensitively), yet
// encoding/json would decode them into the same field, so neither keeping
// nor silently dropping them is right: the author must choose.
func checkKeyCase(obj container) error {
	for _, it := range obj.items {
		if managed[it.key] {
			continue
		}
		for k := range managed {
			if strings.EqualFold(it.key, k) {
				return fmt.Errorf("key %q is not a dockerd option (keys are case-sensitive; did you mean %q?)", it.key, k)
			}
		}
	}
	return nil
}

// style is how the file is laid out, so that what Merge adds looks like
// what was there.
type style struct {
	nl        string // "\n" or "\r\n"
	indent    string // before a top-level key
	unit      string // one more level of nesting
	sep       string // between a key and its value, e.g. ": "
	multiline bool   // top-level members are on their own lines
}

func detectStyle(b []byte, obj container) style {
	st := style{nl: "\n", indent: "  ", unit: "  ", sep: ": ", multiline: true}
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		st.nl = "\r\n"
	}
	if len(obj.items) == 0 {
		return st
	}
	first := obj.items[0]
	ws := b[obj.open+1 : first.keyStart]
	if i := bytes.LastIndexByte(ws, '\n'); i >= 0 {
		st.indent = string(bytes.Trim(ws[i+1:], "\r\n"))
		st.unit = st.indent
		if st.unit == "" {
			st.unit = "  "
		}
	} else {
		st.multiline = false
	}
	if sep := b[first.keyEnd:first.valStart]; !bytes.ContainsAny(sep, "\r\n") {
		st.sep = string(sep)
	}
	return st
}

// managed are the top-level keys Merge owns; everything else is kept byte for
// byte.
var managed = map[string]bool{
	"hosts": true, "host": true, "tls": true, "tlsverify": true,
	"tlscacert": true, "tlscert": true, "tlskey": true,
}

type merger struct {
	b       []byte
	st      style
	changes []string
}

func (m *merger) changef(format string, args ...any) {
	m.changes = append(m.changes, fmt.Sprintf(format, args...))
}

// top rescans the top-level object. Every edit invalidates offsets, and the
// files are small, so each step starts from a fresh scan.
func (m *merger) top() container {
	obj, err := scanTop(m.b)
	if err != nil {
		// Each edit keeps the document valid; a failure here is a bug.
		panic("daemonconfig: edit produced invalid JSON: " + err.Error())
	}
	return obj
}

func (m *merger) find(key string) []item {
	var out []item
	for _, it := range m.top().items {
		if it.key == key {
			out = append(out, it)
		}
	}
	return out
}

func (m *merger) splice(start, end int, repl string) {
	m.b = append(m.b[:start:start], append([]byte(repl), m.b[end:]...)...)
}

func (m *merger) run(s Settings) error {
	if err := m.mergeHosts(s); err != nil {
		return err
	}
	for _, it := range m.find("tls") {
		m.changef(`removed "tls": %s (tlsverify supersedes it)`, m.raw(it))
	}
	m.removeAll("tls")
	m.setValue("tlsverify", "true", func(r gjson.Result) bool { return r.Type == gjson.True })
	for _, kv := range []struct{ key, val string }{{"tlscacert", s.CACert}, {"tlscert", s.Cert}, {"tlskey", s.Key}} {
		m.setValue(kv.key, quote(kv.val), func(r gjson.Result) bool { return r.Type == gjson.String && r.Str == kv.val })
	}
	m.mergeGroup(s.Group)
	if s.AuthzPlugin != "" {
		return m.mergePlugins(s.AuthzPlugin)
	}
	return nil
}

// mergeGroup applies Settings.Group.
func (m *merger) mergeGroup(g GroupChange) {
	switch {
	case !g.Set:
	case g.Name != "":
		m.setValue("group", quote(g.Name), func(r gjson.Result) bool { return r.Type == gjson.String && r.Str == g.Name })
	case len(m.find("group")) > 0:
		m.changef(`removed "group" (dockerd's default applies: docker)`)
		m.removeAll("group")
	}
}

// mergePlugins adds name to "authorization-plugins" (moby
// daemon/config: a list of plugin names), keeping the plugins already
// there.
func (m *merger) mergePlugins(name string) error {
	const key = "authorization-plugins"
	its := m.find(key)
	if len(its) == 0 {
		m.changef("set %q: [%q]", key, name)
		m.appendMember(key, func() string { return m.formatList([]string{name}) })
		return nil
	}
	vals, isString, err := hostValues(key, m.raw(its[0]))
	if err != nil {
		return err
	}
	if contains(vals, name) && !isString {
		return nil
	}
	m.changef("added %q to %q", name, key)
	if isString {
		m.splice(its[0].valStart, its[0].valEnd, m.formatList(appendNew(vals, name)))
		return nil
	}
	m.appendToList(its[0], []string{name})
	return nil
}

func (m *merger) raw(it item) string { return string(m.b[it.valStart:it.valEnd]) }

// hostValues reads a "hosts" or "host" value: a list of strings, a string, or
// null (which encoding/json decodes to an empty list).
func hostValues(key string, raw string) (vals []string, isString bool, err error) {
	r := gjson.Parse(raw)
	switch {
	case r.Type == gjson.String:
		return []string{r.Str}, true, nil
	case r.Type == gjson.Null:
		return nil, false, nil
	case r.IsArray():
		for i, e := range r.Array() {
			if e.Type != gjson.String {
				return nil, false, fmt.Errorf("%q must be a list of strings: element %d is %s", key, i+1, kindOf(e.Raw))
			}
			vals = append(vals, e.Str)
		}
		return vals, false, nil
	}
	return nil, false, fmt.Errorf("%q must be a list of strings, not %s", key, kindOf(raw))
}

func (m *merger) mergeHosts(s Settings) error {
	var have, migrated []string
	hosts := m.find("hosts")
	hostsIsString := false
	for i, it := range hosts {
		vals, isString, err := hostValues("hosts", m.raw(it))
		if err != nil {
			return err
		}
		if i == 0 {
			hostsIsString = isString
		}
		have = appendNew(have, vals...)
	}
	singular := m.find("host")
	for _, it := range singular {
		vals, _, err := hostValues("host", m.raw(it))
		if err != nil {
			return err
		}
		migrated = appendNew(migrated, vals...)
	}

	if len(singular) > 0 {
		m.changef(`migrated singular "host" key (ignored by dockerd) into "hosts"`)
	}
	want := appendNew(nil, have...)
	var added []string
	// dockerd falls back to its default socket when "hosts" is absent,
	// null or empty (moby cmd/dockerd newAPIServerConfig: an empty list
	// becomes one "" entry, which ParseHost turns into the default), so
	// that is when the new list must name it.
	if len(have) == 0 && !hasLocal(migrated) && !hasLocal(s.Sockets) {
		want = appendNew(want, DefaultSocket)
		m.changef("added %q to \"hosts\" (keeps the local docker CLI working)", DefaultSocket)
	}
	want = appendNew(want, migrated...)
	for _, v := range append(append([]string{}, s.Sockets...), s.Listen) {
		if s.Gateway && isTCP(v) {
			continue
		}
		if !contains(want, v) {
			added = append(added, v)
		}
		want = appendNew(want, v)
	}
	for _, v := range added {
		m.changef("added %q to \"hosts\"", v)
	}
	rewrite := false
	if s.Gateway {
		want, rewrite = m.dropTCP(want)
	}

	switch {
	case len(hosts) > 0:
		first := hosts[0]
		firstVals, _, _ := hostValues("hosts", m.raw(first))
		switch {
		case hostsIsString:
			m.changef(`converted "hosts" from a string to a list (dockerd expects a list)`)
			m.splice(first.valStart, first.valEnd, m.formatList(want))
		case rewrite:
			m.splice(first.valStart, first.valEnd, m.formatList(want))
		default:
			var extra []string
			for _, v := range want {
				if !contains(firstVals, v) {
					extra = append(extra, v)
				}
			}
			m.appendToList(first, extra)
		}
		if len(hosts) > 1 {
			m.changef(`removed duplicate "hosts" keys (merged into the first one)`)
		}
		m.removeAllButFirst("hosts")
		m.removeAll("host")
	case len(singular) > 0:
		// Put "hosts" where "host" was: the author chose that place.
		first := singular[0]
		m.splice(first.keyStart, first.valEnd, quote("hosts")+string(m.b[first.keyEnd:first.valStart])+m.formatList(want))
		m.removeAll("host") // the first one is "hosts" now
	default:
		m.appendMember("hosts", func() string { return m.formatList(want) })
	}
	return nil
}

// setValue makes key hold raw: it replaces the first occurrence when ok says
// its current value differs, removes later duplicates, or appends the key.
func (m *merger) setValue(key, raw string, ok func(gjson.Result) bool) {
	its := m.find(key)
	if len(its) == 0 {
		m.changef("set %q: %s", key, raw)
		m.appendMember(key, func() string { return raw })
		return
	}
	first := its[0]
	if old := m.raw(first); !ok(gjson.Parse(old)) {
		m.changef("set %q: %s (was %s)", key, raw, old)
		// sjson rewrites the value where it stands and leaves every other
		// byte of the file alone. Its path syntax gives '.', '*', '?' and
		// '|' a meaning; the keys dtls sets have none of them.
		b, err := sjson.SetRawBytesOptions(m.b, key, []byte(raw), &sjson.Options{ReplaceInPlace: false})
		if err != nil {
			panic("daemonconfig: set " + key + ": " + err.Error())
		}
		m.b = b
	}
	if len(its) > 1 {
		m.changef("removed duplicate %q keys (dockerd only reads the last one)", key)
		m.removeAllButFirst(key)
	}
}

func (m *merger) removeAll(key string) {
	for {
		its := m.find(key)
		if len(its) == 0 {
			return
		}
		m.remove(its[len(its)-1])
	}
}

func (m *merger) removeAllButFirst(key string) {
	for {
		its := m.find(key)
		if len(its) <= 1 {
			return
		}
		m.remove(its[len(its)-1])
	}
}

// remove deletes one member with the whitespace that introduced it, so that
// the lines around it keep their layout.
func (m *merger) remove(it item) {
	obj := m.top()
	idx := -1
	for i, o := range obj.items {
		if o.keyStart == it.keyStart {
			idx = i
		}
	}
	switch {
	case len(obj.items) == 1:
		m.splice(obj.open+1, it.valEnd, "")
	case idx == len(obj.items)-1:
		// The last member: drop the comma after the previous one too.
		m.splice(obj.items[idx-1].valEnd, it.valEnd, "")
	case idx == 0:
		m.splice(obj.open+1, it.commaEnd, "")
	default:
		m.splice(obj.items[idx-1].commaEnd, it.commaEnd, "")
	}
}

// appendMember adds key at the end of the top-level object, on its own line
// in the file's indentation. value is called after the object has been laid
// out, so that a list value can follow that layout.
func (m *merger) appendMember(key string, value func() string) {
	obj := m.top()
	if len(obj.items) > 0 && !m.st.multiline {
		m.relayout(obj)
		obj = m.top()
	}
	m.st.multiline = true
	member := m.st.indent + quote(key) + m.st.sep + value()
	if len(obj.items) == 0 {
		// "{}" or "{ }": open it up. Whatever followed "}" (a trailing
		// newline or not) is kept.
		m.splice(obj.open+1, obj.close, m.st.nl+member+m.st.nl)
		return
	}
	last := obj.items[len(obj.items)-1]
	m.splice(last.valEnd, last.valEnd, ","+m.st.nl+member)
}

// relayout puts each top-level member of a one-line object on its own line,
// keeping every key and value byte for byte, so that added keys are not one
// long line. It runs once: the result is multi-line.
func (m *merger) relayout(obj container) {
	var sb strings.Builder
	sb.WriteString("{")
	for i, it := range obj.items {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(m.st.nl + m.st.indent)
		sb.Write(m.b[it.keyStart:it.keyEnd])
		sb.WriteString(m.st.sep)
		sb.Write(m.b[it.valStart:it.valEnd])
	}
	sb.WriteString(m.st.nl + "}")
	m.splice(obj.open, obj.close+1, sb.String())
	m.st.multiline = true
}

// formatList formats a new list value for a top-level key.
func (m *merger) formatList(vals []string) string {
	if !m.st.multiline {
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = quote(v)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	var sb strings.Builder
	sb.WriteString("[")
	for i, v := range vals {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(m.st.nl + m.st.indent + m.st.unit + quote(v))
	}
	sb.WriteString(m.st.nl + m.st.indent + "]")
	return sb.String()
}

// appendToList adds vals at the end of the list held by member it, in the
// list's own layout: one per line when it is multi-line, inline otherwise.
func (m *merger) appendToList(it item, vals []string) {
	if len(vals) == 0 {
		return
	}
	if gjson.Parse(m.raw(it)).Type == gjson.Null {
		m.splice(it.valStart, it.valEnd, m.formatList(vals))
		return
	}
	arr := scanContainer(m.b, it.valStart)
	if len(arr.items) == 0 {
		m.splice(it.valStart, it.valEnd, m.formatList(vals))
		return
	}
	var sep string
	first, last := arr.items[0], arr.items[len(arr.items)-1]
	if lead := m.b[arr.open+1 : first.valStart]; bytes.IndexByte(lead, '\n') >= 0 {
		// Indent new elements like the line of the last one.
		ls := bytes.LastIndexByte(m.b[:last.valStart], '\n') + 1
		ind := string(m.b[ls:last.valStart])
		if strings.Trim(ind, " \t") != "" {
			ind = m.st.indent + m.st.unit
		}
		sep = "," + m.st.nl + ind
	} else {
		sep = ", "
		if len(arr.items) > 1 {
			if s := m.b[first.valEnd:arr.items[1].valStart]; bytes.IndexByte(s, '\n') < 0 {
				sep = string(s)
			}
		}
	}
	var sb strings.Builder
	for _, v := range vals {
		sb.WriteString(sep + quote(v))
	}
	m.splice(last.valEnd, last.valEnd, sb.String())
}

// dropTCP takes the TCP entries out of hosts (Settings.Gateway), and
// reports whether any was there. What is left always names a local socket:
// the gateway reaches dockerd through it.
func (m *merger) dropTCP(hosts []string) ([]string, bool) {
	var kept []string
	removed := false
	for _, h := range hosts {
		if isTCP(h) {
			m.changef("removed %q from \"hosts\" (the dtls gateway serves TCP)", h)
			removed = true
			continue
		}
		kept = append(kept, h)
	}
	if !hasLocal(kept) {
		kept = appendNew(kept, DefaultSocket)
		m.changef("added %q to \"hosts\" (the dtls gateway reaches dockerd there)", DefaultSocket)
		removed = true
	}
	return kept, removed
}

// isTCP reports whether dockerd reads host as a TCP listener: tcp://, or
// a bare HOST:PORT (moby opts.ParseHost defaults the scheme to tcp).
func isTCP(host string) bool {
	h := strings.TrimSpace(host)
	return strings.HasPrefix(h, "tcp://") || (h != "" && !strings.Contains(h, "://"))
}

func hasLocal(hosts []string) bool {
	for _, h := range hosts {
		if strings.HasPrefix(h, "unix://") || strings.HasPrefix(h, "fd://") {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func appendNew(list []string, vals ...string) []string {
	for _, v := range vals {
		if !contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// quote encodes s as a JSON string without HTML escaping: paths and URLs
// stay readable ("&" rather than "\u0026").
func quote(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return strings.TrimSuffix(buf.String(), "\n")
}

func kindOf(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
