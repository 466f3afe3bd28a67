package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

type roleOptions struct {
	IO
	Name     string
	Role     string
	Reset    bool
	StateDir string
	Policy   string
	plugin   pluginOptions
	// UnixUser and UnixGroup name a local account or group of the
	// gateway's local socket, whose role the policy file holds.
	UnixUser, UnixGroup string
}

func newRoleCmd(io IO) *cobra.Command {
	opts := &roleOptions{IO: io}
	c := &cobra.Command{
		Use:   "role {NAME | --unix-user USER | --unix-group GROUP} [ROLE]",
		Short: "Show or change a client's or a local account's authorization role, without a new certificate",
		Long: `Role shows the authorization role recorded for NAME, or sets it to ROLE.
The authorization plugin ('dtls authz serve') applies a change from the
next API call on: no new certificate, no restart of dockerd.

ROLE must be defined by the policy (--policy; the built-in policy has
admin, developer and readonly, and proxy, updater and ci-runner for
per-container sockets). --reset removes NAME's role: the policy's
default role applies.

--unix-user USER and --unix-group GROUP show or set the role of a local
account or group on the gateway's local socket (/run/dtls/docker.sock):
these are the policy file's unix_users and unix_groups, which the running
gateway reloads within a second. The file is rewritten whole (indented),
its other members kept; a missing one is created. --reset takes the entry
out: an account with no role there, by name or by group, is denied.`,
		Example: `  $ sudo dtls role alice
  $ sudo dtls role alice developer
  $ sudo dtls role alice --reset
  $ sudo dtls role --unix-user alice developer
  $ sudo dtls role --unix-group devs readonly`,
		Args: func(c *cobra.Command, args []string) error { return opts.checkArgs(c, args) },
		RunE: func(c *cobra.Command, args []string) error {
			if opts.UnixUser != "" || opts.UnixGroup != "" {
				if len(args) == 1 {
					opts.Role = args[0]
				}
				return runRoleUnix(opts)
			}
			opts.Name = args[0]
			if len(args) == 2 {
				opts.Role = args[1]
				if err := checkRole(opts.Policy, opts.Role); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runRole(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	policyFlag(c, io, &opts.Policy)
	c.Flags().BoolVar(&opts.Reset, "reset", false, "remove NAME's role: the policy's default role applies")
	c.Flags().StringVar(&opts.UnixUser, "unix-user", "", "a local account of the gateway's local socket (the policy's unix_users)")
	c.Flags().StringVar(&opts.UnixGroup, "unix-group", "", "a local group of the gateway's local socket (the policy's unix_groups)")
	c.MarkFlagsMutuallyExclusive("unix-user", "unix-group")
	opts.plugin.flags(c, io)
	return c
}

// checkArgs: NAME [ROLE], or [ROLE] with --unix-user or --unix-group;
// --reset takes no ROLE.
func (o *roleOptions) checkArgs(c *cobra.Command, args []string) error {
	lo, hi, want := 1, 2, "NAME [ROLE]"
	if o.UnixUser != "" || o.UnixGroup != "" {
		lo, hi, want = 0, 1, "[ROLE] after --unix-user USER or --unix-group GROUP"
	}
	if len(args) < lo || len(args) > hi {
		return usagef(c, "%s: want %s", c.CommandPath(), want)
	}
	if o.Reset && len(args) == hi {
		return usagef(c, "%s: --reset takes no ROLE", c.CommandPath())
	}
	return nil
}

// runRoleUnix shows or sets a local account's or group's role in the
// policy file.
func runRoleUnix(o *roleOptions) error {
	name, group, what := o.UnixUser, false, "unix user"
	if o.UnixGroup != "" {
		name, group, what = o.UnixGroup, true, "unix group"
	}
	if o.Role == "" && !o.Reset {
		p, err := loadPolicy(o.Policy)
		if err != nil {
			return err
		}
		fmt.Fprintln(o.Out, p.LocalRoleOf(group, name))
		return nil
	}
	old, err := authz.SetLocalRole(o.Policy, group, name, o.Role)
	if err != nil {
		return err
	}
	was := "had none"
	if old != "" {
		was = "was " + old
	}
	if o.Reset {
		fmt.Fprintf(o.ErrOut, "%s %s has no role of its own in %s from the next API call on the local socket (%s)\n", what, name, o.Policy, was)
		return nil
	}
	fmt.Fprintf(o.ErrOut, "%s %s has role %s on the local socket from the next API call on (%s; %s)\n", what, name, o.Role, o.Policy, was)
	return nil
}

// describeRoleOf names a role in a sentence: "" is the policy's default.
func describeRoleOf(role string) string {
	if role == "" {
		return "the policy's default role"
	}
	return "role " + role
}

func runRole(o *roleOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	if o.Role == "" && !o.Reset {
		role, err := a.Role(o.Name)
		if err != nil {
			return err
		}
		if role == "" {
			role = "(default)"
		}
		fmt.Fprintln(o.Out, role)
		return nil
	}
	c, err := a.SetRole(o.Name, o.Role, o.Now())
	if err != nil {
		return err
	}
	held := "it holds no good client certificate"
	if len(c.Serials) > 0 {
		held = "certificates serial " + strings.Join(c.Serials, ", serial ")
	} else if c.From == c.To {
		held = "unchanged"
	}
	fmt.Fprintf(o.ErrOut, "%s has %s from the next API call on (%s)\n", o.Name, describeRoleOf(c.To), held)
	if !o.Reset {
		o.plugin.warnRoleNotEnforced(o.IO, []string{o.Name}, o.Role)
	}
	return nil
}
