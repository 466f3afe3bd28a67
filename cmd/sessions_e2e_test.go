package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

// sessionTool is a static program for the recordings' tests: tty (says
// whether stdin is a terminal, then echoes a line in upper case), mix
// (for each line of stdin, "out N" on stdout for a line starting with o,
// else "err N" on stderr), cat, sleep.
func sessionTool(t *testing.T) string {
	return buildStatic(t, "sessiontool", `package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	switch os.Args[1] {
	case "tty":
		var t syscall.Termios
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
		fmt.Printf("tty=%v\n", e == 0)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("got %s \u00e9t\u00e9\n", strings.ToUpper(strings.TrimSpace(line)))
	case "mix":
		sc := bufio.NewScanner(os.Stdin)
		for i := 0; sc.Scan(); i++ {
			if strings.HasPrefix(sc.Text(), "o") {
				fmt.Fprintf(os.Stdout, "out %d\n", i)
			} else {
				fmt.Fprintf(os.Stderr, "err %d\n", i)
			}
		}
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "sleep":
		time.Sleep(time.Hour)
	}
}
`)
}

// castEvents reads a recording: its header and its events.
func castEvents(t *testing.T, path string) (recording.Header, []recording.Event) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var h recording.Header
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &h), lines[0])
	var evs []recording.Event
	for _, l := range lines[1:] {
		var raw []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(l), &raw), l)
		require.Len(t, raw, 3, l)
		var ev recording.Event
		require.NoError(t, json.Unmarshal(raw[0], &ev.Time))
		require.NoError(t, json.Unmarshal(raw[1], &ev.Code))
		require.NoError(t, json.Unmarshal(raw[2], &ev.Data))
		evs = append(evs, ev)
	}
	return h, evs
}

// sessionsFor lists h's recordings of user, waiting for count of them
// to have their closing marker (a stream's recording is closed when the
// gateway is done with it, a moment after the client).
func sessionsFor(t *testing.T, h *gatewayHost, user string, count int) []recording.Summary {
	t.Helper()
	var list []recording.Summary
	waitFor(t, 5*time.Second, fmt.Sprintf("%d closed recordings of %s", count, user), func() bool {
		var err error
		list, err = recording.List(h.Sessions, recording.Filter{User: user})
		require.NoError(t, err)
		closed := 0
		for _, s := range list {
			if s.Ended != "" {
				closed++
			}
		}
		return closed >= count
	})
	return list
}

func outputOf(evs []recording.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Code == recording.CodeOutput {
			b.WriteString(ev.Data)
		}
	}
	return b.String()
}

// TestSessionsRecordedWithRealDocker: through the gateway, 'docker exec
// -it' with a pty is recorded with its header (identity, container,
// command, tty) and 'dtls sessions play' replays the same output the CLI
// showed; 'docker exec -i' without a tty, stdout and stderr interleaved,
// is recorded demultiplexed in order; input is not recorded by default;
// ls filters, play and export (0600) work; a recording that cannot be
// written refuses the stream by default, with an audit record.
func TestSessionsRecordedWithRealDocker(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "stool:1", map[string]string{"t": sessionTool(t)})
	out, err := h.as(t, "dev", "run", "-d", "--name", "box", "stool:1", "/t", "sleep")
	require.NoError(t, err, out)

	// A terminal: script(1) gives the CLI a pty; the line is typed once
	// the program asked for it (the CLI's terminal is raw by then: no
	// local echo; the container's tty echoes it).
	cmd := exec.Command("script", "-qfec", h.docker+" exec -it box /t tty", "/dev/null")
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "DOCKER_CONFIG=" + t.TempDir()}, h.env("dev")...)
	typeIn, err := cmd.StdinPipe()
	require.NoError(t, err)
	screen, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var shownBuf bytes.Buffer
	sr := bufio.NewReader(screen)
	for !strings.Contains(shownBuf.String(), "tty=true\r\n") {
		b, err := sr.ReadByte()
		require.NoError(t, err, shownBuf.String())
		shownBuf.WriteByte(b)
	}
	_, err = io.WriteString(typeIn, "hello\n")
	require.NoError(t, err)
	rest, err := io.ReadAll(sr)
	require.NoError(t, err)
	shownBuf.Write(rest)
	require.NoError(t, cmd.Wait(), shownBuf.String())
	shown := shownBuf.Bytes()
	require.Contains(t, string(shown), "got HELLO été")
	list := sessionsFor(t, h, "dev", 1)
	require.Len(t, list, 1)
	tty := list[0]
	m := tty.DTLS
	assert.Equal(t, "exec", m.Kind)
	assert.Equal(t, "box", m.ContainerName)
	assert.Len(t, m.Container, 64)
	assert.Equal(t, []string{"/t", "tty"}, m.Command)
	assert.True(t, m.TTY)
	assert.False(t, m.Input)
	assert.NotEmpty(t, m.Serial)
	assert.Contains(t, m.Issuer, "CN=")
	assert.WithinDuration(t, time.Now(), m.Start, time.Minute)
	assert.Equal(t, recording.EndedStream, tty.Ended)
	st, err := os.Stat(tty.Path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(h.Sessions)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dst.Mode().Perm())
	hdr, evs := castEvents(t, tty.Path)
	assert.Equal(t, 2, hdr.Version)
	assert.Equal(t, m.Start.Unix(), hdr.Timestamp)
	for _, ev := range evs {
		assert.NotEqual(t, recording.CodeInput, ev.Code, "input recorded without --record-input")
	}
	// The replay is the output the CLI showed, byte for byte.
	const stream = "tty=true\r\nhello\r\ngot HELLO été\r\n"
	require.Equal(t, stream, string(shown))
	played, stderr, code := h.dtls(t, "sessions", "play", m.ID, "--sessions-dir", h.Sessions, "--speed", "0")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, stream, played)
	t.Logf("dtls sessions play %s --speed 0:\n%s%s", m.ID, played, stderr)
	assert.Contains(t, stderr, "dtls: session "+m.ID+": dev (serial "+m.Serial+`) ran "/t tty" in box`)
	assert.Contains(t, stderr, ": stream ended")
	// With the timing: --speed 1000 replays too.
	played, stderr, code = h.dtls(t, "sessions", "play", m.ID, "--sessions-dir", h.Sessions, "--speed", "1000")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, stream, played)

	// No tty: stdout and stderr interleaved, each line written once the
	// one before came out of the CLI.
	cmd = h.command(t, "dev", "exec", "-i", "box", "/t", "mix")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	errPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	so, se := bufio.NewReader(stdout), bufio.NewReader(errPipe)
	var want strings.Builder
	for i := range 20 {
		which, r, line := "o", so, fmt.Sprintf("out %d\n", i)
		if i%3 == 1 {
			which, r, line = "e", se, fmt.Sprintf("err %d\n", i)
		}
		_, err := io.WriteString(stdin, which+"\n")
		require.NoError(t, err)
		got, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, line, got)
		want.WriteString(line)
	}
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	list = sessionsFor(t, h, "dev", 2)
	require.Len(t, list, 2)
	mix := list[1]
	assert.False(t, mix.DTLS.TTY)
	assert.Equal(t, "o", mix.DTLS.Stderr)
	assert.Equal(t, []string{"/t", "mix"}, mix.DTLS.Command)
	_, evs = castEvents(t, mix.Path)
	assert.Equal(t, want.String(), outputOf(evs))
	for _, ev := range evs {
		assert.NotEqual(t, recording.CodeInput, ev.Code)
	}

	// attach: recorded with the container's command and tty; the output
	// is on disk within the flush interval (a second) while the stream
	// is still open.
	out, err = h.as(t, "dev", "run", "-d", "-i", "--name", "att", "stool:1", "/t", "cat")
	require.NoError(t, err, out)
	acmd := h.command(t, "dev", "attach", "att")
	ain, err := acmd.StdinPipe()
	require.NoError(t, err)
	aout, err := acmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, acmd.Start())
	t.Cleanup(func() { _ = acmd.Process.Kill(); _ = acmd.Wait() })
	_, err = io.WriteString(ain, "through attach\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(aout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "through attach\n", line)
	var att recording.Summary
	waitFor(t, 5*time.Second, "the attach stream's output is on disk", func() bool {
		l, err := recording.List(h.Sessions, recording.Filter{Container: "att"})
		require.NoError(t, err)
		if len(l) != 1 {
			return false
		}
		att = l[0]
		_, evs := castEvents(t, att.Path)
		return outputOf(evs) == "through attach\n"
	})
	assert.Equal(t, "attach", att.DTLS.Kind)
	assert.Equal(t, []string{"/t", "cat"}, att.DTLS.Command)
	assert.False(t, att.DTLS.TTY)
	assert.Empty(t, att.Ended, "the attach stream is still open")
	_ = acmd.Process.Kill()

	// ls and its filters.
	ls := func(args ...string) string {
		out, stderr, code := h.dtls(t, append([]string{"sessions", "ls", "--sessions-dir", h.Sessions}, args...)...)
		require.Equal(t, 0, code, stderr)
		return out
	}
	all := ls()
	t.Logf("dtls sessions ls:\n%s", all)
	assert.True(t, strings.HasPrefix(all, "ID "), all)
	assert.Contains(t, all, m.ID)
	assert.Contains(t, all, mix.DTLS.ID)
	assert.Contains(t, all, "exec /t tty")
	assert.Contains(t, ls("--user", "dev", "--container", "box", "--since", "1h"), mix.DTLS.ID)
	assert.NotContains(t, ls("--user", "nobody"), m.ID)
	assert.NotContains(t, ls("--container", "other"), m.ID)
	var js []recording.Summary
	require.NoError(t, json.Unmarshal([]byte(ls("-o", "json")), &js))
	require.Len(t, js, 3)
	assert.Equal(t, m.ID, js[0].DTLS.ID)

	// export: the file as it is, to stdout or --out (0600).
	raw, err := os.ReadFile(tty.Path)
	require.NoError(t, err)
	exported, stderr, code := h.dtls(t, "sessions", "export", m.ID, "--sessions-dir", h.Sessions)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, string(raw), exported)
	outFile := filepath.Join(t.TempDir(), "s.cast")
	_, stderr, code = h.dtls(t, "sessions", "export", m.ID, "--sessions-dir", h.Sessions, "--out", outFile)
	require.Equal(t, 0, code, stderr)
	b, err := os.ReadFile(outFile)
	require.NoError(t, err)
	assert.Equal(t, raw, b)
	st, err = os.Stat(outFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, stderr, code = h.dtls(t, "sessions", "play", "20990101T000000Z-00000000", "--sessions-dir", h.Sessions)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `recording "20990101T000000Z-00000000" in "`+h.Sessions+`": no such recording`)
	_, stderr, code = h.dtls(t, "sessions", "export", "../x", "--sessions-dir", h.Sessions)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `recording id "../x": want letters`)

	// A recording that cannot be written (the directory is a file now):
	// the stream is refused before it starts (the CLI shows the status
	// only: "unable to upgrade to tcp, received 503"), and the refusal
	// recorded with its reason.
	require.NoError(t, os.Rename(h.Sessions, h.Sessions+".old"))
	require.NoError(t, os.WriteFile(h.Sessions, nil, 0o600))
	out, err = h.as(t, "dev", "exec", "box", "/t", "tty")
	require.Error(t, err, out)
	assert.Contains(t, out, "503")
	waitFor(t, 5*time.Second, "the refusal is recorded", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "dev"})
		require.NoError(t, err)
		for _, r := range recs {
			if r.Rule == gateway.RuleRecording && r.Decision == authz.DecisionDeny && r.Status == 503 &&
				strings.Contains(r.Reason, "the stream cannot be recorded, refused") {
				return true
			}
		}
		return false
	})
}

// TestSessionsUnrecordedWhenAllowed: with --sessions-on-failure continue,
// a stream whose recording cannot be written goes on, with an audit
// record that says it is not recorded.
func TestSessionsUnrecordedWhenAllowed(t *testing.T) {
	t.Parallel()
	sandbox.Require(t)
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	h := newGatewayHost(t, "--sessions-on-failure", "continue", "--sessions-dir", filepath.Join(notDir, "sessions"))
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "stool:1", map[string]string{"t": sessionTool(t)})
	out, err := h.as(t, "dev", "run", "-d", "--name", "box", "stool:1", "/t", "sleep")
	require.NoError(t, err, out)
	cmd := h.command(t, "dev", "exec", "-i", "box", "/t", "cat")
	cmd.Stdin = strings.NewReader("goes on\n")
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, string(got))
	assert.Equal(t, "goes on\n", string(got))
	waitFor(t, 5*time.Second, "the unrecorded stream is in the audit trail", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "dev"})
		require.NoError(t, err)
		for _, r := range recs {
			if r.Rule == gateway.RuleRecording && r.Decision == authz.DecisionAllow && strings.Contains(r.Reason, "goes on unrecorded") {
				return true
			}
		}
		return false
	})
}

// TestSessionsRevokedStreamRecording: with --record-input, a revoked
// holder's 'docker exec -i ... cat' is cut within a second, and its
// recording holds what was typed ("i") and shown ("o") and ends with a
// marker giving the reason; 'dtls sessions ls' shows it.
func TestSessionsRevokedStreamRecording(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t, "--record-input")
	h.issue(t, "bob", "developer")
	importImage(t, h.Daemon, "stool:1", map[string]string{"t": sessionTool(t)})
	out, err := h.as(t, "bob", "run", "-d", "--name", "bobbox", "stool:1", "/t", "sleep")
	require.NoError(t, err, out)
	cmd := h.command(t, "bob", "exec", "-i", "bobbox", "/t", "cat")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	_, err = io.WriteString(stdin, "typed by bob\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "typed by bob\n", line)
	ended := make(chan time.Time, 1)
	go func() { _ = cmd.Wait(); ended <- time.Now() }()
	_, stderr, code := h.dtls(t, "revoke", "bob", "--state-dir", h.State)
	require.Equal(t, 0, code, stderr)
	revoked := time.Now()
	select {
	case at := <-ended:
		assert.Less(t, at.Sub(revoked), time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("bob's stream still open 5s after the revocation")
	}
	list := sessionsFor(t, h, "bob", 1)
	require.Len(t, list, 1)
	s := list[0]
	assert.True(t, s.DTLS.Input)
	assert.True(t, strings.HasPrefix(s.Ended, "cut: "), s.Ended)
	assert.Contains(t, s.Ended, "revoked")
	_, evs := castEvents(t, s.Path)
	last := evs[len(evs)-1]
	assert.Equal(t, recording.CodeMarker, last.Code)
	assert.Equal(t, s.Ended, last.Data)
	var in bytes.Buffer
	for _, ev := range evs {
		if ev.Code == recording.CodeInput {
			in.WriteString(ev.Data)
		}
	}
	assert.Equal(t, "typed by bob\n", in.String())
	assert.Equal(t, "typed by bob\n", outputOf(evs))
	ls, stderr, code := h.dtls(t, "sessions", "ls", "--sessions-dir", h.Sessions, "--user", "bob")
	require.Equal(t, 0, code, stderr)
	t.Logf("dtls sessions ls --user bob:\n%s", ls)
	assert.Contains(t, ls, "cut: ")
	played, stderr, code := h.dtls(t, "sessions", "play", s.DTLS.ID, "--sessions-dir", h.Sessions, "--no-wait")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "typed by bob\n", played)
	assert.Contains(t, stderr, "cut: ")
	played, stderr, code = h.dtls(t, "sessions", "play", s.DTLS.ID, "--sessions-dir", h.Sessions, "--no-wait", "--input")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "typed by bob\ntyped by bob\n", played)

	// The exec start's audit record names the recording.
	waitFor(t, 5*time.Second, "the exec start's record names its recording", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{User: "bob"})
		require.NoError(t, err)
		for _, r := range recs {
			if strings.HasSuffix(r.Path, "/start") && r.Fields["recording"] == s.DTLS.ID {
				return true
			}
		}
		return false
	})

	// Retention at start: a gateway started with --sessions-max-size 1
	// on the same directory removes the closed recording. Its port
	// accepts (the backlog) before it has started, so the removal is
	// waited for.
	secondGateway(t, h, "--sessions-max-size", "1")
	waitFor(t, 5*time.Second, "the recording beyond --sessions-max-size is removed", func() bool {
		_, err := os.Stat(s.Path)
		return os.IsNotExist(err)
	})
	// And the trail says so: a holder's later streams could push out the
	// recording of an earlier one unseen (found by a red team).
	waitFor(t, 5*time.Second, "the trail records the removal", func() bool {
		recs, err := authz.ReadAudit(h.Audit, authz.AuditFilter{})
		require.NoError(t, err)
		for _, r := range recs {
			if r.Rule == gateway.RuleRetention && r.Fields["recording"] == s.DTLS.ID {
				assert.Contains(t, r.Reason, "more than --sessions-max-size (1 bytes)")
				assert.Equal(t, "bob", r.User, "named after whose session it was")
				return true
			}
		}
		return false
	})
}

// TestSessionsFlags: bad values are refused, naming the flag, before
// anything is done.
func TestSessionsFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway", "serve", "--sessions-on-failure", "drop"}, `--sessions-on-failure: want refuse or continue, got "drop"`},
		{[]string{"gateway", "serve", "--sessions-max-size", "10X"}, `--sessions-max-size: "10X" is not a size such as 500M or 10G`},
		{[]string{"gateway", "serve", "--sessions-max-age", "-1h"}, `--sessions-max-age: want 0 or more, got -1h0m0s`},
		{[]string{"sessions", "play", "x", "--speed", "-1"}, `--speed: want 0 or more, got -1`},
		{[]string{"sessions", "ls", "-o", "yaml"}, `--output: want table or json, got "yaml"`},
	} {
		var out, errOut bytes.Buffer
		code := Run(c.args, IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Now: time.Now, Getenv: func(string) string { return "" }})
		assert.Equal(t, 2, code, "%v: %s", c.args, errOut.String())
		assert.Contains(t, errOut.String(), c.want, "%v", c.args)
		assert.Empty(t, out.String())
	}
	for s, want := range map[string]int64{"0": 0, "500M": 500 << 20, "10G": 10 << 30, "1k": 1 << 10, "2GiB": 2 << 30, "123": 123} {
		got, err := parseSize(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "G", "-1", "1.5G", "99999999999T"} {
		_, err := parseSize(s)
		assert.Error(t, err, s)
	}
	// An empty or missing directory lists nothing.
	var out bytes.Buffer
	code := Run([]string{"sessions", "ls", "--sessions-dir", filepath.Join(t.TempDir(), "none")}, IO{In: strings.NewReader(""), Out: &out, ErrOut: io.Discard, Now: time.Now, Getenv: func(string) string { return "" }})
	assert.Equal(t, 0, code)
	assert.Equal(t, "ID  START  USER  CONTAINER  TTY  DURATION  ENDED  COMMAND\n", out.String())
}

// TestSessionsRecordsLargeStreams: 4 MB of zeros and 4 MB of text
// through 'docker exec -i ... cat' on two gateways in front of the same
// dockerd, one recording and one not (--record-sessions=false): every
// byte comes back on both, and the recording holds every byte of the
// text as output. What recording costs is measured by the gateway's
// benchmark (make bench: internal/bench/gatewaylat), not here.
func TestSessionsRecordsLargeStreams(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "dev", "developer")
	importImage(t, h.Daemon, "stool:1", map[string]string{"t": sessionTool(t)})
	out, err := h.as(t, "dev", "run", "-d", "--name", "box", "stool:1", "/t", "sleep")
	require.NoError(t, err, out)
	plain := secondGateway(t, h, "--record-sessions=false")

	text := bytes.Repeat([]byte("total 48\ndrwxr-xr-x  2 root root 4096 Dec  7 07:00 bin -> usr/bin\n"), 1<<16)[:4<<20]
	for _, data := range [][]byte{make([]byte, 4<<20), text} {
		for _, g := range []*gatewayHost{h, plain} {
			cmd := g.command(t, "dev", "exec", "-i", "box", "/t", "cat")
			cmd.Stdin = bytes.NewReader(data)
			var got countWriter
			var errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &got, &errOut
			require.NoError(t, cmd.Run(), errOut.String())
			require.Equal(t, int64(len(data)), got.n)
		}
	}
	list := sessionsFor(t, h, "dev", 2)
	require.Len(t, list, 2)
	_, evs := castEvents(t, list[1].Path)
	assert.Equal(t, string(text), outputOf(evs))
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// secondGateway starts another gateway process like h's, in front of
// the same dockerd, on a port of its own, with extra flags.
func secondGateway(t *testing.T, h *gatewayHost, extra ...string) *gatewayHost {
	t.Helper()
	port, err := sandbox.FreePort()
	require.NoError(t, err)
	g := *h
	g.Port = port
	args := append([]string(nil), h.cmd.Args[1:]...)
	for i, a := range args {
		if a == "--listen" {
			args[i+1] = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		}
	}
	g.out = &bytes.Buffer{}
	g.cmd = exec.Command(h.exe, append(args, extra...)...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	require.NoError(t, g.cmd.Start())
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		_ = g.cmd.Wait()
		if t.Failed() {
			t.Logf("second gateway output:\n%s", tailString(g.out.String(), 4000))
		}
	})
	waitFor(t, 20*time.Second, "the second gateway listens", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &g
}

// TestSessionsInputByRole: a gateway without --record-input records what
// the holders of a role with "record_input" type (and what they see),
// and only what the others see; the recording's header says which.
func TestSessionsInputByRole(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	require.NoError(t, os.WriteFile(h.Policy, []byte(`{"default_role": "readonly", "roles": {"contractor": {"base": "developer", "record_input": true}}}`+"\n"), 0o644))
	h.issue(t, "dev", "developer")
	h.issue(t, "carl", "contractor", "--policy", h.Policy)
	importImage(t, h.Daemon, "stool:1", map[string]string{"t": sessionTool(t)})
	for _, who := range []string{"dev", "carl"} {
		// Until the policy with the contractor role is read, carl is
		// refused (his role is not defined): the first run also waits.
		waitFor(t, 5*time.Second, who+" runs a container", func() bool {
			_, err := h.as(t, who, "run", "-d", "--name", who+"box", "stool:1", "/t", "sleep")
			return err == nil
		})
		cmd := h.command(t, who, "exec", "-i", who+"box", "/t", "cat")
		cmd.Stdin = strings.NewReader("typed by " + who + "\n")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Equal(t, "typed by "+who+"\n", string(out))
	}
	for who, input := range map[string]bool{"dev": false, "carl": true} {
		list := sessionsFor(t, h, who, 1)
		require.Len(t, list, 1)
		assert.Equal(t, input, list[0].DTLS.Input, who)
		_, evs := castEvents(t, list[0].Path)
		var in strings.Builder
		for _, ev := range evs {
			if ev.Code == recording.CodeInput {
				in.WriteString(ev.Data)
			}
		}
		if input {
			assert.Equal(t, "typed by "+who+"\n", in.String())
		} else {
			assert.Empty(t, in.String(), "the input of %s is recorded", who)
		}
		assert.Equal(t, "typed by "+who+"\n", outputOf(evs))
	}
}
