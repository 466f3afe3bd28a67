// Command bulkissue measures, for `make bench`, a bulk issuance: one
// `dtls issue-client` call for N names (records and bundle files included),
// in milliseconds per certificate, next to two floors measured in the same
// run with crypto/x509 alone:
//
//   - keygen+sign: an ECDSA P-256 key and a signed client certificate;
//   - +files: the same, plus writing the same four bundle files with the same
//     fsyncs as dtls (temporary file, fsync, rename, fsync of the directory,
//     for each file; a temporary bundle directory renamed into place).
//
// It also times the inventory alone (N records inserted in one transaction
// through package store), to say how much of the gap is the database. The
// target is dtls within 3x the second floor; a miss is reported, not fatal.
//
// Usage: go run ./bench/bulkissue [-dtls bin/dtls] [-n 1000]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/store"
)

func main() {
	dtls := flag.String("dtls", "bin/dtls", "dtls binary")
	n := flag.Int("n", 1000, "certificates per run")
	flag.Parse()
	if err := run(*dtls, *n); err != nil {
		fmt.Fprintf(os.Stderr, "bulkissue: %v\n", err)
		os.Exit(1)
	}
}

type ca struct {
	cert *x509.Certificate
	pem  []byte
	key  *ecdsa.PrivateKey
}

func newCA() (*ca, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k}, nil
}

// issue is the first floor: key generation and signing.
func (c *ca) issue(name string) (*x509.Certificate, []byte, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &k.PublicKey, c.key)
	if err != nil {
		return nil, nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

// writeBundle is the second floor's file work, as cmd/issue.go does it.
func writeBundle(dir string, files map[string][]byte) error {
	parent := filepath.Dir(dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	for name, data := range files {
		if err := atomicfile.Write(filepath.Join(tmp, name), data, 0o400); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return atomicfile.SyncDir(parent)
}

func run(dtls string, n int) error {
	work, err := os.MkdirTemp("", "dtls-bulkissue-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	c, err := newCA()
	if err != nil {
		return err
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("user%04d", i)
	}

	// Floor 1: keygen + sign.
	start := time.Now()
	for _, name := range names {
		if _, _, _, err := c.issue(name); err != nil {
			return err
		}
	}
	floor1 := time.Since(start)

	// Floor 2: keygen + sign + the same files and fsyncs.
	out := filepath.Join(work, "floor2")
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	meta := []byte(`{"name":"x","docker_host":"tcp://localhost:2376","not_after":"2027-01-01T00:00:00Z","serial":"1"}` + "\n")
	var recs []store.Record
	start = time.Now()
	for _, name := range names {
		cert, certPEM, keyPEM, err := c.issue(name)
		if err != nil {
			return err
		}
		if err := writeBundle(filepath.Join(out, name), map[string][]byte{"key.pem": keyPEM, "cert.pem": certPEM, "ca.pem": c.pem, "dtls.json": meta}); err != nil {
			return err
		}
		recs = append(recs, store.FromCert(cert, certPEM, store.KindClient, "1", filepath.Join(out, name)))
	}
	floor2 := time.Since(start)

	// The database alone: N records in one transaction, as dtls does.
	start = time.Now()
	st, err := store.Open(filepath.Join(work, "bench.db"))
	if err != nil {
		return err
	}
	if err := st.Apply(store.Change{Insert: recs}); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	dbTime := time.Since(start)

	// dtls itself: init, then one issue-client call for N names.
	env := append(os.Environ(),
		"DTLS_STATE_DIR="+filepath.Join(work, "state"), "DTLS_CERTS_DIR="+filepath.Join(work, "certs"),
		"DTLS_DAEMON_JSON="+filepath.Join(work, "daemon.json"), "DTLS_SYSTEMD_DIR="+work)
	if err := os.WriteFile(filepath.Join(work, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(dtls, "init", "--host", "localhost")
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dtls init: %v: %s", err, b)
	}
	cmd = exec.Command(dtls, append(append([]string{"issue-client"}, names...), "--out", filepath.Join(work, "bundles"))...)
	cmd.Env = env
	start = time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dtls issue-client: %v: %s", err, b)
	}
	dtlsTime := time.Since(start)

	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	fmt.Printf("\nbulk issuance, %d client certificates in one call (ms per certificate)\n", n)
	fmt.Printf("  %-34s %8.3f\n", "floor: keygen + sign", per(floor1))
	fmt.Printf("  %-34s %8.3f\n", "floor: + same files and fsyncs", per(floor2))
	fmt.Printf("  %-34s %8.3f\n", "dtls issue-client (all included)", per(dtlsTime))
	fmt.Printf("  %-34s %8.3f\n", "of which the database (measured)", per(dbTime))
	ratio := float64(dtlsTime) / float64(floor2)
	verdict := "PASS"
	if ratio > 3 {
		verdict = "MISSED"
	}
	fmt.Printf("  dtls / second floor: %.2fx (target <= 3x): %s\n", ratio, verdict)
	if gap := dtlsTime - floor2; gap > 0 {
		fmt.Printf("  the database is %.0f%% of the gap (%.3f of %.3f ms per certificate)\n", 100*float64(dbTime)/float64(gap), per(dbTime), per(gap))
	} else {
		fmt.Printf("  no gap to the second floor (disk noise dominates); the database is %.1f%% of dtls's time\n", 100*float64(dbTime)/float64(dtlsTime))
	}
	return nil
}
