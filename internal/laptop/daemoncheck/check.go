// Package daemoncheck dials a Docker daemon with a client bundle, as the
// Docker CLI would, and explains a failure in words: the daemon's
// certificate is from a CA the bundle does not trust (a CA rotation), the
// name is not in it, the client certificate expired or was refused, or
// nothing listens. It is apart from package clientenv, which 'dtls env'
// loads at every shell start and keeps free of crypto and networking.
package daemoncheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

// DefaultCheckTimeout bounds Check when its context has no deadline. Without
// it a firewall that drops packets would hold Check for the operating
// system's connect timeout (over two minutes on Linux, tcp_syn_retries 6).
const DefaultCheckTimeout = 10 * time.Second

// DefaultTLSPort is the port Check dials when DOCKER_HOST has none: the
// Docker CLI's default for a TCP host with TLS (DefaultTLSHTTPPort, 2376,
// in docker/cli opts/hosts.go).
const DefaultTLSPort = "2376"

// CheckResult is what a successful Check learnt about the daemon.
type CheckResult struct {
	// DockerHost is the daemon URL that was checked.
	DockerHost string `json:"docker_host"`
	// ServerName is the name the daemon's certificate was verified for: the
	// host part of DockerHost, as the Docker CLI verifies it.
	ServerName string `json:"server_name"`
	// Version is the daemon's version, from GET /version.
	Version string `json:"version"`
	// APIVersion is the daemon's API version, from GET /version.
	APIVersion string `json:"api_version"`
	// TLSVersion is the negotiated protocol, e.g. "TLS 1.3".
	TLSVersion string `json:"tls_version"`
	// Took is how long the check took, connection included.
	Took time.Duration `json:"took_ns"`
}

// Problem names why Check failed, for a program to act on; CheckError says
// it in words.
type Problem string

// The problems Check tells apart.
const (
	// ProblemUntrustedServer: the daemon's certificate is signed by a CA
	// that the bundle's ca.pem does not hold, typically after a CA rotation
	// on the CA host (or someone else answers on the address).
	ProblemUntrustedServer Problem = "untrusted-server"
	// ProblemNameMismatch: the host in DOCKER_HOST is not one of the names
	// or addresses of the daemon's certificate.
	ProblemNameMismatch Problem = "name-mismatch"
	// ProblemServerCert: the daemon's certificate is from a trusted CA but
	// unusable for another reason: expired, not yet valid (check the clock)
	// or not for server authentication.
	ProblemServerCert Problem = "server-certificate"
	// ProblemClientExpired: the client certificate has expired or is not
	// yet valid. Checked locally, before dialing.
	ProblemClientExpired Problem = "client-expired"
	// ProblemClientRejected: the daemon refused the client certificate,
	// with a TLS alert or (TLS 1.3) by closing the connection, or its
	// authorization plugin denied the request (a revoked certificate).
	ProblemClientRejected Problem = "client-rejected"
	// ProblemNoListener: the daemon could not be reached: the name does not
	// resolve, the connection was refused, or nothing answered in time.
	ProblemNoListener Problem = "no-listener"
	// ProblemNotDocker: something answered, but not as a Docker daemon
	// with TLS does.
	ProblemNotDocker Problem = "not-docker"
	// ProblemBundle: the bundle itself is broken: a file is missing or
	// unreadable, or key.pem is not cert.pem's key.
	ProblemBundle Problem = "bundle"
	// ProblemUnknown: Check could not tell why; Err says what happened.
	ProblemUnknown Problem = "unknown"
)

// CheckError is the error Check returns when the daemon cannot be used with
// the bundle. Its message is a sentence for a person; Hint says what to do.
type CheckError struct {
	// Problem is the kind of failure.
	Problem Problem `json:"problem"`
	// Msg says what is wrong, naming the address, file or certificate.
	Msg string `json:"message"`
	// Hint says what to do about it, or is empty.
	Hint string `json:"hint,omitempty"`
	// Err is the underlying error, or nil.
	Err error `json:"-"`
}

func (e *CheckError) Error() string { return e.Msg }
func (e *CheckError) Unwrap() error { return e.Err }

// Check connects to the daemon at dockerHost (b.Meta.DockerHost when empty)
// with the bundle b, the way the Docker CLI does with DOCKER_TLS_VERIFY=1
// and DOCKER_CERT_PATH=b.Dir, and asks it GET /_ping and GET /version. On
// success it returns what the daemon said; on failure it returns a
// *CheckError that says why in words.
//
// The connection is made as the Docker CLI makes it, with Go's crypto/tls
// and net/http (docker/go-connections tlsconfig.Client and
// sockets.ConfigureTransport): ca.pem as the only roots, cert.pem and
// key.pem as the client certificate, the host of dockerHost as the name the
// server certificate must hold, TLS 1.2 or later, HTTP/1.1, and a proxy from
// HTTPS_PROXY/NO_PROXY when one applies to the host.
//
// The client certificate's validity is checked at now before dialing;
// dockerd checks it with its own clock. A ctx without a deadline gets
// DefaultCheckTimeout. A dockerHost that is not tcp://HOST[:PORT] is an
// error that is not a *CheckError.
func Check(ctx context.Context, b *clientenv.Bundle, dockerHost string, now time.Time) (*CheckResult, error) {
	start := time.Now()
	if dockerHost == "" {
		dockerHost = b.Meta.DockerHost
	}
	t, err := parseCheckTarget(dockerHost)
	if err != nil {
		return nil, err
	}
	creds, err := loadCheckCredentials(b, now)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCheckTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	c := &checker{target: t, creds: creds, timeout: deadline.Sub(start).Round(time.Millisecond)}
	if req, err := http.NewRequest(http.MethodGet, t.base+"/_ping", nil); err == nil {
		if u, err := http.ProxyFromEnvironment(req); err == nil && u != nil {
			c.proxy = u.Redacted()
		}
	}

	transport := &http.Transport{
		// As the Docker CLI: it honours HTTPS_PROXY and NO_PROXY for a
		// tcp:// daemon (go-connections sockets.ConfigureTransport), which
		// is why `dtls env --no-proxy` exists.
		Proxy:           http.ProxyFromEnvironment,
		DialContext:     (&net.Dialer{}).DialContext,
		TLSClientConfig: c.tlsConfig(),
		// One connection for both requests: the daemon is asked twice
		// but the handshake is made once.
		MaxIdleConnsPerHost: 1,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		// A Docker daemon never redirects; something that does is not one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx = httptrace.WithClientTrace(ctx, c.trace())

	ping, err := c.get(ctx, client, "/_ping")
	if err != nil {
		return nil, err
	}
	if ping.status != http.StatusOK || strings.TrimSpace(string(ping.body)) != "OK" || ping.header.Get("Api-Version") == "" {
		return nil, c.notDocker("GET /_ping", ping)
	}
	ver, err := c.get(ctx, client, "/version")
	if err != nil {
		return nil, err
	}
	var v struct {
		Version    string `json:"Version"`
		APIVersion string `json:"ApiVersion"`
	}
	if ver.status != http.StatusOK || json.Unmarshal(ver.body, &v) != nil || v.Version == "" {
		return nil, c.notDocker("GET /version", ver)
	}
	c.mu.Lock()
	tlsVersion := c.tlsVersion
	c.mu.Unlock()
	return &CheckResult{
		DockerHost: dockerHost,
		ServerName: t.host,
		Version:    v.Version,
		APIVersion: v.APIVersion,
		TLSVersion: tls.VersionName(tlsVersion),
		Took:       time.Since(start),
	}, nil
}

// checkTarget is a parsed DOCKER_HOST.
type checkTarget struct {
	url  string // as given
	host string // without brackets: the name the certificate must hold
	addr string // HOST:PORT to dial
	base string // https://HOST:PORT[/path]
}

func parseCheckTarget(dockerHost string) (checkTarget, error) {
	u, err := url.Parse(dockerHost)
	if err != nil || u.Scheme != "tcp" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" {
		return checkTarget{}, fmt.Errorf("daemon URL %q: want tcp://HOST:PORT", dockerHost)
	}
	port := u.Port()
	if port == "" {
		port = DefaultTLSPort
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	// The Docker CLI accepts a base path (tcp://host:port/path) and puts
	// the API below it.
	return checkTarget{
		url:  dockerHost,
		host: u.Hostname(),
		addr: addr,
		base: "https://" + addr + strings.TrimRight(u.EscapedPath(), "/"),
	}, nil
}

// checkCredentials are the parsed files of a bundle.
type checkCredentials struct {
	dir   string
	roots *x509.CertPool
	cas   []*x509.Certificate
	pair  tls.Certificate
	leaf  *x509.Certificate
	name  string // the client's name, for hints
	// caURL is the online CA the bundle was enrolled with (dtls.json's
	// ca_url), or "": the fix for such a bundle is the agent or a new
	// enrolment, never a command on a CA host it does not have.
	caURL string
	// dockerHost is dtls.json's docker_host, for the enroll command line.
	dockerHost string
}

// loadCheckCredentials reads the bundle's files, and refuses a client
// certificate that is not valid at now: dockerd would refuse it, and saying
// so is better than a TLS alert.
func loadCheckCredentials(b *clientenv.Bundle, now time.Time) (*checkCredentials, error) {
	broken := func(format string, args ...any) *CheckError {
		return &CheckError{Problem: ProblemBundle, Msg: fmt.Sprintf("bundle %q: ", b.Dir) + fmt.Sprintf(format, args...), Hint: bundleHint(b.Meta.CAURL, b.Meta.DockerHost)}
	}
	id, err := bundle.LoadIdentity(b.Dir)
	var fe *bundle.FileError
	var pe *fs.PathError
	switch {
	case errors.As(err, &fe) && errors.As(fe.Err, &pe):
		return nil, &CheckError{
			Problem: ProblemBundle,
			Msg:     fmt.Sprintf("bundle %q: cannot read %s: %v", b.Dir, fe.File, pe.Err),
			Hint:    bundleHint(b.Meta.CAURL, b.Meta.DockerHost),
			Err:     fe.Err,
		}
	case errors.As(err, &fe) && errors.Is(err, pki.ErrNoCertificate):
		return nil, broken("%s holds no PEM certificate", fe.File)
	case errors.As(err, &fe):
		return nil, broken("%s: %v", fe.File, fe.Err)
	case err != nil:
		return nil, err
	}
	cr := &checkCredentials{dir: b.Dir, roots: x509.NewCertPool(), leaf: id.Cert, name: b.Meta.Name, caURL: b.Meta.CAURL, dockerHost: b.Meta.DockerHost}
	if cr.cas, err = pki.ParseCertificates(id.CAPEM); errors.Is(err, pki.ErrNoCertificate) {
		return nil, broken("ca.pem holds no PEM certificate")
	} else if err != nil {
		return nil, broken("ca.pem: %v", err)
	}
	for _, ca := range cr.cas {
		cr.roots.AddCert(ca)
	}
	if cr.pair, err = tls.X509KeyPair(id.CertPEM, id.KeyPEM); err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, broken("key.pem is not the key of cert.pem")
		}
		return nil, broken("key.pem: %v", err)
	}
	if cr.name == "" {
		cr.name = cr.leaf.Subject.CommonName
	}
	const day = "2006-01-02 15:04 MST"
	switch {
	case now.After(cr.leaf.NotAfter):
		return nil, &CheckError{
			Problem: ProblemClientExpired,
			Msg:     fmt.Sprintf("the client certificate %q (%s) expired on %s", cr.leaf.Subject.CommonName, filepath.Join(b.Dir, clientenv.CertFile), cr.leaf.NotAfter.UTC().Format(day)),
			Hint:    cr.renewHint(true),
		}
	case now.Before(cr.leaf.NotBefore):
		return nil, &CheckError{
			Problem: ProblemClientExpired,
			Msg: fmt.Sprintf("the client certificate %q (%s) is not valid before %s, and this machine's clock says %s",
				cr.leaf.Subject.CommonName, filepath.Join(b.Dir, clientenv.CertFile), cr.leaf.NotBefore.UTC().Format(day), now.UTC().Format(day)),
			Hint: "check the clock of this machine and of the CA host (timedatectl); a certificate issued by a CA host whose clock runs ahead is not valid yet",
		}
	}
	return cr, nil
}

// bundleHint is the fix for a bundle whose files are broken: a bundle
// enrolled with an online CA is enrolled again, any other imported again.
func bundleHint(caURL, dockerHost string) string {
	if caURL != "" {
		return enrollHint(caURL, dockerHost)
	}
	return "import the bundle again ('dtls import FILE'), or ask the CA host for a new one"
}

// enrollHint is how to get a new bundle from the online CA at caURL: a new
// token, as the first time ('dtls enroll', cmd/enroll.go).
func enrollHint(caURL, dockerHost string) string {
	if dockerHost == "" {
		dockerHost = "tcp://HOST:2376"
	}
	return fmt.Sprintf("ask the CA's operator for a new client token ('dtls ca token --client NAME') and enrol again: dtls enroll %s TOKEN --docker-host %s --force", caURL, dockerHost)
}

// renewHint says how to get a renewed certificate. An enrolled bundle is
// renewed by 'dtls agent' through the online CA, with mutual TLS and the
// current certificate: an expired one cannot sign in, and only a new
// enrolment helps. The online CA has no 'dtls renew': that is for a CA
// host's own bundles.
func (cr *checkCredentials) renewHint(expired bool) string {
	switch {
	case cr.caURL != "" && expired:
		return "the bundle was enrolled with the online CA at " + cr.caURL + ", which renews only a certificate that is still valid: " + enrollHint(cr.caURL, cr.dockerHost)
	case cr.caURL != "":
		return "renew the bundle through the online CA at " + cr.caURL + ": 'dtls agent --once' (and keep 'dtls agent' running, see examples/agent); or " + enrollHint(cr.caURL, cr.dockerHost)
	}
	name := cr.name
	if name == "" {
		name = "NAME"
	}
	return fmt.Sprintf("ask for a renewed bundle ('dtls renew %s --archive -' on the CA host) and import it with 'dtls import'", name)
}

// checker holds one Check's state. The trace callbacks run on the
// transport's goroutines, hence mu.
type checker struct {
	target  checkTarget
	creds   *checkCredentials
	timeout time.Duration
	proxy   string // the proxy the request goes through, or ""

	mu            sync.Mutex
	connected     bool     // a TCP connection was made (to the proxy, if any)
	handshakeDone bool     // the TLS handshake completed on the client's side
	tlsVersion    uint16   // the negotiated version
	certRequested bool     // the daemon asked for a client certificate
	certSent      bool     // and one was sent
	acceptable    []string // the CAs the daemon said it accepts clients from
	gotResponse   bool     // a byte of an HTTP answer arrived
}

// tlsConfig is the Docker CLI's client configuration for a bundle.
func (c *checker) tlsConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    c.creds.roots,
		ServerName: c.target.host,
		// go-connections tlsconfig.ClientDefault: TLS 1.2 at least.
		MinVersion: tls.VersionTLS12,
		// The same choice crypto/tls makes with Certificates set
		// (Config.getClientCertificate): send the certificate only if the
		// daemon accepts its issuer and signature algorithm, else send
		// none. Done here to record what the daemon asked for, which
		// explains a refusal.
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			err := cri.SupportsCertificate(&c.creds.pair)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.certRequested = true
			c.acceptable = c.acceptable[:0]
			for _, der := range cri.AcceptableCAs {
				c.acceptable = append(c.acceptable, dnName(der))
			}
			if err != nil {
				return new(tls.Certificate), nil
			}
			c.certSent = true
			return &c.creds.pair, nil
		},
	}
}

// dnName formats a DER distinguished name, preferring its common name.
func dnName(der []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		return fmt.Sprintf("%x", der)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&seq)
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}

func (c *checker) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				c.mu.Lock()
				c.connected = true
				c.mu.Unlock()
			}
		},
		TLSHandshakeDone: func(st tls.ConnectionState, err error) {
			if err == nil {
				c.mu.Lock()
				c.handshakeDone, c.tlsVersion = true, st.Version
				c.mu.Unlock()
			}
		},
		GotFirstResponseByte: func() {
			c.mu.Lock()
			c.gotResponse = true
			c.mu.Unlock()
		},
	}
}

// answer is an HTTP answer, its body cut at 64 KiB.
type answer struct {
	status int
	line   string
	header http.Header
	body   []byte
}

func (c *checker) get(ctx context.Context, client *http.Client, path string) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.target.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("daemon URL %q: %w", c.target.url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, c.classify(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, c.classify(err)
	}
	a := &answer{status: resp.StatusCode, line: resp.Status, header: resp.Header, body: body}
	// The authorization plugin's denial: dockerd answers 403 with
	// {"message":"authorization denied by plugin NAME: MSG"}
	// (moby pkg/authorization/authz.go, newAuthorizationError). dtls's
	// plugin denies this way a certificate that is revoked or superseded.
	if resp.StatusCode == http.StatusForbidden {
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &m) == nil && strings.Contains(m.Message, "authorization denied by plugin") {
			return nil, &CheckError{
				Problem: ProblemClientRejected,
				Msg:     fmt.Sprintf("the daemon at %s accepted the TLS connection but refused the request GET %s: %s", c.target.addr, path, m.Message),
				Hint:    c.pluginRefusedHint(),
			}
		}
	}
	return a, nil
}

func (c *checker) notDocker(what string, a *answer) *CheckError {
	server := a.header.Get("Server")
	if server != "" {
		server = fmt.Sprintf(" (Server: %q)", server)
	}
	return &CheckError{
		Problem: ProblemNotDocker,
		Msg:     fmt.Sprintf("%s speaks TLS but does not answer like a Docker daemon: %s gave %q%s", c.target.addr, what, a.line, server),
		Hint:    "check the port in DOCKER_HOST: dockerd's TLS port is usually 2376, and another service may listen on this one",
	}
}

// The TLS alerts that mean the daemon refused the client certificate, as
// crypto/tls words them (alertText in crypto/tls/alert.go; RFC 8446
// section 6.2). A Go server such as dockerd sends bad_certificate for a
// certificate that does not verify and certificate_required when none was
// sent (crypto/tls handshake_server*.go).
var clientRefusalAlerts = []string{
	"bad certificate", "unsupported certificate", "revoked certificate",
	"expired certificate", "unknown certificate", "unknown certificate authority",
	"access denied", "certificate required", "handshake failure",
}

// Windows error numbers (winerror.h, WSAE*), which syscall's ECONNREFUSED
// and friends do not match there.
const (
	wsaeConnReset   = 10054
	wsaeNetUnreach  = 10051
	wsaeConnRefused = 10061
	wsaeHostUnreach = 10065
)

func errnoIs(err error, unix syscall.Errno, windows uintptr) bool {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return false
	}
	if runtime.GOOS == "windows" {
		return uintptr(en) == windows
	}
	return en == unix
}

// remoteAlert returns the text of a TLS alert the daemon sent, or "".
// crypto/tls reports a received alert as a *net.OpError with Op "remote
// error" around an unexported type (conn.go, readRecordOrCCS), and as
// tls.AlertError in QUIC; both are handled.
func remoteAlert(err error) string {
	var op *net.OpError
	for e := err; errors.As(e, &op); e = op.Err {
		if op.Op == "remote error" && op.Err != nil {
			return strings.TrimPrefix(op.Err.Error(), "tls: ")
		}
	}
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return strings.TrimPrefix(ae.Error(), "tls: ")
	}
	return ""
}

// classify turns a failed request into a CheckError.
func (c *checker) classify(err error) *CheckError {
	c.mu.Lock()
	st := connState{
		connected: c.connected, handshake: c.handshakeDone, requested: c.certRequested, sent: c.certSent,
		acceptable: slices.Clone(c.acceptable), gotResponse: c.gotResponse,
	}
	c.mu.Unlock()

	addr := c.target.addr
	via := ""
	if c.proxy != "" {
		via = fmt.Sprintf(" through the proxy %s", c.proxy)
	}
	e := &CheckError{Err: err}

	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dns *net.DNSError
	var record tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.As(err, &unknownCA):
		c.untrustedServer(e, unknownCA)
	case errors.As(err, &hostname):
		c.nameMismatch(e, hostname)
	case errors.As(err, &invalid):
		e.Problem = ProblemServerCert
		e.Msg = fmt.Sprintf("the daemon's certificate at %s is not usable: %v", addr, invalid)
		e.Hint = "the server certificate must be renewed on the daemon's host ('dtls renew --server --restart'); if it only seems expired or not yet valid, check this machine's clock"
	case remoteAlert(err) != "":
		c.alerted(e, remoteAlert(err), st)
	case errors.As(err, &record), errors.Is(err, http.ErrSchemeMismatch):
		notTLS(e, addr, err)
	case errors.As(err, &dns):
		unresolved(e, dns)
	case errnoIs(err, syscall.ECONNREFUSED, wsaeConnRefused):
		e.Problem = ProblemNoListener
		e.Msg = fmt.Sprintf("nothing listens on %s%s (connection refused)", addr, via)
		e.Hint = "check that dockerd runs on the server and listens on this address and port (its daemon.json \"hosts\"), and that no firewall rejects the connection"
	case errnoIs(err, syscall.EHOSTUNREACH, wsaeHostUnreach), errnoIs(err, syscall.ENETUNREACH, wsaeNetUnreach):
		e.Problem = ProblemNoListener
		e.Msg = fmt.Sprintf("no route to %s%s", addr, via)
		e.Hint = "check the address in DOCKER_HOST and this machine's network (or VPN)"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		c.timedOut(e, st, via)
	case st.handshake && !st.gotResponse && !st.requested && closedEarly(err):
		e.Problem = ProblemNotDocker
		e.Msg = fmt.Sprintf("%s closed the connection right after the TLS handshake without answering, and did not ask for a client certificate as dockerd with tlsverify does", addr)
		e.Hint = "check the port in DOCKER_HOST: dockerd's TLS port is usually 2376"
	case st.handshake && !st.gotResponse && closedEarly(err):
		// In TLS 1.3 the client's handshake ends before the server has
		// checked the client certificate (RFC 8446 section 4.4.2.4), so a
		// refusal can only show on the first read, and a server that
		// closes without sending its alert looks like this.
		e.Problem = ProblemClientRejected
		e.Msg = fmt.Sprintf("the daemon at %s closed the connection right after the TLS handshake without answering: it most likely refused the client certificate %q", addr, c.creds.leaf.Subject.CommonName)
		e.Hint = c.rejectedHint(st.requested, st.sent, st.acceptable)
	default:
		e.Problem = ProblemUnknown
		e.Msg = fmt.Sprintf("cannot talk to the daemon at %s%s: %v", addr, via, err)
	}
	return e
}

// connState is how far a failed request got, read once under c.mu.
type connState struct {
	connected, handshake, requested, sent, gotResponse bool
	acceptable                                         []string
}

// untrustedServer: the daemon's certificate is not issued by ca.pem.
func (c *checker) untrustedServer(e *CheckError, unknownCA x509.UnknownAuthorityError) {
	e.Problem = ProblemUntrustedServer
	issuer := "an unknown CA"
	if unknownCA.Cert != nil {
		issuer = fmt.Sprintf("%q", dnOrCN(unknownCA.Cert.Issuer))
	}
	e.Msg = fmt.Sprintf("the daemon at %s presents a certificate issued by %s, which this bundle's ca.pem (%s) does not hold",
		c.target.addr, issuer, c.caNames())
	e.Hint = "the daemon's CA has changed (a CA rotation on the CA host): " + c.creds.renewHint(false) +
		"; if no rotation happened, something else answers on this address"
}

// nameMismatch: the daemon's certificate is not valid for the host dialled.
func (c *checker) nameMismatch(e *CheckError, hostname x509.HostnameError) {
	e.Problem = ProblemNameMismatch
	var names []string
	if hostname.Certificate != nil {
		names = append(names, hostname.Certificate.DNSNames...)
		for _, ip := range hostname.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
	}
	if len(names) == 0 {
		e.Msg = fmt.Sprintf("the daemon's certificate at %s holds no names or addresses, so it is not valid for %q", c.target.addr, c.target.host)
	} else {
		// Quoted: any server answering there chose them, escape
		// sequences included (found by a red team).
		for i, n := range names {
			names[i] = strconv.Quote(n)
		}
		e.Msg = fmt.Sprintf("the daemon's certificate at %s is not valid for %q: it is valid for %s", c.target.addr, c.target.host, strings.Join(names, ", "))
	}
	e.Hint = "use a name or address the certificate holds in DOCKER_HOST (dtls env --host tcp://NAME:PORT), or have the server certificate reissued with this one"
}

// alerted: the daemon sent a TLS alert; the ones of clientRefusalAlerts
// are a refused client certificate.
func (c *checker) alerted(e *CheckError, alert string, st connState) {
	addr := c.target.addr
	if !slices.Contains(clientRefusalAlerts, alert) {
		e.Problem = ProblemUnknown
		e.Msg = fmt.Sprintf("the TLS handshake with %s failed: the daemon sent the alert %q", addr, alert)
		return
	}
	e.Problem = ProblemClientRejected
	e.Msg = fmt.Sprintf("the daemon at %s refused the client certificate %q (TLS alert %q)", addr, c.creds.leaf.Subject.CommonName, alert)
	if st.requested && !st.sent {
		e.Msg = fmt.Sprintf("the daemon at %s wants a client certificate that this bundle does not have, and refused the connection (TLS alert %q)", addr, alert)
	}
	e.Hint = c.rejectedHint(st.requested, st.sent, st.acceptable)
}

// notTLS: something answers on the address, but not with TLS.
func notTLS(e *CheckError, addr string, err error) {
	e.Problem = ProblemNotDocker
	e.Msg = fmt.Sprintf("%s answers, but not with TLS", addr)
	if errors.Is(err, http.ErrSchemeMismatch) {
		e.Msg = fmt.Sprintf("%s answers plain HTTP, not TLS", addr)
	}
	e.Hint = "check the port in DOCKER_HOST: dockerd's TLS port is usually 2376 (2375 is its unencrypted one)"
}

// unresolved: the daemon's host name does not resolve.
func unresolved(e *CheckError, dns *net.DNSError) {
	e.Problem = ProblemNoListener
	why := dns.Err
	if dns.IsNotFound {
		why = "no such host"
	}
	e.Msg = fmt.Sprintf("cannot resolve %q: %s", dns.Name, why)
	e.Hint = "check the host name in DOCKER_HOST, and this machine's DNS (or VPN)"
}

// timedOut: no answer within c.timeout; where it stopped says why.
func (c *checker) timedOut(e *CheckError, st connState, via string) {
	addr := c.target.addr
	switch {
	case !st.connected:
		e.Problem = ProblemNoListener
		e.Msg = fmt.Sprintf("no answer from %s%s within %s", addr, via, c.timeout)
		e.Hint = "a firewall drops the connection, or the address in DOCKER_HOST is wrong"
	case !st.handshake:
		e.Problem = ProblemNotDocker
		e.Msg = fmt.Sprintf("%s%s accepted the connection but did not complete a TLS handshake within %s", addr, via, c.timeout)
		e.Hint = "check the port in DOCKER_HOST: dockerd's TLS port is usually 2376"
	default:
		e.Problem = ProblemNotDocker
		e.Msg = fmt.Sprintf("the TLS handshake with %s succeeded but no HTTP answer came within %s", addr, c.timeout)
		e.Hint = "the daemon may be overloaded or hung; check it on the server (systemctl status docker)"
	}
}

// closedEarly reports an error of a connection the peer closed.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errnoIs(err, syscall.ECONNRESET, wsaeConnReset) || errnoIs(err, syscall.EPIPE, 0) ||
		// net/http's errServerClosedIdle (unexported): the peer closed the
		// connection before the request went out, a race with the same
		// cause as the EOF above.
		err != nil && strings.Contains(err.Error(), "server closed idle connection")
}

// pluginRefusedHint explains a request the authorization plugin refused.
func (c *checker) pluginRefusedHint() string {
	why := fmt.Sprintf("the daemon's authorization plugin does not accept the certificate %q: it was revoked or superseded by a renewal, or its role does not allow this; ", c.creds.leaf.Subject.CommonName)
	if c.creds.caURL != "" {
		return why + "ask the operator of the online CA at " + c.creds.caURL + " ('dtls list --ca-url " + c.creds.caURL + "' shows its status), or " + enrollHint(c.creds.caURL, c.creds.dockerHost)
	}
	return why + "ask the CA host's administrator ('dtls list' there), or for a renewed bundle"
}

// rejectedHint explains a refused client certificate with what the daemon
// asked for during the handshake.
func (c *checker) rejectedHint(requested, sent bool, acceptable []string) string {
	cert := c.creds.leaf
	var why string
	switch {
	case requested && !sent && len(acceptable) > 0:
		why = fmt.Sprintf("the daemon accepts client certificates from %s only, and cert.pem is from %q, so none was sent",
			quoteList(acceptable), dnOrCN(cert.Issuer))
	case requested && !sent:
		why = "cert.pem does not suit what the daemon asked for (key type or signature algorithm), so none was sent"
	case !chainsTo(cert, c.creds.cas):
		why = fmt.Sprintf("cert.pem is issued by %q, which is not the CA in this bundle's ca.pem (%s): the bundle mixes files of two CAs", dnOrCN(cert.Issuer), c.caNames())
	default:
		why = fmt.Sprintf("cert.pem (issued by %q) is from a CA the daemon does not trust (a bundle of another CA host, or the daemon's CA was rotated)", dnOrCN(cert.Issuer))
	}
	return why + "; " + c.creds.renewHint(false)
}

func chainsTo(cert *x509.Certificate, cas []*x509.Certificate) bool {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	// Only the signature matters here, not the dates: validity is
	// checked before dialing.
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: cert.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func (c *checker) caNames() string {
	var names []string
	for _, ca := range c.creds.cas {
		names = append(names, dnOrCN(ca.Subject))
	}
	return quoteList(names)
}

func dnOrCN(n pkix.Name) string {
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
