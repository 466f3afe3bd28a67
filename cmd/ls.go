package cmd

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
)

type lsOptions struct {
	IO
	Output string
}

func newLsCmd(io IO) *cobra.Command {
	opts := &lsOptions{IO: io}
	c := &cobra.Command{
		Use:     "bundles",
		Aliases: []string{"ls"},
		Short:   "List the client bundles on this machine",
		Long: `Bundles (or ls) lists the bundles in the bundle store, ~/.docker/dtls (or
$DTLS_HOME), on a developer's machine (the CA's inventory on the Docker host
is 'dtls certs'):
their name, the daemon URL (from dtls.json), and the client name and
expiry from the certificate itself (cert.pem), which is what the daemon
checks. A certificate that has expired is marked "(expired)", one that
expires within 14 days "(expires in N days)" (within an hour for a
bundle from 'dtls enroll', which 'dtls agent' renews). The default bundle, which a
plain 'dtls env' uses, is marked with "*"; a bundle copied by hand to
~/.docker/dtls/default is listed as "default". A directory that is not a
usable bundle is listed with the reason.

--output json prints a JSON array instead, one object per bundle.`,
		Example: `  $ dtls ls
  $ dtls bundles --output json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Output != "table" && opts.Output != "json" {
				return usagef(c, "--output: unknown format %q (valid: table, json)", opts.Output)
			}
			return runLs(opts)
		},
	}
	c.Flags().StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	completeOutput(c)
	return c
}

type lsEntry struct {
	Name       string     `json:"name"`
	Default    bool       `json:"default"`
	Dir        string     `json:"dir"`
	DockerHost string     `json:"docker_host,omitempty"`
	Client     string     `json:"client,omitempty"`
	NotAfter   *time.Time `json:"not_after,omitempty"`
	Expired    bool       `json:"expired"`
	// Expiring: the certificate expires within expiryWarning.
	Expiring bool   `json:"expiring"`
	Error    string `json:"error,omitempty"`
}

func runLs(o *lsOptions) error {
	root, err := clientenv.StoreRoot(o.Getenv)
	if err != nil {
		return err
	}
	entries, err := clientenv.List(root)
	if err != nil {
		return err
	}
	now := o.Now()
	list := make([]lsEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, lsEntryOf(e, now))
	}
	if o.Output == "json" {
		data, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", data)
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(o.ErrOut, "no bundles in %s; import one with 'dtls import FILE'\n", root)
		return nil
	}
	return renderLs(o, list, now)
}

// lsEntryOf is the line of a bundle of the store.
func lsEntryOf(e clientenv.Entry, now time.Time) lsEntry {
	le := lsEntry{Name: e.Name, Default: e.Default}
	var cert *x509.Certificate
	if e.Err == nil {
		cert, e.Err = bundleCert(e.Bundle.Dir)
	}
	if e.Err != nil {
		le.Error = e.Err.Error()
		return le
	}
	// dtls.json says where the daemon is; the name and the
	// expiry are the certificate's own, which the daemon checks
	// (dtls.json's could be stale or edited).
	le.Dir, le.DockerHost, le.Client = e.Bundle.Dir, e.Bundle.Meta.DockerHost, cert.Subject.CommonName
	na := cert.NotAfter.UTC()
	le.NotAfter = &na
	le.Expired = !na.After(now)
	warn := expiryWarning
	if e.Bundle.Meta.CAURL != "" {
		// An enrolled bundle lives a day and its agent renews
		// it: only one the agent missed is worth a mark.
		warn = enrolledWarning
	}
	le.Expiring = !le.Expired && na.Before(now.Add(warn))
	return le
}

// renderLs prints the bundles as a table.
func renderLs(o *lsOptions, list []lsEntry, now time.Time) error {
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDOCKER_HOST\tCLIENT\tEXPIRES")
	for _, e := range list {
		name := printable(e.Name)
		if e.Default {
			name += " *"
		}
		if e.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\tbroken: %s\n", name, printable(e.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, printable(e.DockerHost), printable(e.Client), lsExpires(e, now))
	}
	return tw.Flush()
}

// lsExpires is the EXPIRES column of a bundle.
func lsExpires(e lsEntry, now time.Time) string {
	if e.NotAfter == nil {
		return "-"
	}
	exp := e.NotAfter.Format("2006-01-02")
	switch {
	case e.Expired:
		exp += " (expired)"
	case e.Expiring:
		exp += " (expires " + inDays(*e.NotAfter, now) + ")"
	}
	return exp
}

// printable returns s as it is when every character of it is printable,
// else quoted with Go escapes: dtls.json and directory names come from
// whoever made the bundle, and an escape sequence in them must not reach
// the terminal (retitle it, clear it, fake a line).
func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) || r == '\t' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
