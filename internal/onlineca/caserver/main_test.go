package caserver_test

import (
	"os"
	"testing"

	cflog "github.com/cloudflare/cfssl/log"
)

func TestMain(m *testing.M) {
	// cfssl's signer logs every signature at info level (as cmd.Run,
	// keep it to errors).
	cflog.Level = cflog.LevelError
	os.Exit(m.Run())
}
