// Package cmd wires dtls's commands with cobra. It parses flags, validates
// them, and calls the library packages (pki, daemonconfig, clientenv); all
// printing and exit codes live here.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dtls-tool/dtls/pki"
)

// Exit codes, documented in the root command's help.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitPartial: the command changed something, then a later step
	// failed (restarting docker, switching the default bundle); the error
	// says what was done and what is left to run. 3 and 4 are audit's and
	// check's.
	exitPartial = 5
)

// partialError is the error of a command that made its change and then
// failed a later step: "renewed ...; but restarting docker failed: ...;
// run: sudo systemctl restart docker". Exit code 5.
type partialError struct {
	done string // what was done, e.g. `imported bundle "x" into DIR`
	step string // the step that failed, e.g. "restarting docker"
	err  error
	run  string // the command that does what is left
}

func (e partialError) Error() string {
	msg := fmt.Sprintf("%s; but %s failed: %v", e.done, e.step, e.err)
	if e.run != "" {
		msg += "; run: " + e.run
	}
	return msg
}
func (e partialError) Unwrap() error { return e.err }

// ExitCode is the process exit code for this error.
func (e partialError) ExitCode() int { return exitPartial }

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
	if name, ok := commandFor(args); ok {
		root = newBareRootCmd(io)
		addCommand(root, name, io)
	} else {
		root = newRootCmd(io)
	}
	flagNoticesTo(root, io.ErrOut)
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

// commandFor returns the name of the subcommand args name (directly or by
// an alias), when they name one; help, completion and anything else get
// the whole tree.
func commandFor(args []string) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	name := args[0]
	if n, ok := commandAliases[name]; ok {
		name = n
	}
	_, ok := commands[name]
	return name, ok
}

// newRootCmd is dtls with every subcommand.
func newRootCmd(io IO) *cobra.Command {
	root := newBareRootCmd(io)
	for _, name := range commandOrder {
		addCommand(root, name, io)
	}
	// dtls --version, as 'dtls version' prints it. Only in the whole tree:
	// a subcommand's run never needs the build information.
	v, cm, d := buildInfo()
	root.Version = v
	root.SetVersionTemplate(fmt.Sprintf("dtls {{.Version}} (commit %s, built %s, %s %s/%s)\n", cm, d, runtime.Version(), runtime.GOOS, runtime.GOARCH))
	return root
}

// addCommand builds the subcommand name and adds it to root, in its group
// of 'dtls --help'.
func addCommand(root *cobra.Command, name string, io IO) {
	c := commands[name](io)
	c.GroupID = commandGroups[name]
	root.AddCommand(c)
}

// flagNoticesTo sends pflag's notices (a deprecated flag's "Flag --host
// has been deprecated, ...") to w for every command. cobra would print
// them with the command's output writer, stdout, which 'eval "$(dtls
// env)"' runs.
func flagNoticesTo(c *cobra.Command, w io.Writer) {
	c.Flags().SetOutput(w)
	for _, sub := range c.Commands() {
		flagNoticesTo(sub, w)
	}
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
  4  check: the daemon cannot be used with the bundle; inspect: a problem found
  5  done, but a later step failed (restarting docker, making an imported
     bundle the default): the error says what was changed and what to run`,
		Example: `  # On the Docker host
  $ sudo dtls init
  $ sudo dtls issue-client alice --archive alice.tar.gz

  # On alice's machine, with alice.tar.gz sent to her privately
  $ dtls import alice.tar.gz
  $ eval "$(dtls env)"
  $ docker version

  # Later, on the Docker host
  $ sudo dtls certs --expiring 30d
  $ sudo dtls revoke bob
  $ sudo dtls audit`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	// Two machines, two sets of commands: 'dtls --help' says which is
	// which ('certs' lists the CA's inventory on the Docker host,
	// 'bundles' the bundles on a laptop).
	root.AddGroup(
		&cobra.Group{ID: groupHost, Title: "Docker host commands (as root, where the CA is):"},
		&cobra.Group{ID: groupLaptop, Title: "Laptop commands (where docker runs as a client):"},
	)
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
	"certs":        newListCmd,
	"renew":        newRenewCmd,
	"revoke":       newRevokeCmd,
	"rotate-ca":    newRotateCACmd,
	"crl":          newCRLCmd,
	"env":          newEnvCmd,
	"version":      newVersionCmd,
	"audit":        newAuditCmd,
	"import":       newImportCmd,
	"bundles":      newLsCmd,
	"use":          newUseCmd,
	"context":      newContextCmd,
	"role":         newRoleCmd,
	"authz":        newAuthzCmd,
	"gateway":      newGatewayCmd,
	"sessions":     newSessionsCmd,
	"check":        newCheckCmd,
	"inspect":      newInspectCmd,
	"ca":           newCACmd,
	"enroll":       newEnrollCmd,
	"agent":        newAgentCmd,
}

var commandOrder = []string{"init", "issue-client", "issue-server", "certs", "renew", "revoke", "crl", "rotate-ca",
	"role", "authz", "gateway", "sessions", "env", "version", "audit", "import", "bundles", "use", "context", "check", "inspect", "ca", "enroll", "agent"}

// commandAliases are the other names of commands (each command's Aliases),
// so that Run finds the one command to build: 'list' and 'ls' are what
// users typed before the commands were named for what they list.
var commandAliases = map[string]string{"list": "certs", "ls": "bundles", "default": "use"}

// The groups of 'dtls --help'.
const (
	groupHost   = "host"
	groupLaptop = "laptop"
)

// commandGroups puts each command in its group; version, help and
// completion are in neither.
var commandGroups = map[string]string{
	"init": groupHost, "issue-client": groupHost, "issue-server": groupHost, "certs": groupHost,
	"renew": groupHost, "revoke": groupHost, "crl": groupHost, "rotate-ca": groupHost,
	"role": groupHost, "authz": groupHost, "gateway": groupHost, "sessions": groupHost, "audit": groupHost, "ca": groupHost,
	"import": groupLaptop, "bundles": groupLaptop, "use": groupLaptop, "env": groupLaptop,
	"context": groupLaptop, "check": groupLaptop, "inspect": groupLaptop, "enroll": groupLaptop, "agent": groupLaptop,
}

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

// commandLine is c's command as the user gave it (its path, then the flags
// set, in --long form), for a hint that repeats it, e.g. with sudo.
func commandLine(c *cobra.Command, args ...string) string {
	words := strings.Fields(c.CommandPath())
	c.Flags().Visit(func(f *pflag.Flag) {
		if f.Deprecated != "" {
			return
		}
		if f.Value.Type() == "bool" {
			if f.Value.String() == "true" {
				words = append(words, "--"+f.Name)
			} else {
				words = append(words, "--"+f.Name+"=false")
			}
			return
		}
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			words = append(words, "--"+f.Name, hintQuote(v))
		}
	})
	for _, a := range args {
		words = append(words, hintQuote(a))
	}
	return strings.Join(words, " ")
}

// hintQuote quotes s for a POSIX shell when it is not a plain word.
func hintQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-:=,@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
