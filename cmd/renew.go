package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cafront"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/pki"
)

type renewOptions struct {
	IO
	Name     string
	Server   bool
	Expiring time.Duration
	StateDir string
	Out      string
	Validity time.Duration
	Restart  bool
	Archive  string
	Force    bool
	caKey    caKeyOptions
}

func newRenewCmd(io IO) *cobra.Command {
	opts := &renewOptions{IO: io}
	c := &cobra.Command{
		Use:   "renew NAME | --server | --expiring WINDOW",
		Short: "Renew certificates: a fresh key and certificate, same subject and names",
		Long: `Renew issues a fresh key and certificate with the same common name, host
names and key type as the certificate it replaces, from the current CA,
writes it where the old one was, and marks the old one superseded in the
inventory: the authorization plugin and the gateway refuse it from its
next request on (dockerd alone accepts it until it expires), and the
gateway lets what it has open go on; 'dtls revoke NAME' cuts that too.

  dtls renew NAME            NAME's client bundle, rewritten in place (or --out)
  dtls renew --server        this host's server certificate in the certs directory
  dtls renew --expiring 30d  everything in use that expires within the window
                             (clients, this host's server, issue-server bundles)

With --archive FILE the renewed client bundle is written as one archive
(and into a directory only with --out) for 'dtls import', which replaces the developer's bundle in place
and refreshes the Docker contexts made from it; "-" writes it to standard
output (refused on a terminal), for:
  ssh docker-host sudo dtls renew alice --archive - | dtls import -

A revoked certificate is not renewed. dockerd reads its TLS files only at
start and does not reload them on SIGHUP (moby#23936): after a server
renewal restart it, or pass --restart. In gateway mode ('dtls init
--gateway') nothing is restarted: the gateway reloads its certificates
within a second.

On a host enrolled with an online CA ('dtls init --ca-url'), --server (or
--expiring, when the server certificate is within the window) renews this
host's certificate through the CA: a new key made here, saved first to
STATE_DIR/pending-server-key.pem (0600) so that a renewal that is
interrupted asks again for the same key's certificate, the request sent
over mutual TLS with the current certificate; the answer written to the
certs directory in one journaled change. Client certificates there are
renewed by 'dtls agent' on each laptop.`,
		Example: `  $ sudo dtls renew alice
  $ sudo dtls renew --server --restart
  $ sudo dtls renew --expiring 30d
  $ ssh docker-host sudo dtls renew alice --archive - | dtls import -`,
		Args: opts.checkArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(c, args); err != nil {
				return err
			}
			return runRenew(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	f.BoolVar(&opts.Server, "server", false, "renew this host's server certificate")
	windowFlag(c, &opts.Expiring, "expiring", "renew everything in use that expires within this window (e.g. 30d)")
	f.StringVar(&opts.Out, "out", "", "bundle directory to write NAME's renewed bundle to (default: where it was issued)")
	c.Flags().Var(&daysValue{&opts.Validity}, "days", "validity of the new certificates, in days (default: that of the old one)")
	f.BoolVar(&opts.Restart, "restart", false, "restart docker after a server renewal ('systemctl restart docker')")
	f.StringVar(&opts.Archive, "archive", "", "write NAME's renewed bundle as one tar.gz FILE (0600) for 'dtls import', and no directory unless --out; \"-\" for standard output")
	f.BoolVar(&opts.Force, "force", false, "with --archive: replace an existing FILE")
	opts.caKey.flags(c)
	return c
}

// checkArgs wants exactly one of NAME, --server and --expiring.
func (o *renewOptions) checkArgs(c *cobra.Command, args []string) error {
	n := len(args)
	if o.Server {
		n++
	}
	if o.Expiring > 0 {
		n++
	}
	if n != 1 || len(args) > 1 {
		return usagef(c, "%s: want one of NAME, --server or --expiring", c.CommandPath())
	}
	return nil
}

// validate checks the flags that need a NAME and makes the paths absolute.
func (o *renewOptions) validate(c *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Name = args[0]
	}
	if o.Out != "" && o.Name == "" {
		return usagef(c, "--out needs a NAME")
	}
	var err error
	if o.Out != "" {
		if o.Out, err = absPath("out", o.Out); err != nil {
			return usageError{err, c.CommandPath()}
		}
	}
	if o.StateDir, err = absPath("state-dir", o.StateDir); err != nil {
		return usageError{err, c.CommandPath()}
	}
	if o.Archive == "" {
		return nil
	}
	if o.Name == "" {
		return usagef(c, "--archive needs a NAME")
	}
	return checkArchiveFlag(c, o.IO, &o.Archive)
}

func runRenew(o *renewOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	archive := o.Archive
	if archive == "-" {
		archive = ""
	}
	res, err := (&cafront.Local{Authority: a}).Renew(context.Background(), authority.RenewRequest{
		Name: o.Name, Server: o.Server, Expiring: o.Expiring, Out: o.Out, Validity: o.Validity,
		Archive: archive, ArchiveOnly: o.Archive != "" && o.Out == "", Force: o.Force, Now: o.Now(),
	})
	if errors.Is(err, cafront.ErrValidityOnline) {
		return fmt.Errorf("--days: %w", err)
	} else if err != nil {
		return err
	}
	if res.CAURL != "" && !renderRenewedFromCA(o, res) {
		return nil
	}
	return renderRenewal(o, res.RenewResult)
}

// renderRenewal writes the archive to standard output (--archive -),
// says what was renewed and skipped, and restarts docker
// after a server renewal (--restart).
func renderRenewal(o *renewOptions, res *authority.RenewResult) error {
	if o.Archive == "-" {
		if err := writeArchiveOut(o.IO, o.Archive, res.Renewed[0]); err != nil {
			return err
		}
	} else if o.Archive != "" {
		fmt.Fprintf(o.ErrOut, "wrote archive %s (0600): on %s's machine, 'dtls import FILE' replaces the bundle in place\n", o.Archive, o.Name)
	}
	for _, r := range res.Skipped {
		fmt.Fprintf(o.ErrOut, "skipped %s %q serial %s: no bundle path recorded (renew it with 'dtls renew %s --archive FILE', or --out DIR)\n", r.Kind, r.Name, r.Serial, r.Name)
	}
	if len(res.Renewed) == 0 {
		fmt.Fprintf(o.ErrOut, "nothing expires within %s\n", o.Expiring)
		return nil
	}
	done := renderRenewed(o, res)
	if res.ServerRenewed {
		return renewRestart(o, done)
	}
	return nil
}

// renderRenewed says what was renewed, and returns it for an error in a
// later step.
func renderRenewed(o *renewOptions, res *authority.RenewResult) []string {
	var done []string
	for _, it := range res.Renewed {
		where := renewedTo(o, it)
		fmt.Fprintf(o.ErrOut, "renewed %s %q: serial %s -> %s, expires %s, written to %s\n", it.Record.Kind, it.Record.Name,
			it.Supersedes, it.Record.Serial, it.Record.NotAfter.UTC().Format("2006-01-02"), where)
		done = append(done, fmt.Sprintf("%s %q (serial %s, written to %s)", it.Record.Kind, it.Record.Name, it.Record.Serial, where))
	}
	return done
}

// renewRestart restarts docker after a server renewal with --restart,
// else says it is needed.
func renewRestart(o *renewOptions, done []string) error {
	if authority.Mode(o.StateDir) == authority.ModeGateway {
		// The gateway reloads the files it serves (tls.Config
		// GetConfigForClient); dockerd serves no TCP to restart for.
		fmt.Fprintln(o.ErrOut, gatewayReloads)
		return nil
	}
	fmt.Fprintln(o.ErrOut, "dockerd does not reload its TLS files on SIGHUP (moby#23936): it serves the old certificate until restarted")
	if !o.Restart {
		fmt.Fprintln(o.ErrOut, "restart needed: sudo systemctl restart docker   (or pass --restart)")
		return nil
	}
	if err := restartDocker(o.ErrOut); err != nil {
		// The renewal stands: only the restart is left.
		return partialError{done: "renewed " + strings.Join(done, ", "), step: "restarting docker", err: err,
			run: "sudo systemctl daemon-reload && sudo systemctl restart docker"}
	}
	return nil
}

// renewedTo says where a renewed certificate was written.
func renewedTo(o *renewOptions, it *authority.Issued) string {
	switch {
	case it.Dir != "":
		return it.Dir
	case it.Path != "":
		return it.Path
	case o.Archive == "-":
		return "standard output (the archive only)"
	}
	return o.Archive + " (the archive only)"
}

// renderRenewedFromCA says what a renewal through the online CA did, and
// reports whether there is a renewal to render.
func renderRenewedFromCA(o *renewOptions, res *cafront.HostRenewal) bool {
	if res.RenewResult == nil {
		fmt.Fprintf(o.ErrOut, "nothing expires within %s (the server certificate expires %s; client certificates are renewed by 'dtls agent' on each laptop)\n",
			o.Expiring, res.ServerNotAfter.UTC().Format("2006-01-02"))
		return false
	}
	fmt.Fprintf(o.ErrOut, "renewing the server certificate through the CA at %s\n", res.CAURL)
	if res.DaemonCA != "" {
		var names []string
		for _, ca := range res.NewCAs {
			names = append(names, fmt.Sprintf("%q serial %s", ca.Subject.CommonName, pki.Serial(ca)))
		}
		fmt.Fprintf(o.ErrOut, "the CA certificates changed: %s now holds %s (the online CA is rotating its CA)\n", res.DaemonCA, strings.Join(names, " and "))
		fmt.Fprintln(o.ErrOut, trustNewCA(o.StateDir))
	}
	return true
}

// trustNewCA says what makes the daemon trust a new CA certificate.
func trustNewCA(stateDir string) string {
	if authority.Mode(stateDir) == authority.ModeGateway {
		return "the dtls gateway trusts the new CA within a second of the change: no restart of docker"
	}
	return "dockerd reads its tlscacert only at start: restart it to trust the new CA (clients of the new CA are refused until then)"
}
