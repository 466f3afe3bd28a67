package cmd

// Found by an attacker helper against the policy's endpoints other than
// a container's create and a build: a pull that replaced an image in
// another identity's namespace, and a network name made twice.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// fakeRegistry is a minimal Docker Registry v2 on the host's loopback
// that serves one image, name:tag, whose config carries labels: what
// anyone who controls a registry (a Docker Hub account, a registry
// container published on 127.0.0.1, a shared company registry) serves.
type fakeRegistry struct {
	addr string
	hits chan string
}

func startFakeRegistry(t *testing.T, name, tag string, labels map[string]string) *fakeRegistry {
	t.Helper()
	// One layer: a file /planted.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	content := []byte("planted by bob\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "planted", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}))
	_, _ = tw.Write(content)
	require.NoError(t, tw.Close())
	diff := sha256.Sum256(layer.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(layer.Bytes())
	require.NoError(t, zw.Close())
	layerDigest := "sha256:" + hex.EncodeToString(sha256Sum(gz.Bytes()))
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": labels, "Cmd": []string{"/planted"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	cfgDigest := "sha256:" + hex.EncodeToString(sha256Sum(cfg))
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg), "digest": cfgDigest},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz.Len(), "digest": layerDigest}},
	})
	manDigest := "sha256:" + hex.EncodeToString(sha256Sum(manifest))
	blobs := map[string][]byte{cfgDigest: cfg, layerDigest: gz.Bytes()}
	fr := &fakeRegistry{hits: make(chan string, 64)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fr.addr = ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		select {
		case fr.hits <- q.Method + " " + q.URL.Path:
		default:
		}
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		p := q.URL.Path
		switch {
		case p == "/v2/" || p == "/v2":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
		case p == "/v2/"+name+"/manifests/"+tag || p == "/v2/"+name+"/manifests/"+manDigest:
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", manDigest)
			w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
			if q.Method != http.MethodHead {
				_, _ = w.Write(manifest)
			}
		case strings.HasPrefix(p, "/v2/"+name+"/blobs/"):
			b, ok := blobs[strings.TrimPrefix(p, "/v2/"+name+"/blobs/")]
			if !ok {
				http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			if q.Method != http.MethodHead {
				_, _ = w.Write(b)
			}
		default:
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return fr
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestRedTeamAuthz5: holes found by attacker helpers in the policy's
// endpoints other than a container's create and a build, each closed;
// one plugin and dockerd for all (startRedTeam2), cici (role ci, which
// builds) and bob (developer) beside dev.
func TestRedTeamAuthz5(t *testing.T) {
	r := startRedTeam2(t)
	policyPath := filepath.Join(filepath.Dir(r.audit), "authz-policy.json")
	require.NoError(t, atomicfile.Write(policyPath, []byte(redTeam3Policy(r.work)), 0o644))
	for name, role := range map[string]string{"cici": "ci", "bob": "developer"} {
		_, stderr, code := dtls(t, time.Now(), "issue-client", name, "--role", role, "--policy", policyPath, "--state-dir", r.state, "--out", filepath.Join(r.bundle, name))
		require.Equal(t, 0, code, stderr)
		r.client[name] = rawClient(t, filepath.Join(r.bundle, name))
	}

	// Refused: a developer replaced an image in another identity's
	// namespace by pulling it. The policy keeps each identity's images in
	// its own namespace: a build tags only NAME/... (tagProblem), a tag
	// and a load are admin's, because they "can replace an image others
	// run"; a pull (POST /images/create?fromImage=) writes the tag it
	// pulls too, and was not checked. bob pulled
	// 127.0.0.1:PORT/cici/app:1 from a registry he controls (his registry
	// container published on the host's loopback): the image cici built
	// under her name became his, and her next run of it ran his code with
	// her mounts and networks.
	t.Run("Refused_pull_into_anothers_namespace", func(t *testing.T) {
		reg := startFakeRegistry(t, "cici/app", "1", map[string]string{"planted-by": "bob"})
		ref := reg.addr + "/cici/app:1"
		// cici builds her image, in her namespace (allowed: tagProblem),
		// once the policy file written above is in force.
		deadline := time.Now().Add(10 * time.Second)
		var code int
		var body string
		for {
			code, body = r.raw("cici", "POST", "/v1.41/build?rm=1&t="+url.QueryEscape(ref), "application/x-tar",
				buildContext(t, "FROM tiny:1\nLABEL built-by=cici\n"))
			if code == 200 && !strings.Contains(body, `"error"`) {
				break
			}
			require.True(t, time.Now().Before(deadline), "cici's build: %d %s", code, tailString(body, 300))
			time.Sleep(100 * time.Millisecond)
		}
		label := func() string {
			out, _ := r.as("root-admin", "image", "inspect", "-f", `{{json .Config.Labels}}`, ref)
			return strings.TrimSpace(out)
		}
		before := label()
		require.Contains(t, before, "built-by", "cici's image: %s", before)

		code, body = r.raw("bob", "POST", "/v1.41/images/create?fromImage="+url.QueryEscape(reg.addr+"/cici/app")+"&tag=1", "", "")
		after := label()
		assert.Equal(t, 403, code, "bob (developer) pulled into cici's namespace: %s", tailString(body, 300))
		assert.NotContains(t, after, "planted-by", "bob replaced cici's image %s with his own", ref)
		assert.Contains(t, after, "built-by", "cici's image %s is no longer hers", ref)
		// Nor may he remove it, by its name or its ID.
		id, err := r.as("root-admin", "image", "inspect", "-f", "{{.Id}}", ref)
		require.NoError(t, err, id)
		for _, name := range []string{ref, strings.TrimSpace(id)} {
			code, body = r.raw("bob", "DELETE", "/v1.41/images/"+name, "", "")
			assert.Equal(t, 403, code, "bob removed cici's image by %s: %s", name, tailString(body, 200))
		}
		assert.Contains(t, label(), "built-by", "cici's image %s is gone", ref)
	})

	// Refused: bob created a network under the name of dev's
	// (CheckDuplicate false, which dockerd 20.10 only warns about), and
	// dev could no longer use its own network by name: dockerd, and the
	// policy's lookup through it, found the name ambiguous.
	t.Run("Refused_duplicate_network_name", func(t *testing.T) {
		r.must("dev", "network", "create", "devnet-d")
		_, err := r.as("dev", "run", "--rm", "--network", "devnet-d", "tool:1", "/tool", "euid")
		require.NoError(t, err, "dev cannot use its own network before the attack")
		code, body := r.raw("bob", "POST", "/v1.41/networks/create", "application/json", `{"Name":"devnet-d","CheckDuplicate":false}`)
		assert.Equal(t, 403, code, "bob made a second network named like dev's: %s", tailString(body, 200))
		out, err := r.as("dev", "run", "--rm", "--network", "devnet-d", "tool:1", "/tool", "euid")
		assert.NoError(t, err, "dev can no longer use its own network devnet-d: %s", tailString(out, 300))
	})

	// Refused (found re-attacking the volume rules): the policy took an
	// "o" item that lower-cases and trims to "bind" ("BIND", " bind")
	// for a bind of a host path it judged, but dockerd takes a mount flag
	// by its exact name (moby/sys/mount parseOptions): "BIND" is
	// file-system data, and the volume a new mount of its type, the
	// host's debugfs with tracefs inside, in a developer's container.
	t.Run("Refused_local_volume_bind_spelling", func(t *testing.T) {
		for i, o := range []string{"BIND", " bind"} {
			name := fmt.Sprintf("spelt%d", i)
			opts, err := json.Marshal(map[string]any{"Name": name, "Driver": "local",
				"DriverOpts": map[string]string{"type": "debugfs", "device": r.ws, "o": o}})
			require.NoError(t, err)
			code, body := r.raw("dev", "POST", "/v1.41/volumes/create", "application/json", string(opts))
			assert.Equal(t, 403, code, "a debugfs volume with o=%q: %s", o, tailString(body, 300))
			assert.Contains(t, body, `of type \"debugfs\"`)
			_, err = r.as("root-admin", "volume", "inspect", name)
			assert.Error(t, err, "dockerd made the refused volume %s", name)
		}
	})
}
