//go:build linux

// Command gatewaylat measures, for `make bench`, what the dtls gateway adds
// to Docker API calls and streams, against dockerd's own mutual TLS on the
// same daemon and against the cheapest authorization plugin there is (one
// that allows everything without reading the call, served by this program,
// on a second daemon): the cost every plugin pays, two round trips per API
// call (moby pkg/authorization/middleware.go).
//
// Everything is measured in one run on the same machine and reported as
// ratios:
//   - GET /containers/json on one kept-alive connection (p50, p99, req/s)
//     and on 16 connections in parallel (req/s);
//   - an exec stream's throughput (MB/s of zeros written by a process in a
//     container, read through POST /exec/{id}/start with a tty);
//   - a classic-builder build of a 100 MB context;
//   - the gateway's memory (VmRSS) at rest, after the load, and with 1,000
//     open connections.
//
// Targets (a miss is reported, not fatal): the gateway's added p50 and p99
// each at most half of what the floor plugin adds; at 16 connections at
// least twice the plugin's throughput; streams and build at least 0.8× of
// dockerd's own TLS.
//
// It needs root, dockerd and the Go toolchain (it builds the static program
// the exec runs), as the end-to-end tests do.
//
// Usage: go run ./internal/bench/gatewaylat [-dtls bin/dtls] [-n 3000] [-stream-mb 512] [-context-mb 100]
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

func main() {
	dtls := flag.String("dtls", "bin/dtls", "dtls binary")
	n := flag.Int("n", 3000, "requests per measure")
	streamMB := flag.Int("stream-mb", 512, "MiB read through each exec stream")
	contextMB := flag.Int("context-mb", 100, "MiB of build context")
	conns := flag.Int("conns", 1000, "open connections for the memory figure")
	flag.Parse()
	b := &bench{n: *n, streamBytes: int64(*streamMB) << 20, contextBytes: int64(*contextMB) << 20, conns: *conns}
	if err := b.run(*dtls); err != nil {
		fmt.Fprintf(os.Stderr, "gatewaylat: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	n            int
	streamBytes  int64
	contextBytes int64
	conns        int

	dtls, dir, state, certs, bundle string
}

type latency struct {
	p50, p99 time.Duration
	perSec   float64
}

// endpoint is one way to reach a daemon: an address and a client bundle.
type endpoint struct {
	name string
	addr string // host:port
}

func (b *bench) sh(args ...string) error {
	out, err := exec.Command(b.dtls, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dtls %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) run(dtls string) error {
	var err error
	if b.dtls, err = filepath.Abs(dtls); err != nil {
		return err
	}
	if b.dir, err = sandbox.NewDir(); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	b.state, b.certs, b.bundle = filepath.Join(b.dir, "state"), filepath.Join(b.dir, "certs"), filepath.Join(b.dir, "bundle")
	ctx := context.Background()

	// Daemon A: dockerd's own TLS on portA, and the gateway in front of
	// its unix socket on portG. The same daemon serves both, so the
	// difference is the gateway's.
	dirA, cfgA, portA, err := b.daemonDir("a")
	if err != nil {
		return err
	}
	if err := b.sh(b.initArgs(cfgA, portA)...); err != nil {
		return err
	}
	if err := b.sh("issue-client", "bench", "--role", "admin", "--state-dir", b.state, "--out", b.bundle); err != nil {
		return err
	}
	a, err := sandbox.Start(ctx, dirA, cfgA)
	if err != nil {
		return err
	}
	defer a.Stop()
	portG, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	gw, err := b.startGateway(a.Socket, portG, "gateway")
	if err != nil {
		return err
	}
	defer stop(gw)
	// The same without recording exec streams: what recording costs.
	portN, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	gwN, err := b.startGateway(a.Socket, portN, "norec", "--record-sessions=false")
	if err != nil {
		return err
	}
	defer stop(gwN)
	rssRest := rss(gw.Process.Pid)

	// Daemon C: the floor plugin.
	dirC, cfgC, portC, err := b.daemonDir("c")
	if err != nil {
		return err
	}
	floor, closeFloor, err := floorPlugin()
	if err != nil {
		return err
	}
	defer closeFloor()
	if err := b.sh(append(b.initArgs(cfgC, portC), "--authz", "--authz-socket", floor)...); err != nil {
		return err
	}
	c, err := sandbox.Start(ctx, dirC, cfgC)
	if err != nil {
		return err
	}
	defer c.Stop()

	direct, gateway, plugin := endpoint{"dockerd TLS", addr(portA)}, endpoint{"gateway", addr(portG)}, endpoint{"floor plugin", addr(portC)}
	if err := b.latencies([]endpoint{direct, plugin, gateway}); err != nil {
		return err
	}
	rssLoad := rss(gw.Process.Pid)
	if err := b.streams(ctx, a, direct, gateway, endpoint{"gateway, no recording", addr(portN)}); err != nil {
		return err
	}
	held, err := b.holdConnections(gateway)
	if err != nil {
		return err
	}
	rssConns := rss(gw.Process.Pid)
	for _, c := range held {
		c.Close()
	}
	fmt.Printf("gateway memory (VmRSS): %s at rest, %s after the load, %s with %d open connections\n", rssRest, rssLoad, rssConns, len(held))
	return nil
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func (b *bench) daemonDir(name string) (dir, cfg string, port int, err error) {
	dir = filepath.Join(b.dir, name)
	if err = os.Mkdir(dir, 0o700); err != nil {
		return
	}
	if port, err = sandbox.FreePort(); err != nil {
		return
	}
	cfg = filepath.Join(dir, "daemon.json")
	err = os.WriteFile(cfg, sandbox.BaseConfig(dir), 0o644)
	return
}

func (b *bench) initArgs(cfg string, port int) []string {
	return []string{"init", "--state-dir", b.state, "--certs-dir", b.certs, "--daemon-json", cfg,
		"--systemd-dir", filepath.Join(b.dir, "systemd"),
		"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--host", "localhost", "--host", "127.0.0.1"}
}

// startGateway runs `dtls gateway serve` in front of socket and waits
// until it answers a ping over mutual TLS.
func (b *bench) startGateway(socket string, port int, name string, extra ...string) (*exec.Cmd, error) {
	policy := filepath.Join(b.dir, name+"-policy.json")
	if err := os.WriteFile(policy, []byte(`{"default_role": "readonly"}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{"gateway", "serve", "--listen", "tcp://" + addr(port), "--docker", "unix://" + socket,
		"--state-dir", b.state, "--certs-dir", b.certs, "--audit-log", filepath.Join(b.dir, name+".log"),
		"--policy", policy, "--daemon-json", filepath.Join(b.dir, "a", "daemon.json"), "--sessions-dir", filepath.Join(b.dir, name+"-sessions"),
		"--local-socket=", "--sockets-dir", filepath.Join(b.dir, name+"-sockets")}, extra...)
	gw := exec.Command(b.dtls, args...)
	// Stdout (the copy of each audit record, journald's under systemd)
	// to /dev/null: io.Discard would be a pipe this process drains,
	// taking CPU from the gateway and dockerd on a 2-core machine.
	gw.Stdout, gw.Stderr = nil, os.Stderr
	if err := gw.Start(); err != nil {
		return nil, err
	}
	c, err := b.client(1)
	if err != nil {
		stop(gw)
		return nil, err
	}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get("https://" + addr(port) + "/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return gw, nil
			}
			err = fmt.Errorf("ping: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			stop(gw)
			return nil, fmt.Errorf("the gateway did not come up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(c *exec.Cmd) {
	_ = c.Process.Signal(syscall.SIGTERM)
	_ = c.Wait()
}

// floorPlugin serves a plugin that allows everything without reading the
// call, under /run/docker/plugins with a unique name.
func floorPlugin() (socket string, closeFn func(), err error) {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	socket = fmt.Sprintf("/run/docker/plugins/dtls-gw-floor-%s.sock", hex.EncodeToString(id))
	release := sandbox.ClaimHostDirs()
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		release()
		return "", nil, err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		release()
		return "", nil, err
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Plugin.Activate" {
			io.WriteString(w, `{"Implements":["authz"]}`)
			return
		}
		io.WriteString(w, `{"Allow":true}`)
	}))
	return socket, func() { l.Close(); os.Remove(socket); release() }, nil
}

// latencies measures each endpoint on one connection and on 16, and
// prints the figures and the ratios against the targets.
// rounds splits each measure: the endpoints take turns, round after
// round, so that what else the machine does at one moment (a background
// job, the page cache, a GC of the bench itself) weighs on each endpoint
// alike instead of on the one measured then.
const rounds = 5

func (b *bench) latencies(eps []endpoint) error {
	one := make([]latency, len(eps))
	par := make([]float64, len(eps))
	lats := make([][]time.Duration, len(eps))
	serialTime := make([]time.Duration, len(eps))
	parCount := make([]int, len(eps))
	parTime := make([]time.Duration, len(eps))
	for r := 0; r < rounds; r++ {
		for i, ep := range eps {
			l, took, err := b.serial(ep, b.n/rounds)
			if err != nil {
				return err
			}
			lats[i], serialTime[i] = append(lats[i], l...), serialTime[i]+took
			count, took, err := b.parallel(ep, 16, b.n)
			if err != nil {
				return err
			}
			parCount[i], parTime[i] = parCount[i]+count, parTime[i]+took
		}
	}
	for i := range eps {
		l := lats[i]
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
		one[i] = latency{p50: l[len(l)/2], p99: l[len(l)*99/100], perSec: float64(len(l)) / serialTime[i].Seconds()}
		par[i] = float64(parCount[i]) / parTime[i].Seconds()
	}
	fmt.Printf("GET /containers/json over mutual TLS, %d requests on one kept-alive connection, %d on 16 connections, in %d rounds (the endpoints in turn)\n",
		b.n/rounds*rounds, parCount[0], rounds)
	fmt.Printf("%-14s %10s %10s %10s %14s\n", "", "p50", "p99", "req/s", "req/s (16)")
	for i, ep := range eps {
		fmt.Printf("%-14s %10s %10s %10.0f %14.0f\n", ep.name, one[i].p50.Round(time.Microsecond), one[i].p99.Round(time.Microsecond), one[i].perSec, par[i])
	}
	d, p, g := one[0], one[1], one[2]
	plug50, plug99 := p.p50-d.p50, p.p99-d.p99
	gw50, gw99 := g.p50-d.p50, g.p99-d.p99
	fmt.Printf("added p50: plugin +%s, gateway +%s (ratio %.2f, target <= 0.5: %s)\n", plug50.Round(time.Microsecond), gw50.Round(time.Microsecond),
		ratio(gw50, plug50), verdict(ratio(gw50, plug50) <= 0.5))
	fmt.Printf("added p99: plugin +%s, gateway +%s (ratio %.2f, target <= 0.5: %s)\n", plug99.Round(time.Microsecond), gw99.Round(time.Microsecond),
		ratio(gw99, plug99), verdict(ratio(gw99, plug99) <= 0.5))
	fmt.Printf("16 connections: gateway %.0f req/s, plugin %.0f req/s (ratio %.2f, target >= 2: %s); dockerd TLS %.0f req/s\n",
		par[2], par[1], par[2]/par[1], verdict(par[2]/par[1] >= 2), par[0])
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (b *bench) get(c *http.Client, url string) error {
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

// serial sends n requests one after another on one connection, after a
// warm-up, and returns each one's latency and the time they took.
func (b *bench) serial(ep endpoint, n int) ([]time.Duration, time.Duration, error) {
	c, err := b.client(1)
	if err != nil {
		return nil, 0, err
	}
	defer c.CloseIdleConnections()
	url := "https://" + ep.addr + "/v1.41/containers/json"
	for i := 0; i < 100; i++ {
		if err := b.get(c, url); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", ep.name, err)
		}
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range lat {
		t := time.Now()
		if err := b.get(c, url); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", ep.name, err)
		}
		lat[i] = time.Since(t)
	}
	return lat, time.Since(start), nil
}

// parallel sends about n requests from k workers, each on its own
// connection, and returns how many and the time they took.
func (b *bench) parallel(ep endpoint, k, n int) (int, time.Duration, error) {
	c, err := b.client(k)
	if err != nil {
		return 0, 0, err
	}
	defer c.CloseIdleConnections()
	url := "https://" + ep.addr + "/v1.41/containers/json"
	per := n / k
	if per < 20 {
		per = 20
	}
	run := func(count int) error {
		var wg sync.WaitGroup
		errs := make(chan error, k)
		for w := 0; w < k; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < count; i++ {
					if err := b.get(c, url); err != nil {
						errs <- fmt.Errorf("%s: %w", ep.name, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	if err := run(20); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := run(per); err != nil {
		return 0, 0, err
	}
	return per * k, time.Since(start), nil
}

// client is an HTTPS client with the bench's admin bundle, keeping up to
// conns connections alive.
func (b *bench) client(conns int) (*http.Client, error) {
	tc, err := b.tlsConfig()
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}, nil
}

func (b *bench) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(b.bundle, "cert.pem"), filepath.Join(b.bundle, "key.pem"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(b.bundle, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"}, nil
}

// zeroSource is the program the exec runs: "sleep" waits for SIGTERM (the
// container's main process), "zero N" writes N zero bytes to stdout.
const zeroSource = `package main

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "zero" {
		n, _ := strconv.ParseInt(os.Args[2], 10, 64)
		buf := make([]byte, 256<<10)
		for n > 0 {
			k := int64(len(buf))
			if n < k {
				k = n
			}
			if _, err := os.Stdout.Write(buf[:k]); err != nil {
				os.Exit(1)
			}
			n -= k
		}
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`

// streams measures an exec stream's throughput and a build through both
// endpoints of daemon a.
func (b *bench) streams(ctx context.Context, a *sandbox.Daemon, direct, gateway, norec endpoint) error {
	prog, err := b.buildZero()
	if err != nil {
		return err
	}
	if err := importImage(ctx, a, "zero:1", prog); err != nil {
		return err
	}
	id, err := b.runSleeper(direct)
	if err != nil {
		return err
	}
	var mbps [3]float64
	for i, ep := range []endpoint{direct, gateway, norec} {
		if mbps[i], err = b.execThroughput(ep, id); err != nil {
			return err
		}
	}
	var build [2]time.Duration
	for i, ep := range []endpoint{direct, gateway} {
		if build[i], err = b.buildContext(ep); err != nil {
			return err
		}
	}
	fmt.Printf("exec stream (%d MiB of zeros, tty): dockerd TLS %.0f MB/s, gateway %.0f MB/s recorded (ratio %.2f, target >= 0.8: %s), %.0f MB/s unrecorded\n",
		b.streamBytes>>20, mbps[0], mbps[1], mbps[1]/mbps[0], verdict(mbps[1]/mbps[0] >= 0.8), mbps[2])
	fmt.Printf("recording's cost: %.0f%% of the unrecorded gateway's exec throughput (target <= 10%%: %s)\n",
		100*(1-mbps[1]/mbps[2]), verdict(mbps[1]/mbps[2] >= 0.9))
	r := build[0].Seconds() / build[1].Seconds()
	fmt.Printf("classic build, %d MiB context: dockerd TLS %s, gateway %s (speed ratio %.2f, target >= 0.8: %s)\n",
		b.contextBytes>>20, build[0].Round(time.Millisecond), build[1].Round(time.Millisecond), r, verdict(r >= 0.8))
	return nil
}

func (b *bench) buildZero() ([]byte, error) {
	dir := filepath.Join(b.dir, "zero")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(zeroSource), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/zero\n\ngo 1.26\n"), 0o600); err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", "zero", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the exec's program: %v\n%s", err, out)
	}
	return os.ReadFile(filepath.Join(dir, "zero"))
}

// importImage imports an image whose root holds only /z (what
// `docker import -` does).
func importImage(ctx context.Context, d *sandbox.Daemon, ref string, prog []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "z", Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(prog); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(ref, ":")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/images/create?fromSrc=-&repo="+repo+"&tag="+tag, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	c := d.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`"error"`)) {
		return fmt.Errorf("import %s: %s: %s", ref, resp.Status, body)
	}
	return nil
}

// call sends one JSON request and decodes the answer into out.
func (b *bench) call(ep endpoint, method, path string, in, out any) error {
	c, err := b.client(1)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	var body io.Reader
	if in != nil {
		js, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, "https://"+ep.addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (b *bench) runSleeper(ep endpoint) (string, error) {
	var created struct{ Id string }
	if err := b.call(ep, http.MethodPost, "/v1.41/containers/create?name=gwbench", map[string]any{
		"Image": "zero:1", "Cmd": []string{"/z", "sleep"}, "HostConfig": map[string]any{"NetworkMode": "none"},
	}, &created); err != nil {
		return "", err
	}
	return created.Id, b.call(ep, http.MethodPost, "/v1.41/containers/"+created.Id+"/start", nil, nil)
}

// execThroughput starts an exec writing streamBytes of zeros with a tty
// and reads its stream through the hijacked connection, as docker/cli's
// hijack code does (Connection: Upgrade, Upgrade: tcp).
func (b *bench) execThroughput(ep endpoint, container string) (float64, error) {
	var ex struct{ Id string }
	if err := b.call(ep, http.MethodPost, "/v1.41/containers/"+container+"/exec", map[string]any{
		"AttachStdout": true, "Tty": true, "Cmd": []string{"/z", "zero", fmt.Sprint(b.streamBytes)},
	}, &ex); err != nil {
		return 0, err
	}
	tc, err := b.tlsConfig()
	if err != nil {
		return 0, err
	}
	conn, err := tls.Dial("tcp", ep.addr, tc)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	body := `{"Detach":false,"Tty":true}`
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1.41/exec/%s/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s",
		ex.Id, len(body), body)
	br := bufio.NewReaderSize(conn, 256<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: exec start: %w", ep.name, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return 0, fmt.Errorf("%s: exec start: %s", ep.name, resp.Status)
	}
	got, err := io.Copy(io.Discard, br)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%s: exec stream: %w", ep.name, err)
	}
	if got < b.streamBytes {
		return 0, fmt.Errorf("%s: exec stream: %d bytes of %d", ep.name, got, b.streamBytes)
	}
	return float64(got) / 1e6 / time.Since(start).Seconds(), nil
}

// buildContext builds FROM scratch with a context of contextBytes through
// ep (the classic builder reads the whole context) and returns how long it
// took.
func (b *bench) buildContext(ep endpoint) (time.Duration, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		df := []byte("FROM scratch\nCOPY Dockerfile /\n")
		err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = tw.Write(df)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: b.contextBytes, Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = io.CopyN(tw, zeroReader{}, b.contextBytes)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	c, err := b.client(1)
	if err != nil {
		return 0, err
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "https://"+ep.addr+"/v1.41/build?t=gwbench:1&rm=1", pr)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: build: %w", ep.name, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"error"`)) {
		return 0, fmt.Errorf("%s: build: %s: %s", ep.name, resp.Status, out)
	}
	return time.Since(start), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// holdConnections opens conns mutual-TLS connections to ep, each with one
// answered ping, and keeps them open.
func (b *bench) holdConnections(ep endpoint) ([]net.Conn, error) {
	tc, err := b.tlsConfig()
	if err != nil {
		return nil, err
	}
	held := make([]net.Conn, 0, b.conns)
	for i := 0; i < b.conns; i++ {
		conn, err := tls.Dial("tcp", ep.addr, tc)
		if err != nil {
			closeAll(held)
			return nil, fmt.Errorf("connection %d: %w", i+1, err)
		}
		held = append(held, conn)
		fmt.Fprintf(conn, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			closeAll(held)
			return nil, fmt.Errorf("connection %d: ping: %w", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return held, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
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
