package authority

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParseListen checks a --listen value: tcp://HOST:PORT, the only form of a
// TCP entry dockerd's "hosts" takes that dtls can protect with TLS.
func ParseListen(s string) (host string, port int, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", 0, fmt.Errorf("invalid --listen %q: want tcp://HOST:PORT, e.g. %s", s, DefaultListen)
	}
	h, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", 0, fmt.Errorf("invalid --listen %q: want tcp://HOST:PORT (%v)", s, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("invalid --listen %q: port %q is not a number from 1 to 65535", s, p)
	}
	if h == "" {
		return "", 0, fmt.Errorf("invalid --listen %q: no host (use 0.0.0.0 for every interface)", s)
	}
	return h, port, nil
}

// DefaultHosts lists the names and addresses the server certificate covers
// when --host is not given: the hostname, its FQDN, every non-loopback
// interface address, plus localhost and 127.0.0.1 for local use. Clients
// connect by any of them and Go's crypto/tls checks the name against the
// SANs, so a missing one means "x509: certificate is valid for ..., not ...".
func DefaultHosts() []string {
	var hosts []string
	add := func(h string) {
		h = strings.TrimSuffix(h, ".")
		if h == "" {
			return
		}
		for _, x := range hosts {
			if strings.EqualFold(x, h) {
				return
			}
		}
		hosts = append(hosts, h)
	}
	name, _ := os.Hostname()
	add(name)
	add(fqdn(name))
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			// Link-local addresses need a zone to be dialled and cannot
			// be in a certificate; loopback is covered below.
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			add(ipn.IP.String())
		}
	}
	add("localhost")
	add("127.0.0.1")
	return hosts
}

// fqdn resolves the hostname to its canonical name the way `hostname -f`
// does (the hosts file, then DNS), with a short deadline: a host without
// working DNS must not hang init.
func fqdn(name string) string {
	if name == "" || strings.Contains(name, ".") {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		names, err := net.DefaultResolver.LookupAddr(ctx, a)
		if err != nil {
			continue
		}
		for _, n := range names {
			n = strings.TrimSuffix(n, ".")
			if strings.HasPrefix(strings.ToLower(n), strings.ToLower(name)+".") {
				return n
			}
		}
	}
	return ""
}

// ClientDockerHost picks the URL clients use: the first DNS name that is
// not localhost (names survive address changes), else the first address
// that is not loopback, else the listen host.
func ClientDockerHost(hosts []string, listenHost string, port int) string {
	pick := ""
	for _, h := range hosts {
		ip := net.ParseIP(h)
		if ip == nil && h != "localhost" && !strings.HasPrefix(h, "*.") {
			pick = h
			break
		}
	}
	if pick == "" {
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil && !ip.IsLoopback() {
				pick = h
				break
			}
		}
	}
	if pick == "" {
		pick = listenHost
		if ip := net.ParseIP(pick); ip != nil && ip.IsUnspecified() {
			pick = "localhost"
		}
	}
	return "tcp://" + net.JoinHostPort(pick, strconv.Itoa(port))
}
