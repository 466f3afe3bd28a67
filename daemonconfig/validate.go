package daemonconfig

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// ErrValidateUnsupported is returned by Validate when dockerd has no
// --validate flag. The flag came with Docker 23.0 (moby cmd/dockerd
// options.go: "Validate daemon configuration and exit"); Debian's docker.io
// 20.10 answers `unknown flag: --validate`. Callers then fall back to
// restarting the daemon and watching it come up.
var ErrValidateUnsupported = errors.New("dockerd has no --validate flag (it needs Docker 23.0 or later)")

// validateFlag finds the flag in `dockerd --help`, where each flag starts a
// line: "      --validate     Validate daemon configuration and exit".
var validateFlag = regexp.MustCompile(`(?m)^\s*--validate\s`)

// Validate runs `dockerd --validate --config-file path`, which parses the file
// with dockerd's own rules (unknown keys, types, values) without starting a
// daemon. It returns ErrValidateUnsupported (wrapped) when dockerd lacks the
// flag, found from `dockerd --help`, and an error carrying dockerd's message
// when the file is rejected.
//
// It cannot see conflicts with flags given in the systemd unit (such as
// -H fd:// against "hosts"): those only show when the service starts. See
// FindUnit and WriteDropIn for that.
func Validate(ctx context.Context, dockerd, path string) error {
	help, err := exec.CommandContext(ctx, dockerd, "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s --help: %w", dockerd, err)
	}
	if !validateFlag.Match(help) {
		return fmt.Errorf("validate daemon config %q with %s: %w", path, dockerd, ErrValidateUnsupported)
	}
	out, err := exec.CommandContext(ctx, dockerd, "--validate", "--config-file", path).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return fmt.Errorf("validate daemon config %q with %s: %w", path, dockerd, err)
		}
		return fmt.Errorf("validate daemon config %q with %s: %s: %w", path, dockerd, msg, err)
	}
	return nil
}
