//go:build !linux

package authz

// The plugin runs beside dockerd, on Linux; elsewhere no bind root is
// safe to judge.
func ancestorProblem(dir, child string) string { return "cannot be judged on this system" }

func mountFlagsProblem(path string) string { return "cannot be judged on this system" }

// HostCgroupnsDefault: cgroup namespaces are Linux's.
func HostCgroupnsDefault() bool { return false }

// dirIdentity: no volume can be bound to its directory here (closed).
func dirIdentity(path string) string { return "" }
