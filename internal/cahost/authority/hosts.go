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

// Reach is what ClientDockerHost knows of this host: how a name resolves
// here, and this host's own addresses. SystemReach is the real one; tests
// inject theirs.
type Reach struct {
	// Lookup resolves a name to its addresses.
	Lookup func(ctx context.Context, name string) ([]net.IP, error)
	// Local lists this host's interface addresses.
	Local func() ([]net.IP, error)
}

// SystemReach resolves with the system's resolver (the hosts file, then
// DNS) and lists the interfaces' addresses.
func SystemReach() *Reach {
	return &Reach{
		Lookup: func(ctx context.Context, name string) ([]net.IP, error) {
			addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
			ips := make([]net.IP, 0, len(addrs))
			for _, a := range addrs {
				ips = append(ips, a.IP)
			}
			return ips, err
		},
		Local: func() ([]net.IP, error) {
			addrs, err := net.InterfaceAddrs()
			var ips []net.IP
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					ips = append(ips, ipn.IP)
				}
			}
			return ips, err
		},
	}
}

// ClientDockerHost picks the URL clients use, from the names and addresses
// the server certificate covers (hosts), one that reaches the listener:
//   - the first DNS name (not localhost) that resolves to an address the
//     listener accepts: names survive address changes;
//   - else the first address of hosts the listener accepts;
//   - else, when nothing could be shown to reach it (a certificate of
//     names only), the first DNS name, the first address that is not
//     loopback, or the listen host, as before.
//
// A listener on 0.0.0.0 or :: accepts this host's addresses that are not
// loopback: a name that resolves only to loopback here (Debian's
// 127.0.1.1 line for the hostname) or not at all says nothing of how
// clients elsewhere reach it, and "tcp://NAME:2376" that does not resolve
// on a laptop fails with "no such host". A listener on one address
// accepts that address only. reach nil is SystemReach; lookups share a
// deadline of 2 seconds, so that a host without working DNS does not hang
// init.
func ClientDockerHost(hosts []string, listenHost string, port int, reach *Reach) string {
	if reach == nil {
		reach = SystemReach()
	}
	join := func(h string) string { return "tcp://" + net.JoinHostPort(h, strconv.Itoa(port)) }
	if pick := reachingHost(hosts, listenHost, reach); pick != "" {
		return join(pick)
	}
	return join(fallbackHost(hosts, listenHost))
}

// reachingHost is the first name, else the first address, of hosts that
// reaches the listener on listenHost; "" when none can be shown to.
func reachingHost(hosts []string, listenHost string, reach *Reach) string {
	listenIP := net.ParseIP(listenHost)
	if listenIP == nil {
		// A listener on a name: dockerd binds what it resolves to;
		// clients use the name.
		return ""
	}
	var local []net.IP
	if listenIP.IsUnspecified() && reach.Local != nil {
		local, _ = reach.Local()
	}
	accepts := func(ip net.IP) bool {
		if !listenIP.IsUnspecified() {
			return ip.Equal(listenIP)
		}
		if ip.IsLoopback() {
			return false
		}
		for _, l := range local {
			if l.Equal(ip) {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, h := range hosts {
		if !isDNSName(h) || reach.Lookup == nil || ctx.Err() != nil {
			continue
		}
		ips, _ := reach.Lookup(ctx, h)
		for _, ip := range ips {
			if accepts(ip) {
				return h
			}
		}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil && accepts(ip) {
			return h
		}
	}
	if listenIP.IsLoopback() {
		for _, h := range hosts {
			if h == "localhost" {
				return h
			}
		}
	}
	return ""
}

// isDNSName: a name clients can be given, not an address, localhost or a
// wildcard.
func isDNSName(h string) bool {
	return net.ParseIP(h) == nil && h != "localhost" && !strings.HasPrefix(h, "*.")
}

// fallbackHost is the pick when nothing is known to reach the listener:
// the first DNS name, else the first address that is not loopback, else
// the listen host (localhost for an unspecified one).
func fallbackHost(hosts []string, listenHost string) string {
	for _, h := range hosts {
		if isDNSName(h) {
			return h
		}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil && !ip.IsLoopback() {
			return h
		}
	}
	if ip := net.ParseIP(listenHost); ip != nil && ip.IsUnspecified() {
		return "localhost"
	}
	return listenHost
}
