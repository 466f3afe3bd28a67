package cmd

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// tool3Source is a third static program for the attack containers:
// dial reads the first line a TCP address answers.
const tool3Source = `package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	switch os.Args[1] {
	case "dial": // dial ADDR
		c, err := net.DialTimeout("tcp", os.Args[2], 2*time.Second)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(1)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 256))
		fmt.Printf("got: %s\n", b)
	}
}
`

func buildTool3(t *testing.T) string { return buildStatic(t, "tool3", tool3Source) }

// buildContext is a tar build context holding only a Dockerfile.
func buildContext(t *testing.T, dockerfile string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg}))
	_, err := tw.Write([]byte(dockerfile))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	return buf.String()
}

// redTeam3Policy is the policy of the third round: the bind roots of the
// second, and roles a policy file defines on top of the built-in ones.
func redTeam3Policy(work string) string {
	return fmt.Sprintf(`{
  "default_role": "readonly",
  "bind_roots": [%q],
  "roles": {
    "ci":       {"base": "developer", "capabilities": ["build"]},
    "guard":    {"base": "developer", "deny": ["POST /containers/keep/stop", "DELETE /containers/keep"]},
    "deployer": {"base": "readonly", "allow": ["POST /containers/db/restart"]},
    "execer":   {"base": "readonly", "allow": ["POST /containers/web/exec", "POST /exec/{id}/start"]}
  }
}
`, filepath.Join(work, "{user}"))
}

// mustT is must failing the subtest t, not the test that made r.
func (r *redTeam2) mustT(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := r.as(name, args...)
	require.NoError(t, err, "%s: docker %s: %s", name, strings.Join(args, " "), out)
	return strings.TrimSpace(out)
}

// local sends a request over the sandbox dockerd's unix socket, as a
// local caller does.
func (r *redTeam2) local(method, path, body string) (int, string) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://docker"+path, rd)
	require.NoError(r.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.d.Client().Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// setPolicy writes a policy and waits until ready says it is in force.
func setPolicy(t *testing.T, path, pol string, ready func() bool) {
	t.Helper()
	require.NoError(t, atomicfile.Write(path, []byte(pol), 0o644))
	deadline := time.Now().Add(10 * time.Second)
	for !ready() {
		require.True(t, time.Now().Before(deadline), "the policy was not loaded: %s", pol)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedTeamAuthz3 is the third round, after the fixes TestRedTeamAuthz
// and TestRedTeamAuthz2 hold: roles a policy file defines (allow and deny
// rules naming an object, the build capability), the policy going bad, a
// role changed under a running container, routes at the edge of the
// table, the owners' book on disk. Refused shapes are regression checks;
// each way in, now closed, is a subtest named Attack_* (its
// comment has the reproducer); Finding_* log what
// reaches the host or other users by design. Shapes tried: a deny rule's
// name evaded by the ID; an allow rule's hexadecimal name resolved as an
// ID prefix; an allow rule's exec into a container the role could not
// create; POST /build with networkmode=container:X and =NETWORK, and
// remote=URL; max_pids; an invalid and a renamed-role policy; dtls role
// under a running container; checkpoints, /session, /grpc, /build/prune,
// HEAD of logs, attach, attach/ws, wait?condition=removed, resize, update,
// PUT archive, PUT /volumes; "unix": "deny" and "role:developer"; a name
// revoked and issued again; /distribution to a loopback registry; the
// book's mode and a dockerd restart; the lookup header in the audit log.
func TestRedTeamAuthz3(t *testing.T) {
	t.Parallel()
	r := startRedTeam2(t)
	importImage(t, r.d, "tool3:1", map[string]string{"tool3": buildTool3(t), "tool2": buildTool2(t), "tool": buildTool(t)})
	policyPath := filepath.Join(filepath.Dir(r.audit), "authz-policy.json")
	pol := redTeam3Policy(r.work)
	require.NoError(t, atomicfile.Write(policyPath, []byte(pol), 0o644))
	for name, role := range map[string]string{"cici": "ci", "gus": "guard", "dina": "deployer", "eve": "execer"} {
		_, stderr, code := dtls(t, time.Now(), "issue-client", name, "--role", role, "--policy", policyPath, "--state-dir", r.state, "--out", filepath.Join(r.bundle, name))
		require.Equal(t, 0, code, stderr)
		r.client[name] = rawClient(t, filepath.Join(r.bundle, name))
	}
	// The new policy is in force once gus's role is known to it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := r.as("gus", "run", "-d", "--name", "keep", "tool:1", "/tool", "sleep")
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the policy with roles was not loaded: %s", out)
		_, _ = r.as("root-admin", "rm", "-f", "keep")
		time.Sleep(50 * time.Millisecond)
	}
	code, body := r.raw("gus", "POST", "/v1.41/containers/keep/stop?t=0", "", "")
	require.Equal(t, 403, code, "guard's deny rule for keep: %s", body)
	adminBox := r.must("root-admin", "run", "-d", "--name", "adminbox", "tool:1", "/tool", "sleep")
	devBox := r.must("dev", "run", "-d", "--name", "devbox", "tool:1", "/tool", "sleep")

	// Bypass: a deny rule names a container by its name ("keep"); the
	// same container named by its ID, or an ID prefix, is another
	// request path, which the rule's literal does not match, and dockerd
	// acts on the container all the same.
	//
	// Reproducer (policy role "guard": {"base": "developer", "deny":
	// ["POST /containers/keep/stop", "DELETE /containers/keep"]}):
	//
	//	docker run -d --name keep alpine sleep 1d     # as a guard holder
	//	docker stop keep                              # denied
	//	docker stop $(docker inspect -f '{{.Id}}' keep)   # stopped
	//	docker rm -f $(docker inspect -f '{{.Id}}' keep)  # removed
	//
	// Fix direction: a rule's literal that spells a container, network or
	// volume variable matches the object the request's reference
	// resolves to (look it up: its ID and name), not the reference's
	// text; or refuse literals for object variables in deny rules.
	t.Run("Attack_deny_rule_naming_a_container_evaded_by_its_id", func(t *testing.T) {
		keepID := r.mustT(t, "root-admin", "inspect", "-f", "{{.Id}}", "keep")
		for _, ref := range []string{keepID, keepID[:12]} {
			code, body := r.raw("gus", "POST", "/v1.41/containers/"+ref+"/stop?t=0", "", "")
			assert.Equal(t, 403, code, "guard stopped keep by %s despite its deny rule: %s", ref, body)
			_, _ = r.as("root-admin", "start", "keep")
		}
	})

	// Bypass: an allow rule names a container by a name that reads as an
	// ID prefix ("db", "cafe", "beef", "add", "feed"...). An allow rule
	// lifts the ownership rule, and with it the check that a hexadecimal
	// reference found by name is not also an ID prefix (check.go owned).
	// When no container is named "db" (removed, being recreated, renamed)
	// dockerd resolves "db" as an ID prefix: the rule then restarts (and
	// so starts) whatever container's ID begins with "db".
	//
	// Reproducer (role "deployer": {"base": "readonly", "allow":
	// ["POST /containers/db/restart"]}; no container named db):
	//
	//	# admin: any stopped container whose ID starts with db
	//	while id=$(docker create alpine sleep 1d); do
	//	    case $id in db*) break;; esac; docker rm $id; done
	//	# deployer:
	//	curl --cert ... -X POST https://host:2376/v1.41/containers/db/restart
	//	docker ps     # admin's container runs
	//
	// Fix direction: with an allow rule whose literal spells the object,
	// resolve the reference and require that the object found has that
	// name (or ID); refuse a hexadecimal reference found as an ID prefix
	// when the rule names a container by name.
	t.Run("Attack_allow_rule_for_a_name_reaches_an_id_prefix", func(t *testing.T) {
		// The rule's name is made from the victim's ID rather than the
		// victim found for the name "db": the same shape, with one create
		// instead of 256 on average.
		hit := r.mustT(t, "root-admin", "create", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", hit) })
		prefix := uniqueIDPrefix(t, r, hit)
		deployer := strings.Replace(pol, `"allow": ["POST /containers/db/restart"]`,
			fmt.Sprintf(`"allow": ["POST /containers/%s/restart"], "deny": ["GET /version"]`, prefix), 1)
		require.NotEqual(t, pol, deployer, "the deployer's role is not in the policy")
		// In force when dina's GET /version, which only the new policy
		// denies, is refused.
		t.Cleanup(func() {
			setPolicy(t, policyPath, pol, func() bool { code, _ := r.raw("dina", "GET", "/v1.41/version", "", ""); return code == 200 })
		})
		setPolicy(t, policyPath, deployer, func() bool { code, _ := r.raw("dina", "GET", "/v1.41/version", "", ""); return code == 403 })
		code, body := r.raw("dina", "POST", "/v1.41/containers/"+prefix+"/restart?t=0", "", "")
		running := r.mustT(t, "root-admin", "inspect", "-f", "{{.State.Running}}", hit)
		assert.False(t, code == 204 || running == "true",
			"the deployer's rule for the container named %s started admin's container %.12s (answer %d %s, running %s)", prefix, hit, code, body, running)
	})

	// Bypass: the build capability's POST /build takes networkmode from
	// its query; "container:NAME" puts every RUN step in the network
	// namespace of any container, an admin's included, where its
	// loopback services (bound to 127.0.0.1, never published) answer.
	// README says build runs with the daemon's network (host), not in
	// other identities' containers.
	//
	// Reproducer (role "ci": {"base": "developer", "capabilities":
	// ["build"]}; admin's container "adminsrv" listens on 127.0.0.1:7777):
	//
	//	printf 'FROM alpine\nRUN nc 127.0.0.1 7777\n' | \
	//	    DOCKER_BUILDKIT=0 docker build --network container:adminsrv -
	//
	// Fix direction: check the query of POST /build: networkmode only
	// "default", "bridge", "none" or "host" (or a network of the
	// caller's), never "container:X" unless X is the caller's; and the
	// other HostConfig the classic builder takes from the query
	// (cgroupparent, ulimits, isolation, extrahosts).
	t.Run("Attack_build_network_joins_admins_container", func(t *testing.T) {
		srv := r.mustT(t, "root-admin", "run", "-d", "--name", "adminsrv", "tool3:1", "/tool2", "serve", "127.0.0.1:7777", "admin-secret-77")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", srv) })
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := r.as("root-admin", "exec", srv, "/tool3", "dial", "127.0.0.1:7777")
			if strings.Contains(out, "admin-secret-77") {
				break
			}
			require.True(t, time.Now().Before(deadline), "admin's service did not answer: %s", out)
			time.Sleep(100 * time.Millisecond)
		}
		ctx := buildContext(t, "FROM tool3:1\nRUN [\"/tool3\", \"dial\", \"127.0.0.1:7777\"]\n")
		code, body := r.raw("dev", "POST", "/v1.41/build?rm=1&forcerm=1&networkmode=container:"+srv, "application/x-tar", ctx)
		assert.Equal(t, 403, code, "developer without the build capability built: %s", tailString(body, 300))
		code, body = r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&networkmode=container:"+srv, "application/x-tar", ctx)
		assert.NotContains(t, body, "admin-secret-77",
			"a build of the ci role ran in admin's container's network and read its loopback service (answer %d)", code)
		t.Logf("build with networkmode=container: answered %d: %s", code, tailString(body, 300))
	})

	// Bypass: the same query field names a user-defined network: every
	// RUN step of the build joins admin's network, whose containers
	// answer there by name (round one closed "network connect" of a
	// developer's container to admin's network; the build is another
	// door to it).
	//
	// Reproducer (role "ci" as above; admin: docker network create
	// adminnet; docker run -d --network adminnet --name adminweb ...):
	//
	//	printf 'FROM alpine\nRUN wget -qO- http://adminweb:7777/\n' | \
	//	    DOCKER_BUILDKIT=0 docker build --network adminnet -
	//
	// Fix direction: as above; a network in networkmode must be one the
	// caller created (checkNetworkName).
	t.Run("Attack_build_network_joins_admins_network", func(t *testing.T) {
		r.mustT(t, "root-admin", "network", "create", "adminnet3")
		t.Cleanup(func() {
			_, _ = r.as("root-admin", "rm", "-f", "adminweb3")
			_, _ = r.as("root-admin", "network", "rm", "adminnet3")
		})
		web := r.mustT(t, "root-admin", "run", "-d", "--name", "adminweb3", "--network", "adminnet3", "tool3:1", "/tool2", "serve", "0.0.0.0:7777", "admin-net-secret-3")
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := r.as("root-admin", "exec", web, "/tool3", "dial", "127.0.0.1:7777")
			if strings.Contains(out, "admin-net-secret-3") {
				break
			}
			require.True(t, time.Now().Before(deadline), "admin's service did not answer: %s", out)
			time.Sleep(100 * time.Millisecond)
		}
		ctx := buildContext(t, "FROM tool3:1\nRUN [\"/tool3\", \"dial\", \"adminweb3:7777\"]\n")
		code, body := r.raw("cici", "POST", "/v1.41/build?rm=1&forcerm=1&nocache=1&networkmode=adminnet3", "application/x-tar", ctx)
		assert.NotContains(t, body, "admin-net-secret-3",
			"a build of the ci role joined admin's network and reached its container by name (answer %d)", code)
		t.Logf("build with networkmode=adminnet3 answered %d: %s", code, tailString(body, 300))
	})

	// Attack: an allow rule lifts the ownership rule; it used to lift the
	// "live" check too (that the container is one the role could create),
	// so a readonly-based role allowed to exec into the container "web"
	// got what web holds: host paths no role but admin may mount. The
	// live check now stays in force under an allow rule.
	t.Run("Attack_allow_rule_exec_skips_the_live_check", func(t *testing.T) {
		r.mustT(t, "root-admin", "run", "-d", "-v", filepath.Dir(r.secret)+":/hostsecret:ro", "--name", "web", "tool:1", "/tool", "sleep")
		t.Cleanup(func() { _, _ = r.as("root-admin", "rm", "-f", "web") })
		// The docker CLI inspects first (an owned route): the raw API
		// sends only what the rules name.
		code, body := r.raw("eve", "POST", "/v1.41/containers/web/exec", "application/json",
			`{"Cmd":["/tool","read","/hostsecret/shadow","14"],"AttachStdout":true,"AttachStderr":true,"Tty":true}`)
		assert.Equal(t, 403, code, "an exec through an allow rule into a container the role could not create: %s", body)
		assert.Contains(t, body, "is not one this role could create now")
		code, body = r.raw("eve", "POST", "/v1.41/containers/web/exec", "application/json", `{"Cmd":["/tool","euid"],"Privileged":true}`)
		assert.Equal(t, 403, code, "a privileged exec went through an allow rule: %s", body)
	})

	// Checked: a policy that does not parse denies every TCP request
	// (fail closed) until it is fixed, then the fixed one applies.
	t.Run("Checked_invalid_policy_denies_tcp", func(t *testing.T) {
		require.NoError(t, atomicfile.Write(policyPath, []byte(`{"default_role": "readonly", "roles": {`), 0o644))
		t.Cleanup(func() { _ = atomicfile.Write(policyPath, []byte(pol), 0o644) })
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("rita", "GET", "/v1.41/containers/json", "", "")
			if code == 403 {
				break
			}
			require.True(t, time.Now().Before(deadline), "an invalid policy still let readonly list containers")
			time.Sleep(50 * time.Millisecond)
		}
		code, body := r.raw("root-admin", "GET", "/v1.41/containers/json", "", "")
		assert.Equal(t, 403, code, "admin's request went through an invalid policy: %s", body)
		require.NoError(t, atomicfile.Write(policyPath, []byte(pol), 0o644))
		deadline = time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("rita", "GET", "/v1.41/containers/json", "", "")
			if code == 200 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the fixed policy was not loaded again")
			time.Sleep(50 * time.Millisecond)
		}
	})

	// Checked: a role changed while its holder's container runs is judged
	// live: dev turned readonly can no longer exec into devbox, and gets
	// it back with developer.
	t.Run("Checked_role_change_rejudges_exec", func(t *testing.T) {
		_, stderr, code := dtls(t, time.Now(), "role", "dev", "readonly", "--policy", policyPath, "--state-dir", r.state)
		require.Equal(t, 0, code, stderr)
		t.Cleanup(func() {
			_, _, _ = dtls(t, time.Now(), "role", "dev", "developer", "--policy", policyPath, "--state-dir", r.state)
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := r.as("dev", "exec", devBox, "/tool", "euid")
			if err != nil && strings.Contains(out, "authorization denied") {
				break
			}
			require.True(t, time.Now().Before(deadline), "dev turned readonly still execs into its container: %s", out)
			time.Sleep(100 * time.Millisecond)
		}
		_, stderr, code = dtls(t, time.Now(), "role", "dev", "developer", "--policy", policyPath, "--state-dir", r.state)
		require.Equal(t, 0, code, stderr)
		deadline = time.Now().Add(10 * time.Second)
		for {
			if _, err := r.as("dev", "exec", devBox, "/tool", "euid"); err == nil {
				break
			}
			require.True(t, time.Now().Before(deadline), "dev made developer again cannot exec into its container")
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Checked: routes at the edge of the table, for another's container
	// and for routes only admin or a capability has.
	t.Run("Checked_routes_at_the_edge_of_the_table", func(t *testing.T) {
		for _, c := range []struct{ name, method, path, ctype, body string }{
			{"dev", "POST", "/v1.41/containers/" + devBox + "/checkpoints", "application/json", `{"CheckpointID":"c1","Exit":false}`},
			{"dev", "GET", "/v1.41/containers/" + devBox + "/checkpoints", "", ""},
			{"dev", "DELETE", "/v1.41/containers/" + devBox + "/checkpoints/c1", "", ""},
			{"dev", "POST", "/v1.41/session", "", ""},
			{"dev", "POST", "/v1.41/grpc", "", ""},
			{"dev", "POST", "/v1.41/build/prune", "", ""},
			{"dev", "HEAD", "/v1.41/containers/" + adminBox + "/logs?stdout=1", "", ""},
			{"dev", "GET", "/v1.41/containers/" + adminBox + "/attach/ws?stream=1&stdin=1", "", ""},
			{"dev", "POST", "/v1.41/containers/" + adminBox + "/attach?stream=1&stdin=1&stdout=1", "", ""},
			{"dev", "POST", "/v1.41/containers/" + adminBox + "/wait?condition=removed", "", ""},
			{"dev", "POST", "/v1.41/containers/" + adminBox + "/resize?h=10&w=10", "", ""},
			{"dev", "POST", "/v1.41/containers/" + devBox + "/update", "application/json", `{"PidsLimit":-1}`},
			{"dev", "PUT", "/v1.41/containers/" + devBox + "/archive?path=/", "application/x-tar", "x"},
			{"dev", "PUT", "/v1.41/volumes/x", "application/json", `{}`},
			{"rita", "GET", "/v1.41/containers/" + adminBox + "/attach/ws?stream=1&stdin=1", "", ""},
			{"dina", "POST", "/v1.41/containers/adminbox/restart", "", ""},
			{"dina", "POST", "/v1.41/containers/" + adminBox + "/restart", "", ""},
			{"cici", "POST", "/v1.41/containers/" + adminBox + "/exec", "application/json", `{"Cmd":["/tool","euid"]}`},
		} {
			// 403 from the plugin, or 404 from dockerd's router for a
			// route dockerd 20.10 does not have (HEAD of a GET route, PUT
			// /volumes), which never reaches an authorization plugin.
			code, body := r.raw(c.name, c.method, c.path, c.ctype, c.body)
			assert.Contains(t, []int{403, 404}, code, "%s %s %s: %s", c.name, c.method, c.path, tailString(body, 200))
		}
	})

	// Checked: a role renamed in the policy leaves its holders with an
	// unknown role: denied, not the default role.
	t.Run("Checked_renamed_role_is_denied", func(t *testing.T) {
		renamed := strings.Replace(pol, `"guard":`, `"guardian":`, 1)
		require.NoError(t, atomicfile.Write(policyPath, []byte(renamed), 0o644))
		t.Cleanup(func() { _ = atomicfile.Write(policyPath, []byte(pol), 0o644) })
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("gus", "GET", "/v1.41/containers/json", "", "")
			if code == 403 {
				break
			}
			require.True(t, time.Now().Before(deadline), "a holder of a role the policy no longer defines still lists containers")
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, atomicfile.Write(policyPath, []byte(pol), 0o644))
		deadline = time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("gus", "GET", "/v1.41/containers/json", "", "")
			if code == 200 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the policy was not loaded again")
			time.Sleep(50 * time.Millisecond)
		}
	})

	// Defect (not a way in: it fails closed): with max_pids set, every
	// create of a role that is not admin is refused, --pids-limit within
	// the limit included. check.go checks the body's top-level
	// HostConfig fields (the pre-1.24 shape, which dockerd reads only
	// when HostConfig is absent: moby runconfig ContainerConfigWrapper
	// getHostConfig) as well as HostConfig, and checkPids reads a
	// top-level PidsLimit that no client sends as "none".
	//
	// Reproducer (policy "max_pids": 100):
	//
	//	docker create --pids-limit 100 alpine true   # denied: "got 0 (0 is none)"
	//
	// Fix direction: judge the pids limit of the HostConfig dockerd will
	// use (HostConfig when present, else the top level), not of both.
	// The exec into a container made before max_pids (no limit) is
	// allowed by design (check.go: the pids limit of an existing
	// container is not re-judged); logged.
	t.Run("Attack_max_pids_refuses_every_create", func(t *testing.T) {
		withPids := strings.Replace(pol, `"default_role": "readonly",`, `"default_role": "readonly", "max_pids": 100,`, 1)
		require.NoError(t, atomicfile.Write(policyPath, []byte(withPids), 0o644))
		t.Cleanup(func() { _ = atomicfile.Write(policyPath, []byte(pol), 0o644) })
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := r.as("dev", "create", "tool:1", "/tool", "sleep")
			if err != nil && strings.Contains(out, "PidsLimit") {
				break
			}
			if err == nil {
				_, _ = r.as("dev", "rm", strings.TrimSpace(out))
			}
			require.True(t, time.Now().Before(deadline), "max_pids was not applied: %s", out)
			time.Sleep(50 * time.Millisecond)
		}
		for _, lim := range []string{"0", "-1", "101"} {
			out, err := r.as("dev", "create", "--pids-limit", lim, "tool:1", "/tool", "sleep")
			assert.Error(t, err, "--pids-limit %s under max_pids 100: %s", lim, out)
			if err == nil {
				_, _ = r.as("dev", "rm", strings.TrimSpace(out))
			}
		}
		code, body := r.raw("dev", "POST", "/v1.41/containers/create", "application/json",
			`{"Image":"tool:1","Cmd":["/tool","sleep"],"PidsLimit":50,"HostConfig":{"PidsLimit":50}}`)
		t.Logf("a body with PidsLimit at the top level too: %d %s", code, tailString(body, 200))
		if code == 201 {
			var c struct {
				ID string `json:"Id"`
			}
			_ = json.Unmarshal([]byte(body), &c)
			_, _ = r.as("dev", "rm", c.ID)
		}
		out, err := r.as("dev", "exec", devBox, "/tool", "euid")
		t.Logf("exec into a container made before max_pids (no pids limit): err %v, %s", err, tailString(out, 120))
		out, err = r.as("dev", "create", "--pids-limit", "100", "tool:1", "/tool", "sleep")
		if err == nil {
			_, _ = r.as("dev", "rm", strings.TrimSpace(out))
		}
		assert.NoError(t, err, "--pids-limit 100 under max_pids 100 is refused: %s", out)
	})

	// Checked: the audit log never holds the plugin's lookup secret (the
	// header's name is logged nowhere either).
	t.Run("Checked_lookup_header_not_in_audit_log", func(t *testing.T) {
		b, err := os.ReadFile(r.audit)
		require.NoError(t, err)
		assert.NotContains(t, strings.ToLower(string(b)), "x-dtls-authz-lookup")
	})

	// Checked: the owners' book is 0600 in a 0700 state directory.
	t.Run("Checked_owners_book_mode", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(r.state, "authz-owners.json"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		di, err := os.Stat(r.state)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	})

	// Checked: "unix": "deny" refuses the local socket but not the
	// plugin's own lookups through it, so the ownership rule still works.
	t.Run("Checked_unix_deny_keeps_the_plugins_lookups", func(t *testing.T) {
		denyUnix := strings.Replace(pol, `"default_role": "readonly",`, `"default_role": "readonly", "unix": "deny",`, 1)
		t.Cleanup(func() {
			setPolicy(t, policyPath, pol, func() bool { code, _ := r.local("GET", "/v1.41/containers/json", ""); return code == 200 })
		})
		setPolicy(t, policyPath, denyUnix, func() bool { code, _ := r.local("GET", "/v1.41/containers/json", ""); return code == 403 })
		code, body := r.raw("dev", "GET", "/v1.41/containers/"+devBox+"/json", "", "")
		assert.Equal(t, 200, code, "dev's inspect of its own container under unix deny: %s", tailString(body, 200))
		code, body = r.raw("dev", "GET", "/v1.41/containers/"+adminBox+"/json", "", "")
		assert.Equal(t, 403, code, "dev's inspect of admin's container under unix deny: %s", tailString(body, 200))
	})

	// Checked: "unix": "role:developer": the local socket is one owner,
	// "unix:", apart from every certificate: it cannot touch dev's
	// containers nor dev its own. All local callers share that owner (by
	// design: dockerd sends no identity for the socket).
	t.Run("Checked_unix_role_developer_is_one_owner_apart", func(t *testing.T) {
		asDev := strings.Replace(pol, `"default_role": "readonly",`, `"default_role": "readonly", "unix": "role:developer",`, 1)
		t.Cleanup(func() {
			setPolicy(t, policyPath, pol, func() bool {
				code, _ := r.local("POST", "/v1.41/containers/"+adminBox+"/pause", "")
				return code != 403
			})
			_, _ = r.as("root-admin", "unpause", adminBox)
		})
		setPolicy(t, policyPath, asDev, func() bool {
			code, _ := r.local("GET", "/v1.41/containers/"+adminBox+"/json", "")
			return code == 403
		})
		code, body := r.local("POST", "/v1.41/containers/create?name=localbox", `{"Image":"tool:1","Cmd":["/tool","sleep"]}`)
		require.Equal(t, 201, code, body)
		code, body = r.raw("dev", "DELETE", "/v1.41/containers/localbox?force=1", "", "")
		assert.Equal(t, 403, code, "dev removed the local socket's container: %s", body)
		code, body = r.local("DELETE", "/v1.41/containers/"+devBox+"?force=1", "")
		assert.Equal(t, 403, code, "the local socket removed dev's container: %s", body)
		code, body = r.local("POST", "/v1.41/containers/create", `{"Image":"tool:1","HostConfig":{"Privileged":true}}`)
		assert.Equal(t, 403, code, "the local socket as developer made a privileged container: %s", body)
		code, body = r.local("DELETE", "/v1.41/containers/localbox?force=1", "")
		assert.Equal(t, 204, code, "the local socket could not remove its own container: %s", body)
	})

	// Finding: a name revoked and issued again owns what the old
	// certificate made: ownership is the certificate's name.
	t.Run("Finding_reissued_name_inherits_containers", func(t *testing.T) {
		old := r.client["gus"]
		_, stderr, code := dtls(t, time.Now(), "revoke", "gus", "--state-dir", r.state)
		require.Equal(t, 0, code, stderr)
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := r.raw("gus", "GET", "/v1.41/containers/json", "", "")
			if code == 403 {
				break
			}
			require.True(t, time.Now().Before(deadline), "gus's revoked certificate still works")
			time.Sleep(50 * time.Millisecond)
		}
		newBundle := filepath.Join(r.bundle, "gus-again")
		_, stderr, code = dtls(t, time.Now(), "issue-client", "gus", "--role", "guard", "--policy", policyPath, "--state-dir", r.state, "--out", newBundle)
		if code != 0 {
			t.Logf("issue-client of a revoked name refused: %s", stderr)
			return
		}
		r.client["gus"] = rawClient(t, newBundle)
		t.Cleanup(func() { r.client["gus"] = old })
		c, body := r.raw("gus", "GET", "/v1.41/containers/keep/json", "", "")
		t.Logf("FINDING: a new certificate for the revoked name gus inspects the old one's container keep: %d %s", c, tailString(body, 80))
	})

	// Finding: the build capability's POST /build?remote=URL makes
	// dockerd fetch any URL, the host's loopback included.
	t.Run("Finding_build_remote_context_fetched_by_the_daemon", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		hits := make(chan string, 4)
		var accepted atomic.Bool
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Store(true)
				b := make([]byte, 512)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _ := c.Read(b)
				c.Close()
				select {
				case hits <- string(b[:n]):
				default:
				}
			}
		}()
		code, body := r.raw("dev", "POST", "/v1.41/build?remote=http://"+ln.Addr().String()+"/ctx.tar", "", "")
		assert.Equal(t, 403, code, "developer without the build capability: %s", body)
		code, body = r.raw("cici", "POST", "/v1.41/build?remote=http://"+ln.Addr().String()+"/ctx.tar", "", "")
		// dockerd fetches the context before it answers the build: with
		// no connection accepted by then (and a moment after, for the
		// accepting goroutine), none comes.
		wait := 500 * time.Millisecond
		if accepted.Load() {
			wait = 5 * time.Second
		}
		select {
		case h := <-hits:
			t.Logf("FINDING: ci's build remote made dockerd fetch %s (answer %d %s): %q", ln.Addr(), code, tailString(body, 120), tailString(h, 80))
		case <-time.After(wait):
			t.Logf("ci's build remote reached no host address (answer %d %s)", code, tailString(body, 120))
		}
	})

	// Refused: GET /distribution/{name}/json was a readonly read, and
	// made dockerd ask the registry the name holds, a loopback address of
	// the host included (127.0.0.0/8 is an insecure registry by default,
	// so dockerd speaks plain HTTP to it), and quote the answer's body in
	// its error: a readonly holder probed and read the host's loopback
	// services as the daemon. It is a developer's now, as a pull is. The
	// listener records a connection before it closes it, and dockerd
	// answers only after that close: once the answer is back, a
	// connection would be on record.
	t.Run("Refused_readonly_distribution_reaches_host_addresses", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		hits := make(chan string, 4)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				b := make([]byte, 512)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _ := c.Read(b)
				select {
				case hits <- string(b[:n]):
				default:
				}
				c.Close()
			}
		}()
		code, body := r.raw("rita", "GET", "/v1.41/distribution/"+ln.Addr().String()+"/probe/x:1/json", "", "")
		assert.Equal(t, http.StatusForbidden, code, body)
		assert.Empty(t, hits, "readonly's GET /distribution made dockerd connect to %s", ln.Addr())
		code, body = r.raw("dev", "GET", "/v1.41/distribution/"+ln.Addr().String()+"/probe/x:1/json", "", "")
		assert.NotEqual(t, http.StatusForbidden, code, body)
		assert.NotEmpty(t, hits, "a developer's GET /distribution reached no registry (%d %s): the readonly case proves nothing", code, tailString(body, 120))
	})
	// Checked: the owners' book outlives a dockerd restart: dev starts
	// its own container again, not admin's.
	t.Run("Checked_owners_book_survives_dockerd_restart", func(t *testing.T) {
		require.NoError(t, r.d.Restart(context.Background()))
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := r.as("dev", "start", devBox); err == nil {
				break
			}
			require.True(t, time.Now().Before(deadline), "dev cannot start its container after dockerd restarted")
			time.Sleep(100 * time.Millisecond)
		}
		out, err := r.as("dev", "start", adminBox)
		assert.Error(t, err, "dev started admin's container after dockerd restarted: %s", out)
	})
}

// uniqueIDPrefix is the shortest prefix of id, two characters or more,
// that begins no other container's ID and is no container's name: the
// reference dockerd resolves to id's container by ID prefix alone.
func uniqueIDPrefix(t *testing.T, r *redTeam2, id string) string {
	t.Helper()
	code, body := r.local("GET", "/v1.41/containers/json?all=1", "")
	require.Equal(t, 200, code, body)
	var list []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	for n := 2; n <= len(id); n++ {
		p, clash := id[:n], false
		for _, c := range list {
			clash = clash || (c.ID != id && strings.HasPrefix(c.ID, p)) || slices.Contains(c.Names, "/"+p)
		}
		if !clash {
			return p
		}
	}
	t.Fatalf("no prefix of %s is unique among %d containers", id, len(list))
	return ""
}
