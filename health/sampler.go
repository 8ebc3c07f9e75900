package health

import (
	"context"
	"math"
	"runtime"
	"time"
)

// sample is one reading of the cumulative counters.
type sample struct {
	at   time.Time
	prof ProfileCounters
	cpu  time.Duration // process CPU time (user+system)
}

// Run samples the profile store's counters and the process's CPU time every
// tick (default 1 s) until ctx ends, and publishes the rates over the last
// window (default DefaultWindow) for the probe and the agent to read.
func (s *State) Run(ctx context.Context, tick, window time.Duration) {
	if tick <= 0 {
		tick = time.Second
	}
	if window < tick {
		window = DefaultWindow
	}
	n := int(window/tick) + 1
	ring := make([]sample, 0, n)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		ring = s.sampleOnce(ring, n, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleOnce appends one sample to ring (keeping at most n) and publishes
// the rates between the oldest and the newest.
func (s *State) sampleOnce(ring []sample, n int, now time.Time) []sample {
	cur := sample{at: now, cpu: processCPU()}
	if s.cfg.ProfilesFn != nil {
		cur.prof = s.cfg.ProfilesFn()
	}
	if len(ring) == n {
		copy(ring, ring[1:])
		ring = ring[:n-1]
	}
	ring = append(ring, cur)
	old := ring[0]
	ok := (cur.prof.Hits - old.prof.Hits) + (cur.prof.Misses - old.prof.Misses)
	failed := (cur.prof.Timeouts - old.prof.Timeouts) + (cur.prof.Errors - old.prof.Errors)
	// A wrapper may count refusals it never passed to the store (the
	// bounded store's busy reads are timeouts but not gets).
	reads := max(cur.prof.Gets-old.prof.Gets, ok+failed)
	var tr, er float64
	if reads > 0 {
		tr = float64(cur.prof.Timeouts-old.prof.Timeouts) / float64(reads)
		er = float64(cur.prof.Errors-old.prof.Errors) / float64(reads)
	}
	s.breakerOpen.Store(cur.prof.Unreachable)
	s.winReads.Store(reads)
	s.winOK.Store(ok)
	s.timeoutRate.Store(math.Float64bits(tr))
	s.errorRate.Store(math.Float64bits(er))
	s.winSeconds.Store(int64(math.Round(cur.at.Sub(old.at).Seconds())))
	// CPU over the last tick only: the weight should follow load quickly.
	if len(ring) >= 2 {
		prev := ring[len(ring)-2]
		wall := cur.at.Sub(prev.at)
		if wall > 0 {
			share := float64(cur.cpu-prev.cpu) / (float64(wall) * float64(runtime.GOMAXPROCS(0)))
			s.cpu.Store(math.Float64bits(min(1, max(0, share))))
		}
	}
	s.sampled.Store(true)
	return ring
}
