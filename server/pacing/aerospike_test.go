package pacing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"

	"github.com/adedge/adedge/internal/aerokit"
)

func TestMain(m *testing.M) { os.Exit(aerokit.Main(m)) }

// kitTimeout is the services' flush-and-read deadline against the kit: a
// live server answers within it on a loaded 2-core machine, where the
// production 500 ms (and the store's own 1 s) were missed while several
// kit servers and other builds shared the two cores (these tests are about
// lost increments and a killed store, not a slow one).
const kitTimeout = 10 * time.Second

// kitContext is the deadline of a test's direct store calls: generous,
// for the same reason as kitTimeout, and bounded so a hung server fails
// the test rather than the package timeout.
func kitContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func kitSpec(addr, set string) string {
	return fmt.Sprintf("aerospike://%s/%s/%s", addr, aerokit.Namespace(), set)
}

func openKit(t *testing.T, addr, set string) *Aerospike {
	t.Helper()
	st, err := OpenAerospike(kitSpec(addr, set))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The client connects in the background: wait for a good call.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make([]Totals, 1)
	for {
		err := st.Read(ctx, []Delta{{Campaign: "probe", Day: 1}}, out)
		if err == nil {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("store never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's state, not synchronising goroutines
	}
}

// Concurrent edges adding to the same records never lose an increment.
func TestAerospikeConcurrentAdds(t *testing.T) {
	addr := aerokit.Shared(t)
	const edges, flushes = 8, 50
	stores := make([]*Aerospike, edges)
	for i := range stores {
		stores[i] = openKit(t, addr, "conc")
	}
	ctx := kitContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, edges)
	for e := 0; e < edges; e++ {
		wg.Add(1)
		go func(st *Aerospike, e int) {
			defer wg.Done()
			out := make([]Totals, 2)
			for i := 0; i < flushes; i++ {
				d := []Delta{{Campaign: "a", Day: 20260302, Spend: int64(e + 1), Served: 10}, {Campaign: "b", Day: 20260302, Spend: 1}}
				if err := st.Apply(ctx, d, out); err != nil {
					errs <- err
					return
				}
				for _, o := range out {
					if o.Err != nil || !o.Applied {
						errs <- fmt.Errorf("record: %v applied %v", o.Err, o.Applied)
						return
					}
				}
			}
		}(stores[e], e)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	out := make([]Totals, 2)
	if err := stores[0].Read(ctx, []Delta{{Campaign: "a", Day: 20260302}, {Campaign: "b", Day: 20260302}}, out); err != nil {
		t.Fatal(err)
	}
	wantA := int64(flushes * edges * (edges + 1) / 2)
	if out[0].Day != wantA || out[0].Served != flushes*edges*10 || out[0].Life != wantA || out[1].Day != flushes*edges {
		t.Fatalf("totals %+v %+v, want a=%d served=%d b=%d", out[0], out[1], wantA, flushes*edges*10, flushes*edges)
	}
}

// Records that are not counters are unknown, never zero spend: the
// service counts them and does not serve the campaign on a guess.
func TestAerospikeBadRecords(t *testing.T) {
	st := openKit(t, aerokit.Shared(t), "bad")
	ctx := kitContext(t)
	day := uint32(20260302)
	wp := as.NewWritePolicy(0, 0)
	wp.TotalTimeout = kitTimeout
	put := func(id string, bins as.BinMap) {
		k, _ := as.NewKey(aerokit.Namespace(), "bad", DayRecordKey(id, day))
		if err := st.client.Put(wp, k, bins); err != nil {
			t.Fatal(err)
		}
	}
	put("str", as.BinMap{BinSpend: "12", BinServed: 5})
	put("neg", as.BinMap{BinSpend: -5, BinServed: 5})
	out := make([]Totals, 3)
	if err := st.Apply(ctx, []Delta{{Campaign: "str", Day: day, Spend: 1}, {Campaign: "neg", Day: day, Spend: 1}, {Campaign: "ok", Day: day, Spend: 1}}, out); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(out[0].Err, ErrBadRecord) || out[0].Applied {
		t.Errorf("string bin: %+v, want a bad record, not applied", out[0])
	}
	if !errors.Is(out[1].Err, ErrBadRecord) {
		t.Errorf("negative counter: %+v", out[1])
	}
	if out[2].Err != nil || out[2].Day != 1 {
		t.Errorf("good record: %+v", out[2])
	}
	if err := st.Read(ctx, []Delta{{Campaign: "missing", Day: day}}, out[:1]); err != nil || !errors.Is(out[0].Err, ErrNoRecord) {
		t.Errorf("missing record on read: %v %+v", err, out[0])
	}

	svc := NewService(Config{Store: st, Timeout: kitTimeout})
	svc.SetCampaigns(1, []Spec{{ID: "str", Budget: Budget{Daily: 1e9}}})
	svc.Tick(ctx, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	if svc.Stats().BadRecords.Load() != 1 || svc.Problem() == "" || svc.Table().Allow(0, 1) {
		t.Fatalf("bad records %d, problem %q", svc.Stats().BadRecords.Load(), svc.Problem())
	}
}

// The server killed mid-day: flushes fail, the edge falls back to its own
// share and says why; spend made meanwhile reaches the store once it is
// back. A restarted edge reads the fleet's totals before serving.
func TestAerospikeKilledAndRestart(t *testing.T) {
	srv := aerokit.Start(t)
	st := openKit(t, srv.Addr(), "kill")
	spec := Spec{ID: "c", Budget: Budget{Daily: 1_000_000, Mode: ASAP, Unit: 100}}
	svc := NewService(Config{Store: st, Timeout: kitTimeout, Params: Params{ExpectedEdges: 2, StaleAfter: 2 * time.Second}})
	svc.SetCampaigns(1, []Spec{spec})
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ctx := kitContext(t)
	svc.Tick(ctx, now)
	if svc.Problem() != "" {
		t.Fatal(svc.Problem())
	}
	svc.Counted([]byte("c"), false, 400_000)
	svc.Tick(ctx, now.Add(time.Second))

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	svc.Counted([]byte("c"), false, 100_000)
	for i := 2; i < 6; i++ {
		svc.Tick(ctx, now.Add(time.Duration(i)*time.Second))
	}
	if p := svc.Problem(); p == "" || svc.Stats().StoreErrors.Load() == 0 {
		t.Fatalf("store down: problem %q", p)
	}
	if svc.Stats().Fallback.Load() != 1 {
		t.Fatalf("fallback campaigns %d, want 1", svc.Stats().Fallback.Load())
	}
	// The last fresh view had 500k spent (400k flushed, 100k this edge's
	// unflushed): this edge's share of the 500k left is 250k, counted from
	// there.
	if d := svc.Status()[0]; !d.Fallback || d.Budget != 250_000 || d.Spent != 0 {
		t.Fatalf("fallback decision %+v", d)
	}
	svc.Counted([]byte("c"), false, 250_000)
	svc.Tick(ctx, now.Add(6*time.Second))
	if d := svc.Status()[0]; d.State != Exhausted || svc.Table().Allow(0, 1) {
		t.Fatalf("own share spent: %+v", d)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for i := 7; svc.Problem() != ""; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %s", svc.Problem())
		}
		time.Sleep(50 * time.Millisecond) // waiting for the restarted server, polled
		svc.Tick(ctx, now.Add(time.Duration(i)*time.Second))
	}
	out := make([]Totals, 1)
	if err := st.Read(ctx, []Delta{{Campaign: "c", Day: 20260302}}, out); err != nil {
		t.Fatal(err)
	}
	// The kit's memory namespace starts empty after a restart: only the
	// spend flushed after it is there: the 350k counted during the outage.
	if out[0].Day != 350_000 {
		t.Fatalf("after the outage the store has %d, want the 350000 kept during it", out[0].Day)
	}

	// A new edge (a restart) against a fleet that has spent the budget.
	_ = st.Apply(ctx, []Delta{{Campaign: "c", Day: 20260302, Spend: 650_000}}, out)
	fresh := NewService(Config{Store: st, Timeout: kitTimeout})
	fresh.SetCampaigns(1, []Spec{spec})
	if fresh.Table().Allow(0, 1) {
		t.Fatal("a restarted edge serves before reading the totals")
	}
	fresh.Tick(ctx, now.Add(time.Minute))
	if d := fresh.Status()[0]; d.State != Exhausted || fresh.Table().Allow(0, 1) {
		t.Fatalf("restarted edge: %+v", d)
	}
}
