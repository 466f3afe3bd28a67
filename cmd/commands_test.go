package cmd

import (
	"testing"
	"time"
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
