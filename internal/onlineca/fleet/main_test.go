package fleet_test

import (
	"os"
	"testing"

	cflog "github.com/cloudflare/cfssl/log"
)

func TestMain(m *testing.M) {
	// cfssl logs every signature at info level.
	cflog.Level = cflog.LevelError
	os.Exit(m.Run())
}
