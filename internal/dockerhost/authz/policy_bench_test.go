package authz

import (
	"testing"
)

// BenchmarkDecide measures a decision the plugin makes on every API call:
// a container create, whose body is parsed and checked, and a list.
func BenchmarkDecide(b *testing.B) {
	// The bind root makes run-bind-src's -v /home/dev/src allowed: its
	// source is resolved on the host (the root's own checks on the host,
	// a stat and a statfs, are TestBindRootOnTheHost's).
	p, err := ParsePolicy([]byte(`{"bind_roots": ["/home/dev/src"]}`))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   Identity
		req  Request
	}{
		{"create", Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP},
			post("/v1.41/containers/create?name=web", cli(b, "run-bind-src"))},
		{"create-denied", Identity{User: "alice", Role: RoleDeveloper, Source: SourceTCP},
			post("/v1.41/containers/create", cli(b, "run-docker-sock"))},
		{"list", Identity{User: "bob", Role: RoleReadonly, Source: SourceTCP},
			Request{Method: "GET", URI: "/v1.41/containers/json?all=1", Headers: map[string]string{}}},
	} {
		c.req.Env = &Env{CheckRoot: okRoots}
		want := p.Decide(c.id, c.req)
		if want.Allow != (c.name != "create-denied") {
			b.Fatalf("%s: %+v", c.name, want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(c.id, c.req)
			}
		})
	}
}
