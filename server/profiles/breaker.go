package profiles

import (
	"errors"
	"sync/atomic"
	"time"
)

// ErrUnavailable means the store's backend refused connections several
// times in a row and calls are being shed for a short while: the request
// is served unpersonalised at once instead of paying for a doomed call.
var ErrUnavailable = errors.New("profiles: store unreachable; calls shed while it recovers")

// Breaker thresholds: breakerTrip consecutive connection failures open it
// for breakerMinOpen; each failed probe doubles that up to breakerMaxOpen.
const (
	breakerTrip    = 8
	breakerMinOpen = 50 * time.Millisecond
	breakerMaxOpen = time.Second
)

// breaker is a circuit breaker for a backend that is down (connections
// refused, no node), not slow: Bounded handles slow. It exists because the
// Aerospike v7 client, asked for a connection to a dead node with an empty
// pool, starts a dial goroutine per command and builds a stack-traced
// error for each; at tens of thousands of reads a second that took an
// edge to 15,000 goroutines and seconds-long stalls in a drill. While open
// it sheds every call but one probe per window; the first success closes
// it. State is three atomics, no lock: it sits on every request's path.
// (sony/gobreaker was considered: it takes a mutex per call.)
type breaker struct {
	fails     atomic.Int32 // consecutive connection-class failures
	openUntil atomic.Int64 // unix nanos; 0 = closed
	window    atomic.Int64 // current open duration, nanos
	trips     atomic.Uint64
	shed      atomic.Uint64
}

// allow reports whether a call may go to the backend now. When the open
// window has passed, exactly one caller gets through as the probe (the
// window is pushed out for everyone else while it runs).
func (b *breaker) allow(now int64) bool {
	ok, _ := b.allowProbe(now)
	return ok
}

// allowProbe is allow, also saying whether the call is the probe: a probe
// should try harder (retries on fresh connections), since the pool may
// still hold connections to the node's previous life.
func (b *breaker) allowProbe(now int64) (ok, probe bool) {
	u := b.openUntil.Load()
	if u == 0 {
		return true, false
	}
	if now >= u && b.openUntil.CompareAndSwap(u, now+b.window.Load()) {
		return true, true
	}
	b.shed.Add(1)
	return false, false
}

// success closes the breaker.
func (b *breaker) success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
		b.window.Store(0)
	}
}

// nextTrips reports whether the next failure would open a closed breaker.
func (b *breaker) nextTrips() bool {
	return b.openUntil.Load() == 0 && b.fails.Load()+1 >= breakerTrip
}

// reachable records evidence that the node holds connections and takes
// requests (a sent read that timed out waiting for its answer): the run of
// connection failures is broken, but an open breaker stays open until a
// call succeeds.
func (b *breaker) reachable() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
}

// failure records a connection-class failure; the breakerTrip-th in a row
// opens the breaker, and a failure while open (the probe's) doubles the
// window.
func (b *breaker) failure(now int64) {
	if b.fails.Add(1) < breakerTrip {
		return
	}
	w := b.window.Load()
	switch {
	case w == 0:
		w = int64(breakerMinOpen)
	case b.openUntil.Load() != 0:
		w = min(2*w, int64(breakerMaxOpen))
	}
	b.window.Store(w)
	if b.openUntil.Swap(now+w) == 0 {
		b.trips.Add(1)
	}
}

// open reports whether calls are being shed.
func (b *breaker) open() bool { return b.openUntil.Load() != 0 }
