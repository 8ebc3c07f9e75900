package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHealthHandler is GET /health through the serving handler, as a
// balancer's probe reaches it: status model, snapshot reference, JSON into
// a pooled buffer. It must not allocate.
func BenchmarkHealthHandler(b *testing.B) {
	e := newEnv(b, envOpts{store: "none", noWorkers: true})
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("http://edge/health")
	for i := 0; i < 100; i++ {
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
	}
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("/health: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
	}
}

// TestHealthHandlerAllocs keeps the probe allocation-free in make test.
func TestHealthHandlerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := newEnv(t, envOpts{store: "none", noWorkers: true})
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("http://edge/health")
	for i := 0; i < 10; i++ {
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
	}
	if n := testing.AllocsPerRun(200, func() { ctx.Response.Reset(); e.srv.Handler(&ctx) }); n != 0 {
		t.Errorf("GET /health: %v allocs per probe", n)
	}
}
