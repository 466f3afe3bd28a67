//go:build !linux

package gateway

import (
	"net"
	"testing"
)

// dialFromOtherPIDNS: PID namespaces are Linux's.
func dialFromOtherPIDNS(t *testing.T, _ string) net.Conn {
	t.Skip("PID namespaces are Linux's")
	return nil
}

// dialFromOwnUserNS: user namespaces are Linux's.
func dialFromOwnUserNS(t *testing.T, _ string) net.Conn {
	t.Skip("user namespaces are Linux's")
	return nil
}

// dialAsFromOtherPIDNS: PID namespaces are Linux's.
func dialAsFromOtherPIDNS(t *testing.T, _ string, _, _ uint32) net.Conn {
	t.Skip("PID namespaces are Linux's")
	return nil
}

// dialDroppingFromOtherPIDNS: PID namespaces are Linux's.
func dialDroppingFromOtherPIDNS(t *testing.T, _ string, _, _ uint32) net.Conn {
	t.Skip("PID namespaces are Linux's")
	return nil
}
