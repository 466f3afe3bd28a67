package store

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNextCRLNumber: the numbers grow by one from the first floor, jump
// to a higher floor, ignore a lower one (a clock set back), survive a
// reopen, and two stores on one database taking numbers at once never
// get the same one.
func TestNextCRLNumber(t *testing.T)         { testNextCRLNumber(t, sqlite) }
func TestPostgresNextCRLNumber(t *testing.T) { onPostgres(t, testNextCRLNumber) }

func testNextCRLNumber(t *testing.T, b backend) {
	addr := b.newDB(t)
	s, err := b.open(addr)
	require.NoError(t, err)
	next := func(s *Store, floor int64) int64 {
		t.Helper()
		n, err := s.NextCRLNumber(floor)
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, int64(1000), next(s, 1000))
	assert.Equal(t, int64(1001), next(s, 1000))
	assert.Equal(t, int64(1002), next(s, 5), "a lower floor: the clock went back")
	assert.Equal(t, int64(5000), next(s, 5000))
	require.NoError(t, s.Close())

	s, err = b.open(addr)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	assert.Equal(t, int64(5001), next(s, 1), "after a reopen (a restart)")
	other, err := b.open(addr)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })

	const per = 25
	got := make([][]int64, 2)
	var wg sync.WaitGroup
	for g, st := range []*Store{s, other} {
		wg.Go(func() {
			for range per {
				n, err := st.NextCRLNumber(1)
				if !assert.NoError(t, err) {
					return
				}
				got[g] = append(got[g], n)
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, l := range got {
		require.Len(t, l, per)
		for i, n := range l {
			assert.False(t, seen[n], "number %d given twice", n)
			seen[n] = true
			if i > 0 {
				assert.Greater(t, n, l[i-1])
			}
		}
	}
	assert.Equal(t, int64(5001+2*per+1), next(s, 1))
}
