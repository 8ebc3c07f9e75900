package hiccup

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// thread pins the calling goroutine's thread to cpu at SCHED_FIFO prio (0:
// left as it is) and returns its clock and sleep. The sleep is a raw
// clock_nanosleep: the thread keeps its P, so a late return is never the
// Go scheduler's hand-off (adtool hiccup runs with a P per thread to
// spare). The thread is never unlocked: once pinned or real-time it must
// not serve other goroutines, so the runtime ends it with the goroutine.
func thread(cpu, prio int) (clock func() time.Duration, sleep func(time.Duration), err error) {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, nil, fmt.Errorf("hiccup: pin a thread to CPU %d: %w", cpu, err)
	}
	if prio > 0 {
		attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return nil, nil, fmt.Errorf("hiccup: SCHED_FIFO %d on CPU %d (needs root or CAP_SYS_NICE; --priority 0 measures at normal priority): %w", prio, cpu, err)
		}
	}
	base := time.Now()
	clock = func() time.Duration { return time.Since(base) }
	sleep = func(d time.Duration) {
		ts := unix.NsecToTimespec(int64(d))
		_, _, _ = unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}
	return clock, sleep, nil
}
