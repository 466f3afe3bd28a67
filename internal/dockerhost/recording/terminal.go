package recording

import (
	"bytes"
	"io"
)

// terminalFilter passes a recording's output on to an admin's terminal
// without what acts beyond the screen: the recorded user chose every
// byte. A recording set the window's title, could write the admin's
// clipboard (OSC 52), and ended in concealed text (SGR 8) so that the
// trailer naming who ran the session printed invisibly after a forged one
// (found by a red team). Dropped, across event boundaries:
//
//   - OSC, DCS, SOS, PM and APC strings (ESC ] P X ^ _, or their C1
//     forms, up to BEL or ST): titles, clipboard, hyperlinks, terminal
//     queries and file transfers (xterm's ctlseqs, "Operating System
//     Commands" and "Device-Control functions");
//   - CSI sequences the terminal answers by typing into the admin's input
//     or that act on the window: device status and attributes (n, c),
//     window operations and reports (t), DECREQTPARM (x), DECRQM ($p),
//     media copy (i: to a printer, the closing line too); and DECID
//     (ESC Z);
//   - the other C1 controls, in their UTF-8 form (U+0080 to U+009F).
//
// The screen's own sequences (cursor, colours, erase, alternate screen)
// pass: a session is played as it looked. termReset, written after it,
// undoes what they may leave on.
type terminalFilter struct {
	w     io.Writer
	state uint8
	seq   []byte // the CSI sequence being read
	buf   []byte
	wrote bool
}

const (
	tfGround    = iota
	tfEsc       // after ESC
	tfCSI       // in a CSI sequence
	tfString    // in an OSC, DCS, SOS, PM or APC string: dropped to its end
	tfStringEsc // ESC in such a string (ST is ESC \)
	tfStringC2  // 0xC2 in such a string: C1 ST (0xC2 0x9C) may follow
	tfC2        // after 0xC2: a C1 control's UTF-8 form may follow
)

// maxCSI bounds a CSI sequence kept whole before it is passed or dropped;
// a longer one is malformed, and dropped.
const maxCSI = 64

// termReset ends a playback: a soft reset (DECSTR: modes, margins, SGR,
// character sets), attributes, the main screen and a visible cursor, so
// that what is printed next shows.
const termReset = "\x1b[!p\x1b[0m\x1b(B\x0f\x1b[?1049l\x1b[?25h" +
	// Modes that outlive playback and report into the admin's input:
	// mouse, focus, bracketed paste; kitty's keyboard flags popped.
	"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?2004l\x1b[<99u"

func (f *terminalFilter) Write(p []byte) (int, error) {
	f.buf = f.buf[:0]
	for _, b := range p {
		f.step(b)
	}
	if len(f.buf) == 0 {
		return len(p), nil
	}
	f.wrote = true
	if _, err := f.w.Write(f.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (f *terminalFilter) step(b byte) {
	switch f.state {
	case tfGround:
		f.ground(b)
	case tfC2:
		f.state = tfGround
		switch {
		case b == 0x9b:
			f.state, f.seq = tfCSI, append(f.seq[:0], 0x1b, '[')
		case b == 0x90 || b == 0x98 || b == 0x9d || b == 0x9e || b == 0x9f:
			f.state = tfString
		case b >= 0x80 && b <= 0x9f:
			// Another C1 control: dropped.
		default:
			f.buf = append(f.buf, 0xc2)
			f.ground(b)
		}
	case tfEsc:
		f.escape(b)
	case tfCSI:
		f.csi(b)
	case tfString:
		// Ended as a terminal ends it (xterm, ECMA-48 8.3.143): BEL, ST
		// (ESC \ or C1 ST), or cut by CAN or SUB; an ESC not followed by
		// '\' starts another sequence. Dropping to BEL or ESC \ only hid
		// everything after such a string from the admin, which the user's
		// own terminal showed (a second red team round).
		switch b {
		case 0x07, 0x18, 0x1a:
			f.state = tfGround
		case 0x1b:
			f.state = tfStringEsc
		case 0xc2:
			f.state = tfStringC2
		}
	case tfStringC2:
		f.state = tfString
		if b == 0x9c {
			f.state = tfGround
		}
	case tfStringEsc:
		if b == '\\' {
			f.state = tfGround
			return
		}
		f.escape(b)
	}
}

func (f *terminalFilter) ground(b byte) {
	switch b {
	case 0x1b:
		f.state = tfEsc
	case 0xc2:
		f.state = tfC2
	default:
		f.buf = append(f.buf, b)
	}
}

func (f *terminalFilter) escape(b byte) {
	switch b {
	case '[':
		f.state, f.seq = tfCSI, append(f.seq[:0], 0x1b, '[')
	case ']', 'P', 'X', '^', '_':
		f.state = tfString
	case 'Z':
		// DECID: the terminal answers into the admin's input.
		f.state = tfGround
	case 0x1b:
		// ESC ESC: the first one starts nothing.
	default:
		f.state = tfGround
		f.buf = append(f.buf, 0x1b, b)
	}
}

func (f *terminalFilter) csi(b byte) {
	switch {
	case b == 0x1b:
		// Cut short by another sequence: dropped.
		f.state = tfEsc
	case b >= 0x40 && b <= 0x7e:
		f.state = tfGround
		f.seq = append(f.seq, b)
		if !csiActsBeyondScreen(f.seq) {
			f.buf = append(f.buf, f.seq...)
		}
	case len(f.seq) >= maxCSI:
		f.state = tfGround
	default:
		f.seq = append(f.seq, b)
	}
}

// csiActsBeyondScreen reports whether a whole CSI sequence (ESC [ ...
// final) makes the terminal answer into its input or act on its window.
func csiActsBeyondScreen(seq []byte) bool {
	switch seq[len(seq)-1] {
	case 'c', 'n', 't', 'x', 'i':
		return true
	case 'p':
		return bytes.IndexByte(seq, '$') >= 0
	}
	return false
}
