package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dtls-tool/dtls/internal/dockerhost/recording"
)

// hijacked reports whether a route's answer is a raw stream both ways:
// exec start and attach (moby api/server/router/container: the
// connection is hijacked after "101 UPGRADED", or "200 OK" with a raw
// stream for older clients), attach over a websocket, and BuildKit's
// /session and /grpc (h2c upgrades).
func hijacked(method, p string) bool {
	switch {
	case p == "/session" || p == "/grpc":
		return true
	case method == "POST" && strings.HasPrefix(p, "/exec/") && strings.HasSuffix(p, "/start"):
		return true
	case strings.HasPrefix(p, "/containers/") && (method == "POST" && strings.HasSuffix(p, "/attach") || method == "GET" && strings.HasSuffix(p, "/attach/ws")):
		return true
	}
	return false
}

// lingerAfterOutput is how long the client may go on sending after
// dockerd ended the stream, before the connection is closed.
const lingerAfterOutput = 5 * time.Second

// hijack forwards an allowed stream request on a connection of its own to
// dockerd, asking for the upgrade (Connection: Upgrade, Upgrade: tcp, as
// docker/cli's hijack does), relays dockerd's answer, and then copies
// bytes both ways, the bytes either side buffered before included, passing
// each side's end of input on as a half-close (CloseWrite), as the Docker
// CLI expects: 'docker exec -i' ends stdin so, and reads the output to
// its end.
func (g *Gateway) hijack(w http.ResponseWriter, r *http.Request, c *call) {
	sr, ok := g.startRecording(w, r, c)
	if !ok {
		return
	}
	streamed, ended := false, recording.EndedStream
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if sr != nil {
		defer func() { sr.end(ended, !streamed) }()
	}
	if !g.recordRequest(w, c) {
		return
	}
	up, err := net.Dial("unix", g.cfg.DockerSocket)
	if err != nil {
		g.fail(w, c, fmt.Sprintf("dtls-gateway: dockerd did not answer: %v", err))
		return
	}
	defer up.Close()
	req := g.upstream(r, c)
	upgrade := r.Header.Get("Upgrade")
	if upgrade == "" {
		upgrade = "tcp"
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", upgrade)
	if err := req.Write(up); err != nil {
		g.fail(w, c, fmt.Sprintf("dtls-gateway: dockerd: %v", err))
		return
	}
	br := bufio.NewReader(up)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		g.fail(w, c, fmt.Sprintf("dtls-gateway: dockerd: %v", err))
		return
	}
	raw := resp.StatusCode == http.StatusSwitchingProtocols ||
		resp.StatusCode == http.StatusOK && resp.ContentLength < 0 && len(resp.TransferEncoding) == 0
	if !raw {
		// An error, or a detached exec's plain answer.
		defer resp.Body.Close()
		for k, v := range cleanHeaders(resp.Header) {
			w.Header()[k] = v
		}
		c.answered, c.status = true, resp.StatusCode
		w.WriteHeader(resp.StatusCode)
		c.out += copyFlush(w, resp.Body)
		return
	}
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		g.fail(w, c, fmt.Sprintf("dtls-gateway: cannot take the connection over: %v", err))
		return
	}
	c.answered, c.status = true, resp.StatusCode
	defer client.Close()
	if conn != nil {
		defer g.sess.forget(conn)
		if !g.sess.attach(conn, up) {
			return // cut while dockerd answered
		}
	}
	writeHead(cbuf.Writer, resp, r.Header.Get("Upgrade") != "")
	if err := cbuf.Writer.Flush(); err != nil {
		return
	}
	cr, ur := rest(cbuf.Reader, client), rest(br, up)
	if sr != nil {
		streamed = true
		cr, ur = sr.wrap(cr, ur, func() { client.Close(); up.Close() })
	}
	in, out := pipe(client, cr, up, ur)
	ended = g.endReason(conn)
	c.in = &countingReader{}
	c.in.n.Store(in)
	c.out += out
}

// writeHead writes dockerd's answer line and headers to the client: as it
// is, or, to a client that asked for no upgrade (older clients), dockerd's
// own answer to those: 200 OK and a raw stream (moby
// api/server/httputils/hijack... router/container/exec.go).
func writeHead(w *bufio.Writer, resp *http.Response, clientUpgrade bool) {
	if resp.StatusCode == http.StatusSwitchingProtocols && !clientUpgrade {
		ct := resp.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/vnd.docker.raw-stream"
		}
		fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", ct)
		return
	}
	fmt.Fprintf(w, "HTTP/%d.%d %s\r\n", resp.ProtoMajor, resp.ProtoMinor, resp.Status)
	resp.Header.Write(w)
	w.WriteString("\r\n")
}

// rest is what remains to read of conn: the bytes br read ahead of the
// stream (a client's stdin written right after its request, dockerd's
// output right after its answer), then conn itself, without br's small
// buffer in the way.
func rest(br *bufio.Reader, conn net.Conn) io.Reader {
	b, _ := br.Peek(br.Buffered())
	return io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
}

// streamBuffer is the size of each read of a stream: large enough that
// a bulk stream ('docker exec -i ... < file') moves in full TLS records.
const streamBuffer = 256 << 10

// copyStream copies src to dst through a buffer of streamBuffer bytes
// (io.Copy would use 32 KiB, or the destination's ReadFrom).
func copyStream(dst io.Writer, src io.Reader) int64 {
	n, _ := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, streamBuffer))
	return n
}

// closeWriter is a connection that can end its output alone.
type closeWriter interface{ CloseWrite() error }

// pipe copies client to dockerd and dockerd to client until both
// directions end, and returns the bytes of each. The client's end of input
// becomes dockerd's (CloseWrite); dockerd's end of output becomes the
// client's, and the client then has lingerAfterOutput to finish.
func pipe(client net.Conn, cr io.Reader, up net.Conn, ur io.Reader) (in, out int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in = copyStream(up, cr)
		if cw, ok := up.(closeWriter); ok {
			cw.CloseWrite()
		}
	}()
	out = copyStream(client, ur)
	if cw, ok := client.(closeWriter); ok {
		cw.CloseWrite()
	}
	client.SetReadDeadline(time.Now().Add(lingerAfterOutput))
	wg.Wait()
	return in, out
}
