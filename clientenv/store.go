package clientenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The bundle store is the directory on a developer's machine that holds one
// bundle per server, side by side:
//
//	~/.docker/dtls/
//	  default -> prod          relative symlink: the bundle `dtls env` uses
//	  prod/                    ca.pem cert.pem key.pem dtls.json (0700)
//	  staging/
//
// It lives next to the Docker CLI's own ~/.docker directory. EnvHome moves
// it, so that tests (and people with several identities) never touch the
// real home directory.

// EnvHome is the environment variable that overrides the store root.
const EnvHome = "DTLS_HOME"

// DefaultName is the name of the symlink that points at the default bundle.
const DefaultName = "default"

// StoreRoot returns the bundle store directory: $DTLS_HOME when set and not
// empty, else ~/.docker/dtls. getenv reads the environment (os.Getenv, or a
// test's map).
func StoreRoot(getenv func(string) string) (string, error) {
	if p := getenv(EnvHome); p != "" {
		return filepath.Abs(p)
	}
	home, err := os.UserHomeDir()
	if h := getenv("HOME"); h != "" {
		home, err = h, nil
	}
	if err != nil {
		return "", fmt.Errorf("bundle store: %w (set %s)", err, EnvHome)
	}
	return filepath.Join(home, ".docker", "dtls"), nil
}

// CertPath returns the bundle directory `dtls env` uses when no name or
// --cert-path is given: $DTLS_CERT_PATH when set and not empty (the core
// behaviour, kept), else the bundle StoreRoot/default points at. The link
// is resolved (one readlink) rather than returned as it is: DOCKER_CERT_PATH
// set to the link would make a shell configured for one server pick up
// another server's certificates as soon as `dtls use` switches the default,
// while its DOCKER_HOST stays. A default that is not a link (a directory
// copied there by hand, or nothing yet) is returned as StoreRoot/default.
func CertPath(getenv func(string) string) (string, error) {
	if p := getenv(EnvCertPath); p != "" {
		return p, nil
	}
	root, err := StoreRoot(getenv)
	if err != nil {
		return "", err
	}
	link := filepath.Join(root, DefaultName)
	target, err := os.Readlink(link)
	switch {
	case err != nil:
		return link, nil
	case filepath.IsAbs(target):
		return filepath.Clean(target), nil
	}
	return filepath.Join(root, target), nil
}

// ValidateBundleName accepts the names a bundle may have in the store: 1 to
// 64 of letters, digits, '.', '_', '-', '@', not starting with '.' or '-',
// and not DefaultName in any case. In particular '/' and ".." are refused: the name
// becomes a directory name under the store root.
func ValidateBundleName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid bundle name %q: empty", name)
	case len(name) > 64:
		return fmt.Errorf("invalid bundle name %q: longer than 64 characters", name)
	case strings.EqualFold(name, DefaultName):
		// Any case: on a case-insensitive file system (macOS, Windows)
		// "Default" is the default link itself, and `dtls use Default`
		// would make the link point at itself.
		return fmt.Errorf("invalid bundle name %q: reserved for the default link", name)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("invalid bundle name %q: must not start with %q", name, name[0])
	}
	for _, r := range name {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case r == '.' || r == '_' || r == '-' || r == '@':
		default:
			return fmt.Errorf("invalid bundle name %q: character %q not allowed (use letters, digits, '.', '_', '@', '-')", name, r)
		}
	}
	return nil
}

// SanitizeBundleName turns a server name or host ("srv.example.com",
// "10.0.0.1", "[::1]") into a valid bundle name, or "" when nothing is left.
func SanitizeBundleName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-', r == '@':
			b.WriteRune(r)
		case r == ':' || r == '/':
			b.WriteRune('-')
		}
	}
	n := strings.TrimLeft(b.String(), ".-")
	if len(n) > 64 {
		n = n[:64]
	}
	if ValidateBundleName(n) != nil {
		return ""
	}
	return n
}

// Entry is one bundle of the store, as List returns it.
type Entry struct {
	// Name is the bundle's directory name.
	Name string
	// Default is true for the bundle the default link points at.
	Default bool
	// Bundle is the loaded bundle, nil when Err is set.
	Bundle *Bundle
	// Err is why the directory is not a usable bundle.
	Err error
}

// List returns the bundles in the store root, sorted by name. A missing
// root is an empty store. Hidden entries (temporary directories of an
// import in progress) and the default link are skipped; a default that is
// a real directory (a bundle copied there by hand: scp -r DIR
// HOST:.docker/dtls/default) is listed as the bundle DefaultName.
func List(root string) ([]Entry, error) {
	// os.ReadDir returns the entries sorted by name.
	des, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bundle store %q: %w", root, err)
	}
	def, _ := Default(root)
	var out []Entry
	for _, de := range des {
		name := de.Name()
		// A link (the default link) is not a directory entry here.
		if strings.HasPrefix(name, ".") || !de.IsDir() {
			continue
		}
		e := Entry{Name: name, Default: name == def}
		e.Bundle, e.Err = LoadBundle(filepath.Join(root, name))
		out = append(out, e)
	}
	return out, nil
}

// Default returns the name of the bundle the default link in root points
// at, or "" when there is no link. A default that is a plain directory (a
// bundle copied there by hand, as the core README said) is reported as
// DefaultName itself.
func Default(root string) (string, error) {
	p := filepath.Join(root, DefaultName)
	target, err := os.Readlink(p)
	if err == nil {
		return filepath.Base(target), nil
	}
	fi, serr := os.Lstat(p)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		return "", nil
	case serr != nil:
		return "", fmt.Errorf("default bundle %q: %w", p, serr)
	case fi.IsDir():
		return DefaultName, nil
	}
	return "", fmt.Errorf("default bundle %q: %w", p, err)
}

// SetDefault points root's default link at the bundle name, atomically: a
// relative symlink is made under a temporary name and renamed over the old
// link, so that a shell starting meanwhile sees the old bundle or the new
// one, never none. The bundle must load.
//
// A default that is a real directory (a bundle copied there by hand) is
// never deleted: it is first moved into the store under a name of its own
// (see adoptName), which SetDefault returns as moved; "" when there was
// nothing to move. Anything else at the default's place is refused.
func SetDefault(root, name string) (moved string, err error) {
	if err := ValidateBundleName(name); err != nil {
		return "", err
	}
	if _, err := LoadBundle(filepath.Join(root, name)); err != nil {
		return "", err
	}
	link := filepath.Join(root, DefaultName)
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		if !fi.IsDir() {
			return "", fmt.Errorf("default bundle %q is neither a link nor a directory: move it away, then run again", link)
		}
		if moved, err = adoptDefault(root); err != nil {
			return "", err
		}
	}
	tmp := filepath.Join(root, fmt.Sprintf(".default.tmp-%d", os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return moved, fmt.Errorf("set default bundle: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return moved, fmt.Errorf("set default bundle: %w", err)
	}
	if d, err := os.Open(root); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return moved, nil
}

// adoptDefault moves the directory at root/default into the store under
// adoptName's name, and returns that name.
func adoptDefault(root string) (string, error) {
	dir := filepath.Join(root, DefaultName)
	name := adoptName(root, dir)
	if err := os.Rename(dir, filepath.Join(root, name)); err != nil {
		return "", fmt.Errorf("move the bundle directory %q to %q: %w", dir, filepath.Join(root, name), err)
	}
	return name, nil
}

// adoptName is the name a bundle directory copied to root/default gets in
// the store: its server's, as 'dtls import' would name it, else
// "old-default"; with "-2", "-3"... when that name is taken.
func adoptName(root, dir string) string {
	base := "old-default"
	if b, err := LoadBundle(dir); err == nil {
		if h, err := DaemonHost(b.Meta.DockerHost); err == nil && SanitizeBundleName(h) != "" {
			base = SanitizeBundleName(h)
		} else if n := SanitizeBundleName(b.Meta.Server); n != "" {
			base = n
		}
	}
	if len(base) > 60 {
		base = base[:60] // room for a suffix within 64 characters
	}
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(root, name)); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}
