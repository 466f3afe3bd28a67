package cmd

import (
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// bundleDir returns the directory of the bundle called name in the store,
// or, for an empty name, the default bundle ($DTLS_CERT_PATH, else the
// store's default link).
func bundleDir(io IO, name string) (string, error) {
	if name == "" {
		return clientenv.CertPath(io.Getenv)
	}
	if err := clientenv.ValidateBundleName(name); err != nil {
		return "", err
	}
	root, err := clientenv.StoreRoot(io.Getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, name), nil
}

// completeBundleNames completes the first argument with the names of the
// bundles in the store. It reads directory names only: completion runs at
// every TAB.
func completeBundleNames(io IO) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return bundleNames(io, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func bundleNames(io IO, prefix string) []string {
	root, err := clientenv.StoreRoot(io.Getenv)
	if err != nil {
		return nil
	}
	entries, err := clientenv.List(root)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		// A bundle copied to "default" is not a name commands take.
		if e.Err == nil && e.Name != clientenv.DefaultName && strings.HasPrefix(e.Name, prefix) {
			names = append(names, e.Name)
		}
	}
	return names
}

// bundleCert reads the client certificate of the bundle in dir: what the
// daemon is shown, so the name and expiry to trust over dtls.json's.
func bundleCert(dir string) (*x509.Certificate, error) {
	p := filepath.Join(dir, clientenv.CertFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	c, err := pki.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// expiryWarning is how close to its end a bundle's certificate draws a
// warning (env, ls, use, context create).
const expiryWarning = 14 * 24 * time.Hour

// inDays says how long until notAfter: in days begun ("in 10 days" for a
// 10-day certificate just issued), in hours begun under a day ("in 5h"),
// in minutes under an hour ("in 30m").
func inDays(notAfter, now time.Time) string {
	left := notAfter.Sub(now)
	if left < 24*time.Hour {
		// An enrolled bundle lives a day: "in 1 day" would hide that
		// its agent is late, and hours are what one acts on.
		if left < time.Hour {
			return fmt.Sprintf("in %dm", int(math.Ceil(left.Minutes())))
		}
		return fmt.Sprintf("in %dh", int(math.Ceil(left.Hours())))
	}
	n := int(math.Ceil(left.Hours() / 24))
	if n == 1 {
		return "in 1 day"
	}
	return fmt.Sprintf("in %d days", n)
}

// warnExpiry warns on stderr when the certificate of the bundle in dir
// has expired or expires within expiryWarning; a zero notAfter is unknown.
func warnExpiry(io IO, dir string, notAfter, now time.Time) {
	day := notAfter.UTC().Format("2006-01-02")
	if notAfter.Before(now.Add(expiryWarning)) && !notAfter.IsZero() {
		// Read only when a warning is due: env runs at every shell start.
		if caURL := enrolledWith(dir); caURL != "" {
			warnEnrolledExpiry(io, dir, caURL, notAfter, now)
			return
		}
	}
	switch {
	case notAfter.IsZero():
	case !notAfter.After(now):
		fmt.Fprintf(io.ErrOut, "dtls: warning: the certificate in %s expired on %s: the daemon will refuse it; ask for a new bundle\n", dir, day)
	case notAfter.Before(now.Add(expiryWarning)):
		fmt.Fprintf(io.ErrOut, "dtls: warning: the certificate in %s expires on %s, %s: ask for a renewal ('dtls renew NAME --archive FILE' on the CA host)\n", dir, day, inDays(notAfter, now))
	}
}

// warnBundleExpiry is warnExpiry for the bundle in dir, from its
// certificate; a bundle whose certificate cannot be read draws nothing
// here (env and check say what is wrong with it).
func warnBundleExpiry(io IO, dir string) {
	if c, err := bundleCert(dir); err == nil {
		warnExpiry(io, dir, c.NotAfter, io.Now())
	}
}

// reportAdopted says where SetDefault moved a bundle directory that had
// been copied to the store's default by hand.
func reportAdopted(io IO, root, moved string) {
	if moved != "" {
		fmt.Fprintf(io.ErrOut, "moved the bundle directory %s (copied there by hand) to %s: 'default' is a link to the bundle in use\n",
			filepath.Join(root, clientenv.DefaultName), filepath.Join(root, moved))
	}
}

// noPythonCAWarning silences warnPythonCA: someone who knows that
// REQUESTS_CA_BUNDLE is set, and uses no docker-py, need not read the
// warning at every shell start.
const noPythonCAWarning = "DTLS_NO_REQUESTS_CA_BUNDLE_WARNING"

// warnPythonCA prints, once, the one-line warning of
// clientenv.PythonCAWarning when a variable that overrides the bundle's
// ca.pem for docker-py is set, unless $DTLS_NO_REQUESTS_CA_BUNDLE_WARNING
// is 1.
func warnPythonCA(io IO) {
	if io.Getenv(noPythonCAWarning) == "1" {
		return
	}
	if py := clientenv.PythonCAOverrides(io.Getenv); len(py) > 0 {
		fmt.Fprintf(io.ErrOut, "dtls: warning: %s (%s=1 hides this)\n", clientenv.PythonCAWarning(py), noPythonCAWarning)
	}
}
