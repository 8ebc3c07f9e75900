package rows

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
)

func testSet() abtest.Set {
	return abtest.Set{ID: "exp-1", Salt: "s1", Tests: []abtest.Test{
		{ID: "t1", Variant: "floor_plus_10", ShareBP: 2000, Params: map[string]float64{"floor_multiplier": 1.1}},
		{ID: "t2", Variant: "cpc_heavy", ShareBP: 2000, Params: map[string]float64{"weight_cpc": 1.5}},
	}}
}

// counted is what counters flush after some traffic: the rows a file holds.
func counted(t *testing.T, start time.Time) []abtest.Row {
	t.Helper()
	c := abtest.NewCounters()
	b, _ := abtest.NewBucketer(testSet(), abtest.Defaults)
	g := c.Serving("production", "snap-1", b)
	for i := 0; i < 3000; i++ {
		dev := []byte("dev-" + strconv.Itoa(i%500))
		g.Request(b.Assign(dev), dev, abtest.Fill, time.Duration(i%900)*time.Microsecond)
	}
	rows := c.Flush("edge-a", start, start.Add(time.Minute))
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	return rows
}

func TestWriteReadPrune(t *testing.T) {
	start := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	rows := counted(t, start)

	dir := t.TempDir()
	path, err := WriteFile(dir, "edge a/1", start, rows)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
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
		if _, err := ReadFile(trunc); err == nil {
			t.Errorf("%s file accepted", name)
		}
	}
	// Pruning removes files older than the cutoff.
	if err := Prune(dir, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if files, _ := ListFiles([]string{dir}); len(files) != 0 {
		t.Fatalf("prune left %v", files)
	}
}

func TestParseRowRefuses(t *testing.T) {
	good := `{"start":"2026-12-01T07:00:00Z","end":"2026-12-01T07:01:00Z","edge":"e","env":"production","snapshot":"s","experiment":"x","test":"control","test_index":0,"variant":"control","share_bp":5000,"shard":3,"requests":2,"fills":1,"errors":0,"forward_errors":0,"impressions":1,"clicks":0,"revenue_micros":5,"latency_us":[2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"devices":0,"hll":""}`
	if _, err := Parse([]byte(good)); err != nil {
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
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A breakdown row carries its value's impressions and revenue (the
	// tokens' dimensions), never a sketch or forward errors.
	bd := strings.Replace(good, `"hll":""`, `"hll":"","breakdown":"country","country":"US"`, 1)
	r, err := Parse([]byte(bd))
	if err != nil {
		t.Fatalf("good breakdown row refused: %v", err)
	}
	if r.Impressions != 1 || r.RevenueMicros != 5 {
		t.Fatalf("breakdown row read as %+v", r)
	}
	for name, bad := range map[string]string{
		"dimension":      strings.Replace(bd, `"breakdown":"country"`, `"breakdown":"city"`, 1),
		"two dims":       strings.Replace(bd, `"country":"US"`, `"country":"US","os":"ios"`, 1),
		"forward errors": strings.Replace(bd, `"forward_errors":0`, `"forward_errors":2`, 1),
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRunWritesAndFinalFlush(t *testing.T) {
	c := abtest.NewCounters()
	b, _ := abtest.NewBucketer(testSet(), abtest.Defaults)
	g := c.Serving("staging", "snap-2", b)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx, abtest.FlushConfig{Interval: 50 * time.Millisecond, Edge: "e1", Write: FileSink(dir, "e1", 0)})
		close(done)
	}()
	for i := 0; i < 100; i++ {
		g.Request(b.Assign([]byte("d"+strconv.Itoa(i))), []byte("d"+strconv.Itoa(i)), abtest.Fill, time.Microsecond)
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	files, _ := ListFiles([]string{dir})
	var req uint64
	for _, f := range files {
		rows, err := ReadFile(f)
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

// TestFlushDuringTraffic: rows flushed while requests are in flight always
// read back, and the totals over all rows are exact.
func TestFlushDuringTraffic(t *testing.T) {
	c := abtest.NewCounters()
	b, _ := abtest.NewBucketer(testSet(), abtest.Defaults)
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
				g.Request(a, dev, abtest.Fill, time.Duration(i%300)*time.Microsecond)
				g.Impression(a, 1)
				sent[w]++
			}
		}()
	}
	start := time.Now()
	for i := 0; i < 30; i++ {
		time.Sleep(time.Millisecond)
		end := start.Add(time.Second)
		if _, err := WriteFile(dir, "e", start, c.Flush("e", start, end)); err != nil {
			t.Fatal(err)
		}
		start = end
	}
	close(stop)
	wg.Wait()
	if _, err := WriteFile(dir, "e", start, c.Flush("e", start, start.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	files, _ := ListFiles([]string{dir})
	var req, fills, lat, imps uint64
	for _, f := range files {
		rows, err := ReadFile(f)
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
