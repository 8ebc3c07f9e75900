package faults

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/adedge/adedge/internal/schedstat"
)

// The machine's scheduling stall, measured on the edge itself.
//
// On a loaded 2-core machine a runnable thread waits for a core in turn
// with every other runnable thread: at load 30-40, and at nice 19 beside
// builds at nice 10, a thread of the edge can wait a quarter of a second
// and more. A request being served on that thread waits with it, so the
// edge's server-side tail then says how busy the machine was, not what
// the edge did. The kernel counts, per thread, the time it spent runnable
// but waiting for a core (/proc/PID/task/TID/schedstat, second field).
// The sampler reads those counters for every thread of the edge every few
// milliseconds; bounded takes the edge's longest stretch of waiting
// between the same two scrapes it reads the histogram from, and allows it
// on top of the stall bound. Time the edge spends blocked (a lock, a
// store it should not wait on, a sleep) is not run-queue wait, so a real
// stall still fails the bound on a loaded machine.

// sampleEvery is the sampler's period: a stall shorter than this shows
// merged with its neighbours; the bound it feeds is 50 ms.
const sampleEvery = 5 * time.Millisecond

// keepSamples is how far back a sampler keeps its samples.
const keepSamples = 5 * time.Minute

// schedSampler holds one process's per-thread run-queue wait over time.
type schedSampler struct {
	pid  int
	stop chan struct{}
	mu   sync.Mutex
	at   []int64         // sample times, unix ns
	wait []map[int]int64 // per sample: thread id -> cumulative run-queue wait, ns
	err  error           // why there are no samples, if there are none
}

func startSampler(pid int) *schedSampler {
	s := &schedSampler{pid: pid, stop: make(chan struct{})}
	go func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			w, err := schedstat.ThreadWaits(pid)
			at := time.Now().UnixNano()
			s.mu.Lock()
			if err != nil {
				if len(s.at) == 0 {
					s.err = err
				}
				s.mu.Unlock()
				return // the process is gone (or /proc is not Linux's)
			}
			s.at = append(s.at, at)
			s.wait = append(s.wait, w)
			if at-s.at[0] > int64(keepSamples) {
				// A window is a phase and its waits, well under this: the
				// test process's sampler runs for the whole package.
				half := len(s.at) / 2
				s.at, s.wait = slices.Clone(s.at[half:]), slices.Clone(s.wait[half:])
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// longestStall returns the longest stretch one of the process's threads
// spent waiting for a core between two instants (unix ns): consecutive
// sample intervals in which the thread waited at least half the time,
// summed. The stretch is what a request running on that thread waited.
func (s *schedSampler) longestStall(from, to int64) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest int64
	run := map[int]int64{} // thread -> its current stretch
	n := 0
	for i := 1; i < len(s.at); i++ {
		if s.at[i] < from || s.at[i-1] > to {
			continue
		}
		n++
		dt := s.at[i] - s.at[i-1]
		for tid, w := range s.wait[i] {
			prev, ok := s.wait[i-1][tid]
			if !ok {
				continue
			}
			if dw := w - prev; dw*2 >= dt {
				run[tid] += dw
				longest = max(longest, run[tid])
			} else {
				run[tid] = 0
			}
		}
	}
	if n == 0 {
		err := s.err
		if err == nil {
			err = fmt.Errorf("no samples of pid %d in the window", s.pid)
		}
		return 0, err
	}
	return time.Duration(longest), nil
}

var (
	selfOnce    sync.Once
	selfSampler *schedSampler
)

// self samples this test process (the load generator and the in-process
// stores), for verdicts on client-side latency.
func self() *schedSampler {
	selfOnce.Do(func() { selfSampler = startSampler(os.Getpid()) })
	return selfSampler
}
