package profiles

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/aerokit"
)

// TestBreakerStates walks the breaker through trip, shed, probe, longer
// window, and close, on a fake clock.
func TestBreakerStates(t *testing.T) {
	var b breaker
	now := int64(1_000_000_000)
	for i := 0; i < breakerTrip-1; i++ {
		b.failure(now)
	}
	if b.open() || !b.allow(now) {
		t.Fatal("open before the trip threshold")
	}
	b.failure(now)
	if !b.open() || b.trips.Load() != 1 {
		t.Fatal("not open after the threshold")
	}
	if b.allow(now + int64(breakerMinOpen) - 1) {
		t.Fatal("a call got through an open window")
	}
	// The window has passed: one probe, the rest shed.
	probeAt := now + int64(breakerMinOpen)
	if !b.allow(probeAt) {
		t.Fatal("no probe after the window")
	}
	if b.allow(probeAt) {
		t.Fatal("a second caller got through while the probe runs")
	}
	// The probe fails: the window doubles.
	b.failure(probeAt)
	if b.allow(probeAt + int64(breakerMinOpen)) {
		t.Fatal("window did not double after a failed probe")
	}
	if !b.allow(probeAt + 2*int64(breakerMinOpen)) {
		t.Fatal("no probe after the doubled window")
	}
	// Doubling stops at the maximum.
	for range 20 {
		b.failure(probeAt)
	}
	if w := time.Duration(b.window.Load()); w != breakerMaxOpen {
		t.Fatalf("window %v, want capped at %v", w, breakerMaxOpen)
	}
	b.success()
	if b.open() || !b.allow(probeAt) || b.fails.Load() != 0 {
		t.Fatal("success did not close the breaker")
	}
	if b.shed.Load() == 0 || b.trips.Load() != 1 {
		t.Errorf("shed %d trips %d", b.shed.Load(), b.trips.Load())
	}
}

// TestBreakerDeadNode: the real Aerospike server is killed under a stream
// of reads. Reads fail fast with ErrUnavailable once the breaker trips, the
// client's per-command dial goroutines stay bounded, and the store reports
// itself unreachable; once the server is back (same port, empty: memory
// storage), a probe closes the breaker within a second and reads answer
// again, without reopening the store.
func TestBreakerDeadNode(t *testing.T) {
	srv := aerokit.Start(t)
	st, err := OpenAerospike(AerospikeConfig{Hosts: []string{srv.Addr()}, Namespace: aerokit.NamespaceTest, Set: "p", MinConns: 4, MaxConns: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := ctxFor(t, 10*time.Second)
	if err := st.PutProfile(ctx, "dev-1", &Profile{Segments: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	var p Profile
	if err := st.Get(ctx, "dev-1", &p); err != nil {
		t.Fatalf("healthy read: %v", err)
	}
	base := runtime.NumGoroutine()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}

	var unavailable, peak int
	start := time.Now()
	for i := 0; i < 5000; i++ {
		if errors.Is(st.Get(context.Background(), "dev-1", &p), ErrUnavailable) {
			unavailable++
		}
		if i%100 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	el := time.Since(start)
	stats := st.Stats()
	t.Logf("5000 reads against a dead node in %v: %d shed, stats %+v, goroutines peak %d now %d (were %d)", el, unavailable, stats, peak, runtime.NumGoroutine(), base)
	if unavailable < 4900 {
		t.Errorf("%d of 5000 reads shed, want nearly all", unavailable)
	}
	if !stats.Unreachable || stats.BreakerTrips == 0 {
		t.Errorf("stats %+v, want unreachable", stats)
	}
	if st.lastDialError() == "" {
		t.Error("the breaker tripped without a failed reachability dial on record")
	}
	// Reads and writes with a deadline fail within it.
	for i := 0; i < 3; i++ {
		const d = 100 * time.Millisecond
		start := time.Now()
		if err := st.Get(ctxFor(t, d), "dev-1", &p); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("Get with the server gone: %v", err)
		}
		if err := st.IncrementCap(ctxFor(t, d), "dev-1", "c", 60, 120); err == nil {
			t.Fatal("IncrementCap with the server gone succeeded")
		}
		if el := time.Since(start); el > 2*d+slack {
			t.Fatalf("a read and a write against a dead server took %v", el)
		}
	}
	// The peak is logged, not bounded: before the breaker trips (and in
	// each probe) the client spins to the read's deadline starting a dial
	// goroutine per turn, so the peak depends on CPU speed and load (3 to
	// 940 measured here), which made a fixed bound flaky (287 against
	// base+200 in the race pass). What the breaker must guarantee is
	// asserted instead: nearly every read shed at once, the storm over
	// quickly, and no goroutine left behind (below).
	if el > 20*time.Second {
		t.Errorf("5000 reads against a dead node took %v", el)
	}

	// The server comes back on the same port.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	deadline := back.Add(10 * time.Second)
	for {
		err := st.Get(context.Background(), "dev-1", &p)
		if err == nil || errors.Is(err, ErrNotFound) { // the new server is empty
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 10s after the server came back: %v (stats %+v)", err, st.Stats())
		}
		time.Sleep(5 * time.Millisecond) // polling the store's recovery
	}
	t.Logf("reads answered again %v after the server was ready", time.Since(back))
	if st.Stats().Unreachable {
		t.Error("still unreachable after a good read")
	}
	// Goroutines settle back: nothing leaked per failed read.
	for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base+20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines 10s after recovery (were %d)", runtime.NumGoroutine(), base)
		}
	}
}

// TestBreakerLiveNodeBusyPool: a live node under more concurrent reads than
// the pool holds connections. Reads find the pool empty while the client
// dials more, with far fewer than max_conns in flight; that looks like a
// dead node's empty pool, and the breaker counted it as one: issue 13's
// edge at 10k req/s against the real server shed 41k of 75k reads as
// "unavailable" with the node answering every read it got. A dial to the
// node before the breaker trips tells the two apart (reachableByDial).
func TestBreakerLiveNodeBusyPool(t *testing.T) {
	s, _ := real(t, "?max_conns=256&min_conns=1")
	ctx := ctxFor(t, 10*time.Second)
	if err := s.PutProfile(ctx, "dev-1", &Profile{Segments: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	const workers, reads = 96, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p Profile
			for range reads {
				err := s.Get(context.Background(), "dev-1", &p)
				k := "ok"
				switch {
				case errors.Is(err, ErrUnavailable):
					k = "unavailable"
				case errors.Is(err, ErrTimeout):
					k = "timeout"
				case err != nil:
					k = "other"
				}
				mu.Lock()
				counts[k]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("%d reads by %d workers: %v; stats %+v", workers*reads, workers, counts, st)
	if st.BreakerTrips != 0 || counts["unavailable"] != 0 {
		t.Fatalf("a live node was treated as dead: %d trips, %d reads shed (%v); last failed dial: %q", st.BreakerTrips, counts["unavailable"], counts, s.lastDialError())
	}
	if counts["ok"] < workers*reads/2 {
		t.Fatalf("only %d of %d reads answered by a live node: %v", counts["ok"], workers*reads, counts)
	}
}
