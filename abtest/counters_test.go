package abtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCountersFlushRowsAndFiles(t *testing.T) {
	c := NewCounters()
	b, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap-1", b)
	var wg sync.WaitGroup
	const perG, workers = 5000, 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				dev := []byte("dev-" + strconv.Itoa(i%2000)) // 2000 devices, each seen many times
				a := b.Assign(dev)
				o := NoFill
				if i%2 == 0 {
					o = Fill
				}
				g.Request(a, dev, o, time.Duration(i%900)*time.Microsecond)
				if i%10 == 0 {
					g.Impression(a, 1500)
				}
			}
		}(w)
	}
	wg.Wait()
	g.Request(b.Assign(nil), nil, Error, 3*time.Millisecond)
	start := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	rows := c.Flush("edge-a", start, start.Add(time.Minute))
	var req, fills, imps, rev, errs uint64
	var users uint64
	for _, r := range rows {
		req += r.Requests
		fills += r.Fills
		imps += r.Impressions
		rev += r.RevenueMicros
		errs += r.Errors
		users += r.Devices
		if r.Variant == UnassignedVariant && r.Errors != 1 {
			t.Errorf("unassigned row %+v", r)
		}
	}
	if req != workers*perG+1 || fills != workers*perG/2 || imps != workers*perG/10 || rev != 1500*imps || errs != 1 {
		t.Fatalf("totals req=%d fills=%d imps=%d rev=%d errs=%d", req, fills, imps, rev, errs)
	}
	if users < 1980 || users > 2020 {
		t.Fatalf("devices %d, want about 2000", users)
	}
	// A second flush has only what came since.
	if again := c.Flush("edge-a", start.Add(time.Minute), start.Add(2*time.Minute)); len(again) != 0 {
		t.Fatalf("second flush: %d rows", len(again))
	}

	dir := t.TempDir()
	path, err := WriteRowsFile(dir, "edge a/1", start, rows)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadRowsFile(path)
	if err != nil || len(back) != len(rows) {
		t.Fatalf("read back: %d rows, %v", len(back), err)
	}
	if back[0].Requests != rows[0].Requests || back[0].HLL != rows[0].HLL {
		t.Fatalf("row changed: %+v", back[0])
	}

	// Truncated and altered copies are refused whole.
	data, _ := os.ReadFile(path)
	trunc := filepath.Join(dir, filepath.Base(path))
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"altered":   []byte(strings.Replace(string(data), `"requests":`, `"requests":1`, 1)),
		"empty":     {},
	} {
		if err := os.WriteFile(trunc, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadRowsFile(trunc); err == nil {
			t.Errorf("%s file accepted", name)
		}
	}
	// Pruning removes files older than the cutoff.
	if err := PruneRows(dir, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if files, _ := ListRowsFiles([]string{dir}); len(files) != 0 {
		t.Fatalf("prune left %v", files)
	}
}

func TestParseRowRefuses(t *testing.T) {
	good := `{"start":"2026-12-01T07:00:00Z","end":"2026-12-01T07:01:00Z","edge":"e","env":"production","snapshot":"s","experiment":"x","test":"control","test_index":0,"variant":"control","share_bp":5000,"shard":3,"requests":2,"fills":1,"errors":0,"forward_errors":0,"impressions":1,"clicks":0,"revenue_micros":5,"latency_us":[2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"devices":0,"hll":""}`
	if _, err := ParseRow([]byte(good)); err != nil {
		t.Fatalf("good row refused: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field": strings.Replace(good, `"edge"`, `"edgy"`, 1),
		"shard":         strings.Replace(good, `"shard":3`, `"shard":64`, 1),
		"buckets":       strings.Replace(good, `[2,0,`, `[2,`, 1),
		"negative":      strings.Replace(good, `"fills":1`, `"fills":-3`, 1),
		"share":         strings.Replace(good, `"share_bp":5000`, `"share_bp":10001`, 1),
		"hll":           strings.Replace(good, `"hll":""`, `"hll":"AAAA"`, 1),
		"trailing":      good + `{}`,
		"no env":        strings.Replace(good, `"env":"production"`, `"env":""`, 1),
		"truncated":     good[:100],
	} {
		if _, err := ParseRow([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRunWritesAndFinalFlush(t *testing.T) {
	c := NewCounters()
	b, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("staging", "snap-2", b)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, FlushConfig{Dir: dir, Interval: 50 * time.Millisecond, Edge: "e1"}); close(done) }()
	for i := 0; i < 100; i++ {
		g.Request(b.Assign([]byte("d"+strconv.Itoa(i))), []byte("d"+strconv.Itoa(i)), Fill, time.Microsecond)
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	files, _ := ListRowsFiles([]string{dir})
	var req uint64
	for _, f := range files {
		rows, err := ReadRowsFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			req += r.Requests
			if r.Env != "staging" || r.Snapshot != "snap-2" || r.Experiment != "exp-1" {
				t.Fatalf("labels %+v", r)
			}
		}
	}
	if req != 100 || len(files) < 2 {
		t.Fatalf("%d requests in %d files, want 100 in >= 2", req, len(files))
	}
}

func TestPrometheusExport(t *testing.T) {
	c := NewCounters()
	b, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap-1", b)
	dev := []byte("device-1")
	a := b.Assign(dev)
	g.Request(a, dev, Fill, 40*time.Microsecond)
	g.Impression(a, 2000)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	tt, v := b.Labels(a)
	want := `
# HELP adedge_ab_revenue_micros_total Revenue of verified impressions by A/B bucket, micros.
# TYPE adedge_ab_revenue_micros_total counter
adedge_ab_revenue_micros_total{env="production",experiment="exp-1",test="` + tt + `",variant="` + v + `"} 2000
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "adedge_ab_revenue_micros_total"); err != nil {
		t.Fatal(err)
	}
	// Retiring a generation keeps the totals.
	c.Serving("production", "snap-2", b)
	c.retire(time.Now().Add(3 * time.Hour).Unix())
	if c.Lookup([]byte("production"), []byte("snap-1"), []byte("exp-1")) != nil {
		t.Fatal("idle old generation not retired")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "adedge_ab_revenue_micros_total"); err != nil {
		t.Fatal(err)
	}
}

func TestLatencyBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {10 * time.Microsecond, 0}, {11 * time.Microsecond, 1}, {time.Millisecond, 11}, {time.Second, NumLatencyBuckets - 1}} {
		if got := latencyBucket(c.d); got != c.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func BenchmarkRequestCounters(b *testing.B) {
	c := NewCounters()
	bk, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap", bk)
	dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	a := bk.Assign(dev)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Request(a, dev, Fill, 50*time.Microsecond)
		if i++; i&1023 == 0 {
			c.drain()
		}
	}
}

func BenchmarkRequestCountersParallel(b *testing.B) {
	c := NewCounters()
	bk, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap", bk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx, FlushConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
		i := 0
		for pb.Next() {
			i++
			dev[0] = byte('0' + i%10)
			dev[1] = byte('0' + i/10%10)
			g.Request(bk.Assign(dev), dev, Fill, 50*time.Microsecond)
		}
	})
}

// TestFlushDuringTraffic: rows flushed while requests are in flight always
// read back, and the totals over all rows are exact.
func TestFlushDuringTraffic(t *testing.T) {
	c := NewCounters()
	b, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap", b)
	dir := t.TempDir()
	stop := make(chan struct{})
	var sent [4]uint64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				dev := []byte("d" + strconv.Itoa(i%50))
				a := b.Assign(dev)
				g.Request(a, dev, Fill, time.Duration(i%300)*time.Microsecond)
				g.Impression(a, 1)
				sent[w]++
			}
		}()
	}
	start := time.Now()
	for i := 0; i < 30; i++ {
		time.Sleep(time.Millisecond)
		end := start.Add(time.Second)
		if _, err := WriteRowsFile(dir, "e", start, c.Flush("e", start, end)); err != nil {
			t.Fatal(err)
		}
		start = end
	}
	close(stop)
	wg.Wait()
	if _, err := WriteRowsFile(dir, "e", start, c.Flush("e", start, start.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	files, _ := ListRowsFiles([]string{dir})
	var req, fills, lat, imps uint64
	for _, f := range files {
		rows, err := ReadRowsFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range rows {
			req += r.Requests
			fills += r.Fills
			imps += r.Impressions
			for _, v := range r.LatencyUS {
				lat += v
			}
		}
	}
	total := sent[0] + sent[1] + sent[2] + sent[3]
	if req != total || fills != total || lat != total || imps != total {
		t.Fatalf("sent %d; rows have requests %d fills %d latency %d impressions %d", total, req, fills, lat, imps)
	}
}
