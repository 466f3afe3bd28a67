//go:build linux

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
//     process's CPU time and memory (VmHWM, VmRSS);
//   - revocation propagation: two sandboxed dockerds enrolled with the CA,
//     each with the plugin following its revocation list (default refresh,
//     5 s); for each of several clients, the time from the revocation
//     call's return to each daemon's first refusal. It needs root and
//     dockerd (as the end-to-end tests do) and places uniquely named
//     sockets under /run/docker/plugins, removed at the end; -propagation=0
//     leaves it out.
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
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cflog "github.com/cloudflare/cfssl/log"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/internal/sandbox"
	"github.com/dtls-tool/dtls/pki"
)

func main() {
	dtls := flag.String("dtls", "bin/dtls", "dtls binary")
	agents := flag.Int("agents", 1000, "agents renewing in one window")
	revocations := flag.Int("propagation", 10, "revocations timed to two daemons (0: none)")
	flag.Parse()
	// cfssl logs every CSR it encodes at INFO.
	cflog.Level = cflog.LevelError
	if err := run(*dtls, *agents, *revocations); err != nil {
		fmt.Fprintf(os.Stderr, "fleetca: %v\n", err)
		os.Exit(1)
	}
}

// perRound is how many certificates each concurrency level signs.
var rounds = []struct{ workers, certs int }{{1, 200}, {4, 400}, {16, 800}}

func run(dtls string, agents, revocations int) error {
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
	if revocations == 0 {
		return nil
	}
	return propagation(dtls, dir, caDir, url, op, revocations)
}

// propagation sets up two Docker hosts enrolled with the CA, each with the
// plugin following its revocation list, enrols n clients, revokes them
// one by one and times each daemon's first refusal.
func propagation(dtls, dir, caDir, url string, op *fleet.Client, n int) error {
	ctx := context.Background()
	sh := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(dtls, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("dtls %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(stdout.String()), nil
	}
	pluginDir := "/run/docker/plugins"
	// The host stays as it was: the plugin directory goes if this run
	// made it (sandbox.ClaimHostDirs).
	defer sandbox.ClaimHostDirs()()
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	ports := make([]int, 2)
	for i := range ports {
		hostDir, err := sandbox.NewDir()
		if err != nil {
			return err
		}
		defer os.RemoveAll(hostDir)
		if ports[i], err = sandbox.FreePort(); err != nil {
			return err
		}
		state, cfg := filepath.Join(hostDir, "state"), filepath.Join(hostDir, "daemon.json")
		if err := os.WriteFile(cfg, sandbox.BaseConfig(hostDir), 0o644); err != nil {
			return err
		}
		initArgs := []string{"init", "--state-dir", state, "--certs-dir", filepath.Join(hostDir, "certs"), "--daemon-json", cfg,
			"--systemd-dir", "", "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", ports[i])}
		tok, err := sh("ca", "token", "--state-dir", caDir, "--host", "localhost", "--san", "127.0.0.1")
		if err != nil {
			return err
		}
		if _, err := sh(append(initArgs, "--ca-url", url, "--token", tok)...); err != nil {
			return err
		}
		_, socket := sandbox.PluginSocket("authz-fleetbench")
		plugin := exec.Command(dtls, "authz", "serve", "--socket", socket, "--state-dir", state, "--audit-log", filepath.Join(hostDir, "authz.log"),
			"--daemon-json", cfg, "--systemd-dir", hostDir)
		if err := plugin.Start(); err != nil {
			return err
		}
		defer func() {
			_ = plugin.Process.Signal(syscall.SIGTERM)
			_ = plugin.Wait()
			os.Remove(socket)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for authority.ProbeAuthz(socket, time.Second) != nil {
			if time.Now().After(deadline) {
				return errors.New("the plugin did not come up")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := sh(append(initArgs, "--authz", "--authz-socket", socket)...); err != nil {
			return err
		}
		d, err := sandbox.Start(ctx, hostDir, cfg)
		if err != nil {
			return err
		}
		defer d.Stop()
	}
	caPEM, err := op.CA(ctx)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	type client struct {
		name string
		http *http.Client
	}
	clients := make([]client, n)
	for i := range clients {
		name := fmt.Sprintf("revokee-%d", i)
		tr, err := op.NewToken(ctx, fleet.TokenRequest{Kind: store.KindClient, Name: name, Role: "readonly"})
		if err != nil {
			return err
		}
		tok, err := fleet.ParseToken(tr.Token)
		if err != nil {
			return err
		}
		csr, key, err := pki.NewCSR(name, "")
		if err != nil {
			return err
		}
		resp, err := (&fleet.Client{URL: url}).Enroll(ctx, tok, csr)
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair([]byte(resp.Certificate), key)
		if err != nil {
			return err
		}
		clients[i] = client{name, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"}}}}
	}
	status := func(c client, port int) (int, error) {
		resp, err := c.http.Get(fmt.Sprintf("https://127.0.0.1:%d/v1.41/containers/json", port))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var took [2][]time.Duration
	for _, c := range clients {
		for _, port := range ports {
			if code, err := status(c, port); err != nil || code != http.StatusOK {
				return fmt.Errorf("%s before its revocation: %d %v", c.name, code, err)
			}
		}
		// A random phase against the plugins' refresh ticks: each
		// revocation lands anywhere in their period.
		time.Sleep(time.Duration(mrand.Int64N(int64(fleet.DefaultCRLRefresh))))
		if _, err := op.Revoke(ctx, fleet.RevokeRequest{Key: c.name}); err != nil {
			return err
		}
		revoked := time.Now()
		left := map[int]bool{0: true, 1: true}
		for len(left) > 0 {
			if time.Since(revoked) > time.Minute {
				return fmt.Errorf("%s still allowed a minute after its revocation", c.name)
			}
			for i := range left {
				if code, err := status(c, ports[i]); err == nil && code == http.StatusForbidden {
					took[i] = append(took[i], time.Since(revoked))
					delete(left, i)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fmt.Printf("revocation propagation, %d revocations, plugin refresh %s (bound: refresh + 1 s CA cache + a round trip < 10 s)\n",
		n, fleet.DefaultCRLRefresh)
	for i := range took {
		sort.Slice(took[i], func(a, b int) bool { return took[i][a] < took[i][b] })
		fmt.Printf("  daemon %d: min %s, median %s, max %s\n", i+1, took[i][0].Round(time.Millisecond),
			took[i][len(took[i])/2].Round(time.Millisecond), took[i][len(took[i])-1].Round(time.Millisecond))
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
