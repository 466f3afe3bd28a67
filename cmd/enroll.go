package cmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

type enrollOptions struct {
	IO
	URL        string
	Token      fleet.Token
	DockerHost string
	Dir        string
	Name       string
	KeyType    string
	Context    string
	Force      bool
	NoDefault  bool
}

func newEnrollCmd(io IO) *cobra.Command {
	opts := &enrollOptions{IO: io}
	c := &cobra.Command{
		Use:   "enroll URL TOKEN --docker-host tcp://HOST:PORT",
		Short: "Get a client bundle from an online CA with a one-time token",
		Long: `Enroll gets this machine a client certificate from the online CA at URL
('dtls ca serve'), with the one-time TOKEN its operator made ('dtls ca
token --client NAME'), and installs it as a bundle, as 'dtls import' does:
in the bundle store, ~/.docker/dtls (or $DTLS_HOME), as a directory named
after the daemon's host (0700: ca.pem, cert.pem and dtls.json 0644, key.pem
0600), made the default for 'dtls env' (not with --no-default or --dir).

The key is made here and never leaves this machine: only a certificate
request is sent. The token holds the fingerprint of the CA certificate:
a server whose TLS chain does not hold that certificate is refused before
the token is sent. The CA sets the name, role and lifetime (24 hours by
default); dtls.json records its URL, where 'dtls agent' renews the
certificate. --docker-host is the daemon the bundle is for: every daemon
enrolled with the same CA accepts the certificate ('dtls env
--docker-host' or another bundle's context reach the others).

Nothing is written when the CA cannot be reached or refuses the token
(used, expired, another CA's). An existing bundle of the same name is
refused before the token is used, unless --force. The new key is saved
first (0600, next to the bundle, as .NAME.enroll-key.pem) and removed when
the bundle is in place: a run killed while the CA answered is finished by
running it again with the same token.

With --context NAME the Docker context NAME is made (or refreshed) from
the bundle; contexts made from it earlier are refreshed too.`,
		Example: `  $ dtls enroll https://ca.example.com:8443 dtls1.AbC...xyz.5f3e...9a --docker-host tcp://docker1.example.com:2376
  $ eval "$(dtls env)"
  $ dtls enroll https://ca.example.com:8443 "$TOKEN" --docker-host tcp://10.0.0.7:2376 --name staging --context staging --no-default
  $ dtls agent`,
		Args: exactArgs(2, "URL and TOKEN"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(c, args); err != nil {
				return err
			}
			return runEnroll(opts)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.DockerHost, "docker-host", "", "the daemon the bundle is for, tcp://HOST:PORT (required)")
	f.StringVar(&opts.Dir, "dir", "", "write the bundle to this directory instead of the bundle store (not made the default)")
	f.StringVar(&opts.Name, "name", "", "name of the bundle in the store (default: the daemon's host)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.DefaultKeyType), "key algorithm: "+pki.KeyTypeNames())
	f.StringVar(&opts.Context, "context", "", "also make the Docker context NAME from the bundle (refreshed when it exists and was made from it)")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle of the same name (and a context NAME made from something else)")
	f.BoolVar(&opts.NoDefault, "no-default", false, "install without making it the default bundle")
	_ = c.MarkFlagRequired("docker-host")
	_ = c.MarkFlagDirname("dir")
	c.MarkFlagsMutuallyExclusive("dir", "name")
	c.MarkFlagsMutuallyExclusive("dir", "no-default")
	completeKeyTypes(c)
	return c
}

// validate checks the arguments and flags before the token is used.
func (o *enrollOptions) validate(c *cobra.Command, args []string) error {
	var err error
	if o.URL, err = fleet.ParseURL(args[0]); err != nil {
		return usageError{err, c.CommandPath()}
	}
	if o.Token, err = fleet.ParseToken(args[1]); err != nil {
		return usageError{err, c.CommandPath()}
	}
	if _, _, err := clientenv.ParseDockerHost(o.DockerHost); err != nil {
		return usagef(c, "--docker-host: %v (the daemon the bundle is for)", err)
	}
	if _, err := pki.ParseKeyType(o.KeyType); err != nil {
		return usagef(c, "--key-type: %v", err)
	}
	return o.validateNames(c)
}

// validateNames checks --name, --dir and --context.
func (o *enrollOptions) validateNames(c *cobra.Command) error {
	var err error
	if o.Name != "" {
		if err := clientenv.ValidateBundleName(o.Name); err != nil {
			return usagef(c, "--name: %v", err)
		}
	}
	if o.Dir != "" {
		if o.Dir, err = absPath("dir", o.Dir); err != nil {
			return usageError{err, c.CommandPath()}
		}
	}
	if o.Context != "" {
		if err := dockercontext.ValidateName(o.Context); err != nil {
			return usagef(c, "--context: %v", err)
		}
	}
	return nil
}

func runEnroll(o *enrollOptions) error {
	kt, _ := pki.ParseKeyType(o.KeyType)
	dir, name, root, err := enrollTarget(o)
	if err != nil {
		return err
	}
	cfg, cfgErr := dockercontext.ConfigDir(o.Getenv)
	if o.Context != "" {
		// Checked before the token is used.
		if cfgErr != nil {
			return cfgErr
		}
		if err := checkContextFree(cfg, o.Context, dir, o.Force); err != nil {
			return err
		}
	}

	e, err := agent.Enroll(context.Background(), agent.EnrollRequest{
		Dir: dir, Replace: o.Force, CAURL: o.URL, Token: o.Token, DockerHost: o.DockerHost, KeyType: kt, Now: o.Now(),
	})
	if err != nil {
		return enrollError(o, dir, err)
	}
	renderEnrolled(o, e)
	done := fmt.Sprintf("enrolled %q into %s", e.Meta.Name, e.Dir)
	if cfgErr == nil {
		if err := enrollContexts(o, cfg, e, done); err != nil {
			return err
		}
	}
	return enrollDefault(o, root, name, e, done)
}

// enrollTarget is the bundle directory the flags name, and, in the bundle
// store, its name and the store's root ("" with --dir).
func enrollTarget(o *enrollOptions) (dir, name, root string, err error) {
	if o.Dir != "" {
		return o.Dir, o.Name, "", nil
	}
	if root, err = clientenv.StoreRoot(o.Getenv); err != nil {
		return "", "", "", err
	}
	name = o.Name
	if name == "" {
		h, _ := clientenv.DaemonHost(o.DockerHost)
		if name = clientenv.SanitizeBundleName(h); name == "" {
			return "", "", "", withHint(fmt.Errorf("--docker-host %q makes no bundle name", o.DockerHost), "pass --name NAME")
		}
	}
	return filepath.Join(root, name), name, root, nil
}

// enrollError adds to a failed enrolment whether the token was used and
// what to run.
func enrollError(o *enrollOptions, dir string, err error) error {
	var exists *bundle.ExistsError
	var fe *fleet.Error
	switch {
	case errors.As(err, &exists):
		return withHint(err, "the token was not used: pass --force to replace the bundle, or --name to install it under another name")
	case agent.MaySigned(err):
		return withHint(fmt.Errorf("%w: the request reached the CA, its answer did not", err),
			"run the same command again, with the same token: it finishes the enrolment with the key saved next to %s", dir)
	case fleet.Retryable(err):
		return withHint(fmt.Errorf("%w; nothing was changed", err), "run the same command again once the CA answers: the token was not used")
	case errors.As(err, &fe):
		return withHint(fmt.Errorf("the CA at %s refused the enrolment: %w; nothing was changed", o.URL, err), "ask the CA's operator for a new token (dtls ca token --client NAME)")
	}
	return err
}

// renderEnrolled says what the CA issued and where it was written.
func renderEnrolled(o *enrollOptions, e *agent.Enrolled) {
	role := e.Role
	if role == "" {
		role = "(none)"
	}
	resumed := ""
	if e.Resumed {
		resumed = " (finishing an enrolment that was interrupted: the same certificate)"
	}
	fmt.Fprintf(o.ErrOut, "enrolled client %q (role %s) with the CA at %s%s: serial %s, expires %s\n",
		e.Meta.Name, role, o.URL, resumed, e.Meta.Serial, e.Cert.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(o.ErrOut, "wrote bundle %s for %s (key.pem 0600: made here, it never left this machine)\n", e.Dir, o.DockerHost)
	printSuperseded(o.IO, e)
}

// enrollContexts refreshes the docker contexts made from the bundle, and
// makes --context.
func enrollContexts(o *enrollOptions, cfg string, e *agent.Enrolled, done string) error {
	var add []dockercontext.Context
	if o.Context != "" {
		add = append(add, dockercontext.Context{Name: o.Context, Description: "dtls bundle for " + o.DockerHost})
	}
	written, err := dockercontext.Refresh(cfg, bundle.ContextSource(e.Dir, e.Files, e.Meta), add...)
	for _, c := range written {
		fmt.Fprintf(o.ErrOut, "wrote docker context %q (docker --context %s ...)\n", c, c)
	}
	if err != nil {
		return partialError{done: done, step: "writing the docker contexts made from it", err: err,
			run: fmt.Sprintf("dtls context create NAME --bundle %s --force, for each", e.Dir)}
	}
	return nil
}

// enrollDefault makes a bundle of the store the default (not with
// --no-default) and says what to run next.
func enrollDefault(o *enrollOptions, root, name string, e *agent.Enrolled, done string) error {
	env := `eval "$(dtls env)"`
	if root != "" && !o.NoDefault {
		moved, err := clientenv.SetDefault(root, name)
		reportAdopted(o.IO, root, moved)
		if err != nil {
			return partialError{done: done, step: "making it the default", err: err,
				run: fmt.Sprintf("dtls use %s (or use it now: eval \"$(dtls env %s)\")", name, name)}
		}
		fmt.Fprintf(o.ErrOut, "default bundle is now %q\n", name)
	} else if root != "" {
		env = fmt.Sprintf(`eval "$(dtls env %s)"`, name)
	} else {
		env = fmt.Sprintf(`eval "$(dtls env --cert-path %s)"`, e.Dir)
	}
	agentCmd := "dtls agent"
	if root == "" {
		agentCmd = "dtls agent --dir " + e.Dir
	}
	fmt.Fprintf(o.ErrOut, "next:\n  %s   # point docker at %s\n  %s   # renews the certificate (it lasts %s) before it expires; run it as a service: examples/agent\n",
		env, o.DockerHost, agentCmd, fleet.Duration(e.Cert.NotAfter.Sub(o.Now()).Round(time.Minute)))
	return nil
}

// checkContextFree refuses a docker context name that exists and was not
// made from the bundle dir, unless force.
func checkContextFree(cfg, name, dir string, force bool) error {
	ok, err := dockercontext.Exists(cfg, name)
	if err != nil || !ok || force {
		return err
	}
	made, err := dockercontext.MadeFrom(cfg, dockercontext.Resolved(dir))
	if err != nil {
		return err
	}
	if hasContext(made, name) {
		return nil
	}
	return withHint(fmt.Errorf("docker context %q already exists and was not made from %s", name, dir), "the token was not used: pass --force to replace it, or choose another --context")
}

func hasContext(ctxs []dockercontext.Context, name string) bool {
	for _, c := range ctxs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// printSuperseded says which older certificates of the name the CA
// superseded: they stop working, wherever their bundles are.
func printSuperseded(io IO, e *agent.Enrolled) {
	if len(e.Superseded) == 0 {
		return
	}
	fmt.Fprintf(io.ErrOut, "superseded the older certificate(s) of %q at the CA: serial %s (they no longer work; a CA rotation no longer waits for them)\n",
		e.Meta.Name, strings.Join(e.Superseded, ", "))
}
