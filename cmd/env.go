package cmd

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
)

type envOptions struct {
	IO
	CertPath string
	Shell    string
	Unset    bool
	Host     string
}

func newEnvCmd(io IO) *cobra.Command {
	opts := &envOptions{IO: io}
	c := &cobra.Command{
		Use:   "env",
		Short: "Print the shell commands that point the Docker CLI at a bundle",
		Long: `Env prints the commands that set DOCKER_HOST, DOCKER_TLS_VERIFY=1 and
DOCKER_CERT_PATH for a client bundle, in the syntax of your shell, followed by
a comment saying how to use them. Only those commands go to standard output;
warnings (an expiring certificate) go to standard error.

The bundle is --cert-path, else $DTLS_CERT_PATH, else ~/.docker/dtls/default.
It must hold ca.pem, cert.pem, key.pem and dtls.json.

Values are quoted for the shell, so a path with spaces, quotes, $() or
backticks is never run by eval. --unset prints the commands that remove the
variables: the Docker CLI treats any non-empty DOCKER_TLS_VERIFY as on, so
unsetting is the only way back to the local socket.`,
		Example: `  $ eval "$(dtls env)"
  $ dtls env --shell fish | source
  $ & dtls env --shell powershell | Invoke-Expression
  $ eval "$(dtls env --cert-path ~/bundles/prod)"
  $ eval "$(dtls env --unset)"`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			sh := clientenv.DetectShell(opts.Getenv("SHELL"))
			if opts.Shell != "" {
				var err error
				if sh, err = clientenv.ParseShell(opts.Shell); err != nil {
					return usagef(c, "--shell: %v", err)
				}
			}
			if opts.Host != "" {
				if err := parseDockerHost("host", opts.Host); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			return runEnv(opts, sh)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.CertPath, "cert-path", "", "bundle directory (default $"+clientenv.EnvCertPath+", else ~/.docker/dtls/default)")
	_ = c.MarkFlagDirname("cert-path")
	f.StringVar(&opts.Shell, "shell", "", "shell syntax: bash, zsh, fish, powershell, cmd (default from $SHELL)")
	f.BoolVar(&opts.Unset, "unset", false, "print the commands that unset the variables")
	f.StringVar(&opts.Host, "host", "", "daemon URL, overriding the bundle's (tcp://HOST:PORT)")
	c.MarkFlagsMutuallyExclusive("unset", "host")
	c.MarkFlagsMutuallyExclusive("unset", "cert-path")
	_ = c.RegisterFlagCompletionFunc("shell", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names := make([]string, len(clientenv.Shells))
		for i, s := range clientenv.Shells {
			names[i] = string(s)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

// expiryWarning is how close to its end a certificate draws a warning.
const expiryWarning = 14 * 24 * time.Hour

func runEnv(o *envOptions, sh clientenv.Shell) error {
	// The usage line repeats the command as run, so that the hint works
	// when pasted (docker-machine env does the same).
	cmdLine := "dtls env"
	if o.Shell != "" {
		cmdLine += " --shell " + string(sh)
	}
	if o.Unset {
		cmdLine += " --unset"
		var b strings.Builder
		if err := clientenv.WriteUnset(&b, sh, clientenv.VarNames, clientenv.UsageHint(sh, cmdLine)); err != nil {
			return err
		}
		_, err := fmt.Fprint(o.Out, b.String())
		return err
	}
	dir := o.CertPath
	if dir == "" {
		dir = o.Getenv(clientenv.EnvCertPath)
	}
	if dir == "" {
		var err error
		if dir, err = clientenv.DefaultCertPath(); err != nil {
			return err
		}
	} else if o.CertPath != "" {
		cmdLine += " --cert-path " + shellWord(o.CertPath)
	}
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		return withHint(err, "ask your Docker admin for a bundle ('dtls issue-client NAME') and copy it there, or pass --cert-path DIR")
	}
	if o.Host != "" {
		cmdLine += " --host " + shellWord(o.Host)
	} else if b.Meta.DockerHost == "" {
		return withHint(fmt.Errorf("bundle %q records no daemon URL", b.Dir), "pass --host tcp://HOST:2376")
	}
	now := o.Now()
	switch na := b.Meta.NotAfter; {
	case na.IsZero():
	case !na.After(now):
		fmt.Fprintf(o.ErrOut, "dtls: warning: the certificate in %s expired on %s: the daemon will refuse it; ask for a new bundle\n", b.Dir, na.UTC().Format("2006-01-02"))
	case na.Before(now.Add(expiryWarning)):
		fmt.Fprintf(o.ErrOut, "dtls: warning: the certificate in %s expires on %s\n", b.Dir, na.UTC().Format("2006-01-02"))
	}
	var out strings.Builder
	if err := clientenv.WriteSet(&out, sh, clientenv.Vars(b, o.Host), clientenv.UsageHint(sh, cmdLine)); err != nil {
		return err
	}
	_, err = fmt.Fprint(o.Out, out.String())
	return err
}

// shellWord returns s unchanged when it is safe as a bare word in the
// usage comment, else "DIR": the comment is only a hint, and echoing an odd
// path into it would be one more thing to quote.
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-:~+@", r)) {
			return "..."
		}
	}
	return s
}
