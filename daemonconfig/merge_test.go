package daemonconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

var testSettings = Settings{
	Listen: "tcp://0.0.0.0:2376",
	CACert: "/etc/docker/dtls/ca.pem",
	Cert:   "/etc/docker/dtls/server-cert.pem",
	Key:    "/etc/docker/dtls/server-key.pem",
}

// tlsJSON is what every merged file holds besides its own keys.
const tlsJSON = `"tlsverify": true,
	"tlscacert": "/etc/docker/dtls/ca.pem",
	"tlscert": "/etc/docker/dtls/server-cert.pem",
	"tlskey": "/etc/docker/dtls/server-key.pem"`

var setTLSChanges = []string{
	`set "tlsverify": true`,
	`set "tlscacert": "/etc/docker/dtls/ca.pem"`,
	`set "tlscert": "/etc/docker/dtls/server-cert.pem"`,
	`set "tlskey": "/etc/docker/dtls/server-key.pem"`,
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

type mergeCase struct {
	name     string
	in       string
	settings *Settings // testSettings when nil
	wantOut  string    // exact output, when set
	wantJSON string    // output compared with JSONEq, when set
	changes  []string  // exact changes, when set
	wantErr  string
}

func mergeCases(t testing.TB) []mergeCase {
	withSockets := testSettings
	withSockets.Sockets = []string{"fd://"}
	return []mergeCase{
		{
			name: "empty file",
			in:   "",
			wantOut: `{
  "hosts": [
    "unix:///var/run/docker.sock",
    "tcp://0.0.0.0:2376"
  ],
  "tlsverify": true,
  "tlscacert": "/etc/docker/dtls/ca.pem",
  "tlscert": "/etc/docker/dtls/server-cert.pem",
  "tlskey": "/etc/docker/dtls/server-key.pem"
}
`,
			changes: append([]string{
				`added "unix:///var/run/docker.sock" to "hosts" (keeps the local docker CLI working)`,
				`added "tcp://0.0.0.0:2376" to "hosts"`,
			}, setTLSChanges...),
		},
		{
			name: "whitespace only",
			in:   " \n\n",
			wantJSON: `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
	` + tlsJSON + `}`,
		},
		{
			name: "empty object without trailing newline",
			in:   "{}",
			wantOut: `{
  "hosts": [
    "unix:///var/run/docker.sock",
    "tcp://0.0.0.0:2376"
  ],
  "tlsverify": true,
  "tlscacert": "/etc/docker/dtls/ca.pem",
  "tlscert": "/etc/docker/dtls/server-cert.pem",
  "tlskey": "/etc/docker/dtls/server-key.pem"
}`,
		},
		{
			name: "registry mirrors and log opts keep their place and layout",
			in:   readTestdata(t, "daemon-mirrors.json"),
			wantOut: `{
  "registry-mirrors": [
    "https://mirror.gcr.io"
  ],
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  },
  "storage-driver": "overlay2",
  "live-restore": true,
  "hosts": [
    "unix:///var/run/docker.sock",
    "tcp://0.0.0.0:2376"
  ],
  "tlsverify": true,
  "tlscacert": "/etc/docker/dtls/ca.pem",
  "tlscert": "/etc/docker/dtls/server-cert.pem",
  "tlskey": "/etc/docker/dtls/server-key.pem"
}
`,
		},
		{
			name: "hosts already has unix and tcp",
			in: `{
    "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
    "tlsverify": true,
    "tlscacert": "/old/ca.pem",
    "tlscert": "/etc/docker/dtls/server-cert.pem",
    "tlskey": "/etc/docker/dtls/server-key.pem"
}
`,
			wantOut: `{
    "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
    "tlsverify": true,
    "tlscacert": "/etc/docker/dtls/ca.pem",
    "tlscert": "/etc/docker/dtls/server-cert.pem",
    "tlskey": "/etc/docker/dtls/server-key.pem"
}
`,
			changes: []string{`set "tlscacert": "/etc/docker/dtls/ca.pem" (was "/old/ca.pem")`},
		},
		{
			name: "hosts without the listen address gets it appended in its own layout",
			in:   "{\n  \"hosts\": [\n    \"unix:///var/run/docker.sock\"\n  ],\n  \"debug\": true\n}\n",
			wantOut: "{\n  \"hosts\": [\n    \"unix:///var/run/docker.sock\",\n    \"tcp://0.0.0.0:2376\"\n  ],\n  \"debug\": true,\n" +
				"  \"tlsverify\": true,\n  \"tlscacert\": \"/etc/docker/dtls/ca.pem\",\n  \"tlscert\": \"/etc/docker/dtls/server-cert.pem\",\n  \"tlskey\": \"/etc/docker/dtls/server-key.pem\"\n}\n",
			changes: append([]string{`added "tcp://0.0.0.0:2376" to "hosts"`}, setTLSChanges...),
		},
		{
			name:     "hosts as a string becomes a list",
			in:       `{"hosts": "tcp://10.0.0.1:2376"}`,
			wantJSON: `{"hosts": ["tcp://10.0.0.1:2376", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
			changes: append([]string{
				`added "tcp://0.0.0.0:2376" to "hosts"`,
				`converted "hosts" from a string to a list (dockerd expects a list)`,
			}, setTLSChanges...),
		},
		{
			name:     "null or empty hosts means the default socket to dockerd",
			in:       `{"hosts": null, "hosts": []}`,
			wantJSON: `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name:    "hosts of the wrong type",
			in:      `{"hosts": 2376}`,
			wantErr: `"hosts" must be a list of strings, not a number`,
		},
		{
			name:    "hosts with a non-string element",
			in:      `{"hosts": ["fd://", {"tcp": 1}]}`,
			wantErr: `"hosts" must be a list of strings: element 2 is an object`,
		},
		{
			name: "singular host string from the article",
			in:   readTestdata(t, "daemon-article.json"),
			wantOut: `{
   "hosts": [
      "unix:///var/run/docker.sock",
      "tcp://0.0.0.0:2376"
   ],
   "tlsverify": true,
   "tlscacert": "/etc/docker/dtls/ca.pem",
   "tlscert": "/etc/docker/dtls/server-cert.pem",
   "tlskey": "/etc/docker/dtls/server-key.pem"
}
`,
			changes: []string{
				`migrated singular "host" key (ignored by dockerd) into "hosts"`,
				`added "unix:///var/run/docker.sock" to "hosts" (keeps the local docker CLI working)`,
				`set "tlscacert": "/etc/docker/dtls/ca.pem" (was "/etc/docker/certs/ca.pem")`,
				`set "tlscert": "/etc/docker/dtls/server-cert.pem" (was "/etc/docker/certs/server-cert.pem")`,
				`set "tlskey": "/etc/docker/dtls/server-key.pem" (was "/etc/docker/certs/server-key.pem")`,
			},
		},
		{
			name:     "singular host array with a unix socket gets no default socket",
			in:       `{"debug": true, "host": ["unix:///run/docker.sock", "tcp://127.0.0.1:2375"]}`,
			wantJSON: `{"debug": true, "hosts": ["unix:///run/docker.sock", "tcp://127.0.0.1:2375", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name:     "singular host next to hosts is merged and removed",
			in:       `{"hosts": ["fd://"], "host": "tcp://127.0.0.1:2375"}`,
			wantJSON: `{"hosts": ["fd://", "tcp://127.0.0.1:2375", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name:    "singular host of the wrong type",
			in:      `{"host": true}`,
			wantErr: `"host" must be a list of strings, not a boolean`,
		},
		{
			name:     "tls true without tlsverify",
			in:       `{"tls": true, "debug": false}`,
			wantJSON: `{"debug": false, "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
			changes: append([]string{
				`added "unix:///var/run/docker.sock" to "hosts" (keeps the local docker CLI working)`,
				`added "tcp://0.0.0.0:2376" to "hosts"`,
				`removed "tls": true (tlsverify supersedes it)`,
			}, setTLSChanges...),
		},
		{
			name:     "tlsverify false",
			in:       `{"hosts": ["fd://", "tcp://0.0.0.0:2376"], "tls": false, "tlsverify": false}`,
			wantJSON: `{"hosts": ["fd://", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
			changes: append([]string{
				`removed "tls": false (tlsverify supersedes it)`,
				`set "tlsverify": true (was false)`,
			}, setTLSChanges[1:]...),
		},
		{
			name:     "duplicate keys are collapsed",
			in:       `{"tlsverify": false, "hosts": ["fd://"], "tlsverify": true, "hosts": ["tcp://0.0.0.0:2376"]}`,
			wantJSON: `{"hosts": ["fd://", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name:     "sockets from the unit replace the default socket",
			in:       `{"debug": true}`,
			settings: &withSockets,
			wantJSON: `{"debug": true, "hosts": ["fd://", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name:    "malformed: trailing comma",
			in:      "{\n  \"debug\": true,\n}\n",
			wantErr: `invalid JSON at line 3, column 1: invalid character '}' looking for beginning of object key string`,
		},
		{
			name:    "malformed: unterminated",
			in:      "{\n  \"debug\": true\n",
			wantErr: `invalid JSON at line 2, column 16: unexpected end of JSON input`,
		},
		{
			name:    "malformed: comment",
			in:      "{\n  // no comments in JSON\n  \"debug\": true\n}",
			wantErr: `invalid JSON at line 2, column 3: invalid character '/' looking for beginning of object key string`,
		},
		{
			name:    "top level is not an object",
			in:      `["tcp://0.0.0.0:2376"]`,
			wantErr: `top level is a list, not an object`,
		},
		{
			name:     "UTF-8 byte order mark",
			in:       "\xEF\xBB\xBF{\"debug\": true}\n",
			wantJSON: `{"debug": true, "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], ` + tlsJSON + `}`,
		},
		{
			name: "CRLF line endings stay CRLF",
			in:   "{\r\n  \"debug\": true,\r\n  \"hosts\": [\r\n    \"fd://\"\r\n  ]\r\n}\r\n",
			wantOut: "{\r\n  \"debug\": true,\r\n  \"hosts\": [\r\n    \"fd://\",\r\n    \"tcp://0.0.0.0:2376\"\r\n  ],\r\n" +
				"  \"tlsverify\": true,\r\n  \"tlscacert\": \"/etc/docker/dtls/ca.pem\",\r\n  \"tlscert\": \"/etc/docker/dtls/server-cert.pem\",\r\n  \"tlskey\": \"/etc/docker/dtls/server-key.pem\"\r\n}\r\n",
		},
		{
			name: "tab-indented file stays tab-indented",
			in:   readTestdata(t, "daemon-tabs.json"),
			wantOut: "{\n\t\"debug\": true,\n\t\"log-opts\": {\n\t\t\"max-size\": \"10m\"\n\t},\n" +
				"\t\"hosts\": [\n\t\t\"unix:///var/run/docker.sock\",\n\t\t\"tcp://0.0.0.0:2376\"\n\t],\n" +
				"\t\"tlsverify\": true,\n\t\"tlscacert\": \"/etc/docker/dtls/ca.pem\",\n\t\"tlscert\": \"/etc/docker/dtls/server-cert.pem\",\n\t\"tlskey\": \"/etc/docker/dtls/server-key.pem\"\n}\n",
		},
		{
			name: "one-line file is opened up, values kept verbatim",
			in:   `{"debug":true,"log-opts":{"max-size":"10m"}}` + "\n",
			wantOut: "{\n  \"debug\":true,\n  \"log-opts\":{\"max-size\":\"10m\"},\n" +
				"  \"hosts\":[\n    \"unix:///var/run/docker.sock\",\n    \"tcp://0.0.0.0:2376\"\n  ],\n" +
				"  \"tlsverify\":true,\n  \"tlscacert\":\"/etc/docker/dtls/ca.pem\",\n  \"tlscert\":\"/etc/docker/dtls/server-cert.pem\",\n  \"tlskey\":\"/etc/docker/dtls/server-key.pem\"\n}\n",
		},
	}
}

func TestMerge(t *testing.T) {
	for _, tc := range mergeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings
			if tc.settings != nil {
				s = *tc.settings
			}
			out, changes, err := Merge([]byte(tc.in), s)
			if tc.wantErr != "" {
				assert.EqualError(t, err, tc.wantErr)
				assert.Nil(t, out)
				return
			}
			require.NoError(t, err)
			assert.NotEmpty(t, changes)
			if tc.wantOut != "" {
				assert.Equal(t, tc.wantOut, string(out))
			}
			if tc.wantJSON != "" {
				assert.JSONEq(t, tc.wantJSON, string(out))
			}
			if tc.changes != nil {
				assert.Equal(t, tc.changes, changes)
			}
			assert.False(t, strings.HasPrefix(string(out), "\xEF\xBB\xBF"), "byte order mark kept")
			if strings.Contains(tc.in, "\r\n") {
				assert.NotContains(t, strings.ReplaceAll(string(out), "\r\n", ""), "\n", "bare LF in a CRLF file")
			}

			again, changes2, err := Merge(out, s)
			require.NoError(t, err)
			assert.Equal(t, string(out), string(again), "second merge changed the file")
			assert.Empty(t, changes2, "second merge reported changes")
		})
	}
}

func TestMergeReportsBOM(t *testing.T) {
	_, changes, err := Merge([]byte("\xEF\xBB\xBF{}"), testSettings)
	require.NoError(t, err)
	assert.Contains(t, changes, "removed UTF-8 byte order mark (dockerd 20.10 cannot parse it)")
}

func TestMergeSyntaxErrorType(t *testing.T) {
	_, _, err := Merge([]byte("{\n\t\"a\": tru\n}"), testSettings)
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 2, se.Line)
	assert.Equal(t, 10, se.Column)
}

func TestMergeColumnCountsCharacters(t *testing.T) {
	// "é" is two bytes; editors show it as one column, so x is in column 7
	// (byte 8).
	_, _, err := Merge([]byte(`{"é": x}`), testSettings)
	assert.EqualError(t, err, `invalid JSON at line 1, column 7: invalid character 'x' looking for beginning of value`)
}

func TestMergeKeepsOtherValuesVerbatim(t *testing.T) {
	in := readTestdata(t, "daemon-mirrors.json")
	out, _, err := Merge([]byte(in), testSettings)
	require.NoError(t, err)
	for _, key := range []string{"registry-mirrors", "log-driver", "log-opts", "storage-driver", "live-restore"} {
		assert.Equal(t, gjson.Get(in, key).Raw, gjson.GetBytes(out, key).Raw, key)
	}
}

func TestMergeRejectsBadSettings(t *testing.T) {
	s := testSettings
	s.Key = "server-key.pem"
	_, _, err := Merge([]byte("{}"), s)
	assert.EqualError(t, err, `settings: tlskey "server-key.pem" is not an absolute path`)

	s = testSettings
	s.Listen = ""
	_, _, err = Merge([]byte("{}"), s)
	assert.EqualError(t, err, "settings: empty listen address")
}

func TestMergeRefusesCaseVariants(t *testing.T) {
	_, _, err := Merge([]byte(`{"TLSVerify": true}`), testSettings)
	assert.EqualError(t, err, `key "TLSVerify" is not a dockerd option (keys are case-sensitive; did you mean "tlsverify"?)`)
}

// TestMergeAuthzPlugin: the plugin is added to "authorization-plugins",
// created when absent, and the plugins already there are kept.
func TestMergeAuthzPlugin(t *testing.T) {
	s := Settings{Listen: "tcp://0.0.0.0:2376", CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", AuthzPlugin: "dtls-authz"}
	for _, tc := range []struct{ name, in, want string }{
		{"absent", `{}`, `["dtls-authz"]`},
		{"kept", `{"authorization-plugins": ["opa"]}`, `["opa","dtls-authz"]`},
		{"present", `{"authorization-plugins": ["dtls-authz"]}`, `["dtls-authz"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := Merge([]byte(tc.in), s)
			require.NoError(t, err)
			var v struct {
				Plugins []string `json:"authorization-plugins"`
			}
			require.NoError(t, json.Unmarshal(out, &v))
			var want []string
			require.NoError(t, json.Unmarshal([]byte(tc.want), &want))
			assert.Equal(t, want, v.Plugins)
		})
	}
	_, _, err := Merge([]byte(`{"authorization-plugins": 3}`), s)
	assert.ErrorContains(t, err, `"authorization-plugins" must be a list of strings`)
}

// In gateway mode dockerd keeps its local sockets only, its TLS settings
// stay, and moving back (the same settings without Gateway) restores the
// TCP listener.
func TestMergeGateway(t *testing.T) {
	s := Settings{Listen: "tcp://0.0.0.0:2376", CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", Gateway: true}
	for _, tc := range []struct {
		name, in string
		hosts    []string
		changes  []string
	}{
		{"fresh", `{}`, []string{DefaultSocket}, nil},
		{"moved", `{"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tlsverify": true}`,
			[]string{DefaultSocket}, []string{`removed "tcp://0.0.0.0:2376" from "hosts" (the dtls gateway serves TCP)`}},
		{"other tcp and bare", `{"hosts": ["fd://", "tcp://127.0.0.1:2375", "10.0.0.1:2376"]}`,
			[]string{"fd://"}, []string{`removed "tcp://127.0.0.1:2375" from "hosts" (the dtls gateway serves TCP)`, `removed "10.0.0.1:2376" from "hosts" (the dtls gateway serves TCP)`}},
		{"tcp only", `{"hosts": ["tcp://0.0.0.0:2376"]}`,
			[]string{DefaultSocket}, []string{`added "unix:///var/run/docker.sock" to "hosts" (the dtls gateway reaches dockerd there)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changes, err := Merge([]byte(tc.in), s)
			require.NoError(t, err)
			var v struct {
				Hosts     []string `json:"hosts"`
				TLSVerify bool     `json:"tlsverify"`
				TLSCert   string   `json:"tlscert"`
			}
			require.NoError(t, json.Unmarshal(out, &v), string(out))
			assert.Equal(t, tc.hosts, v.Hosts)
			assert.True(t, v.TLSVerify)
			assert.Equal(t, "/c/cert.pem", v.TLSCert)
			for _, c := range tc.changes {
				assert.Contains(t, changes, c)
			}
			again, more, err := Merge(out, s)
			require.NoError(t, err)
			assert.Equal(t, string(out), string(again), "not idempotent")
			assert.Empty(t, more)

			s2 := s
			s2.Gateway = false
			back, _, err := Merge(out, s2)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(back, &v))
			assert.Contains(t, v.Hosts, "tcp://0.0.0.0:2376")
		})
	}
}

// Group: set to root (init --local), idempotent, other keys kept; back
// to a recorded group, or taken out when there was none.
func TestMergeGroup(t *testing.T) {
	s := Settings{Listen: "tcp://0.0.0.0:2376", CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", Gateway: true,
		Group: GroupChange{Set: true, Name: "root"}}
	for _, tc := range []struct{ in, change string }{
		{`{"debug": true}`, `set "group": "root"`},
		{`{"group": "docker", "debug": true}`, `set "group": "root" (was "docker")`},
	} {
		out, changes, err := Merge([]byte(tc.in), s)
		require.NoError(t, err)
		var v struct {
			Group string `json:"group"`
			Debug bool   `json:"debug"`
		}
		require.NoError(t, json.Unmarshal(out, &v), string(out))
		assert.Equal(t, "root", v.Group)
		assert.True(t, v.Debug)
		assert.Contains(t, changes, tc.change)
		again, more, err := Merge(out, s)
		require.NoError(t, err)
		assert.Equal(t, string(out), string(again), "not idempotent")
		assert.Empty(t, more)

		back := s
		back.Group = GroupChange{Set: true, Name: "docker"}
		b, _, err := Merge(out, back)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &v))
		assert.Equal(t, "docker", v.Group)
		back.Group = GroupChange{Set: true}
		b, changes, err = Merge(out, back)
		require.NoError(t, err)
		assert.NotContains(t, string(b), `"group"`)
		assert.Contains(t, changes, `removed "group" (dockerd's default applies: docker)`)
	}
	out, _, err := Merge([]byte(`{"group": "staff"}`), Settings{Listen: s.Listen, CACert: s.CACert, Cert: s.Cert, Key: s.Key})
	require.NoError(t, err)
	assert.Contains(t, string(out), `"group": "staff"`, "left alone without Group.Set")
}
