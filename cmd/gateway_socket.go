package cmd

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
)

// localOptions are the gateway's own unix sockets.
type localOptions struct {
	LocalSocket string
	SocketsDir  string
}

func localFlags(c *cobra.Command, io IO, o *localOptions, serve bool) {
	if serve {
		c.Flags().StringVar(&o.LocalSocket, "local-socket", gateway.DefaultLocalSocket,
			"unix socket for the host's accounts, known by their peer credentials (\"\" for none)")
	}
	pathFlag(c, io, &o.SocketsDir, "sockets-dir", "DTLS_SOCKETS_DIR", gateway.DefaultSocketsDir, "directory of the per-container sockets")
}

func (o *localOptions) validate() error {
	if o.LocalSocket != "" && !filepath.IsAbs(o.LocalSocket) {
		return fmt.Errorf("--local-socket: want an absolute path, got %q", o.LocalSocket)
	}
	a, err := absPath("sockets-dir", o.SocketsDir)
	o.SocketsDir = a
	return err
}

type gatewaySocketOptions struct {
	IO
	localOptions
	Name, Role, StateDir, Policy string
}

func (o *gatewaySocketOptions) book() string {
	return filepath.Join(o.StateDir, gateway.SocketsFileName)
}

func (o *gatewaySocketOptions) flags(c *cobra.Command, io IO) {
	pathFlag(c, io, &o.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the gateway's book of sockets")
	localFlags(c, io, &o.localOptions, false)
}

func (o *gatewaySocketOptions) validate() error {
	if err := o.localOptions.validate(); err != nil {
		return err
	}
	a, err := absPath("state-dir", o.StateDir)
	o.StateDir = a
	return err
}

func newGatewaySocketCmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "socket",
		Short: "Per-container sockets: a container gets a role instead of dockerd's socket",
		Long: `A per-container socket is a unix socket of the gateway's,
--sockets-dir/NAME.sock (/run/dtls/sockets/NAME.sock), whose every caller
is "socket:NAME" with the socket's role, whoever it is: a container
mounts it where it would have mounted /var/run/docker.sock, and gets that
role and nothing more, with each call in the audit log under its name.

The sockets are listed in --state-dir/gateway-sockets.json (0600, written
whole); the running gateway follows it within a second: a socket added is
made (mode 0666, for any uid in the container; its directory is 0700, so
that no host account reaches it), one removed is closed and its open
connections cut. A socket file is bound to the gateway's process: when the
gateway restarts, restart the containers that mount one.

  dtls gateway socket add NAME --role ROLE
  dtls gateway socket ls
  dtls gateway socket rm NAME`,
	}
	c.AddCommand(newGatewaySocketAddCmd(io), newGatewaySocketLsCmd(io), newGatewaySocketRmCmd(io))
	return c
}

func newGatewaySocketAddCmd(io IO) *cobra.Command {
	opts := &gatewaySocketOptions{IO: io}
	c := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Add a per-container socket with a role, or change its role",
		Long: `Add puts NAME in the gateway's book with ROLE (one the policy defines);
the gateway makes --sockets-dir/NAME.sock within a second. For a NAME
that exists, its role becomes ROLE from the next request on. NAME is
letters, digits, '-', '_' and '.'. The -v flag that mounts the socket
is printed on stdout.

Built-in roles for the usual tenants, each checked against the calls its
tool makes (the README's "Local users and containers" lists them):
  proxy      a reverse proxy (traefik, docker-gen): reads containers,
             their labels and events; writes nothing
  updater    an updater (watchtower): pulls, and replaces a container only
             when it could create it as it is (never a privileged one)
  ci-runner  a CI runner (gitlab-runner's docker executor): developer with
             the build capability, on the containers it created`,
		Example: `  $ sudo dtls gateway socket add traefik --role proxy
  -v /run/dtls/sockets/traefik.sock:/var/run/docker.sock
  $ docker run -d -v /run/dtls/sockets/traefik.sock:/var/run/docker.sock traefik:v3
  $ sudo dtls gateway socket add watchtower --role updater
  $ sudo dtls gateway socket add runner --role ci-runner`,
		Args: exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := gateway.ValidateSocketName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if err := opts.validate(); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if err := checkRole(opts.Policy, opts.Role); err != nil {
				return usageError{fmt.Errorf("--role: %w", err), c.CommandPath()}
			}
			return runGatewaySocketAdd(opts)
		},
	}
	opts.flags(c, io)
	policyFlag(c, io, &opts.Policy)
	c.Flags().StringVar(&opts.Role, "role", "", "the role of every caller of the socket")
	_ = c.MarkFlagRequired("role")
	return c
}

func runGatewaySocketAdd(o *gatewaySocketOptions) error {
	old, err := gateway.AddSocket(o.book(), gateway.ContainerSocket{Name: o.Name, Role: o.Role, Added: o.Now().UTC()})
	if err != nil {
		return err
	}
	path := gateway.SocketPath(o.SocketsDir, o.Name)
	switch old {
	case "":
		fmt.Fprintf(o.ErrOut, "socket %s: %s, every caller is socket:%s with role %s (the gateway makes it within a second)\n", o.Name, path, o.Name, o.Role)
	case o.Role:
		fmt.Fprintf(o.ErrOut, "socket %s: %s, role %s (unchanged)\n", o.Name, path, o.Role)
	default:
		fmt.Fprintf(o.ErrOut, "socket %s: %s, role %s from the next request on (was %s)\n", o.Name, path, o.Role, old)
	}
	fmt.Fprintf(o.Out, "-v %s:/var/run/docker.sock\n", path)
	return nil
}

func newGatewaySocketLsCmd(io IO) *cobra.Command {
	opts := &gatewaySocketOptions{IO: io}
	c := &cobra.Command{
		Use:     "ls",
		Short:   "List the per-container sockets",
		Long:    `Ls lists the gateway's book of sockets: name, role, path, when added.`,
		Example: `  $ sudo dtls gateway socket ls`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runGatewaySocketLs(opts)
		},
	}
	opts.flags(c, io)
	return c
}

func runGatewaySocketLs(o *gatewaySocketOptions) error {
	list, err := gateway.ReadSockets(o.book())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSOCKET\tADDED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Role, gateway.SocketPath(o.SocketsDir, s.Name), s.Added.UTC().Format("2006-01-02 15:04:05Z"))
	}
	return tw.Flush()
}

func newGatewaySocketRmCmd(io IO) *cobra.Command {
	opts := &gatewaySocketOptions{IO: io}
	c := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a per-container socket",
		Long: `Rm takes NAME out of the gateway's book: the gateway closes the socket,
removes its file and cuts its open connections within a second.`,
		Example: `  $ sudo dtls gateway socket rm traefik`,
		Args:    exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := gateway.ValidateSocketName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if err := opts.validate(); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runGatewaySocketRm(opts)
		},
	}
	opts.flags(c, io)
	return c
}

func runGatewaySocketRm(o *gatewaySocketOptions) error {
	s, err := gateway.RemoveSocket(o.book(), o.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "socket %s (role %s) removed: the gateway closes %s within a second\n", s.Name, s.Role, gateway.SocketPath(o.SocketsDir, s.Name))
	return nil
}
