package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/tools/loadgen"
)

// TestPixelLatency measures the impression pixel's latency (open loop,
// from each request's scheduled send time) at 1k and 10k pixels/s with the
// event log on (group commit, --events-fsync 10ms) and off, side by side:
// per rate, runs alternate off/on, each on a fresh edge (so every pixel is
// first seen), and the medians of the runs' p50 and p99 are reported with
// their ratio (docs/BENCHMARKS.md). It is a measurement, not part of make
// test: set ADEDGE_PIXEL_BENCH=1 (ADEDGE_PIXEL_RUNS, default 3). The edge is
// pinned to CPU 0 when taskset exists; run the test itself pinned to CPU 1:
//
//	ADEDGE_PIXEL_BENCH=1 taskset -c 1 go test -count=1 -v -run PixelLatency ./tools/faults/
//
// It fails when a pixel is not answered 204 or a run falls short of its rate.
func TestPixelLatency(t *testing.T) {
	if os.Getenv("ADEDGE_PIXEL_BENCH") == "" {
		t.Skip("a measurement: set ADEDGE_PIXEL_BENCH=1 (docs/BENCHMARKS.md has the command)")
	}
	runs := 3
	if n, err := strconv.Atoi(os.Getenv("ADEDGE_PIXEL_RUNS")); err == nil && n > 0 {
		runs = n
	}
	const d, warm = 4 * time.Second, time.Second
	key, err := token.LoadKey(tokenKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(key, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	type sample struct{ p50, p99 float64 }
	results := map[string][]sample{}
	for _, rate := range []float64{1000, 10000} {
		n := int(rate * d.Seconds() * 1.1)
		targets := make([]loadgen.Request, n)
		now := time.Now()
		for i := range targets {
			c := token.Claims{Issued: now.UnixMilli() - int64(i%1000), PriceMicros: int64(100 + i%997), Campaign: []byte(fmt.Sprintf("cmp-%d", i%31)),
				Creative: []byte("cr-1"), Device: []byte(fmt.Sprintf("dev-%d", i)), Experiment: []byte("exp"), Variant: []byte("control"),
				Snapshot: []byte("bench"), Placement: []byte("pl-1"), Country: [2]byte{'U', 'S'}}
			tok, err := signer.Append(nil, &c)
			if err != nil {
				t.Fatal(err)
			}
			targets[i] = loadgen.Request{Method: "GET", URI: "/v1/imp?t=" + string(tok)}
		}
		for r := 0; r < runs; r++ {
			for _, on := range []bool{false, true} {
				var flags []string
				mode := "off"
				if on {
					flags = append(flags, "--events-dir", t.TempDir(), "--events-fsync", "10ms", "--events-sample-ads", "0")
					mode = "on"
				}
				e := startEdge(t, snapDir, flags...)
				if _, err := exec.LookPath("taskset"); err == nil {
					_ = exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(e.cmd.Process.Pid)).Run()
				}
				res, err := loadgen.Run(context.Background(), loadgen.Options{Target: "http://" + e.addr, Rate: rate, Duration: d, Warmup: warm,
					Conns: 64, Targets: targets, Timeout: 2 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				_ = e.cmd.Process.Kill()
				<-e.exited
				if res.Status["204"] != int(res.Recorded) || res.Errors != 0 {
					t.Fatalf("%.0f/s log %s: statuses %v, errors %v of %d recorded", rate, mode, res.Status, res.ErrKinds, res.Recorded)
				}
				if res.Achieved < 0.9*rate {
					t.Errorf("%.0f/s log %s: achieved %.0f/s", rate, mode, res.Achieved)
				}
				k := fmt.Sprintf("%.0f/%s", rate, mode)
				results[k] = append(results[k], sample{res.LatencyUS.P50, res.LatencyUS.P99})
				t.Logf("run %d %6.0f/s log %-3s: p50 %6.0f us p99 %7.0f us (achieved %.0f/s, late sends %d, generator lag %d)",
					r+1, rate, mode, res.LatencyUS.P50, res.LatencyUS.P99, res.Achieved, res.LateSends, res.GeneratorLag)
			}
		}
	}
	med := func(xs []sample, f func(sample) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	p50 := func(s sample) float64 { return s.p50 }
	p99 := func(s sample) float64 { return s.p99 }
	t.Logf("| pixels/s | log off p50 / p99 (us) | log on, fsync 10ms p50 / p99 (us) | on/off p50 | on/off p99 |")
	for _, rate := range []string{"1000", "10000"} {
		off, on := results[rate+"/off"], results[rate+"/on"]
		t.Logf("| %s | %.0f / %.0f | %.0f / %.0f | %.2f | %.2f |", rate, med(off, p50), med(off, p99), med(on, p50), med(on, p99),
			med(on, p50)/med(off, p50), med(on, p99)/med(off, p99))
	}
}
