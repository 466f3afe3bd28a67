package fleet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtls-tool/dtls/pki"
)

// DefaultTimeout bounds one call to the CA, connection and answer included.
const DefaultTimeout = 30 * time.Second

// dialTimeout bounds the TCP connection and the TLS handshake: a CA that
// does not answer within it is unreachable, whatever is left of the call's
// timeout.
const dialTimeout = 10 * time.Second

// maxAnswer bounds what is read of an answer. The inventory (PathCerts) is
// the largest: a record holds a PEM certificate, about 1 KiB, so this is
// room for tens of thousands of certificates.
const maxAnswer = 64 << 20

// Client calls an online CA. The zero value is not usable: URL is required,
// and every call but Enroll needs Roots. A Client is safe for concurrent use;
// its fields must not change after the first call (the connection pool is
// built from them then).
type Client struct {
	// URL is the CA's base URL, https://HOST[:PORT] (see ParseURL).
	URL string
	// Roots are the CA certificates the server's TLS certificate must chain
	// to, and every certificate the CA returns. Enroll does not use them:
	// the token's fingerprint is its trust anchor.
	Roots *x509.CertPool
	// Certificate is presented as the TLS client certificate: the current
	// certificate for Renew, an operator's (role OperatorRole) for Certs,
	// Revoke and NewToken.
	Certificate *tls.Certificate
	// Timeout bounds each call (DefaultTimeout when zero).
	Timeout time.Duration

	mu     sync.Mutex
	pooled *http.Client // for calls verified with Roots
}

// ParseURL checks a CA URL (https://HOST[:PORT], no path, query or user)
// and returns it without a trailing slash.
func ParseURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("invalid CA URL %q: want https://HOST[:PORT], as 'dtls ca serve' prints it", s)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("invalid CA URL %q: no host", s)
	}
	return "https://" + u.Host, nil
}

// UnreachableError is a CA that could not be reached, or that did not
// answer in time: the call may succeed later.
type UnreachableError struct {
	URL string
	Err error
	// Sent is true when the request was written to the connection: the
	// CA may have acted on it (signed, used the token) and its answer was
	// lost.
	Sent bool
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the CA at %s: %v", e.URL, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Error is the CA's refusal or failure, with the message of its answer's
// envelope (cfssl api.Response "errors").
type Error struct {
	URL    string
	Path   string
	Status int // HTTP status
	// Code is the envelope's error code (cfssl's, or the HTTP status).
	Code    int
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the CA at %s answered %s with HTTP %d and no message", e.URL, e.Path, e.Status)
	}
	return e.Message
}

// Temporary reports whether the same call may succeed later: the CA
// failed (5xx), or asks to be called again later (408, 429).
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// FingerprintError is a server whose TLS chain does not hold the CA
// certificate an enrolment token names: not the CA the token is for (or a
// machine in between).
type FingerprintError struct {
	URL  string
	Want [32]byte
	// Got are the SHA-256 fingerprints of the certificates it presented.
	Got [][32]byte
	// Err, when set, is why the presented chain was refused although it
	// holds that certificate.
	Err error
}

func (e *FingerprintError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("the server at %s presents the CA certificate with SHA-256 fingerprint %s, but its own certificate does not verify with it: %v",
			e.URL, hex.EncodeToString(e.Want[:]), e.Err)
	}
	got := make([]string, len(e.Got))
	for i, g := range e.Got {
		got[i] = hex.EncodeToString(g[:])
	}
	return fmt.Sprintf("the server at %s is not the CA of the token: none of the certificates it presented has the SHA-256 fingerprint %s (it presented %s)",
		e.URL, hex.EncodeToString(e.Want[:]), strings.Join(got, ", "))
}

// Retryable reports whether a call that failed with err may succeed later
// unchanged: the CA was unreachable or failed on its side. A refusal (a
// revoked or superseded certificate, a used token), a certificate that does
// not verify, or an answer that fails the checks is not.
func Retryable(err error) bool {
	var ue *UnreachableError
	var fe *Error
	switch {
	case errors.As(err, &ue):
		return true
	case errors.As(err, &fe):
		return fe.Temporary()
	}
	return false
}

// Enroll sends csrPEM with a one-time token (PathEnroll) and returns the
// certificate the CA signed. The server is trusted only when its TLS chain
// holds the CA certificate with the token's fingerprint and its own
// certificate verifies with that CA for the URL's host (as kubeadm join
// checks --discovery-token-ca-cert-hash). The answer is checked: the
// certificate chains to that CA, for the kind the answer says, and holds
// the CSR's public key.
func (c *Client) Enroll(ctx context.Context, token Token, csrPEM []byte) (*CertResponse, error) {
	hc, err := c.pinnedClient(token.CAFingerprint)
	if err != nil {
		return nil, err
	}
	var resp CertResponse
	if err := c.do(ctx, hc, http.MethodPost, PathEnroll, EnrollRequest{Token: token.String(), CSR: string(csrPEM)}, &resp); err != nil {
		return nil, err
	}
	cas, err := pki.ParseCertificates([]byte(resp.CA))
	if err != nil {
		return nil, c.answerError(PathEnroll, "CA certificates: %v", err)
	}
	var anchor *x509.Certificate
	for _, ca := range cas {
		if MatchesFingerprint(ca, token.CAFingerprint) {
			anchor = ca
		}
	}
	if anchor == nil {
		return nil, c.answerError(PathEnroll, "its CA certificates do not hold the token's CA (SHA-256 fingerprint %s)", hex.EncodeToString(token.CAFingerprint[:]))
	}
	// The answer's CA certificates hold the token's CA and came over a
	// connection pinned to it: during a rotation of the CA (its switch
	// step) the certificate is signed by the next CA, which the answer
	// lists after the current one.
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	if _, err := checkIssued(&resp, csrPEM, roots, ""); err != nil {
		return nil, c.answerError(PathEnroll, "%v", err)
	}
	return &resp, nil
}

// vouched is roots and the CA certificates of an answer (PEM) when they
// hold a certificate of roots, roots alone otherwise. The answer came
// over a connection verified with roots: a CA that is rotating introduces
// its next CA this way (its answers list the current CA, then the next),
// so a holder that did not renew during the rotation's first step still
// takes a certificate of the next CA at its switch step.
func vouched(roots *x509.CertPool, caPEM string) *x509.CertPool {
	cas, err := pki.ParseCertificates([]byte(caPEM))
	if err != nil || roots == nil {
		return roots
	}
	known := false
	for _, ca := range cas {
		// A chain of one: the certificate is itself in roots.
		chains, err := ca.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil && ca.IsCA && len(chains) > 0 && len(chains[0]) == 1 {
			known = true
		}
	}
	if !known {
		return roots
	}
	pool := roots.Clone()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return pool
}

// Renew sends csrPEM for a new key (PathRenew), authenticated with
// Certificate, and returns the successor the CA signed. The answer is
// checked: the certificate chains to Roots, is of the current
// certificate's kind and name, and holds the CSR's public key.
func (c *Client) Renew(ctx context.Context, csrPEM []byte) (*CertResponse, error) {
	if c.Certificate == nil || len(c.Certificate.Certificate) == 0 {
		return nil, errors.New("renew: no current certificate to authenticate with")
	}
	cur, err := x509.ParseCertificate(c.Certificate.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("renew: current certificate: %w", err)
	}
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var resp CertResponse
	if err := c.do(ctx, hc, http.MethodPost, PathRenew, RenewRequest{CSR: string(csrPEM)}, &resp); err != nil {
		return nil, err
	}
	cert, err := checkIssued(&resp, csrPEM, vouched(c.Roots, resp.CA), pki.KindOf(cur))
	if err != nil {
		return nil, c.answerError(PathRenew, "%v", err)
	}
	if cert.Subject.CommonName != cur.Subject.CommonName {
		return nil, c.answerError(PathRenew, "the renewed certificate is for %q, the current one for %q", cert.Subject.CommonName, cur.Subject.CommonName)
	}
	return &resp, nil
}

// CA fetches the CA certificates (PathCA), PEM, current first.
func (c *Client) CA(ctx context.Context) ([]byte, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	b, err := c.getRaw(ctx, hc, PathCA)
	if err != nil {
		return nil, err
	}
	if _, err := pki.ParseCertificates(b); err != nil {
		return nil, c.answerError(PathCA, "%v", err)
	}
	return b, nil
}

// CRL fetches the revocation list (PathCRL) as the CA serves it, DER,
// unchecked: the caller parses it and checks its signature with the CA
// certificates it trusts, since the signature, not the connection, makes
// the list the CA's (RFC 5280 6.3.3). The call needs no client
// certificate.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	return c.getRaw(ctx, hc, PathCRL)
}

// Rotation fetches where the CA's rotation is (PathRotation).
func (c *Client) Rotation(ctx context.Context) (*RotationState, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var out RotationState
	if err := c.do(ctx, hc, http.MethodGet, PathRotation, nil, &out); err != nil {
		return nil, err
	}
	if _, err := pki.ParseCertificates([]byte(out.CA)); err != nil {
		return nil, c.answerError(PathRotation, "ca: %v", err)
	}
	return &out, nil
}

// Certs lists the CA's inventory (PathCerts; an operator's Certificate).
func (c *Client) Certs(ctx context.Context) ([]pki.Record, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var recs []pki.Record
	if err := c.do(ctx, hc, http.MethodGet, PathCerts, nil, &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// Revoke revokes what r names (PathRevoke; an operator's Certificate).
func (c *Client) Revoke(ctx context.Context, r RevokeRequest) (*RevokeResponse, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var resp RevokeResponse
	if err := c.do(ctx, hc, http.MethodPost, PathRevoke, r, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// NewToken asks for an enrolment token (PathTokens; an operator's
// Certificate). The token is checked to be one (ParseToken).
func (c *Client) NewToken(ctx context.Context, r TokenRequest) (*TokenResponse, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var resp TokenResponse
	if err := c.do(ctx, hc, http.MethodPost, PathTokens, r, &resp); err != nil {
		return nil, err
	}
	if _, err := ParseToken(resp.Token); err != nil {
		return nil, c.answerError(PathTokens, "%v", err)
	}
	return &resp, nil
}

// Rotate runs a step of the CA's rotation, or reports it (PathRotate; an
// operator's Certificate).
func (c *Client) Rotate(ctx context.Context, r RotateRequest) (*RotateResponse, error) {
	hc, err := c.client()
	if err != nil {
		return nil, err
	}
	var resp RotateResponse
	if err := c.do(ctx, hc, http.MethodPost, PathRotate, r, &resp); err != nil {
		return nil, err
	}
	if _, err := pki.ParseCertificates([]byte(resp.CA)); err != nil {
		return nil, c.answerError(PathRotate, "CA certificates: %v", err)
	}
	return &resp, nil
}

// CloseIdleConnections closes the connections kept for the next call.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pooled != nil {
		c.pooled.CloseIdleConnections()
	}
}

// CSRFor makes a PEM certificate request for the PEM private key keyPEM:
// how a renewal that was interrupted asks again for the same key. The CA
// takes only the public key from it.
func CSRFor(keyPEM []byte) ([]byte, error) {
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dtls", Organization: []string{"dtls"}}}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// checkIssued checks a CertResponse: its certificate holds the public key
// of csrPEM, chains to roots for its kind (want, when set), its kind and
// name agree with the answer's, and its CA certificates verify it too (they
// become the bundle's ca.pem). It returns the certificate.
func checkIssued(resp *CertResponse, csrPEM []byte, roots *x509.CertPool, want pki.Kind) (*x509.Certificate, error) {
	cert, err := pki.ParseCertificate([]byte(resp.Certificate))
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	req, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := req.PublicKey.(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the certificate (serial %s) is not for the key of the request", pki.Serial(cert))
	}
	if resp.Kind != pki.KindClient && resp.Kind != pki.KindServer {
		return nil, fmt.Errorf("the certificate is of kind %q, want %q or %q", resp.Kind, pki.KindClient, pki.KindServer)
	}
	if want != "" && resp.Kind != want {
		return nil, fmt.Errorf("the certificate is a %s certificate, want a %s one", resp.Kind, want)
	}
	if got := pki.KindOf(cert); got != resp.Kind {
		return nil, fmt.Errorf("the certificate is a %s certificate, but the answer says %s", got, resp.Kind)
	}
	if resp.Name != "" && resp.Name != cert.Subject.CommonName {
		return nil, fmt.Errorf("the certificate is for %q, but the answer says %q", cert.Subject.CommonName, resp.Name)
	}
	eku := x509.ExtKeyUsageClientAuth
	if resp.Kind == pki.KindServer {
		eku = x509.ExtKeyUsageServerAuth
	}
	if roots == nil {
		return nil, errors.New("no trusted CA to check the certificate with")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		return nil, fmt.Errorf("the certificate (serial %s) does not verify with the trusted CA: %w", pki.Serial(cert), err)
	}
	cas, err := pki.ParseCertificates([]byte(resp.CA))
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		return nil, fmt.Errorf("the certificate (serial %s) does not verify with the CA certificates of the answer: %w", pki.Serial(cert), err)
	}
	return cert, nil
}

// answerError is an answer that fails a check: not retryable.
func (c *Client) answerError(path, format string, a ...any) error {
	return fmt.Errorf("the CA at %s answered %s with something dtls refuses: %s", c.URL, path, fmt.Sprintf(format, a...))
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) base() (string, error) {
	if c.URL == "" {
		return "", errors.New("no CA URL")
	}
	return ParseURL(c.URL)
}

// transport is an HTTP transport with tlsConf. An HTTPS_PROXY of the
// environment is used, as the Docker CLI does: for an https URL it is a
// CONNECT tunnel, so the TLS session, its pinning and the client
// certificate still run between this client and the CA.
func transport(tlsConf *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: dialTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2,
		IdleConnTimeout:     90 * time.Second,
	}
}

func (c *Client) tlsConfig() (*tls.Config, error) {
	base, err := c.base()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(base)
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.Certificate != nil {
		cert := c.Certificate
		// Presented whatever CA names the server sends in its
		// CertificateRequest: a client with one certificate has no choice
		// to make.
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return conf, nil
}

// client is the HTTP client for calls verified with Roots, built once.
func (c *Client) client() (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pooled != nil {
		return c.pooled, nil
	}
	if c.Roots == nil {
		return nil, errors.New("no trusted CA certificate (Roots) to verify the CA's server with")
	}
	conf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	conf.RootCAs = c.Roots
	c.pooled = &http.Client{Transport: transport(conf), CheckRedirect: noRedirect}
	return c.pooled, nil
}

// pinnedClient is an HTTP client that trusts the server when its chain
// holds the CA certificate with fingerprint fp and its leaf verifies with
// that certificate for the URL's host. The standard verification is off
// (InsecureSkipVerify) only because VerifyConnection replaces it: that is
// crypto/tls's documented way to verify differently ("InsecureSkipVerify
// ... should be used only for testing or in combination with
// VerifyConnection or VerifyPeerCertificate"). VerifyConnection also runs
// on resumed sessions, which VerifyPeerCertificate does not.
func (c *Client) pinnedClient(fp [32]byte) (*http.Client, error) {
	conf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	base, _ := c.base()
	host := conf.ServerName
	conf.InsecureSkipVerify = true
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyPinned(base, host, cs.PeerCertificates, fp)
	}
	tr := transport(conf)
	// One call: nothing to keep a connection for.
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, CheckRedirect: noRedirect}, nil
}

// verifyPinned checks a server's chain against the CA certificate with
// fingerprint fp.
func verifyPinned(base, host string, chain []*x509.Certificate, fp [32]byte) error {
	if len(chain) == 0 {
		return &FingerprintError{URL: base, Want: fp}
	}
	var anchor *x509.Certificate
	inter := x509.NewCertPool()
	var got [][32]byte
	for _, c := range chain {
		got = append(got, Fingerprint(c))
		if MatchesFingerprint(c, fp) {
			anchor = c
		} else {
			inter.AddCert(c)
		}
	}
	if anchor == nil {
		return &FingerprintError{URL: base, Want: fp, Got: got}
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return &FingerprintError{URL: base, Want: fp, Got: got, Err: err}
	}
	return nil
}

// noRedirect: the CA answers itself; a redirect would send the token or
// the client certificate's session somewhere else.
func noRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the CA redirected to %s: dtls does not follow redirects", req.URL)
}

// envelope is cfssl's api.Response with the result left raw.
type envelope struct {
	Success  bool              `json:"success"`
	Result   json.RawMessage   `json:"result"`
	Errors   []envelopeMessage `json:"errors"`
	Messages []envelopeMessage `json:"messages"`
}

type envelopeMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// do makes one JSON call: body (when not nil) as the request, the
// envelope's result into out.
func (c *Client) do(ctx context.Context, hc *http.Client, method, path string, body, out any) error {
	resp, err := c.send(ctx, hc, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp)
	if err != nil {
		return &UnreachableError{URL: c.URL, Err: fmt.Errorf("read the answer to %s: %w", path, err), Sent: true}
	}
	var env envelope
	if jerr := json.Unmarshal(b, &env); jerr != nil {
		return c.notAnEnvelope(path, resp.StatusCode, b)
	}
	if resp.StatusCode >= 300 || !env.Success {
		return c.envelopeError(path, resp.StatusCode, env)
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return c.answerError(path, "result: %v", err)
	}
	return nil
}

// getRaw GETs a document that is not JSON (a CRL, PEM certificates); an
// error still comes in the envelope.
func (c *Client) getRaw(ctx context.Context, hc *http.Client, path string) ([]byte, error) {
	resp, err := c.send(ctx, hc, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp)
	if err != nil {
		return nil, &UnreachableError{URL: c.URL, Err: fmt.Errorf("read the answer to %s: %w", path, err), Sent: true}
	}
	isJSON := false
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		isJSON = true
	}
	if resp.StatusCode >= 300 {
		var env envelope
		if json.Unmarshal(b, &env) != nil {
			return nil, c.notAnEnvelope(path, resp.StatusCode, b)
		}
		return nil, c.envelopeError(path, resp.StatusCode, env)
	}
	if isJSON {
		// A document in the envelope's result, as a JSON string.
		var env envelope
		var s string
		if json.Unmarshal(b, &env) != nil || json.Unmarshal(env.Result, &s) != nil {
			return nil, c.answerError(path, "a JSON answer that is not an envelope holding a string")
		}
		if !env.Success {
			return nil, c.envelopeError(path, resp.StatusCode, env)
		}
		return []byte(s), nil
	}
	return b, nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body any) (*http.Response, error) {
	base, err := c.base()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			cancel()
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "dtls")
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
	}))
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		err = c.transportError(ctx, err)
		var ue *UnreachableError
		if errors.As(err, &ue) {
			ue.Sent = sent.Load()
		}
		return nil, err
	}
	resp.Body = &cancelBody{resp.Body, cancel}
	return resp, nil
}

// cancelBody releases the call's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// transportError sorts what http.Client.Do returned: a server that is not
// the CA it should be, a CA that refused the client's certificate in the
// handshake, or a CA that could not be reached.
func (c *Client) transportError(ctx context.Context, err error) error {
	var fe *FingerprintError
	if errors.As(err, &fe) {
		return fe
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fmt.Errorf("the CA at %s presented a TLS certificate that does not verify with the trusted CA certificate: %w", c.URL, cve.Err)
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return fmt.Errorf("the CA at %s presented a TLS certificate that does not verify: %w", c.URL, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		// A TLS alert from the server: it refused the handshake, most
		// often the client certificate (expired, or not of this CA).
		return &Error{URL: c.URL, Status: 0, Message: fmt.Sprintf("the CA at %s refused the TLS connection (%v): is the certificate presented expired, or not from this CA?", c.URL, op.Err)}
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &UnreachableError{URL: c.URL, Err: err}
}

func readAnswer(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	return b, nil
}

func (c *Client) envelopeError(path string, status int, env envelope) error {
	e := &Error{URL: c.URL, Path: path, Status: status, Code: status}
	var msgs []string
	for _, m := range env.Errors {
		if m.Message != "" {
			msgs = append(msgs, m.Message)
		}
		if e.Code == status && m.Code != 0 {
			e.Code = m.Code
		}
	}
	e.Message = strings.Join(msgs, "; ")
	if status < 300 {
		// success false with a 2xx: treat as the CA's failure.
		e.Status = http.StatusInternalServerError
	}
	return e
}

// notAnEnvelope is an answer that is not the CA's (a proxy's error page,
// another service on that port).
func (c *Client) notAnEnvelope(path string, status int, b []byte) error {
	first := strings.TrimSpace(string(b))
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	if len(first) > 120 {
		first = first[:120] + "..."
	}
	return &Error{URL: c.URL, Path: path, Status: status, Code: status,
		Message: fmt.Sprintf("the server at %s answered %s with HTTP %d and no dtls answer (%q): is it the CA?", c.URL, path, status, first)}
}
