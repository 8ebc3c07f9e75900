package edge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
	"github.com/adedge/adedge/server/token"
)

// withEvents opens a recorder in a temp dir for the env's Config.
func withEvents(tb testing.TB, opt events.Options) (func(*Config), *events.Recorder) {
	tb.Helper()
	if opt.Dir == "" {
		opt.Dir = tb.TempDir()
	}
	rec, _, err := events.Open(opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rec.Close() })
	return func(c *Config) { c.Events, c.EdgeName = rec, "edge-t" }, rec
}

// logged reads every record of a log directory.
func logged(tb testing.TB, dir string) []events.Event {
	tb.Helper()
	r := wal.NewReader(dir, wal.Pos{}, nil)
	var out []events.Event
	for {
		recs, err := r.Next(256)
		if err != nil {
			tb.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, x := range recs {
			var e events.Event
			if err := e.Decode(append([]byte(nil), x.Payload...)); err != nil {
				tb.Fatal(err)
			}
			out = append(out, e)
		}
	}
}

// TestPixelsExactlyOnce: a replayed impression or click answers as the
// first did, is logged as a duplicate and adds no revenue or count; the
// decision is logged with the response's request id.
func TestPixelsExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	cfg, rec := withEvents(t, events.Options{Dir: dir})
	e := newEnv(t, envOpts{httpServer: true, config: cfg})
	q := e.search(1, anyCampaign)[0]
	ad := checkFill(t, e, e.get(q.uri()), q, "production")
	for i := 0; i < 3; i++ {
		if r := e.get(trackPath(t, ad.ImpressionURL)); r.code != 204 {
			t.Fatalf("impression %d: %v", i, r)
		}
		r := e.get(trackPath(t, ad.ClickURL))
		if r.code != 302 || r.header["location"] != e.creative(ad.Creative.ID).click {
			t.Fatalf("click %d: %v %q", i, r, r.header["location"])
		}
	}
	if got := e.metric("adedge_impressions_total"); got != 1 {
		t.Errorf("impressions %v, want 1", got)
	}
	if got := e.metric("adedge_clicks_total"); got != 1 {
		t.Errorf("clicks %v, want 1", got)
	}
	if got := e.metric("adedge_revenue_micros_total"); got != float64(ad.PriceMicros) {
		t.Errorf("revenue %v, want %d", got, ad.PriceMicros)
	}
	if got := e.metric("adedge_events_duplicates_total"); got != 4 {
		t.Errorf("duplicates metric %v, want 4", got)
	}
	if err := rec.Close(); err != nil { // drains the queue
		t.Fatal(err)
	}
	byKind := map[events.Kind][2]int{}
	var imp events.Event
	for _, ev := range logged(t, dir) {
		c := byKind[ev.Kind]
		if ev.Duplicate() {
			c[1]++
		} else {
			c[0]++
		}
		byKind[ev.Kind] = c
		switch ev.Kind {
		case events.KindAd:
			if got := hex.EncodeToString(binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(ev.ID[:8]))); got != ad.RequestID {
				t.Errorf("decision id %s, response request_id %s", got, ad.RequestID)
			}
			if ev.Outcome != events.OutcomeFill || string(ev.Campaign) != ad.Campaign || ev.PriceMicros != ad.PriceMicros ||
				string(ev.Placement) != q.placement || string(ev.Edge) != "edge-t" || ev.Weight != 1 {
				t.Errorf("decision event %+v", ev)
			}
		case events.KindImp:
			if !ev.Duplicate() {
				imp = ev
			}
		}
	}
	want := map[events.Kind][2]int{events.KindAd: {1, 0}, events.KindImp: {1, 2}, events.KindClick: {1, 2}}
	for k, w := range want {
		if byKind[k] != w {
			t.Errorf("%s: %v (first, duplicates), want %v", k, byKind[k], w)
		}
	}
	if string(imp.Campaign) != ad.Campaign || string(imp.Creative) != ad.Creative.ID || imp.PriceMicros != ad.PriceMicros || imp.TestID == nil {
		t.Errorf("impression event %+v", imp)
	}
	// The id is the token's: the same on any edge that verifies it.
	var c token.Claims
	if err := e.signer.Verify([]byte(tokenOf(t, ad.ImpressionURL)), time.Now(), &c); err != nil {
		t.Fatal(err)
	}
	if string(imp.ID[:]) != string(c.MAC()) {
		t.Errorf("impression id %x, token MAC %x", imp.ID, c.MAC())
	}
}

// TestPixelNotRecordedIs503: when the log cannot take the event the pixel
// answers 503 with Retry-After, counts nothing, and /health degrades; ads
// keep serving.
func TestPixelNotRecordedIs503(t *testing.T) {
	cfg, rec := withEvents(t, events.Options{Log: wal.Options{MaxBytes: 64}, SampleAds: -1})
	e := newEnv(t, envOpts{httpServer: true, config: cfg,
		healthEvents: func(now time.Time) (bool, bool) { return EventsFailing(rec, now, time.Minute), false }})
	q := e.search(1, anyCampaign)[0]
	ad := checkFill(t, e, e.get(q.uri()), q, "production")
	r := e.get(trackPath(t, ad.ImpressionURL))
	if r.code != 503 || r.header["retry-after"] != "1" {
		t.Fatalf("impression on a full log: %v retry-after %q", r, r.header["retry-after"])
	}
	if e.metric("adedge_impressions_total") != 0 || e.metric("adedge_revenue_micros_total") != 0 {
		t.Error("an unrecorded impression was counted")
	}
	if got := e.metric("adedge_events_unrecorded_total"); got != 1 {
		t.Errorf("unrecorded %v", got)
	}
	h := e.get("/health")
	if h.code != 200 || !bytes.Contains(h.body, []byte(`"events_not_recorded"`)) || !bytes.Contains(h.body, []byte(`"status":"degraded"`)) {
		t.Errorf("/health after a refused pixel: %s", h.body)
	}
	checkFill(t, e, e.get(q.uri()), q, "production")
}

// TestServeAdAllocsWithEvents: decision logging keeps the ad path at zero
// allocations; a pixel (first seen or duplicate) allocates nothing either.
func TestServeAdAllocsWithEvents(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	cfg, _ := withEvents(t, events.Options{Log: wal.Options{MaxBytes: 1 << 30}})
	e := newEnv(t, envOpts{store: "none", noWorkers: true, config: cfg})
	uris := fillMix(t, e, 32, nil)
	var ctx fasthttp.RequestCtx
	i := 0
	run := func() {
		ctx.Request.SetRequestURIBytes(uris[i%len(uris)])
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		i++
	}
	for range 2 * len(uris) {
		run()
	}
	if n := testing.AllocsPerRun(500, run); n != 0 {
		t.Errorf("ad request with decision logging: %v allocs/op, want 0", n)
	}
	run()
	imp := []byte(trackPath(t, decodeAd(t, &resp{code: 200, body: append([]byte(nil), ctx.Response.Body()...)}).ImpressionURL))
	pixel := func() {
		ctx.Request.SetRequestURIBytes(imp)
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
		if ctx.Response.StatusCode() != 204 {
			t.Fatalf("pixel %d", ctx.Response.StatusCode())
		}
	}
	pixel()
	if n := testing.AllocsPerRun(200, pixel); n != 0 {
		t.Errorf("duplicate pixel: %v allocs/op, want 0", n)
	}
}

// BenchmarkServeAdEvents is BenchmarkServeAd's no-device case with
// decision logging on and off, side by side (docs/BENCHMARKS.md ratio).
func BenchmarkServeAdEvents(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, nil))
	})
	b.Run("on", func(b *testing.B) {
		cfg, _ := withEvents(b, events.Options{Log: wal.Options{MaxBytes: 64 << 30}})
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true, config: cfg})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, nil))
	})
}
