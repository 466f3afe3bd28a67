package daemonconfig

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestTryDiff(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	gen := func() []byte {
		n := r.Intn(25)
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(string(rune('a' + r.Intn(4))))
			sb.WriteString("\n")
		}
		s := sb.String()
		if r.Intn(4) == 0 && len(s) > 0 {
			s = s[:len(s)-1]
		}
		return []byte(s)
	}
	dir := t.TempDir()
	for k := 0; k < 3000; k++ {
		a, b := gen(), gen()
		os.WriteFile(dir+"/a", a, 0o644)
		os.WriteFile(dir+"/b", b, 0o644)
		var mine bytes.Buffer
		Diff(&mine, "x", a, b)
		// apply with patch to check correctness
		os.WriteFile(dir+"/p", mine.Bytes(), 0o644)
		os.WriteFile(dir+"/x", a, 0o644)
		if mine.Len() == 0 {
			continue
		}
		out, err := exec.Command("patch", "-s", dir+"/x", dir+"/p").CombinedOutput()
		got, _ := os.ReadFile(dir + "/x")
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("patch failed %v %s\nA=%q\nB=%q\n%s\ngot=%q", err, out, a, b, mine.String(), got)
		}
	}
}
