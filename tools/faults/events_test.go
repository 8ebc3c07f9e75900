package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/internal/tmpfs"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/tools/evtool"
	"github.com/adedge/adedge/tools/loadgen"
)

// pixelGen is the drill's SDK: impression pixels at a fixed rate, a share
// of them replays of earlier ones, and its own record of which unique
// tokens the edge acknowledged (204) and at what price.
type pixelGen struct {
	toks   []string
	prices []int64
	acked  []atomic.Bool
	status sync.Map // code -> *atomic.Int64
	sent   atomic.Int64
	// no503Retry counts 503 answers without Retry-After (SDKs need it).
	no503Retry atomic.Int64
}

func newPixelGen(t *testing.T, n int) *pixelGen {
	t.Helper()
	key, err := token.LoadKey(tokenKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := token.NewSigner(key, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := &pixelGen{toks: make([]string, n), prices: make([]int64, n), acked: make([]atomic.Bool, n)}
	now := time.Now()
	for i := range g.toks {
		g.prices[i] = int64(100 + i%9973)
		c := token.Claims{Issued: now.UnixMilli() - int64(i%1000), PriceMicros: g.prices[i], Env: 0,
			Campaign: []byte(fmt.Sprintf("cmp-%d", i%17)), Creative: []byte("cr-1"), Device: []byte(fmt.Sprintf("dev-%d", i)),
			Experiment: []byte("exp"), Variant: []byte("control"), Snapshot: []byte("drill")}
		b, err := s.Append(nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		g.toks[i] = string(b)
	}
	return g
}

var pixelClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// fire sends token i once; true when the edge answered 204.
func (g *pixelGen) fire(addr string, i int) bool {
	g.sent.Add(1)
	code := 0
	res, err := pixelClient.Get("http://" + addr + "/v1/imp?t=" + g.toks[i])
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		code = res.StatusCode
		if code == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
			g.no503Retry.Add(1)
		}
	}
	v, _ := g.status.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if code == http.StatusNoContent {
		g.acked[i].Store(true)
		return true
	}
	return false
}

// run sends new tokens in order at rate per second for d (every fifth
// request a replay of an earlier token), from conns connections.
func (g *pixelGen) run(addr string, rate float64, d time.Duration, next *atomic.Int64) {
	start := time.Now()
	var seq atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 48; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				k := seq.Add(1)
				at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
				if at.Sub(start) > d {
					return
				}
				time.Sleep(time.Until(at))
				if n := min(int(next.Load()), len(g.toks)); k%5 == 0 && n > 0 {
					g.fire(addr, rnd.IntN(n)) // a replay
					continue
				}
				i := int(next.Add(1) - 1)
				if i >= len(g.toks) {
					return
				}
				g.fire(addr, i)
			}
		}()
	}
	wg.Wait()
}

// TestKill9ExactlyOnce is the billing drill: impressions at >= 2k/s with
// replays, the edge SIGKILLed at random moments and restarted on the same
// event log, ClickHouse stopped for a while in the middle; the SDK retries
// every pixel not acknowledged; at the end ClickHouse holds every unique
// acknowledged impression exactly once: count and price sum equal the
// generator's own record. While ClickHouse is down, ad requests (/v1/ad
// and OpenRTB) run beside the pixels: none may fail, the server-side
// latency stays in bound, and every decision logged reaches ClickHouse
// once (those dropped by design, a full queue, are counted); the drain
// time after ClickHouse returns is logged (DRAIN).
func TestKill9ExactlyOnce(t *testing.T) {
	ch := chkit.Start(t)
	kills, per, chDown, adRate := 2, 2*time.Second, 2*time.Second, 500.0
	if full {
		kills, per, chDown, adRate = 5, 6*time.Second, 60*time.Second, 1000.0
	}
	var ads *loadgen.Result
	var adRequests, adWritten, adDropped float64
	const rate = 2500.0
	// One token per fresh pixel of the longest load the phases below can
	// make (each at most 1.5 per, the outage's phase chDown + 3 s): a
	// generator that runs out stops sending and the drill measures less.
	g := newPixelGen(t, int(rate*(1.5*per.Seconds()*float64(kills)+(chDown+3*time.Second).Seconds()))+1000)
	evDir := t.TempDir()
	listen := freePort(t)
	url := ch.URL() + "?database=drill"
	flags := []string{"--listen", listen, "--events-dir", evDir, "--events-clickhouse", url,
		"--events-ship-interval", "100ms", "--events-sample-ads", "1", "--events-backlog-age", "1s"}
	e := startEdge(t, snapDir, flags...)
	var next atomic.Int64
	rnd := rand.New(rand.NewPCG(1, 2))
	loadStart := time.Now()
	var loadTime time.Duration
	sentBefore := int64(0)
	for k := 0; k <= kills; k++ {
		d := per/2 + time.Duration(rnd.Int64N(int64(per)))
		if k == 1 {
			d = chDown + 3*time.Second // load all through the outage
		}
		loadTime += d
		done := make(chan struct{})
		go func() { g.run(listen, rate, d, &next); close(done) }()
		if k == 1 {
			// ClickHouse down under load: serving and recording go on.
			if err := ch.Kill(); err != nil {
				t.Fatal(err)
			}
			if res, err := http.Get(ch.URL() + "ping"); err == nil {
				res.Body.Close()
				t.Fatalf("ClickHouse still answers after Stop")
			}
			// Ads through the whole outage, beside the pixels: none fails,
			// the server-side latency stays in bound, every decision is
			// logged (or counted dropped, by design) before the edge goes on.
			m0 := e.metrics()
			ads = driveAds(t, e, adRate, chDown)
			m1 := waitMetric(t, e, 30*time.Second, "every decision of the outage logged or counted dropped", func(m metrics) bool {
				return delta(m0, m, "adedge_events_decisions_total")+delta(m0, m, "adedge_events_decisions_dropped_total") >=
					delta(m0, m, "adedge_ad_requests_total")
			})
			if m1 == nil {
				m1 = e.metrics()
			}
			mustServe(t, fmt.Sprintf("ads with ClickHouse down %s", chDown), ads)
			bounded(t, e, fmt.Sprintf("ads with ClickHouse down %s", chDown), m0, m1)
			adRequests = delta(m0, m1, "adedge_ad_requests_total")
			adWritten = delta(m0, m1, "adedge_events_decisions_total")
			adDropped = delta(m0, m1, "adedge_events_decisions_dropped_total")
			if so := delta(m0, m1, "adedge_events_decisions_sampled_out_total"); so != 0 {
				t.Errorf("%.0f decisions sampled out with --events-sample-ads 1", so)
			}
			ortb := delta(m0, m1, "adedge_openrtb_requests_total")
			t.Logf("decisions with ClickHouse down: %.0f ad decisions (%.0f /v1/ad requests, %.0f OpenRTB auctions of one imp with %.0f bids), %.0f logged, %.0f dropped (queue full: by design)",
				adRequests, adRequests-ortb, ortb, delta(m0, m1, "adedge_openrtb_bids_total"), adWritten, adDropped)
			if ortb == 0 || ortb == adRequests {
				t.Errorf("the ad load was not a mix of /v1/ad and OpenRTB: %.0f auctions of %.0f", ortb, adRequests)
			}
			if code, h := e.health(); code != 200 || !hasReason(h, "events_backlog") {
				t.Errorf("/health with ClickHouse down %s: %d %v", chDown, code, h)
			}
			if err := ch.Restart(); err != nil {
				t.Fatal(err)
			}
			// The backlog of the outage drains while the load goes on.
			back := time.Now()
			for {
				m := e.metrics()
				if m.Sum("adedge_events_backlog_age_seconds") < 1 {
					break
				}
				if time.Since(back) > 60*time.Second {
					t.Fatalf("backlog not drained 60 s after ClickHouse returned (age %.1f s)", m.Sum("adedge_events_backlog_age_seconds"))
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("ClickHouse back after %s down: backlog drained in %s under load (DRAIN %.2f s)", chDown, time.Since(back).Round(10*time.Millisecond),
				time.Since(back).Seconds())
		}
		if k < kills {
			time.Sleep(time.Duration(rnd.Int64N(int64(d))))
			_ = e.cmd.Process.Signal(syscall.SIGKILL)
			<-e.exited
			t.Logf("kill %d at %s: %d tokens issued so far", k+1, time.Since(loadStart).Round(time.Millisecond), next.Load())
			e = startEdge(t, snapDir, flags...)
		}
		<-done
	}
	elapsed := time.Since(loadStart)
	issued := min(int(next.Load()), len(g.toks)) // next passes the end when the tokens ran out
	loadSent := g.sent.Load() - sentBefore
	g.retryUnacked(t, listen, issued)
	wantN := int64(issued)
	statuses := map[int]int64{}
	g.status.Range(func(k, v any) bool { statuses[k.(int)] = v.(*atomic.Int64).Load(); return true })
	pps := float64(loadSent) / loadTime.Seconds()
	t.Logf("%d kills, ClickHouse down %s, %d pixel requests in %s of load (%.0f/s, every fifth a replay; %s in all), %d unique tokens acknowledged after retries, statuses %v",
		kills, chDown, loadSent, loadTime.Round(time.Millisecond), pps, elapsed.Round(time.Millisecond), wantN, statuses)
	if pps < 2000 {
		t.Errorf("drill rate %.0f pixels/s, want >= 2000", pps)
	}

	g.checkClickHouse(t, url, issued)
	checkDecisions(t, url, ads, int64(adWritten), int64(adDropped))
	if os.Getenv("ADEDGE_DRILL_KEEP") != "" {
		t.Logf("event log kept in %s", evDir)
	}
}

// auctionMix is OpenRTB BidRequests of one imp each (one decision per
// request, like /v1/ad), over the inventory's placements: half banner,
// half rewarded video, so both fill and no-bid answers come back.
func auctionMix(t *testing.T, n int) []loadgen.Request {
	t.Helper()
	placements, err := loadgen.Column(filepath.Join(invDir, "placements.jsonl"), "id", 100_000)
	if err != nil || len(placements) == 0 {
		t.Fatalf("placements: %v", err)
	}
	countries := []string{"US", "GB", "DE", "JP", "BR"}
	out := make([]loadgen.Request, n)
	for i := range out {
		imp := `"banner":{}`
		if i%2 == 1 {
			imp = `"instl":1,"rwdd":1,"video":{"mimes":["video/mp4"],"maxduration":30,"w":1080,"h":1920},"banner":{}`
		}
		body := fmt.Sprintf(`{"id":"r%d","tmax":100,"imp":[{"id":"1","tagid":%q,%s}],"app":{"bundle":"com.example.app"},`+
			`"device":{"ifa":"%08x-0000-4000-8000-000000000000","os":"android","osv":"12","geo":{"country":%q}}}`,
			i, placements[i%len(placements)], imp, i, countries[i%len(countries)])
		out[i] = loadgen.Request{Method: "POST", URI: "/openrtb2/auction", Body: []byte(body)}
	}
	return out
}

// driveAds sends ad requests at rate for d: the inventory mix on /v1/ad
// (a fifth of it POST) and one OpenRTB auction in four.
func driveAds(t *testing.T, e *edge, rate float64, d time.Duration) *loadgen.Result {
	t.Helper()
	targets := append(append([]loadgen.Request(nil), mix...), auctionMix(t, len(mix)/3)...)
	r, err := loadgen.Run(context.Background(), loadgen.Options{Target: "http://" + e.addr, Rate: rate, Duration: d,
		Conns: 16, Targets: targets, Timeout: clientTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkDecisions asserts ClickHouse holds every decision the edge logged
// during the outage once (count and distinct ids), and, when none was
// dropped, exactly one per ad answer and a fill per 200.
func checkDecisions(t *testing.T, url string, ads *loadgen.Result, written, dropped int64) {
	t.Helper()
	tg, err := ship.ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	cli := ship.NewClient(tg, 30*time.Second)
	var n, uniq, weight, fills int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := cli.Query(context.Background(), "SELECT count(), uniqExact(event_id), sum(weight), countIf(outcome = 'fill') FROM "+
			tg.TableName()+" FINAL WHERE kind = 'ad' FORMAT TSV")
		if err == nil {
			fmt.Sscan(string(out), &n, &uniq, &weight, &fills)
		}
		if n >= written || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	answered := int64(ads.Status["200"] + ads.Status["204"])
	t.Logf("ClickHouse: %d decisions (%d distinct ids, weight %d, %d fills); edge: %d logged, %d dropped; generator: %d answered (%d with an ad)",
		n, uniq, weight, fills, written, dropped, answered, ads.Status["200"])
	if n != written || uniq != written || weight != written {
		t.Fatalf("decisions lost or doubled: ClickHouse %d rows / %d ids / weight %d, the edge logged %d", n, uniq, weight, written)
	}
	if dropped == 0 && (written != answered || fills != int64(ads.Status["200"])) {
		t.Fatalf("decisions: %d logged, %d fills in ClickHouse; the generator had %d answers, %d with an ad", written, fills, answered, ads.Status["200"])
	}
}

// retryUnacked is the SDK retrying every pixel it has no 204 for (a 503
// says Retry-After).
func (g *pixelGen) retryUnacked(t *testing.T, addr string, issued int) {
	t.Helper()
	for i := 0; i < issued; i++ {
		for try := 0; !g.acked[i].Load(); try++ {
			if try == 50 {
				t.Fatalf("token %d never acknowledged", i)
			}
			if !g.fire(addr, i) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// checkClickHouse waits for the edge to ship, then asserts ClickHouse holds
// every one of the first issued tokens (all acknowledged) exactly once:
// count, distinct ids and price sum equal the generator's record.
func (g *pixelGen) checkClickHouse(t *testing.T, url string, issued int) {
	t.Helper()
	var wantN, wantSum int64
	for i := 0; i < issued; i++ {
		if !g.acked[i].Load() {
			t.Fatalf("token %d not acknowledged", i)
		}
		wantN++
		wantSum += g.prices[i]
	}
	tg, err := ship.ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	cli := ship.NewClient(tg, 30*time.Second)
	var n, sum, uniq int64
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := cli.Query(context.Background(), "SELECT count(), sum(price_micros), uniqExact(event_id) FROM "+tg.TableName()+
			" FINAL WHERE kind = 'imp' AND duplicate = 0 FORMAT TSV")
		if err == nil {
			fmt.Sscan(string(out), &n, &sum, &uniq)
		}
		if n >= wantN || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ClickHouse: %d impressions (%d distinct ids), sum %d micros; generator: %d acknowledged, sum %d", n, uniq, sum, wantN, wantSum)
	if n != wantN || uniq != wantN || sum != wantSum {
		t.Fatalf("exactly once broken: ClickHouse %d rows / %d ids / %d micros, generator %d / %d", n, uniq, sum, wantN, wantSum)
	}
}

// statuses is how many pixel answers of each HTTP status the generator got.
func (g *pixelGen) statuses() map[int]int64 {
	out := map[int]int64{}
	g.status.Range(func(k, v any) bool { out[k.(int)] = v.(*atomic.Int64).Load(); return true })
	return out
}

// TestEventsDiskFull: the event log on a real 1 MiB tmpfs that fills up
// (another file takes the space) while ClickHouse is down, so no shipped
// segment can make room. Pixels answer 503 with Retry-After, never 204 for
// an event not logged; ads keep serving; /health and the metrics say so.
// After space frees and ClickHouse returns, the SDK's retries are
// recorded, the log on disk has no damaged record or torn tail, and
// ClickHouse holds every acknowledged impression exactly once.
func TestEventsDiskFull(t *testing.T) {
	ch := chkit.Start(t)
	mnt := tmpfs.Mount(t, 1<<20)
	evDir := filepath.Join(mnt, "events")
	filler := filepath.Join(mnt, "filler")
	listen := freePort(t)
	url := ch.URL() + "?database=diskfull"
	e := startEdge(t, snapDir, "--listen", listen, "--events-dir", evDir, "--events-clickhouse", url,
		"--events-ship-interval", "100ms", "--events-segment-bytes", "65536", "--events-fail-window", "2s")
	const pixelRate = 1000.0
	g := newPixelGen(t, 20000)
	var next atomic.Int64

	g.run(listen, pixelRate, 500*time.Millisecond, &next)
	if st := g.statuses(); st[http.StatusNoContent] == 0 || len(st) != 1 {
		t.Fatalf("with room: pixel statuses %v, want only 204", st)
	}
	if err := ch.Kill(); err != nil {
		t.Fatal(err)
	}
	free := tmpfs.Fill(t, filler)
	t.Logf("ClickHouse down; filled the tmpfs (%d bytes free before)", free)
	m0 := e.metrics()
	okBefore := g.statuses()[http.StatusNoContent]
	var ads *loadgen.Result
	done := make(chan struct{})
	go func() { ads = drive(t, e, 200, 2*time.Second); close(done) }()
	g.run(listen, pixelRate, 2*time.Second, &next)
	<-done
	st := g.statuses()
	t.Logf("disk full: pixel statuses %v (204s before: %d)", st, okBefore)
	if st[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("disk full: no pixel answered 503: %v", st)
	}
	if n := g.no503Retry.Load(); n != 0 {
		t.Errorf("%d answers 503 without Retry-After", n)
	}
	for code := range st {
		if code != http.StatusNoContent && code != http.StatusServiceUnavailable {
			t.Errorf("disk full: pixel status %d (%d times), want 204 or 503", code, st[code])
		}
	}
	mustServe(t, "ads on a full events disk", ads)
	m1 := e.metrics()
	bounded(t, e, "ads on a full events disk", m0, m1)
	checkDegraded(t, e, "disk full", "events_not_recorded")
	if d := delta(m0, m1, "adedge_events_unrecorded_total"); d < float64(st[http.StatusServiceUnavailable]) {
		t.Errorf("adedge_events_unrecorded_total rose %.0f, want >= %d (the 503s)", d, st[http.StatusServiceUnavailable])
	}
	if _, h := e.health(); !strings.Contains(fmt.Sprint(h["events"]), "no space left on device") {
		t.Errorf("/health events member does not name the error: %v", h["events"])
	}

	// Space frees, ClickHouse returns; the SDK retries what got no 204.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	issued := min(int(next.Load()), len(g.toks)) // next passes the end when the tokens ran out
	g.retryUnacked(t, listen, issued)
	waitFor(t, 10*time.Second, "/health ok after space freed", func() bool {
		code, h := e.health()
		return code == 200 && h["status"] == "ok"
	})
	g.checkClickHouse(t, url, issued)

	// Stop the edge (it closes the log) and read what is on the tmpfs.
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	<-e.exited
	ls, err := evtool.ComputeStats(evDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log after the drill: %d records, imp %+v, damaged %d, torn %d bytes, undecodable %d",
		ls.Records, *ls.Kinds["imp"], ls.DamagedRecords, ls.TornBytes, ls.Undecodable)
	if ls.DamagedRecords != 0 || ls.TornBytes != 0 || ls.Undecodable != 0 {
		t.Fatalf("the full disk left damage: %+v", ls)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
