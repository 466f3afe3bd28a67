package daemonconfig

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// ErrValidateUnsupported is returned by Validate when dockerd has no
// --validate flag. The flag came with Docker 23.0 (moby cmd/dockerd
// options.go: "Validate daemon configuration and exit"); Debian's docker.io
// 20.10 answers `unknown flag: --validate`. Callers then fall back to
// restarting the daemon and watching it come up.
var ErrValidateUnsupported = errors.New("dockerd has no --validate flag (it needs Docker 23.0 or later)")

// versionLDFlag is how moby's build (hack/make/.go-autogen) stamps the
// version into dockerd, recorded by the Go toolchain in the binary's build
// information (Go 1.18 and later record -ldflags). Compiled on first use,
// like the package's other expressions: dtls env links this package and
// must not pay for it at every shell start.
var versionLDFlag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`dockerversion\.Version=v?(\d+)\.`) })

// dockerdVersion reads dockerd's major version from its Go build
// information, without running it: starting dockerd's binary costs about
// 50 ms, the larger part of what init takes. ok is false when the binary
// does not say.
func dockerdVersion(dockerd string) (major int, ok bool) {
	bi, err := buildinfo.ReadFile(dockerd)
	if err != nil {
		return 0, false
	}
	for _, s := range bi.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		if m := versionLDFlag().FindStringSubmatch(s.Value); m != nil {
			n, err := strconv.Atoi(m[1])
			return n, err == nil
		}
	}
	return 0, false
}

// unknownValidate is how a dockerd without the flag (cobra's flag parser)
// answers: "unknown flag: --validate".
var unknownValidate = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`unknown flag:\s*--validate\b`) })

// Validate runs `dockerd --validate --config-file path`, which parses the file
// with dockerd's own rules (unknown keys, types, values) without starting a
// daemon. It returns ErrValidateUnsupported (wrapped) when dockerd lacks the
// flag, and an error carrying dockerd's message when the file is rejected.
// One process, not a `dockerd --help` first: starting dockerd's binary costs
// tens of milliseconds, most of what init takes.
//
// It cannot see conflicts with flags given in the systemd unit (such as
// -H fd:// against "hosts"): those only show when the service starts. See
// FindUnit and WriteDropIn for that.
func Validate(ctx context.Context, dockerd, path string) error {
	if v, ok := dockerdVersion(dockerd); ok && v < 23 {
		return fmt.Errorf("validate daemon config %q with %s (version %d): %w", path, dockerd, v, ErrValidateUnsupported)
	}
	out, err := exec.CommandContext(ctx, dockerd, "--validate", "--config-file", path).CombinedOutput()
	if err != nil {
		if unknownValidate().Match(out) {
			return fmt.Errorf("validate daemon config %q with %s: %w", path, dockerd, ErrValidateUnsupported)
		}
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return fmt.Errorf("validate daemon config %q with %s: %w", path, dockerd, err)
		}
		return fmt.Errorf("validate daemon config %q with %s: %s: %w", path, dockerd, msg, err)
	}
	return nil
}
