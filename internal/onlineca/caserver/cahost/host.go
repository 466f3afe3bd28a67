// Package cahost owns the online CA's host: the state directory `dtls ca
// init` makes and `dtls ca serve` and `dtls ca token` read, and the
// systemd unit that runs the server. The server itself is package
// caserver; this package is apart so that caserver, which tests of other
// packages start (internal/catest), imports nothing but pki, store and
// fleet.
//
//	STATE_DIR/                 0700
//	  ca.pem                   0644  the CA certificate
//	  ca-key.pem               0400  its key, unencrypted: the server runs unattended
//	  tls-cert.pem             0644  the listener's certificate, from the CA
//	  tls-key.pem              0600  its key
//	  ca.json                  0600  listen address, URL, database, validities
//	  dtls-ca.db               0600  the SQLite inventory (without --db-url)
//	  ca-next.pem              0644  during a rotation: the next CA (see RotationFile)
//	  ca-next-key.pem          0400  its key
//	  rotation.json            0600  the rotation's step
//	  journal/                 0700  a step of a rotation in progress (engine.Journal)
//	  operator/                0700  the first operator's bundle (role ca-operator)
//	    ca.pem cert.pem        0644
//	    key.pem                0600
//	    dtls.json              0644  clientenv.Meta, with ca_url
package cahost

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Files of the state directory, and their modes.
const (
	CACertFile  = engine.CACertFile
	CAKeyFile   = engine.CAKeyFile
	TLSCertFile = "tls-cert.pem"
	TLSKeyFile  = "tls-key.pem"
	ConfigFile  = engine.OnlineCAConfigFile
	DBFile      = "dtls-ca.db"
	OperatorDir = engine.OnlineCAOperatorDir

	DirMode    fs.FileMode = engine.StateDirMode
	CAKeyMode  fs.FileMode = engine.CAKeyMode
	KeyMode    fs.FileMode = 0o600
	CertMode   fs.FileMode = 0o644
	ConfigMode fs.FileMode = 0o600
)

// Defaults of the CA host.
const (
	DefaultStateDir = "/var/lib/dtls-ca"
	// DefaultListen is every interface, on cfssl's own port (`cfssl
	// serve` listens on 8888): the CA must be reachable from every host
	// of the fleet, and a firewall rule written for cfssl fits.
	DefaultListen = "0.0.0.0:8888"
	// DefaultOperator is the name of the operator certificate init makes.
	DefaultOperator = "ca-operator"
	// UnitName is the systemd unit of `dtls ca serve`.
	UnitName = "dtls-ca.service"
	// DefaultUnitDir is where init writes UnitName.
	DefaultUnitDir = "/etc/systemd/system"
)

// Duration is a time.Duration written as Go's duration text ("24h").
type Duration time.Duration

// MarshalJSON writes d as text.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(fleet.Duration(time.Duration(d)))
}

// UnmarshalJSON reads Go's duration text.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// HostConfig is ca.json.
type HostConfig struct {
	// Listen is the address `dtls ca serve` listens on.
	Listen string `json:"listen"`
	// URL is the base URL hosts and laptops reach the CA at (what
	// `dtls ca token` tells them to use).
	URL string `json:"url"`
	// DBURL is a PostgreSQL DSN; DBURLFile a file that holds one (read
	// at each start, so that a rotated password needs no new ca.json).
	// Neither: the SQLite inventory DBFile in the state directory.
	DBURL     string `json:"db_url,omitempty"`
	DBURLFile string `json:"db_url_file,omitempty"`
	// ClientValidity and ServerValidity are the lifetimes of the
	// certificates the CA signs.
	ClientValidity Duration `json:"client_validity"`
	ServerValidity Duration `json:"server_validity"`
}

// InitOptions are the settings of InitHost.
type InitOptions struct {
	// StateDir is the directory to make (DefaultStateDir when empty).
	StateDir string
	// Listen is the listener's address (DefaultListen when empty).
	Listen string
	// Hosts are the names and addresses the listener's certificate
	// covers (at least one).
	Hosts []string
	// URL is the base URL hosts use; https://Hosts[0]:PORT when empty.
	URL string
	// DBURL or DBURLFile: the PostgreSQL inventory (see HostConfig).
	DBURL, DBURLFile string
	// ClientValidity and ServerValidity: fleet.DefaultClientValidity and
	// pki.DefaultServerValidity when zero.
	ClientValidity, ServerValidity time.Duration
	// Operator is the name of the first operator's certificate
	// (DefaultOperator when empty).
	Operator string
	// CAName is the CA certificate's common name ("dtls online CA" when
	// empty).
	CAName string
	// Force replaces an existing state directory (a new CA: every
	// certificate of the old one stops being renewable).
	Force bool
	// UnitDir, when set, gets UnitName, written atomically before the
	// state directory is put in place. Exe is the dtls binary the unit
	// runs.
	UnitDir, Exe string
	Now          time.Time
}

// InitResult is what InitHost made.
type InitResult struct {
	StateDir    string
	Config      HostConfig
	CACert      *x509.Certificate
	OperatorDir string
	// OperatorNotAfter is when the operator's certificate expires: it
	// lives a client lifetime (ClientValidity), and 'dtls agent' renews
	// it.
	OperatorNotAfter time.Time
	// Unit is the systemd unit's text; UnitPath where it was written
	// ("" when UnitDir was not set).
	Unit     []byte
	UnitPath string
}

// ErrStateExists is InitHost's error for an existing state directory
// without Force.
var ErrStateExists = engine.ErrStateExists

// InitHost makes a CA host's state directory: a new CA, the listener's
// certificate, the first operator's bundle, ca.json and the inventory
// (SQLite in the directory, or the PostgreSQL database of DBURL) with the
// CA, the listener's and the operator's certificates and the operator's
// role.
//
// The state is planned as one engine change and built whole
// (engine.NewState): in a temporary directory next to StateDir, put in
// place by one rename (atomicfile.ReplaceDir with Force), so that a kill
// at any instant leaves no StateDir (or the old one) or a complete one,
// and a leftover temporary directory, which the next InitHost removes.
// On PostgreSQL the records are written in one transaction that renames
// the directory into place before it commits: a failure leaves no row,
// and a kill between the rename and the commit leaves a state directory
// whose records OpenHost writes (completeInventory).
func InitHost(o InitOptions) (*InitResult, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	// Both go into the unit: a newline in DTLS_STATE_DIR wrote an
	// ExecStartPre=+ line, root outside the unit's sandbox (a second red
	// team round; the gateway's and the plugin's units check theirs).
	if err := daemonconfig.CheckUnitWord("--state-dir", dir); err != nil {
		return nil, err
	}
	if o.Exe != "" {
		if err := daemonconfig.CheckUnitWord("the dtls program", o.Exe); err != nil {
			return nil, err
		}
	}
	ns := &engine.NewState{Dir: dir, Force: o.Force, Marker: ConfigFile, Kind: "an online CA's",
		Recorder: "dtls ca serve", BeforeRename: beforeRename}
	if err := ns.Begin(); err != nil {
		return nil, err
	}
	defer ns.Abort()

	cfg := HostConfig{
		Listen: o.Listen, URL: o.URL, DBURL: o.DBURL, DBURLFile: o.DBURLFile,
		ClientValidity: Duration(o.ClientValidity), ServerValidity: Duration(o.ServerValidity),
	}
	// Check the database before making anything: a wrong URL fails
	// here, not after a CA was made.
	dsn, err := cfg.dsn()
	if err != nil {
		return nil, err
	}
	t, res, err := planInit(o, dir, cfg)
	if err != nil {
		return nil, err
	}
	open := func(tmp string) (*store.Store, error) { return openInventory(dsn, tmp) }
	if err := ns.Commit(t, open, dsn != ""); err != nil {
		return nil, err
	}
	return res, nil
}

// setDefaults fills the options left empty.
func (o *InitOptions) setDefaults() {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Operator == "" {
		o.Operator = DefaultOperator
	}
	if o.CAName == "" {
		o.CAName = "dtls online CA"
	}
	if o.ClientValidity == 0 {
		o.ClientValidity = fleet.DefaultClientValidity
	}
	if o.ServerValidity == 0 {
		o.ServerValidity = pki.DefaultServerValidity
	}
}

// validate checks the options, and sets o.URL from the first host and the
// listener's port when it is empty.
func (o *InitOptions) validate() error {
	if o.DBURL != "" && o.DBURLFile != "" {
		return errors.New("give the database as a URL or as a file holding one, not both")
	}
	if err := o.validateNames(); err != nil {
		return err
	}
	if o.ClientValidity < 0 || o.ServerValidity < 0 {
		return errors.New("negative certificate validity")
	}
	return o.validateURL()
}

// validateNames checks the listener's hosts and the operator's name.
func (o *InitOptions) validateNames() error {
	if len(o.Hosts) == 0 {
		return errors.New("the listener's certificate needs at least one host name or address")
	}
	for _, h := range o.Hosts {
		if err := pki.ValidateHost(h); err != nil {
			return err
		}
	}
	if err := pki.ValidateName(o.Operator); err != nil {
		return fmt.Errorf("operator name: %w", err)
	}
	return nil
}

// validateURL checks the listen address, and sets o.URL from the first
// host and its port when it is empty.
func (o *InitOptions) validateURL() error {
	_, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("listen address %q: port %q is not a number from 1 to 65535", o.Listen, port)
	}
	if o.URL == "" {
		o.URL = "https://" + net.JoinHostPort(o.Hosts[0], port)
	}
	if u, err := url.Parse(o.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("CA URL %q: want https://HOST[:PORT]", o.URL)
	}
	o.URL = strings.TrimSuffix(o.URL, "/")
	return nil
}

// planInit plans the state directory dir as one engine change: the CA,
// the listener's certificate, ca.json, the first operator's bundle, their
// records and the operator's role; then the unit, when o.UnitDir is set,
// which is written before the state is put in place: a kill after it
// leaves a unit that fails to start, and no state, and running init
// again writes both.
func planInit(o InitOptions, dir string, cfg HostConfig) (*engine.Txn, *InitResult, error) {
	ca, err := pki.NewCA(pki.CARequest{CommonName: o.CAName, Now: o.Now})
	if err != nil {
		return nil, nil, err
	}
	t := engine.NewTxn("ca-init")
	engine.PlanCA(t, dir, ca, ca.KeyPEM, CertMode)
	listener, listenerRec, err := engine.IssueListener(ca, o.Hosts[0], o.Hosts, o.Now)
	if err != nil {
		return nil, nil, fmt.Errorf("listener certificate: %w", err)
	}
	listenerRec.Path = filepath.Join(dir, TLSCertFile)
	t.Write(filepath.Join(dir, TLSCertFile), listener.CertPEM, CertMode)
	t.Write(filepath.Join(dir, TLSKeyFile), listener.KeyPEM, KeyMode)
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	t.Write(filepath.Join(dir, ConfigFile), append(cfgJSON, '\n'), ConfigMode)
	opRec, err := planOperator(t, o, dir, ca)
	if err != nil {
		return nil, nil, err
	}
	t.DB.Insert = append(t.DB.Insert, listenerRec, opRec)
	t.DB.Roles = map[string]string{o.Operator: fleet.OperatorRole}

	res := &InitResult{StateDir: dir, Config: cfg, CACert: ca.Cert, OperatorDir: filepath.Join(dir, OperatorDir),
		OperatorNotAfter: opRec.NotAfter.UTC(), Unit: Unit(o.Exe, dir)}
	if o.UnitDir != "" {
		// A --unit-dir that does not exist yet is made, as systemd's
		// own unit directories are (0755: systemd reads units as any
		// user).
		res.UnitPath = filepath.Join(o.UnitDir, UnitName)
		t.Mkdir(o.UnitDir, 0o755)
		t.Write(res.UnitPath, res.Unit, 0o644)
	}
	return t, res, nil
}

// planOperator issues the first operator's certificate and plans its
// bundle, OperatorDir; it returns the certificate's record.
func planOperator(t *engine.Txn, o InitOptions, dir string, ca *pki.CA) (store.Record, error) {
	csrPEM, opKey, err := pki.NewCSR(o.Operator, "")
	if err != nil {
		return store.Record{}, err
	}
	opRec, err := engine.SignCSR(ca, engine.Holder{Kind: store.KindClient, Name: o.Operator, Role: fleet.OperatorRole}, csrPEM, o.Now, engine.Validity{Client: o.ClientValidity})
	if err != nil {
		return store.Record{}, fmt.Errorf("operator certificate: %w", err)
	}
	opRec.Path = filepath.Join(dir, OperatorDir)
	files, err := bundle.Files(ca.CertPEM, []byte(opRec.PEM), opKey, clientenv.Meta{
		Name: o.Operator, Server: o.URL, NotAfter: opRec.NotAfter.UTC(), Serial: opRec.Serial, CAURL: o.URL,
	})
	if err != nil {
		return store.Record{}, err
	}
	t.Bundle(opRec.Path, files)
	return opRec, nil
}

// beforeRename is called before the state directory is renamed into
// place (tests make that rename fail).
var beforeRename = func(tmp, dir string) {}

// Unit is the systemd unit that runs `exe ca serve --state-dir
// stateDir`: as root without capabilities (it reads only root's files;
// CAP_NET_BIND_SERVICE is kept for a port below 1024), writing only the
// state directory, restarted on failure; logs go to the journal.
func Unit(exe, stateDir string) []byte {
	if exe == "" {
		exe = "/usr/local/bin/dtls"
	}
	return []byte(`# Written by dtls ca init: the online CA of the Docker fleet.
[Unit]
Description=dtls online CA (certificates and revocation list for the Docker fleet)
Documentation=https://github.com/dtls-tool/dtls
Wants=network-online.target
After=network-online.target postgresql.service

[Service]
ExecStart=` + exe + ` ca serve --state-dir ` + stateDir + `
Restart=on-failure
RestartSec=2s
# SIGTERM: the server stops accepting, finishes the requests in flight.
TimeoutStopSec=70s
UMask=0077
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=` + stateDir + `
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`)
}

// dsn is the PostgreSQL DSN of the configuration, "" for SQLite.
func (c HostConfig) dsn() (string, error) {
	if c.DBURL != "" {
		return c.DBURL, nil
	}
	if c.DBURLFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.DBURLFile)
	if err != nil {
		return "", fmt.Errorf("read the database URL: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("read the database URL: %q is empty", c.DBURLFile)
	}
	return dsn, nil
}

// openInventory opens the PostgreSQL inventory dsn, or, when dsn is "",
// the SQLite one in the state directory dir.
func openInventory(dsn, dir string) (*store.Store, error) {
	if dsn != "" {
		return store.OpenPostgres(dsn)
	}
	return store.Open(filepath.Join(dir, DBFile))
}

// Host is an opened CA host: its configuration, CA, listener certificate
// and inventory.
type Host struct {
	Dir             string
	Config          HostConfig
	CA              *pki.CA
	TLSCert, TLSKey []byte
	Store           *store.Store
	// Next is the next CA during a rotation, Step the rotation's step
	// ("" outside one), TrustBegan when its trust step began.
	Next       *pki.CA
	Step       string
	TrustBegan time.Time
}

// OpenHost opens the state directory dir that InitHost made.
func OpenHost(dir string) (*Host, error) {
	h := &Host{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA state directory %q: no %s (run dtls ca init)", dir, ConfigFile)
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &h.Config); err != nil {
		return nil, fmt.Errorf("read %q: %w", filepath.Join(dir, ConfigFile), err)
	}
	dsn, err := h.Config.dsn()
	if err != nil {
		return nil, err
	}
	if h.Store, err = openInventory(dsn, dir); err != nil {
		return nil, err
	}
	// Under the lock the server takes for each step of a rotation
	// (rotation.locked): load recovers what a killed run left, and must
	// not take a step in progress for one.
	l, err := engine.AcquireLock(dir, 0, nil)
	if err != nil {
		h.Store.Close()
		return nil, err
	}
	err = h.load()
	l.Release()
	if err != nil {
		h.Store.Close()
		return nil, err
	}
	return h, nil
}

// load reads the CAs and the listener's files, after finishing a step of
// a rotation that was killed (it rewrites ca.pem and the listener's
// files), and completes the inventory.
func (h *Host) load() error {
	read := func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(h.Dir, name))
	}
	var err error
	if h.Step, h.Next, h.TrustBegan, err = recoverRotation(h.Dir, h.Store); err != nil {
		return err
	}
	if h.CA, err = engine.LoadCA(h.Dir, CACertFile, CAKeyFile, nil); err != nil {
		return err
	}
	if h.TLSCert, err = read(TLSCertFile); err != nil {
		return err
	}
	if h.TLSKey, err = read(TLSKeyFile); err != nil {
		return err
	}
	return h.completeInventory()
}

// completeInventory records the listener's and the first operator's
// certificates of the state directory when the inventory lacks them,
// with the operator's role when its name has none: an InitHost on
// PostgreSQL killed between renaming the state into place and its
// COMMIT left them out. A certificate that the host's CAs did not sign
// is an error, never recorded.
func (h *Host) completeInventory() error {
	var change store.Change
	for _, f := range []struct {
		path, recPath string
		kind          store.Kind
	}{
		{filepath.Join(h.Dir, TLSCertFile), filepath.Join(h.Dir, TLSCertFile), store.KindServer},
		{filepath.Join(h.Dir, OperatorDir, "cert.pem"), filepath.Join(h.Dir, OperatorDir), store.KindClient},
	} {
		certPEM, err := os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) && f.kind == store.KindClient {
			continue // the operator's bundle may have moved
		} else if err != nil {
			return err
		}
		c, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return fmt.Errorf("%q: %w", f.path, err)
		}
		has, err := h.Store.Has(pki.Serial(c))
		if err != nil {
			return err
		}
		if has {
			continue
		}
		signer := h.CA
		if c.CheckSignatureFrom(h.CA.Cert) != nil {
			if h.Next == nil || c.CheckSignatureFrom(h.Next.Cert) != nil {
				return fmt.Errorf("%q: certificate %s is not signed by the CA of %q", f.path, pki.Serial(c), h.Dir)
			}
			signer = h.Next
		}
		change.Insert = append(change.Insert, store.FromCert(c, certPEM, f.kind, pki.Serial(signer.Cert), f.recPath))
		if f.kind == store.KindClient {
			cur, err := h.Store.Role(c.Subject.CommonName)
			if err != nil {
				return err
			}
			if cur == "" {
				change.Roles = map[string]string{c.Subject.CommonName: fleet.OperatorRole}
			}
		}
	}
	return h.Store.Apply(change)
}

// Close closes the inventory.
func (h *Host) Close() error { return h.Store.Close() }

// Server is the online CA of the host, logging to log. A rotation made
// through its API (fleet.PathRotate) is written to the state directory
// and in force in this server at once. Other servers of the same
// inventory (PostgreSQL) read the state directory only at start: restart
// each of them after each step of a rotation.
func (h *Host) Server(now func() time.Time, log *slog.Logger) (*caserver.Server, error) {
	return caserver.New(caserver.Config{
		Store: h.Store, CA: h.CA, Next: h.Next, Step: h.Step, TrustBegan: h.TrustBegan, Rotation: rotation{h.Dir, h.Store}, Now: now, Log: log,
		ClientValidity: time.Duration(h.Config.ClientValidity), ServerValidity: time.Duration(h.Config.ServerValidity),
		Listener: h.TLSCert,
	})
}

// ShutdownTimeout bounds the wait for requests in flight when Serve
// stops.
const ShutdownTimeout = 60 * time.Second

// Serve serves s over HTTPS on ln with the host's listener certificate
// until ctx is done, then stops accepting and waits for the requests in
// flight (at most ShutdownTimeout). It returns nil after such a stop.
func (h *Host) Serve(ctx context.Context, s *caserver.Server, ln net.Listener) error {
	tc, err := s.TLSConfig(h.TLSCert, h.TLSKey)
	if err != nil {
		return err
	}
	hs := s.HTTPServer(tc)
	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
