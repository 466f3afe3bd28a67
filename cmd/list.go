package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/store"
)

type listOptions struct {
	IO
	StateDir string
	Output   string
	Expiring time.Duration
	op       operatorOptions
}

func newListCmd(io IO) *cobra.Command {
	opts := &listOptions{IO: io}
	c := &cobra.Command{
		Use:     "certs",
		Aliases: []string{"list"},
		Short:   "List every certificate this host's CA issued (the inventory)",
		Long: `Certs (or list) prints the inventory kept in STATE_DIR/dtls.db on the CA's
host: every CA, server and client certificate dtls issued, newest last,
with its status (the bundles on a laptop are 'dtls bundles'):

  valid       in use and not close to expiry
  expiring    expires within --expiring (default 30 days)
  expired     past its not-after date
  revoked     revoked with 'dtls revoke' (dockerd still accepts it until it
              expires: it checks no CRL, moby#27778)
  superseded  replaced by 'dtls renew' or a CA rotation; it stays valid
              until it expires

The CA column is "old" for a certificate that chains to a CA being
replaced by 'dtls rotate-ca'; during a rotation a line on stderr says which
step it is at ('dtls rotate-ca --status' says more). --output json prints
an array of objects with the same fields, and the serial in lowercase hex.

With --ca-url URL it lists the inventory of that online CA instead ('dtls
ca serve'), from any machine, with an operator's bundle (--operator DIR,
or $DTLS_CA_OPERATOR: ca.pem, cert.pem, key.pem of a certificate with the
role ca-operator): the same columns, a client's role as its certificate
holds it. Without --expiring, a certificate of the online CA is "expiring"
once two thirds of its lifetime have passed: its agent should have renewed
it by then.`,
		Example: `  $ sudo dtls certs
  $ sudo dtls certs --expiring 30d
  $ sudo dtls list --output json | jq -r '.[] | select(.status == "expiring") | .name'
  $ dtls certs --ca-url https://ca.example.com:8443 --operator ~/dtls-operator`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Output != "table" && opts.Output != "json" {
				return usagef(c, "--output: want table or json, got %q", opts.Output)
			}
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if err := opts.op.check(c); err != nil {
				return err
			}
			return runList(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	opts.op.flags(c, io)
	c.Flags().StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	completeOutput(c)
	windowFlag(c, &opts.Expiring, "expiring", "show only certificates in use that expire within this window (e.g. 30d, 12h)")
	return c
}

// windowValue is a duration flag that also takes days ("30d").
type windowValue struct{ d *time.Duration }

func windowFlag(c *cobra.Command, p *time.Duration, name, usage string) {
	c.Flags().Var(&windowValue{p}, name, usage)
}

func (v *windowValue) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	return v.d.String()
}
func (v *windowValue) Type() string { return "duration" }
func (v *windowValue) Set(s string) error {
	d, err := parseWindow(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func parseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("%q is not a positive number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (e.g. 30d, 12h)", s)
	}
	return d, nil
}

type listEntry struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Status    string    `json:"status"`
	SANs      []string  `json:"sans"`
	CASerial  string    `json:"ca_serial"`
	OldCA     bool      `json:"old_ca"`
	Path      string    `json:"path,omitempty"`
	// Role is a client's authorization role ("" for the policy's
	// default).
	Role string `json:"role,omitempty"`
}

func runList(o *listOptions) error {
	ca, err := o.op.open(o.IO, o.StateDir, nil)
	if err != nil {
		return laptopHint(o.IO, err)
	}
	inv, err := ca.Inventory(context.Background(), o.Now())
	ca.Close()
	if err != nil {
		return err
	}
	// Status, not data: stderr, and never in --output json, which stays
	// an array of records.
	if inv.Online {
		fmt.Fprintf(o.ErrOut, "inventory of the CA at %s\n", ca.Where())
	} else if h := rotationHeader(inv.Rotation); h != "" && o.Output == "table" {
		fmt.Fprintln(o.ErrOut, h)
	}
	window := inv.RenewBefore
	if o.Expiring > 0 {
		window = func(store.Record) time.Duration { return o.Expiring }
	}
	return printListEntries(o, listEntries(inv.Records, inv.Roles, inv.CurrentCA, o.Now(), window, o.Expiring > 0))
}

// listEntries are the rows of records: all of them, or with only those
// expired or expiring (within window of their end); current is the serial
// of the current CA.
func listEntries(recs []store.Record, roles map[string]string, current string, now time.Time, window func(store.Record) time.Duration, only bool) []listEntry {
	entries := []listEntry{}
	for _, r := range recs {
		st := displayStatus(r, now, window(r))
		if only && st != "expiring" && st != "expired" {
			continue
		}
		sans := r.SANs
		if sans == nil {
			sans = []string{}
		}
		e := listEntry{
			Name: r.Name, Kind: string(r.Kind), Serial: r.Serial, NotBefore: r.NotBefore, NotAfter: r.NotAfter,
			Status: st, SANs: sans, CASerial: r.CASerial, Path: r.Path,
			OldCA: current != "" && r.CASerial != "" && r.CASerial != current && r.Kind != store.KindCA,
		}
		if r.Kind == store.KindClient {
			e.Role = roles[r.Name]
		}
		entries = append(entries, e)
	}
	return entries
}

// printListEntries prints the rows as --output asks.
func printListEntries(o *listOptions, entries []listEntry) error {
	if o.Output == "json" {
		b, err := json.MarshalIndent(entries, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSERIAL\tEXPIRES\tSTATUS\tCA\tROLE")
	for _, e := range entries {
		ca := "current"
		if e.OldCA {
			ca = "old"
		}
		if e.Kind == string(store.KindCA) {
			ca = "-"
		}
		role := "-"
		if e.Kind == string(store.KindClient) {
			role = e.Role
			if role == "" {
				role = "(default)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Kind, e.Serial, e.NotAfter.UTC().Format("2006-01-02"), e.Status, ca, role)
	}
	return tw.Flush()
}

// displayStatus is a record's status as list shows it.
func displayStatus(r store.Record, now time.Time, window time.Duration) string {
	switch {
	case r.Status == store.StatusRevoked || r.Status == store.StatusSuperseded:
		return string(r.Status)
	case !now.Before(r.NotAfter):
		return "expired"
	case r.NotAfter.Before(now.Add(window)):
		return "expiring"
	}
	return "valid"
}

// laptopHint: 'dtls list' on a laptop, where there is no state directory
// but a bundle store, was meant as 'dtls ls' (in Docker's commands the two
// are one): say so.
func laptopHint(io IO, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	root, rerr := clientenv.StoreRoot(io.Getenv)
	if rerr != nil {
		return err
	}
	if _, serr := os.Stat(root); serr != nil {
		return err
	}
	return withHint(err, "this lists the certificates of the CA's host ('sudo dtls init' makes the CA); on a laptop: dtls ls lists your bundles (dtls bundles)")
}
