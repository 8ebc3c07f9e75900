// Package schedstat reads how long a process's threads waited for a core:
// the kernel's per-thread run-queue wait (/proc/PID/task/TID/schedstat,
// second field, nanoseconds). Timing tests take it off what they measure,
// so a loaded machine's scheduling delay is not read as the code's
// latency, while time spent blocked (a lock, a sleep, a slow store) still
// counts (docs/DECISIONS.md, "Tests on a loaded machine assert what load
// cannot move").
package schedstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ThreadWaits is each thread's cumulative run-queue wait in ns, by thread
// id. A thread that exits while it is read is left out.
func ThreadWaits(pid int) (map[int]int64, error) {
	ds, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(ds) == 0 {
		return nil, fmt.Errorf("no /proc/%d/task/*/schedstat (%v)", pid, err)
	}
	w := make(map[int]int64, len(ds))
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // a thread that just exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		tid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			w[tid] = v
		}
	}
	return w, nil
}

// Self is this process's run-queue wait summed over its threads; 0 where
// the kernel does not say. Taken around a timed call, the difference may
// include other goroutines' threads' waits: a lenient deduction, which a
// call that blocked still fails.
func Self() time.Duration {
	w, err := ThreadWaits(os.Getpid())
	if err != nil {
		return 0
	}
	var sum int64
	for _, v := range w {
		sum += v
	}
	return time.Duration(sum)
}
