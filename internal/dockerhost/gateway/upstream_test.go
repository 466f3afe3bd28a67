package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawDockerd is a unix socket server that answers with the bytes a test
// gives, for what dockerd does not do on demand (an informational answer,
// bytes after an answer, a connection closed mid-call). The gateway's
// path through a real dockerd is tested in gateway_test.go and cmd/.
type rawDockerd struct {
	socket string
	conns  atomic.Int32 // connections accepted
	calls  atomic.Int32 // requests read whole
}

// startRawDockerd serves each connection with serve, given the
// connection's number (from 1) and next, which reads its next request
// whole (false at its end).
func startRawDockerd(t *testing.T, serve func(n int, c net.Conn, next func() bool)) *rawDockerd {
	t.Helper()
	d := &rawDockerd{socket: filepath.Join(t.TempDir(), "d.sock")}
	l, err := net.Listen("unix", d.socket)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			n := int(d.conns.Add(1))
			br := bufio.NewReader(c)
			next := func() bool {
				r, err := http.ReadRequest(br)
				if err != nil {
					return false
				}
				_, _ = io.Copy(io.Discard, r.Body)
				d.calls.Add(1)
				return true
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(n, c, next)
			}()
		}
	}()
	return d
}

func (d *rawDockerd) client() *dockerd { return &dockerd{socket: d.socket} }

func rawRequest(ctx context.Context, method, path string) *http.Request {
	return (&http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: "docker", Opaque: path},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: "docker"}).WithContext(ctx)
}

// callRaw sends one request through d and reads its answer whole.
func callRaw(d *dockerd, method, path string, body []byte) (int, string, error) {
	resp, err := d.roundTrip(rawRequest(context.Background(), method, path), body)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// TestDockerdInformationalAnswer: a 100 Continue before the answer is
// read past, and the connection then carries the next call with its own
// answer.
func TestDockerdInformationalAnswer(t *testing.T) {
	raw := startRawDockerd(t, func(_ int, c net.Conn, next func() bool) {
		for i := byte('1'); next(); i++ {
			_, _ = c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + string(i)))
		}
	})
	d := raw.client()
	for _, want := range []string{"1", "2", "3"} {
		status, body, err := callRaw(d, "GET", "/containers/json", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, want, body, "each call its own answer")
	}
	assert.EqualValues(t, 1, raw.conns.Load(), "one kept-alive connection")
}

// TestDockerdBytesAfterAnswer: bytes after a whole answer (another
// answer, to nothing asked) are never taken for the next call's answer:
// that connection is not reused.
func TestDockerdBytesAfterAnswer(t *testing.T) {
	raw := startRawDockerd(t, func(n int, c net.Conn, next func() bool) {
		for next() {
			if n == 1 {
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmineHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"))
				continue
			}
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"))
		}
	})
	d := raw.client()
	_, body, err := callRaw(d, "GET", "/containers/json", nil)
	require.NoError(t, err)
	require.Equal(t, "mine", body)
	_, body, err = callRaw(d, "GET", "/containers/json", nil)
	require.NoError(t, err)
	assert.Equal(t, "fresh", body)
	assert.EqualValues(t, 2, raw.conns.Load())
}

// TestDockerdUnframedAnswers: an answer that says the connection closes,
// or whose end is its connection's, or a 101, leaves its connection out
// of the pool; a chunked one of known end keeps it.
func TestDockerdUnframedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		reused       bool
	}{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"read to close", "HTTP/1.1 200 OK\r\n\r\nok", false},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := startRawDockerd(t, func(_ int, c net.Conn, next func() bool) {
				if next() {
					_, _ = c.Write([]byte(tc.answer))
				}
				if tc.answer == "HTTP/1.1 200 OK\r\n\r\nok" {
					return // the answer's end is the connection's
				}
				for next() {
					_, _ = c.Write([]byte(tc.answer))
				}
			})
			d := raw.client()
			for range 2 {
				_, _, err := callRaw(d, "GET", "/x", nil)
				require.NoError(t, err)
			}
			want := int32(2)
			if tc.reused {
				want = 1
			}
			assert.Equal(t, want, raw.conns.Load())
		})
	}
}

// TestDockerdNoSecondSend: a call dockerd read and then closed its
// connection on without answering is not sent again when it changes
// something (dockerd may have acted on it); a GET is, once, on a new
// connection, as net/http's Transport does.
func TestDockerdNoSecondSend(t *testing.T) {
	// The first connection answers its first call, then reads the second
	// and closes without a word; the others answer each call.
	serve := func(n int, c net.Conn, next func() bool) {
		if n == 1 {
			if next() {
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			}
			next()
			return
		}
		for next() {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"))
		}
	}
	raw := startRawDockerd(t, serve)
	d := raw.client()
	_, _, err := callRaw(d, "GET", "/_ping", nil)
	require.NoError(t, err)
	_, _, err = callRaw(d, "POST", "/containers/create", []byte(`{"Image":"x"}`))
	require.Error(t, err, "not sent again")
	assert.EqualValues(t, 2, raw.calls.Load(), "the create reached dockerd once")

	raw2 := startRawDockerd(t, serve)
	d = raw2.client()
	_, _, err = callRaw(d, "GET", "/_ping", nil)
	require.NoError(t, err)
	_, body, err := callRaw(d, "GET", "/containers/json", nil)
	require.NoError(t, err)
	assert.Equal(t, "again", body)
	assert.EqualValues(t, 2, raw2.conns.Load())
}

// TestDockerdClientGone: when the call's context ends (its client went
// away) in the middle of an answer that streams (logs -f, events), the
// connection to dockerd is closed, not kept.
func TestDockerdClientGone(t *testing.T) {
	closed := make(chan struct{})
	raw := startRawDockerd(t, func(_ int, c net.Conn, next func() bool) {
		if !next() {
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n"))
		// Nothing more until the gateway closes the connection.
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	})
	d := raw.client()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := d.roundTrip(rawRequest(ctx, "GET", "/events"), nil)
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	require.Equal(t, "event", string(buf))
	read := make(chan error, 1)
	go func() { _, err := resp.Body.Read(buf); read <- err }()
	cancel()
	select {
	case err := <-read:
		assert.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not end with the context")
	}
	resp.Body.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection to dockerd was not closed")
	}
	d.mu.Lock()
	assert.Empty(t, d.idle)
	d.mu.Unlock()
}
