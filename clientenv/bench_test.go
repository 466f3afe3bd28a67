package clientenv

import (
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// BenchmarkEnv is the work of one `dtls env` in a shell start-up: load the
// bundle, build the variables and write them out.
func BenchmarkEnv(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "default")
	writeBundle(b, dir, testMeta)
	usage := UsageHint(Bash, "dtls env")
	b.ReportAllocs()
	for b.Loop() {
		bundle, err := LoadBundle(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteSet(io.Discard, Bash, Vars(bundle, ""), usage); err != nil {
			b.Fatal(err)
		}
	}
}

// TestImportsStayCheap keeps `dtls env`, which runs in every shell
// start-up, free of heavy dependencies (cfssl, crypto/x509, net/...): the
// package may only import these parts of the standard library.
func TestImportsStayCheap(t *testing.T) {
	allowed := map[string]bool{
		"encoding/json": true, "errors": true, "fmt": true, "io": true,
		"io/fs": true, "os": true, "path/filepath": true, "runtime": true,
		"strings": true, "time": true, "unicode": true, "unicode/utf8": true,
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			assert.True(t, allowed[path], "%s imports %q", name, path)
		}
		checked++
	}
	assert.NotZero(t, checked)
}
