package cmd

import (
	"fmt"

	"github.com/dtls-tool/dtls/clientenv"
)

// parseDockerHost checks a client-side daemon URL (--host of env,
// --docker-host of issue-client).
func parseDockerHost(flag, s string) error {
	if _, _, err := clientenv.ParseDockerHost(s); err != nil {
		return fmt.Errorf("invalid --%s: %w", flag, err)
	}
	return nil
}
