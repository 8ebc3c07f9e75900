package edge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
	"github.com/adedge/adedge/server/geo"
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

// TestReplayStormAtTheEdge: one impression URL sent 100k times through
// the edge's handler answers 204 every time, counts once (impressions,
// revenue, tracked), holds one id in the recent-id set, and the heap does
// not grow with the storm; the log has one first-seen record and every
// replay as a duplicate record or counted dropped (the bounded queue).
func TestReplayStormAtTheEdge(t *testing.T) {
	dir := t.TempDir()
	cfg, rec := withEvents(t, events.Options{Dir: dir, Queue: 64})
	e := newEnv(t, envOpts{store: "none", noWorkers: true, config: cfg})
	q := e.search(1, anyCampaign)[0]
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(q.uri())
	e.srv.Handler(&ctx)
	ad := decodeAd(t, &resp{code: ctx.Response.StatusCode(), body: append([]byte(nil), ctx.Response.Body()...)})
	imp := []byte(trackPath(t, ad.ImpressionURL))
	pixel := func() {
		ctx.Request.Reset()
		ctx.Request.SetRequestURIBytes(imp)
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
		if ctx.Response.StatusCode() != 204 {
			t.Fatalf("pixel %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	pixel() // first seen
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 100_000
	if raceEnabled {
		n = 10_000 // the same checks at a tenth: -race makes each request ~10x slower
	}
	for range n {
		pixel()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for name, want := range map[string]float64{"adedge_impressions_total": 1, "adedge_revenue_micros_total": float64(ad.PriceMicros),
		"adedge_events_tracked_total": 1, "adedge_events_duplicates_total": float64(n), "adedge_events_seen_ids": 1} {
		if got := e.metric(name); got != want {
			t.Errorf("%s %v after the storm, want %v", name, got, want)
		}
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 4<<20 {
		t.Errorf("heap grew %d bytes over %d replays", grew, n)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	var first, dups int
	for _, ev := range logged(t, dir) {
		switch {
		case ev.Kind != events.KindImp:
		case ev.Duplicate():
			dups++
		default:
			first++
		}
	}
	if dropped := rec.Stats().DupDropped; first != 1 || int64(dups)+dropped != int64(n) {
		t.Errorf("log: %d first-seen impressions, %d duplicate records + %d dropped, want 1 and %d", first, dups, dropped, n)
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

// TestEventFieldsV2: an impression's event carries what token v2 carries
// (placement, country, OS, device type, format, privacy, the token
// version), the device hash and the client IP; a v1 token still in flight
// verifies, is recorded once with token version 1 and its IP truncated
// (its privacy level is unknown); VAST quartile pings are recorded once
// each as video events; the decision carries latency, share and the
// device hash.
func TestEventFieldsV2(t *testing.T) {
	dir := t.TempDir()
	withRec, rec := withEvents(t, events.Options{Dir: dir})
	cfg := func(c *Config) {
		withRec(c)
		c.TrustedProxies = geo.Proxies{netip.MustParsePrefix("0.0.0.0/0")} // the in-memory peer: believe X-Forwarded-For
	}
	e := newEnv(t, envOpts{httpServer: true, config: cfg})
	// Pixels come from 203.0.113.77 (through the "balancer").
	get := func(uri string) int {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI("http://edge" + uri)
		req.Header.Set("X-Forwarded-For", "203.0.113.77")
		if err := e.client.DoTimeout(req, res, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode()
	}
	q := e.search(1, anyCampaign)[0]
	q.device = "dev-fields-1"
	ad := checkFill(t, e, e.get(q.uri()), q, "production")
	if code := get(trackPath(t, ad.ImpressionURL)); code != 204 {
		t.Fatalf("impression: %d", code)
	}
	tok := tokenOf(t, ad.ImpressionURL)
	for i := 0; i < 2; i++ {
		if code := get("/v1/video?e=midpoint&t=" + tok); code != 204 {
			t.Fatalf("midpoint %d: %d", i, code)
		}
	}
	if code := get("/v1/video?e=complete&t=" + tok); code != 204 {
		t.Fatalf("complete: %d", code)
	}
	if got := e.metric("adedge_video_events_total", "event", "midpoint"); got != 1 {
		t.Errorf("midpoint counted %v times, want 1 (the replay is a duplicate)", got)
	}
	// A token of the version before: issued by an edge not yet upgraded.
	var c token.Claims
	if err := e.signer.Verify([]byte(tok), time.Now(), &c); err != nil {
		t.Fatal(err)
	}
	old := token.Claims{Version: token.V1, Issued: c.Issued, PriceMicros: 777, Env: c.Env, Test: c.Test,
		Campaign: []byte(ad.Campaign), Creative: []byte(ad.Creative.ID), Device: []byte("dev-v1"),
		Experiment: append([]byte(nil), c.Experiment...), Variant: append([]byte(nil), c.Variant...), Snapshot: []byte("old")}
	v1, err := e.signer.Append(nil, &old)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if code := get("/v1/imp?t=" + string(v1)); code != 204 {
			t.Fatalf("v1 impression %d: %d", i, code)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	var imp, impV1, dec events.Event
	video := map[events.Kind][2]int{}
	for _, ev := range logged(t, dir) {
		switch {
		case ev.Kind == events.KindAd:
			dec = ev
		case ev.Kind == events.KindImp && !ev.Duplicate() && ev.PriceMicros == 777:
			impV1 = ev
		case ev.Kind == events.KindImp && !ev.Duplicate():
			imp = ev
		case ev.Kind >= events.KindVideoStart:
			n := video[ev.Kind]
			if ev.Duplicate() {
				n[1]++
			} else {
				n[0]++
			}
			video[ev.Kind] = n
		}
	}
	dh := xxhash.Sum64String(q.device)
	if imp.Version != events.Version || imp.TokenVersion != token.Version || string(imp.Placement) != q.placement ||
		!strings.EqualFold(string(imp.Country), q.country) || string(imp.OS) != q.os || imp.Format == 0 || imp.DeviceHash != dh ||
		string(imp.IP) != "203.0.113.77" || imp.Privacy != 0 {
		t.Errorf("impression event %+v (query %+v)", imp, q)
	}
	if impV1.TokenVersion != token.V1 || len(impV1.Placement) != 0 || len(impV1.Country) != 0 || string(impV1.IP) != "203.0.113.0" {
		t.Errorf("v1-token impression event %+v: want token version 1, no placement/country, ip truncated", impV1)
	}
	if video[events.KindVideoMidpoint] != [2]int{1, 1} || video[events.KindVideoComplete] != [2]int{1, 0} {
		t.Errorf("video events (first, duplicates): %v", video)
	}
	if dec.LatencyUS == 0 || dec.DeviceHash != dh || dec.ShareBP == 0 || string(dec.Placement) != q.placement || len(dec.IP) == 0 {
		t.Errorf("decision event %+v", dec)
	}
}

// TestEventIPTruncation: the events' ip is the client address, cut to
// /24 (IPv4) or /48 (IPv6) when the privacy level asks for it.
func TestEventIPTruncation(t *testing.T) {
	s := &Server{}
	st := &reqState{}
	for _, c := range []struct {
		peer     string
		truncate bool
		want     string
	}{
		{"203.0.113.77", false, "203.0.113.77"},
		{"203.0.113.77", true, "203.0.113.0"},
		{"2001:db8:1234:5678::9", false, "2001:db8:1234:5678::9"},
		{"2001:db8:1234:5678::9", true, "2001:db8:1234::"},
	} {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		ip := netip.MustParseAddr(c.peer)
		ctx.Init(&req, &net.TCPAddr{IP: ip.AsSlice(), Port: 1}, nil)
		if got := string(s.appendEventIP(&ctx, st, c.truncate)); got != c.want {
			t.Errorf("%s truncate=%v: %q, want %q", c.peer, c.truncate, got, c.want)
		}
	}
}

// TestAppendLayers: a layered set's events name every layer's assignment;
// a set of one unnamed layer leaves the field empty (test/variant say it).
func TestAppendLayers(t *testing.T) {
	set, err := abtest.ParseSet([]byte(`{"id":"e","salt":"s","layers":[{"id":"a","segments":100},{"id":"b","salt":"x","segments":100}],` +
		`"tests":[{"id":"t1","layer":"a","variant":"v1","segments":"0-99"},{"id":"t2","layer":"b","variant":"v2","segments":"0-99"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := abtest.NewBucketer(set, abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b.AppendLayers(nil, b.Assign([]byte("dev-1")))); got != "a:t1:v1:10000;b:t2:v2:10000" {
		t.Errorf("layered: %q", got)
	}
	legacy, err := abtest.NewBucketer(abtest.Set{ID: "x", Salt: "s", Tests: []abtest.Test{{ID: "t", Variant: "v", ShareBP: 10000}}}, abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	if got := legacy.AppendLayers(nil, legacy.Assign([]byte("dev-1"))); len(got) != 0 {
		t.Errorf("legacy set: %q, want empty", got)
	}
}
