package cmd

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cafront"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

type revokeOptions struct {
	IO
	Key      string
	Reason   string
	StateDir string
	caKey    caKeyOptions
	op       operatorOptions
	plugin   pluginOptions
}

func newRevokeCmd(io IO) *cobra.Command {
	opts := &revokeOptions{IO: io}
	c := &cobra.Command{
		Use:   "revoke NAME|SERIAL",
		Short: "Revoke a certificate and write the CA's CRL",
		Long: `Revoke marks every certificate of NAME (or the one with SERIAL, in hex as
'dtls list' shows it, or a unique prefix of 8 digits or more) revoked in
the inventory, superseded ones included, and writes the CA's certificate
revocation list to STATE_DIR/crl.pem (PEM, 0644), for TLS proxies that do
check CRLs (nginx ssl_crl, HAProxy crl-file). During a CA rotation the file
holds one CRL per CA.

dockerd itself checks no CRL (moby#27778, open since 2016). Where
daemon.json (--daemon-json) names the authorization plugin ('dtls authz
serve', installed by 'dtls init --authz'), the plugin refuses a revoked
certificate at its next call. Without it the daemon keeps accepting a
revoked certificate until it expires, and revoke says so: to cut access
at once, install the plugin, or rotate the CA ('dtls rotate-ca', re-issue
the other clients, then 'dtls rotate-ca --switch' and 'dtls rotate-ca
--finish').

The CA itself cannot be revoked: replace it with 'dtls rotate-ca'.

With --ca-url URL it revokes at that online CA instead ('dtls ca serve'),
from any machine, with an operator's bundle (--operator DIR, or
$DTLS_CA_OPERATOR): every good certificate of NAME, or the one with
SERIAL. The CA signs a new revocation list at once, and the authorization
plugin of every host enrolled with it refuses the certificate within
seconds; nothing is written locally.`,
		Example: `  $ sudo dtls revoke alice
  $ sudo dtls revoke 3f2a9c41d0e5 --reason keyCompromise
  $ dtls revoke alice --ca-url https://ca.example.com:8443 --operator ~/dtls-operator`,
		Args: exactArgs(1, "one NAME or SERIAL"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Key = args[0]
			if _, ok := pki.Reasons[opts.Reason]; !ok {
				names := make([]string, 0, len(pki.Reasons))
				for n := range pki.Reasons {
					names = append(names, n)
				}
				sort.Strings(names)
				return usagef(c, "--reason: unknown reason %q (want one of %s)", opts.Reason, strings.Join(names, ", "))
			}
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if err := opts.op.check(c); err != nil {
				return err
			}
			return runRevoke(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	opts.op.flags(c, io)
	opts.caKey.flags(c)
	opts.plugin.flags(c, io)
	c.Flags().StringVar(&opts.Reason, "reason", "unspecified", "RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn")
	_ = c.RegisterFlagCompletionFunc("reason", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names := make([]string, 0, len(pki.Reasons))
		for n := range pki.Reasons {
			names = append(names, n)
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

func runRevoke(o *revokeOptions) error {
	ca, err := o.op.open(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer ca.Close()
	res, err := ca.Revoke(context.Background(), o.Key, pki.Reasons[o.Reason], o.Now())
	if err != nil {
		return err
	}
	if res.Online {
		renderRevokedOnline(o, ca.Where(), res)
		return nil
	}
	for _, r := range res.Revoked {
		fmt.Fprintf(o.ErrOut, "revoked %s %q serial %s (%s)\n", r.Kind, r.Name, r.Serial, o.Reason)
	}
	fmt.Fprintf(o.ErrOut, "wrote CRL %s (%d revoked) for proxies that check CRLs (nginx ssl_crl, HAProxy crl-file)\n", res.CRL.Path, res.CRL.Revoked)
	reportRevocationEnforcement(o, res.LastExpiry)
	return nil
}

// renderRevokedOnline says what an online CA revoked, and when every
// daemon of its fleet refuses it.
func renderRevokedOnline(o *revokeOptions, url string, res *cafront.Revocation) {
	for _, r := range res.Revoked {
		fmt.Fprintf(o.ErrOut, "revoked %s %q serial %s (%s) at the CA %s\n", r.Kind, r.Name, r.Serial, o.Reason, url)
	}
	fmt.Fprintf(o.ErrOut, "the CA signs a new revocation list: the authorization plugin of every host enrolled with it ('dtls init --ca-url ... --authz') refuses the certificate within about %s\n",
		fleet.Duration(2*fleet.DefaultCRLRefresh))
	if !res.LastExpiry.IsZero() {
		fmt.Fprintf(o.ErrOut, "dtls: warning: a daemon without the plugin checks no CRL (moby#27778): it accepts the certificate until it expires on %s\n", res.LastExpiry.UTC().Format("2006-01-02 15:04 MST"))
	}
}

// reportRevocationEnforcement says whether this host's daemon refuses the
// revoked certificate: dockerd checks no CRL (moby#27778), the
// authorization plugin checks the inventory at every call.
func reportRevocationEnforcement(o *revokeOptions, lastExpiry time.Time) {
	if authority.Mode(o.StateDir) == authority.ModeGateway {
		fmt.Fprintln(o.ErrOut, "the dtls gateway on this host closes this certificate's open connections (exec and attach streams included) within a second, and refuses it from then on")
		return
	}
	if o.plugin.enforced(o.IO) {
		fmt.Fprintf(o.ErrOut, "the authorization plugin %q (named in %s) refuses this certificate at its next call on this host (dockerd itself checks no CRL, moby#27778)\n", o.plugin.name(), o.plugin.DaemonJSON)
		return
	}
	fmt.Fprintf(o.ErrOut, "dtls: warning: %s names no authorization plugin and dockerd checks no CRL (moby#27778): the daemon STILL ACCEPTS this certificate until it expires on %s\n",
		o.plugin.DaemonJSON, lastExpiry.UTC().Format("2006-01-02"))
	fmt.Fprintf(o.ErrOut, "to cut access now: install the plugin (sudo dtls init --authz, which runs 'dtls authz serve': it refuses revoked certificates at their next call), "+
		"or rotate the CA (dtls rotate-ca, re-issue the other clients, then dtls rotate-ca --switch and dtls rotate-ca --finish)\n")
}
