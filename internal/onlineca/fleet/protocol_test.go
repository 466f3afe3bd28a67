package fleet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 20 * time.Second: "20s", 90 * time.Second: "1m30s", 10 * time.Minute: "10m",
		24 * time.Hour: "24h", 25*time.Hour + time.Minute: "25h1m", time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s",
	} {
		got := Duration(d)
		assert.Equal(t, want, got, "%v", d)
		back, err := time.ParseDuration(got)
		assert.NoError(t, err)
		assert.Equal(t, d, back)
	}
}
