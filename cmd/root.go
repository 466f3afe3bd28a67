// Package cmd wires dtls's commands with cobra. It parses flags, validates
// them, and calls the library packages (pki, daemonconfig, clientenv); all
// printing and exit codes live here.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/pki"
)

// Exit codes, documented in the root command's help.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// IO is what every command reads and writes; tests swap it.
type IO struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	Now    func() time.Time
	// Getenv reads the environment (path flags' defaults, $SHELL).
	Getenv func(string) string
}

// Main runs dtls with the process's arguments and returns the exit code.
func Main() int {
	return Run(os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Now: time.Now, Getenv: os.Getenv})
}

// Run runs dtls with args and returns the exit code.
func Run(args []string, io IO) int {
	// cfssl logs at info level to stderr through a global logger; keep it
	// quiet so that nothing but our own messages reach the user.
	cflog.Level = cflog.LevelError

	var root *cobra.Command
	if build, ok := commandFor(args); ok {
		root = newBareRootCmd(io)
		root.AddCommand(build(io))
	} else {
		root = newRootCmd(io)
	}
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(io.ErrOut, "dtls: error: %v\n", err)
	var h hinted
	var lh interface{ HintText() string }
	switch {
	case errors.As(err, &h):
		fmt.Fprintf(io.ErrOut, "dtls: hint: %s\n", h.hint)
	case errors.As(err, &lh):
		// A library's error (package authority) with its hint.
		fmt.Fprintf(io.ErrOut, "dtls: hint: %s\n", lh.HintText())
	}
	var u usageError
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own message for a mistyped subcommand.
		u = usageError{err, "dtls"}
		fmt.Fprintf(io.ErrOut, "Run '%s --help' for usage.\n", u.cmd)
		return exitUsage
	}
	if errors.As(err, &u) {
		fmt.Fprintf(io.ErrOut, "Run '%s --help' for usage.\n", u.cmd)
		return exitUsage
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFailure
}

// usageError marks errors in the command line itself: exit code 2.
type usageError struct {
	err error
	cmd string
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(c *cobra.Command, format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...), c.CommandPath()}
}

// hinted carries the command that fixes an error (age's errorWithHint).
type hinted struct {
	err  error
	hint string
}

func (e hinted) Error() string { return e.err.Error() }
func (e hinted) Unwrap() error { return e.err }

func withHint(err error, format string, a ...any) error {
	return hinted{err, fmt.Sprintf(format, a...)}
}

// commandFor returns the builder of the subcommand args name, when args
// name one directly; help, completion and anything else get the whole tree.
func commandFor(args []string) (func(IO) *cobra.Command, bool) {
	if len(args) == 0 {
		return nil, false
	}
	build, ok := commands[args[0]]
	return build, ok
}

// newRootCmd is dtls with every subcommand.
func newRootCmd(io IO) *cobra.Command {
	root := newBareRootCmd(io)
	for _, name := range commandOrder {
		root.AddCommand(commands[name](io))
	}
	return root
}

// newBareRootCmd is the root command without subcommands.
func newBareRootCmd(io IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "dtls",
		Short: "Mutual TLS for the Docker daemon, done right",
		Long: `dtls exposes a Docker daemon over TCP the safe way: mutual TLS with a
private CA, one client certificate per person, and tlsverify on.

Anyone who can reach dockerd's API is root on the host. dtls makes the CA,
the server certificate for this host's names and addresses, merges the TLS
settings into daemon.json without losing anything in it, and issues a client
bundle per developer that 'dtls env' turns into DOCKER_HOST,
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.

Exit codes:
  0  success
  1  failure (the error says what and where; nothing was changed)
  2  usage error (bad flag, argument or value)
  3  audit found a FAIL
  4  check: the daemon cannot be used with the bundle; inspect: a problem found`,
		Example: `  # On the Docker host
  $ sudo dtls init
  $ sudo dtls issue-client alice --archive alice.tar.gz

  # On alice's machine, with alice.tar.gz sent to her privately
  $ dtls import alice.tar.gz
  $ eval "$(dtls env)"
  $ docker version

  # Later, on the Docker host
  $ sudo dtls list --expiring 30d
  $ sudo dtls revoke bob
  $ sudo dtls audit`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err, c.CommandPath()}
	})
	// cobra checks required flags and flag groups itself, after the
	// pre-run hooks, and returns plain errors that would exit 1: check them
	// first, as usage errors.
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if err := c.ValidateRequiredFlags(); err != nil {
			return usageError{err, c.CommandPath()}
		}
		if err := c.ValidateFlagGroups(); err != nil {
			return usageError{err, c.CommandPath()}
		}
		return nil
	}
	return root
}

// commands builds each subcommand. Run builds only the one it is asked for:
// `dtls env` runs at every shell start, and building the whole tree (help
// texts, flags, completions of sixteen commands) would be work it never
// uses.
var commands = map[string]func(IO) *cobra.Command{
	"init":         newInitCmd,
	"issue-client": newIssueClientCmd,
	"issue-server": newIssueServerCmd,
	"list":         newListCmd,
	"renew":        newRenewCmd,
	"revoke":       newRevokeCmd,
	"rotate-ca":    newRotateCACmd,
	"crl":          newCRLCmd,
	"env":          newEnvCmd,
	"version":      newVersionCmd,
	"audit":        newAuditCmd,
	"import":       newImportCmd,
	"ls":           newLsCmd,
	"use":          newUseCmd,
	"context":      newContextCmd,
	"role":         newRoleCmd,
	"authz":        newAuthzCmd,
	"check":        newCheckCmd,
	"inspect":      newInspectCmd,
}

var commandOrder = []string{"init", "issue-client", "issue-server", "list", "renew", "revoke", "crl", "rotate-ca",
	"role", "authz", "env", "version", "audit", "import", "ls", "use", "context", "check", "inspect"}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(c, "%s: want %s, got %d arguments", c.CommandPath(), what, len(args))
		}
		return nil
	}
}

// pathFlag defines a path flag whose default comes from an environment
// variable when it is set, so that tests and non-root users never need /etc.
func pathFlag(c *cobra.Command, io IO, p *string, name, env, def, usage string) {
	if v := io.Getenv(env); v != "" {
		def = v
	}
	c.Flags().StringVar(p, name, def, fmt.Sprintf("%s (env %s)", usage, env))
	_ = c.MarkFlagDirname(name)
}

// completeKeyTypes completes --key-type with pki.KeyTypes.
func completeKeyTypes(c *cobra.Command) {
	// "name\tdescription": shells that show descriptions (zsh, fish)
	// show the key type table's help.
	names := make([]string, len(pki.KeyTypes))
	for i, k := range pki.KeyTypes {
		names[i] = string(k) + "\t" + k.Help()
	}
	_ = c.RegisterFlagCompletionFunc("key-type", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

// completeOutput completes --output with the formats every listing takes.
func completeOutput(c *cobra.Command) {
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}
