package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve runs h on a loopback port for the test's lifetime.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown() })
	return "http://" + ln.Addr().String()
}

// TestStallIsNotHidden is the coordinated-omission check: the server
// answers at once except during one 300 ms window in which it answers
// nothing. At 1000 req/s about 300 requests are scheduled in that window
// and each of them waits for its end, so at least 10% of all requests are
// 30 ms or slower. A generator that measured from the actual send (closed
// loop) would see one slow request per connection, 4 of 2000, and a p90
// under 1 ms.
func TestStallIsNotHidden(t *testing.T) {
	var mu sync.Mutex
	stallEnd := time.Time{}
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		end := stallEnd
		mu.Unlock()
		time.Sleep(time.Until(end)) // no-op outside the stall
		ctx.SetBodyString("ok")
	})
	go func() {
		time.Sleep(900 * time.Millisecond)
		mu.Lock()
		stallEnd = time.Now().Add(300 * time.Millisecond)
		mu.Unlock()
	}()
	r, err := Run(context.Background(), Options{Target: url, Rate: 1000, Duration: 2 * time.Second, Conns: 4, Targets: Fixed("/x")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad() != 0 || r.Status["200"] != int(r.Recorded) {
		t.Fatalf("unexpected failures: %+v", r)
	}
	if r.Recorded < 1900 {
		t.Errorf("recorded %d of 2000 scheduled", r.Recorded)
	}
	if r.LatencyUS.P90 < 30_000 {
		t.Errorf("p90 %.0f us: the 300 ms stall is hidden (want >= 30 ms)", r.LatencyUS.P90)
	}
	if r.LatencyUS.Max < 250_000 {
		t.Errorf("max %.0f us, want about 300 ms", r.LatencyUS.Max)
	}
	if r.LateSends < 100 {
		t.Errorf("late sends %d: the requests scheduled during the stall left late", r.LateSends)
	}
}

// TestCounts: statuses, fill rate, the POST share and error kinds are
// counted as the server answered.
func TestCounts(t *testing.T) {
	var posts, gets atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			posts.Add(1)
			var m map[string]string
			if json.Unmarshal(ctx.PostBody(), &m) != nil || m["placement"] == "" {
				ctx.SetStatusCode(400)
				return
			}
		} else {
			gets.Add(1)
			if len(ctx.QueryArgs().Peek("placement")) == 0 {
				ctx.SetStatusCode(400)
				return
			}
		}
		if ctx.ID()%4 == 0 {
			ctx.SetStatusCode(204)
			return
		}
		ctx.SetBodyString("{}")
	})
	inv := t.TempDir()
	var pl, pr strings.Builder
	for i := range 50 {
		pl.WriteString(`{"id":"pl-` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `","app":"x"}` + "\n")
		pr.WriteString(`{"device":"dev-` + string(rune('a'+i%26)) + `"}` + "\n")
	}
	os.WriteFile(filepath.Join(inv, "placements.jsonl"), []byte(pl.String()), 0o644)
	os.WriteFile(filepath.Join(inv, "profiles.jsonl"), []byte(pr.String()), 0o644)
	r, err := Run(context.Background(), Options{Target: url, Rate: 2000, Duration: time.Second, Conns: 8,
		Inventory: inv, PostShare: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad() != 0 {
		t.Fatalf("bad answers (the mix is malformed?): %+v", r.Status)
	}
	ok, nf := r.Status["200"], r.Status["204"]
	if int64(ok+nf) != r.Recorded || r.Recorded < 1900 {
		t.Fatalf("status %v, recorded %d", r.Status, r.Recorded)
	}
	if r.FillRate < 0.6 || r.FillRate > 0.9 {
		t.Errorf("fill rate %.2f, want about 0.75", r.FillRate)
	}
	share := float64(posts.Load()) / float64(posts.Load()+gets.Load())
	if share < 0.2 || share > 0.4 {
		t.Errorf("POST share %.2f, want about 0.3", share)
	}

	// A port nobody listens on: every request is an error of kind refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r, err = Run(context.Background(), Options{Target: dead, Rate: 200, Duration: 500 * time.Millisecond, Conns: 2, Targets: Fixed("/")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors < 90 || r.ErrKinds["refused"] != int(r.Errors) || r.Recorded != 0 {
		t.Errorf("dead target: errors %d kinds %v recorded %d", r.Errors, r.ErrKinds, r.Recorded)
	}
}

// TestFindMaxSearch: against a server of known capacity (every trial at
// or below 3000/s answered in full within the bound, every one above it
// short), the search doubles, then bisects to within its precision of
// the knee, confirms failures, and names the best passing trial. No
// timing: the trials are computed, so a loaded machine cannot move it.
func TestFindMaxSearch(t *testing.T) {
	const knee = 3000.0
	var asked []float64
	fake := func(_ context.Context, o Options) (*Result, error) {
		asked = append(asked, o.Rate)
		r := &Result{Rate: o.Rate, Achieved: o.Rate}
		r.LatencyUS.P99 = 500
		if o.Rate > knee {
			r.Achieved = knee // the server answers no more than it can
			r.LatencyUS.P99 = 900_000
		}
		return r, nil
	}
	var log strings.Builder
	res, err := FindMax(context.Background(), FindMaxOptions{
		Run: Options{Target: "http://127.0.0.1:1", Conns: 32, Targets: Fixed("/")}, P99: 50 * time.Millisecond,
		Start: 500, Trial: time.Second, Precision: 0.05, MaxTrials: 14, Confirm: true, Log: &log, run: fake,
	})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.MaxRate > knee || res.MaxRate < knee*0.95 {
		t.Fatalf("max rate %.0f, want within 5%% below the knee %.0f", res.MaxRate, knee)
	}
	if res.Best == nil || res.Best.Rate != res.MaxRate {
		t.Fatalf("best %+v is not the max rate's trial", res.Best)
	}
	if asked[0] != 500 || asked[1] != 1000 || asked[2] != 2000 || asked[3] != 4000 || asked[4] != 4000 {
		t.Fatalf("rates asked %v: want doubling from 500, the first failure confirmed", asked)
	}
	for _, tr := range res.Trials {
		if tr.Pass != (tr.Rate <= knee) {
			t.Fatalf("trial at %.0f judged pass=%v (%s)", tr.Rate, tr.Pass, tr.Why)
		}
	}
}

// TestFindMaxLowRateLatency: a server whose p99 misses the bound at low
// rates (idle CPUs woken per request) but meets it from 1500/s up to its
// knee. The search steps up past the failing start instead of halving
// towards a trickle, and lands within its precision below the knee. A
// server that misses the bound everywhere it keeps up, and passes only at
// a trickle, still gets the downward search.
func TestFindMaxLowRateLatency(t *testing.T) {
	search := func(t *testing.T, p99 func(rate float64) float64, knee float64) (*MaxResult, []float64) {
		t.Helper()
		var asked []float64
		fake := func(_ context.Context, o Options) (*Result, error) {
			asked = append(asked, o.Rate)
			r := &Result{Rate: o.Rate, Achieved: o.Rate}
			r.LatencyUS.P99 = p99(o.Rate)
			if o.Rate > knee {
				r.Achieved, r.LatencyUS.P99 = knee, 900_000
			}
			return r, nil
		}
		res, err := FindMax(context.Background(), FindMaxOptions{
			Run: Options{Target: "http://127.0.0.1:1", Conns: 32, Targets: Fixed("/")}, P99: time.Millisecond,
			Start: 1000, Trial: time.Second, Precision: 0.05, MaxTrials: 20, Confirm: true, run: fake,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res, asked
	}
	t.Run("passes above the start", func(t *testing.T) {
		const knee = 12000.0
		res, asked := search(t, func(r float64) float64 {
			if r < 1500 {
				return 1500
			}
			return 500
		}, knee)
		if res.MaxRate > knee || res.MaxRate < knee*0.95 {
			t.Fatalf("max %.0f (asked %v), want within 5%% below %.0f", res.MaxRate, asked, knee)
		}
		if asked[0] != 1000 || asked[1] != 1000 || asked[2] != 2000 {
			t.Fatalf("asked %v: want 1000, its confirmation, then 2000", asked)
		}
	})
	t.Run("passes only at a trickle", func(t *testing.T) {
		res, asked := search(t, func(r float64) float64 {
			if r > 300 {
				return 1500
			}
			return 500
		}, 50000)
		if res.MaxRate > 300 || res.MaxRate < 250 {
			t.Fatalf("max %.0f (asked %v), want 250-300", res.MaxRate, asked)
		}
		for i, want := range []float64{1000, 1000, 2000, 2000, 4000, 4000, 500} {
			if asked[i] != want {
				t.Fatalf("asked %v: want two steps up from 1000, then below it", asked)
			}
		}
	})
}

// TestFindMax runs the search for real against a server that answers 503
// past 3000 req/s (150 in a 50 ms window). A loaded machine can only push
// the result down (the generator falls behind, trials fail short of their
// rate), never above the server's own knee, so only that side and the
// search's invariants are asserted; where the search lands on a quiet
// machine is TestFindMaxSearch's, without timing.
func TestFindMax(t *testing.T) {
	if testing.Short() {
		t.Skip("find-max runs several trials")
	}
	var window atomic.Int64
	var count atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		w := time.Now().UnixMilli() / 50
		if old := window.Load(); old != w && window.CompareAndSwap(old, w) {
			count.Store(0)
		}
		if count.Add(1) > 3000/20 {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			return
		}
		ctx.SetBodyString("ok")
	})
	var log strings.Builder
	f := FindMaxOptions{
		Run: Options{Target: url, Conns: 32, Targets: Fixed("/")}, P99: 2 * time.Second, MinAchieved: 0.97,
		Start: 500, Trial: 700 * time.Millisecond, Precision: 0.25, MaxTrials: 9, Confirm: true, Log: &log,
	}
	res, err := FindMax(context.Background(), f)
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.MaxRate > 4500 {
		t.Fatalf("max rate %.0f above the server's knee (3000/s, bisection precision 25%%)", res.MaxRate)
	}
	if len(res.Trials) == 0 {
		t.Fatal("no trials")
	}
	for _, tr := range res.Trials {
		if tr.Result == nil || tr.Result.Rate != tr.Rate {
			t.Fatalf("trial %+v does not carry its own result", tr)
		}
		if pass, _ := f.judge(tr.Result); pass != tr.Pass {
			t.Fatalf("trial at %.0f/s recorded pass=%v, the judge says %v", tr.Rate, tr.Pass, pass)
		}
	}
	if res.MaxRate > 0 && (res.Best == nil || res.Best.Bad() != 0) {
		t.Fatalf("best result %+v does not meet the bound", res.Best)
	}
	failed := false
	for _, tr := range res.Trials {
		if !tr.Pass && tr.Rate > res.MaxRate {
			failed = true
		}
	}
	if !failed {
		t.Errorf("no failing trial above the max: the search did not find a knee")
	}
}

// TestJudge: a trial passes only with nothing failed, the rate achieved
// and p99 within the bound; each failure says which.
func TestJudge(t *testing.T) {
	f := FindMaxOptions{P99: time.Millisecond, MinAchieved: 0.97}
	ok := func() *Result {
		return &Result{Rate: 1000, Achieved: 990, Status: map[string]int{"200": 900, "204": 90}, LatencyUS: Percentiles{P99: 1000}}
	}
	if pass, why := f.judge(ok()); !pass {
		t.Fatalf("a good trial failed: %s", why)
	}
	for _, c := range []struct {
		name string
		mod  func(*Result)
		want string
	}{
		{"p99 over the bound", func(r *Result) { r.LatencyUS.P99 = 1001 }, "p99 1001 us > 1000 us"},
		{"an error", func(r *Result) { r.Errors = 1 }, "1 failed requests"},
		{"a 503", func(r *Result) { r.Status["503"] = 2 }, "2 failed requests"},
		{"rate not achieved", func(r *Result) { r.Achieved = 960 }, "achieved 960/s of 1000/s"},
	} {
		r := ok()
		c.mod(r)
		if pass, why := f.judge(r); pass || why != c.want {
			t.Errorf("%s: pass %v %q, want a failure %q", c.name, pass, why, c.want)
		}
	}
}

// TestOptionsRefused: nonsense options are errors, not hangs.
func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{Target: "http://127.0.0.1:1", Rate: 0, Duration: time.Second},
		{Target: "http://127.0.0.1:1", Rate: 10, Duration: 0},
		{Target: "127.0.0.1:1", Rate: 10, Duration: time.Second, Targets: Fixed("/")},
		{Target: "http://127.0.0.1:1", Rate: 10, Duration: time.Second, Warmup: 2 * time.Second},
		{Target: "http://127.0.0.1:1", Rate: 10, Duration: time.Second, PostShare: 2},
		{Target: "http://127.0.0.1:1", Rate: 10, Duration: time.Second}, // no mix
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := FindMax(context.Background(), FindMaxOptions{}); err == nil {
		t.Error("find-max without a bound accepted")
	}
}

// TestFramingsAndClose: chunked answers, answers with Connection: close
// (every request on a new connection) and a server that drops idle
// keep-alive connections are all counted as the answers they are, with
// no error: a request that meets a connection the server closed while
// idle goes out again on a new one.
func TestFramingsAndClose(t *testing.T) {
	var n atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch n.Add(1) % 3 {
		case 0:
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) { w.WriteString("chunk"); w.Flush(); w.WriteString("ed") })
		case 1:
			ctx.SetConnectionClose()
			ctx.SetBodyString("bye")
		default:
			ctx.SetBodyString("ok")
		}
	})
	r, err := Run(context.Background(), Options{Target: url, Rate: 500, Duration: time.Second, Conns: 4, Targets: Fixed("/")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad() != 0 || r.Status["200"] != int(r.Recorded) || r.Recorded < 450 {
		t.Fatalf("status %v errors %v recorded %d", r.Status, r.ErrKinds, r.Recorded)
	}

	// Idle connections closed by the server after 20 ms: at 100 req/s on 8
	// connections each one idles 80 ms between requests.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }, IdleTimeout: 20 * time.Millisecond}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown() })
	r, err = Run(context.Background(), Options{Target: "http://" + ln.Addr().String(), Rate: 100, Duration: time.Second, Conns: 8, Targets: Fixed("/")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad() != 0 || r.Recorded < 90 {
		t.Fatalf("idle-closing server: status %v errors %v recorded %d", r.Status, r.ErrKinds, r.Recorded)
	}
}

// TestTimeoutAndGarbage: a server that accepts and never answers gives
// timeouts (100 requests on 50 connections: two rounds of the 200 ms
// timeout after the 0.5 s of sending), and one that
// answers garbage gives errors of kind other; neither hangs the run. The
// garbage is answered at once, so its requests get 2 s: at 200 ms a
// loaded machine (load 27, three test suites at once) turned 5 of them
// into timeouts.
func TestTimeoutAndGarbage(t *testing.T) {
	for _, c := range []struct {
		name    string
		answer  string // "" = never answer
		kind    string
		timeout time.Duration
	}{{"silent", "", "timeout", 200 * time.Millisecond}, {"garbage", "SSH-2.0-nope\r\n\r\n", "other", 2 * time.Second}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var held sync.WaitGroup
		stop := make(chan struct{})
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				held.Add(1)
				go func() {
					defer held.Done()
					defer conn.Close()
					buf := make([]byte, 4096)
					for {
						if _, err := conn.Read(buf); err != nil {
							return
						}
						if c.answer == "" {
							<-stop
							return
						}
						conn.Write([]byte(c.answer))
					}
				}()
			}
		}()
		t0 := time.Now()
		r, err := Run(context.Background(), Options{Target: "http://" + ln.Addr().String(), Rate: 200, Duration: 500 * time.Millisecond,
			Conns: 50, Timeout: c.timeout, Targets: Fixed("/")})
		took := time.Since(t0)
		close(stop)
		ln.Close()
		held.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors == 0 || r.ErrKinds[c.kind] != int(r.Errors) || r.Recorded != 0 {
			t.Errorf("%s: errors %d kinds %v recorded %d", c.name, r.Errors, r.ErrKinds, r.Recorded)
		}
		if took > 5*time.Second {
			t.Errorf("%s: the run took %v", c.name, took)
		}
	}
}
