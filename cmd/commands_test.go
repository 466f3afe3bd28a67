package cmd

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every subcommand is in the tree and in the order list exactly once.
func TestCommandTable(t *testing.T) {
	if len(commands) != len(commandOrder) {
		t.Fatalf("%d builders, %d names in order", len(commands), len(commandOrder))
	}
	root := NewRootCommand()
	for _, name := range commandOrder {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("command %q: builder makes %q (%v)", name, c.Name(), err)
		}
	}
}

// Usage errors exit 2, whichever layer finds them: pflag, cobra's argument,
// required-flag and flag-group checks, or dtls's own validation.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"nosuch"},
		{"init", "--no-such-flag"},
		{"env", "--unset", "--host", "tcp://a:1"},
		{"env", "--shell", "elvish"},
		{"issue-client"},
		{"issue-client", "../x"},
		{"issue-client", "a", "--passphrase-file", "f", "--passphrase-env", "E"},
		{"init", "--listen", "0.0.0.0:2376"},
		{"version", "extra"},
	} {
		_, stderr, code := runWithEnv(t, time.Now(), nil, args...)
		if code != exitUsage {
			t.Errorf("dtls %v: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr)
		}
	}
}

// Every flag that takes one of a fixed set of values completes them.
func TestFlagValuesComplete(t *testing.T) {
	enumerated := map[string]bool{"key-type": true, "output": true, "reason": true, "shell": true, "format": true}
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !enumerated[f.Name] {
				return
			}
			seen++
			args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "dtls")), "--"+f.Name, "")
			out, _, code := runWithEnv(t, time.Now(), nil, append([]string{cobra.ShellCompRequestCmd}, args...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || len(lines) < 3 {
				t.Errorf("dtls %s --%s: completes %q (exit %d), want its values", c.CommandPath(), f.Name, out, code)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand())
	if seen < 10 {
		t.Fatalf("found only %d enumerated flags: the walk is broken", seen)
	}
}
