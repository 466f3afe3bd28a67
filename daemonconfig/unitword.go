package daemonconfig

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckUnitWord checks a value written as one word of a systemd unit line
// (an ExecStart= argument, a ReadWritePaths= or ListenStream= entry):
// what systemd would read as more than the value is refused, naming it
// (what: the flag or setting it comes from). No whitespace or control
// character (a newline starts another directive), none of '%' (a
// specifier), '\' (an escape), quotes, '$' (a variable in ExecStart=),
// ';' (a command separator), and no leading '-', '+', '!',
// '@', ':' or '|' (ExecStart='s prefixes: '+' runs the command with full
// privileges, outside the unit's sandbox), systemd.service(5) and
// systemd.syntax(7).
//
// Why: a unit was written by pasting values in. A newline in daemon.json's
// "hosts" or in DTLS_STATE_DIR added an ExecStartPre=+ line, root outside
// the sandbox at each start, and a space added a --policy flag of the
// writer's choice (found by a red team).
func CheckUnitWord(what, v string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s %q cannot go into a systemd unit: %s", what, v, why)
	}
	switch {
	case v == "":
		return bad("it is empty")
	case !utf8.ValidString(v):
		return bad("it is not UTF-8")
	case strings.ContainsAny(v[:1], "-+!@:|"):
		return bad(fmt.Sprintf("it begins with %q, which systemd reads as a prefix", v[:1]))
	}
	for _, c := range v {
		switch {
		case c <= ' ' || c == 0x7f || c >= 0x80 && c <= 0x9f:
			return bad(fmt.Sprintf("it holds %q: whitespace or a control character", c))
		case strings.ContainsRune(`%\"'$;`, c):
			return bad(fmt.Sprintf("it holds %q, which systemd reads as syntax", c))
		}
	}
	return nil
}
