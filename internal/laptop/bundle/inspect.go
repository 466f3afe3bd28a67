package bundle

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// What Inspect found at a path (Info.Source).
const (
	// SourceArchive is a bundle archive, as 'dtls issue-client --archive'
	// writes it.
	SourceArchive = "archive"
	// SourceBundle is a client bundle directory (ca.pem, cert.pem, key.pem,
	// dtls.json), as 'dtls issue-client' writes it or 'dtls import'
	// installs it.
	SourceBundle = "bundle"
	// SourceServerBundle is a directory with ca.pem, server-cert.pem and
	// server-key.pem: what 'dtls issue-server' writes, and dockerd's
	// certificates directory.
	SourceServerBundle = "server-bundle"
	// SourceCertificate is a file of one or more certificates, PEM or DER.
	SourceCertificate = "certificate"
)

// CertInfo describes a certificate.
type CertInfo struct {
	// Subject and Issuer are distinguished names in RFC 2253 form, as
	// crypto/x509/pkix.Name.String writes them ("CN=alice,O=dtls").
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Serial is the serial number in lowercase hex, the form of dtls.json,
	// 'dtls list' and `openssl x509 -serial`.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// SANs are the DNS names, IP addresses, e-mail addresses and URIs the
	// certificate is for.
	SANs []string `json:"sans,omitempty"`
	// KeyType is the public key's type in --key-type's spelling
	// ("ecdsa-p256", "rsa-2048", "ed25519"), also for sizes dtls does not
	// generate ("rsa-8192").
	KeyType string `json:"key_type"`
	IsCA    bool   `json:"is_ca"`
	// EKU are the extended key usages, in RFC 5280's names ("serverAuth",
	// "clientAuth"); dockerd and the Docker CLI check them.
	EKU []string `json:"eku,omitempty"`
	// SHA256 is the fingerprint of the DER certificate, in hex, to compare
	// with `openssl x509 -fingerprint -sha256`.
	SHA256 string `json:"sha256"`
}

// Info is what Inspect reports about a bundle or certificate.
type Info struct {
	// Path is the path inspected, as given.
	Path string `json:"path"`
	// Source is what Path is: SourceArchive, SourceBundle,
	// SourceServerBundle or SourceCertificate.
	Source string `json:"source"`
	// Client is the bundle's certificate: the client certificate, or the
	// server certificate of a server bundle; for a certificate file, its
	// first certificate that is not a CA. Nil when there is none.
	Client *CertInfo `json:"client,omitempty"`
	// CAs are the CA certificates: those of ca.pem (two during a CA
	// rotation), or the CA certificates of a certificate file.
	CAs []CertInfo `json:"cas"`
	// Extra are the other certificates of a certificate file that are not
	// CAs, after the first.
	Extra []CertInfo `json:"extra,omitempty"`
	// DockerHost is the daemon URL recorded in dtls.json.
	DockerHost string `json:"docker_host,omitempty"`
	// KeyMatches tells whether the private key is Client's, when there is
	// a key to compare (nil otherwise, or when the key cannot be read).
	KeyMatches *bool `json:"key_matches,omitempty"`
	// Chains tells whether Client chains to one of CAs for its extended
	// key usage (nil without a Client or CAs). Dates are not part of it:
	// the chain is checked at a time when Client is valid, and expiry is
	// reported in Problems.
	Chains *bool `json:"chains,omitempty"`
	// Problems are what would make the bundle fail, one sentence each,
	// naming the file; empty when none was found.
	Problems []string `json:"problems"`
}

// maxInspectSize bounds a certificate file read by Inspect: a certificate
// is a few kilobytes, the same bound as an archive is generous.
const maxInspectSize = MaxArchiveSize

// Inspect describes what is at path, for 'dtls inspect':
//
//   - a bundle archive (tar.gz, recognised by its gzip magic number), read
//     with ReadArchive and never extracted to disk;
//   - a bundle directory: a client bundle (ca.pem, cert.pem, key.pem,
//     dtls.json) or a server bundle (ca.pem, server-cert.pem,
//     server-key.pem); missing or unreadable files are Problems;
//   - a file of certificates, PEM (one or several) or DER, possibly with
//     a private key.
//
// Problems lists what would make the bundle fail at now: an expired or
// not yet valid certificate, a key that is not the certificate's, a
// certificate that does not chain to ca.pem or lacks the extended key
// usage its bundle needs, a dtls.json that does not describe cert.pem.
// Inspect returns an error, naming path, only when path cannot be read or
// is none of the above.
func Inspect(path string, now time.Time) (*Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inspect %q: %w", path, pathErrCause(err))
	}
	if fi.IsDir() {
		return inspectDir(path, now)
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	// RFC 1952 section 2.3.1: a gzip member starts with 1f 8b.
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		files, err := ParseArchive(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("inspect %q: archive: %w", path, err)
		}
		info := &Info{Path: path, Source: SourceArchive}
		m := map[string][]byte{}
		for _, f := range files {
			m[f.Name] = f.Data
		}
		inspectBundle(info, m, nil, now)
		return info, nil
	}
	return inspectCertFile(path, data, now)
}

// pathErrCause returns the cause of a *fs.PathError ("no such file or
// directory"), for messages that name the path themselves.
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inspect %q: %w", path, pathErrCause(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInspectSize+1))
	if err != nil {
		return nil, fmt.Errorf("inspect %q: %w", path, err)
	}
	if len(data) > maxInspectSize {
		return nil, fmt.Errorf("inspect %q: larger than %d bytes: not a bundle archive or a certificate", path, maxInspectSize)
	}
	return data, nil
}

// The files of a server bundle ('dtls issue-server', and dockerd's
// certificates directory).
const (
	serverCertFile = "server-cert.pem"
	serverKeyFile  = "server-key.pem"
)

func inspectDir(dir string, now time.Time) (*Info, error) {
	info := &Info{Path: dir, Source: SourceBundle}
	names := append(slices.Clone(clientenv.BundleFiles), clientenv.MetaFile)
	if _, err := os.Lstat(filepath.Join(dir, clientenv.CertFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(filepath.Join(dir, serverCertFile)); err == nil {
			info.Source = SourceServerBundle
			names = []string{clientenv.CAFile, serverCertFile, serverKeyFile}
		}
	}
	files := map[string][]byte{}
	unreadable := map[string]error{}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			unreadable[name] = err
			continue
		}
		files[name] = data
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("inspect %q: not a bundle directory: no ca.pem, cert.pem or %s", dir, serverCertFile)
	}
	inspectBundle(info, files, unreadable, now)
	return info, nil
}

// inspectBundle fills info from the files of a bundle; unreadable holds
// the files that could not be read, with why.
func inspectBundle(info *Info, files map[string][]byte, unreadable map[string]error, now time.Time) {
	in := &bundleInspection{info: info, files: files, unreadable: unreadable, now: now,
		certName: clientenv.CertFile, keyName: clientenv.KeyFile, want: x509.ExtKeyUsageClientAuth, kind: pki.KindClient}
	if info.Source == SourceServerBundle {
		in.certName, in.keyName = serverCertFile, serverKeyFile
		in.want, in.kind = x509.ExtKeyUsageServerAuth, pki.KindServer
	}
	cas := in.cas()
	cert := in.cert()
	in.key(cert)
	if cert != nil && len(cas) > 0 {
		in.chain(cert, cas)
	}
	if info.Source != SourceServerBundle && !in.missing(clientenv.MetaFile) {
		in.meta(cert)
	}
	if info.Problems == nil {
		info.Problems = []string{}
	}
	if info.CAs == nil {
		info.CAs = []CertInfo{}
	}
}

// bundleInspection is one run of inspectBundle: the files, the names of
// the certificate and key (a client's or a server's bundle), and the
// extended key usage and kind the certificate must have.
type bundleInspection struct {
	info              *Info
	files             map[string][]byte
	unreadable        map[string]error
	now               time.Time
	certName, keyName string
	want              x509.ExtKeyUsage
	kind              pki.Kind
}

func (in *bundleInspection) problem(format string, args ...any) {
	in.info.Problems = append(in.info.Problems, fmt.Sprintf(format, args...))
}

// missing reports whether the file name was not read, as a problem.
func (in *bundleInspection) missing(name string) bool {
	if _, ok := in.files[name]; ok {
		return false
	}
	if err, ok := in.unreadable[name]; ok && !errors.Is(err, fs.ErrNotExist) {
		in.problem("cannot read %s: %v", name, pathErrCause(err))
	} else {
		in.problem("%s is missing", name)
	}
	return true
}

// cas describes and checks ca.pem's certificates.
func (in *bundleInspection) cas() []*x509.Certificate {
	if in.missing(clientenv.CAFile) {
		return nil
	}
	cas, err := pki.ParseCertificates(in.files[clientenv.CAFile])
	if err != nil {
		in.problem("ca.pem: %v", err)
	}
	for _, ca := range cas {
		in.info.CAs = append(in.info.CAs, describeCert(ca))
		if !ca.IsCA {
			in.problem("ca.pem: %q is not a CA certificate", ca.Subject.CommonName)
		}
		validity(in.problem, clientenv.CAFile, "CA", ca, in.now)
	}
	return cas
}

// cert describes and checks the bundle's certificate; nil when it is
// missing or does not parse.
func (in *bundleInspection) cert() *x509.Certificate {
	if in.missing(in.certName) {
		return nil
	}
	cert, err := pki.ParseCertificate(in.files[in.certName])
	if err != nil {
		in.problem("%s: %v", in.certName, err)
		return cert
	}
	ci := describeCert(cert)
	in.info.Client = &ci
	validity(in.problem, in.certName, "certificate", cert, in.now)
	if !hasEKU(cert, in.want) {
		in.problem("%s: the certificate of %q is not for %s (extended key usage: %s), so dockerd refuses it", in.certName,
			cert.Subject.CommonName, ekuName(in.want), orNone(ci.EKU))
	}
	return cert
}

// key checks that the bundle's key is cert's. A missing key is a problem
// even when there is no certificate to check it against.
func (in *bundleInspection) key(cert *x509.Certificate) {
	if in.missing(in.keyName) || cert == nil {
		return
	}
	key, err := pki.ParsePrivateKey(in.files[in.keyName])
	if err != nil {
		in.problem("%s: %v", in.keyName, err)
		return
	}
	ok := pki.KeyMatches(cert, key)
	in.info.KeyMatches = &ok
	if !ok {
		in.problem("%s is not the key of %s", in.keyName, in.certName)
	}
}

// chain checks that cert chains to one of cas.
func (in *bundleInspection) chain(cert *x509.Certificate, cas []*x509.Certificate) {
	ok := chains(cert, cas, in.kind)
	in.info.Chains = &ok
	if !ok {
		in.problem("%s: the certificate of %q (issuer %q) does not chain to ca.pem (%s) as a %s certificate",
			in.certName, cert.Subject.CommonName, cert.Issuer.CommonName, caNames(cas), in.kind)
	}
}

// meta checks a client bundle's metadata against its certificate (nil when
// it could not be read).
func (in *bundleInspection) meta(cert *x509.Certificate) {
	var meta clientenv.Meta
	if err := json.Unmarshal(in.files[clientenv.MetaFile], &meta); err != nil {
		in.problem("%s: %v", clientenv.MetaFile, err)
		return
	}
	in.info.DockerHost = meta.DockerHost
	if meta.DockerHost == "" {
		in.problem("%s records no daemon URL (docker_host)", clientenv.MetaFile)
	}
	if cert != nil && meta.Serial != "" && !strings.EqualFold(meta.Serial, pki.Serial(cert)) {
		in.problem("%s records serial %s but %s has serial %s: the files come from two bundles", clientenv.MetaFile, meta.Serial, in.certName, pki.Serial(cert))
	}
	if cert != nil && meta.Name != "" && meta.Name != cert.Subject.CommonName {
		in.problem("%s names %q but %s is the certificate of %q", clientenv.MetaFile, meta.Name, in.certName, cert.Subject.CommonName)
	}
}

// inspectCertFile describes a file of certificates: PEM (every
// CERTIFICATE block, and a private key if there is one) or DER.
func inspectCertFile(path string, data []byte, now time.Time) (*Info, error) {
	info := &Info{Path: path, Source: SourceCertificate, CAs: []CertInfo{}, Problems: []string{}}
	var certs []*x509.Certificate
	var keyPEM []byte
	var types []string
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		types = append(types, blk.Type)
		switch {
		case blk.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("inspect %q: certificate %d: %w", path, len(certs)+1, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY") && keyPEM == nil:
			keyPEM = pem.EncodeToMemory(blk)
		}
	}
	if types == nil {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("inspect %q: not a bundle archive (tar.gz), a bundle directory or a certificate (PEM or DER)", path)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("inspect %q: no certificate in the file (PEM blocks: %s)", path, strings.Join(types, ", "))
	}
	problem := func(format string, args ...any) { info.Problems = append(info.Problems, fmt.Sprintf(format, args...)) }
	name := filepath.Base(path)
	var leaf *x509.Certificate
	var cas []*x509.Certificate
	for _, c := range certs {
		ci := describeCert(c)
		switch {
		case c.IsCA:
			cas = append(cas, c)
			info.CAs = append(info.CAs, ci)
			validity(problem, name, "CA", c, now)
		case leaf == nil:
			leaf = c
			info.Client = &ci
			validity(problem, name, "certificate", c, now)
		default:
			info.Extra = append(info.Extra, ci)
			validity(problem, name, "certificate", c, now)
		}
	}
	if keyPEM != nil && leaf != nil {
		key, err := pki.ParsePrivateKey(keyPEM)
		if err != nil {
			problem("%s: %v", name, err)
		} else {
			ok := pki.KeyMatches(leaf, key)
			info.KeyMatches = &ok
			if !ok {
				problem("%s: the private key is not the key of the certificate of %q", name, leaf.Subject.CommonName)
			}
		}
	}
	if leaf != nil && len(cas) > 0 {
		kind := pki.KindClient
		if !hasEKU(leaf, x509.ExtKeyUsageClientAuth) && hasEKU(leaf, x509.ExtKeyUsageServerAuth) {
			kind = pki.KindServer
		}
		ok := chains(leaf, cas, kind)
		info.Chains = &ok
		if !ok {
			problem("%s: the certificate of %q (issuer %q) does not chain to the file's CAs (%s) as a %s certificate",
				name, leaf.Subject.CommonName, leaf.Issuer.CommonName, caNames(cas), kind)
		}
	}
	return info, nil
}

// validity adds a problem when c is not valid at now.
func validity(problem func(string, ...any), file, what string, c *x509.Certificate, now time.Time) {
	const day = "2006-01-02 15:04 MST"
	switch {
	case now.After(c.NotAfter):
		problem("%s: the %s %q expired on %s", file, what, c.Subject.CommonName, c.NotAfter.UTC().Format(day))
	case now.Before(c.NotBefore):
		problem("%s: the %s %q is not valid before %s (check the clock)", file, what, c.Subject.CommonName, c.NotBefore.UTC().Format(day))
	}
}

// chains reports whether cert chains to one of cas for kind. It is checked
// at a moment inside cert's validity, so that an expired certificate that
// was properly issued still chains: expiry is a problem of its own.
func chains(cert *x509.Certificate, cas []*x509.Certificate, kind pki.Kind) bool {
	at := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	return pki.Verify(cert, cas, kind, at) == nil
}

func describeCert(c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	ci := CertInfo{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    pki.Serial(c),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		KeyType:   keyType(c),
		IsCA:      c.IsCA,
		SHA256:    hex.EncodeToString(sum[:]),
	}
	ci.SANs = append(ci.SANs, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		ci.SANs = append(ci.SANs, ip.String())
	}
	ci.SANs = append(ci.SANs, c.EmailAddresses...)
	for _, u := range c.URIs {
		ci.SANs = append(ci.SANs, u.String())
	}
	for _, u := range c.ExtKeyUsage {
		ci.EKU = append(ci.EKU, ekuName(u))
	}
	for _, oid := range c.UnknownExtKeyUsage {
		ci.EKU = append(ci.EKU, oid.String())
	}
	return ci
}

// keyType spells a public key as --key-type does.
func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ecdsa-p%d", k.Curve.Params().BitSize)
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return strings.ToLower(c.PublicKeyAlgorithm.String())
}

// ekuNames are RFC 5280 section 4.2.1.12's names for the extended key
// usages crypto/x509 knows, with Microsoft's and Netscape's where RFC 5280
// has none.
var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                            "any",
	x509.ExtKeyUsageServerAuth:                     "serverAuth",
	x509.ExtKeyUsageClientAuth:                     "clientAuth",
	x509.ExtKeyUsageCodeSigning:                    "codeSigning",
	x509.ExtKeyUsageEmailProtection:                "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:                 "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                    "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                      "ipsecUser",
	x509.ExtKeyUsageTimeStamping:                   "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                    "OCSPSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      "nsSGC",
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: "msCodeCom",
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     "msKernelCodeSigning",
}

func ekuName(u x509.ExtKeyUsage) string {
	if n, ok := ekuNames[u]; ok {
		return n
	}
	return fmt.Sprintf("eku(%d)", u)
}

// hasEKU reports whether c may be used for u, as crypto/x509 decides it: a
// certificate without the extension, or with anyExtendedKeyUsage, may be
// used for anything.
func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, e := range c.ExtKeyUsage {
		if e == u || e == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func caNames(cas []*x509.Certificate) string {
	q := make([]string, len(cas))
	for i, ca := range cas {
		q[i] = fmt.Sprintf("%q", ca.Subject.CommonName)
	}
	return strings.Join(q, ", ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
