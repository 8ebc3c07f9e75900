package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestDrainClosesKeepAlive: once draining, every answer carries
// Connection: close, so keep-alive clients move to another edge while this
// one still serves them; before the drain connections stay open.
func TestDrainClosesKeepAlive(t *testing.T) {
	e := newEnv(t, envOpts{store: "none", noWorkers: true})
	q := e.search(1, anyCampaign)[0]
	var ctx fasthttp.RequestCtx
	for _, uri := range []string{"http://edge" + q.uri(), "http://edge/health"} {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI(uri)
		e.srv.Handler(&ctx)
		if ctx.Response.ConnectionClose() {
			t.Errorf("%s before the drain: Connection: close", uri)
		}
	}
	e.health.Drain()
	for _, c := range []struct {
		uri  string
		code int
	}{{"http://edge" + q.uri(), 200}, {"http://edge/health", 503}} {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI(c.uri)
		e.srv.Handler(&ctx)
		if ctx.Response.StatusCode() != c.code || !ctx.Response.ConnectionClose() {
			t.Errorf("%s draining: %d close=%v, want %d with Connection: close", c.uri, ctx.Response.StatusCode(), ctx.Response.ConnectionClose(), c.code)
		}
	}
}
