package edge

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/staging"
	"github.com/adedge/adedge/snapshot"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// bucketOf computes a device's A/B labels from the serving snapshot's
// experiment set by the rule in DESIGN.md, independently of package abtest:
// slot = xxhash64(salt + ":" + device) mod 10000, tests in order by share.
func (e *env) bucketOf(device string) (test, variant string, index uint8) {
	e.t.Helper()
	if device == "" {
		return "control", "unassigned", 0
	}
	snap := e.src.Acquire()
	defer snap.Release()
	// The documented rules, written out again (docs/EXPERIMENTS.md): the
	// first layer's salt and segments, or the original form's ranges.
	var set struct {
		Salt   string `json:"salt"`
		Layers []struct {
			ID, Salt string
			Segments uint32
		}
		Tests []struct {
			ID, Variant, Layer, Segments string
			ShareBP                      uint32 `json:"share_bp"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(snap.R.ExperimentsJSON(), &set); err != nil {
		e.t.Fatal(err)
	}
	if len(set.Layers) > 0 {
		l := set.Layers[0]
		slot := uint32(xxhash.Sum64String(l.Salt+":"+device) % 10000)
		seg := slot / (10000 / l.Segments)
		n := uint8(0)
		for _, t := range set.Tests {
			if t.Layer != l.ID {
				continue
			}
			n++
			for _, r := range strings.Split(t.Segments, ",") {
				lo, hi, _ := strings.Cut(r, "-")
				a, _ := strconv.Atoi(lo)
				b := a
				if hi != "" {
					b, _ = strconv.Atoi(hi)
				}
				if int(seg) >= a && int(seg) <= b {
					return t.ID, t.Variant, n
				}
			}
		}
		return "control", "control", 0
	}
	slot := uint32(xxhash.Sum64String(set.Salt+":"+device) % 10000)
	cum := uint32(0)
	for i, t := range set.Tests {
		cum += t.ShareBP
		if slot < cum {
			return t.ID, t.Variant, uint8(i + 1)
		}
	}
	return "control", "control", 0
}

// sumRows adds up flushed rows by env.
func sumRows(rows []abtest.Row) map[string]*report.Totals {
	out := map[string]*report.Totals{}
	for i := range rows {
		t := out[rows[i].Env]
		if t == nil {
			t = &report.Totals{}
			out[rows[i].Env] = t
		}
		t.Add(&rows[i])
	}
	return out
}

func TestBucketsCountersAndForgedTokens(t *testing.T) {
	ctr := abtest.NewCounters()
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Counters = ctr }})
	q := e.search(1, anyCampaign)[0]
	seen := map[string]int{}
	var fills, imps, revenue uint64
	const n = 300
	for i := 0; i < n; i++ {
		q.device = e.w.devices[i%len(e.w.devices)]
		if i%50 == 0 {
			q.device = "" // some unassigned
		}
		r := e.get(q.uri())
		if r.code == 204 {
			continue
		}
		ad := decodeAd(t, r) // checks labels and token claims against bucketOf
		seen[ad.Bucket.Test+"/"+ad.Bucket.Variant]++
		fills++
		if i%3 == 0 {
			if ir := e.get(trackPath(t, ad.ImpressionURL)); ir.code != 204 {
				t.Fatalf("impression: %v", ir)
			}
			imps++
			revenue += uint64(ad.PriceMicros)
			// A forged copy (one character changed) never counts.
			forged := []byte(trackPath(t, ad.ImpressionURL))
			forged[len(forged)-3] ^= 1
			if fr := e.get(string(forged)); fr.code != 403 {
				t.Fatalf("forged token answered %v", fr)
			}
		}
	}
	if len(seen) < 4 {
		t.Fatalf("only buckets %v over %d devices", seen, n)
	}
	now := time.Now()
	tot := sumRows(ctr.Flush("e", now.Add(-time.Minute), now))["production"]
	if tot == nil || tot.Requests != n || tot.Fills != fills || tot.Impressions != imps || tot.RevenueMicros != revenue {
		t.Fatalf("counted %+v, want requests %d fills %d impressions %d revenue %d", tot, n, fills, imps, revenue)
	}
}

// stagingServer is a stand-in staging edge on a loopback port.
type stagingServer struct {
	addr      string
	ln        net.Listener
	hits      atomic.Int64
	forwarded atomic.Int64
	delay     time.Duration
	stop      func()
}

func startStaging(t *testing.T, delay time.Duration) *stagingServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stagingServer{addr: ln.Addr().String(), ln: ln, delay: delay}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		s.hits.Add(1)
		if staging.IsForwarded(ctx) {
			s.forwarded.Add(1)
		}
		if s.delay > 0 {
			time.Sleep(s.delay)
		}
		ctx.Response.Header.Set("X-Adedge-Env", "staging")
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"from":"staging"}`)
	}}
	go func() { _ = srv.Serve(ln) }()
	var once sync.Once
	s.stop = func() { once.Do(func() { _ = srv.Shutdown() }) }
	t.Cleanup(s.stop)
	return s
}

func TestStagingForwardFallbackMirror(t *testing.T) {
	st := startStaging(t, 0)
	all, _ := abtest.NewStaging("", 100)
	fwd, err := staging.New(staging.Config{Upstreams: []string{st.addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctr := abtest.NewCounters()
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Counters = ctr; c.Staging = all; c.Forwarder = fwd }})
	q := e.search(1, anyCampaign)[0]
	q.device = e.w.devices[0]

	r := e.get(q.uri())
	if r.code != 200 || string(r.body) != `{"from":"staging"}` || r.header["x-adedge-env"] != "staging" {
		t.Fatalf("staged request: %v %v", r, r.header)
	}
	if st.forwarded.Load() != 1 {
		t.Fatalf("staging saw %d forwarded requests", st.forwarded.Load())
	}
	// No device: never staged. Already forwarded: served here.
	q2 := q
	q2.device = ""
	if r := e.get(q2.uri()); r.header["x-adedge-env"] != "production" {
		t.Fatalf("unassigned request went to %q", r.header["x-adedge-env"])
	}
	if st.hits.Load() != 1 {
		t.Fatalf("staging hits %d", st.hits.Load())
	}

	// Staging down: served locally, counted as a fallback and as staging's
	// forward error.
	st.stop() // closes the listener and the keep-alive connections
	r = e.get(q.uri())
	if r.code != 200 || r.header["x-adedge-env"] != "production" || r.header["x-adedge-staging"] != "fallback" {
		t.Fatalf("fallback: %v %v", r, r.header)
	}
	decodeAd(t, r)
	if s := fwd.Stats(); s.Fallbacks < 1 || s.Forwarded != 1 {
		t.Fatalf("stats %+v", s)
	}
	now := time.Now()
	sums := sumRows(ctr.Flush("e", now.Add(-time.Minute), now))
	if sums["staging"] == nil || sums["staging"].ForwardErrors < 1 || sums["production"].Requests != 2 {
		t.Fatalf("rows: staging %+v production %+v", sums["staging"], sums["production"])
	}
}

func TestStagingTimeoutIsShort(t *testing.T) {
	// A staging answer that takes 1.5 s against a 20 ms timeout: the
	// request must come back well before the answer would (750 ms leaves
	// room for a loaded machine under -race, and still fails a forward that
	// waits for staging).
	st := startStaging(t, 1500*time.Millisecond)
	all, _ := abtest.NewStaging("", 100)
	fwd, _ := staging.New(staging.Config{Upstreams: []string{st.addr}, Timeout: 20 * time.Millisecond})
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Staging = all; c.Forwarder = fwd }})
	q := e.search(1, anyCampaign)[0]
	q.device = e.w.devices[1]
	t0 := time.Now()
	r := e.get(q.uri())
	if el := time.Since(t0); el > 750*time.Millisecond {
		t.Fatalf("a slow staging held the request %v", el)
	}
	if r.header["x-adedge-staging"] != "fallback" || fwd.Stats().Fallbacks != 1 {
		t.Fatalf("slow staging: %v %v %+v", r, r.header, fwd.Stats())
	}
}

func TestStagingMirror(t *testing.T) {
	st := startStaging(t, 0)
	all, _ := abtest.NewStaging("", 100)
	// The 20 ms default timeout is not what this test is about: a loaded
	// machine under -race can take longer for a copy, which would count as
	// a mirror error, not a copy.
	fwd, _ := staging.New(staging.Config{Upstreams: []string{st.addr}, Mirror: true, Queue: 8, Workers: 1, Timeout: 5 * time.Second})
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { fwd.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Staging = all; c.Forwarder = fwd }})
	q := e.search(1, anyCampaign)[0]
	for i := 0; i < 5; i++ {
		q.device = "mirror-dev-" + strconv.Itoa(i)
		r := e.get(q.uri())
		if r.header["x-adedge-env"] != "production" || r.header["x-adedge-staging"] != "" {
			t.Fatalf("mirror mode answered from %v", r.header)
		}
	}
	waitFor(t, "mirror copies", func() bool { return st.forwarded.Load() == 5 })
	// The staging server counts a copy when it arrives; the forwarder counts
	// it mirrored once the answer is back, a moment later: poll for that too.
	waitFor(t, "mirror copies answered", func() bool { return fwd.Stats().Mirrored == 5 })
	if s := fwd.Stats(); s.Mirrored != 5 || s.MirrorDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// BenchmarkServeAdStaging is the DESIGN's "the 95% served locally see no
// added latency": the same non-staged requests with staging off and with
// staging at 5% (a live loopback upstream configured). The only extra work
// for them is one salted hash.
func BenchmarkServeAdStaging(b *testing.B) {
	st5, _ := abtest.NewStaging("", 5)
	var local []string
	for i := 0; len(local) < 1024; i++ {
		d := "bench-device-" + strconv.Itoa(i)
		if !st5.Staged([]byte(d)) {
			local = append(local, d)
		}
	}
	b.Run("staging-off", func(b *testing.B) {
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true,
			config: func(c *Config) { c.Counters = abtest.NewCounters() }})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, local))
	})
	b.Run("staging-5pct-local-95", func(b *testing.B) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) }}
		go func() { _ = srv.Serve(ln) }()
		defer func() { _ = srv.Shutdown() }()
		fwd, _ := staging.New(staging.Config{Upstreams: []string{ln.Addr().String()}})
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true,
			config: func(c *Config) { c.Counters = abtest.NewCounters(); c.Staging = st5; c.Forwarder = fwd }})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, local))
	})
}

// TestServeAdAllocsWithCounters: bucketing, the staging check and the
// per-bucket counters keep the DESIGN's 0 allocs/op on a filled request.
func TestServeAdAllocsWithCounters(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	st5, _ := abtest.NewStaging("", 5)
	fwd, _ := staging.New(staging.Config{Upstreams: []string{"127.0.0.1:1"}})
	ctr := abtest.NewCounters()
	e := newEnv(t, envOpts{store: "none", noWorkers: true,
		config: func(c *Config) { c.Counters = ctr; c.Staging = st5; c.Forwarder = fwd }})
	e.srv.store = nil // no profile read: its context.WithTimeout allocates
	var local []string
	for i := 0; len(local) < 64; i++ {
		if d := "alloc-dev-" + strconv.Itoa(i); !st5.Staged([]byte(d)) {
			local = append(local, d)
		}
	}
	uris := fillMix(t, e, 32, local)
	var ctx fasthttp.RequestCtx
	i := 0
	run := func() {
		ctx.Request.SetRequestURIBytes(uris[i%len(uris)])
		ctx.Response.Reset()
		e.srv.Handler(&ctx)
		if c := ctx.Response.StatusCode(); c != 200 && c != 204 {
			t.Fatalf("%s: %d %s", uris[i%len(uris)], c, ctx.Response.Body())
		}
		i++
	}
	for range 2 * len(uris) {
		run()
	}
	if n := testing.AllocsPerRun(500, run); n != 0 {
		t.Errorf("ad request with device, counters and staging on: %v allocs/op, want 0", n)
	}
	ctr.Flush("e", time.Now(), time.Now()) // drains the device ring
}

// BenchmarkServeAdCounters is BenchmarkServeAd with the per-bucket
// counters on, as adedge runs: compare with BenchmarkServeAd of the tree
// before issue 5 for the cost of bucketing plus counting.
func BenchmarkServeAdCounters(b *testing.B) {
	b.Run("no-device", func(b *testing.B) {
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true, config: func(c *Config) { c.Counters = abtest.NewCounters() }})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, nil))
	})
	b.Run("with-device-file-store", func(b *testing.B) {
		ctr := abtest.NewCounters()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go ctr.Run(ctx, abtest.FlushConfig{})
		e := newEnv(b, envOpts{scale: "medium", store: "file", noWorkers: true, config: func(c *Config) { c.Counters = ctr }})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, e.w.devices[:1024]))
	})
}

// TestTestParamsReachSelection: a request that control fills but the
// floor_x1.1 test's raised floor does not (found by running selection with
// both parameter sets) is answered accordingly for a device in each bucket,
// without a profile (store none) so only the bucket differs.
func TestTestParamsReachSelection(t *testing.T) {
	e := newEnv(t, envOpts{store: "none", httpServer: true})
	snap := e.src.Acquire()
	set, err := abtest.ParseSet(snap.R.ExperimentsJSON())
	if err != nil {
		t.Fatal(err)
	}
	bk, _ := abtest.NewBucketer(set, abtest.Defaults)
	var raised uint8
	for i, tt := range set.Tests {
		if tt.Params["floor_multiplier"] > 1 {
			raised = uint8(i + 1)
		}
	}
	if raised == 0 {
		snap.Release()
		t.Skip("the test inventory has no floor-raising test")
	}
	var sel selection.Selector
	var res selection.Result
	var found *adQuery
	now := time.Now().Unix()
search:
	for pi := 0; pi < snap.R.NumPlacements(); pi++ {
		pl, _ := snap.R.Placement(pi)
		for _, cc := range []string{"US", "GB", "DE", "JP", "BR", "IN", "FR"} {
			ci, _ := snapshot.CountryIndex(cc)
			for _, osName := range []string{"ios", "android"} {
				os, _ := snapshot.ParseOS(osName)
				osv, _ := snapshot.ParseOSVersion("20.0")
				req := selection.Request{Placement: []byte(snap.R.String(pl.ID)), Country: ci, OS: os, OSVersion: osv,
					DeviceType: snapshot.DevicePhone, Now: now, Seed: 1}
				sel.Select(snap.R, &req, nil, bk.TestParams(0), &res)
				if res.Outcome != selection.Filled {
					continue
				}
				sel.Select(snap.R, &req, nil, bk.TestParams(raised), &res)
				if res.Outcome == selection.BelowFloor {
					found = &adQuery{placement: strings.Clone(snap.R.String(pl.ID)), country: cc, os: osName, osv: "20.0"}
					break search
				}
			}
		}
	}
	snap.Release()
	if found == nil {
		t.Skip("no request sits between the floor and 1.1x the floor in this inventory")
	}
	var ctlDev, testDev string
	for i := 0; ctlDev == "" || testDev == ""; i++ {
		d := "param-dev-" + strconv.Itoa(i)
		switch a := bk.Assign([]byte(d)); a.Test {
		case 0:
			ctlDev = d
		case raised:
			testDev = d
		}
	}
	found.device = ctlDev
	if r := e.get(found.uri()); r.code != 200 {
		t.Fatalf("control device: %v, want a fill", r)
	}
	found.device = testDev
	if r := e.get(found.uri()); r.code != 204 {
		t.Fatalf("device in the floor-raising test: %v, want no fill (below the raised floor)", r)
	}
}

// TestRowsBreakdownsAreTheEventsDims: the A/B rows' breakdowns carry the
// country, OS and format the ad events carry for the same requests (one
// rule: decisionDims), each dimension's breakdown rows add up to the
// ordinary rows of their (group, shard), and a no-fill in a slot of one
// format has that format.
func TestRowsBreakdownsAreTheEventsDims(t *testing.T) {
	dir := t.TempDir()
	withRec, rec := withEvents(t, events.Options{Dir: dir})
	ctr := abtest.NewCounters()
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { withRec(c); c.Counters = ctr }})
	qs := e.search(12, anyCampaign)
	var codes = map[int]int{}
	n := 0
	for i, q := range qs {
		for _, cc := range []string{q.country, "AQ"} { // AQ: no campaign targets Antarctica: no-fills
			for _, osName := range []string{"ios", "android"} {
				q.country, q.os, q.device = cc, osName, e.w.devices[(i*7+n)%len(e.w.devices)]
				if n%9 == 0 {
					q.device = "" // unassigned
				}
				r := e.get(q.uri())
				codes[r.code]++
				if r.code == 200 && n%2 == 0 { // half the fills are seen: impressions by the token's dimensions
					if ir := e.get(trackPath(t, decodeAd(t, r).ImpressionURL)); ir.code != 204 {
						t.Fatalf("impression: %v", ir)
					}
				}
				n++
			}
		}
	}
	if codes[200] == 0 || codes[204] == 0 {
		t.Fatalf("answers %v: want fills and no-fills", codes)
	}
	now := time.Now()
	flushed := ctr.Flush("e", now.Add(-time.Minute), now)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	// By (dimension, value): requests from the events, from the rows.
	fromEvents, fromRows := map[string]uint64{}, map[string]uint64{}
	snap := e.src.Acquire()
	defer snap.Release()
	impEvents, impRows := map[string]uint64{}, map[string]uint64{}
	multi := 0 // no-fills in slots of several formats
	for _, ev := range logged(t, dir) {
		if ev.Kind == events.KindImp {
			for _, k := range []string{"country=" + string(ev.Country), "os=" + string(ev.OS), "format=" + abtest.FormatLabel(ev.Format)} {
				impEvents[k]++
				impEvents[k+" revenue"] += uint64(ev.PriceMicros)
			}
		}
		if ev.Kind != events.KindAd {
			continue
		}
		fromEvents["country="+string(ev.Country)]++
		fromEvents["os="+string(ev.OS)]++
		fromEvents["format="+abtest.FormatLabel(ev.Format)]++
		if ev.Outcome == events.OutcomeNoFill {
			// The requests accept every format: a no-fill's format is the
			// placement's one, or its set ("banner+video").
			pi, _ := snap.R.LookupPlacementBytes(ev.Placement)
			pl, _ := snap.R.Placement(pi)
			var names []string
			for x := snapshot.Format(0); x < snapshot.NumFormats; x++ {
				if pl.Formats.Has(x) {
					names = append(names, x.String())
				}
			}
			if want := strings.Join(names, "+"); abtest.FormatLabel(ev.Format) != want {
				t.Errorf("no-fill at %s (formats %b): event format %#x (%q), want %q", ev.Placement, pl.Formats, ev.Format, abtest.FormatLabel(ev.Format), want)
			}
			if len(names) > 1 {
				multi++
			}
		}
	}
	type cellKey struct {
		layer, test, variant string
		shard                uint8
	}
	totals := map[cellKey]uint64{}
	perDim := map[string]map[cellKey]uint64{}
	for _, r := range flushed {
		if err := rows.Check(&r); err != nil {
			t.Fatalf("row %+v: %v", r, err)
		}
		k := cellKey{r.Layer, r.Test, r.Variant, r.Shard}
		if r.Breakdown == "" {
			totals[k] += r.Requests
			continue
		}
		if perDim[r.Breakdown] == nil {
			perDim[r.Breakdown] = map[cellKey]uint64{}
		}
		perDim[r.Breakdown][k] += r.Requests
		v := r.Breakdown + "=" + r.Country + r.OS + r.Format
		if r.Requests > 0 {
			fromRows[v] += r.Requests
		}
		if r.Impressions > 0 {
			impRows[v] += r.Impressions
			impRows[v+" revenue"] += r.RevenueMicros
		}
	}
	if len(impEvents) == 0 || !maps.Equal(impEvents, impRows) {
		t.Errorf("impressions and revenue by dimension value:\nevents %v\nrows   %v", impEvents, impRows)
	}
	if len(perDim) != 3 {
		t.Fatalf("breakdown rows by %d dimensions, want 3", len(perDim))
	}
	for d, m := range perDim {
		if !maps.Equal(m, totals) {
			t.Errorf("breakdown by %s does not add up to the rows' requests per (group, shard):\n%v\n%v", d, m, totals)
		}
	}
	if !maps.Equal(fromEvents, fromRows) {
		t.Errorf("requests by dimension value:\nevents %v\nrows   %v", fromEvents, fromRows)
	}
	if multi == 0 {
		t.Error("no no-fill in a slot of several formats: the test does not cover the format set")
	}
	if fromRows["country=AQ"] == 0 || fromRows["os=ios"] == 0 || fromRows["os=android"] == 0 {
		t.Errorf("breakdowns %v: want AQ and both OSes", fromRows)
	}
}
