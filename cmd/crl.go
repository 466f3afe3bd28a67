package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

type crlOptions struct {
	IO
	StateDir string
	caKey    caKeyOptions
}

func newCRLCmd(io IO) *cobra.Command {
	opts := &crlOptions{IO: io}
	c := &cobra.Command{
		Use:   "crl",
		Short: "Sign the CA's revocation list again, before it goes stale",
		Long: `Crl writes STATE_DIR/crl.pem again from the inventory: the same revoked
certificates, a new thisUpdate and nextUpdate, and a higher CRL number
(RFC 5280 5.2.3). 'dtls revoke' and 'dtls rotate-ca' write it too.

A proxy that checks CRLs (nginx ssl_crl, HAProxy crl-file) refuses every
client once the CRL's nextUpdate has passed, so run this regularly, e.g.
weekly from cron or a systemd timer, and reload the proxy after it.`,
		Example: `  $ sudo dtls crl
  # /etc/cron.weekly/dtls-crl
  dtls crl --passphrase-file /root/.dtls-pass && systemctl reload nginx`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runCRL(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	opts.caKey.flags(c)
	return c
}

func runCRL(o *crlOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.CRL(o.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "wrote CRL %s (%d revoked)\n", res.Path, res.Revoked)
	return nil
}
