package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// formRequest is one request of a form: method, URI and body.
type formRequest struct {
	method string
	uri    []byte
	body   []byte
}

// forms builds the request forms docs/BENCHMARKS.md compares, all filling
// on the same placements without a device: GET /v1/ad, flat JSON POST
// /v1/ad, OpenRTB with 1 and 4 banner imps, and OpenRTB rewarded video
// (a VAST answer).
func forms(tb testing.TB, e *env) map[string][]formRequest {
	tb.Helper()
	out := map[string][]formRequest{}
	banners := e.queriesForTB(tb, "banner", 32)
	for _, q := range banners {
		out["get"] = append(out["get"], formRequest{"GET", []byte("http://edge" + q.uri()), nil})
		out["json"] = append(out["json"], formRequest{"POST", []byte("http://edge/v1/ad"), q.json()})
		out["openrtb-1imp"] = append(out["openrtb-1imp"], formRequest{"POST", []byte("http://edge/openrtb2/auction"), ortbBody(q, "", imp{"1", q.placement, "bannerany"})})
		out["openrtb-4imp"] = append(out["openrtb-4imp"], formRequest{"POST", []byte("http://edge/openrtb2/auction"),
			ortbBody(q, "", imp{"1", q.placement, "bannerany"}, imp{"2", q.placement, "bannerany"}, imp{"3", q.placement, "bannerany"}, imp{"4", q.placement, "bannerany"})})
	}
	for _, q := range e.queriesForTB(tb, "rewarded", 32) {
		out["openrtb-vast"] = append(out["openrtb-vast"], formRequest{"POST", []byte("http://edge/openrtb2/auction"), ortbBody(q, "", imp{"1", q.placement, "rewarded"})})
	}
	return out
}

func serveForm(ctx *fasthttp.RequestCtx, h fasthttp.RequestHandler, r formRequest) {
	ctx.Request.Reset()
	ctx.Request.Header.SetMethod(r.method)
	ctx.Request.SetRequestURIBytes(r.uri)
	if r.body != nil {
		ctx.Request.SetBody(r.body)
	}
	ctx.Response.Reset()
	h(ctx)
}

// BenchmarkServeForms is the handler's cost per request form on the medium
// snapshot, no device (no profile read): docs/BENCHMARKS.md "Request forms".
func BenchmarkServeForms(b *testing.B) {
	e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true})
	fs := forms(b, e)
	for _, name := range []string{"get", "json", "openrtb-1imp", "openrtb-4imp", "openrtb-vast"} {
		reqs := fs[name]
		b.Run(name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			for i := range 2 * len(reqs) {
				serveForm(&ctx, e.srv.Handler, reqs[i%len(reqs)])
			}
			filled := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				serveForm(&ctx, e.srv.Handler, reqs[i%len(reqs)])
				if ctx.Response.StatusCode() == fasthttp.StatusOK {
					filled++
				}
			}
			b.ReportMetric(float64(filled)/float64(b.N), "fill")
		})
	}
}

// TestServeFormsAllocs: every form, OpenRTB and VAST included, allocates
// nothing in steady state without a device.
func TestServeFormsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	e := newEnv(t, envOpts{store: "none", noWorkers: true})
	for name, reqs := range forms(t, e) {
		var ctx fasthttp.RequestCtx
		i, fills := 0, 0
		run := func() {
			serveForm(&ctx, e.srv.Handler, reqs[i%len(reqs)])
			if c := ctx.Response.StatusCode(); c != 200 && c != 204 {
				t.Fatalf("%s: %d %s", name, c, ctx.Response.Body())
			} else if c == 200 {
				fills++
			}
			i++
		}
		for range 2 * len(reqs) {
			run()
		}
		if fills == 0 {
			t.Fatalf("%s: no fill", name)
		}
		if n := testing.AllocsPerRun(300, run); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
