package cahost

import (
	"os"
	"testing"

	"github.com/dtls-tool/dtls/internal/pgsandbox"
)

// TestMain gives the package's tests one PostgreSQL server, a database
// per test.
func TestMain(m *testing.M) {
	os.Exit(pgsandbox.RunShared(m))
}
