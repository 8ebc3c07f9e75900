package profiles

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// backgroundFloor: request deadlines shorter than this are not handed to
// the background read, which runs under the store's own read timeout
// (DefaultReadTimeout, the same 25 ms) instead.
const backgroundFloor = 25 * time.Millisecond

// ErrBusy means a Bounded store already has as many reads pending as its
// adaptive limit allows (the store is slow): the request is served
// unpersonalised rather than queued behind them.
var ErrBusy = errors.New("profiles: too many reads pending")

// Adaptive concurrency limit (AIMD): a read answered within its request's
// deadline raises the limit by one, up to maxPending; a read its request
// gave up on lowers it by a quarter, at most once per decreaseEvery and
// never below minLimit. A slow store thus gets the reads it can answer
// in time and the rest are shed at once (ErrBusy) instead of every read
// waiting out its deadline, and none shed at all; when it recovers, each
// good answer raises the limit again (from minLimit to 1024 in about a
// thousand reads: well under a second at the rates where it matters).
const (
	minLimit      = 8
	decreaseEvery = 5 * time.Millisecond
)

// Bounded wraps a network store so a request never waits past its deadline,
// whatever the client library does (connection dials, a 1 ms floor on
// socket deadlines, a stalled node): Get runs the read on its own goroutine
// and returns ErrTimeout when ctx ends first, leaving the read to finish in
// the background under the wrapped store's own timeout (see Get). At most
// the adaptive limit (see minLimit; never above maxPending) of reads run
// at once; beyond it Get returns ErrBusy at once, so a slow or dead
// backend cannot pile up goroutines.
func Bounded(s Store, maxPending int) Store {
	if maxPending <= 0 {
		maxPending = 1024
	}
	b := &bounded{Store: s, max: int64(maxPending)}
	b.limit.Store(int64(maxPending))
	b.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	return b
}

type bounded struct {
	Store
	max      int64
	limit    atomic.Int64 // adaptive: minLimit..max
	inflight atomic.Int64 // reads running, abandoned ones included
	lastCut  atomic.Int64 // unix nanos of the last decrease
	busy     atomic.Uint64
	calls    sync.Pool
	// req counts what requests got (a read abandoned at the deadline is a
	// timeout here even if the store later answered it): what /health and
	// operators care about.
	req counters
}

// call is one background read. Whoever finishes second (the reader or the
// abandoning request) returns it to the pool.
type call struct {
	prof  Profile
	err   error
	done  chan struct{}
	state atomic.Int32 // 0 running, 1 finished, 2 abandoned
}

func (b *bounded) Get(ctx context.Context, device string, dst *Profile) error {
	err := b.get(ctx, device, dst)
	if err == ErrBusy {
		b.req.gets.Add(1)
		b.req.timeouts.Add(1) // shed for load: the request did not get its read in time
		b.busy.Add(1)
		return err
	}
	return b.req.countGet(err)
}

// Limit is the current adaptive limit on pending reads (for tests and
// metrics).
func (b *bounded) Limit() int { return int(b.limit.Load()) }

// answered raises the limit after a read answered in time.
func (b *bounded) answered() {
	if l := b.limit.Load(); l < b.max {
		b.limit.CompareAndSwap(l, l+1)
	}
}

// abandoned lowers the limit after a request gave up on its read.
func (b *bounded) abandoned() {
	now := time.Now().UnixNano()
	last := b.lastCut.Load()
	if now-last < int64(decreaseEvery) || !b.lastCut.CompareAndSwap(last, now) {
		return
	}
	l := b.limit.Load()
	b.limit.CompareAndSwap(l, max(minLimit, l-l/4))
}

func (b *bounded) get(ctx context.Context, device string, dst *Profile) error {
	dst.Reset()
	if b.inflight.Add(1) > b.limit.Load() {
		b.inflight.Add(-1)
		return ErrBusy
	}
	c := b.calls.Get().(*call)
	c.state.Store(0)
	device = string([]byte(device)) // the caller's bytes may be reused once we return
	// The background read does not inherit the request's deadline: a
	// network client that hits its own socket deadline mid-answer must close
	// that connection (the stream's state is unknown), so a 1 ms budget
	// under load would churn the pool into a dial per request. The read
	// runs under the store's own read timeout instead, and the connection
	// goes back to the pool; only the request stops waiting at its deadline.
	bg := context.Background()
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > backgroundFloor {
		// A caller with a long budget (tests, tools) keeps it; the edge's
		// 1 ms never gets here, so this allocation is off its path.
		bg, cancel = context.WithDeadline(bg, dl)
	}
	go func() {
		c.prof.Reset()
		c.err = b.Store.Get(bg, device, &c.prof)
		if cancel != nil {
			cancel()
		}
		b.inflight.Add(-1)
		if c.state.CompareAndSwap(0, 1) {
			c.done <- struct{}{}
			return
		}
		b.calls.Put(c) // abandoned: the request is gone, recycle here
	}()
	select {
	case <-c.done:
		err := c.err
		if err != ErrTimeout {
			b.answered()
		} else {
			b.abandoned()
		}
		if err == nil {
			dst.Segments = append(dst.Segments, c.prof.Segments...)
			dst.InstalledApps = append(dst.InstalledApps, c.prof.InstalledApps...)
			dst.Caps = append(dst.Caps, c.prof.Caps...)
		}
		b.calls.Put(c)
		return err
	case <-ctx.Done():
		if c.state.CompareAndSwap(0, 2) {
			b.abandoned()
			return ErrTimeout
		}
		<-c.done // finished at the same instant: use the answer
		err := c.err
		if err == nil {
			dst.Segments = append(dst.Segments, c.prof.Segments...)
			dst.InstalledApps = append(dst.InstalledApps, c.prof.InstalledApps...)
			dst.Caps = append(dst.Caps, c.prof.Caps...)
		}
		b.calls.Put(c)
		return err
	}
}

// Stats reports reads as requests saw them (busy refusals and abandoned
// reads are timeouts), with the wrapped store's cap and breaker figures.
func (b *bounded) Stats() Stats {
	in := b.Store.Stats()
	st := b.req.Stats()
	st.CapIncrements, st.CapErrors = in.CapIncrements, in.CapErrors
	st.Unreachable, st.Shed, st.BreakerTrips = in.Unreachable, in.Shed, in.BreakerTrips
	st.Busy = b.busy.Load()
	return st
}

// Unwrap returns the wrapped store (for type assertions such as Putter).
func (b *bounded) Unwrap() Store { return b.Store }
