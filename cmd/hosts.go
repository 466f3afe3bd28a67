package cmd

import (
	"fmt"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
)

// parseDockerHost checks a client-side daemon URL (--host of env,
// --docker-host of issue-client).
func parseDockerHost(flag, s string) error {
	if _, _, err := authority.ParseListen(s); err != nil {
		return fmt.Errorf("invalid --%s %q: want tcp://HOST:PORT, e.g. tcp://docker.example.com:2376", flag, s)
	}
	return nil
}
