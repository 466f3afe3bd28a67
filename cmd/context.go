package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
)

func newContextCmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "context",
		Short: "Make Docker CLI contexts from bundles",
		Long: `Context turns a bundle into a Docker CLI context, the modern alternative to
'dtls env': 'docker --context NAME ...' or 'docker context use NAME'.

DOCKER_HOST, when set (for instance by 'dtls env'), overrides every
context: run 'eval "$(dtls env --unset)"' when you switch to contexts.`,
		Args: exactArgs(0, "a subcommand"),
		RunE: func(c *cobra.Command, args []string) error { return c.Help() },
	}
	c.AddCommand(newContextCreateCmd(io), newContextExportCmd(io))
	return c
}

type contextOptions struct {
	IO
	Name        string
	Bundle      string
	File        string
	Description string
	Force       bool
}

func newContextCreateCmd(io IO) *cobra.Command {
	opts := &contextOptions{IO: io}
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a Docker context from a bundle",
		Long: `Create writes the Docker context NAME into the Docker CLI's context store
($DOCKER_CONFIG, else ~/.docker: contexts/meta/<sha256 of NAME>/meta.json and
contexts/tls/<sha256 of NAME>/docker/{ca,cert,key}.pem; directories 0700,
key 0600), with the daemon URL and TLS files of a bundle: --bundle, else
the bundle called NAME in the store, else (with neither) the default bundle.

An existing context NAME is kept unless --force. The Docker CLI need not be
installed.`,
		Example: `  $ dtls context create prod
  $ docker --context prod version
  $ docker context use prod`,
		Args:              exactArgs(1, "one NAME"),
		ValidArgsFunction: completeBundleNames(io),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := dockercontext.ValidateName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runContextCreate(opts)
		},
	}
	contextFlags(c, io, opts)
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing context of the same name")
	return c
}

func newContextExportCmd(io IO) *cobra.Command {
	opts := &contextOptions{IO: io}
	c := &cobra.Command{
		Use:   "export NAME FILE",
		Short: "Write a .dockercontext file that 'docker context import' accepts",
		Long: `Export writes the Docker context NAME for a bundle (chosen as for 'dtls
context create') to FILE, in the format of 'docker context export' (a tar of
meta.json and tls/docker/{ca,cert,key}.pem), mode 0600, atomically; "-"
writes to standard output. Import it on another machine with
'docker context import NAME FILE'. The file holds the private key.

An existing FILE is kept unless --force.`,
		Example: `  $ dtls context export prod prod.dockercontext
  $ docker context import prod prod.dockercontext`,
		Args: exactArgs(2, "NAME and FILE"),
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return bundleNames(io, toComplete), cobra.ShellCompDirectiveNoFileComp
			}
			if len(args) == 1 {
				return []string{"dockercontext"}, cobra.ShellCompDirectiveFilterFileExt
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name, opts.File = args[0], args[1]
			if err := dockercontext.ValidateName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runContextExport(opts)
		},
	}
	contextFlags(c, io, opts)
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing FILE")
	return c
}

func contextFlags(c *cobra.Command, io IO, opts *contextOptions) {
	f := c.Flags()
	f.StringVar(&opts.Bundle, "bundle", "", "bundle in the store to use, or a bundle directory (default: NAME, else the default bundle)")
	f.StringVar(&opts.Description, "description", "", "context description (default: dtls bundle for DOCKER_HOST)")
	_ = c.RegisterFlagCompletionFunc("bundle", func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return bundleNames(io, toComplete), cobra.ShellCompDirectiveDefault
	})
}

// contextFor loads the bundle for a context command and reads its files.
func contextFor(o *contextOptions) (dockercontext.Context, error) {
	dir, fallback, err := contextBundleDir(o)
	if err != nil {
		return dockercontext.Context{}, err
	}
	b, err := clientenv.LoadBundle(dir)
	if err != nil {
		return dockercontext.Context{}, withHint(err, "run 'dtls ls' to see the bundles, or pass --bundle NAME|DIR")
	}
	if b.Meta.DockerHost == "" {
		return dockercontext.Context{}, fmt.Errorf("bundle %q records no daemon URL", b.Dir)
	}
	if fallback {
		// A mistyped NAME must not pass silently for another server.
		fmt.Fprintf(o.ErrOut, "dtls: no bundle named %q: using the default bundle %s (%s); pass --bundle to choose\n", o.Name, b.Dir, b.Meta.DockerHost)
	}
	// The bundle as it resolves (not through the default link), so that
	// import finds the contexts to refresh when it renews this bundle.
	id, err := bundle.LoadIdentity(b.Dir)
	if err != nil {
		return dockercontext.Context{}, err
	}
	ctx := dockercontext.Context{Name: o.Name, Host: b.Meta.DockerHost, Description: o.Description,
		Bundle: dockercontext.Resolved(b.Dir), CA: id.CAPEM, Cert: id.CertPEM, Key: id.KeyPEM}
	if ctx.Description == "" {
		ctx.Description = "dtls bundle for " + b.Meta.DockerHost
	}
	return ctx, nil
}

// contextBundleDir is the bundle of a context command: --bundle (a name in
// the store or a directory), else the bundle NAME, else the default one
// (fallback).
func contextBundleDir(o *contextOptions) (dir string, fallback bool, err error) {
	switch {
	case o.Bundle != "" && clientenv.ValidateBundleName(o.Bundle) != nil:
		return o.Bundle, false, nil // a directory path
	case o.Bundle != "":
		dir, err = bundleDir(o.IO, o.Bundle)
		return dir, false, err
	}
	if dir, err = bundleDir(o.IO, o.Name); err == nil {
		if _, serr := os.Stat(dir); serr == nil {
			return dir, false, nil
		}
	}
	dir, err = bundleDir(o.IO, "")
	return dir, true, err
}

func runContextCreate(o *contextOptions) error {
	ctx, err := contextFor(o)
	if err != nil {
		return err
	}
	cfg, err := dockercontext.ConfigDir(o.Getenv)
	if err != nil {
		return err
	}
	err = dockercontext.Create(cfg, ctx, o.Force)
	var exists *dockercontext.ExistsError
	if errors.As(err, &exists) {
		return withHint(err, "pass --force to replace it, or choose another NAME")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "created docker context %q for %s in %s\n", ctx.Name, ctx.Host, cfg)
	fmt.Fprintf(o.ErrOut, "use it with: docker --context %s version   (or: docker context use %s)\n", ctx.Name, ctx.Name)
	warnBundleExpiry(o.IO, ctx.Bundle)
	warnDockerHost(o.IO)
	return nil
}

func runContextExport(o *contextOptions) error {
	ctx, err := contextFor(o)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := dockercontext.Export(&buf, ctx); err != nil {
		return err
	}
	if o.File == "-" {
		_, err := o.Out.Write(buf.Bytes())
		return err
	}
	if _, err := os.Lstat(o.File); err == nil && !o.Force {
		return withHint(fmt.Errorf("file %q already exists", o.File), "pass --force to replace it")
	}
	if err := atomicfile.Write(o.File, buf.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "wrote docker context %q for %s to %s (it holds the private key)\n", ctx.Name, ctx.Host, o.File)
	fmt.Fprintf(o.ErrOut, "import it with: docker context import %s %s\n", ctx.Name, o.File)
	return nil
}

// warnDockerHost says that DOCKER_HOST overrides contexts, which is the
// first thing that goes wrong after switching from 'dtls env' to contexts.
func warnDockerHost(io IO) {
	if io.Getenv("DOCKER_HOST") != "" {
		fmt.Fprintf(io.ErrOut, "dtls: warning: DOCKER_HOST is set and overrides every context; run: eval \"$(dtls env --unset)\"\n")
	}
}
