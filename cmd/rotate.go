package cmd

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cafront"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

type rotateOptions struct {
	IO
	StateDir   string
	KeyType    string
	CAValidity time.Duration
	Switch     bool
	Finish     bool
	Status     bool
	Force      bool
	Restart    bool
	op         operatorOptions
	caKey      caKeyOptions
}

func newRotateCACmd(io IO) *cobra.Command {
	opts := &rotateOptions{IO: io}
	c := &cobra.Command{
		Use:   "rotate-ca [--switch | --finish | --status]",
		Short: "Replace the CA in three steps, without cutting off any client",
		Long: `Rotate-ca replaces the CA in three steps. The old CA was made with a path
length of 0 and cannot cross-sign the new one, so a bundle that trusts only
the old CA (a laptop's imported copy, a Docker context) cannot verify a
server certificate of the new CA: the daemon switches to one only once
every client has a bundle that trusts both.

1. 'dtls rotate-ca' makes a new CA (STATE_DIR/ca.pem, ca-key.pem; the
   current CA's key type unless --key-type) and keeps the old one as
   STATE_DIR/ca-old.pem and ca-old-key.pem. The daemon's ca.pem trusts both
   CAs; the daemon keeps presenting its server certificate of the old CA,
   so every existing bundle still verifies it. From now on client bundles
   are issued and renewed from the new CA, with a ca.pem of both CAs; client
   and issue-server bundles still at their recorded path get that ca.pem
   too. Give every client of the old CA a renewed bundle:
     dtls renew NAME --archive FILE     (on this host)
     dtls import FILE                   (on their machine)
   and on each issue-server daemon install its bundle again
   ('dtls init --ca-from DIR --restart'), so that it accepts clients of the
   new CA.

2. 'dtls rotate-ca --switch' issues the daemon's server certificate from
   the new CA. It refuses while a good client certificate of the old CA
   remains (its bundle trusts only the old CA: it would fail with "x509:
   certificate signed by unknown authority"), unless --force. Then renew
   each issue-server daemon ('dtls renew NAME', and 'dtls init --ca-from
   DIR --restart' there).

3. 'dtls rotate-ca --finish' drops the old CA: the daemon's ca.pem holds
   only the new one, and certificates of the old CA are marked superseded.
   It refuses before --switch, and while good certificates of the old CA
   remain, unless --force.

'dtls rotate-ca --status' says which step the rotation is at, who holds up
the next one, and what to run on each issue-server daemon. Each step is one
journaled change. dockerd reads its TLS files only at start (moby#23936):
restart it after each step, or pass --restart. In gateway mode ('dtls init
--gateway') nothing is restarted: the gateway reloads its certificates
and CAs within a second of each step.

Against the fleet's online CA (--operator DIR, the bundle of a certificate
with the role ca-operator; --ca-url, or the ca_url of DIR's dtls.json) the
same three steps run on the CA's host, through its API
(POST /api/v1/dtls/rotate):

1. 'dtls rotate-ca --operator DIR' makes the next CA (STATE_DIR/ca-next.pem,
   ca-next-key.pem 0400, rotation.json). Certificates are still signed by
   the current CA, but every answer (enrolment, renewal, /api/v1/dtls/ca)
   carries both CAs: 'dtls agent' and 'dtls renew --server' install a
   ca.pem trusting both. Restart dockerd after 'dtls renew --server' so it
   trusts the new CA (it reads tlscacert only at start); the authorization
   plugin reads ca.pem again by itself.
2. '--switch': enrolments and renewals are signed by the new CA. The
   operator's own certificate (DIR) is renewed from it at once. Refused,
   as the local switch is, while a client that got its certificate before
   step 1 (its ca.pem trusts only the old CA) has not renewed: their names
   are listed ('dtls agent --now' on their machine renews at once; each
   agent renews at its next run during a rotation), unless --force.
3. '--finish': the new CA becomes the only one (STATE_DIR/ca.pem,
   ca-key.pem; the old key is removed), and the CA's listener presents a
   certificate of it. Refused before --switch, and while good, unexpired
   certificates of the old CA remain (their names are listed), unless
   --force, which marks them superseded.

Each step is in force in the 'dtls ca serve' that ran it at once; restart
any other instance of the same PostgreSQL inventory after copying the state
directory's files to it. DIR's ca.pem is rewritten after each step.`,
		Example: `  $ sudo dtls rotate-ca --restart
  $ sudo dtls rotate-ca --status
  $ ssh docker-host sudo dtls renew alice --archive - | dtls import -
  $ sudo dtls rotate-ca --switch --restart
  $ sudo dtls rotate-ca --finish --restart
  $ dtls rotate-ca --operator ~/ca-operator
  $ dtls rotate-ca --operator ~/ca-operator --status
  $ dtls rotate-ca --operator ~/ca-operator --switch
  $ dtls rotate-ca --operator ~/ca-operator --finish`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			return opts.run(c)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	f.StringVar(&opts.KeyType, "key-type", "", "key algorithm of the new CA: "+pki.KeyTypeNames()+" (default: the current CA's)")
	completeKeyTypes(c)
	daysFlag(c, &opts.CAValidity, "ca-days", pki.DefaultCAValidity, "validity of the new CA certificate")
	f.BoolVar(&opts.Switch, "switch", false, "step 2: issue the daemon's server certificate from the new CA")
	f.BoolVar(&opts.Finish, "finish", false, "step 3: drop the old CA")
	f.BoolVar(&opts.Status, "status", false, "say which step the rotation is at and what holds up the next")
	f.BoolVar(&opts.Force, "force", false, "with --switch or --finish: go ahead although clients of the old CA remain")
	f.BoolVar(&opts.Restart, "restart", false, "restart docker afterwards ('systemctl restart docker')")
	c.MarkFlagsMutuallyExclusive("switch", "finish", "status")
	opts.op.flags(c, io)
	opts.caKey.flags(c)
	return c
}

// run checks the flags and runs the step they ask for, against the online
// CA or this host's.
func (o *rotateOptions) run(c *cobra.Command) error {
	if err := o.validate(c); err != nil {
		return err
	}
	if o.op.CAURL != "" {
		if err := o.validateRemote(c); err != nil {
			return err
		}
		return runRotateRemote(o)
	}
	if err := o.validateLocal(c); err != nil {
		return err
	}
	switch cafront.RotationStep(o.Status, o.Switch, o.Finish) {
	case fleet.RotateStatus:
		return runRotateStatus(o)
	case fleet.RotateSwitch:
		return runRotateSwitch(o)
	case fleet.RotateFinish:
		return runRotateFinish(o)
	}
	return runRotateCA(o)
}

// validate checks the flags of either kind of rotation.
func (o *rotateOptions) validate(c *cobra.Command) error {
	if err := o.op.check(c); err != nil {
		return err
	}
	// Against the online CA too, as the local switch.
	if o.Force && !o.Switch && !o.Finish {
		return usagef(c, "--force applies to --switch and --finish only")
	}
	return nil
}

// validateRemote refuses the flags of this host's rotation.
func (o *rotateOptions) validateRemote(c *cobra.Command) error {
	for _, f := range []string{"key-type", "ca-days", "restart", "state-dir"} {
		if c.Flags().Changed(f) {
			return usagef(c, "--%s does not apply to an online CA's rotation (--ca-url, --operator)", f)
		}
	}
	return nil
}

// validateLocal checks the flags of a rotation of this host's CA.
func (o *rotateOptions) validateLocal(c *cobra.Command) error {
	later := o.Switch || o.Finish || o.Status
	if later && (c.Flags().Changed("key-type") || c.Flags().Changed("ca-days")) {
		return usagef(c, "--key-type and --ca-days apply to the first step only ('dtls rotate-ca')")
	}
	if o.Restart && o.Status {
		return usagef(c, "--restart does not apply to --status")
	}
	if err := o.validateKeyType(c); err != nil {
		return err
	}
	var err error
	if o.StateDir, err = absPath("state-dir", o.StateDir); err != nil {
		return usageError{err, c.CommandPath()}
	}
	return nil
}

// validateKeyType checks --key-type when given ("" keeps the current CA's).
func (o *rotateOptions) validateKeyType(c *cobra.Command) error {
	if !c.Flags().Changed("key-type") {
		return nil
	}
	if _, err := pki.ParseKeyType(o.KeyType); err != nil {
		return usagef(c, "--key-type: %v", err)
	}
	return nil
}

func runRotateCA(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	now := o.Now()
	res, err := a.Rotate(authority.RotateRequest{KeyType: pki.KeyType(o.KeyType), Validity: o.CAValidity, CAName: authority.DefaultCAName(now), Now: now})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "created CA %s (%s); the old one is kept as %s until --finish\n", res.CAPath, pki.Describe(res.CA.Cert), authority.OldCACertFile)
	server := ""
	if res.Server != nil {
		server = fmt.Sprintf(" (%s)", pki.Describe(res.Server))
	}
	fmt.Fprintf(o.ErrOut, "step 1 of 3: %s holds both CAs; the daemon keeps presenting its server certificate of the old CA%s, which every bundle verifies\n", res.DaemonCA, server)
	fmt.Fprintf(o.ErrOut, "rewrote ca.pem (both CAs) in %d of %d client bundles at their recorded path\n", res.BundlesUpdated, res.BundlesTotal)
	for _, why := range res.BundlesLeft {
		fmt.Fprintf(o.ErrOut, "left as it is (give its holder a renewed bundle): %s\n", why)
	}
	fmt.Fprintln(o.ErrOut, "client bundles issued or renewed from now on are signed by the new CA and trust both CAs")
	printFleet(o.ErrOut, authority.StepTrust, false, res.Fleet)
	fmt.Fprintf(o.ErrOut, "next: renew every client of the old CA ('dtls rotate-ca --status' lists them): dtls renew NAME --archive FILE, then on their machine: dtls import FILE --new-ca %s; then: dtls rotate-ca --switch\n", pki.Fingerprint(res.CA.Cert))
	return restartOrSay(o.IO, o.StateDir, o.Restart)
}

func runRotateSwitch(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.SwitchServer(o.Force, o.Now())
	var blocking *authority.SwitchBlockingError
	if errors.As(err, &blocking) {
		// One holder a line: the list can be long.
		for _, r := range blocking.Left {
			fmt.Fprintf(o.ErrOut, "trusts only the old CA: %s\n", blockerAdvice(r, currentCA(a)))
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "step 2 of 3: issued server certificate %s from the new CA into %s; %s still trusts both CAs\n",
		describeRecord(res.Server.Record), res.Server.Path, res.DaemonCA)
	for _, r := range res.Cut {
		fmt.Fprintf(o.ErrOut, "can no longer verify the daemon (--force): %s\n", blockerAdvice(r, currentCA(a)))
	}
	printFleet(o.ErrOut, authority.StepSwitched, false, res.Fleet)
	fmt.Fprintln(o.ErrOut, "next: once no certificate of the old CA is in use ('dtls rotate-ca --status'): dtls rotate-ca --finish")
	return restartOrSay(o.IO, o.StateDir, o.Restart)
}

func runRotateFinish(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.FinishRotation(o.Force, o.Now())
	var blocking *authority.BlockingError
	if errors.As(err, &blocking) {
		for _, r := range blocking.Left {
			fmt.Fprintf(o.ErrOut, "still on the old CA: %s\n", blockerAdvice(r, currentCA(a)))
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "step 3 of 3: dropped the old CA (serial %s): %s holds only the new one", res.OldSerial, res.DaemonCA)
	if len(res.Cut) > 0 {
		fmt.Fprintf(o.ErrOut, "; %d certificates of the old CA no longer work", len(res.Cut))
	}
	fmt.Fprintln(o.ErrOut)
	printFleet(o.ErrOut, authority.NotRotating, true, res.Fleet)
	return restartOrSay(o.IO, o.StateDir, o.Restart)
}

func runRotateStatus(o *rotateOptions) error {
	a, err := openAuthority(o.IO, o.StateDir, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.RotationStatus(o.Now())
	if err != nil {
		return err
	}
	w := o.Out
	if st.Step == authority.NotRotating {
		fmt.Fprintf(w, "no CA rotation in progress: CA %s\n", pki.Describe(st.CA))
		return nil
	}
	fmt.Fprintf(w, "CA rotation: %s\n", stepSummary(st.Step))
	fmt.Fprintf(w, "new CA: %s, fingerprint %s\n", pki.Describe(st.CA), pki.Fingerprint(st.CA))
	fmt.Fprintf(w, "old CA: %s\n", pki.Describe(st.OldCA))
	if st.Server != nil {
		from := "the old CA"
		if st.Step == authority.StepSwitched {
			from = "the new CA"
		}
		fmt.Fprintf(w, "server certificate: %s %s, from %s\n", st.ServerPath, pki.Describe(st.Server), from)
	}
	next := st.Step.Next()
	if len(st.Blocking) == 0 {
		fmt.Fprintf(w, "nothing holds up '%s'\n", next)
	} else {
		fmt.Fprintf(w, "holding up '%s' (or pass --force to cut them off):\n", next)
		for _, r := range st.Blocking {
			fmt.Fprintf(w, "  %s\n", blockerAdvice(r, pki.Fingerprint(st.CA)))
		}
	}
	printFleet(w, st.Step, false, st.Fleet)
	if authority.Mode(o.StateDir) == authority.ModeGateway {
		// The gateway reloads what the step writes: nothing to restart.
		fmt.Fprintf(w, "next: %s\n", next)
		return nil
	}
	fmt.Fprintf(w, "next: %s --restart\n", next)
	return nil
}

// stepSummary says what a step means for the daemon and its clients.
func stepSummary(s authority.RotationStep) string {
	switch s {
	case authority.StepTrust:
		return "step 1 of 3 (trust): the daemon trusts both CAs and presents its server certificate of the old CA"
	case authority.StepSwitched:
		return "step 2 of 3 (switch): the daemon trusts both CAs and presents a server certificate of the new CA"
	}
	return "none"
}

// rotationHeader is the line 'dtls list' prints on stderr during a
// rotation ("" outside one).
func rotationHeader(st *authority.RotationStatus) string {
	if st == nil || st.Step == authority.NotRotating {
		return ""
	}
	return fmt.Sprintf("CA rotation at %s; %d certificates hold up '%s': dtls rotate-ca --status",
		stepSummary(st.Step), len(st.Blocking), st.Step.Next())
}

// blockerAdvice names a certificate of the old CA and what replaces it;
// newCA is the new CA's fingerprint, which the holder's import of a
// renewal signed by it needs (bundle.Renews).
func blockerAdvice(r store.Record, newCA string) string {
	what := fmt.Sprintf("%s %q serial %s, expires %s", r.Kind, r.Name, r.Serial, r.NotAfter.UTC().Format("2006-01-02"))
	if r.Kind == store.KindClient {
		return fmt.Sprintf("%s: dtls renew %s --archive %s.tar.gz, then on %s's machine: dtls import %s.tar.gz%s", what, r.Name, r.Name, r.Name, r.Name, newCAFlag(newCA))
	}
	return fmt.Sprintf("%s: dtls renew %s, then on %s: sudo dtls init --ca-from %s --restart", what, r.Name, r.Name, recordedDir(r.Path))
}

// newCAFlag is the --new-ca flag of a laptop's import of a renewal from
// the CA of fingerprint fp ("" when unknown: the import then says which
// fingerprint it needs).
func newCAFlag(fp string) string {
	if fp == "" {
		return ""
	}
	return " --new-ca " + fp
}

// currentCA is the fingerprint of the CA a has now, the new one during a
// rotation ("" when it cannot be read: the advice then goes without it).
func currentCA(a *authority.Authority) string {
	c, err := a.CACert()
	if err != nil {
		return ""
	}
	return pki.Fingerprint(c)
}

// recordedDir is a record's bundle directory, or "DIR" when none is
// recorded.
func recordedDir(p string) string {
	if p == "" {
		return "DIR"
	}
	return p
}

// printFleet says what to run for each issue-server daemon at a step
// (finished: after --finish).
func printFleet(w io.Writer, step authority.RotationStep, finished bool, fleet []authority.FleetDaemon) {
	for _, f := range fleet {
		fmt.Fprintf(w, "issue-server daemon %q (serial %s, %s CA, bundle %s): %s\n", f.Record.Name, f.Record.Serial,
			map[bool]string{true: "old", false: "new"}[f.OldCA], f.Record.Path, fleetAdvice(step, finished, f))
	}
}

// fleetAdvice is what an issue-server daemon needs at a step. Its bundle
// directory is on this host; 'dtls init --ca-from' runs on the daemon's
// host, with the directory copied there (it holds the server key).
func fleetAdvice(step authority.RotationStep, finished bool, f authority.FleetDaemon) string {
	name, dir := f.Record.Name, recordedDir(f.Record.Path)
	install := fmt.Sprintf("copy %s to %s (it holds the server key), then run there: sudo dtls init --ca-from %s --restart", dir, name, dir)
	switch {
	case finished:
		return fmt.Sprintf("it trusts the old CA until it installs a renewed bundle: dtls renew %s, then %s", name, install)
	case step == authority.StepTrust && f.Bundle && f.TrustsNew:
		return fmt.Sprintf("to accept clients of the new CA: %s", install)
	case step == authority.StepTrust:
		return fmt.Sprintf("to accept clients of the new CA: dtls renew %s (its bundle with both CAs), then %s", name, install)
	case f.OldCA || !f.Bundle:
		return fmt.Sprintf("to present a certificate of the new CA: dtls renew %s, then %s", name, install)
	}
	return fmt.Sprintf("its bundle is of the new CA: if not installed yet, %s", install)
}

// restartOrSay restarts docker, or says that it must be restarted: dockerd
// does not reload its TLS files on SIGHUP (moby#23936). In gateway mode
// nothing is restarted: the gateway reloads them.
func restartOrSay(io IO, stateDir string, restart bool) error {
	if authority.Mode(stateDir) == authority.ModeGateway {
		fmt.Fprintln(io.ErrOut, gatewayReloads)
		return nil
	}
	if restart {
		return restartDocker(io.ErrOut)
	}
	fmt.Fprintln(io.ErrOut, "dockerd reads its TLS files only at start (moby#23936): sudo systemctl restart docker   (or pass --restart)")
	return nil
}
