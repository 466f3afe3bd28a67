package daemonconfig

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     string
	}{
		{
			name: "equal",
			old:  "{}\n", new: "{}\n",
			want: "",
		},
		{
			name: "change in the middle keeps three lines of context",
			old:  "{\n  \"a\": 1,\n  \"b\": 2,\n  \"tls\": true,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5,\n  \"f\": 6\n}\n",
			new:  "{\n  \"a\": 1,\n  \"b\": 2,\n  \"tlsverify\": true,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5,\n  \"f\": 6\n}\n",
			want: "--- /etc/docker/daemon.json\n+++ /etc/docker/daemon.json (dtls)\n" +
				"@@ -1,7 +1,7 @@\n {\n   \"a\": 1,\n   \"b\": 2,\n-  \"tls\": true,\n+  \"tlsverify\": true,\n   \"c\": 3,\n   \"d\": 4,\n   \"e\": 5,\n",
		},
		{
			name: "new file",
			old:  "", new: "{\n  \"tlsverify\": true\n}\n",
			want: "--- /etc/docker/daemon.json\n+++ /etc/docker/daemon.json (dtls)\n" +
				"@@ -0,0 +1,3 @@\n+{\n+  \"tlsverify\": true\n+}\n",
		},
		{
			name: "missing final newline and CRLF",
			old:  "{\r\n  \"debug\": true\r\n}", new: "{\r\n  \"debug\": true,\r\n  \"tlsverify\": true\r\n}",
			want: "--- /etc/docker/daemon.json\n+++ /etc/docker/daemon.json (dtls)\n" +
				"@@ -1,3 +1,4 @@\n {\n-  \"debug\": true\n+  \"debug\": true,\n+  \"tlsverify\": true\n }\n\\ No newline at end of file\n",
		},
		{
			name: "two hunks",
			old:  "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			new:  "1\nx\n3\n4\n5\n6\n7\n8\n9\n10\ny\n12\n",
			want: "--- /etc/docker/daemon.json\n+++ /etc/docker/daemon.json (dtls)\n" +
				"@@ -1,5 +1,5 @@\n 1\n-2\n+x\n 3\n 4\n 5\n" +
				"@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n+y\n 12\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, Diff(&buf, "/etc/docker/daemon.json", []byte(tc.old), []byte(tc.new)))
			assert.Equal(t, tc.want, buf.String())
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDiffWriteError(t *testing.T) {
	err := Diff(failingWriter{}, "/etc/docker/daemon.json", nil, []byte("{}"))
	assert.EqualError(t, err, `write diff of "/etc/docker/daemon.json": disk full`)
}
