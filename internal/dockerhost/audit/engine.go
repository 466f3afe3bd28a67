package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

// apiTimeout bounds each Engine API call when ctx has no earlier deadline.
const apiTimeout = 10 * time.Second

// engine is a minimal Engine API client: plain net/http over the daemon's
// unix socket (or plain TCP), no Docker SDK.
type engine struct {
	client *http.Client
	base   string

	// With TLS: the CA certificates of the client bundle, and the
	// certificates the daemon presented (recorded even when they fail
	// verification, so that the audit can say why).
	cas  []*x509.Certificate
	mu   sync.Mutex
	peer []*x509.Certificate
}

func newEngine(dockerHost, certPath string) (*engine, error) {
	u, err := url.Parse(dockerHost)
	if err != nil {
		return nil, fmt.Errorf("invalid docker host %q: %w", dockerHost, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Host + u.Path
		}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}
		return &engine{client: &http.Client{Transport: tr}, base: "http://docker"}, nil
	case "tcp", "http", "https":
		if certPath == "" {
			return &engine{client: &http.Client{Transport: &http.Transport{}}, base: "http://" + u.Host}, nil
		}
		e := &engine{base: "https://" + u.Host}
		tc, err := e.clientTLS(certPath, u.Hostname())
		if err != nil {
			return nil, err
		}
		e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		return e, nil
	}
	return nil, fmt.Errorf("docker host %q: only unix:// and tcp:// are supported", dockerHost)
}

// clientTLS reads a client bundle the way the Docker CLI reads
// DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) and verifies the daemon
// against ca.pem for host: an audit that skipped verification would prove
// nothing. The verification is crypto/tls's own (x509 Verify with the
// server name and serverAuth), made in VerifyConnection so that the
// certificates presented are recorded first.
func (e *engine) clientTLS(dir, host string) (*tls.Config, error) {
	id, err := bundle.LoadIdentity(dir)
	if err != nil {
		return nil, fmt.Errorf("client %w", err)
	}
	pair, pool, err := id.Credentials()
	if err != nil {
		return nil, fmt.Errorf("client %w", err)
	}
	// Credentials parsed ca.pem already: it holds certificates.
	e.cas, _ = pki.ParseCertificates(id.CAPEM)
	return &tls.Config{
		Certificates: []tls.Certificate{*pair}, MinVersion: tls.VersionTLS12,
		// Verified below, as crypto/tls would, after recording what the
		// daemon presented.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the daemon presented no certificate")
			}
			e.mu.Lock()
			e.peer = cs.PeerCertificates
			e.mu.Unlock()
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host})
			return err
		},
	}, nil
}

// presented returns the certificates the daemon presented, if any.
func (e *engine) presented() []*x509.Certificate {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peer
}

func (e *engine) get(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

type versionInfo struct {
	Version    string
	APIVersion string `json:"ApiVersion"`
}

type daemonInfo struct {
	SecurityOptions []string
	Plugins         struct{ Authorization []string }
}

type containerSummary struct {
	ID     string `json:"Id"`
	Names  []string
	Mounts []struct {
		Type        string
		Source      string
		Destination string
	}
}

// checkEngine asks the running daemon for its version, security options
// and containers. The three calls run concurrently; GET /containers/json
// with all=1 includes every container's mounts, so no per-container inspect
// is needed.
func (a *auditor) checkEngine(ctx context.Context, d *daemonConf) {
	var (
		ver                    versionInfo
		info                   daemonInfo
		list                   []containerSummary
		verErr, infoErr, lsErr error
	)
	e, err := newEngine(a.cfg.DockerHost, a.cfg.CertPath)
	if err == nil {
		defer e.client.CloseIdleConnections()
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); verErr = e.get(ctx, "/version", &ver) }()
		go func() { defer wg.Done(); infoErr = e.get(ctx, "/info", &info) }()
		go func() { defer wg.Done(); lsErr = e.get(ctx, "/containers/json?all=1", &list) }()
		wg.Wait()
	} else {
		verErr, infoErr, lsErr = err, err, err
	}
	unreachable := func(err error) string {
		reason := fmt.Sprintf("daemon not reachable at %s: %v", a.cfg.DockerHost, err)
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) {
			reason += " (run as root, or as a member of group docker)"
		}
		return reason
	}

	if verErr != nil {
		a.add(Finding{ID: "daemon-version", Status: Skip, Title: "daemon version and CVEs not checked", Detail: unreachable(verErr)})
	} else {
		authz := append(append([]string{}, d.authz...), info.Plugins.Authorization...)
		a.checkVersion(ver, authz)
	}
	if infoErr != nil {
		a.add(Finding{ID: "daemon-security-options", Status: Skip, Title: "daemon security options not checked", Detail: unreachable(infoErr)})
	} else {
		a.checkSecurityOptions(info.SecurityOptions)
	}
	if lsErr != nil {
		a.add(Finding{ID: "container-socket-mount", CIS: "5.32", Status: Skip, Title: "containers not checked for socket mounts", Detail: unreachable(lsErr)})
	} else {
		a.checkContainers(list)
	}
	if a.cfg.Remote {
		a.checkPresented(e, verErr)
	}
}

// checkPresented checks the server certificate a remote daemon presented
// in the TLS handshake, against the client bundle's CA: the one check of
// the daemon's certificate a remote audit can make.
func (a *auditor) checkPresented(e *engine, err error) {
	var peer []*x509.Certificate
	if e != nil {
		peer = e.presented()
	}
	switch {
	case len(peer) > 0:
		name := "server certificate presented by " + a.cfg.DockerHost
		caPath := filepath.Join(a.cfg.CertPath, clientenv.CAFile)
		a.checkServerCert(name, peer[0], e.cas, caPath, "on the Docker host: sudo dtls renew --server --restart")
	case a.cfg.CertPath == "":
		a.add(Finding{ID: "server-cert", Status: Skip, Title: "server certificate not checked",
			Detail: fmt.Sprintf("%s was asked over plain HTTP", a.cfg.DockerHost), Fix: "dtls audit --docker-host " + a.cfg.DockerHost + " --cert-path BUNDLE"})
	default:
		a.add(Finding{ID: "server-cert", Status: Skip, Title: "server certificate not checked", Detail: fmt.Sprintf("no TLS handshake with %s: %v", a.cfg.DockerHost, err)})
	}
}

// version is a Docker Engine version, e.g. 20.10.24.
type version [3]int

func (v version) less(w version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+))?(.*)$`) })

// parseVersion reads a daemon version leniently: "20.10.24+dfsg1" is
// 20.10.24 with suffix "+dfsg1".
func parseVersion(s string) (v version, suffix string, ok bool) {
	m := versionRE().FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return v, "", false
	}
	for i := 0; i < 3; i++ {
		if m[i+1] != "" {
			v[i], _ = strconv.Atoi(m[i+1])
		}
	}
	return v, m[4], true
}

// upstreamSuffix matches the suffixes of Docker's own builds (release
// candidates, the old -ce/-ee editions); anything else (+dfsg1, -0ubuntu1,
// .el9) is a distribution's package, which may carry backported fixes.
var upstreamSuffix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-(rc|beta|alpha|ce|ee|dev)`) })

// span is an affected range: from (inclusive) to fixed (exclusive).
type span struct{ from, fixed version }

// cve is a Docker Engine vulnerability and the versions it affects.
type cve struct {
	id, ghsa, what string
	affected       []span
}

// cves lists the advisories dtls checks. Both are AuthZ plugin bypasses:
// they matter only where an authorization plugin guards the API.
var cves = []cve{
	{
		// GHSA-v23v-6jw2-98fq; ranges from the advisory and the Go
		// vulnerability database (GO-2024-3005). The 2018 flaw it
		// regressed was fixed in 18.09.1, so 18.09.1-18.09.x are not
		// affected; older versions have the original flaw.
		id: "CVE-2024-41110", ghsa: "GHSA-v23v-6jw2-98fq",
		what: "AuthZ plugin bypass: a request with Content-Length 0 reaches the plugin without its body",
		affected: []span{
			{version{0, 0, 0}, version{18, 9, 1}},
			{version{19, 0, 0}, version{19, 3, 16}},
			{version{20, 0, 0}, version{20, 10, 28}},
			{version{23, 0, 0}, version{23, 0, 15}},
			{version{24, 0, 0}, version{24, 0, 10}},
			{version{25, 0, 0}, version{25, 0, 6}},
			{version{26, 0, 0}, version{26, 0, 3}},
			{version{26, 1, 0}, version{26, 1, 5}},
			{version{27, 0, 0}, version{27, 0, 4}},
			{version{27, 1, 0}, version{27, 1, 1}},
		},
	},
	{
		// GHSA-x744-4wpc-v9h2 (CVE record: "< 29.3.1 affected"), an
		// incomplete fix of CVE-2024-41110; fixed in Docker Engine 29.3.1
		// (moby docker-v29.3.1).
		id: "CVE-2026-34040", ghsa: "GHSA-x744-4wpc-v9h2",
		what: "AuthZ plugin bypass with an oversized request body",
		affected: []span{
			{version{0, 0, 0}, version{29, 3, 1}},
		},
	},
}

func (c cve) affects(v version) (fixed version, ok bool) {
	for _, s := range c.affected {
		if !v.less(s.from) && v.less(s.fixed) {
			return s.fixed, true
		}
	}
	return version{}, false
}

func (a *auditor) checkVersion(ver versionInfo, authz []string) {
	v, suffix, ok := parseVersion(ver.Version)
	if !ok {
		a.add(Finding{ID: "daemon-version", Status: Skip, Title: fmt.Sprintf("daemon version %q not understood: CVEs not checked", ver.Version)})
		return
	}
	a.add(Finding{ID: "daemon-version", Status: Pass, Title: fmt.Sprintf("Docker Engine %s (API %s)", ver.Version, ver.APIVersion)})
	distro := suffix != "" && !upstreamSuffix().MatchString(suffix)
	for _, c := range cves {
		id := strings.ToLower(c.id)
		fixed, hit := c.affects(v)
		if !hit {
			a.add(Finding{ID: id, Status: Pass, Title: fmt.Sprintf("Docker Engine %s is not affected by %s", ver.Version, c.id)})
			continue
		}
		f := Finding{ID: id, Status: Fail,
			Title: fmt.Sprintf("Docker Engine %s is affected by %s (%s), fixed in %s", ver.Version, c.id, c.what, fixed),
			Fix:   fmt.Sprintf("upgrade Docker Engine to %s or later (https://github.com/moby/moby/security/advisories/%s)", fixed, c.ghsa)}
		var notes []string
		if len(authz) == 0 {
			f.Status = Warn
			notes = append(notes, "no authorization plugin is configured, so there is nothing to bypass")
		} else {
			notes = append(notes, "authorization plugins in use: "+strings.Join(authz, ", "))
		}
		if distro {
			f.Status = Warn
			notes = append(notes, fmt.Sprintf("%q is a distribution's build: distributions backport security fixes without changing the upstream version, so check its tracker (Debian: https://security-tracker.debian.org/tracker/%s)", suffix, c.id))
			f.Fix = "upgrade the distribution's docker package, or check that its changelog names " + c.id
		}
		f.Detail = strings.Join(notes, "; ")
		a.add(f)
	}
}

// checkSecurityOptions reads GET /info's SecurityOptions, e.g.
// ["name=seccomp,profile=default", "name=apparmor", "name=userns"].
func (a *auditor) checkSecurityOptions(opts []string) {
	have := map[string]map[string]string{}
	for _, o := range opts {
		kv := map[string]string{}
		for _, part := range strings.Split(o, ",") {
			k, v, _ := strings.Cut(part, "=")
			kv[k] = v
		}
		if n := kv["name"]; n != "" {
			have[n] = kv
		}
	}
	switch sc, ok := have["seccomp"]; {
	case !ok:
		a.add(Finding{ID: "daemon-seccomp", CIS: "2.17", Status: Warn, Title: "seccomp is not available: containers run without a system call filter", Fix: "use a kernel with CONFIG_SECCOMP and a dockerd built with seccomp"})
	case sc["profile"] == "unconfined":
		a.add(Finding{ID: "daemon-seccomp", CIS: "2.17", Status: Warn, Title: "the daemon-wide seccomp profile is unconfined", Fix: `remove "seccomp-profile": "unconfined" from daemon.json`})
	default:
		a.add(Finding{ID: "daemon-seccomp", CIS: "2.17", Status: Pass, Title: "seccomp profile: " + sc["profile"]})
	}
	switch {
	case have["apparmor"] != nil:
		a.add(Finding{ID: "daemon-lsm", Status: Pass, Title: "AppArmor confines containers"})
	case have["selinux"] != nil:
		a.add(Finding{ID: "daemon-lsm", Status: Pass, Title: "SELinux confines containers"})
	default:
		a.add(Finding{ID: "daemon-lsm", Status: Warn, Title: "neither AppArmor nor SELinux confines containers",
			Fix: `enable AppArmor (apt-get install apparmor) or SELinux ("selinux-enabled": true in daemon.json)`})
	}
	switch {
	case have["rootless"] != nil:
		a.add(Finding{ID: "daemon-userns", CIS: "2.9", Status: Pass, Title: "the daemon runs rootless"})
	case have["userns"] != nil:
		a.add(Finding{ID: "daemon-userns", CIS: "2.9", Status: Pass, Title: "user namespace remapping is on"})
	default:
		a.add(Finding{ID: "daemon-userns", CIS: "2.9", Status: Warn,
			Title:  "neither user namespace remapping nor rootless mode: root in a container is root on the host",
			Detail: "a container escape, or a bind mount of a host path, acts as uid 0",
			Fix:    `add "userns-remap": "default" to daemon.json and restart docker (or run Docker rootless)`})
	}
}

// socketMountFix is how a container that mounts the Docker socket (src,
// seen in the container at inside) gets a role instead: a per-container
// socket of the dtls gateway mounted where the socket was (a container
// name is a valid socket name: [a-zA-Z0-9][a-zA-Z0-9_.-]+), readonly or
// the built-in role of its kind of tool (authz tenantRoles), or limited
// TLS credentials, which the authorization plugin limits too.
func socketMountFix(name, src, inside string) string {
	return fmt.Sprintf("docker rm -f %s, and re-create it without -v %s: with the dtls gateway, 'sudo dtls gateway socket add %s --role readonly' "+
		"and -v /run/dtls/sockets/%s.sock:%s in its place (every call is socket:%s's, with that role; "+
		"--role proxy for a reverse proxy such as traefik, updater for watchtower, ci-runner for a CI runner); or limited TLS credentials, "+
		"'dtls issue-client %s --role readonly --for-container' prints the docker run flags (the authorization plugin limits what it may do)",
		name, src, name, name, inside, name, name)
}

// checkContainers reports every container that bind-mounts the Docker
// socket or a directory holding it (CIS 5.32): whoever controls that
// container controls the daemon, i.e. the host.
func (a *auditor) checkContainers(list []containerSummary) {
	sockets := map[string]bool{}
	for _, s := range []string{a.cfg.Socket, DefaultSocket, "/run/docker.sock"} {
		if s == "" {
			continue
		}
		sockets[filepath.Clean(s)] = true
		if r, err := filepath.EvalSymlinks(s); err == nil {
			sockets[r] = true
		}
	}
	// exposes says what of the socket a mount's source holds, and where
	// the socket shows in the container (dest, as the container sees it).
	exposes := func(src, dest string) (string, string, bool) {
		if src == "" {
			return "", "", false
		}
		src = filepath.Clean(src)
		for s := range sockets {
			if s == src {
				return "the Docker socket", dest, true
			}
			if within(s, src) {
				rel, _ := filepath.Rel(src, s)
				return "the directory holding the Docker socket", filepath.Join(dest, rel), true
			}
		}
		return "", "", false
	}
	var bad []Finding
	for _, c := range list {
		name := strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
		for _, m := range c.Mounts {
			if m.Type != "bind" {
				continue
			}
			what, inside, hit := exposes(m.Source, m.Destination)
			if !hit {
				continue
			}
			bad = append(bad, Finding{ID: "container-socket-mount", CIS: "5.32", Status: Fail,
				Title:  fmt.Sprintf("container %s mounts %s (%s at %s)", name, what, m.Source, m.Destination),
				Detail: "whoever controls the container controls the daemon, i.e. is root on the host",
				Fix:    socketMountFix(name, m.Source, inside)})
			break
		}
	}
	if len(bad) == 0 {
		a.add(Finding{ID: "container-socket-mount", CIS: "5.32", Status: Pass, Title: fmt.Sprintf("none of %d containers mounts the Docker socket", len(list))})
		return
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Title < bad[j].Title })
	for _, f := range bad {
		a.add(f)
	}
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	if len(def) > 12 {
		return def[:12]
	}
	return def
}
