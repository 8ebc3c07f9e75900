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
