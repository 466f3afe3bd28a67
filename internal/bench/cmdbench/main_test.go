package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMedianAndP90(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name        string
		in          []time.Duration
		median, p90 time.Duration
	}{
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
		{"odd, unsorted", ms(3, 1, 2), 2 * time.Millisecond, 3 * time.Millisecond},
		{"even averages the middle", ms(4, 1, 3, 2), 2500 * time.Microsecond, 4 * time.Millisecond},
		{"ten: p90 is the 9th", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5500 * time.Microsecond, 9 * time.Millisecond},
		{"twenty: p90 is the 18th", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100), 10500 * time.Microsecond, 18 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.median, median(tt.in))
			assert.Equal(t, tt.p90, p90(tt.in))
		})
	}
}

func TestRunRejectsUnknownRow(t *testing.T) {
	err := run([]string{"-rows", "env,nosuch"}, nil)
	assert.EqualError(t, err, `-rows: unknown row "nosuch" (known: empty,linkonly,env,context,init,mkcert,openssl)`)
}
