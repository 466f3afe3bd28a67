package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

type roleOptions struct {
	IO
	Name     string
	Role     string
	Reset    bool
	StateDir string
	Policy   string
	plugin   pluginOptions
}

func newRoleCmd(io IO) *cobra.Command {
	opts := &roleOptions{IO: io}
	c := &cobra.Command{
		Use:   "role NAME [ROLE]",
		Short: "Show or change a client's authorization role, without a new certificate",
		Long: `Role shows the authorization role recorded for NAME, or sets it to ROLE.
The authorization plugin ('dtls authz serve') applies a change from the
next API call on: no new certificate, no restart of dockerd.

ROLE must be defined by the policy (--policy; the built-in policy has
admin, developer and readonly). --reset removes NAME's role: the policy's
default role applies.`,
		Example: `  $ sudo dtls role alice
  $ sudo dtls role alice developer
  $ sudo dtls role alice --reset`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef(c, "%s: want NAME [ROLE]", c.CommandPath())
			}
			if opts.Reset && len(args) == 2 {
				return usagef(c, "%s: --reset takes no ROLE", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
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
	opts.plugin.flags(c, io)
	return c
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
