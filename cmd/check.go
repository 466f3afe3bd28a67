package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/daemoncheck"
)

// exitUnusable is the exit code of 'dtls check' when the daemon cannot be
// used with the bundle, and of 'dtls inspect' when it found problems.
const exitUnusable = 4

// unusable carries a finding to exit code 4.
type unusable struct{ error }

func (e unusable) Unwrap() error { return e.error }
func (e unusable) ExitCode() int { return exitUnusable }
func (e unusable) HintText() string {
	var ce *daemoncheck.CheckError
	if errors.As(e.error, &ce) {
		return ce.Hint
	}
	return ""
}

type checkOptions struct {
	IO
	Name     string
	CertPath string
	Host     string
	Timeout  time.Duration
	Output   string
}

func newCheckCmd(io IO) *cobra.Command {
	opts := &checkOptions{IO: io}
	c := &cobra.Command{
		Use:   "check [NAME]",
		Short: "Dial the daemon with a bundle and explain what is wrong, if anything",
		Long: `Check connects to the daemon with a bundle (NAME, --cert-path, or the
default one) as the Docker CLI would, asks it for its version, and says in
words what fails: the daemon's certificate is from a CA the bundle does not
trust (the CA was rotated: ask for a renewed bundle), the name or address
is not in the daemon's certificate, the client certificate expired or is
not yet valid, the daemon refused the client certificate (another CA's, or
revoked with the authorization plugin), or nothing listens.

It also warns when REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set: docker-py,
docker-compose v1 and Ansible then ignore the bundle's ca.pem.

Exit code 4 when the daemon cannot be used with the bundle.`,
		Example: `  $ dtls check
  $ dtls check docker.example.com --output json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(c, "%s: want at most one NAME", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Name = args[0]
			}
			if opts.Output != "text" && opts.Output != "json" {
				return usagef(c, "--output: want text or json, got %q", opts.Output)
			}
			if opts.Host != "" {
				if err := parseDockerHost("docker-host", opts.Host); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			return runCheck(opts)
		},
	}
	pathFlag(c, io, &opts.CertPath, "cert-path", "DTLS_CERT_PATH", "", "bundle directory (default: NAME, or the default bundle)")
	c.Flags().StringVar(&opts.Host, "docker-host", "", "daemon URL (default: the bundle's)")
	c.Flags().DurationVar(&opts.Timeout, "timeout", daemoncheck.DefaultCheckTimeout, "give up after this long")
	c.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func runCheck(o *checkOptions) error {
	b, err := checkBundle(o)
	if err != nil {
		return err
	}
	warnPythonCA(o.IO)
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	res, err := daemoncheck.Check(ctx, b, o.Host, o.Now())
	var ce *daemoncheck.CheckError
	if o.Output == "json" {
		if err := writeCheckJSON(o, res, err); err != nil {
			return err
		}
	}
	if errors.As(err, &ce) {
		return unusable{err}
	}
	if err != nil {
		return err
	}
	if o.Output == "text" {
		fmt.Fprintf(o.Out, "ok: %s answers as Docker Engine %s (API %s) over %s, in %s; the bundle %s works\n",
			res.DockerHost, res.Version, res.APIVersion, res.TLSVersion, res.Took.Round(time.Millisecond), b.Dir)
	}
	return nil
}

// checkBundle loads the bundle NAME, --cert-path or the default names.
func checkBundle(o *checkOptions) (*clientenv.Bundle, error) {
	dir := o.CertPath
	var err error
	switch {
	case o.Name != "":
		if dir, err = bundleDir(o.IO, o.Name); err != nil {
			return nil, err
		}
	case dir == "":
		if dir, err = clientenv.CertPath(o.Getenv); err != nil {
			return nil, err
		}
	}
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		return nil, withHint(err, "run 'dtls ls' to see the bundles on this machine")
	}
	return b, nil
}

// writeCheckJSON prints the check's result, or what failed when the daemon
// was reached and refused the bundle; any other error is returned.
func writeCheckJSON(o *checkOptions, res *daemoncheck.CheckResult, err error) error {
	var ce *daemoncheck.CheckError
	var v any = res
	if errors.As(err, &ce) {
		v = ce
	} else if err != nil {
		return err
	}
	out, merr := json.MarshalIndent(v, "", "  ")
	if merr != nil {
		return merr
	}
	fmt.Fprintf(o.Out, "%s\n", out)
	return nil
}

type inspectOptions struct {
	IO
	Target string
	Output string
}

func newInspectCmd(io IO) *cobra.Command {
	opts := &inspectOptions{IO: io}
	c := &cobra.Command{
		Use:   "inspect FILE|DIR|NAME",
		Short: "Describe a bundle, an archive or a certificate: who, which CA, until when, which daemon",
		Long: `Inspect prints the subject, serial, issuer, validity, names and key of the
certificate in an archive (before 'dtls import'; nothing is extracted), a
bundle directory, a bundle of this machine's store by NAME, or a PEM
certificate file; the CAs a bundle trusts and the daemon it is for; and
what is wrong with it (expired, a key that does not match, a certificate
that does not chain to ca.pem). Exit code 4 when it found a problem.`,
		Example: `  $ dtls inspect alice.tar.gz
  $ dtls inspect docker.example.com --output json
  $ dtls inspect /etc/docker/certs/server-cert.pem`,
		Args: exactArgs(1, "one FILE, DIR or NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Target = args[0]
			if opts.Output != "text" && opts.Output != "json" {
				return usagef(c, "--output: want text or json, got %q", opts.Output)
			}
			return runInspect(opts)
		},
	}
	c.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func runInspect(o *inspectOptions) error {
	path := o.Target
	info, err := bundle.Inspect(path, o.Now())
	if err != nil {
		// Not a path here: a bundle of the store by name.
		if dir, derr := bundleDir(o.IO, o.Target); derr == nil {
			if info, err = bundle.Inspect(dir, o.Now()); err != nil {
				return err
			}
		} else {
			return err
		}
	}
	if o.Output == "json" {
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s\n", b)
	} else {
		printInspect(o, info)
	}
	if len(info.Problems) > 0 {
		return unusable{fmt.Errorf("%s: %d problem(s) found", info.Path, len(info.Problems))}
	}
	return nil
}

func printInspect(o *inspectOptions, info *bundle.Info) {
	w := o.Out
	fmt.Fprintf(w, "%s (%s)\n", printable(info.Path), info.Source)
	cert := func(label string, c *bundle.CertInfo) {
		fmt.Fprintf(w, "%s:\n", label)
		fmt.Fprintf(w, "  subject:  %s\n", printable(c.Subject))
		fmt.Fprintf(w, "  issuer:   %s\n", printable(c.Issuer))
		fmt.Fprintf(w, "  serial:   %s\n", c.Serial)
		fmt.Fprintf(w, "  valid:    %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		if len(c.SANs) > 0 {
			fmt.Fprintf(w, "  names:    %s\n", printable(fmt.Sprint(c.SANs)))
		}
		fmt.Fprintf(w, "  key:      %s\n", c.KeyType)
		if len(c.EKU) > 0 {
			fmt.Fprintf(w, "  usage:    %v\n", c.EKU)
		}
	}
	if info.Client != nil {
		cert("certificate", info.Client)
	}
	for i := range info.CAs {
		cert("trusts CA", &info.CAs[i])
	}
	if info.DockerHost != "" {
		fmt.Fprintf(w, "daemon:     %s\n", printable(info.DockerHost))
	}
	for _, p := range info.Problems {
		fmt.Fprintf(w, "problem:    %s\n", printable(p))
	}
}
