package daemonconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadListenersUnverified: the TCP hosts that take callers without a
// verified client certificate, from daemon.json and docker.service's -H
// flags (also those hidden in $DOCKER_OPTS); a flag wins over the file.
func TestReadListenersUnverified(t *testing.T) {
	for _, c := range []struct {
		name, file, execStart, env string
		want                       []string
	}{
		{"no file", "-", "", "", nil},
		{"empty file", "", "", "", nil},
		{"unix only", `{"hosts": ["unix:///var/run/docker.sock"]}`, "", "", nil},
		{"plain TCP", `{"hosts": ["tcp://0.0.0.0:2375", "unix:///x.sock"]}`, "", "", []string{"tcp://0.0.0.0:2375 FILE"}},
		{"hosts as a string", `{"hosts": "tcp://1.2.3.4:2375"}`, "", "", []string{"tcp://1.2.3.4:2375 FILE"}},
		{"bare HOST:PORT, trimmed", `{"hosts": [" 0.0.0.0:2375 "]}`, "", "", []string{"0.0.0.0:2375 FILE"}},
		{"tls alone", `{"hosts": ["tcp://0.0.0.0:2376"], "tls": true}`, "", "", []string{"tcp://0.0.0.0:2376 FILE"}},
		{"tlsverify", `{"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": true}`, "", "", nil},
		{"tlsverify false", `{"hosts": ["tcp://0.0.0.0:2376"], "tls": true, "tlsverify": false}`, "", "", []string{"tcp://0.0.0.0:2376 FILE"}},
		{"-H in the unit", `{}`, "/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2375", "", []string{"tcp://0.0.0.0:2375 UNIT"}},
		{"--tlsverify in the unit", `{"hosts": ["tcp://0.0.0.0:2376"]}`, "/usr/bin/dockerd --tlsverify", "", nil},
		{"--tlsverify=false in the unit", `{"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": true}`, "/usr/bin/dockerd --tlsverify=false", "", []string{"tcp://0.0.0.0:2376 FILE"}},
		{"-H in $DOCKER_OPTS", `{}`, "/usr/bin/dockerd $DOCKER_OPTS", `DOCKER_OPTS="-H tcp://0.0.0.0:2375"`, []string{"tcp://0.0.0.0:2375 ENV"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file, unit, env := filepath.Join(dir, "daemon.json"), filepath.Join(dir, "docker.service"), filepath.Join(dir, "docker.env")
			if c.file != "-" {
				require.NoError(t, os.WriteFile(file, []byte(c.file), 0o644))
			}
			if c.execStart != "" {
				u := "[Service]\n"
				if c.env != "" {
					require.NoError(t, os.WriteFile(env, []byte(c.env+"\n"), 0o644))
					u += "EnvironmentFile=" + env + "\n"
				}
				require.NoError(t, os.WriteFile(unit, []byte(u+"ExecStart="+c.execStart+"\n"), 0o644))
			}
			l, err := ReadListeners(file, []string{dir})
			require.NoError(t, err)
			var got []string
			for _, h := range l.Unverified() {
				src := map[string]string{file: "FILE", unit: "UNIT", "$DOCKER_OPTS in " + env: "ENV"}[h.Source]
				got = append(got, h.Addr+" "+src)
			}
			assert.Equal(t, c.want, got)
		})
	}
}

// TestReadListenersErrors: a daemon.json that cannot be read, or is not
// valid JSON, is an error naming it (what it sets is unknown).
func TestReadListenersErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "daemon.json")
	require.NoError(t, os.WriteFile(p, []byte("{\n  \"hosts\": [\"tcp://0.0.0.0:2375\",]\n}"), 0o644))
	_, err := ReadListeners(p, nil)
	assert.EqualError(t, err, `read daemon config "`+p+`": invalid JSON at line 2, column 34: invalid character ']' looking for beginning of value`)
	require.NoError(t, os.WriteFile(p, []byte(`{"hosts": 5}`), 0o644))
	_, err = ReadListeners(p, nil)
	assert.EqualError(t, err, `read daemon config "`+p+`": "hosts": neither a string nor a list of strings`)
	_, err = ReadListeners(dir, nil)
	assert.ErrorContains(t, err, `read daemon config "`+dir+`": read `+dir+`: is a directory`)
}
