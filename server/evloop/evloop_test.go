package evloop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// start serves h (with Inline for paths not starting /slow) and returns
// its address; the server is shut down when the test ends.
func start(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Inline == nil {
		cfg.Inline = func(ctx *fasthttp.RequestCtx) bool { return !strings.HasPrefix(string(ctx.Path()), "/slow") }
	}
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve("127.0.0.1:0") }()
	<-s.Ready()
	if s.Addr() == nil {
		t.Fatalf("serve: %v", <-done)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, s.Addr().String()
}

// echo answers "path body" and, under /slow, waits for release first.
func echo(release <-chan struct{}) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if strings.HasPrefix(string(ctx.Path()), "/slow") && release != nil {
			<-release
		}
		ctx.SetContentType("text/plain")
		fmt.Fprintf(ctx, "%s %s %s", ctx.Method(), ctx.Path(), ctx.PostBody())
	}
}

func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

func readAnswer(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return res, string(b)
}

func TestKeepAliveAndPipelining(t *testing.T) {
	release := make(chan struct{})
	_, addr := start(t, Config{Handler: echo(release)})
	c, br := dial(t, addr)
	for i := 0; i < 50; i++ {
		fmt.Fprintf(c, "GET /a%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		res, body := readAnswer(t, br, "GET")
		if res.StatusCode != 200 || body != fmt.Sprintf("GET /a%d ", i) {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
	}
	// Three pipelined requests, the middle one on a goroutine held back:
	// nothing after it may overtake it.
	fmt.Fprint(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readAnswer(t, br, "GET"); body != "GET /one " {
		t.Fatalf("first answer %q", body)
	}
	close(release)
	for _, want := range []string{"POST /slow abc", "GET /three "} {
		if _, body := readAnswer(t, br, "GET"); body != want {
			t.Fatalf("answer %q, want %q", body, want)
		}
	}
}

func TestPartialRequests(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil)})
	c, br := dial(t, addr)
	req := "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, body := readAnswer(t, br, "POST"); body != "POST /p hello" {
		t.Fatalf("answer %q", body)
	}
}

// TestChunkedBodies: a chunked body, delivered whole or a byte at a time,
// with extensions and trailers, reaches the handler decoded; the request
// after it on the connection is answered too.
func TestChunkedBodies(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil)})
	req := "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, whole := range []bool{true, false} {
		c, br := dial(t, addr)
		if whole {
			fmt.Fprint(c, req)
		} else {
			for i := 0; i < len(req); i++ {
				if _, err := c.Write([]byte{req[i]}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, body := readAnswer(t, br, "POST"); body != "POST /c abc0123456789" {
			t.Fatalf("whole=%v: chunked answer %q", whole, body)
		}
		if _, body := readAnswer(t, br, "GET"); body != "GET /after " {
			t.Fatalf("whole=%v: next answer %q", whole, body)
		}
	}
	// 100-continue before a chunked body.
	c, br := dial(t, addr)
	fmt.Fprint(c, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	readContinue(t, br)
	fmt.Fprint(c, "2\r\nhi\r\n0\r\n\r\n")
	if _, body := readAnswer(t, br, "POST"); body != "POST /e hi" {
		t.Fatalf("answer %q", body)
	}
}

// readContinue reads an interim "100 Continue" answer, which has no
// headers.
func readContinue(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("interim answer %q, %v", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100: %q", l)
	}
}

func TestExpectContinue(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil)})
	c, br := dial(t, addr)
	fmt.Fprint(c, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	readContinue(t, br)
	fmt.Fprint(c, "body")
	if _, body := readAnswer(t, br, "POST"); body != "POST /e body" {
		t.Fatalf("answer %q", body)
	}
}

func TestHeadHasNoBody(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil)})
	c, br := dial(t, addr)
	fmt.Fprint(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
	res, body := readAnswer(t, br, "HEAD")
	if res.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", res.StatusCode, body)
	}
	if _, body := readAnswer(t, br, "GET"); body != "GET /g " {
		t.Fatalf("after HEAD: %q", body)
	}
}

func TestBadRequests(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil), MaxHeaderBytes: 1024, MaxBodyBytes: 100})
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"garbage", "\x00\x01 nonsense\r\n\r\n", 400},
		{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
		{"header never ends", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000), 431},
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413},
		{"bad host", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
		{"bad host port", "GET / HTTP/1.1\r\nHost: edge:8x\r\n\r\n", 400},
		{"bad scheme", "GET 1ht!tp://edge/ HTTP/1.1\r\nHost: edge\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
		{"chunk too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413},
		{"chunks over the body limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("a\r\n0123456789\r\n", 11), 413},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400},
		{"chunk without its CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dial(t, addr)
			fmt.Fprint(c, tc.req)
			res, _ := readAnswer(t, br, "GET")
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.code)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("connection left open after a %d (read: %v)", tc.code, err)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil), ReadTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	// A request begun and never finished: 408, then closed.
	c, br := dial(t, addr)
	fmt.Fprint(c, "GET /slowloris HTTP/1.1\r\nHost: x\r\n")
	res, _ := readAnswer(t, br, "GET")
	if res.StatusCode != 408 {
		t.Fatalf("status %d, want 408", res.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the 408: %v", err)
	}
	// An idle keep-alive connection is closed once idle for IdleTimeout.
	c2, br2 := dial(t, addr)
	fmt.Fprint(c2, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	readAnswer(t, br2, "GET")
	began := time.Now()
	if _, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	if el := time.Since(began); el < 500*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before its 600ms", el)
	}
}

func TestMaxConns(t *testing.T) {
	s, addr := start(t, Config{Handler: echo(nil), MaxConns: 1})
	c, br := dial(t, addr)
	fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	readAnswer(t, br, "GET")
	if n := s.OpenConnections(); n != 1 {
		t.Fatalf("open connections %d, want 1", n)
	}
	_, br2 := dial(t, addr)
	if res, _ := readAnswer(t, br2, "GET"); res.StatusCode != 503 {
		t.Fatalf("second connection: %d, want 503", res.StatusCode)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	slow := echo(release)
	h := func(ctx *fasthttp.RequestCtx) { started <- struct{}{}; slow(ctx) }
	cfg := Config{Handler: h, Inline: func(ctx *fasthttp.RequestCtx) bool { return false }, Loops: 1}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve("127.0.0.1:0") }()
	<-s.Ready()
	c, br := dial(t, s.Addr().String())
	fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	// Wait until the request runs, then shut down with it in flight.
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("request never started")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	res, body := readAnswer(t, br, "GET")
	if body != "GET /slow " || !res.Close {
		t.Fatalf("in-flight answer %q, close %v", body, res.Close)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestNoHandler(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "handler") {
		t.Fatalf("New without a handler: %v", err)
	}
	s, _ := New(Config{Handler: echo(nil)})
	if err := s.Serve("256.0.0.1:1"); err == nil {
		t.Fatal("Serve on a bad address: no error")
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not closed after a failed Serve")
	}
	if s.Addr() != nil {
		t.Fatalf("Addr %v after a failed Serve", s.Addr())
	}
}

// TestCheckTargetIsFasthttps: for targets and hosts the scan passes,
// fasthttp's parser agrees; the rest go to the parser itself.
func TestCheckTargetIsFasthttps(t *testing.T) {
	for _, tc := range []struct{ uri, host string }{
		{"/v1/ad?x=1", "edge"}, {"/v1/ad?x=1", "127.0.0.1:8080"}, {"/a?u=http://x", "edge"},
		{"/", "[::1]:80"}, {"/", "edge:8x"}, {"/", ""}, {"http://edge/x", "edge"}, {"/\x7f", "edge"},
		{"/", "user@edge"}, {"/", "ed%41ge"},
	} {
		var c conn
		var h fasthttp.RequestHeader
		h.SetRequestURI(tc.uri)
		h.SetHost(tc.host)
		var u fasthttp.URI
		want := u.Parse([]byte(tc.host), []byte(tc.uri))
		if got := c.checkTarget(&h); (got == nil) != (want == nil) {
			t.Errorf("%q host %q: checkTarget %v, fasthttp %v", tc.uri, tc.host, got, want)
		}
	}
}

// TestHTTP10ClosesUnlessKeepAlive: an HTTP/1.0 request without
// Connection: keep-alive gets its answer and a closed connection; with it,
// the connection stays.
func TestHTTP10ClosesUnlessKeepAlive(t *testing.T) {
	_, addr := start(t, Config{Handler: echo(nil)})
	c, br := dial(t, addr)
	fmt.Fprint(c, "GET /old HTTP/1.0\r\n\r\n")
	if _, body := readAnswer(t, br, "GET"); body != "GET /old " {
		t.Fatalf("answer %q", body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("HTTP/1.0 connection left open (read: %v)", err)
	}
	c2, br2 := dial(t, addr)
	for i := 0; i < 2; i++ {
		fmt.Fprint(c2, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		if _, body := readAnswer(t, br2, "GET"); body != "GET /ka " {
			t.Fatalf("keep-alive answer %d: %q", i, body)
		}
	}
}
