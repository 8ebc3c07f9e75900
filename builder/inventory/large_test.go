package inventory

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestLargeInventory measures Load on the production-sized inventory
// (200k campaigns, 1M creatives, 500k placements, ~1.3M predictions,
// ~600 MB). It runs only when ADEDGE_LARGE_INVENTORY names a directory:
// the first run generates the files there and skips (so the generator's
// memory does not count), the next runs load and report time and peak RSS.
//
//	ADEDGE_LARGE_INVENTORY=/tmp/large go test -run TestLargeInventory -v ./builder/inventory/
func TestLargeInventory(t *testing.T) {
	dir := os.Getenv("ADEDGE_LARGE_INVENTORY")
	if dir == "" {
		t.Skip("set ADEDGE_LARGE_INVENTORY=<dir> to run")
	}
	if _, err := os.Stat(filepath.Join(dir, ExperimentsFile)); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rows := genInventory(t, dir, genConfig{Campaigns: 200_000, CreativesPerCampaign: 5, Placements: 500_000, Seed: 9, Shuffle: os.Getenv("ADEDGE_LARGE_SORTED") == ""})
		t.Skipf("generated %d prediction rows in %s in %s; run again to measure Load", rows, time.Since(start).Round(time.Second), dir)
	}
	start := time.Now()
	inv, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	var total int64
	for _, in := range inv.Inputs {
		total += in.Size
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("loaded %d campaigns, %d creatives, %d placements, %d predictions (%.0f MB) in %s: %.0f MB/s",
		len(inv.Campaigns), len(inv.Creatives), len(inv.Placements), len(inv.Predictions), float64(total)/1e6, elapsed.Round(time.Millisecond), float64(total)/1e6/elapsed.Seconds())
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("peak RSS %d MB; heap in use %d MB after load, %d MB live after GC; %d GCs",
		ru.Maxrss/1024, ms.HeapInuse>>20, after.HeapAlloc>>20, ms.NumGC)
	runtime.KeepAlive(inv)
}
