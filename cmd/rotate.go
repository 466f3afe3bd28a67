package cmd

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/authority"
	"github.com/dtls-tool/dtls/pki"
)

type rotateOptions struct {
	IO
	StateDir   string
	KeyType    string
	CAValidity time.Duration
	Finish     bool
	Force      bool
	Restart    bool
	caKey      caKeyOptions
}

func newRotateCACmd(io IO) *cobra.Command {
	opts := &rotateOptions{IO: io}
	c := &cobra.Command{
		Use:   "rotate-ca",
		Short: "Replace the CA, keeping old clients working during the transition",
		Long: `Rotate-ca replaces the CA in two steps.

'dtls rotate-ca' makes a new CA (STATE_DIR/ca.pem, ca-key.pem) and keeps
the old one as STATE_DIR/ca-old.pem and ca-old-key.pem. The daemon's
ca.pem then holds both CAs, so that client certificates of either are
accepted; the server certificate is re-issued from the new CA. The old CA
was made with a path length of 0 and cannot cross-sign the new one, so a
client needs the new CA to verify the daemon: rotate-ca rewrites ca.pem
(both CAs) in every client bundle still at its recorded path; a bundle
copied elsewhere needs that ca.pem too, or a 'dtls renew NAME'. 'dtls
list' shows CA "old" for what still chains to the old CA; renew those.

'dtls rotate-ca --finish' drops the old CA: the daemon's ca.pem holds
only the new one, and certificates of the old CA are marked superseded. It
refuses while good client certificates of the old CA remain, unless
--force. dockerd reads its TLS files only at start (moby#23936): restart it
after each step, or pass --restart.`,
		Example: `  $ sudo dtls rotate-ca --restart
  $ sudo dtls list
  $ sudo dtls renew alice
  $ sudo dtls rotate-ca --finish --restart`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.Force && !opts.Finish {
				return usagef(c, "--force applies to --finish only")
			}
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.Finish {
				return runRotateFinish(opts)
			}
			return runRotateCA(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	f.StringVar(&opts.KeyType, "key-type", string(pki.DefaultKeyType), "key algorithm of the new CA: "+pki.KeyTypeNames())
	completeKeyTypes(c)
	daysFlag(c, &opts.CAValidity, "ca-days", pki.DefaultCAValidity, "validity of the new CA certificate")
	f.BoolVar(&opts.Finish, "finish", false, "drop the old CA once clients have certificates from the new one")
	f.BoolVar(&opts.Force, "force", false, "with --finish: drop the old CA although clients of it remain")
	f.BoolVar(&opts.Restart, "restart", false, "restart docker afterwards ('systemctl restart docker')")
	opts.caKey.flags(c)
	return c
}

func runRotateCA(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	kt, _ := pki.ParseKeyType(o.KeyType)
	now := o.Now()
	res, err := a.Rotate(authority.RotateRequest{KeyType: kt, Validity: o.CAValidity, CAName: authority.DefaultCAName(now), Now: now})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "created CA %s (%s); the old one is kept as %s until --finish\n", res.CAPath, pki.Describe(res.CA.Cert), authority.OldCACertFile)
	fmt.Fprintf(o.ErrOut, "issued server certificate %s from the new CA; %s holds both CAs\n", describeRecord(res.Server.Record), res.DaemonCA)
	fmt.Fprintf(o.ErrOut, "rewrote ca.pem (both CAs) in %d of %d client bundles; bundles copied elsewhere need it too: %s\n", res.BundlesUpdated, res.BundlesTotal, res.DaemonCA)
	fmt.Fprintln(o.ErrOut, "next: renew the clients 'dtls list' shows with CA old ('dtls renew NAME'), then: dtls rotate-ca --finish")
	return restartOrSay(o.IO, o.Restart)
}

func runRotateFinish(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.FinishRotation(o.Force, o.Now())
	var blocking *authority.BlockingError
	if errors.As(err, &blocking) {
		// One holder a line: the list can be long.
		for _, r := range blocking.Left {
			fmt.Fprintf(o.ErrOut, "still on the old CA: %s %q serial %s, expires %s\n", r.Kind, r.Name, r.Serial, r.NotAfter.UTC().Format("2006-01-02"))
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "dropped the old CA (serial %s): %s holds only the new one", res.OldSerial, res.DaemonCA)
	if len(res.Cut) > 0 {
		fmt.Fprintf(o.ErrOut, "; %d certificates of the old CA no longer work", len(res.Cut))
	}
	fmt.Fprintln(o.ErrOut)
	return restartOrSay(o.IO, o.Restart)
}

// restartOrSay restarts docker, or says that it must be restarted: dockerd
// does not reload its TLS files on SIGHUP (moby#23936).
func restartOrSay(io IO, restart bool) error {
	if restart {
		return restartDocker(io.ErrOut)
	}
	fmt.Fprintln(io.ErrOut, "dockerd reads its TLS files only at start (moby#23936): sudo systemctl restart docker   (or pass --restart)")
	return nil
}
