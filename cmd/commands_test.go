package cmd

import (
	"testing"
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
