package profiles

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/adedge/adedge/server/profiles/aerotest"
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

// TestBreakerDeadNode: the Aerospike server goes away under a stream of
// reads. Reads fail fast with ErrUnavailable once the breaker trips, the
// client's per-command dial goroutines stay bounded, and the store reports
// itself unreachable; once the server is back (same port), a probe closes
// the breaker and reads hit again.
func TestBreakerDeadNode(t *testing.T) {
	srv, err := aerotest.Start("test")
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	st, err := OpenAerospike(AerospikeConfig{Hosts: []string{addr}, Namespace: "test", Set: "p", MinConns: 4, MaxConns: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutProfile(context.Background(), "dev-1", &Profile{Segments: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	var p Profile
	if err := st.Get(context.Background(), "dev-1", &p); err != nil {
		t.Fatalf("healthy read: %v", err)
	}
	base := runtime.NumGoroutine()
	srv.Close()

	var unavailable int
	start := time.Now()
	for i := 0; i < 5000; i++ {
		if errors.Is(st.Get(context.Background(), "dev-1", &p), ErrUnavailable) {
			unavailable++
		}
	}
	el := time.Since(start)
	stats := st.Stats()
	t.Logf("5000 reads against a dead node in %v: %d shed, stats %+v, goroutines %d (were %d)", el, unavailable, stats, runtime.NumGoroutine(), base)
	if unavailable < 4900 {
		t.Errorf("%d of 5000 reads shed, want nearly all", unavailable)
	}
	if !stats.Unreachable || stats.BreakerTrips == 0 {
		t.Errorf("stats %+v, want unreachable", stats)
	}
	if g := runtime.NumGoroutine(); g > base+200 {
		t.Errorf("%d goroutines (were %d): dial goroutines not bounded", g, base)
	}

	// The server comes back on the same port.
	srv2, err := aerotest.StartOn(addr, "test")
	if err != nil {
		t.Skipf("port %s not reusable for the recovery half: %v", addr, err)
	}
	defer srv2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := st.Get(context.Background(), "dev-1", &p)
		if err == nil || errors.Is(err, ErrNotFound) { // the new server is empty
			t.Logf("recovered: %v open=%v fails=%d until=%d", err, st.brk.open(), st.brk.fails.Load(), st.brk.openUntil.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 10s after the server came back: %v (stats %+v)", err, st.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Stats().Unreachable {
		t.Error("still unreachable after a good read")
	}
}
