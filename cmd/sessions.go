package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
)

// defaultSessionsDir holds the gateway's recordings of exec and attach
// streams.
const defaultSessionsDir = "/var/log/dtls/sessions"

func newSessionsCmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "sessions",
		Short: "List, replay and export the gateway's recorded exec and attach sessions",
		Long: `The gateway records every 'docker exec' and 'docker attach' stream it
forwards as an asciicast v2 file (0600, in --sessions-dir, 0700): a JSON
header naming the user, the certificate's serial and issuer, the
container, the command, the tty flag and the start time (its "dtls" key),
then the output as it came, with its timing, and the input too when the
gateway runs with --record-input. The last line is a marker ("m") saying
how the stream ended: "stream ended", or "cut: ..." with the reason (a
revoked certificate). The authorization plugin cannot record streams:
dockerd shows a plugin only a stream's first request.

  dtls sessions ls       list recordings
  dtls sessions play     replay one in the terminal
  dtls sessions export   write one as a .cast file asciinema plays`,
	}
	c.AddCommand(newSessionsLsCmd(io), newSessionsPlayCmd(io), newSessionsExportCmd(io))
	return c
}

func sessionsDirFlag(c *cobra.Command, io IO, p *string) {
	pathFlag(c, io, p, "sessions-dir", "DTLS_SESSIONS_DIR", defaultSessionsDir, "directory of the recorded sessions")
}

type sessionsLsOptions struct {
	IO
	Dir       string
	User      string
	Container string
	Since     time.Duration
	Output    string
}

func newSessionsLsCmd(io IO) *cobra.Command {
	opts := &sessionsLsOptions{IO: io}
	c := &cobra.Command{
		Use:   "ls",
		Short: "List recorded sessions",
		Long: `Ls prints the recordings of --sessions-dir, oldest first: ID, start
time, user, container, tty, duration, how the stream ended, and command;
or with --output json their headers, sizes and closing markers.`,
		Example: `  $ sudo dtls sessions ls --user alice --since 24h
  $ sudo dtls sessions ls --container web -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Output != "table" && opts.Output != "json" {
				return usagef(c, "--output: want table or json, got %q", opts.Output)
			}
			return runSessionsLs(opts)
		},
	}
	sessionsDirFlag(c, io, &opts.Dir)
	c.Flags().StringVar(&opts.User, "user", "", "only this user's sessions")
	c.Flags().StringVar(&opts.Container, "container", "", "only sessions in this container (name, or ID or its prefix)")
	windowFlag(c, &opts.Since, "since", "only sessions started in this last window (e.g. 24h, 7d)")
	c.Flags().StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	completeOutput(c)
	return c
}

func runSessionsLs(o *sessionsLsOptions) error {
	f := recording.Filter{User: o.User, Container: o.Container}
	if o.Since > 0 {
		f.Since = o.Now().Add(-o.Since)
	}
	list, err := recording.List(o.Dir, f)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		if list == nil {
			list = []recording.Summary{}
		}
		b, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tUSER\tCONTAINER\tTTY\tDURATION\tENDED\tCOMMAND")
	for _, s := range list {
		m := s.DTLS
		ended := s.Ended
		if ended == "" {
			ended = "(open or interrupted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", m.ID, m.Start.UTC().Format(time.RFC3339), printable(m.User),
			printable(containerLabel(m)), m.TTY, s.Duration.Round(10*time.Millisecond), printable(ended), printable(m.Kind+" "+strings.Join(m.Command, " ")))
	}
	return tw.Flush()
}

func containerLabel(m recording.Meta) string {
	switch {
	case m.ContainerName != "":
		return m.ContainerName
	case len(m.Container) > 12:
		return m.Container[:12]
	}
	return m.Container
}

type sessionsPlayOptions struct {
	IO
	Dir    string
	ID     string
	Speed  float64
	NoWait bool
	Input  bool
}

func newSessionsPlayCmd(io IO) *cobra.Command {
	opts := &sessionsPlayOptions{IO: io}
	c := &cobra.Command{
		Use:   "play ID",
		Short: "Replay a recorded session in the terminal",
		Long: `Play writes a recording's output to stdout with its timing, each delay
divided by --speed (--speed 0 or --no-wait: all at once), and then, on
stderr, who ran what and how the stream ended.

The recorded user chose every byte of it: what would act beyond the
screen is left out (window titles, the clipboard, hyperlinks, terminal
queries and reports), and on a terminal a reset ends the output, so
that the closing line shows whatever the recording printed before it.
'dtls sessions export' gives the recording as it is.`,
		Example: `  $ sudo dtls sessions play 20261207T071502Z-9f2c41d0
  $ sudo dtls sessions play 20261207T071502Z-9f2c41d0 --speed 4`,
		Args: exactArgs(1, "a recording's ID (see 'dtls sessions ls')"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Speed < 0 {
				return usagef(c, "--speed: want 0 or more, got %v", opts.Speed)
			}
			if opts.NoWait {
				opts.Speed = 0
			}
			opts.ID = args[0]
			return runSessionsPlay(opts)
		},
	}
	sessionsDirFlag(c, io, &opts.Dir)
	c.Flags().Float64Var(&opts.Speed, "speed", 1, "speed factor (2: twice as fast; 0: no waits)")
	c.Flags().BoolVar(&opts.NoWait, "no-wait", false, "print everything at once (--speed 0)")
	c.Flags().BoolVar(&opts.Input, "input", false, "also print the recorded input (\"i\" events)")
	return c
}

func runSessionsPlay(o *sessionsPlayOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f, isFile := o.Out.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	s, err := recording.Play(ctx, o.Dir, o.ID, o.Out, recording.PlayOptions{Speed: o.Speed, IncludeInput: o.Input, Terminal: tty})
	if err != nil {
		return notFoundHint(err)
	}
	m := s.DTLS
	ended := s.Ended
	if ended == "" {
		ended = "no closing marker (open, or the gateway was stopped)"
	}
	fmt.Fprintf(o.ErrOut, "\ndtls: session %s: %s (serial %s) ran %s in %s at %s for %s: %s\n", m.ID, printable(m.User), m.Serial,
		strconv.Quote(strings.Join(m.Command, " ")), printable(containerLabel(m)), m.Start.UTC().Format(time.RFC3339), s.Duration.Round(10*time.Millisecond), printable(ended))
	return nil
}

func notFoundHint(err error) error {
	if errors.Is(err, recording.ErrNotFound) {
		return withHint(err, "dtls sessions ls")
	}
	return err
}

type sessionsExportOptions struct {
	IO
	Dir string
	ID  string
	Out string
}

func newSessionsExportCmd(io IO) *cobra.Command {
	opts := &sessionsExportOptions{IO: io}
	c := &cobra.Command{
		Use:   "export ID",
		Short: "Write a recorded session as a .cast file",
		Long: `Export writes the recording as it is, an asciicast v2 file that
'asciinema play' and asciinema-player play, to stdout or to --out (0600,
written whole or not at all).`,
		Example: `  $ sudo dtls sessions export 20261207T071502Z-9f2c41d0 --out alice.cast
  $ asciinema play alice.cast`,
		Args: exactArgs(1, "a recording's ID (see 'dtls sessions ls')"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.ID = args[0]
			return runSessionsExport(opts)
		},
	}
	sessionsDirFlag(c, io, &opts.Dir)
	c.Flags().StringVar(&opts.Out, "out", "", "file to write (default: stdout)")
	return c
}

func runSessionsExport(o *sessionsExportOptions) error {
	f, err := recording.Open(o.Dir, o.ID)
	if err != nil {
		return notFoundHint(err)
	}
	defer f.Close()
	if o.Out == "" {
		_, err = io.Copy(o.IO.Out, f)
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read recording %q: %w", f.Name(), err)
	}
	return atomicfile.Write(o.Out, b, 0o600)
}
