package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/pki"
)

type issueServerOptions struct {
	IO
	Name     string
	Hosts    []string
	Out      string
	StateDir string
	KeyType  string
	Validity time.Duration
	Force    bool
	caKey    caKeyOptions
}

func newIssueServerCmd(io IO) *cobra.Command {
	opts := &issueServerOptions{IO: io}
	c := &cobra.Command{
		Use:   "issue-server HOST",
		Short: "Issue a server bundle for another Docker host under the same CA",
		Long: `Issue-server signs a server certificate for another Docker daemon of the
fleet with this host's CA, so that one client certificate works against
every daemon. It writes a bundle directory (0700):

  ca.pem           the CA certificate(s) the daemon verifies clients with (0444)
  server-cert.pem  the server certificate for HOST and every --host (0444)
  server-key.pem   its key (0400)

Copy the directory to the other host (it holds a private key: scp, not
e-mail) and run 'dtls init --ca-from DIR' there: it installs the three
files in the certs directory and merges daemon.json, without a CA key on
that host. The certificate is recorded in the inventory ('dtls list') and
renewed by 'dtls renew --expiring'.`,
		Example: `  $ sudo dtls issue-server docker2.example.com --host 203.0.113.11 --out ./docker2
  $ scp -r ./docker2 root@docker2.example.com:/root/dtls-server
  # on docker2:
  $ sudo dtls init --ca-from /root/dtls-server`,
		Args: exactArgs(1, "one HOST"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			hosts := append([]string{args[0]}, opts.Hosts...)
			for _, h := range hosts {
				if err := pki.ValidateHost(h); err != nil {
					return usagef(c, "%v", err)
				}
			}
			opts.Hosts = hosts
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.Out == "" {
				opts.Out = "dtls-server-" + opts.Name
			}
			var err error
			if opts.Out, err = absPath("out", opts.Out); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runIssueServer(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA made by 'dtls init'")
	f.StringArrayVar(&opts.Hosts, "host", nil, "another DNS name or IP the certificate covers (repeatable)")
	pathFlag(c, io, &opts.Out, "out", "DTLS_OUT", "", "bundle directory to write (default ./dtls-server-HOST)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.DefaultKeyType), "key algorithm of the server key: "+pki.KeyTypeNames())
	completeKeyTypes(c)
	daysFlag(c, &opts.Validity, "days", pki.DefaultServerValidity, "validity of the server certificate")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle directory")
	opts.caKey.flags(c)
	return c
}

func runIssueServer(o *issueServerOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	kt, _ := pki.ParseKeyType(o.KeyType)
	it, err := a.IssueServerBundle(authority.ServerBundleRequest{
		Name: o.Name, Hosts: o.Hosts, Dir: o.Out, KeyType: kt, Validity: o.Validity, Force: o.Force, Now: o.Now(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "issued server certificate %s for %v\n", describeRecord(it.Record), o.Hosts)
	fmt.Fprintf(o.ErrOut, "wrote bundle %s\n", o.Out)
	fmt.Fprintf(o.ErrOut, "next: copy it to %s (it holds the server key), then run there: sudo dtls init --ca-from DIR\n", o.Name)
	return nil
}
