package daemonconfig

import "strings"

// DockerdFlag is one flag of a dockerd command line, as dockerd's flag
// parser (spf13/pflag) reads it.
type DockerdFlag struct {
	// Name is the flag's long name without "--", e.g. "host" for -H,
	// "debug" for -D. A short flag dockerd does not have is named by its
	// letter with the dash ("-x"): dockerd would refuse it.
	Name string
	// Value is the flag's value; "" for a boolean flag given alone (which
	// means true).
	Value string
	// HasValue reports whether a value was given ("--tls=false",
	// "-H fd://"), as opposed to a boolean flag given alone.
	HasValue bool
}

// dockerdShort maps dockerd's one-letter flags to their long names
// (dockerd --help of Docker 20.10 to 28: -b, -D, -G, -H, -l, -p, -s, -v;
// -g is the old --graph, removed in Docker 23; -h is help).
var dockerdShort = map[byte]string{
	'b': "bridge", 'D': "debug", 'G': "group", 'H': "host", 'l': "log-level",
	'p': "pidfile", 's': "storage-driver", 'v': "version", 'g': "graph", 'h': "help",
}

// dockerdBool are dockerd's boolean flags: they take no separate value
// ("--tls false" is the flag and a stray argument; "--tls=false" is how a
// boolean is turned off). From dockerd --help (Docker 20.10) and the flags
// added since (validate in 23, ip-forward-no-drop in 27,
// allow-direct-routing in 28).
var dockerdBool = map[string]bool{
	"debug": true, "version": true, "help": true, "validate": true,
	"tls": true, "tlsverify": true, "experimental": true, "live-restore": true,
	"icc": true, "iptables": true, "ip6tables": true, "ipv6": true, "ip-forward": true,
	"ip-forward-no-drop": true, "ip-masq": true, "userland-proxy": true, "selinux-enabled": true,
	"no-new-privileges": true, "rootless": true, "init": true, "raw-logs": true,
	"cri-containerd": true, "allow-direct-routing": true, "disable-legacy-registry": true,
}

// dockerdValue are dockerd's flags that take a value (dockerd --help of
// Docker 20.10, and later additions). pflag gives such a flag the next
// argument whatever it looks like, so "--log-level -H" sets the log level
// to "-H"; a flag in neither list is taken to have a value only when the
// next word does not look like a flag, so that an unknown boolean never
// hides a -H behind it.
var dockerdValue = map[string]bool{
	"add-runtime": true, "allow-nondistributable-artifacts": true, "api-cors-header": true,
	"authorization-plugin": true, "bip": true, "bip6": true, "bridge": true, "cdi-spec-dir": true,
	"cgroup-parent": true, "config-file": true, "containerd": true, "containerd-namespace": true,
	"containerd-plugins-namespace": true, "cpu-rt-period": true, "cpu-rt-runtime": true,
	"data-root": true, "default-address-pool": true, "default-cgroupns-mode": true,
	"default-gateway": true, "default-gateway-v6": true, "default-ipc-mode": true,
	"default-network-opt": true, "default-runtime": true, "default-shm-size": true,
	"default-ulimit": true, "dns": true, "dns-opt": true, "dns-search": true, "exec-opt": true,
	"exec-root": true, "feature": true, "firewall-backend": true, "fixed-cidr": true,
	"fixed-cidr-v6": true, "graph": true, "group": true, "host": true, "host-gateway-ip": true,
	"http-proxy": true, "https-proxy": true, "init-path": true, "insecure-registry": true,
	"ip": true, "label": true, "log-driver": true, "log-format": true, "log-level": true,
	"log-opt": true, "max-concurrent-downloads": true, "max-concurrent-uploads": true,
	"max-download-attempts": true, "metrics-addr": true, "mtu": true,
	"network-control-plane-mtu": true, "no-proxy": true, "node-generic-resource": true,
	"oom-score-adjust": true, "pidfile": true, "registry-mirror": true, "seccomp-profile": true,
	"shutdown-timeout": true, "storage-driver": true, "storage-opt": true,
	"swarm-default-advertise-addr": true, "tlscacert": true, "tlscert": true, "tlskey": true,
	"userland-proxy-path": true, "userns-remap": true,
}

// parsedFlag is a DockerdFlag and where it is in the words of the command
// line, so that removeFlags can rewrite it.
type parsedFlag struct {
	DockerdFlag
	word      int  // the word that holds the flag
	short     int  // for a short flag, its index in the word's letters; -1 for a long flag
	valueWord bool // the value is the next word
}

// parseDockerdWords reads the flags of a dockerd command line split into
// words (the program first) the way pflag does (pflag flag.go,
// parseLongArg and parseSingleShortArg):
//
//   - "--name=value", "--name value" (for a flag with a value), "--name"
//     (a boolean);
//   - short flags combine: "-DH fd://" is -D and -H fd://, "-DHfd://" and
//     "-DH=fd://" too: the letters up to the first one that takes a value
//     are booleans, and the rest of the word (after an optional "=") or
//     else the next word is that flag's value;
//   - "--" ends the flags; other words are arguments.
func parseDockerdWords(words []string) []parsedFlag {
	var flags []parsedFlag
	takesValue := func(name string, i int) bool {
		switch {
		case dockerdBool[name]:
			return false
		case dockerdValue[name]:
			return true
		}
		return i+1 < len(words) && !strings.HasPrefix(words[i+1], "-")
	}
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			return flags
		case strings.HasPrefix(w, "--") && len(w) > 2:
			name, val, hasVal := strings.Cut(w[2:], "=")
			f := parsedFlag{DockerdFlag: DockerdFlag{Name: name, Value: val, HasValue: hasVal}, word: i, short: -1}
			if !hasVal && takesValue(name, i) && i+1 < len(words) {
				i++
				f.Value, f.HasValue, f.valueWord = words[i], true, true
			}
			flags = append(flags, f)
		case strings.HasPrefix(w, "-") && len(w) > 1:
			letters := w[1:]
			for j := 0; j < len(letters); j++ {
				name, known := dockerdShort[letters[j]]
				if !known {
					name = "-" + letters[j:j+1]
				}
				f := parsedFlag{DockerdFlag: DockerdFlag{Name: name}, word: i, short: j}
				rest := letters[j+1:]
				switch {
				case strings.HasPrefix(rest, "=") && len(rest) > 1:
					// "-l=debug", "-D=false"
					f.Value, f.HasValue = rest[1:], true
					j = len(letters)
				case !known || dockerdBool[name]:
				case rest != "":
					// "-Hfd://"
					f.Value, f.HasValue = rest, true
					j = len(letters)
				case i+1 < len(words):
					// "-H fd://"
					i++
					f.Value, f.HasValue, f.valueWord = words[i], true, true
				}
				flags = append(flags, f)
			}
		}
	}
	return flags
}

// ParseDockerdFlags returns the flags of a dockerd command line (program
// first, as in ExecStart), in order, read as dockerd reads them: see
// parseDockerdWords. Quotes and backslashes are interpreted as systemd does
// for ExecStart; variables such as $DOCKER_OPTS are not expanded (expand
// them first: Unit.Expanded).
func ParseDockerdFlags(cmdline string) []DockerdFlag {
	ws := splitWords(cmdline)
	values := make([]string, len(ws))
	for i, w := range ws {
		values[i] = w.value
	}
	parsed := parseDockerdWords(values)
	out := make([]DockerdFlag, len(parsed))
	for i, f := range parsed {
		out[i] = f.DockerdFlag
	}
	return out
}

// DockerdFlagMap is ParseDockerdFlags as a map from long name to the values
// given, in order ("" for a boolean given alone).
func DockerdFlagMap(cmdline string) map[string][]string {
	m := map[string][]string{}
	for _, f := range ParseDockerdFlags(cmdline) {
		m[f.Name] = append(m[f.Name], f.Value)
	}
	return m
}

// removeFlags takes the flags drop selects out of a dockerd command line
// and returns them with the command line that is left: other words are
// kept as written, and a word of combined short flags loses only the
// letters dropped ("-DH fd://" without host is "-D").
func removeFlags(cmdline string, drop func(name string) bool) (removed []DockerdFlag, kept string) {
	ws := splitWords(cmdline)
	if len(ws) == 0 {
		return nil, ""
	}
	values := make([]string, len(ws))
	for i, w := range ws {
		values[i] = w.value
	}
	gone := make([]bool, len(ws))
	// For a word of short flags: the letters dropped from it.
	lettersGone := map[int]map[int]bool{}
	for _, f := range parseDockerdWords(values) {
		if !drop(f.Name) {
			continue
		}
		removed = append(removed, f.DockerdFlag)
		if f.valueWord {
			gone[f.word+1] = true
		}
		if f.short < 0 {
			gone[f.word] = true
			continue
		}
		if lettersGone[f.word] == nil {
			lettersGone[f.word] = map[int]bool{}
		}
		lettersGone[f.word][f.short] = true
	}
	out := []string{ws[0].raw}
	for i := 1; i < len(ws); i++ {
		if gone[i] {
			continue
		}
		lg, ok := lettersGone[i]
		if !ok {
			out = append(out, ws[i].raw)
			continue
		}
		if w := shortWithout(ws[i], lg); w != "" {
			out = append(out, w)
		}
	}
	return removed, strings.Join(out, " ")
}

// shortWithout is a word of combined short flags without the letters in
// gone, or "" when none is left. The flag letters come first and are plain
// letters; a value that follows them in the word is kept as written.
func shortWithout(w word, gone map[int]bool) string {
	letters := w.value[1:]
	// The flag letters: up to the first one whose value is the rest of
	// the word.
	n := 0
	for n < len(letters) {
		name, known := dockerdShort[letters[n]]
		n++
		if known && !dockerdBool[name] || strings.HasPrefix(letters[n:], "=") {
			break
		}
	}
	rest := letters[n:]
	if strings.HasPrefix(w.raw, "-"+letters[:n]) {
		rest = w.raw[1+n:]
	}
	var b strings.Builder
	for j := 0; j < n; j++ {
		if !gone[j] {
			b.WriteByte(letters[j])
		}
	}
	if gone[n-1] || b.Len() == 0 {
		// The letter that owned the value went with it.
		rest = ""
	}
	if b.Len() == 0 {
		return ""
	}
	return "-" + b.String() + rest
}
