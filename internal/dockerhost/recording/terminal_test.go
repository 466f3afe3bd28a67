package recording

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTerminalFilter: what a recording could do to an admin's terminal
// beyond its screen is left out, in one write or split anywhere; the
// screen's own sequences pass as they are.
func TestTerminalFilter(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"text", "hello\r\nworld", "hello\r\nworld"},
		{"colours and cursor", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[?1049h\x1b(0q\x1b(B", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[?1049h\x1b(0q\x1b(B"},
		{"utf-8", "été ✓ \xc2\xa0", "été ✓ \xc2\xa0"},
		{"title, BEL", "a\x1b]0;innocent\ab", "ab"},
		{"clipboard, ST", "a\x1b]52;c;Y3VybCBldmlsfHNo\x1b\\b", "ab"},
		{"hyperlink", "\x1b]8;;https://x.example/\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"DCS query", "a\x1bP$qm\x1b\\b", "ab"},
		{"APC, PM, SOS", "\x1b_x\x1b\\\x1b^y\x1b\\\x1bXz\x1b\\ok", "ok"},
		{"C1 OSC", "a\xc2\x9d0;t\x07b", "ab"},
		{"C1 CSI answered", "a\xc2\x9b6nb", "ab"},
		{"C1 CSI kept", "\xc2\x9b1mx", "\x1b[1mx"},
		{"other C1", "a\xc2\x85\xc2\x8db", "ab"},
		{"device status", "\x1b[6n\x1b[5n\x1b[c\x1b[>0c", ""},
		{"window ops", "\x1b[21t\x1b[8;100;200t\x1b[2t", ""},
		{"DECRQM", "\x1b[?2026$p", ""},
		{"concealed stays, reset comes after", "\x1b[8m", "\x1b[8m"},
		{"CSI cut by ESC", "\x1b[12\x1b]0;t\x07x", "x"},
		{"overlong CSI", "\x1b[" + string(bytes.Repeat([]byte("1;"), 100)) + "mx", "1;1;" /* checked below */},
		{"ESC ESC", "\x1b\x1b[1mx", "\x1b[1mx"},
		{"unterminated string", "a\x1b]0;never ends", "a"},
		// Ended as a terminal ends them (a second red team round): the
		// rest is shown, as the user's own terminal showed it.
		{"string cut by CAN", "a\x1b]0;t\x18shown", "ashown"},
		{"string cut by SUB", "a\x1bPq\x1ashown", "ashown"},
		{"string ended by C1 ST", "a\x1b]0;t\xc2\x9cshown", "ashown"},
		{"string ended by another ESC", "a\x1b]0;t\x1b[1mshown", "a\x1b[1mshown"},
		{"DECID", "a\x1bZb", "ab"},
		{"media copy", "\x1b[5i\x1b[4i\x1b[?5i", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var whole bytes.Buffer
			f := &terminalFilter{w: &whole}
			_, err := f.Write([]byte(c.in))
			require.NoError(t, err)
			if c.name == "overlong CSI" {
				assert.NotContains(t, whole.String(), "\x1b[", "a malformed CSI is dropped, not passed")
				return
			}
			assert.Equal(t, c.want, whole.String())
			// The same bytes one at a time: sequences split across events.
			var split bytes.Buffer
			f = &terminalFilter{w: &split}
			for i := range len(c.in) {
				_, err := f.Write([]byte{c.in[i]})
				require.NoError(t, err)
			}
			assert.Equal(t, c.want, split.String())
		})
	}
}
