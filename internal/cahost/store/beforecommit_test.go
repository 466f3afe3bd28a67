package store

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBeforeCommit: a Change's BeforeCommit runs inside its transaction,
// after its writes; its error rolls them all back, and its success lets
// them commit.
func TestBeforeCommit(t *testing.T)         { testBeforeCommit(t, sqlite) }
func TestPostgresBeforeCommit(t *testing.T) { onPostgres(t, testBeforeCommit) }

func testBeforeCommit(t *testing.T, b backend) {
	s := b.openNew(t)
	boom := errors.New("boom")
	calls := 0
	err := s.Apply(Change{
		Insert: []Record{rec("1a", "alice", KindClient, "ca", 0)},
		Roles:  map[string]string{"alice": "admin"},
		BeforeCommit: func() error {
			calls++
			return boom
		},
	})
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 1, calls)
	has, err := s.Has("1a")
	require.NoError(t, err)
	assert.False(t, has, "rolled back")
	role, err := s.Role("alice")
	require.NoError(t, err)
	assert.Empty(t, role)

	require.NoError(t, s.Apply(Change{
		Insert:       []Record{rec("1a", "alice", KindClient, "ca", 0)},
		BeforeCommit: func() error { calls++; return nil },
	}))
	assert.Equal(t, 2, calls)
	has, err = s.Has("1a")
	require.NoError(t, err)
	assert.True(t, has)
}
