// Package hiccup measures stalls of the platform under a benchmark: per
// CPU, one thread at the top real-time priority (SCHED_FIFO 99) sleeps a
// fixed period in a loop and records how late each wake-up is. Nothing in
// the guest at a lower priority can delay that thread, so a late wake-up
// is time the CPU was not the guest's to give: the hypervisor ran
// something else, or the kernel held interrupts off. The benchmark suite
// runs it beside its latency rows (adtool hiccup) so a p99.9 that matches
// a stall here is read as the platform's, not the edge's
// (docs/BENCHMARKS.md, "Stalls that are the platform's").
//
// One stall is the guest's own: when real-time tasks use up a CPU's
// sched_rt_runtime_us (95% by default), the kernel throttles them all,
// this thread included, for the rest of sched_rt_period_us. A benchmark
// that saturates a CPU at SCHED_FIFO shows here as stalls of up to 50 ms.
package hiccup

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Meter.
type Options struct {
	// CPUs to measure, one thread each (required).
	CPUs []int
	// Period is each sleep (default 1 ms): the finest stall it resolves,
	// and 1/Period wake-ups a second of cost.
	Period time.Duration
	// Threshold is the lateness that counts as a stall (default 1 ms).
	Threshold time.Duration
	// Priority is the threads' SCHED_FIFO priority, 1..99; 0 leaves them
	// at normal priority (without root), where the guest's own load
	// delays them too.
	Priority int
	// Keep is how many of the largest stalls per CPU are returned
	// (default 8).
	Keep int

	// clock and sleep replace the real ones in tests.
	clock func() time.Duration
	sleep func(time.Duration)
}

// CPU is one thread's account.
type CPU struct {
	CPU      int           `json:"cpu"`
	Priority int           `json:"priority"` // SCHED_FIFO priority it ran at (0 normal)
	Wakeups  int           `json:"wakeups"`
	Stalls   int           `json:"stalls"` // wake-ups later than the threshold
	MaxLate  time.Duration `json:"max_late_ns"`
	Largest  []Stall       `json:"largest"` // the largest stalls, largest first
}

// Stall is one late wake-up: when it began (since Start) and how late.
type Stall struct {
	At   time.Duration `json:"at_ns"`
	Late time.Duration `json:"late_ns"`
}

// Meter is a running measurement; Stop ends it.
type Meter struct {
	o    Options
	stop atomic.Bool
	wg   sync.WaitGroup
	res  []CPU
	errs []error
}

// Start begins measuring every CPU in o.CPUs. It returns once every thread
// is pinned and at its priority, or the first thread's error (a CPU the
// process may not use, a priority it may not take).
func Start(o Options) (*Meter, error) {
	if len(o.CPUs) == 0 {
		return nil, fmt.Errorf("hiccup: no CPUs to measure")
	}
	if o.Period <= 0 {
		o.Period = time.Millisecond
	}
	if o.Threshold <= 0 {
		o.Threshold = time.Millisecond
	}
	if o.Keep <= 0 {
		o.Keep = 8
	}
	if o.Priority < 0 || o.Priority > 99 {
		return nil, fmt.Errorf("hiccup: priority %d: want 0 (normal) or 1..99 (SCHED_FIFO)", o.Priority)
	}
	m := &Meter{o: o, res: make([]CPU, len(o.CPUs)), errs: make([]error, len(o.CPUs))}
	ready := make(chan int, len(o.CPUs))
	for i, cpu := range o.CPUs {
		m.res[i] = CPU{CPU: cpu, Priority: o.Priority}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			clock, sleep := o.clock, o.sleep
			if clock == nil {
				var err error
				if clock, sleep, err = thread(cpu, o.Priority); err != nil {
					m.errs[i] = err
					ready <- i
					return
				}
			}
			ready <- i
			m.run(&m.res[i], clock, sleep)
		}()
	}
	for range o.CPUs {
		<-ready
	}
	for _, err := range m.errs {
		if err != nil {
			m.Stop()
			return nil, err
		}
	}
	return m, nil
}

// run is one thread's loop: sleep, then charge everything past the
// period to the wake-up.
func (m *Meter) run(c *CPU, clock func() time.Duration, sleep func(time.Duration)) {
	o := &m.o
	start := clock()
	for first := true; first || !m.stop.Load(); first = false { // at least one wake-up
		t := clock()
		sleep(o.Period)
		late := clock() - t - o.Period
		c.Wakeups++
		if late > c.MaxLate {
			c.MaxLate = late
		}
		if late <= o.Threshold {
			continue
		}
		c.Stalls++
		c.Largest = keepLargest(c.Largest, Stall{At: t - start, Late: late}, o.Keep)
	}
}

// keepLargest inserts s into l (largest first), keeping at most n.
func keepLargest(l []Stall, s Stall, n int) []Stall {
	i := sort.Search(len(l), func(i int) bool { return l[i].Late < s.Late })
	if i >= n {
		return l
	}
	l = append(l, Stall{})
	copy(l[i+1:], l[i:])
	l[i] = s
	if len(l) > n {
		l = l[:n]
	}
	return l
}

// Stop ends the measurement (within one period) and returns each CPU's
// account, in the order of Options.CPUs.
func (m *Meter) Stop() []CPU {
	m.stop.Store(true)
	m.wg.Wait()
	return m.res
}
