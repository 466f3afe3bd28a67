package authority

import (
	"bytes"
	"os"
	"path/filepath"
)

// PackagedUnitDir is where the dtls .deb and .rpm install their systemd
// units: the vendor directory, below /etc/systemd/system in systemd's
// precedence (systemd.unit(5), "Unit File Load Path").
const PackagedUnitDir = "/usr/lib/systemd/system"

// PackagedUnit reports whether dir (the package's unit directory) holds
// the unit name with the same settings as want. Then init need not write
// a copy to /etc/systemd/system, which would shadow the packaged unit and
// keep its old settings after a package upgrade. Comments are not
// settings: the packaged unit says who installed it. An empty dir is no
// package.
func PackagedUnit(dir, name string, want []byte) bool {
	if dir == "" {
		return false
	}
	have, err := os.ReadFile(filepath.Join(dir, name))
	return err == nil && bytes.Equal(UnitSettings(have), UnitSettings(want))
}

// UnitSettings is a unit file without its comment lines ('#' or ';'
// first, systemd.syntax(7)) and blank lines: what systemd reads of it.
func UnitSettings(unit []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(unit, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || t[0] == ';' {
			continue
		}
		out = append(append(out, t...), '\n')
	}
	return out
}
