package profiles

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowStore answers after delay, ignoring its context like a client stuck
// in a dial would.
type slowStore struct {
	delay atomic.Int64 // nanoseconds
	calls atomic.Int64
	Store
}

func (s *slowStore) Get(_ context.Context, device string, dst *Profile) error {
	s.calls.Add(1)
	time.Sleep(time.Duration(s.delay.Load()))
	dst.Segments = append(dst.Segments, "seg-"+device)
	return nil
}

func TestBoundedReturnsAtTheDeadline(t *testing.T) {
	slow := &slowStore{Store: NewNone()}
	slow.delay.Store(int64(200 * time.Millisecond))
	b := Bounded(slow, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	var p Profile
	start := time.Now()
	err := b.Get(ctx, "d1", &p)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Get waited %s for a 5ms deadline", el)
	}
	if len(p.Segments) != 0 {
		t.Fatal("a timed-out read filled the profile")
	}
	// A fast answer comes through intact.
	slow.delay.Store(0)
	if err := b.Get(context.Background(), "d2", &p); err != nil || len(p.Segments) != 1 || p.Segments[0] != "seg-d2" {
		t.Fatalf("fast read: %v %v", err, p.Segments)
	}
}

func TestBoundedRefusesBeyondMaxPending(t *testing.T) {
	slow := &slowStore{Store: NewNone()}
	slow.delay.Store(int64(300 * time.Millisecond))
	b := Bounded(slow, 2)
	var wg sync.WaitGroup
	var busy, timeouts atomic.Int64
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			var p Profile
			switch err := b.Get(ctx, "d", &p); {
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			case errors.Is(err, ErrTimeout):
				timeouts.Add(1)
			}
		}()
	}
	wg.Wait()
	if slow.calls.Load() > 2 || busy.Load() < 8 || timeouts.Load()+busy.Load() != 10 {
		t.Fatalf("calls %d busy %d timeouts %d: the bound of 2 pending reads did not hold", slow.calls.Load(), busy.Load(), timeouts.Load())
	}
	if b.Stats().Timeouts < uint64(busy.Load()) {
		t.Fatal("busy refusals not counted")
	}
}

// TestBoundedRace exercises the finish/abandon handoff under -race.
func TestBoundedRace(t *testing.T) {
	slow := &slowStore{Store: NewNone()}
	slow.delay.Store(int64(time.Millisecond))
	b := Bounded(slow, 64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p Profile
			for i := 0; i < 200; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
				err := b.Get(ctx, "dev", &p)
				cancel()
				if err == nil && (len(p.Segments) != 1 || p.Segments[0] != "seg-dev") {
					t.Errorf("corrupt profile %v", p.Segments)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestBoundedAdaptsToASlowStore: 32 concurrent readers against a store
// that turns slow (every read past its deadline). The adaptive limit
// sheds a share of the reads at once instead of letting every one wait
// out its deadline, but keeps reading; once the store is fast again,
// reads are back to none shed within a second.
func TestBoundedAdaptsToASlowStore(t *testing.T) {
	slow := &slowStore{Store: NewNone()}
	b := Bounded(slow, 1024).(*bounded)
	var busy, timeouts, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p Profile
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
				switch err := b.Get(ctx, "d", &p); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrBusy):
					busy.Add(1)
					time.Sleep(100 * time.Microsecond) // an edge serves the ad in between
				case errors.Is(err, ErrTimeout):
					timeouts.Add(1)
				}
				cancel()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	waitFor := func(what string, within time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v (limit %d, ok %d busy %d timeouts %d)", what, within, b.Limit(), ok.Load(), busy.Load(), timeouts.Load())
			}
			time.Sleep(time.Millisecond) // polling the counters
		}
		return time.Since(start)
	}
	// Healthy: reads answer, none shed.
	waitFor("healthy reads", 10*time.Second, func() bool { return ok.Load() > 2000 })
	// A loaded machine can stall a reader past its 2 ms deadline with the
	// store's answer ready (load 20 did, in one of six runs): that is a
	// timeout as the request sees it, and enough of them cut the limit. A
	// read shed with no read ever timed out is the bug.
	if n, to := busy.Load(), timeouts.Load(); n != 0 && to == 0 {
		t.Fatalf("%d reads shed against a healthy store, no read timed out", n)
	} else if n != 0 {
		t.Logf("%d reads shed after %d timed out: the machine stalled the readers (limit %d)", n, to, b.Limit())
	}

	// Slow: 20 ms per read, 2 ms deadlines.
	slow.delay.Store(int64(20 * time.Millisecond))
	waitFor("limit down", 10*time.Second, func() bool { return b.Limit() == minLimit })
	c0, b0, t0 := slow.calls.Load(), busy.Load(), timeouts.Load()
	waitFor("slow-store reads", 10*time.Second, func() bool { return timeouts.Load()-t0 >= 200 })
	calls, shed, tout := slow.calls.Load()-c0, busy.Load()-b0, timeouts.Load()-t0
	t.Logf("slow store: %d reads sent, %d shed, %d timed out (limit %d)", calls, shed, tout, b.Limit())
	if shed == 0 || calls == 0 {
		t.Fatalf("slow store: %d sent, %d shed: want a share shed and reads still sent", calls, shed)
	}
	if g := b.inflight.Load(); g > minLimit+32 {
		t.Fatalf("%d reads in flight with a limit of %d", g, minLimit)
	}

	// Recovered: back to no shedding within a second.
	slow.delay.Store(0)
	back := time.Now()
	var last int64
	el := waitFor("recovery", 10*time.Second, func() bool {
		// 200 ms with nothing shed, counted from when it started.
		n := busy.Load()
		if n != last {
			last, back = n, time.Now()
		}
		return time.Since(back) > 200*time.Millisecond
	})
	recovered := el - 200*time.Millisecond
	t.Logf("recovered (no read shed) %v after the store was fast again; limit %d", recovered, b.Limit())
	if recovered > time.Second {
		t.Fatalf("reads still shed %v after recovery, want within 1s", recovered)
	}
}
