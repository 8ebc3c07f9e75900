package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/token"
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
				if k%5 == 0 && next.Load() > 0 {
					g.fire(addr, rnd.IntN(int(next.Load()))) // a replay
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
// generator's own record.
func TestKill9ExactlyOnce(t *testing.T) {
	ch := chkit.Start(t)
	kills, per, chDown := 2, 2*time.Second, 2*time.Second
	if full {
		kills, per, chDown = 5, 6*time.Second, 20*time.Second
	}
	const rate = 2500.0
	g := newPixelGen(t, int(rate*per.Seconds()*float64(kills+2)))
	evDir := t.TempDir()
	listen := freePort(t)
	url := ch.URL() + "?database=drill"
	flags := []string{"--listen", listen, "--events-dir", evDir, "--events-clickhouse", url,
		"--events-ship-interval", "100ms", "--events-sample-ads", "0", "--events-backlog-age", "1s"}
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
			time.Sleep(chDown)
			if code, h := e.health(); code != 200 || !hasReason(h, "events_backlog") {
				t.Errorf("/health with ClickHouse down %s: %d %v", chDown, code, h)
			}
			if err := ch.Restart(); err != nil {
				t.Fatal(err)
			}
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
	issued := int(next.Load())
	loadSent := g.sent.Load() - sentBefore
	// The SDK retries every pixel it has no 204 for.
	for i := 0; i < issued; i++ {
		for try := 0; !g.acked[i].Load(); try++ {
			if try == 50 {
				t.Fatalf("token %d never acknowledged", i)
			}
			if !g.fire(listen, i) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	var wantN, wantSum int64
	for i := 0; i < issued; i++ {
		wantN++
		wantSum += g.prices[i]
	}
	statuses := map[int]int64{}
	g.status.Range(func(k, v any) bool { statuses[k.(int)] = v.(*atomic.Int64).Load(); return true })
	pps := float64(loadSent) / loadTime.Seconds()
	t.Logf("%d kills, ClickHouse down %s, %d pixel requests in %s of load (%.0f/s, every fifth a replay; %s in all), %d unique tokens acknowledged after retries, statuses %v",
		kills, chDown, loadSent, loadTime.Round(time.Millisecond), pps, elapsed.Round(time.Millisecond), wantN, statuses)
	if pps < 2000 {
		t.Errorf("drill rate %.0f pixels/s, want >= 2000", pps)
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
	if os.Getenv("ADEDGE_DRILL_KEEP") != "" {
		t.Logf("event log kept in %s", evDir)
	}
}
