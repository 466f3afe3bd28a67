package clientenv

import (
	"fmt"
	"strings"
)

// ParseDockerHost checks a daemon URL a bundle records, strictly:
// "tcp://" then a DNS name or an IP address (IPv6 in brackets, no zone)
// and a port from 1 to 65535, and nothing else: no user, path, query or
// list. It returns the host (without brackets) and the port.
//
// Why so strict: the URL comes with a bundle from whoever made the
// archive, and 'dtls env' prints it into a shell's input and into
// NO_PROXY. A URL parser's leniency let through quotes, backslashes, $( ),
// ';' and '#' in the path (code, when the shell reading the output was
// not the one it was written for), and "tcp://*,corp@host:2376", which
// the Docker CLI still reached and which put "*" in NO_PROXY, turning off
// the proxy for every program of the shell (found by a red team).
func ParseDockerHost(s string) (host string, port int, err error) {
	bad := func(why string) (string, int, error) {
		return "", 0, fmt.Errorf("daemon URL %q: %s: want tcp://HOST:PORT, e.g. tcp://docker.example.com:2376", s, why)
	}
	rest, ok := strings.CutPrefix(s, "tcp://")
	if !ok {
		return bad("not tcp://")
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return bad("no :PORT")
	}
	h, p := rest[:i], rest[i+1:]
	if port = portNumber(p); port == 0 {
		return bad(fmt.Sprintf("port %q is not a number from 1 to 65535", p))
	}
	if v6, ok := strings.CutPrefix(h, "["); ok {
		if v6, ok = strings.CutSuffix(v6, "]"); !ok || !isIPv6(v6) {
			return bad(fmt.Sprintf("%q is not an IPv6 address in brackets (no zone)", h))
		}
		return v6, port, nil
	}
	if why := dnsNameProblem(h); why != "" {
		return bad(why)
	}
	return h, port, nil
}

// portNumber is p as a port from 1 to 65535, or 0: decimal digits only.
// (strconv and net stay out of this package: TestImportsStayCheap.)
func portNumber(p string) int {
	if p == "" || len(p) > 5 {
		return 0
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0
	}
	return n
}

// isIPv6 says whether s is written as an IPv6 address may be: hex digits,
// ':' (two at least) and the dots of an embedded IPv4 address, no zone.
func isIPv6(s string) bool {
	if strings.Count(s, ":") < 2 || len(s) > 45 {
		return false
	}
	return strings.Trim(s, "0123456789abcdefABCDEF:.") == ""
}

// dnsNameProblem says what makes h no DNS host name ("" for none): labels
// of letters, digits, '-' and '_' (which some internal zones use), 1 to 63
// bytes each, not beginning or ending with '-', 253 bytes in all (RFC 1123
// 2.1). An IPv4 address is such a name.
func dnsNameProblem(h string) string {
	if h == "" || len(h) > 253 {
		return fmt.Sprintf("host %q is not a DNS name of 1 to 253 bytes", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("host %q has an empty label, one over 63 bytes, or one that begins or ends with '-'", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("host %q has %q, which no DNS name holds", h, c)
			}
		}
	}
	return ""
}

// CheckCAURL checks the online CA's URL a bundle records (ca_url), as
// strictly as ParseDockerHost: "https://", a DNS name or a bracketed IPv6
// address, an optional port, an optional final '/'. An imported bundle's
// ca_url reached the terminal from 'dtls env' and 'dtls check' with its
// escape sequences, and 'dtls agent' called it with the client
// certificate (found by a red team).
func CheckCAURL(s string) error {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		return fmt.Errorf("CA URL %q: want https://HOST[:PORT]", s)
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.HasSuffix(rest, "]") || !strings.Contains(rest, ":") {
		rest += ":443"
	}
	if _, _, err := ParseDockerHost("tcp://" + rest); err != nil {
		return fmt.Errorf("CA URL %q: want https://HOST[:PORT] (%v)", s, err)
	}
	return nil
}
