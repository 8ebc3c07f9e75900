package schedstat

import (
	"os"
	"runtime"
	"sync"
	"testing"
)

// TestSelfGrowsWhenThreadsQueue: more busy threads than cores make the
// kernel queue some of them, and Self counts that wait (where /proc has
// schedstat); ThreadWaits lists this process's threads.
func TestSelfGrowsWhenThreadsQueue(t *testing.T) {
	w, err := ThreadWaits(os.Getpid())
	if err != nil {
		t.Skipf("no schedstat here: %v", err)
	}
	if len(w) == 0 {
		t.Fatal("no threads listed for this process")
	}
	before := Self()
	var wg sync.WaitGroup
	n := 4 * runtime.NumCPU()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n)) // n threads running Go code at once
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // n threads contend for the cores
			x := 0
			for j := 0; j < 20_000_000; j++ {
				x += j
			}
			_ = x
		}()
	}
	wg.Wait()
	if after := Self(); after <= before {
		t.Fatalf("run-queue wait %v then %v with %d busy threads on %d CPUs", before, after, n, runtime.NumCPU())
	}
}
