// Command fleetca measures, for `make bench`, the online CA (`dtls ca
// serve`) with its inventory in PostgreSQL, both started by this program
// on loopback in temporary directories:
//
//   - certificates per second through the CA with 1, 4 and 16 concurrent
//     clients (enrolment with a one-time token: TLS, the token's check and
//     use, signing, the PostgreSQL commit), next to local issuance
//     (authority.IssueClients, one certificate per call, on SQLite)
//     measured in the same run;
//   - 1,000 agents renewing in one window, all at once, each over its own
//     mutual TLS connection: the time to renew them all, and the CA
//     process's CPU time and memory (VmHWM, VmRSS).
//
// Keys and CSRs are made before the clock starts: they are the clients'
// work, not the CA's.
//
// Usage: go run ./bench/fleetca [-dtls bin/dtls] [-agents 1000]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cflog "github.com/cloudflare/cfssl/log"

	"github.com/dtls-tool/dtls/authority"
	"github.com/dtls-tool/dtls/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

func main() {
	dtls := flag.String("dtls", "bin/dtls", "dtls binary")
	agents := flag.Int("agents", 1000, "agents renewing in one window")
	flag.Parse()
	// cfssl logs every CSR it encodes at INFO.
	cflog.Level = cflog.LevelError
	if err := run(*dtls, *agents); err != nil {
		fmt.Fprintf(os.Stderr, "fleetca: %v\n", err)
		os.Exit(1)
	}
}

// perRound is how many certificates each concurrency level signs.
var rounds = []struct{ workers, certs int }{{1, 200}, {4, 400}, {16, 800}}

func run(dtls string, agents int) error {
	dtls, err := filepath.Abs(dtls)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dtls-fleetca-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn, stopPG, err := pgsandbox.StartServer()
	if err != nil {
		return err
	}
	defer stopPG()

	port, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	caDir := filepath.Join(dir, "ca")
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	if out, err := exec.Command(dtls, "ca", "init", "--state-dir", caDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--host", "127.0.0.1", "--url", url, "--db-url", dsn, "--unit-dir", "").CombinedOutput(); err != nil {
		return fmt.Errorf("dtls ca init: %v\n%s", err, out)
	}
	var caOut bytes.Buffer
	srv := exec.Command(dtls, "ca", "serve", "--state-dir", caDir)
	srv.Stdout, srv.Stderr = &caOut, &caOut
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	op, err := operatorClient(url, filepath.Join(caDir, "operator"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := op.CA(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the CA did not come up: %v\n%s", err, caOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	total := 0
	for _, r := range rounds {
		total += r.certs
	}
	if agents > total {
		agents = total
	}
	// Tokens and CSRs first: the clients' work and the operator's.
	type job struct {
		token  fleet.Token
		csr    []byte
		keyPEM []byte
	}
	jobs := make([]job, total)
	for i := range jobs {
		tr, err := op.NewToken(ctx, fleet.TokenRequest{Kind: store.KindClient, Name: fmt.Sprintf("bench-%d", i), Role: "developer"})
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		tok, err := fleet.ParseToken(tr.Token)
		if err != nil {
			return err
		}
		csr, key, err := pki.NewCSR("bench", "")
		if err != nil {
			return err
		}
		jobs[i] = job{token: tok, csr: csr, keyPEM: key}
	}
	issued := make([]*fleet.CertResponse, total)

	fmt.Printf("online CA (dtls ca serve, PostgreSQL inventory), loopback, %d cores\n", numCPU())
	fmt.Printf("%-34s %8s %12s %10s\n", "", "certs", "certs/s", "ms/cert")
	next := 0
	for _, r := range rounds {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, r.workers)
		per := r.certs / r.workers
		for w := 0; w < r.workers; w++ {
			first := next + w*per
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &fleet.Client{URL: url}
				defer c.CloseIdleConnections()
				for i := first; i < first+per; i++ {
					resp, err := c.Enroll(ctx, jobs[i].token, jobs[i].csr)
					if err != nil {
						errs <- err
						return
					}
					issued[i] = resp
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("enrol: %w", err)
		}
		el := time.Since(start)
		next += r.certs
		fmt.Printf("%-34s %8d %12.0f %10.2f\n", fmt.Sprintf("enrolment, %d concurrent client(s)", r.workers), r.certs,
			float64(r.certs)/el.Seconds(), float64(el.Milliseconds())/float64(r.certs))
	}

	local, err := localIssuance(dtls, dir, 200)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %8d %12.0f %10.2f\n", "local issuance (SQLite, 1 per call)", 200, 200/local.Seconds(), float64(local.Milliseconds())/200)

	// 1,000 agents renew at once, each with its own certificate.
	renewCSR := make([][]byte, agents)
	clients := make([]*fleet.Client, agents)
	roots := x509.NewCertPool()
	caPEM, err := op.CA(ctx)
	if err != nil {
		return err
	}
	roots.AppendCertsFromPEM(caPEM)
	for i := range agents {
		cert, err := tls.X509KeyPair([]byte(issued[i].Certificate), jobs[i].keyPEM)
		if err != nil {
			return err
		}
		clients[i] = &fleet.Client{URL: url, Roots: roots, Certificate: &cert}
		renewCSR[i], _, err = pki.NewCSR("bench", "")
		if err != nil {
			return err
		}
	}
	cpu0, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return err
	}
	rest := procStatus(srv.Process.Pid, "VmRSS")
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer clients[i].CloseIdleConnections()
			var err error
			for try := 0; try < 5; try++ {
				if _, err = clients[i].Renew(ctx, renewCSR[i]); err == nil || !fleet.Retryable(err) {
					break
				}
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	el := time.Since(start)
	failed := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failed++
	}
	cpu1, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("%d agents renewing at once: all renewed in %s (%.0f/s), %d failed; CA CPU %s; CA memory %s at rest, peak %s\n",
		agents, el.Round(time.Millisecond), float64(agents)/el.Seconds(), failed, (cpu1 - cpu0).Round(time.Millisecond),
		rest, procStatus(srv.Process.Pid, "VmHWM"))
	if first != nil {
		return fmt.Errorf("renewal: %w", first)
	}
	return nil
}

// operatorClient is a client with the operator bundle in dir.
func operatorClient(url, dir string) (*fleet.Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &fleet.Client{URL: url, Roots: roots, Certificate: &cert}, nil
}

// localIssuance times n one-certificate IssueClients calls on a host set
// up by `dtls init` (CA, inventory on SQLite), as `dtls issue-client`
// makes them without the process start.
func localIssuance(dtls, dir string, n int) (time.Duration, error) {
	state, certs, cfg := filepath.Join(dir, "local"), filepath.Join(dir, "local-certs"), filepath.Join(dir, "daemon.json")
	if out, err := exec.Command(dtls, "init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", cfg,
		"--systemd-dir", "", "--host", "localhost").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("dtls init: %v\n%s", err, out)
	}
	a, err := authority.Open(state, authority.Options{})
	if err != nil {
		return 0, err
	}
	defer a.Close()
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("local-%d", i)
		if _, err := a.IssueClients(authority.ClientRequest{Names: []string{name},
			Dir: func(string) string { return filepath.Join(dir, "bundles", name) }, Now: time.Now()}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cpuTime is a process's user plus system CPU time, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after ")" are
	// state, ppid, ... utime is field 14, stime 15 (proc(5)).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)).
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// procStatus is one field of /proc/PID/status.
func procStatus(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
