package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

type issueClientOptions struct {
	IO
	Names      []string
	StateDir   string
	Out        string
	DockerHost string
	KeyType    string
	Validity   time.Duration
	Force      bool
	Archive    string
	Role       string
	ChangeRole bool
	Policy     string
	Container  bool
	caKey      caKeyOptions
	plugin     pluginOptions
}

func newIssueClientCmd(io IO) *cobra.Command {
	opts := &issueClientOptions{IO: io}
	c := &cobra.Command{
		Use:   "issue-client NAME...",
		Short: "Issue client certificate bundles, one per person or CI job",
		Long: `Issue-client signs a client certificate for each NAME with the CA made by
'dtls init' and writes a bundle directory (0700) per name:

  ca.pem      the CA certificate, to verify the daemon (0444)
  cert.pem    the client certificate, CN=NAME, extended key usage clientAuth only (0444)
  key.pem     its private key (0400)
  dtls.json   the daemon URL and expiry, read by 'dtls env' (0644)

With --archive FILE and no --out, the bundle is written only into FILE
(0600, for 'dtls import'): no directory is left behind with the key.

These are the file names the Docker CLI reads from DOCKER_CERT_PATH. The
bundle is written to a temporary directory and renamed into place, so it is
either complete or absent. An existing bundle is kept unless --force.

With one NAME, --out is the bundle directory (default ./dtls-NAME); with
several, --out is the directory that receives one bundle per NAME
(default: ./dtls-NAME each). Every certificate is recorded in the state
directory's database (see 'dtls list'); a run that is interrupted leaves no
record without its bundle and no half-written bundle.

NAME is the certificate's common name: letters, digits, '.', '_', '@', '-'.
Give each person their own: a shared certificate cannot be taken back from
one of them.

--role records the holder's role for the authorization plugin ('dtls authz
serve'): a built-in role (admin, developer, readonly; proxy, updater,
ci-runner) or a role of the policy file ('dtls authz roles' lists them).
Without it the policy's default role applies (readonly with the built-in
policy).
Roles are enforced only where daemon.json names the plugin ('dtls init
--authz'): without it, issue-client warns that every certificate has full
access.
'dtls role NAME ROLE' changes it later without a new certificate. The role
is recorded per name, for all of NAME's certificates: --role for a NAME
that holds a good certificate with another role is refused (it would
change that one too), unless --change-role.

--for-container makes a bundle for a container that needs the Docker API (a
CI runner, a reverse proxy reading labels), instead of mounting
/var/run/docker.sock, which is root on the host: it prints the docker run
flags that mount the bundle read-only and point the Docker client at it.
Give such a bundle a limited role.`,
		Example: `  $ sudo dtls issue-client alice
  $ sudo dtls issue-client ci-runner --days 30 --out /root/bundles/ci-runner
  $ sudo dtls issue-client bob --docker-host tcp://docker.example.com:2376
  $ sudo dtls issue-client carol dave erin --out /root/bundles
  $ sudo dtls issue-client dave --role developer
  $ sudo dtls issue-client traefik --role readonly --for-container --out /srv/dtls/traefik`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(c, "%s: want at least one NAME", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(c, args); err != nil {
				return err
			}
			return runIssueClient(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA made by 'dtls init'")
	pathFlag(c, io, &opts.Out, "out", "DTLS_OUT", "", "bundle directory to write (default ./dtls-NAME); with several NAMEs, the parent of their bundles")
	f.StringVar(&opts.DockerHost, "docker-host", "", "daemon URL recorded in the bundle (default: the one 'dtls init' chose)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.DefaultKeyType), "key algorithm of the client key: "+pki.KeyTypeNames())
	completeKeyTypes(c)
	daysFlag(c, &opts.Validity, "days", pki.DefaultClientValidity, "validity of the client certificate")
	f.StringVar(&opts.Archive, "archive", "", "write the bundle as one tar.gz FILE (0600) for 'dtls import' on the developer's machine, and no directory unless --out; \"-\" for standard output")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle directory")
	f.StringVar(&opts.Role, "role", "", "authorization role recorded for the plugin (admin, developer, readonly, proxy, updater, ci-runner or a policy file's; default: the policy's default role)")
	f.BoolVar(&opts.ChangeRole, "change-role", false, "with --role: also change the role of NAME's certificates already issued (a role is recorded per name)")
	policyFlag(c, io, &opts.Policy)
	f.BoolVar(&opts.Container, "for-container", false, "a bundle for a container, instead of mounting the Docker socket: print the docker run flags that use it")
	opts.caKey.flags(c)
	opts.plugin.flags(c, io)
	return c
}

// validate checks the NAMEs and the flags, and makes the paths absolute.
func (o *issueClientOptions) validate(c *cobra.Command, args []string) error {
	seen := map[string]bool{}
	for _, n := range args {
		if err := pki.ValidateName(n); err != nil {
			return usageError{err, c.CommandPath()}
		}
		if seen[n] {
			return usagef(c, "%s: NAME %q given twice", c.CommandPath(), n)
		}
		seen[n] = true
	}
	o.Names = args
	if _, err := pki.ParseKeyType(o.KeyType); err != nil {
		return usagef(c, "--key-type: %v", err)
	}
	if o.DockerHost != "" {
		if err := parseDockerHost("docker-host", o.DockerHost); err != nil {
			return usageError{err, c.CommandPath()}
		}
	}
	if err := o.validatePaths(c); err != nil {
		return err
	}
	if o.Role != "" {
		if err := checkRole(o.Policy, o.Role); err != nil {
			return usagef(c, "--role: %v", err)
		}
	}
	return o.validateOne(c)
}

// validatePaths makes --out and --state-dir absolute.
func (o *issueClientOptions) validatePaths(c *cobra.Command) error {
	var err error
	if o.Out != "" {
		if o.Out, err = absPath("out", o.Out); err != nil {
			return usageError{err, c.CommandPath()}
		}
	}
	if o.StateDir, err = absPath("state-dir", o.StateDir); err != nil {
		return usageError{err, c.CommandPath()}
	}
	return nil
}

// validateOne checks --for-container and --archive, which take one NAME.
func (o *issueClientOptions) validateOne(c *cobra.Command) error {
	if o.Container && len(o.Names) != 1 {
		return usagef(c, "--for-container takes exactly one NAME")
	}
	if o.Archive == "" {
		return nil
	}
	if len(o.Names) != 1 {
		return usagef(c, "--archive takes exactly one NAME")
	}
	return checkArchiveFlag(c, o.IO, &o.Archive)
}

// checkArchiveFlag checks an --archive FILE and makes it absolute ("-" is
// standard output).
func checkArchiveFlag(c *cobra.Command, io IO, archive *string) error {
	if err := checkArchiveOut(io, *archive); err != nil {
		return usageError{err, c.CommandPath()}
	}
	if *archive == "-" {
		return nil
	}
	a, err := absPath("archive", *archive)
	if err != nil {
		return usageError{err, c.CommandPath()}
	}
	*archive = a
	return nil
}

// bundleDir is where NAME's bundle goes: nowhere but the archive for
// --archive without --out (a bundle left in the current directory would
// be one more copy of the key to clean up).
func (o *issueClientOptions) bundleDir(name string) string {
	switch {
	case o.Out == "" && o.Archive != "" && !o.Container:
		return ""
	case o.Out == "":
		a, _ := filepath.Abs("dtls-" + name)
		return a
	case len(o.Names) == 1:
		return o.Out
	}
	return filepath.Join(o.Out, name)
}

// printIssuedRoles says which role each new certificate has and, where
// issuing it changed the role of its name's other certificates, which.
func printIssuedRoles(io IO, issued []*authority.Issued) {
	for _, it := range issued {
		name := it.Record.Name
		switch {
		case it.RoleChange != nil:
			c := it.RoleChange
			fmt.Fprintf(io.ErrOut, "changed the role of %s from %s to %s: certificates serial %s (issued before) and serial %s (new) have %s from the next API call on\n",
				name, roleName(c.From), roleName(c.To), strings.Join(c.Serials, ", serial "), it.Record.Serial, roleName(c.To))
		case it.Role != "":
			fmt.Fprintf(io.ErrOut, "role of %s: %s\n", name, it.Role)
		}
	}
}

// roleName names a role for a message: "" is the policy's default.
func roleName(role string) string {
	if role == "" {
		return "the policy's default role"
	}
	return role
}

func runIssueClient(o *issueClientOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	kt, _ := pki.ParseKeyType(o.KeyType)
	issued, err := a.IssueClients(authority.ClientRequest{
		Names:      o.Names,
		Dir:        o.bundleDir,
		DockerHost: o.DockerHost,
		KeyType:    kt,
		Validity:   o.Validity,
		Force:      o.Force,
		Archive:    archiveFile(o.Archive),
		Role:       o.Role,
		ChangeRole: o.ChangeRole,
		Now:        o.Now(),
	})
	if err != nil {
		return err
	}
	reportIssued(o, issued)
	if o.Container {
		// The one line an operator pastes: the bundle read-only at the
		// path the Docker client reads (DOCKER_CERT_PATH), the daemon
		// over verified TLS.
		const inside = "/run/secrets/dtls"
		fmt.Fprintf(o.ErrOut, "run the container with these flags (instead of -v /var/run/docker.sock:/var/run/docker.sock):\n")
		fmt.Fprintf(o.IO.Out, "-v %s:%s:ro -e DOCKER_HOST=%s -e DOCKER_TLS_VERIFY=1 -e DOCKER_CERT_PATH=%s\n",
			issued[0].Dir, inside, bundleDockerHost(issued[0]), inside)
		fmt.Fprintf(o.ErrOut, "the key is 0400 root: a container that runs as another user needs the bundle chowned to it (chown -R UID %s)\n", issued[0].Dir)
		return nil
	}
	if o.Archive == "-" {
		if err := writeArchiveOut(o.IO, o.Archive, issued[0]); err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "next: on %s's machine: dtls import - < FILE && eval \"$(dtls env)\"\n", o.Names[0])
		return nil
	}
	if o.Archive != "" {
		fmt.Fprintf(o.ErrOut, "wrote archive %s (0600) for %s\n", o.Archive, bundleDockerHost(issued[0]))
		fmt.Fprintf(o.ErrOut, "next: send it to %s over a private channel; on their machine: dtls import %s && eval \"$(dtls env)\"\n", o.Names[0], filepath.Base(o.Archive))
		return nil
	}
	// Into the store under its own name, then 'dtls use': the store's
	// "default" is a link that 'dtls import' and 'dtls use' switch.
	if len(issued) == 1 {
		base := filepath.Base(issued[0].Dir)
		fmt.Fprintf(o.ErrOut, "next: copy it into ~/.docker/dtls/ on %s's machine (scp -r %s HOST:.docker/dtls/; it holds the key), then run there: dtls use %s && eval \"$(dtls env)\"\n",
			o.Names[0], issued[0].Dir, base)
	} else {
		fmt.Fprintf(o.ErrOut, "next: copy each bundle into ~/.docker/dtls/ on its owner's machine (scp -r DIR HOST:.docker/dtls/), then run there: dtls use NAME && eval \"$(dtls env)\"\n")
	}
	return nil
}

// reportIssued says what issue-client signed and wrote, and the role it
// recorded.
func reportIssued(o *issueClientOptions, issued []*authority.Issued) {
	for _, it := range issued {
		fmt.Fprintf(o.ErrOut, "issued client certificate %s\n", describeRecord(it.Record))
		if it.Dir != "" {
			fmt.Fprintf(o.ErrOut, "wrote bundle %s for %s\n", it.Dir, bundleDockerHost(it))
		}
	}
	printIssuedRoles(o.IO, issued)
	if o.Role != "" {
		o.plugin.warnRoleNotEnforced(o.IO, o.Names, o.Role)
	}
}

// bundleDockerHost is the daemon URL written into an issued bundle.
func bundleDockerHost(it *authority.Issued) string {
	for _, f := range it.Files() {
		if f.Name == clientenv.MetaFile {
			var m clientenv.Meta
			if json.Unmarshal(f.Data, &m) == nil {
				return m.DockerHost
			}
		}
	}
	return ""
}

// describeRecord is pki.Describe for a record.
func describeRecord(r store.Record) string {
	if c, err := r.Cert(); err == nil {
		return pki.Describe(c)
	}
	return fmt.Sprintf("%q serial %s", r.Name, r.Serial)
}

// archiveFile is the archive path the authority writes in its change: none
// for "-" (standard output, written by the command once the change is
// made).
func archiveFile(a string) string {
	if a == "-" {
		return ""
	}
	return a
}

// checkArchiveOut refuses --archive - when standard output is a terminal:
// the archive holds a private key.
func checkArchiveOut(io IO, archive string) error {
	if archive != "-" {
		return nil
	}
	if f, ok := io.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return errors.New("--archive -: standard output is a terminal, and the archive holds a private key: redirect it or pipe it to 'dtls import -'")
	}
	return nil
}

// writeArchiveOut writes the bundle of it to standard output for --archive -.
func writeArchiveOut(io IO, archive string, it *authority.Issued) error {
	if archive != "-" {
		return nil
	}
	b, err := bundle.MarshalArchive(it.Files())
	if err != nil {
		return err
	}
	if _, err := io.Out.Write(b); err != nil {
		return fmt.Errorf("write the archive to standard output: %w", err)
	}
	return nil
}
