package cmd

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

type revokeOptions struct {
	IO
	Key      string
	Reason   string
	StateDir string
	caKey    caKeyOptions
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

dockerd itself checks no CRL (moby#27778, open since 2016): the daemon
keeps accepting a revoked certificate until it expires. To cut access at
once, rotate the CA ('dtls rotate-ca', re-issue the other clients, then
'dtls rotate-ca --finish').

The CA itself cannot be revoked: replace it with 'dtls rotate-ca'.`,
		Example: `  $ sudo dtls revoke alice
  $ sudo dtls revoke 3f2a9c41d0e5 --reason keyCompromise`,
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
			return runRevoke(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	opts.caKey.flags(c)
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
	now := o.Now()
	inv, ca, err := openSigner(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer inv.Close()
	found, err := inv.Find(o.Key)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return withHint(fmt.Errorf("no certificate named %q or with that serial", o.Key), "run 'dtls list' to see names and serials")
	}
	var targets []store.Record
	names := map[string]bool{}
	for _, r := range found {
		if r.Kind == "ca" {
			return withHint(fmt.Errorf("%q is the CA (serial %s): a CA cannot be revoked", r.Name, r.Serial), "replace it with 'dtls rotate-ca'")
		}
		names[fmt.Sprintf("%s %q", r.Kind, r.Name)] = true
		if r.Status != store.StatusRevoked && now.Before(r.NotAfter) {
			targets = append(targets, r)
		}
	}
	if len(names) > 1 {
		// A client and a server certificate of one name (or a name that
		// is also a serial prefix): revoking all would cut more than
		// was meant.
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		return withHint(fmt.Errorf("%q names more than one certificate holder: %s", o.Key, strings.Join(list, ", ")),
			"revoke by serial: 'dtls list' shows them")
	}
	if len(targets) == 0 {
		return fmt.Errorf("%q: every matching certificate is already revoked or expired", o.Key)
	}
	// The old CA (during a rotation) signs its own CRL: load it before
	// anything is marked, so that a failure leaves no revocation without
	// its CRL.
	old, err := loadOldCA(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	reason := pki.Reasons[o.Reason]
	if err := inv.Revoke(targets, reason, now); err != nil {
		return err
	}
	for _, r := range targets {
		fmt.Fprintf(o.ErrOut, "revoked %s %q serial %s (%s)\n", r.Kind, r.Name, r.Serial, o.Reason)
	}
	p, n, err := writeCRLs(inv, o.StateDir, ca, old, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "wrote CRL %s (%d revoked) for proxies that check CRLs (nginx ssl_crl, HAProxy crl-file)\n", p, n)
	last := targets[0].NotAfter
	for _, r := range targets {
		if r.NotAfter.After(last) {
			last = r.NotAfter
		}
	}
	fmt.Fprintf(o.ErrOut, "warning: dockerd checks no CRL (moby#27778): the daemon STILL ACCEPTS this certificate until it expires on %s\n", last.UTC().Format("2006-01-02"))
	fmt.Fprintf(o.ErrOut, "to cut access now: dtls rotate-ca, re-issue the other clients, then dtls rotate-ca --finish\n")
	return nil
}

// writeCRL writes STATE_DIR/crl.pem: the current CA's CRL, and the old
// CA's during a rotation.
func writeCRL(io IO, inv *inventory, stateDir string, k *caKeyOptions, ca *pki.CA, now time.Time) (string, int, error) {
	old, err := loadOldCA(io, stateDir, k)
	if err != nil {
		return "", 0, err
	}
	return writeCRLs(inv, stateDir, ca, old, now)
}

// writeCRLs writes STATE_DIR/crl.pem with one CRL per CA, each signed by
// its own CA (old is nil outside a rotation).
func writeCRLs(inv *inventory, stateDir string, ca, old *pki.CA, now time.Time) (string, int, error) {
	cas := []*pki.CA{ca}
	if old != nil {
		cas = append(cas, old)
	}
	p := filepath.Join(stateDir, crlFile)
	prev, _ := os.ReadFile(p)
	var out []byte
	total := 0
	for _, c := range cas {
		recs, err := inv.Revoked(pki.Serial(c.Cert))
		if err != nil {
			return "", 0, err
		}
		entries := make([]pki.Revoked, 0, len(recs))
		for _, r := range recs {
			n, ok := new(big.Int).SetString(r.Serial, 16)
			if !ok {
				return "", 0, fmt.Errorf("record %q has an invalid serial %q", r.Name, r.Serial)
			}
			at := r.RevokedAt
			if at.IsZero() {
				at = now
			}
			entries = append(entries, pki.Revoked{Serial: n, At: at, Reason: r.Reason})
		}
		b, err := c.CRL(entries, crlNumber(prev, c, now), now, 0)
		if err != nil {
			return "", 0, err
		}
		out = append(out, b...)
		total += len(entries)
	}
	if err := atomicfile.Write(p, out, metaMode); err != nil {
		return "", 0, err
	}
	return p, total, nil
}

// crlNumber is the number of ca's next CRL: the time in seconds, but always
// above the number of the CRL it replaces in prev (RFC 5280 5.2.3: CRL
// numbers increase monotonically), so that two revocations in one second,
// or a clock set back, never reuse a number.
func crlNumber(prev []byte, ca *pki.CA, now time.Time) int64 {
	n := now.Unix()
	for {
		var b *pem.Block
		b, prev = pem.Decode(prev)
		if b == nil {
			return n
		}
		crl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil || crl.Number == nil || !bytes.Equal(crl.RawIssuer, ca.Cert.RawSubject) || crl.CheckSignatureFrom(ca.Cert) != nil {
			continue
		}
		if crl.Number.IsInt64() && crl.Number.Int64() >= n {
			n = crl.Number.Int64() + 1
		}
	}
}
