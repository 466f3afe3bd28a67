package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

type agentOptions struct {
	IO
	Dirs     []string
	Once     bool
	RenewNow bool
	Jitter   bool
}

func newAgentCmd(io IO) *cobra.Command {
	opts := &agentOptions{IO: io}
	c := &cobra.Command{
		Use:   "agent",
		Short: "Renew the bundles enrolled with an online CA before they expire",
		Long: `Agent renews every bundle of the bundle store that 'dtls enroll' got from
an online CA (dtls.json has its ca_url), or the bundles --dir names, and
keeps running: run it as a service (examples/agent: a systemd user unit, a
launchd agent, a Windows scheduled task).

Schedule: a certificate is renewed once two thirds of its lifetime have
passed (16 hours into a day's certificate), less a random jitter of up to
a tenth of the lifetime (--jitter=false: none), so that a fleet does not
renew at once. Each renewal makes a new key here, saves it first as
pending-key.pem in the bundle (0600), sends only its certificate request
to the CA over mutual TLS with the current certificate (the bundle's
ca.pem is the only CA trusted), checks the answer, and replaces the bundle
directory whole, in one rename, without the pending key. Every Docker
context made from the bundle ('dtls context create', 'dtls enroll
--context') gets the new files in one rename too. A renewal that was
interrupted (the machine went down, the agent was killed) is finished by
the next run, with the saved key: the CA answers it the same certificate.

A CA that cannot be reached (no connection, a timeout, an HTTP 5xx) is
never fatal: it is tried again after 30 s, then twice as long each time up
to 10 minutes, and the bundle in use is kept. Once less than a third of
the certificate's lifetime is left (the last 8 hours of a day's
certificate) the warning says so; a certificate that expired meanwhile is
reported as expired while the CA was unreachable (enrol again). A renewal
the CA refuses (HTTP 4xx: the certificate was revoked, superseded by a new
enrolment, unknown to it) is reported with the CA's reason, and the agent
stops renewing that bundle; it exits 1 when it renews none anymore.

During a rotation of the online CA ('dtls rotate-ca --operator'), each
look asks the CA where the rotation is (GET /api/v1/dtls/rotation) and a
bundle is renewed at once, whatever its schedule, when its ca.pem does not
hold both CAs, or when its certificate is from before step 1 or, from step
2 on, not of the new CA: the rotation's next step then need not wait for
it. A CA that cannot be reached for that question changes nothing.

With --once it looks at each bundle once and exits: 0 when each one is
renewed, not due yet, or kept because the CA cannot be reached (a warning
says so; the next run tries again); 1 when a renewal was refused or
failed. --now renews each bundle at once, whatever its schedule, and exits
as --once does.`,
		Example: `  $ dtls agent
  $ dtls agent --once
  $ dtls agent --now
  $ dtls agent --dir ~/ci-bundle --once --jitter=false
  $ systemctl --user enable --now dtls-agent.service`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			for i, d := range opts.Dirs {
				a, err := absPath("dir", d)
				if err != nil {
					return usageError{err, c.CommandPath()}
				}
				opts.Dirs[i] = a
			}
			return runAgent(opts)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&opts.Dirs, "dir", nil, "bundle directory to renew, repeatable (default: every bundle of the store enrolled with an online CA)")
	f.BoolVar(&opts.Once, "once", false, "look at each bundle once, renew what is due, and exit (for a timer or a scheduled task)")
	f.BoolVar(&opts.RenewNow, "now", false, "renew each bundle at once, whatever its schedule, and exit (as --once)")
	f.BoolVar(&opts.Jitter, "jitter", true, "renew up to a tenth of the lifetime before two thirds of it, at random")
	_ = c.MarkFlagDirname("dir")
	return c
}

func runAgent(o *agentOptions) error {
	dirs, err := agentDirs(o)
	if err != nil {
		return err
	}
	a := &agent.Agent{Now: o.Now}
	if cfg, err := dockercontext.ConfigDir(o.Getenv); err == nil {
		a.DockerConfig = cfg
	}
	if o.Jitter {
		a.Jitter = agent.RandomJitter
	}
	a.Force = o.RenewNow
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Once || o.RenewNow {
		return agentOnce(ctx, o, a, dirs)
	}
	fmt.Fprintf(o.ErrOut, "dtls agent: looking after %s; stop with Ctrl-C or SIGTERM\n", strings.Join(dirs, ", "))
	a.Report = func(ev agent.Event) { reportAgent(o.IO, ev) }
	err = a.Run(ctx, func() ([]string, error) {
		if len(o.Dirs) > 0 {
			return o.Dirs, nil
		}
		root, err := clientenv.StoreRoot(o.Getenv)
		if err != nil {
			return nil, err
		}
		return agent.EnrolledIn(root)
	})
	if err == nil {
		fmt.Fprintln(o.ErrOut, "dtls agent: stopped")
	}
	return err
}

// agentDirs are the bundles to look after: --dir, each enrolled with an
// online CA, else the store's.
func agentDirs(o *agentOptions) ([]string, error) {
	if len(o.Dirs) > 0 {
		for _, d := range o.Dirs {
			b, err := clientenv.LoadBundle(d)
			if err != nil {
				return nil, err
			}
			if b.Meta.CAURL == "" {
				return nil, withHint(fmt.Errorf("bundle %q was not enrolled with an online CA (its %s has no ca_url)", b.Dir, clientenv.MetaFile),
					"renew it on the CA's host: dtls renew NAME --archive FILE, then dtls import FILE")
			}
		}
		return o.Dirs, nil
	}
	root, err := clientenv.StoreRoot(o.Getenv)
	if err != nil {
		return nil, err
	}
	dirs, err := agent.EnrolledIn(root)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, withHint(fmt.Errorf("no bundle in %s was enrolled with an online CA", root),
			"enrol first: dtls enroll URL TOKEN --docker-host tcp://HOST:2376 (or pass --dir DIR)")
	}
	return dirs, nil
}

func agentOnce(ctx context.Context, o *agentOptions, a *agent.Agent, dirs []string) error {
	var failed []string
	for _, d := range dirs {
		res, err := a.RenewIfDue(ctx, d, o.Now())
		if err == nil {
			reportAgent(o.IO, agent.Event{Dir: d, Result: res})
			if !res.Renewed {
				fmt.Fprintf(o.ErrOut, "%s: %q is not due: serial %s expires %s, renewal after %s\n", d, res.Name, res.Serial, agentStamp(res.NotAfter), agentStamp(res.Due))
			}
			continue
		}
		if fleet.Retryable(err) && res != nil && o.Now().Before(res.NotAfter) {
			fmt.Fprintf(o.ErrOut, "dtls: warning: %s: %v; kept the current certificate (serial %s)%s: the next run tries again\n",
				d, err, res.Serial, expiringNote(!o.Now().Before(res.WarnAt()), res.NotAfter))
			continue
		}
		fmt.Fprintf(o.ErrOut, "dtls: error: %s: %v\n", d, err)
		failed = append(failed, d)
	}
	if len(failed) > 0 {
		return fmt.Errorf("the renewal of %s failed", strings.Join(failed, ", "))
	}
	return nil
}

// reportAgent prints what the agent did with one bundle.
func reportAgent(io IO, ev agent.Event) {
	var refused *agent.RefusedError
	switch {
	case ev.Err != nil && errors.As(ev.Err, &refused):
		fmt.Fprintf(io.ErrOut, "dtls: error: %v\n", ev.Err)
		fmt.Fprintf(io.ErrOut, "dtls agent: stopped renewing %s: enrol again with a new token (dtls enroll %s TOKEN --docker-host ... --force)\n", ev.Dir, refused.URL)
	case ev.Err != nil && !ev.Retry.IsZero():
		fmt.Fprintf(io.ErrOut, "dtls: warning: %s: %v; kept the current certificate%s, trying again at %s\n", ev.Dir, ev.Err, expiringNote(ev.Expiring, ev.NotAfter), agentStamp(ev.Retry))
	case ev.Err != nil:
		fmt.Fprintf(io.ErrOut, "dtls: error: %s: %v\n", ev.Dir, ev.Err)
	case ev.Result != nil && ev.Result.Renewed:
		reportRenewed(io, ev.Result)
	case ev.Result != nil:
		for _, c := range ev.Result.Contexts {
			fmt.Fprintf(io.ErrOut, "refreshed docker context %q from %s\n", c, ev.Result.Dir)
		}
	}
}

// reportRenewed prints a renewal: why when before its schedule, and the
// contexts refreshed.
func reportRenewed(io IO, r *agent.Result) {
	how := ""
	if r.Resumed {
		how = " (finished a renewal that was interrupted)"
	}
	if r.Early != "" {
		how += " before its schedule: " + r.Early
	}
	fmt.Fprintf(io.ErrOut, "renewed %q in %s%s: serial %s -> %s, expires %s, next renewal after %s\n", r.Name, r.Dir, how, r.Replaced, r.Serial, agentStamp(r.NotAfter), agentStamp(r.Due))
	for _, c := range r.Contexts {
		fmt.Fprintf(io.ErrOut, "refreshed docker context %q\n", c)
	}
}

// expiringNote says when a certificate the CA could not renew expires,
// and, once less than a third of its lifetime is left (agent.Result.WarnAt),
// what happens then.
func expiringNote(expiring bool, notAfter time.Time) string {
	if !expiring {
		return fmt.Sprintf(" (expires %s)", agentStamp(notAfter))
	}
	return fmt.Sprintf(" (less than a third of its lifetime left: it expires %s, and then needs a new enrolment; is the CA down?)", agentStamp(notAfter))
}

func agentStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") }

// enrolledWarning is how close to its end the certificate of a bundle
// from an online CA draws a warning: the agent renews it once two thirds
// of its lifetime have passed (16 h into a day's certificate), so an hour
// left means the agent has not managed to for hours.
const enrolledWarning = time.Hour

// enrolledWith is the online CA the bundle in dir was enrolled with
// (dtls.json's ca_url), or "".
func enrolledWith(dir string) string {
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		return ""
	}
	return b.Meta.CAURL
}

// warnEnrolledExpiry is warnExpiry for a bundle from an online CA, which
// 'dtls agent' renews: a certificate of a day is always within the
// 14 days of the others.
func warnEnrolledExpiry(io IO, dir, caURL string, notAfter, now time.Time) {
	switch {
	case !notAfter.After(now):
		fmt.Fprintf(io.ErrOut, "dtls: warning: the certificate in %s expired at %s: the daemon will refuse it; enrol again with a new token (dtls enroll %s TOKEN --docker-host ... --force)\n",
			dir, agentStamp(notAfter), caURL)
	case notAfter.Before(now.Add(enrolledWarning)):
		fmt.Fprintf(io.ErrOut, "dtls: warning: the certificate in %s expires at %s and was not renewed: is 'dtls agent' running? ('dtls agent --once' renews it now)\n",
			dir, agentStamp(notAfter))
	}
}
