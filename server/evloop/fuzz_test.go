package evloop

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	fuzzOnce sync.Once
	fuzzAddr string
)

// FuzzRequest sends arbitrary bytes as one client's whole input (then a
// half-close) to a server that runs /slow* on goroutines and the rest in
// place. Whatever the bytes, the server must close or answer within the
// deadline, never panic or hang, and still answer the next client.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nab",
		"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n",
		"\r\n\r\n", "GET", "GET / HTTP/1.1\n\n", "\x00\xff\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzOnce.Do(func() {
			s, err := New(Config{Handler: echo(nil), MaxHeaderBytes: 2048, MaxBodyBytes: 1024, ReadTimeout: time.Second, Loops: 1,
				Inline: func(ctx *fasthttp.RequestCtx) bool { return !strings.HasPrefix(string(ctx.Path()), "/slow") }})
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = s.Serve("127.0.0.1:0") }()
			<-s.Ready()
			fuzzAddr = s.Addr().String()
		})
		c, err := net.Dial("tcp", fuzzAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(in); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil && !isResetErr(err) {
			t.Fatalf("reading to the end: %v (hung or broken)", err)
		}
		c2, br := dial(t, fuzzAddr)
		if _, err := c2.Write([]byte("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, body := readAnswer(t, br, "GET"); body != "GET /next " {
			t.Fatalf("next client got %q", body)
		}
	})
}

// isResetErr: the server may reset a connection it closed with input
// still unread (an error answer before the rest of a request).
func isResetErr(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// FuzzPlainTarget: whatever the scan passes, fasthttp's URI parser
// accepts, so checkTarget refuses exactly what fasthttp.Server would.
func FuzzPlainTarget(f *testing.F) {
	f.Add([]byte("/v1/ad?x=1"), []byte("127.0.0.1:8080"))
	f.Add([]byte("/a?u=http://x"), []byte("edge"))
	f.Add([]byte("/"), []byte("[::1]"))
	f.Fuzz(func(t *testing.T, uri, host []byte) {
		if !plainTarget(uri) || !plainHost(host) {
			return
		}
		var u fasthttp.URI
		if err := u.Parse(host, uri); err != nil {
			t.Fatalf("%q host %q: the scan passed it, fasthttp refuses it: %v", uri, host, err)
		}
	})
}
