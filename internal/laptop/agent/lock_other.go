//go:build !unix

package agent

import "context"

// lockDir: Windows has no flock(2) on a directory. One agent per bundle
// directory is what the scheduled task in examples/agent runs, and every
// step of a renewal is atomic on its own; two agents at once on one bundle
// may make one of them report a refused renewal, never a broken bundle.
func lockDir(context.Context, string) (func(), error) { return func() {}, nil }
