package codecheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// module is the import path of dtls's module.
const module = "github.com/dtls-tool/dtls"

// graph is what `go list -deps -json` says of a build: each package's
// package name, non-test imports and compiled Go files.
type graph struct {
	name    map[string]string
	imports map[string][]string
	files   map[string][]string
}

// listedPackage is the part of `go list -json`'s output the rules read.
type listedPackage struct {
	ImportPath string
	Name       string
	Imports    []string
	GoFiles    []string
}

// loadGraph runs `go list -deps -json` on patterns in dir for goos. Imports
// and GoFiles are of non-test files only, as go list gives them without
// -test: what a binary links.
func loadGraph(t *testing.T, dir, goos string, patterns ...string) graph {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json"}, patterns...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list (GOOS=%s): %v: %s", goos, err, stderr.Bytes())
	}
	g := graph{name: map[string]string{}, imports: map[string][]string{}, files: map[string][]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list (GOOS=%s): %v", goos, err)
		}
		g.name[p.ImportPath] = p.Name
		g.imports[p.ImportPath] = p.Imports
		g.files[p.ImportPath] = p.GoFiles
	}
	return g
}

// chainTo is the shortest import chain from root to a package bad accepts,
// root first, or nil when there is none. Imports are visited in go list's
// (sorted) order, so the chain is the same at every run.
func (g graph) chainTo(root string, bad func(string) bool) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && bad(p) {
			var chain []string
			for q := p; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, q := range g.imports[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// importRule forbids the packages roots selects to import, directly or
// through others, a package forbidden accepts.
type importRule struct {
	name      string
	roots     func(graph) []string
	forbidden func(string) bool
}

// violations names, for each root that breaks r, the offending chain.
func (r importRule) violations(g graph) []string {
	var out []string
	for _, root := range r.roots(g) {
		if chain := g.chainTo(root, r.forbidden); chain != nil {
			out = append(out, r.name+": "+short(strings.Join(chain, " -> ")))
		}
	}
	return out
}

// short drops the module prefix from import paths in s, for messages.
func short(s string) string { return strings.ReplaceAll(s, module+"/", "") }

// within reports whether path is pkg or below it.
func within(path, pkg string) bool {
	return path == pkg || strings.HasPrefix(path, pkg+"/")
}

// withinAny reports whether path is one of pkgs or below one.
func withinAny(path string, pkgs ...string) bool {
	for _, p := range pkgs {
		if within(path, p) {
			return true
		}
	}
	return false
}

// only selects the listed packages of the module that g holds.
func only(pkgs ...string) func(graph) []string {
	return func(g graph) []string {
		var out []string
		for _, p := range pkgs {
			if _, ok := g.imports[module+"/"+p]; ok {
				out = append(out, module+"/"+p)
			}
		}
		return out
	}
}

// libraries selects the module's packages that are not commands: neither
// a main package nor cmd or below it.
func libraries(g graph) []string {
	var out []string
	for p, name := range g.name {
		if within(p, module) && name != "main" && !within(p, module+"/cmd") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// testOnly are the packages under internal/ that only tests, benches and
// the kill loop import. failpoint is not among them: the engine's journal
// calls it at each step, and a default build links its no-op (off.go);
// failpointIsNoop checks that.
var testOnly = []string{
	module + "/internal/catest",
	module + "/internal/codecheck",
	module + "/internal/crashtest",
	module + "/internal/fixture",
	module + "/internal/pgsandbox",
	module + "/internal/sandbox",
}

// importRules are docs/architecture.md's import rules.
var importRules = []importRule{
	{
		name:      "a library imports cmd",
		roots:     libraries,
		forbidden: func(p string) bool { return within(p, module+"/cmd") },
	},
	{
		// The wire protocol and the laptop agent never pull the database in.
		name:      "fleet or agent imports store",
		roots:     only("internal/onlineca/fleet", "internal/laptop/agent"),
		forbidden: func(p string) bool { return within(p, module+"/internal/cahost/store") },
	},
	{
		// `dtls env` runs in every shell a developer opens: it needs the
		// bundle's paths, not a signer or a database.
		name:  "clientenv imports signing or database code",
		roots: only("clientenv"),
		forbidden: func(p string) bool {
			return withinAny(p, module+"/internal/cahost/store", module+"/pki", "github.com/cloudflare/cfssl/signer",
				"database/sql", "modernc.org/sqlite", "github.com/lib/pq")
		},
	},
	{
		name:      "the dtls binary links a test-only package",
		roots:     func(graph) []string { return []string{module + "/cmd/dtls"} },
		forbidden: func(p string) bool { return withinAny(p, testOnly...) },
	},
	{
		// One CA engine under two faces: the engine never reaches the
		// CA host's state directory (authority) nor the online CA's
		// HTTP server (caserver and its host).
		name:  "the CA engine imports one of its faces",
		roots: only("internal/cahost/engine"),
		forbidden: func(p string) bool {
			return withinAny(p, module+"/internal/cahost/authority", module+"/internal/onlineca/caserver")
		},
	},
}

// failpointIsNoop says what is wrong when the dtls binary links fail
// points that can fire (on.go instead of off.go), or "" when it does not.
func failpointIsNoop(g graph) string {
	files, linked := g.files[module+"/internal/failpoint"]
	if linked && slices.Contains(files, "on.go") {
		return fmt.Sprintf("the dtls binary links internal/failpoint's armed fail points (%s): build it without -tags dtlsfailpoints", strings.Join(files, ", "))
	}
	return ""
}

// TestImportRules checks docs/architecture.md's import rules on the
// module's packages as go list sees them for Linux, macOS and Windows (the
// platforms `make cross` builds), naming the offending chain of each
// package that breaks one.
func TestImportRules(t *testing.T) {
	root := moduleRoot(t)
	for _, goos := range []string{"linux", "darwin", "windows"} {
		g := loadGraph(t, root, goos, "./...")
		if _, ok := g.imports[module+"/cmd/dtls"]; !ok {
			t.Fatalf("GOOS=%s: go list did not list cmd/dtls", goos)
		}
		for _, r := range importRules {
			for _, v := range r.violations(g) {
				t.Errorf("GOOS=%s: %s", goos, v)
			}
		}
		if msg := failpointIsNoop(loadGraph(t, root, goos, "./cmd/dtls")); msg != "" {
			t.Errorf("GOOS=%s: %s", goos, msg)
		}
	}
}

// TestImportRulesFail breaks each rule in a made-up import graph, so that
// a rule that accepts everything cannot pass TestImportRules, and checks
// that each failure names its chain.
func TestImportRulesFail(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	g := graph{
		name: map[string]string{
			m("cmd"): "cmd", m("cmd/dtls"): "main", m("internal/bench/cmdbench"): "main",
			m("internal/dockerhost/audit"): "audit", m("internal/dockerhost/revlist"): "revlist",
			m("internal/onlineca/fleet"): "fleet", m("internal/laptop/agent"): "agent", m("pki"): "pki", m("internal/cahost/store"): "store",
			m("clientenv"): "clientenv", m("internal/fixture"): "fixture",
			m("internal/cahost/engine"): "engine", m("internal/onlineca/caserver/cahost"): "cahost",
		},
		imports: map[string][]string{
			m("cmd/dtls"):                    {m("cmd")},
			m("internal/bench/cmdbench"):     {m("cmd")}, // a command may import cmd
			m("cmd"):                         {m("internal/laptop/agent"), m("internal/dockerhost/audit"), m("clientenv")},
			m("internal/dockerhost/audit"):   {m("internal/dockerhost/revlist")},
			m("internal/dockerhost/revlist"): {m("cmd")},
			m("internal/laptop/agent"):       {m("internal/onlineca/fleet")},
			m("internal/onlineca/fleet"):     {m("pki"), m("internal/cahost/store")},
			m("internal/cahost/store"):       {"modernc.org/sqlite"},
			m("clientenv"):                   {m("internal/fixture")},
			m("internal/fixture"):            {"github.com/cloudflare/cfssl/signer/local"},
			m("internal/cahost/engine"):      {m("internal/cahost/store"), m("internal/onlineca/caserver/cahost")},
		},
	}
	var got []string
	for _, r := range importRules {
		got = append(got, r.violations(g)...)
	}
	assert.Equal(t, []string{
		"a library imports cmd: internal/dockerhost/audit -> internal/dockerhost/revlist -> cmd",
		"a library imports cmd: internal/dockerhost/revlist -> cmd",
		"fleet or agent imports store: internal/onlineca/fleet -> internal/cahost/store",
		"fleet or agent imports store: internal/laptop/agent -> internal/onlineca/fleet -> internal/cahost/store",
		"clientenv imports signing or database code: clientenv -> internal/fixture -> github.com/cloudflare/cfssl/signer/local",
		"the dtls binary links a test-only package: cmd/dtls -> cmd -> clientenv -> internal/fixture",
		"the CA engine imports one of its faces: internal/cahost/engine -> internal/onlineca/caserver/cahost",
	}, got)

	// Each database package on its own breaks the clientenv rule.
	for _, bad := range []string{m("internal/cahost/store"), m("pki"), "database/sql", "modernc.org/sqlite", "github.com/lib/pq", "github.com/cloudflare/cfssl/signer"} {
		g := graph{imports: map[string][]string{m("clientenv"): {"os", bad}}}
		assert.Equal(t, []string{"clientenv imports signing or database code: clientenv -> " + short(bad)}, importRules[2].violations(g), bad)
	}

	armed := graph{files: map[string][]string{m("internal/failpoint"): {"failpoint.go", "on.go"}}}
	assert.Contains(t, failpointIsNoop(armed), "armed fail points (failpoint.go, on.go)")
	noop := graph{files: map[string][]string{m("internal/failpoint"): {"failpoint.go", "off.go"}}}
	assert.Empty(t, failpointIsNoop(noop))
}
