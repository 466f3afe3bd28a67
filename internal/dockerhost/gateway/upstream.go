package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// dockerd is the gateway's client of dockerd's unix socket for requests
// whose body the gateway holds whole (or that have none): most API calls.
// The request is written and its answer read on the handler's own
// goroutine, over a kept-alive connection of a small pool. net/http's
// Transport hands each request to a writing goroutine and each answer
// back from a reading one (persistConn's writeLoop and readLoop): two
// goroutine switches per call, a tenth of what the gateway adds to a
// call's latency on a 2-core host (internal/bench/gatewaylat). A request
// whose body streams from the client (docker cp, build contexts, image
// loads) still goes through the Transport, which reads an early answer
// while the body is being sent.
type dockerd struct {
	socket string
	mu     sync.Mutex
	idle   []*dockerdConn
	closed bool
}

// maxIdleDockerd bounds the kept-alive connections to dockerd, as the
// Transport's MaxIdleConnsPerHost did.
const maxIdleDockerd = 64

type dockerdConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// written counts the bytes that reached the socket (bw writes
	// through Write): a request none of whose bytes did can be sent
	// again.
	written int64
}

func (dc *dockerdConn) Write(p []byte) (int, error) {
	n, err := dc.c.Write(p)
	dc.written += int64(n)
	return n, err
}

func (d *dockerd) dial(ctx context.Context) (*dockerdConn, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", d.socket)
	if err != nil {
		return nil, err
	}
	dc := &dockerdConn{c: c, br: bufio.NewReaderSize(c, 32<<10)}
	dc.bw = bufio.NewWriterSize(dc, 8<<10)
	return dc, nil
}

// get takes an idle connection, or dials one.
func (d *dockerd) get(ctx context.Context) (dc *dockerdConn, reused bool, err error) {
	d.mu.Lock()
	if n := len(d.idle); n > 0 {
		dc = d.idle[n-1]
		d.idle = d.idle[:n-1]
	}
	d.mu.Unlock()
	if dc != nil && dc.br.Buffered() > 0 {
		// Bytes after an answer read whole: nothing that can be told
		// apart from the next request's answer. Not reused.
		dc.c.Close()
		dc = nil
	}
	if dc != nil {
		return dc, true, nil
	}
	dc, err = d.dial(ctx)
	return dc, false, err
}

// put keeps a connection whose last answer was read whole.
func (d *dockerd) put(dc *dockerdConn) {
	d.mu.Lock()
	if !d.closed && len(d.idle) < maxIdleDockerd {
		d.idle = append(d.idle, dc)
		dc = nil
	}
	d.mu.Unlock()
	if dc != nil {
		dc.c.Close()
	}
}

// closeIdle closes the kept-alive connections; after it, none is kept.
func (d *dockerd) closeIdle() {
	d.mu.Lock()
	idle := d.idle
	d.idle, d.closed = nil, true
	d.mu.Unlock()
	for _, dc := range idle {
		dc.c.Close()
	}
}

// roundTrip sends req, whose body is in memory (a bytes.Reader or
// http.NoBody: it can be sent again), and returns dockerd's answer; the
// body must be closed. The connection is closed when req's context ends
// (the client went away) before the answer is read whole: a stream
// (logs -f, events) ends with it.
func (d *dockerd) roundTrip(req *http.Request, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		dc, reused, err := d.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, err := d.send(dc, req, body)
		if err == nil {
			return resp, nil
		}
		dc.c.Close()
		// A kept-alive connection dockerd closed while it was idle (a
		// restart): the request is sent again on a new one when dockerd
		// cannot have acted on it, as net/http's Transport does
		// (persistConn.shouldRetryRequest): not one byte of it reached
		// dockerd, or nothing came back to a request that changes
		// nothing. A write that failed after some bytes went is not
		// enough: dockerd may have read the request whole but for a
		// body's tail it never reads, acted, and closed.
		var w nothingWritten
		if !reused || attempt > 0 || !(errors.As(err, &w) || idempotent(req.Method) && errors.Is(err, io.EOF)) {
			return nil, err
		}
	}
}

// nothingWritten is a request none of whose bytes reached dockerd.
type nothingWritten struct{ err error }

func (e nothingWritten) Error() string { return e.err.Error() }
func (e nothingWritten) Unwrap() error { return e.err }

func idempotent(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

func (d *dockerd) send(dc *dockerdConn, req *http.Request, body []byte) (*http.Response, error) {
	// The Transport would close the connection when the context ends;
	// closing it here ends a read or write in progress the same way.
	stop := context.AfterFunc(req.Context(), func() { dc.c.SetDeadline(time.Unix(1, 0)) })
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	start := dc.written
	err := req.Write(dc.bw)
	if err == nil {
		err = dc.bw.Flush()
	}
	if err != nil && dc.written == start {
		stop()
		return nil, nothingWritten{err}
	}
	// A write to a unix socket fails after some bytes went when dockerd
	// closed the connection (or the context ended: the deadline fails the
	// read at once too). dockerd may have answered first, and acted:
	// net/http's server answers and closes when a handler left over
	// 256 KiB of the body unread (maxPostHandlerReadBytes), and dockerd
	// 20.10's create decodes one JSON value and leaves what follows. That
	// answer is the caller's; the connection is not reused. (The error
	// cannot be told by its errno: net/http reports a write failing
	// during the body as an unwrappable requestBodyReadError.)
	writeErr := err
	resp, err := http.ReadResponse(dc.br, req)
	if writeErr != nil && err != nil {
		err = writeErr
	}
	// An informational answer (100 Continue, 103) is followed by the
	// request's own, as net/http's Transport reads it: left in the
	// buffer, that one would be taken for the next request's answer.
	for err == nil && resp.StatusCode/100 == 1 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(dc.br, req)
	}
	if err != nil {
		stop()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return nil, err
	}
	// A connection can carry another request only when this answer's end
	// is known without closing it.
	reusable := writeErr == nil && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols &&
		(resp.ContentLength >= 0 || chunked(resp.TransferEncoding))
	resp.Body = &dockerdBody{rc: resp.Body, dc: dc, d: d, stop: stop, reusable: reusable}
	return resp, nil
}

func chunked(te []string) bool { return len(te) > 0 && te[0] == "chunked" }

// dockerdBody gives the connection back to the pool when the answer was
// read to its end and the context did not end; otherwise closes it.
type dockerdBody struct {
	rc       io.ReadCloser
	dc       *dockerdConn
	d        *dockerd
	stop     func() bool
	reusable bool
	eof      bool
	once     sync.Once
}

func (b *dockerdBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *dockerdBody) Close() error {
	b.once.Do(func() {
		b.rc.Close()
		// stop is false when the context's end already ran (or runs)
		// the deadline: the connection is not reused.
		if b.stop() && b.eof && b.reusable {
			b.d.put(b.dc)
			return
		}
		b.dc.c.Close()
	})
	return nil
}
