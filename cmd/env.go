package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
)

type envOptions struct {
	IO
	Name     string
	CertPath string
	Shell    string
	Format   string
	Unset    bool
	Host     string
	NoProxy  bool
}

func newEnvCmd(io IO) *cobra.Command {
	opts := &envOptions{IO: io}
	c := &cobra.Command{
		Use:   "env [NAME]",
		Short: "Print the shell commands that point the Docker CLI at a bundle",
		Long: `Env prints the commands that set DOCKER_HOST, DOCKER_TLS_VERIFY=1 and
DOCKER_CERT_PATH for a client bundle, in the syntax of your shell, followed by
a comment saying how to use them. Only those commands go to standard output;
warnings (an expiring certificate; REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE set,
which docker-py then uses instead of the bundle's ca.pem: one line, hidden
by DTLS_NO_REQUESTS_CA_BUNDLE_WARNING=1) go to standard error.

The bundle is the one called NAME in the bundle store (~/.docker/dtls/NAME,
or $DTLS_HOME/NAME; see 'dtls ls'), else --cert-path, else $DTLS_CERT_PATH,
else the store's default (~/.docker/dtls/default, set by 'dtls import' and
'dtls use'). It must hold ca.pem, cert.pem, key.pem and dtls.json.
DOCKER_CERT_PATH names the bundle the default link points at, not the link,
so a later 'dtls use' does not hand a configured shell another server's
certificates.

The shell is --shell, else the shell dtls runs under (the parent process:
bash, zsh, fish, tcsh, nu, pwsh), else the one $SHELL names. Shells:
bash (and sh, dash, ksh), zsh, fish, tcsh (and csh), nushell, powershell,
cmd. Nushell has no eval: its output is a record for 'from json | load-env'.

--format dotenv prints KEY=value lines instead, unquoted, for CI systems and
'docker run --env-file' (values with a newline are refused).

--no-proxy also sets NO_PROXY and no_proxy to the current NO_PROXY (else
no_proxy) with the daemon's host added, unless it is already listed, so that
an HTTP proxy does not swallow the Docker API traffic. A NO_PROXY that
separates entries with anything but commas is refused.

Values are quoted for the shell, so a path with spaces, quotes, $() or
backticks is never run by eval. --unset prints the commands that remove the
variables: the Docker CLI treats any non-empty DOCKER_TLS_VERIFY as on, so
unsetting is the only way back to the local socket, and to Docker contexts:
DOCKER_HOST overrides the context ('dtls context create').`,
		Example: `  $ eval "$(dtls env)"
  $ eval "$(dtls env staging)"
  $ dtls env | source                        # fish
  $ eval "` + "`dtls env --shell tcsh`" + `"       # tcsh
  $ dtls env --shell nushell | from json | load-env
  $ dtls env --format dotenv >> "$GITHUB_ENV"
  $ eval "$(dtls env --no-proxy)"
  $ & dtls env --shell powershell | Invoke-Expression
  $ eval "$(dtls env --cert-path ~/bundles/prod)"
  $ eval "$(dtls env --docker-host tcp://localhost:12376)"   # through an SSH tunnel
  $ eval "$(dtls env --unset)"`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(c, "%s: want at most one NAME, got %d arguments", c.CommandPath(), len(args))
			}
			return nil
		},
		ValidArgsFunction: completeBundleNames(io),
		RunE: func(c *cobra.Command, args []string) error {
			sh, err := opts.validate(c, args)
			if err != nil {
				return err
			}
			return runEnv(opts, sh)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.CertPath, "cert-path", "", "bundle directory (default $"+clientenv.EnvCertPath+", else ~/.docker/dtls/default)")
	_ = c.MarkFlagDirname("cert-path")
	f.StringVar(&opts.Shell, "shell", "", "shell syntax: bash, zsh, fish, powershell, cmd, tcsh, nushell (default: the parent shell, else $SHELL)")
	f.StringVar(&opts.Format, "format", "shell", "output format: shell (commands for eval) or dotenv (KEY=value lines)")
	f.BoolVar(&opts.NoProxy, "no-proxy", false, "add the daemon's host to NO_PROXY and no_proxy")
	f.BoolVar(&opts.Unset, "unset", false, "print the commands that unset the variables")
	f.StringVar(&opts.Host, "docker-host", "", "daemon URL, overriding the bundle's (tcp://HOST:PORT)")
	// --host was env's name for it; everywhere else --host names a
	// certificate's host. Kept, hidden, with a notice on stderr (never on
	// the stdout that eval runs).
	f.StringVar(&opts.Host, "host", "", "daemon URL (deprecated: use --docker-host)")
	_ = f.MarkDeprecated("host", "use --docker-host")
	c.MarkFlagsMutuallyExclusive("docker-host", "host")
	c.MarkFlagsMutuallyExclusive("unset", "docker-host")
	c.MarkFlagsMutuallyExclusive("unset", "host")
	c.MarkFlagsMutuallyExclusive("unset", "cert-path")
	c.MarkFlagsMutuallyExclusive("unset", "no-proxy")
	c.MarkFlagsMutuallyExclusive("format", "shell")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"shell", "dotenv"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("shell", completeShells)
	return c
}

func completeShells(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	names := make([]string, len(clientenv.Shells))
	for i, s := range clientenv.Shells {
		names[i] = string(s)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// validate checks the arguments and flags, and picks the shell.
func (o *envOptions) validate(c *cobra.Command, args []string) (clientenv.Shell, error) {
	if len(args) == 1 {
		o.Name = args[0]
		if err := o.validateName(c); err != nil {
			return "", err
		}
	}
	if o.Format != "shell" && o.Format != "dotenv" {
		return "", usagef(c, "--format: unknown format %q (valid: shell, dotenv)", o.Format)
	}
	if o.Format == "dotenv" && o.Unset {
		return "", usagef(c, "--unset has no dotenv form: remove the lines from the file")
	}
	sh, err := o.shell(c)
	if err != nil {
		return "", err
	}
	return sh, o.validateHost(c)
}

// validateHost checks --docker-host (or the deprecated --host).
func (o *envOptions) validateHost(c *cobra.Command) error {
	if o.Host == "" {
		return nil
	}
	flag := "docker-host"
	if c.Flags().Changed("host") {
		flag = "host"
	}
	if err := parseDockerHost(flag, o.Host); err != nil {
		return usageError{err, c.CommandPath()}
	}
	return nil
}

// validateName checks a bundle NAME and the flags it excludes.
func (o *envOptions) validateName(c *cobra.Command) error {
	if err := clientenv.ValidateBundleName(o.Name); err != nil {
		return usageError{err, c.CommandPath()}
	}
	if o.CertPath != "" {
		return usagef(c, "give a bundle NAME or --cert-path, not both")
	}
	if o.Unset {
		return usagef(c, "--unset takes no bundle NAME")
	}
	return nil
}

// shell is --shell, else the shell dtls runs under, else $SHELL; the
// parent is looked up only when it is needed.
func (o *envOptions) shell(c *cobra.Command) (clientenv.Shell, error) {
	if o.Shell != "" {
		sh, err := clientenv.ParseShell(o.Shell)
		if err != nil {
			return "", usagef(c, "--shell: %v", err)
		}
		return sh, nil
	}
	if psh, ok := parentShell(); ok {
		return psh, nil
	}
	return clientenv.DetectShell(o.Getenv("SHELL")), nil
}

func runEnv(o *envOptions, sh clientenv.Shell) error {
	// The usage line repeats the command as run, so that the hint works
	// when pasted (docker-machine env does the same).
	cmdLine := "dtls env"
	if o.Shell != "" {
		cmdLine += " --shell " + string(sh)
	}
	if o.Unset {
		return runEnvUnset(o, sh, cmdLine+" --unset")
	}
	b, cmdLine, err := envBundle(o, cmdLine)
	if err != nil {
		return err
	}
	if o.Host != "" {
		cmdLine += " --docker-host " + shellWord(o.Host)
	} else if b.Meta.DockerHost == "" {
		return withHint(fmt.Errorf("bundle %q records no daemon URL", b.Dir), "pass --docker-host tcp://HOST:2376")
	}
	// dtls.json's not_after: env runs at every shell start and parses
	// no certificate.
	warnExpiry(o.IO, b.Dir, b.Meta.NotAfter, o.Now())
	warnPythonCA(o.IO)
	vars := clientenv.Vars(b, o.Host)
	if o.NoProxy {
		cmdLine += " --no-proxy"
		if vars, err = envNoProxy(o, vars); err != nil {
			return err
		}
	}
	return writeEnv(o, sh, vars, cmdLine)
}

// runEnvUnset prints the commands that unset the variables.
func runEnvUnset(o *envOptions, sh clientenv.Shell, cmdLine string) error {
	var b strings.Builder
	if err := clientenv.WriteUnset(&b, sh, clientenv.VarNames, clientenv.UsageHint(sh, cmdLine)); err != nil {
		return err
	}
	_, err := fmt.Fprint(o.Out, b.String())
	if err == nil {
		fmt.Fprintf(o.ErrOut, "dtls: the Docker CLI now uses the local socket or its current context ('docker context use NAME')\n")
	}
	return err
}

// envBundle loads the bundle NAME, --cert-path or the default names, and
// adds how it was named to the usage line.
func envBundle(o *envOptions, cmdLine string) (*clientenv.Bundle, string, error) {
	dir := o.CertPath
	var err error
	switch {
	case o.Name != "":
		if dir, err = bundleDir(o.IO, o.Name); err != nil {
			return nil, "", err
		}
		cmdLine += " " + o.Name
	case dir != "":
		cmdLine += " --cert-path " + shellWord(o.CertPath)
	default:
		if dir, err = clientenv.CertPath(o.Getenv); err != nil {
			return nil, "", err
		}
	}
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		if o.Name != "" {
			return nil, "", withHint(err, "run 'dtls ls' to see the bundles on this machine")
		}
		return nil, "", withHint(err, "import a bundle from your Docker admin ('dtls import FILE', made by 'dtls issue-client NAME --archive FILE'), or pass --cert-path DIR")
	}
	return b, cmdLine, nil
}

// envNoProxy adds NO_PROXY and no_proxy, with the daemon's host, to vars.
func envNoProxy(o *envOptions, vars []clientenv.Var) ([]clientenv.Var, error) {
	host, err := clientenv.DaemonHost(vars[0].Value)
	if err != nil {
		return nil, err
	}
	cur, name := o.Getenv("NO_PROXY"), "NO_PROXY"
	if cur == "" {
		cur, name = o.Getenv("no_proxy"), "no_proxy"
	}
	merged, err := clientenv.MergeNoProxy(cur, host)
	if err != nil {
		return nil, withHint(fmt.Errorf("$%s: %w", name, err), "fix $%s (e.g. NO_PROXY=localhost,127.0.0.1) and run again", name)
	}
	for _, n := range clientenv.NoProxyVars {
		vars = append(vars, clientenv.Var{Name: n, Value: merged})
	}
	return vars, nil
}

// writeEnv prints vars in the shell's syntax, or as dotenv lines.
func writeEnv(o *envOptions, sh clientenv.Shell, vars []clientenv.Var, cmdLine string) error {
	var out strings.Builder
	var err error
	if o.Format == "dotenv" {
		err = clientenv.WriteDotenv(&out, vars)
	} else {
		err = clientenv.WriteSet(&out, sh, vars, clientenv.UsageHint(sh, cmdLine))
	}
	if err != nil {
		return err
	}
	if _, err = fmt.Fprint(o.Out, out.String()); err != nil {
		return err
	}
	if o.Format == "shell" && (sh == clientenv.Tcsh || sh == clientenv.Nushell) {
		// These outputs carry no usage comment (tcsh has no comments
		// when interactive; nushell's is a JSON record).
		fmt.Fprintf(o.ErrOut, "# Run this command to configure your shell:\n# %s\n", clientenv.UsageHint(sh, cmdLine))
	}
	return nil
}

// parentShell is clientenv.ParentShell, a variable so that in-process tests
// (whose parent is the test runner or a shell) can pin it.
var parentShell = parentShellOS

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
