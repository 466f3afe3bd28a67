package crashtest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/failpoint"
	"github.com/dtls-tool/dtls/internal/fixture"
)

// faultCase is one journaled command, run on a fresh install with a fault
// injected at each of its steps.
type faultCase struct {
	name string
	// txn is the journal's name for the change (authority's newTxn).
	txn string
	// fresh skips the set-up (init, three clients, one server bundle).
	fresh   bool
	prepare func(t *testing.T, in *install)
	args    func(in *install) []string
	// done checks, on the records after the next run, that the change
	// was finished.
	done func(t *testing.T, in *install, recs []Record)
}

func byName(recs []Record, name string) []Record {
	var out []Record
	for _, r := range recs {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

func hasStatus(recs []Record, name, status string) bool {
	for _, r := range byName(recs, name) {
		if r.Status == status {
			return true
		}
	}
	return false
}

func count(recs []Record, keep func(Record) bool) int {
	n := 0
	for _, r := range recs {
		if keep(r) {
			n++
		}
	}
	return n
}

var faultCases = []faultCase{
	{name: "init", txn: "init", fresh: true,
		args: func(in *install) []string { return in.initArgs() },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.Equal(t, 1, count(recs, func(r Record) bool { return r.Kind == "ca" && r.Good() }))
			assert.FileExists(t, filepath.Join(in.l.CertsDir, "server-key.pem"))
		}},
	{name: "init-force", txn: "init",
		args: func(in *install) []string { return in.initArgs("--force") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.Equal(t, 2, count(recs, func(r Record) bool { return r.Kind == "ca" }))
		}},
	{name: "issue", txn: "issue",
		args: func(in *install) []string { return in.with("issue-client", "dave", "erin", "--out", in.l.Bundles) },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "dave", "valid"))
			assert.True(t, hasStatus(recs, "erin", "valid"))
		}},
	{name: "issue-force-archive", txn: "issue",
		args: func(in *install) []string {
			return in.with("issue-client", "alice", "--force", "--out", filepath.Join(in.l.Bundles, "alice"),
				"--archive", filepath.Join(in.l.Root, "alice.tar.gz"))
		},
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "alice", "superseded"))
			assert.FileExists(t, filepath.Join(in.l.Root, "alice.tar.gz"))
		}},
	{name: "issue-archive-only", txn: "issue",
		args: func(in *install) []string {
			return in.with("issue-client", "dave", "--archive", filepath.Join(in.l.Root, "dave.tar.gz"))
		},
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "dave", "valid"))
			assert.FileExists(t, filepath.Join(in.l.Root, "dave.tar.gz"))
			assert.NoDirExists(t, filepath.Join(in.l.Root, "dtls-dave"))
		}},
	{name: "renew-archive-only", txn: "renew",
		args: func(in *install) []string {
			return in.with("renew", "alice", "--archive", filepath.Join(in.l.Root, "alice-renewed.tar.gz"))
		},
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "alice", "superseded"))
			assert.True(t, hasStatus(recs, "alice", "valid"))
			assert.FileExists(t, filepath.Join(in.l.Root, "alice-renewed.tar.gz"))
		}},
	{name: "issue-server", txn: "issue-server",
		args: func(in *install) []string {
			return in.with("issue-server", "srv2", "--out", filepath.Join(in.l.Bundles, "srv2"))
		},
		done: func(t *testing.T, in *install, recs []Record) { assert.True(t, hasStatus(recs, "srv2", "valid")) }},
	{name: "renew", txn: "renew",
		args: func(in *install) []string { return in.with("renew", "alice") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "alice", "superseded"))
			assert.True(t, hasStatus(recs, "alice", "valid"))
		}},
	{name: "renew-server", txn: "renew",
		args: func(in *install) []string { return in.with("renew", "--server") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.True(t, hasStatus(recs, "localhost", "superseded"))
		}},
	{name: "revoke", txn: "revoke",
		args: func(in *install) []string { return in.with("revoke", "bob") },
		done: func(t *testing.T, in *install, recs []Record) { assert.True(t, hasStatus(recs, "bob", "revoked")) }},
	{name: "crl", txn: "crl",
		args: func(in *install) []string { return in.with("crl") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.FileExists(t, filepath.Join(in.l.StateDir, "crl.pem"))
		}},
	{name: "rotate-ca", txn: "rotate-ca",
		args: func(in *install) []string { return in.with("rotate-ca") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.FileExists(t, filepath.Join(in.l.StateDir, "ca-old.pem"))
			assert.Equal(t, 2, count(recs, func(r Record) bool { return r.Kind == "ca" }))
		}},
	{name: "rotate-switch", txn: "rotate-switch",
		prepare: func(t *testing.T, in *install) { in.mustRun(t, in.with("rotate-ca")...) },
		args:    func(in *install) []string { return in.with("rotate-ca", "--switch", "--force") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.FileExists(t, filepath.Join(in.l.StateDir, "ca-old.pem"))
			assert.True(t, hasStatus(recs, "localhost", "superseded"))
			ca, err := os.ReadFile(filepath.Join(in.l.StateDir, "ca.pem"))
			require.NoError(t, err)
			srv, err := os.ReadFile(filepath.Join(in.l.CertsDir, "server-cert.pem"))
			require.NoError(t, err)
			cas, err := ParseCertificates(ca)
			require.NoError(t, err)
			srvs, err := ParseCertificates(srv)
			require.NoError(t, err)
			assert.NoError(t, srvs[0].CheckSignatureFrom(cas[0]), "the daemon's server certificate is not of the new CA")
		}},
	{name: "rotate-finish", txn: "rotate-finish",
		prepare: func(t *testing.T, in *install) {
			in.mustRun(t, in.with("rotate-ca")...)
			in.mustRun(t, in.with("rotate-ca", "--switch", "--force")...)
		},
		args: func(in *install) []string { return in.with("rotate-ca", "--finish", "--force") },
		done: func(t *testing.T, in *install, recs []Record) {
			assert.NoFileExists(t, filepath.Join(in.l.StateDir, "ca-old.pem"))
			assert.NoFileExists(t, filepath.Join(in.l.StateDir, "ca-old-key.pem"))
		}},
	{name: "init-gateway", txn: "init",
		args: func(in *install) []string { return in.initArgs("--gateway") },
		done: func(t *testing.T, in *install, recs []Record) { assertGatewayMode(t, in, true) }},
	{name: "init-gateway-back", txn: "init",
		prepare: func(t *testing.T, in *install) { in.mustRun(t, in.initArgs("--gateway")...) },
		args:    func(in *install) []string { return in.initArgs() },
		done:    func(t *testing.T, in *install, recs []Record) { assertGatewayMode(t, in, false) }},
	{name: "init-local", txn: "init",
		args: func(in *install) []string {
			return in.initArgs("--gateway", "--local", "--profile-dir", in.profileDir())
		},
		done: func(t *testing.T, in *install, recs []Record) { assertLocal(t, in, true) }},
	{name: "init-local-back", txn: "init",
		prepare: func(t *testing.T, in *install) {
			in.mustRun(t, in.initArgs("--gateway", "--local", "--profile-dir", in.profileDir())...)
		},
		args: func(in *install) []string { return in.initArgs("--gateway", "--profile-dir", in.profileDir()) },
		done: func(t *testing.T, in *install, recs []Record) { assertLocal(t, in, false) }},
	{name: "init-ca-from", txn: "init",
		prepare: func(t *testing.T, in *install) {
			in.mustRun(t, in.with("issue-server", "localhost", "--out", filepath.Join(in.l.Root, "srv-bundle"))...)
			// The second host: a state and certs dir of its own.
			require.NoError(t, os.RemoveAll(filepath.Join(in.l.Root, "host2")))
		},
		args: func(in *install) []string {
			h2 := filepath.Join(in.l.Root, "host2")
			return []string{"init", "--ca-from", filepath.Join(in.l.Root, "srv-bundle"), "--state-dir", filepath.Join(h2, "state"),
				"--certs-dir", filepath.Join(h2, "certs"), "--daemon-json", filepath.Join(h2, "daemon.json"), "--systemd-dir", in.l.SystemdDir}
		},
		done: func(t *testing.T, in *install, recs []Record) {
			assert.FileExists(t, filepath.Join(in.l.Root, "host2", "certs", "server-key.pem"))
			b, err := os.ReadFile(filepath.Join(in.l.Root, "host2", "daemon.json"))
			require.NoError(t, err)
			assert.Contains(t, string(b), "tlsverify")
		}},
}

// assertGatewayMode checks that the gateway serves TCP (its units
// written, daemon.json without a TCP host, the mode recorded) or, when
// !on, that dockerd does (the units gone, the listener in daemon.json).
func assertGatewayMode(t *testing.T, in *install, on bool) {
	t.Helper()
	b, err := os.ReadFile(in.l.DaemonJSON)
	require.NoError(t, err)
	var cfg struct {
		Hosts []string `json:"hosts"`
	}
	require.NoError(t, json.Unmarshal(b, &cfg))
	srv, err := os.ReadFile(filepath.Join(in.l.StateDir, "server.json"))
	require.NoError(t, err)
	for _, u := range []string{"dtls-gateway.socket", "dtls-gateway.service"} {
		p := filepath.Join(in.l.SystemdDir, u)
		if on {
			assert.FileExists(t, p)
		} else {
			assert.NoFileExists(t, p)
		}
	}
	if on {
		assert.Equal(t, []string{"unix:///var/run/docker.sock"}, cfg.Hosts)
		assert.Contains(t, string(srv), `"mode": "gateway"`)
	} else {
		assert.Contains(t, cfg.Hosts, "tcp://0.0.0.0:2376")
		assert.NotContains(t, string(srv), `"mode"`)
	}
}

// profileDir is where init --local writes its profile snippet.
func (in *install) profileDir() string { return filepath.Join(in.l.Root, "profile.d") }

// assertLocal checks that dockerd's socket is root's (daemon.json's
// "group", the profile snippet, server.json's "local") or, when !on, that
// it has dockerd's default group again (no "group", no snippet).
func assertLocal(t *testing.T, in *install, on bool) {
	t.Helper()
	b, err := os.ReadFile(in.l.DaemonJSON)
	require.NoError(t, err)
	var cfg struct {
		Group *string `json:"group"`
	}
	require.NoError(t, json.Unmarshal(b, &cfg))
	srv, err := os.ReadFile(filepath.Join(in.l.StateDir, "server.json"))
	require.NoError(t, err)
	profile := filepath.Join(in.profileDir(), "dtls-docker-host.sh")
	if on {
		require.NotNil(t, cfg.Group)
		assert.Equal(t, "root", *cfg.Group)
		assert.FileExists(t, profile)
		assert.Contains(t, string(srv), `"local": true`)
		return
	}
	assert.Nil(t, cfg.Group)
	assert.NoFileExists(t, profile)
	assert.NotContains(t, string(srv), `"local"`)
}

// snapshot maps every file under root to its mode and content, leaving out
// the inventory's files (compared through 'dtls list') and the lock (it
// names its last holder).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		if strings.HasPrefix(base, "dtls.db") || base == "dtls.lock" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[strings.TrimPrefix(p, root)] = v
		return nil
	}))
	return out
}

func (in *install) withFault(point string) *install {
	c := *in
	c.env = append(append([]string{}, in.env...), failpoint.Env+"="+point)
	return &c
}

// caseInstall is the install of one fault case, set up once (init, three
// clients, one server bundle, then the case's preparation) and put back
// as it was before each run of the case's command: a copy of the tree,
// at the same path, since the state directory, daemon.json and the
// inventory name the install's paths. Setting it up takes a few dtls runs
// (and keys) that every step would otherwise repeat.
type caseInstall struct {
	in *install
	// saved is the tree as set up.
	saved string
}

func newCaseInstall(t *testing.T, c faultCase) *caseInstall {
	in := newInstall(t)
	if !c.fresh {
		in.setUp(t)
	}
	if c.prepare != nil {
		c.prepare(t, in)
	}
	saved := filepath.Join(t.TempDir(), "saved")
	require.NoError(t, fixture.CopyTree(in.l.Root, saved))
	return &caseInstall{in: in, saved: saved}
}

// fresh puts the install back as it was set up and returns it.
func (ci *caseInstall) fresh(t *testing.T) *install {
	t.Helper()
	require.NoError(t, os.RemoveAll(ci.in.l.Root))
	require.NoError(t, fixture.CopyTree(ci.saved, ci.in.l.Root))
	return ci.in
}

// TestFaultAtEveryStep injects a fault at each step of each journaled
// command: the journal written, each file operation, the inventory
// recorded.
//
// A failing step (error:NAME, as a full disk or an unwritable directory
// would fail it) is undone at once: exit 1, "nothing was changed", every
// file as it was, the same records, no journal.
//
// A crash at a step (the process exits at once, as kill -9 would stop it)
// is finished by the next command: the consistency check passes and the
// change is complete.
//
// Every case runs on an install of its own, in parallel with the others;
// its steps run one after another, each on the case's install put back as
// it was set up (caseInstall).
func TestFaultAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, c := range faultCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ci := newCaseInstall(t, c)
			steps := failEveryStep(t, c, ci)
			points := []string{"written"}
			for n := 0; n < steps; n++ {
				points = append(points, strconv.Itoa(n))
			}
			points = append(points, "recorded")
			for _, p := range points {
				t.Run(p, func(t *testing.T) {
					crashAt(t, c, ci.fresh(t), fmt.Sprintf("journal:%s:%s", c.txn, p))
				})
			}
		})
	}
}

// failEveryStep makes each journaled step of c fail in turn, on c's
// install as set up each time, until the command gets past them all, and
// returns how many steps it has. The steps are found one by one: how many
// there are is known only when the command succeeds.
func failEveryStep(t *testing.T, c faultCase, ci *caseInstall) (steps int) {
	for n := 0; ; n++ {
		in := ci.fresh(t)
		before := snapshot(t, in.l.Root)
		var recsBefore []Record
		if !c.fresh {
			var err error
			recsBefore, _, err = in.list()
			require.NoError(t, err)
		}
		point := fmt.Sprintf("journal:%s:%d", c.txn, n)
		r := in.withFault("error:"+point).run(noKill, c.args(in)...)
		if r.exit == 0 {
			require.NotContains(t, r.stderr, "injected", "the fault was not reported")
			steps = n
			break
		}
		require.Equal(t, 1, r.exit, "%s: %s", point, r)
		assert.Contains(t, r.stderr, "injected failure at "+point)
		assert.Contains(t, r.stderr, "nothing was changed", point)
		assert.Empty(t, diffSnapshots(before, snapshot(t, in.l.Root)), "%s: files changed although the step failed", point)
		if c.fresh {
			assert.NoDirExists(t, in.l.StateDir, "%s: a failed first init left a state directory", point)
		} else {
			recsAfter, _, err := in.list()
			require.NoError(t, err)
			assert.Equal(t, recsBefore, recsAfter, "%s: records changed although the step failed", point)
		}
		require.Less(t, n, 64, "the command never got past the fault points")
	}
	require.Positive(t, steps, "no file operation was journaled")
	t.Logf("%s: %d journaled steps", c.name, steps)
	return steps
}

// crashAt crashes c at point on in, as set up; the next command must
// finish the change.
func crashAt(t *testing.T, c faultCase, in *install, point string) {
	r := in.withFault(point).run(noKill, c.args(in)...)
	require.Equal(t, failpoint.CrashStatus, r.exit, "%s: %s", point, r)
	j, _ := filepath.Glob(filepath.Join(in.l.StateDir, "journal", "*.json"))
	if c.name != "init-ca-from" {
		require.NotEmpty(t, j, "%s: the crash left no journal", point)
	}
	if c.name == "init-ca-from" {
		// The next command on that host.
		h2 := filepath.Join(in.l.Root, "host2", "state")
		r := in.run(noKill, "list", "--state-dir", h2)
		require.Equal(t, 0, r.exit, "%s: %s", point, r)
		assert.Contains(t, r.stderr, "recovered from an interrupted run", point)
	}
	recs, lr, err := in.list()
	require.NoError(t, err, "%s: %s", point, lr)
	if c.name != "init-ca-from" {
		assert.Contains(t, lr.stderr, "recovered from an interrupted run", point)
	}
	if err := Check(in.l, recs); err != nil {
		t.Errorf("%s: %v", point, err)
	}
	c.done(t, in, recs)
}

// diffSnapshots names the paths whose mode or content differ.
func diffSnapshots(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		} else if v != w {
			out = append(out, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "added "+k)
		}
	}
	return out
}
