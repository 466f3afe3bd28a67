// Command cmdbench times whole processes for `make bench`: dtls's own
// commands against the tools a user would otherwise reach for (the openssl
// procedure of Docker's documentation, mkcert, the docker CLI) and against two
// floors (an empty Go program, and one that links what dtls links). It prints
// a table of the median and p90 wall-clock time per process and checks the
// project's targets, printing PASS or MISSED for each.
//
// It exits non-zero only on a real error (a command that fails or writes
// nothing, a build that fails); a missed target is reported, not fatal, since
// timings depend on the machine.
//
// Usage, from anywhere in the module:
//
//	go run ./bench/cmdbench [-dtls bin/dtls] [-runs 20] [-openssl-runs 3] [-rows init,openssl,...]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Row keys, in the order the table prints them.
const (
	rowEmpty    = "empty"
	rowLinkOnly = "linkonly"
	rowEnv      = "env"
	rowContext  = "context"
	rowInit     = "init"
	rowMkcert   = "mkcert"
	rowOpenSSL  = "openssl"
)

var allRows = []string{rowEmpty, rowLinkOnly, rowEnv, rowContext, rowInit, rowMkcert, rowOpenSSL}

// opensslScript is the procedure of "Create a CA, server and client keys with
// OpenSSL" in https://docs.docker.com/engine/security/protect-access/, with
// the prompts answered on the command line (-passout/-passin pass:x, -subj)
// so that it runs unattended. Keys are RSA 4096 as there; the CA key is
// encrypted with AES-256 as there.
const opensslScript = `set -euo pipefail
openssl genrsa -aes256 -passout pass:x -out ca-key.pem 4096 2>/dev/null
openssl req -new -x509 -days 365 -key ca-key.pem -passin pass:x -sha256 -subj "/CN=dtls-bench-ca" -out ca.pem
openssl genrsa -out server-key.pem 4096 2>/dev/null
openssl req -subj "/CN=localhost" -sha256 -new -key server-key.pem -out server.csr
echo subjectAltName = DNS:localhost,IP:127.0.0.1 >> extfile.cnf
echo extendedKeyUsage = serverAuth >> extfile.cnf
openssl x509 -req -days 365 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem -passin pass:x \
  -CAcreateserial -out server-cert.pem -extfile extfile.cnf 2>/dev/null
openssl genrsa -out key.pem 4096 2>/dev/null
openssl req -subj '/CN=client' -new -key key.pem -out client.csr
echo extendedKeyUsage = clientAuth > extfile-client.cnf
openssl x509 -req -days 365 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem -passin pass:x \
  -CAcreateserial -out cert.pem -extfile extfile-client.cnf 2>/dev/null
rm -f client.csr server.csr extfile.cnf extfile-client.cnf
chmod 0400 ca-key.pem key.pem server-key.pem
chmod 0444 ca.pem server-cert.pem cert.pem
`

type options struct {
	dtls        string
	runs        int
	opensslRuns int
	rows        map[string]bool
	gobin       string
	mkcert      string
	docker      string
	root        string // module root, for building bench/linkonly
}

// bench holds what the rows share.
type bench struct {
	opts    options
	tmp     string   // removed at the end
	baseEnv []string // the environment less DTLS_* and DOCKER_*
	bins    map[string]string
	bundle  string // a client bundle for `dtls env`
}

// result is one row of the table.
type result struct {
	key, name      string
	runs           int
	median, p90    time.Duration
	processesInRow int
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "cmdbench: error: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cmdbench", flag.ContinueOnError)
	var opts options
	var rows string
	fs.StringVar(&opts.dtls, "dtls", "", "path of the dtls binary (default ROOT/bin/dtls)")
	fs.IntVar(&opts.runs, "runs", 20, "timed runs of each fast row")
	fs.IntVar(&opts.opensslRuns, "openssl-runs", 3, "timed runs of the openssl procedure (about 6 s each)")
	fs.StringVar(&rows, "rows", strings.Join(allRows, ","), "rows to run, comma-separated: "+strings.Join(allRows, ","))
	fs.StringVar(&opts.mkcert, "mkcert", "mkcert", "mkcert binary (apt-get install -y mkcert)")
	fs.StringVar(&opts.docker, "docker", "docker", "docker CLI binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opts.runs < 1 || opts.opensslRuns < 1 {
		return errors.New("-runs and -openssl-runs must be at least 1")
	}
	opts.rows = map[string]bool{}
	for _, r := range strings.Split(rows, ",") {
		r = strings.TrimSpace(r)
		if !contains(allRows, r) {
			return fmt.Errorf("-rows: unknown row %q (known: %s)", r, strings.Join(allRows, ","))
		}
		opts.rows[r] = true
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	opts.root = root
	if opts.dtls == "" {
		opts.dtls = filepath.Join(root, "bin", "dtls")
	}
	if opts.gobin, err = findTool("go", "/usr/local/go/bin/go"); err != nil {
		return err
	}
	if opts.rows[rowInit] || opts.rows[rowEnv] {
		if opts.dtls, err = filepath.Abs(opts.dtls); err != nil {
			return err
		}
		if _, err := os.Stat(opts.dtls); err != nil {
			return fmt.Errorf("dtls binary: %w (build it: go build -o bin/dtls ./cmd/dtls)", err)
		}
	}
	if opts.rows[rowMkcert] {
		if opts.mkcert, err = findTool(opts.mkcert); err != nil {
			return fmt.Errorf("%w (install it: apt-get install -y mkcert)", err)
		}
	}
	if opts.rows[rowContext] {
		if opts.docker, err = findTool(opts.docker); err != nil {
			return err
		}
	}

	tmp, err := os.MkdirTemp("", "dtls-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{opts: opts, tmp: tmp, baseEnv: cleanEnv(), bins: map[string]string{}}
	if err := b.build(); err != nil {
		return err
	}
	if opts.rows[rowEnv] {
		if b.bundle, err = b.makeBundle(); err != nil {
			return err
		}
	}

	var results []result
	for _, key := range allRows {
		if !opts.rows[key] {
			continue
		}
		r, err := b.runRow(key)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	report(out, opts, results)
	return nil
}

// buildFlags and buildEnv are how the Makefile builds bin/dtls (static,
// stripped, without cgo): the floors must be built the same way, or the
// comparison measures the dynamic loader and symbol tables instead of dtls.
var (
	buildFlags = []string{"-trimpath", "-ldflags=-s -w"}
	buildEnv   = []string{"CGO_ENABLED=0"}
)

// build compiles the two floors: an empty program, and bench/linkonly, with
// the flags the Makefile uses for bin/dtls.
func (b *bench) build() error {
	if b.opts.rows[rowEmpty] {
		src := filepath.Join(b.tmp, "emptysrc")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module empty\n\ngo 1.26\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
			return err
		}
		bin := filepath.Join(b.tmp, "empty")
		if err := b.goBuild(src, bin, ".", "GOWORK=off"); err != nil {
			return err
		}
		b.bins[rowEmpty] = bin
	}
	if b.opts.rows[rowLinkOnly] {
		bin := filepath.Join(b.tmp, "linkonly")
		if err := b.goBuild(b.opts.root, bin, "./bench/linkonly"); err != nil {
			return err
		}
		b.bins[rowLinkOnly] = bin
	}
	return nil
}

func (b *bench) goBuild(dir, out, pkg string, env ...string) error {
	args := append(append([]string{"build"}, buildFlags...), "-o", out, pkg)
	cmd := exec.Command(b.opts.gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), buildEnv...), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s %s in %s: %w\n%s", out, pkg, dir, err, msg)
	}
	return nil
}

// makeBundle runs dtls init and issue-client once, for the env row.
func (b *bench) makeBundle() (string, error) {
	dir, err := os.MkdirTemp(b.tmp, "bundle-")
	if err != nil {
		return "", err
	}
	if _, err := b.initClient(dir); err != nil {
		return "", fmt.Errorf("make a client bundle for the env row: %w", err)
	}
	return filepath.Join(dir, "alice"), nil
}

// initClient runs `dtls init` then `dtls issue-client alice` in dir, with
// every path inside dir (an empty --systemd-dir too, so that the host's
// units are never read), and returns the time of the two processes.
func (b *bench) initClient(dir string) (time.Duration, error) {
	state, certs, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "systemd")
	if err := os.Mkdir(systemd, 0o755); err != nil {
		return 0, err
	}
	d1, err := b.time(dir, nil, b.opts.dtls, "init",
		"--state-dir", state, "--certs-dir", certs,
		"--daemon-json", filepath.Join(dir, "daemon.json"),
		"--host", "localhost", "--host", "127.0.0.1",
		"--key-type", "ecdsa-p256", "--systemd-dir", systemd)
	if err != nil {
		return 0, err
	}
	d2, err := b.time(dir, nil, b.opts.dtls, "issue-client", "alice",
		"--state-dir", state, "--out", filepath.Join(dir, "alice"))
	if err != nil {
		return 0, err
	}
	return d1 + d2, mustExist(
		filepath.Join(state, "ca.pem"), filepath.Join(state, "ca-key.pem"),
		filepath.Join(certs, "server-cert.pem"), filepath.Join(certs, "server-key.pem"),
		filepath.Join(dir, "alice", "cert.pem"), filepath.Join(dir, "alice", "key.pem"),
		filepath.Join(dir, "daemon.json"))
}

func (b *bench) mkcert(dir string) (time.Duration, error) {
	// CAROOT in dir: mkcert makes its CA there on first use. No -install,
	// which would add the CA to the host's trust stores. HOME in dir too,
	// so that it looks for no browser profiles of the host's.
	env := []string{"CAROOT=" + filepath.Join(dir, "ca"), "HOME=" + dir}
	d1, err := b.time(dir, env, b.opts.mkcert, "-ecdsa",
		"-cert-file", "server-cert.pem", "-key-file", "server-key.pem", "localhost", "127.0.0.1")
	if err != nil {
		return 0, err
	}
	d2, err := b.time(dir, env, b.opts.mkcert, "-ecdsa", "-client",
		"-cert-file", "cert.pem", "-key-file", "key.pem", "alice")
	if err != nil {
		return 0, err
	}
	return d1 + d2, mustExist(filepath.Join(dir, "ca", "rootCA.pem"),
		filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "cert.pem"))
}

func (b *bench) openssl(dir string) (time.Duration, error) {
	d, err := b.time(dir, nil, "bash", "-c", opensslScript)
	if err != nil {
		return 0, err
	}
	return d, mustExist(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "cert.pem"))
}

// rowSpec describes how to time one row.
type rowSpec struct {
	name      string
	runs      int
	processes int
	once      func(dir string) (time.Duration, error)
}

func (b *bench) spec(key string) rowSpec {
	simple := func(env []string, bin string, args ...string) func(string) (time.Duration, error) {
		return func(dir string) (time.Duration, error) { return b.time(dir, env, bin, args...) }
	}
	switch key {
	case rowEmpty:
		return rowSpec{"empty Go program", b.opts.runs, 1, simple(nil, b.bins[rowEmpty])}
	case rowLinkOnly:
		return rowSpec{"linkonly (dtls's imports, no code)", b.opts.runs, 1, simple(nil, b.bins[rowLinkOnly])}
	case rowEnv:
		return rowSpec{"dtls env --shell bash", b.opts.runs, 1,
			simple(nil, b.opts.dtls, "env", "--cert-path", b.bundle, "--shell", "bash")}
	case rowContext:
		return rowSpec{"docker context show", b.opts.runs, 1, func(dir string) (time.Duration, error) {
			cfg := filepath.Join(dir, "docker-config")
			if err := os.Mkdir(cfg, 0o700); err != nil {
				return 0, err
			}
			return b.time(dir, []string{"DOCKER_CONFIG=" + cfg}, b.opts.docker, "context", "show")
		}}
	case rowInit:
		return rowSpec{"dtls init + issue-client (ecdsa-p256)", b.opts.runs, 2, b.initClient}
	case rowMkcert:
		return rowSpec{"mkcert -ecdsa (CA, server, client)", b.opts.runs, 2, b.mkcert}
	case rowOpenSSL:
		return rowSpec{"openssl, Docker docs procedure (rsa 4096)", b.opts.opensslRuns, 1, b.openssl}
	}
	panic("unknown row " + key)
}

// runRow runs a row once untimed (to warm the page cache and check that it
// works) and then runs times, each in a fresh directory.
func (b *bench) runRow(key string) (result, error) {
	s := b.spec(key)
	rowDir, err := os.MkdirTemp(b.tmp, key+"-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(rowDir)
	var times []time.Duration
	for i := -1; i < s.runs; i++ {
		dir, err := os.MkdirTemp(rowDir, "run-")
		if err != nil {
			return result{}, err
		}
		d, err := s.once(dir)
		if err != nil {
			return result{}, fmt.Errorf("%s: %w", s.name, err)
		}
		if i >= 0 {
			times = append(times, d)
		}
		if err := os.RemoveAll(dir); err != nil {
			return result{}, err
		}
	}
	return result{key: key, name: s.name, runs: s.runs, median: median(times), p90: p90(times), processesInRow: s.processes}, nil
}

// time runs one process in dir and returns its wall-clock time, measured
// around cmd.Run so that it includes fork, exec, the process's start-up and
// its exit. Standard input is /dev/null, so nothing can prompt.
func (b *bench) time(dir string, env []string, bin string, args ...string) (time.Duration, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, b.baseEnv...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.String()))
	}
	return d, nil
}

// cleanEnv is the environment less the variables that would point dtls or
// docker at the host's files: DTLS_STATE_DIR, DOCKER_HOST, DOCKER_CONFIG...
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DTLS_") || strings.HasPrefix(kv, "DOCKER_") || strings.HasPrefix(kv, "CAROOT=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func report(out io.Writer, opts options, results []result) {
	byKey := map[string]result{}
	for _, r := range results {
		byKey[r.key] = r
	}
	fmt.Fprintf(out, "process wall-clock time, median and p90 of N runs (one untimed warm-up run each)\n\n")
	fmt.Fprintf(out, "%-44s %9s %4s %10s %10s %8s\n", "row", "processes", "runs", "median ms", "p90 ms", "× empty")
	empty, haveEmpty := byKey[rowEmpty]
	for _, r := range results {
		ratio := "-"
		if haveEmpty && empty.median > 0 {
			ratio = fmt.Sprintf("%.1f", float64(r.median)/float64(empty.median))
		}
		fmt.Fprintf(out, "%-44s %9d %4d %10s %10s %8s\n", r.name, r.processesInRow, r.runs, ms(r.median), ms(r.p90), ratio)
	}

	fmt.Fprintf(out, "\ntargets (on medians)\n")
	check := func(a, b string, goal string, ok func(x, y time.Duration) (bool, string)) {
		x, hasX := byKey[a]
		y, hasY := byKey[b]
		if !hasX || !hasY {
			var missing []string
			for _, k := range []string{a, b} {
				if _, ok := byKey[k]; !ok {
					missing = append(missing, k)
				}
			}
			fmt.Fprintf(out, "n/a     %s (not run: %s)\n", goal, strings.Join(missing, ", "))
			return
		}
		pass, detail := ok(x.median, y.median)
		verdict := "MISSED"
		if pass {
			verdict = "PASS"
		}
		fmt.Fprintf(out, "%-7s %s: %s\n", verdict, goal, detail)
	}
	check(rowEnv, rowLinkOnly, "dtls env ≤ 1.25 × linkonly", func(env, link time.Duration) (bool, string) {
		r := ratio(env, link)
		return r <= 1.25, fmt.Sprintf("%s ms vs %s ms, ratio %.2f", ms(env), ms(link), r)
	})
	check(rowEnv, rowContext, "dtls env < docker context show", func(env, ctx time.Duration) (bool, string) {
		return env < ctx, fmt.Sprintf("%s ms vs %s ms, ratio %.2f", ms(env), ms(ctx), ratio(env, ctx))
	})
	check(rowOpenSSL, rowInit, "dtls init + issue-client ≥ 20× faster than openssl", func(ossl, dtls time.Duration) (bool, string) {
		r := ratio(ossl, dtls)
		return r >= 20, fmt.Sprintf("%s ms vs %s ms, %.1f× faster", ms(dtls), ms(ossl), r)
	})
	check(rowInit, rowMkcert, "dtls init + issue-client ≤ 2 × mkcert", func(dtls, mk time.Duration) (bool, string) {
		r := ratio(dtls, mk)
		return r <= 2, fmt.Sprintf("%s ms vs %s ms, ratio %.2f", ms(dtls), ms(mk), r)
	})
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

func median(ds []time.Duration) time.Duration {
	s := sorted(ds)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// p90 is the nearest-rank 90th percentile: with fewer than ten runs it is
// the slowest.
func p90(ds []time.Duration) time.Duration {
	s := sorted(ds)
	return s[int(math.Ceil(0.9*float64(len(s))))-1]
}

func sorted(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func mustExist(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("expected output missing: %w", err)
		}
	}
	return nil
}

// moduleRoot walks up from the working directory to this module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/dtls-tool/dtls\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run cmdbench inside the github.com/dtls-tool/dtls module (go.mod not found above the working directory)")
		}
		dir = parent
	}
}

func findTool(name string, fallbacks ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $PATH", name)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tail keeps the end of a command's stderr for an error message.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}
