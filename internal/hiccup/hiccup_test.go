package hiccup

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The loop's accounting on a fake clock: every sleep takes the period
// plus a planned delay; delays over the threshold are stalls, kept
// largest first, and the maximum counts delays under it too.
func TestAccounting(t *testing.T) {
	const period = time.Millisecond
	extra := map[int]time.Duration{3: 5 * time.Millisecond, 7: 2 * time.Millisecond, 10: 500 * time.Microsecond, 12: 9 * time.Millisecond, 15: 3 * time.Millisecond}
	m := &Meter{o: Options{Period: period, Threshold: time.Millisecond, Keep: 2}}
	var now time.Duration
	calls := 0
	clock := func() time.Duration { return now }
	sleep := func(d time.Duration) {
		calls++
		now += d + extra[calls]
		if calls == 20 {
			m.stop.Store(true)
		}
	}
	var c CPU
	m.run(&c, clock, sleep)
	if c.Wakeups != 20 {
		t.Errorf("wakeups %d, want 20", c.Wakeups)
	}
	if c.Stalls != 4 {
		t.Errorf("stalls %d, want 4 (5, 2, 9 and 3 ms late)", c.Stalls)
	}
	if c.MaxLate != 9*time.Millisecond {
		t.Errorf("max late %v, want 9ms", c.MaxLate)
	}
	// Sleep 12 began after 11 sleeps: 11 periods plus the 7.5 ms of
	// delays before it.
	want := []Stall{{At: 11*period + 7500*time.Microsecond, Late: 9 * time.Millisecond}, {At: 2 * period, Late: 5 * time.Millisecond}}
	if len(c.Largest) != 2 || c.Largest[0] != want[0] || c.Largest[1] != want[1] {
		t.Errorf("largest %v, want %v", c.Largest, want)
	}
}

func TestKeepLargest(t *testing.T) {
	var l []Stall
	for i, late := range []time.Duration{3, 1, 4, 1, 5, 9, 2, 6} {
		l = keepLargest(l, Stall{At: time.Duration(i), Late: late}, 3)
	}
	if len(l) != 3 || l[0].Late != 9 || l[1].Late != 6 || l[2].Late != 5 {
		t.Fatalf("%v: want lates 9, 6, 5", l)
	}
}

// The real threads: pinned to CPU 0, at least one wake-up each, and
// errors that say what to change.
func TestRealThread(t *testing.T) {
	m, err := Start(Options{CPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	res := m.Stop()
	if len(res) != 1 || res[0].CPU != 0 || res[0].Wakeups < 1 || res[0].MaxLate < -time.Millisecond {
		t.Fatalf("%+v", res)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no CPUs"},
		{Options{CPUs: []int{0}, Priority: 100}, "priority 100"},
		{Options{CPUs: []int{0, 1000}}, "CPU 1000"},
	} {
		if _, err := Start(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.o, err, c.want)
		}
	}
}

// At SCHED_FIFO 99, as the suite runs it: needs root (CI is).
func TestFIFO(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; SCHED_FIFO must be available")
		}
		t.Skip("not root: SCHED_FIFO needs CAP_SYS_NICE")
	}
	m, err := Start(Options{CPUs: []int{0}, Priority: 99})
	if err != nil {
		t.Fatal(err)
	}
	if res := m.Stop(); res[0].Priority != 99 || res[0].Wakeups < 1 {
		t.Fatalf("%+v", res)
	}
}
