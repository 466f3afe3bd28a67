//go:build dtlsfailpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
)

// Enabled reports whether fail points are compiled in.
const Enabled = true

// Inject crashes the process or returns an error when DTLS_TEST_FAIL_AT
// names this point (see Env).
func Inject(name string) error {
	v := os.Getenv(Env)
	if v == "" {
		return nil
	}
	if n, ok := strings.CutPrefix(v, "error:"); ok {
		if n == name {
			return fmt.Errorf("injected failure at %s", name)
		}
		return nil
	}
	if v == name {
		fmt.Fprintf(os.Stderr, "dtls: injected crash at %s\n", name)
		os.Exit(CrashStatus)
	}
	return nil
}
