package clientenv

import (
	"fmt"
	"strings"
)

// NoProxyVars are the variables --no-proxy sets: both spellings, since Go
// programs (the Docker CLI among them, through net/http's
// ProxyFromEnvironment) read NO_PROXY first and then no_proxy, while curl
// and many other tools read only no_proxy.
var NoProxyVars = []string{"NO_PROXY", "no_proxy"}

// DaemonHost returns the host part of a tcp://HOST:PORT daemon URL, without
// the brackets of an IPv6 address: the entry --no-proxy adds.
func DaemonHost(dockerHost string) (string, error) {
	rest, ok := strings.CutPrefix(dockerHost, "tcp://")
	if !ok {
		return "", fmt.Errorf("daemon URL %q: want tcp://HOST:PORT", dockerHost)
	}
	rest, _, _ = strings.Cut(rest, "/")
	host := rest
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return "", fmt.Errorf("daemon URL %q: unclosed '['", dockerHost)
		}
		host = rest[1:end]
	} else if i := strings.LastIndex(rest, ":"); i >= 0 {
		host = rest[:i]
	}
	if host == "" {
		return "", fmt.Errorf("daemon URL %q: no host", dockerHost)
	}
	return host, nil
}

// MergeNoProxy returns the NO_PROXY value that adds host to current, as
// docker-machine's `env --no-proxy` does: current unchanged when host is
// already one of its entries (compared case-insensitively), else current
// with ",host" appended (or host alone when current is empty).
//
// current is a comma-separated list, the only separator Go's
// golang.org/x/net/http/httpproxy, curl and Python's urllib agree on;
// blanks around an entry are tolerated, as those readers trim them. A list
// that uses another separator (";" or blanks inside an entry, which a reader
// would take as one bogus entry), or that holds control characters, is
// refused with an error naming it, so that --no-proxy never builds on a
// value that does not mean what its author thought.
func MergeNoProxy(current, host string) (string, error) {
	if strings.TrimSpace(current) == "" {
		return host, nil
	}
	for _, e := range strings.Split(current, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if i := strings.IndexAny(e, " \t;|\r\n\x00"); i >= 0 {
			return "", fmt.Errorf("NO_PROXY value %q: entry %q holds %q; separate entries with commas only", current, e, e[i:i+1])
		}
		if strings.EqualFold(e, host) {
			return current, nil
		}
	}
	if strings.HasSuffix(strings.TrimSpace(current), ",") {
		return current + host, nil
	}
	return current + "," + host, nil
}
