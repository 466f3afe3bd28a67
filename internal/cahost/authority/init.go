package authority

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// RenewBefore is how close to expiry init re-issues a server certificate,
// and the window in which list calls a certificate "expiring".
const RenewBefore = 30 * 24 * time.Hour

// InitRequest is what 'dtls init' asks for.
type InitRequest struct {
	StateDir   string
	CertsDir   string
	DaemonJSON string
	// SystemdDir, when set, is the only place docker.service is looked
	// for and where the drop-in is written; otherwise the systemd unit
	// directories and /etc/systemd/system.
	SystemdDir string
	// Hosts the server certificate covers; when empty, those
	// STATE_DIR/server.json records, else DefaultHosts().
	Hosts []string
	// Listen is the TCP endpoint added to daemon.json's "hosts"; when
	// empty, the one STATE_DIR/server.json records, else DefaultListen.
	Listen         string
	KeyType        pki.KeyType
	CAValidity     time.Duration
	ServerValidity time.Duration
	CAName         string
	DryRun         bool
	Force          bool
	// CAFrom installs a server bundle from 'dtls issue-server' instead of
	// making a CA.
	CAFrom       string
	EncryptCAKey bool
	// Dockerd, when set, checks the merged daemon.json with 'dockerd
	// --validate' before anything is written.
	Dockerd string
	// Authz installs the authorization plugin: its systemd units, and,
	// once it answers on AuthzSocket, its name in daemon.json.
	Authz       bool
	AuthzSocket string
	AuthzExe    string // the dtls binary the service runs
	AuthzLog    string // the audit log the service writes
	AuthzPolicy string // the policy file ("" for the built-in one)
	// Gateway makes the dtls gateway serve the TCP listener: its systemd
	// units are written and daemon.json keeps only dockerd's local
	// sockets (daemonconfig.Settings.Gateway). Without it, a host in
	// gateway mode moves back: the listener is dockerd's again and the
	// gateway's units are removed.
	Gateway       bool
	GatewayExe    string // the dtls binary the service runs
	GatewayLog    string // the audit log the gateway writes
	GatewayPolicy string // the policy file ("" for the built-in one)
	// Local (with Gateway) retires the docker group: dockerd's socket
	// becomes root's alone, and the host's accounts use the gateway's
	// local socket (local.go); the profile snippet goes in ProfileDir
	// ("" for none). Without it, a host that had it gets its group back.
	// GroupFile and PasswdFile (/etc/group, /etc/passwd when empty) name
	// the group's members in the result.
	Local                             bool
	ProfileDir, GroupFile, PasswdFile string
	// PackagedUnitDir is where the dtls package installs its units
	// (/usr/lib/systemd/system): a unit there with the settings init
	// would write is used as it is, not copied to SystemdDir.
	PackagedUnitDir string
	// CAURL makes this host a member of the fleet of the online CA at
	// that URL (init --ca-url): its server certificate comes from that
	// CA, and no CA key is kept here. With Enroll, a new certificate is
	// asked for; without, the one installed from that CA is kept (init
	// run again, e.g. with --authz). A host recorded with a CAURL keeps
	// it when init runs again without one.
	CAURL string
	// Enroll sends the certificate request for the server key made here
	// to the online CA (fleet.Client.Enroll with a server token) and
	// returns its answer, checked. It is called before anything is
	// written: a CA that is down, or refuses, changes nothing.
	Enroll func(csrPEM []byte) (*fleet.CertResponse, error)
	// Reach resolves names and lists this host's addresses, to pick the
	// daemon URL clients are given (ClientDockerHost); nil is
	// SystemReach().
	Reach *Reach
	Now   time.Time
}

// InitResult is what Init did (or, on a dry run, would do).
type InitResult struct {
	// Steps describe each thing done, in order, one line each.
	Steps []string
	// DaemonJSON is the merge of daemon.json (Old and New for a diff).
	DaemonJSON *daemonconfig.Result
	// DropIn is the systemd drop-in's content when one is (or would be)
	// written, and DropInPath its path.
	DropIn     []byte
	DropInPath string
	// Validated is true when dockerd --validate accepted the merged file.
	Validated bool
	// NeedRestart is true when dockerd must be restarted (after a
	// daemon-reload) to use what was written.
	NeedRestart bool
	Server      Server
	// Recovered lists what was finished of killed runs.
	Recovered []Recovery
	// AuthzPending is true when the plugin's units were written but the
	// plugin did not answer yet: daemon.json does not name it (dockerd
	// would refuse to start), until init --authz runs again with the
	// plugin up.
	AuthzPending bool
	// AuthzUnits are the unit files written (init --authz).
	AuthzUnits []string
	// GatewayUnits are the gateway's unit files written (init --gateway),
	// GatewayRemoved those removed (init without it on a gateway host).
	GatewayUnits, GatewayRemoved []string
	// Local is what init --local (or its undo) changes for whom; nil
	// when nothing.
	Local *LocalChange
	// localGroup is the group server.json records for the undo.
	localGroup string
}

func (r *InitResult) say(format string, a ...any) {
	r.Steps = append(r.Steps, fmt.Sprintf(format, a...))
}

// Init prepares this Docker host for remote access over mutual TLS: the CA
// (or, with CAFrom, a server bundle made on the CA's host), the server
// certificate, the daemon's ca.pem, the TLS keys merged into daemon.json and
// a systemd drop-in when docker.service passes -H. Everything that can fail
// on bad input is checked first; then every file and the inventory change
// in one journaled change, so that a failure or a kill at any point leaves
// the host as it was, or as it is to be.
func Init(r InitRequest, o Options) (_ *InitResult, err error) {
	res := &InitResult{}
	p, err := prepareInit(&r, o, res)
	if err != nil {
		return nil, err
	}

	// From here on, the change is planned into one journal entry.
	a := &Authority{Dir: r.StateDir, opts: o}
	if !r.DryRun {
		// A dry run locks, recovers and creates nothing: it only reads.
		var top string
		if a, top, err = create(r.StateDir, o); err != nil {
			return nil, err
		}
		defer a.Close()
		res.Recovered = a.Recovered
		if top != "" {
			// A first init that fails leaves no state directory (nor the
			// parents it made): it would hold an empty inventory and
			// nothing else.
			defer func() {
				var ce *ChangeError
				if err != nil && (errors.As(err, &ce) || !a.journal().Journaled) {
					a.Close()
					os.RemoveAll(top)
				}
			}()
		}
	}
	t := newTxn("init")
	if err := a.planInit(t, r, p, res); err != nil {
		return nil, err
	}
	if r.DryRun {
		return res, nil
	}
	b, err := jsonIndent(res.Server)
	if err != nil {
		return nil, err
	}
	t.Write(filepath.Join(r.StateDir, ServerRecord), b, RecordMode)
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return res, nil
}

// initPlan is what Init finds before it opens the state directory.
type initPlan struct {
	listenHost string
	port       int
	hosts      []string
	unit       *daemonconfig.Unit
	dropInDir  string
	merged     *daemonconfig.Result
	// sv is the server bundle of a host that does not sign its own.
	sv *serverBundle
}

// prepareInit completes r from what the last init recorded and checks
// everything that can fail on bad input, before anything is written: the
// directories, docker.service, the merged daemon.json, a server bundle
// from elsewhere (which may enrol with the online CA, the last step
// before anything is written).
func prepareInit(r *InitRequest, o Options, res *InitResult) (*initPlan, error) {
	p := &initPlan{}
	r.keepListen()
	var err error
	if p.listenHost, p.port, err = r.parseListen(); err != nil {
		return nil, err
	}
	r.keepFleetCA()
	p.hosts = r.initHosts()
	if err := checkInitDirs(*r); err != nil {
		return nil, err
	}
	if p.unit, p.dropInDir, err = findDockerUnit(*r); err != nil {
		return nil, err
	}
	if p.merged, err = planDaemonJSON(*r, p.unit, res); err != nil {
		return nil, err
	}
	if p.sv, err = serverBundleFor(*r, o, &p.hosts, res); err != nil {
		return nil, err
	}
	return p, nil
}

// planInit plans into t the server certificate (and the CA, or a bundle
// from elsewhere), the drop-in, the units and daemon.json, and sets
// res.Server and res.NeedRestart.
func (a *Authority) planInit(t *txn, r InitRequest, p *initPlan, res *InitResult) error {
	t.Mkdir(r.CertsDir, CertsDirMode)
	reissued := false
	var err error
	switch {
	case p.sv != nil:
		reissued = a.planServerBundle(t, r, p.sv, res)
	case r.CAURL != "":
		// A dry run does not enrol: the token would be used up.
		res.say("would enrol with the CA at %s: a server key made here, its certificate (for the names of the token) and the CA certificate installed into %s", r.CAURL, r.CertsDir)
		reissued = true
	default:
		if reissued, err = a.planCA(t, r, p.hosts, res); err != nil {
			return err
		}
	}
	dropIn, err := planDropIn(t, r, p.unit, p.dropInDir, res)
	if err != nil {
		return err
	}
	units, err := planUnits(t, r, p.dropInDir, p.merged, res)
	if err != nil {
		return err
	}
	changed, err := planDaemonJSONWrite(t, r, p.merged, res)
	if err != nil {
		return err
	}
	res.Server = Server{
		DockerHost: ClientDockerHost(p.hosts, p.listenHost, p.port, r.Reach),
		Listen:     r.Listen,
		Hosts:      p.hosts,
		CertsDir:   r.CertsDir,
		DaemonJSON: r.DaemonJSON,
		Updated:    r.Now.UTC(),
		CAURL:      r.CAURL,
		Mode:       r.mode(),
		Local:      r.Local,
		LocalGroup: res.localGroup,
	}
	res.NeedRestart = reissued || dropIn || units || changed
	return nil
}

// keepListen sets r.Listen when it is empty.
func (r *InitRequest) keepListen() {
	if r.Listen == "" {
		// A run without --listen (init --authz, as the README has it)
		// keeps the listener the last init recorded: falling back to
		// every interface would widen a daemon set up on one address.
		r.Listen = DefaultListen
		if srv, err := ReadServer(r.StateDir); err == nil && srv.Listen != "" {
			r.Listen = srv.Listen
		}
	}
}

// keepFleetCA sets r.CAURL to the one recorded, for a host of a fleet.
func (r *InitRequest) keepFleetCA() {
	if r.CAURL == "" && r.CAFrom == "" && !r.Force {
		// A fleet host stays one: a plain 'dtls init' there (to add
		// --authz, say) must not make a CA of its own.
		if srv, err := ReadServer(r.StateDir); err == nil && srv.CAURL != "" {
			r.CAURL = srv.CAURL
		}
	}
}

// initHosts are the names the server certificate is for.
func (r *InitRequest) initHosts() []string {
	hosts := r.Hosts
	if len(hosts) == 0 && r.CAFrom == "" && r.CAURL == "" {
		// As with the listener: a run without --host keeps the names
		// the server certificate was made for (a --host given the first
		// time), rather than re-issuing it for the defaults, which
		// would drop them and fail every client that uses one.
		if srv, err := ReadServer(r.StateDir); err == nil && len(srv.Hosts) > 0 {
			hosts = srv.Hosts
		}
	}
	if len(hosts) == 0 && r.CAFrom == "" && r.CAURL == "" {
		hosts = DefaultHosts()
	}
	return hosts
}

// checkInitDirs refuses a loose state directory, a local CA's for a fleet
// host, and state and certs directories that overlap.
func checkInitDirs(r InitRequest) error {
	if err := engine.CheckStateDir(r.StateDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if r.CAURL != "" {
		if err := checkNoLocalCA(r.StateDir, r.CAURL); err != nil {
			return err
		}
	}
	if Within(r.StateDir, r.CertsDir) || Within(r.CertsDir, r.StateDir) {
		return fmt.Errorf("--state-dir %q and --certs-dir %q overlap: the CA key must never sit with the daemon's certificates", r.StateDir, r.CertsDir)
	}
	// The server key goes there, and init fixes the modes of what is
	// there: no other account may change it under root.
	// A missing one is judged by the directory it will be made in.
	dir := existingDir(r.CertsDir)
	if err := daemonconfig.CheckRootDir(dir); err != nil {
		return hint(fmt.Errorf("--certs-dir: %w", err), "chown root %s and chmod go-w it and the directories above it", dir)
	}
	return nil
}

// findDockerUnit finds docker.service, and the directory its drop-ins go
// in; it refuses a unit that passes TLS flags or -H through a variable.
func findDockerUnit(r InitRequest) (*daemonconfig.Unit, string, error) {
	unitDirs := daemonconfig.DefaultUnitDirs
	dropInDir := "/etc/systemd/system"
	if r.SystemdDir != "" {
		unitDirs, dropInDir = []string{r.SystemdDir}, r.SystemdDir
	}
	unit, err := daemonconfig.FindUnit(unitDirs)
	if err != nil {
		return nil, "", err
	}
	if unit != nil && unit.HiddenTLSFlags() {
		return nil, "", hint(fmt.Errorf("%s passes TLS flags through a variable of ExecStart (%s): dockerd would refuse them with the TLS settings in %s",
			unit.Path, unit.ExecStart, r.DaemonJSON),
			"delete the --tls* flags where the variable is set, then run dtls init again: it puts them into daemon.json")
	}
	if unit != nil && len(unit.VarHosts) > 0 {
		// A drop-in cannot take a flag out of a variable, and dockerd
		// refuses "hosts" given both ways.
		return nil, "", hint(fmt.Errorf("%s passes -H %s through %s: dockerd would refuse to start with \"hosts\" in %s",
			unit.Path, strings.Join(unit.VarHosts, " -H "), unit.VarSource, r.DaemonJSON),
			"delete those -H flags where they are set, then run dtls init again: it puts the hosts into daemon.json")
	}
	return unit, dropInDir, nil
}

// planDaemonJSON merges the TLS settings (and the plugin, once it answers)
// into daemon.json, in memory, and has dockerd --validate check the
// result when r.Dockerd is set.
func planDaemonJSON(r InitRequest, unit *daemonconfig.Unit, res *InitResult) (*daemonconfig.Result, error) {
	group, localGroup, local, err := planLocal(r)
	if err != nil {
		return nil, err
	}
	res.Local, res.localGroup = local, localGroup
	settings := daemonconfig.Settings{
		Listen: r.Listen,
		CACert: filepath.Join(r.CertsDir, CACertFile),
		Cert:   filepath.Join(r.CertsDir, ServerCertFile),
		Key:    filepath.Join(r.CertsDir, ServerKeyFile),
	}
	if unit != nil && len(unit.Hosts) > 0 {
		settings.Sockets = unit.Hosts
	}
	settings.Gateway, settings.Group = r.Gateway, group
	if r.Authz {
		// Named in daemon.json only once the plugin answers: dockerd
		// refuses to start when it cannot reach an authorization plugin
		// (moby pkg/authorization, pkg/plugins/client.go: about 15 s of
		// retries).
		if perr := ProbeAuthz(r.AuthzSocket, 5*time.Second); perr == nil {
			settings.AuthzPlugin = authzPluginName(r.AuthzSocket)
		} else {
			res.AuthzPending = true
			res.say("%v: daemon.json does not name it yet", perr)
		}
	}
	merged, err := daemonconfig.Apply(r.DaemonJSON, settings, r.Now, true)
	if err != nil {
		return nil, err
	}
	res.DaemonJSON = merged
	if merged.Changed && !r.DryRun && r.Dockerd != "" {
		// Asked before anything is written, so that a file dockerd would
		// refuse changes nothing at all.
		if res.Validated, err = validateMerged(r, merged.New); err != nil {
			return nil, err
		}
	}
	return merged, nil
}

// serverBundleFor is the server bundle of a host that does not sign its
// own: from 'dtls issue-server' (CAFrom) or from the online CA (CAURL);
// nil for a host with its own CA.
func serverBundleFor(r InitRequest, o Options, hosts *[]string, res *InitResult) (*serverBundle, error) {
	var err error
	var sv *serverBundle
	switch {
	case r.CAFrom != "":
		if sv, err = readServerBundle(r, r.CAFrom, hosts); err != nil {
			return nil, err
		}
	case r.CAURL != "" && r.Enroll != nil && !r.DryRun:
		// A run killed while it installed the CA's answer left a
		// journal: finish it first, so that this one sees the host as
		// that one left it, and does not spend the token again.
		if err := recoverInterrupted(r.StateDir, o); err != nil {
			return nil, err
		}
		if srv, serr := ReadServer(r.StateDir); serr == nil && srv.CAURL == r.CAURL && !r.Force {
			if sv, err = keepEnrolled(r, hosts); err == nil {
				res.say("already enrolled with the CA at %s: the token was not used (--force enrols again)", r.CAURL)
				break
			}
		}
		// The last step before anything is written: a CA that is down
		// changes nothing here.
		if sv, err = enrollServer(r, hosts); err != nil {
			return nil, err
		}
	case r.CAURL != "" && r.Enroll == nil:
		if sv, err = keepEnrolled(r, hosts); err != nil {
			return nil, err
		}
	}
	return sv, nil
}

// planDropIn plans the systemd drop-in that moves -H and TLS flags out of
// docker.service, and reports whether systemd must reload. dockerd
// refuses to start when "hosts" is set both by a -H flag and in
// daemon.json ("the following directives are specified both as a flag and
// in the configuration file: hosts"; Docker docs, "Configure the daemon
// with systemd").
func planDropIn(t *txn, r InitRequest, unit *daemonconfig.Unit, dropInDir string, res *InitResult) (bool, error) {
	needReload := false
	if unit != nil && unit.NeedsDropIn() {
		moved := "its TLS flags"
		if len(unit.Hosts) > 0 {
			moved = fmt.Sprintf("%v", unit.Hosts)
		}
		p, content, changed, err := daemonconfig.PlanDropIn(dropInDir, unit)
		if err != nil {
			return false, err
		}
		if changed {
			res.DropIn, res.DropInPath = content, p
			needReload = true
			if r.DryRun {
				res.say("would write a drop-in in %s/docker.service.d removing %s from %s (moved into daemon.json)", dropInDir, moved, unit.Path)
			} else {
				t.Mkdir(filepath.Dir(p), 0o755)
				t.Write(p, content, 0o644)
				res.say("wrote %s: docker.service passed %s, now in daemon.json", p, moved)
			}
		}
	}
	return needReload, nil
}

// planAuthzUnits plans the plugin's units, and docker.service ordered
// after its socket; it reports whether any is written.
func planAuthzUnits(t *txn, r InitRequest, dropInDir string, res *InitResult) bool {
	if !r.Authz {
		return false
	}
	units := AuthzUnits(r.AuthzExe, r.AuthzSocket, r.StateDir, r.AuthzLog, r.AuthzPolicy, r.DaemonJSON)
	units[filepath.Join("docker.service.d", AuthzDockerDropIn)] = AuthzDockerDropInContent
	written := planUnitFiles(t, r, dropInDir, units, res)
	res.AuthzUnits = append(res.AuthzUnits, written...)
	return len(written) > 0
}

// planDaemonJSONWrite plans daemon.json, with a backup of the old one; it
// reports whether it changes.
func planDaemonJSONWrite(t *txn, r InitRequest, merged *daemonconfig.Result, res *InitResult) (bool, error) {
	needReload := false
	if merged.Changed {
		needReload = true
		for _, ch := range merged.Changes {
			if r.DryRun {
				res.say("would change %s: %s", r.DaemonJSON, ch)
			} else {
				res.say("%s: %s", r.DaemonJSON, ch)
			}
		}
		if !r.DryRun {
			uid, gid, owned := merged.Owner()
			put := func(path string, data []byte) {
				if owned {
					t.WriteOwned(path, data, merged.FileMode(), uid, gid)
				} else {
					t.Write(path, data, merged.FileMode())
				}
			}
			if merged.Existed {
				backup, err := daemonconfig.BackupName(r.DaemonJSON, r.Now)
				if err != nil {
					return false, err
				}
				put(backup, merged.Old)
				res.say("backup of the previous %s: %s", r.DaemonJSON, backup)
			} else {
				t.Mkdir(filepath.Dir(r.DaemonJSON), 0o755)
			}
			put(r.DaemonJSON, merged.New)
		}
	} else {
		res.say("%s already has the TLS settings", r.DaemonJSON)
	}
	return needReload, nil
}

// planCA makes or keeps the CA and this host's server certificate, and the
// daemon's copy of the CA certificate; it reports whether the server
// certificate is issued anew.
func (a *Authority) planCA(t *txn, r InitRequest, hosts []string, res *InitResult) (bool, error) {
	var ca *pki.CA
	var err error
	caCertPath := a.path(CACertFile)
	caKeyPath := a.path(CAKeyFile)
	_, certErr := os.Stat(caCertPath)
	_, keyErr := os.Stat(caKeyPath)
	kept := certErr == nil && keyErr == nil && !r.Force
	switch {
	case kept:
		if ca, err = a.keepCA(t, r, res, caCertPath); err != nil {
			return false, err
		}
	case (certErr == nil) != (keyErr == nil) && !r.Force:
		return false, hint(fmt.Errorf("state directory %q holds only one of %s and %s", a.Dir, CACertFile, CAKeyFile),
			"restore the missing file from a backup, or run 'dtls init --force' to make a new CA (every client certificate must then be re-issued)")
	default:
		if ca, err = a.newCA(t, r, res, certErr == nil, caCertPath); err != nil {
			return false, err
		}
	}

	certPath := filepath.Join(r.CertsDir, ServerCertFile)
	keyPath := filepath.Join(r.CertsDir, ServerKeyFile)
	reason, err := a.planServerCert(t, r, ca, kept, hosts, res)
	if err != nil {
		return false, err
	}
	a.planDaemonCA(t, r, ca, res)
	// Kept files whose mode was loosened are tightened whatever else this
	// run writes (README: "a loosened key mode found by init is
	// tightened").
	if reason == "" {
		a.planMode(t, keyPath, KeyMode, r.DryRun, res)
		a.planMode(t, certPath, CertMode, r.DryRun, res)
	}
	if kept {
		a.planMode(t, caCertPath, CertMode, r.DryRun, res)
		if !r.EncryptCAKey {
			a.planMode(t, caKeyPath, engine.CAKeyMode, r.DryRun, res)
		}
	}
	return reason != "", nil
}

// keepCA keeps the CA of the state directory (encrypting its keys when
// r.EncryptCAKey asks for it) and records it again.
func (a *Authority) keepCA(t *txn, r InitRequest, res *InitResult, caCertPath string) (*pki.CA, error) {
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	if r.EncryptCAKey {
		if err := a.planEncryptCAKeys(t, r, res); err != nil {
			return nil, err
		}
	}
	if !r.DryRun {
		t.DB.Insert = append(t.DB.Insert, engine.CARecord(ca, a.Dir))
	}
	res.say("kept CA %s (%s)", caCertPath, pki.Describe(ca.Cert))
	return ca, nil
}

// planEncryptCAKeys encrypts the CA keys that are not yet. Encryption, once
// asked for, covers every CA key here: the one a rotation keeps too, as
// the daemon still trusts it.
func (a *Authority) planEncryptCAKeys(t *txn, r InitRequest, res *InitResult) error {
	for _, f := range []struct{ file, cert string }{{CAKeyFile, CACertFile}, {OldCAKeyFile, OldCACertFile}} {
		b, err := os.ReadFile(a.path(f.file))
		if err != nil || pki.IsEncryptedKey(b) {
			continue
		}
		p := a.path(f.file)
		if r.DryRun {
			res.say("would encrypt the CA key %s", p)
			continue
		}
		enc, err := a.protect(b, true, true)
		if err != nil {
			return err
		}
		t.Write(p, enc, KeyMode)
		res.say("encrypted the CA key %s", p)
	}
	return nil
}

// newCA makes a new CA (replacing one with --force: replacing), which
// ends any rotation and supersedes the CAs recorded.
func (a *Authority) newCA(t *txn, r InitRequest, res *InitResult, replacing bool, caCertPath string) (*pki.CA, error) {
	ca, err := pki.NewCA(pki.CARequest{CommonName: r.CAName, KeyType: r.KeyType, Now: r.Now, Validity: r.CAValidity})
	if err != nil {
		return nil, err
	}
	verb := "created"
	if replacing {
		verb = "replaced (--force)"
	}
	if r.DryRun {
		res.say("would create CA in %s (%s key)", a.Dir, r.KeyType)
		return ca, nil
	}
	// A CA key once encrypted stays encrypted: --force makes a new
	// one under a passphrase too.
	keyPEM, err := a.protect(ca.KeyPEM, r.EncryptCAKey || a.Encrypted(), true)
	if err != nil {
		return nil, err
	}
	engine.PlanCA(t, a.Dir, ca, keyPEM, CertMode)
	// A new CA ends any rotation: the CA it kept is no longer
	// trusted by anything dtls writes.
	if a.InRotation() {
		t.Remove(a.path(OldCAKeyFile))
		t.Remove(a.path(OldCACertFile))
	}
	cas, err := a.Store.ByKind(store.KindCA)
	if err != nil {
		return nil, err
	}
	for _, rec := range cas {
		if rec.Status == store.StatusGood {
			t.DB.Supersede = append(t.DB.Supersede, rec.Serial)
		}
	}
	res.say("%s CA %s (%s)", verb, caCertPath, pki.Describe(ca.Cert))
	return ca, nil
}

// planServerCert keeps or issues this host's server certificate and
// returns why it is issued ("" when kept). At step 1 of a rotation of a
// kept CA it stays of the old CA (rotate.go): kept when it verifies with
// that one, issued from it.
func (a *Authority) planServerCert(t *txn, r InitRequest, ca *pki.CA, kept bool, hosts []string, res *InitResult) (string, error) {
	srvCA := ca
	var err error
	if kept && a.RotationStep() == StepTrust {
		if srvCA, err = a.OldCA(); err != nil {
			return "", err
		}
	}
	certPath := filepath.Join(r.CertsDir, ServerCertFile)
	keyPath := filepath.Join(r.CertsDir, ServerKeyFile)
	reason := "--force"
	if !r.Force {
		reason = serverReissueReason(srvCA, certPath, keyPath, hosts, r.Now)
	}
	switch {
	case reason == "":
		res.say("kept server certificate %s (covers %d hosts)", certPath, len(hosts))
	case r.DryRun:
		res.say("would issue server certificate %s for %v (%s)", certPath, hosts, reason)
	default:
		srv, rec, err := engine.Issue(srvCA, pki.Request{Kind: pki.KindServer, Hosts: hosts, KeyType: r.KeyType, Now: r.Now, Validity: r.ServerValidity}, certPath)
		if err != nil {
			return "", err
		}
		t.Write(keyPath, srv.KeyPEM, KeyMode)
		t.Write(certPath, srv.CertPEM, CertMode)
		t.DB.Insert = append(t.DB.Insert, rec)
		if old := currentSerial(certPath); old != "" {
			t.DB.Supersede = append(t.DB.Supersede, old)
		}
		res.say("issued server certificate %s (%s) for %v: %s", certPath, pki.Describe(srv.Cert), hosts, reason)
	}
	return reason, nil
}

// planDaemonCA writes the daemon's copy of the CA certificate; during a
// rotation it holds both CAs (rotate-ca), unless this run makes a new CA.
func (a *Authority) planDaemonCA(t *txn, r InitRequest, ca *pki.CA, res *InitResult) {
	caInCerts := filepath.Join(r.CertsDir, CACertFile)
	daemonCA := ca.CertPEM
	if !r.Force {
		daemonCA = a.DaemonCAPEM(ca)
	}
	if old, err := os.ReadFile(caInCerts); err == nil && bytes.Equal(old, daemonCA) {
		a.planMode(t, caInCerts, CertMode, r.DryRun, res)
	} else if r.DryRun {
		res.say("would write %s", caInCerts)
	} else {
		t.Write(caInCerts, daemonCA, CertMode)
		res.say("wrote %s", caInCerts)
	}
}

// planMode tightens an existing file's mode: a file's mode is part of its
// security (CIS Docker Benchmark 3.9-3.14).
func (a *Authority) planMode(t *txn, path string, mode fs.FileMode, dryRun bool, res *InitResult) {
	// Lstat: a link's target is not ours to fix (and the chmod itself
	// never follows one: atomicfile.Chmod).
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() == mode {
		return
	}
	if dryRun {
		res.say("would fix mode of %s: %04o -> %04o", path, fi.Mode().Perm(), mode)
		return
	}
	t.Chmod(path, mode)
	res.say("fixed mode of %s: %04o -> %04o", path, fi.Mode().Perm(), mode)
}

// serverReissueReason says why the server certificate must be issued again,
// or returns "" when it can be kept.
func serverReissueReason(ca *pki.CA, certPath, keyPath string, hosts []string, now time.Time) string {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return "there is none yet"
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return "existing one is unreadable"
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return "its key is missing"
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil || !pki.KeyMatches(cert, key) {
		return "its key does not match"
	}
	if err := pki.Verify(cert, []*x509.Certificate{ca.Cert}, pki.KindServer, now); err != nil {
		return "existing one does not verify with this CA"
	}
	if m := pki.Missing(cert, hosts); len(m) > 0 {
		return fmt.Sprintf("existing one does not cover %v", m)
	}
	if cert.NotAfter.Before(now.Add(RenewBefore)) {
		return "existing one expires " + cert.NotAfter.UTC().Format("2006-01-02")
	}
	return ""
}

// currentSerial is the hex serial of the certificate at path, or "".
func currentSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	c, err := pki.ParseCertificate(b)
	if err != nil {
		return ""
	}
	return pki.Serial(c)
}

// CurrentCASerial is the serial of STATE_DIR/ca.pem, or "".
func CurrentCASerial(stateDir string) string {
	return currentSerial(filepath.Join(stateDir, CACertFile))
}

// DefaultCAName names a new CA after this host and the day it is made, with
// a random suffix, so that two CAs (after a rotation, or of two hosts) can
// be told apart in 'dtls list' and in x509 errors.
func DefaultCAName(now time.Time) string {
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	name := "dtls CA"
	if h, _ := os.Hostname(); h != "" {
		name += " for " + h
	}
	return fmt.Sprintf("%s %s %x", name, now.UTC().Format("2006-01-02"), id)
}

// validateMerged runs dockerd --validate (Docker 23 and later) on the
// merged daemon.json, written to a temporary file. dockerd checks keys,
// types and values there without reading the TLS files, which do not exist
// yet on a first run.
func validateMerged(r InitRequest, merged []byte) (bool, error) {
	dockerd, err := daemonconfig.CheckProgram(r.Dockerd)
	if err != nil {
		return false, hint(err, "install dockerd as root's, or unset DTLS_DOCKERD (sudo should not keep it)")
	}
	f, err := os.CreateTemp("", "dtls-daemon-*.json")
	if err != nil {
		return false, fmt.Errorf("validate merged %s: %w", r.DaemonJSON, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(merged)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("validate merged %s: %w", r.DaemonJSON, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = daemonconfig.Validate(ctx, dockerd, f.Name())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, daemonconfig.ErrValidateUnsupported):
		return false, nil
	}
	return false, hint(fmt.Errorf("dockerd would refuse the merged %s, nothing was changed: %w", r.DaemonJSON, err),
		"fix what dockerd names in %s, then run dtls init again (dtls init --dry-run shows the merge)", r.DaemonJSON)
}

// serverBundle is a server certificate with its key and CA, checked: a
// bundle from 'dtls issue-server', or an online CA's answer.
type serverBundle struct {
	caPEM, certPEM, keyPEM []byte
	cert                   *x509.Certificate
	// from says where it comes from, for the steps.
	from string
	// record, when set, is recorded in the inventory when installed (an
	// online CA's certificate).
	record *store.Record
	// pendingKey, when set, is the enrolment's saved key (EnrollKeyPath),
	// removed by the change that installs the bundle.
	pendingKey string
}

// recoverInterrupted finishes or undoes what a killed run left in the
// state directory (Open does), when there is a journal to replay.
func recoverInterrupted(stateDir string, o Options) error {
	entries, err := os.ReadDir(filepath.Join(stateDir, JournalDir))
	if err != nil || len(entries) == 0 {
		return nil
	}
	a, err := Open(stateDir, o)
	if err != nil {
		return err
	}
	a.Close()
	return nil
}

func readServerBundle(r InitRequest, dir string, hosts *[]string) (*serverBundle, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, hint(fmt.Errorf("--ca-from %q: %w", dir, err), "make the bundle on the CA's host with 'dtls issue-server HOST --out DIR'")
		}
		return b, nil
	}
	var sb serverBundle
	var err error
	if sb.caPEM, err = read(CACertFile); err != nil {
		return nil, err
	}
	if sb.certPEM, err = read(ServerCertFile); err != nil {
		return nil, err
	}
	if sb.keyPEM, err = read(ServerKeyFile); err != nil {
		return nil, err
	}
	roots, err := pki.ParseCertificates(sb.caPEM)
	if err != nil {
		return nil, fmt.Errorf("--ca-from: %s: %w", CACertFile, err)
	}
	if sb.cert, err = pki.ParseCertificate(sb.certPEM); err != nil {
		return nil, fmt.Errorf("--ca-from: %s: %w", ServerCertFile, err)
	}
	key, err := pki.ParsePrivateKey(sb.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--ca-from: %s: %w", ServerKeyFile, err)
	}
	if !pki.KeyMatches(sb.cert, key) {
		return nil, fmt.Errorf("--ca-from: %s does not match %s", ServerKeyFile, ServerCertFile)
	}
	if err := pki.Verify(sb.cert, roots, pki.KindServer, r.Now); err != nil {
		return nil, fmt.Errorf("--ca-from: %w", err)
	}
	if len(*hosts) == 0 {
		*hosts = pki.Hosts(sb.cert)
	} else if m := pki.Missing(sb.cert, *hosts); len(m) > 0 {
		return nil, hint(fmt.Errorf("--ca-from: the server certificate does not cover %v", m), "issue it again with 'dtls issue-server ... --host' on the CA's host")
	}
	sb.from = dir
	return &sb, nil
}

// planServerBundle installs a server bundle from 'dtls issue-server'
// (init --ca-from) into the certs directory.
func (a *Authority) planServerBundle(t *txn, r InitRequest, sb *serverBundle, res *InitResult) bool {
	certPath := filepath.Join(r.CertsDir, ServerCertFile)
	if r.DryRun {
		if sb.record == nil && r.CAURL != "" {
			res.say("would keep the server certificate from %s (%s) in %s", sb.from, pki.Describe(sb.cert), r.CertsDir)
			return false
		}
		res.say("would install the server bundle %s (%s) into %s", sb.from, pki.Describe(sb.cert), r.CertsDir)
		return true
	}
	reissued := false
	if old := currentSerial(certPath); old == pki.Serial(sb.cert) {
		res.say("kept server certificate %s (%s)", certPath, pki.Describe(sb.cert))
	} else {
		reissued = true
		t.Write(filepath.Join(r.CertsDir, ServerKeyFile), sb.keyPEM, KeyMode)
		t.Write(certPath, sb.certPEM, CertMode)
		if sb.record != nil {
			rec := *sb.record
			rec.Path = certPath
			t.DB.Insert = append(t.DB.Insert, rec)
			if old != "" {
				t.DB.Supersede = append(t.DB.Supersede, old)
			}
		}
		res.say("installed server certificate %s (%s) from %s", certPath, pki.Describe(sb.cert), sb.from)
	}
	t.Write(filepath.Join(r.CertsDir, CACertFile), sb.caPEM, CertMode)
	if sb.pendingKey != "" {
		t.Remove(sb.pendingKey)
	}
	return reissued
}
