package evloop

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"
)

var fixedBody = bytes.Repeat([]byte("a"), 1000)

func fixed(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(fixedBody)
}

// roundTrips sends n keep-alive GETs on one connection, each after the
// previous answer, reading answers into a fixed buffer (the client side
// allocates nothing).
func roundTrips(tb testing.TB, addr string, n int) {
	tb.Helper()
	c, _ := dial(tb, addr)
	req := []byte("GET /v1/ad?placement=p HTTP/1.1\r\nHost: edge\r\n\r\n")
	buf := make([]byte, 64<<10)
	var want int
	for i := 0; i < n; i++ {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		got := 0
		for {
			k, err := c.Read(buf[got:])
			if err != nil {
				tb.Fatal(err)
			}
			got += k
			if want == 0 {
				if e := bytes.Index(buf[:got], []byte("\r\n\r\n")); e >= 0 {
					want = e + 4 + len(fixedBody)
				}
			}
			if want != 0 && got >= want {
				break
			}
		}
	}
}

// TestInlineAllocs: an answer run on the loop allocates nothing once the
// connection is warm (the handler's own allocations aside): the process
// mallocs over 2,000 requests, client included, stay under 0.1 a request.
func TestInlineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, addr := start(t, Config{Handler: fixed, Inline: func(*fasthttp.RequestCtx) bool { return true }, Loops: 1})
	roundTrips(t, addr, 200)
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	const n = 2000
	roundTrips(t, addr, n)
	runtime.ReadMemStats(&b)
	// The new client connection costs a few allocations on both sides.
	if per := float64(b.Mallocs-a.Mallocs) / n; per > 0.1 {
		t.Fatalf("%.2f allocations per request (%d over %d)", per, b.Mallocs-a.Mallocs, n)
	}
}

// BenchmarkInline is one keep-alive request answered on the loop, client
// round trip included; BenchmarkOffloaded the same run on a goroutine.
func BenchmarkInline(b *testing.B)    { benchRoundTrips(b, true) }
func BenchmarkOffloaded(b *testing.B) { benchRoundTrips(b, false) }

func benchRoundTrips(b *testing.B, inline bool) {
	_, addr := start(b, Config{Handler: fixed, Inline: func(*fasthttp.RequestCtx) bool { return inline }, Loops: 1})
	roundTrips(b, addr, 100)
	b.ReportAllocs()
	b.ResetTimer()
	roundTrips(b, addr, b.N)
}
