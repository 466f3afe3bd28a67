//go:build linux

// Command authzlat measures, for `make bench`, what the dtls authorization
// plugin adds to each Docker API call: GET /containers/json over mutual TLS,
// from a Go client on one kept-alive connection, against two sandboxed
// dockerds set up by dtls in the same run, one without the plugin and one
// with it (the same CA, client and host). It reports p50, p99 and
// throughput of each, the difference, and the plugin's memory (VmRSS) at
// rest and after the load. Targets: under 1 ms added at p99, under 20%
// throughput lost; a miss is reported, not fatal.
//
// A third daemon uses a plugin that allows everything without reading the
// call (served by this program): the floor that dockerd's own plugin calls
// cost, two round trips per API call (AuthZReq, AuthZRes; moby
// pkg/authorization/middleware.go), whatever the plugin does. The dtls
// plugin's own share is its difference from that floor.
//
// It needs root and dockerd (as the end-to-end tests do), and places
// uniquely named sockets under /run/docker/plugins, removed at the end.
//
// Usage: go run ./bench/authzlat [-dtls bin/dtls] [-n 3000]
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/sandbox"
)

func main() {
	dtls := flag.String("dtls", "bin/dtls", "dtls binary")
	n := flag.Int("n", 3000, "requests per daemon")
	flag.Parse()
	if err := run(*dtls, *n); err != nil {
		fmt.Fprintf(os.Stderr, "authzlat: %v\n", err)
		os.Exit(1)
	}
}

type result struct {
	p50, p99, mean time.Duration
	perSec         float64
}

func run(dtls string, n int) error {
	dtls, err := filepath.Abs(dtls)
	if err != nil {
		return err
	}
	dir, err := sandbox.NewDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	state, certs, systemd := filepath.Join(dir, "state"), filepath.Join(dir, "certs"), filepath.Join(dir, "systemd")
	if err := os.Mkdir(systemd, 0o755); err != nil {
		return err
	}
	sh := func(args ...string) error {
		out, err := exec.Command(dtls, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("dtls %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}

	// Daemon A, without the plugin.
	dirA := filepath.Join(dir, "a")
	if err := os.Mkdir(dirA, 0o700); err != nil {
		return err
	}
	portA, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	cfgA := filepath.Join(dirA, "daemon.json")
	if err := os.WriteFile(cfgA, sandbox.BaseConfig(dirA), 0o644); err != nil {
		return err
	}
	initArgs := func(cfg string, port int) []string {
		return []string{"init", "--state-dir", state, "--certs-dir", certs, "--daemon-json", cfg, "--systemd-dir", systemd,
			"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1"}
	}
	if err := sh(initArgs(cfgA, portA)...); err != nil {
		return err
	}
	bundle := filepath.Join(dir, "bundle")
	if err := sh("issue-client", "bench", "--role", "admin", "--state-dir", state, "--out", bundle); err != nil {
		return err
	}
	devBundle := filepath.Join(dir, "dev")
	if err := sh("issue-client", "dev", "--role", "developer", "--state-dir", state, "--out", devBundle); err != nil {
		return err
	}

	// The plugin, and daemon B with it.
	// B's daemon.json is the plugin's: its unix socket answers the
	// plugin's lookups of containers.
	dirB := filepath.Join(dir, "b")
	if err := os.Mkdir(dirB, 0o700); err != nil {
		return err
	}
	portB, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	cfgB := filepath.Join(dirB, "daemon.json")
	if err := os.WriteFile(cfgB, sandbox.BaseConfig(dirB), 0o644); err != nil {
		return err
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	socket := fmt.Sprintf("/run/docker/plugins/dtls-authz-bench-%s.sock", hex.EncodeToString(id))
	// The host stays as it was: the plugin directory goes if this run
	// made it (and nothing else is in it).
	defer sandbox.ClaimHostDirs()()
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return err
	}
	plugin := exec.Command(dtls, "authz", "serve", "--socket", socket, "--state-dir", state, "--audit-log", filepath.Join(dir, "authz.log"),
		"--daemon-json", cfgB, "--systemd-dir", systemd)
	plugin.Stdout = io.Discard
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
	rssStart := rss(plugin.Process.Pid)
	// The floor: a plugin that answers at once.
	floorSocket := fmt.Sprintf("/run/docker/plugins/dtls-authz-floor-%s.sock", hex.EncodeToString(id))
	fl, err := net.Listen("unix", floorSocket)
	if err != nil {
		return err
	}
	defer os.Remove(floorSocket)
	defer fl.Close()
	go http.Serve(fl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Plugin.Activate" {
			io.WriteString(w, `{"Implements":["authz"]}`)
			return
		}
		io.WriteString(w, `{"Allow":true}`)
	}))
	dirC := filepath.Join(dir, "c")
	if err := os.Mkdir(dirC, 0o700); err != nil {
		return err
	}
	portC, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	cfgC := filepath.Join(dirC, "daemon.json")
	if err := os.WriteFile(cfgC, sandbox.BaseConfig(dirC), 0o644); err != nil {
		return err
	}
	if err := sh(append(initArgs(cfgC, portC), "--authz", "--authz-socket", floorSocket)...); err != nil {
		return err
	}

	if err := sh(append(initArgs(cfgB, portB), "--authz", "--authz-socket", socket)...); err != nil {
		return err
	}

	ctx := context.Background()
	var res [3]result
	var own [2]result // on B: inspect of a developer's container, by admin and by its developer
	for i, d := range []struct {
		dir, cfg string
		port     int
	}{{dirA, cfgA, portA}, {dirC, cfgC, portC}, {dirB, cfgB, portB}} {
		daemon, err := sandbox.Start(ctx, d.dir, d.cfg)
		if err != nil {
			return err
		}
		res[i], err = measure(bundle, d.port, "/v1.41/containers/json", n)
		if err == nil && i == 2 {
			own, err = measureOwned(ctx, daemon, bundle, devBundle, d.port, n)
		}
		daemon.Stop()
		if err != nil {
			return err
		}
	}
	rssAfter := rss(plugin.Process.Pid)

	fmt.Printf("GET /containers/json over mutual TLS, %d requests each, one kept-alive connection\n", n)
	fmt.Printf("%-16s %10s %10s %10s %12s\n", "", "p50", "p99", "mean", "req/s")
	for i, name := range []string{"without plugin", "floor plugin", "dtls plugin"} {
		fmt.Printf("%-16s %10s %10s %10s %12.0f\n", name, res[i].p50.Round(time.Microsecond), res[i].p99.Round(time.Microsecond),
			res[i].mean.Round(time.Microsecond), res[i].perSec)
	}
	addP99 := res[2].p99 - res[0].p99
	lost := 1 - res[2].perSec/res[0].perSec
	fmt.Printf("dtls plugin vs none: p50 +%s, p99 +%s (target < 1ms: %s); throughput lost %.1f%% (target < 20%%: %s)\n",
		(res[2].p50 - res[0].p50).Round(time.Microsecond), addP99.Round(time.Microsecond), verdict(addP99 < time.Millisecond),
		100*lost, verdict(lost < 0.20))
	fmt.Printf("floor plugin vs none: p50 +%s, p99 +%s; throughput lost %.1f%% (dockerd's plugin calls alone)\n",
		(res[1].p50 - res[0].p50).Round(time.Microsecond), (res[1].p99 - res[0].p99).Round(time.Microsecond), 100*(1-res[1].perSec/res[0].perSec))
	fmt.Printf("dtls plugin vs floor: p50 +%s, p99 +%s (the plugin's own work)\n",
		(res[2].p50 - res[1].p50).Round(time.Microsecond), (res[2].p99 - res[1].p99).Round(time.Microsecond))
	fmt.Printf("GET /containers/{id}/json of a developer's container with the dtls plugin: admin p50 %s p99 %s; its developer p50 %s p99 %s (+%s at p50: the plugin asks dockerd who the container is)\n",
		own[0].p50.Round(time.Microsecond), own[0].p99.Round(time.Microsecond), own[1].p50.Round(time.Microsecond), own[1].p99.Round(time.Microsecond),
		(own[1].p50 - own[0].p50).Round(time.Microsecond))
	fmt.Printf("plugin memory (VmRSS): %s at rest, %s after %d requests\n", rssStart, rssAfter, 3*n+600)
	return nil
}

// measureOwned has the developer create a container on d through the
// plugin, then measures its inspect by admin (no lookup) and by the
// developer (the ownership rule: a lookup through dockerd).
func measureOwned(ctx context.Context, d *sandbox.Daemon, admin, dev string, port, n int) ([2]result, error) {
	var out [2]result
	if err := d.TinyImage(ctx, "tiny:1"); err != nil {
		return out, err
	}
	c, err := client(dev)
	if err != nil {
		return out, err
	}
	resp, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d/v1.41/containers/create?name=owned", port), "application/json",
		strings.NewReader(`{"Image":"tiny:1","Cmd":["/x"]}`))
	if err != nil {
		return out, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return out, fmt.Errorf("create as the developer: %s: %s", resp.Status, b)
	}
	for i, bundle := range []string{admin, dev} {
		if out[i], err = measure(bundle, port, "/v1.41/containers/owned/json", n); err != nil {
			return out, err
		}
	}
	return out, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// measure sends n requests one after another on one connection, after a
// warm-up, and returns the latency percentiles and the rate.
func measure(bundle string, port int, path string, n int) (result, error) {
	c, err := client(bundle)
	if err != nil {
		return result{}, err
	}
	defer c.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
	get := func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	for i := 0; i < 200; i++ {
		if err := get(); err != nil {
			return result{}, err
		}
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range lat {
		t := time.Now()
		if err := get(); err != nil {
			return result{}, err
		}
		lat[i] = time.Since(t)
	}
	total := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{
		p50: lat[n/2], p99: lat[n*99/100], mean: total / time.Duration(n),
		perSec: float64(n) / total.Seconds(),
	}, nil
}

// client is an HTTPS client with a bundle's certificate, keeping one
// connection alive.
func client(bundle string) (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(bundle, "cert.pem"), filepath.Join(bundle, "key.pem"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(bundle, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"},
		MaxIdleConnsPerHost: 1,
	}}, nil
}

// rss is a process's resident memory, from /proc/PID/status.
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
