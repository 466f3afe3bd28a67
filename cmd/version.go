package cmd

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time: go build -ldflags "-X github.com/dtls-tool/dtls/cmd.version=v1.0.0 ...".
var (
	version = ""
	commit  = ""
	date    = ""
)

func newVersionCmd(io IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			v, cm, d := buildInfo()
			_, err := fmt.Fprintf(io.Out, "dtls %s (commit %s, built %s, %s %s/%s)\n", v, cm, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// buildInfo falls back to what the Go toolchain embeds (go install, plain go
// build) when the release ldflags were not set.
func buildInfo() (v, c, d string) {
	v, c, d = version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		v, c, d = fromBuildInfo(bi, v, c, d)
	}
	return orUnknown(v, "devel"), orUnknown(c, "unknown"), orUnknown(d, "unknown")
}

// fromBuildInfo fills the version, commit and date the ldflags left empty
// from what the Go toolchain embeds.
func fromBuildInfo(bi *debug.BuildInfo, v, c, d string) (string, string, string) {
	if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && c == "":
			c = s.Value
		case s.Key == "vcs.time" && d == "":
			d = s.Value
		}
	}
	return v, c, d
}

// orUnknown is s, or def when s is empty.
func orUnknown(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
