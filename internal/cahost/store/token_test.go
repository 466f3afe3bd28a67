package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testToken(hash, name string, kind Kind) Token {
	t := Token{
		Hash: hash, Kind: kind, Name: name,
		CreatedAt: base, ExpiresAt: base.Add(time.Hour),
	}
	if kind == KindClient {
		t.Role = "readonly"
	} else {
		t.Hosts = []string{name, "10.0.0.7"}
	}
	return t
}

// storedToken is a token as the database keeps it.
func storedToken(b backend, t Token) Token {
	t.CreatedAt, t.ExpiresAt = b.storedTime(t.CreatedAt), b.storedTime(t.ExpiresAt)
	if !t.UsedAt.IsZero() {
		t.UsedAt = b.storedTime(t.UsedAt)
	}
	return t
}

// TestTokens: a token reads back as it was added; a second one with its
// hash, an invalid one and an unknown hash are errors.
func TestTokens(t *testing.T) { testTokens(t, sqlite) }

func testTokens(t *testing.T, b backend) {
	s := b.openNew(t)
	client, server := testToken("aa11", "alice", KindClient), testToken("bb22", "srv.example", KindServer)
	require.NoError(t, s.AddToken(client))
	require.NoError(t, s.AddToken(server))
	for _, want := range []Token{client, server} {
		got, err := s.Token(want.Hash)
		require.NoError(t, err)
		assert.Equal(t, storedToken(b, want), *got)
	}

	assert.EqualError(t, s.AddToken(client), `add token for "alice": a token with this hash is already recorded`)
	bad := client
	bad.Hash, bad.Kind = "cc33", KindCA
	assert.EqualError(t, s.AddToken(bad), `add token for "alice": invalid kind "ca"`)
	bad = client
	bad.Hash, bad.ExpiresAt = "cc33", time.Time{}
	assert.EqualError(t, s.AddToken(bad), `add token for "alice": no creation or expiry time`)

	_, err := s.Token("cc33")
	assert.ErrorIs(t, err, ErrTokenUnknown)

	// Cancelled (a revocation of the holder by name): its expiry is its
	// creation; another holder's, or the same name of another kind, is
	// left as it was.
	require.NoError(t, s.Apply(Change{CancelTokens: []TokenHolder{{Kind: KindClient, Name: "alice"}, {Kind: KindClient, Name: "srv.example"}}}))
	got, err := s.Token(client.Hash)
	require.NoError(t, err)
	assert.Equal(t, got.CreatedAt, got.ExpiresAt, "alice's token was not cancelled")
	got, err = s.Token(server.Hash)
	require.NoError(t, err)
	assert.Equal(t, storedToken(b, server), *got)

	// A day after the unused tokens expired, the next new token purges
	// them.
	later := testToken("dd44", "carol", KindClient)
	later.CreatedAt, later.ExpiresAt = base.Add(25*time.Hour+time.Second), base.Add(26*time.Hour)
	require.NoError(t, s.AddToken(later))
	for _, gone := range []string{client.Hash, server.Hash} {
		_, err = s.Token(gone)
		assert.ErrorIs(t, err, ErrTokenUnknown)
	}
	_, err = s.Token(later.Hash)
	assert.NoError(t, err)
}

// TestUseToken: a Change that uses a token inserts its record and marks
// the token used by it, in one transaction; replaying it (also from its
// JSON, also after the token's expiry) changes nothing and is no error.
// Another certificate for a used token, an expired token, an unknown
// token, or a record the token is not for: a typed error, and nothing
// inserted.
func TestUseToken(t *testing.T) { testUseToken(t, sqlite) }

func testUseToken(t *testing.T, b backend) {
	s := b.openNew(t)
	tok := testToken("aa11", "alice", KindClient)
	require.NoError(t, s.AddToken(tok))
	require.NoError(t, s.AddToken(testToken("bb22", "bob", KindClient)))
	at := base.Add(time.Minute)
	first := Change{Insert: []Record{rec("a1", "alice", KindClient, "ca", 0)}, Roles: map[string]string{"alice": "readonly"},
		UseToken: tok.Hash, UseTokenAt: at}
	require.NoError(t, s.Apply(first))
	got, err := s.Token(tok.Hash)
	require.NoError(t, err)
	used := tok
	used.UsedAt, used.UsedSerial = at, "a1"
	assert.Equal(t, storedToken(b, used), *got)

	require.NoError(t, s.Apply(first), "applied twice")
	js, err := json.Marshal(first)
	require.NoError(t, err)
	var replay Change
	require.NoError(t, json.Unmarshal(js, &replay))
	assert.Equal(t, first, replay)
	replay.UseTokenAt = base.Add(2 * time.Hour)
	require.NoError(t, s.Apply(replay), "replayed from JSON after the token expired")
	got, err = s.Token(tok.Hash)
	require.NoError(t, err)
	assert.Equal(t, storedToken(b, used), *got, "a replay leaves the first use")

	for _, tc := range []struct {
		name string
		c    Change
		is   error
		err  string
	}{
		{"used", Change{Insert: []Record{rec("a2", "alice", KindClient, "ca", 1)}, UseToken: tok.Hash, UseTokenAt: at}, ErrTokenUsed, ""},
		{"expired", Change{Insert: []Record{rec("b1", "bob", KindClient, "ca", 1)}, UseToken: "bb22", UseTokenAt: base.Add(time.Hour)}, ErrTokenExpired, ""},
		{"unknown", Change{Insert: []Record{rec("c1", "carol", KindClient, "ca", 1)}, UseToken: "cc33", UseTokenAt: at}, ErrTokenUnknown, ""},
		{"other name", Change{Insert: []Record{rec("c1", "carol", KindClient, "ca", 1)}, UseToken: "bb22", UseTokenAt: at}, nil,
			`use token: it is for the client certificate "bob", not for the client certificate "carol"`},
		{"other kind", Change{Insert: []Record{rec("c1", "bob", KindServer, "ca", 1)}, UseToken: "bb22", UseTokenAt: at}, nil,
			`use token: it is for the client certificate "bob", not for the server certificate "bob"`},
		{"two records", Change{Insert: []Record{rec("c1", "bob", KindClient, "ca", 1), rec("c2", "bob", KindClient, "ca", 1)}, UseToken: "bb22", UseTokenAt: at}, nil,
			"use token: want the one record issued for it, got 2 records to insert"},
		{"no time", Change{Insert: []Record{rec("c1", "bob", KindClient, "ca", 1)}, UseToken: "bb22"}, nil,
			"use token: no time of use"},
	} {
		err := s.Apply(tc.c)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is, tc.name)
		} else {
			assert.EqualError(t, err, tc.err, tc.name)
		}
	}
	all, err := s.All()
	require.NoError(t, err)
	assert.Equal(t, []string{"a1"}, serials(all), "nothing inserted by a refused Change")
	bob, err := s.Token("bb22")
	require.NoError(t, err)
	assert.True(t, bob.UsedAt.IsZero(), "a refused Change uses no token")
	assert.Empty(t, bob.UsedSerial)

	// Just before its expiry, bob's token still works.
	require.NoError(t, s.Apply(Change{Insert: []Record{rec("b1", "bob", KindClient, "ca", 1)}, UseToken: "bb22",
		UseTokenAt: base.Add(time.Hour - time.Microsecond)}))
}

// TestConcurrentTokenUse: writers in two Stores (two CA processes) use one
// token at once, each for a certificate of its own: exactly one wins, the
// others get ErrTokenUsed, and only the winner's certificate is recorded.
func TestConcurrentTokenUse(t *testing.T) { testConcurrentTokenUse(t, sqlite) }

func testConcurrentTokenUse(t *testing.T, b backend) {
	p := b.newDB(t)
	var stores []*Store
	for range 2 {
		s, err := b.open(p)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	const rounds, writers = 20, 8
	for round := range rounds {
		hash := fmt.Sprintf("%04x", round)
		require.NoError(t, stores[0].AddToken(testToken(hash, "alice", KindClient)))
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[w] = stores[w%2].Apply(Change{
					Insert:   []Record{rec(fmt.Sprintf("%x", round<<8|w+1), "alice", KindClient, "ca", round)},
					UseToken: hash, UseTokenAt: base,
				})
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for w, err := range errs {
			if err == nil {
				wins++
				continue
			}
			require.True(t, errors.Is(err, ErrTokenUsed), "round %d writer %d: %v", round, w, err)
		}
		require.Equal(t, 1, wins, "round %d", round)
		tok, err := stores[1].Token(hash)
		require.NoError(t, err)
		got, err := stores[1].Get(tok.UsedSerial)
		require.NoError(t, err)
		require.NotNil(t, got, "round %d: the winner's certificate is recorded", round)
	}
	all, err := stores[0].All()
	require.NoError(t, err)
	assert.Len(t, all, rounds, "one certificate per token")
}

// TestRequire: a change that requires a certificate good fails, and
// writes nothing, once another change has superseded it; its replay after
// it committed passes.
func TestRequire(t *testing.T)         { testRequire(t, sqlite) }
func TestPostgresRequire(t *testing.T) { onPostgres(t, testRequire) }

func testRequire(t *testing.T, b backend) {
	st := b.openNew(t)
	old, a, c := rec("a1", "alice", KindClient, "ca", 0), rec("a2", "alice", KindClient, "ca", 0), rec("a3", "alice", KindClient, "ca", 0)
	require.NoError(t, st.Apply(Change{Insert: []Record{old}}))
	first := Change{Insert: []Record{a}, Supersede: []string{old.Serial}, Require: []string{old.Serial}}
	require.NoError(t, st.Apply(first))
	err := st.Apply(Change{Insert: []Record{c}, Supersede: []string{old.Serial}, Require: []string{old.Serial}})
	require.ErrorIs(t, err, ErrNotGood)
	got, err := st.Get(c.Serial)
	require.NoError(t, err)
	require.Nil(t, got, "the refused change inserted its record")
	require.NoError(t, st.Apply(first), "a replay of the committed change")
	require.ErrorIs(t, st.Apply(Change{Insert: []Record{c}, Require: []string{"abcdef"}}), ErrNotGood)
}
