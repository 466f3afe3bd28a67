package caserver_test

import (
	"os"
	"testing"

	cflog "github.com/cloudflare/cfssl/log"

	"github.com/dtls-tool/dtls/internal/pgsandbox"
)

func TestMain(m *testing.M) {
	// cfssl's signer logs every signature at info level (as cmd.Run,
	// keep it to errors).
	cflog.Level = cflog.LevelError
	// One PostgreSQL server for the package, a database per test.
	os.Exit(pgsandbox.RunShared(m))
}
