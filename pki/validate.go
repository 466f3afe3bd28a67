package pki

import (
	"fmt"
	"net"
	"strings"
	"unicode"
)

// ValidateName checks a client name. It becomes the certificate's common
// name, the bundle directory's name and, with the authorization plugin, the
// user name dockerd reports, so it is restricted to a portable set: letters,
// digits, '.', '_', '@' and '-', not starting with '.' or '-', at most 64
// characters (the upper bound for commonName in RFC 5280 appendix A).
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid client name %q: empty", name)
	}
	if len(name) > 64 {
		return fmt.Errorf("invalid client name %q: longer than 64 characters", name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("invalid client name %q: must not start with %q", name, name[0])
	}
	for _, r := range name {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		case r == '.' || r == '_' || r == '-' || r == '@':
		default:
			return fmt.Errorf("invalid client name %q: character %q not allowed (use letters, digits, '.', '_', '@', '-')", name, r)
		}
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("invalid client name %q: must not contain \"..\"", name)
	}
	return nil
}

// ValidateHost checks that h is an IP address or a DNS name (RFC 1123
// labels; a leading "*." wildcard is allowed).
func ValidateHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("invalid host %q: neither an IP address nor a DNS name", h)
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("invalid host %q: neither an IP address nor a DNS name", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("invalid host %q: neither an IP address nor a DNS name", h)
			}
		}
	}
	return nil
}
