package abtest

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCountersFlushRows(t *testing.T) {
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
adedge_ab_revenue_micros_total{env="production",experiment="exp-1",layer="",test="` + tt + `",variant="` + v + `"} 2000
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

// BenchmarkRequestCounters: one request counted, without and with its
// breakdown dimensions (which ride the device ring: the same one push).
func BenchmarkRequestCounters(b *testing.B) {
	for _, withDims := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "dims"}[withDims], func(b *testing.B) {
			c := NewCounters()
			bk, _ := NewBucketer(defaultSet(), Defaults)
			g := c.Serving("production", "snap", bk)
			dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
			a := bk.Assign(dev)
			d := Dims{Country: [2]byte{'U', 'S'}, OS: 2, Format: 1}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if withDims {
					g.RequestDims(a, dev, Fill, 50*time.Microsecond, &d)
				} else {
					g.Request(a, dev, Fill, 50*time.Microsecond)
				}
				if i++; i&1023 == 0 {
					c.drain()
				}
			}
		})
	}
}

// TestBreakdownRows: RequestDims' dimensions come out as breakdown rows,
// one per value and dimension, that add up to the cell's requests, fills,
// errors and latency; requests without a device still count in them; the
// next interval starts from zero; counting stays 0 allocs/op once the
// values were seen.
func TestBreakdownRows(t *testing.T) {
	c := NewCounters()
	b, _ := NewBucketer(defaultSet(), Defaults)
	g := c.Serving("production", "snap-1", b)
	countries := [][2]byte{{'U', 'S'}, {'D', 'E'}, {}}
	for i := 0; i < 3000; i++ {
		dev := []byte("dev-" + strconv.Itoa(i%500))
		if i%100 == 0 {
			dev = nil
		}
		o := []Outcome{NoFill, Fill, Error}[i%3]
		d := Dims{Country: countries[i%3], OS: uint8(1 + i%2), Format: []uint8{1, 2, 0, 3}[i%4]}
		g.RequestDims(b.Assign(dev), dev, o, time.Duration(i%700)*time.Microsecond, &d)
		if o == Fill && dev != nil {
			// The token's dimensions: the decision's, or none (v1).
			td := d
			if i%7 == 0 {
				td = Dims{}
			}
			g.ImpressionDims(b.Assign(dev), int64(1000+i), &td)
			if i%5 == 0 {
				g.ClickDims(b.Assign(dev), &td)
			}
		}
	}
	start := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	rows := c.Flush("edge-a", start, start.Add(time.Minute))
	type key struct {
		test, variant string
		shard         uint8
	}
	type sums struct{ req, fills, errs, lat, imps, clicks, rev uint64 }
	main := map[key]sums{}
	by := map[string]map[key]sums{}
	values, imps := map[string]uint64{}, map[string]uint64{}
	var totalImps uint64
	for _, r := range rows {
		if r.Breakdown == "" {
			totalImps += r.Impressions
		}
		k := key{r.Test, r.Variant, r.Shard}
		s := sums{r.Requests, r.Fills, r.Errors, 0, r.Impressions, r.Clicks, r.RevenueMicros}
		for _, v := range r.LatencyUS {
			s.lat += v
		}
		if r.Breakdown == "" {
			if r.Country != "" || r.OS != "" || r.Format != "" {
				t.Errorf("ordinary row with dimensions %+v", r)
			}
			main[k] = s
			continue
		}
		if r.HLL != "" {
			t.Errorf("breakdown row %+v has a sketch", r)
		}
		if by[r.Breakdown] == nil {
			by[r.Breakdown] = map[key]sums{}
		}
		x := by[r.Breakdown][k]
		by[r.Breakdown][k] = sums{x.req + s.req, x.fills + s.fills, x.errs + s.errs, x.lat + s.lat, x.imps + s.imps, x.clicks + s.clicks, x.rev + s.rev}
		if r.Requests > 0 {
			values[r.Breakdown+"="+r.Country+r.OS+r.Format] += r.Requests
		}
		imps[r.Breakdown+"="+r.Country+r.OS+r.Format] += r.Impressions
	}
	if len(by) != 3 {
		t.Fatalf("breakdowns by %d dimensions", len(by))
	}
	for d, m := range by {
		if !maps.Equal(m, main) {
			t.Errorf("%s breakdown rows do not add up to the cells", d)
		}
	}
	want := map[string]uint64{"country=US": 1000, "country=DE": 1000, "country=": 1000, "os=android": 1500, "os=ios": 1500,
		"format=banner": 750, "format=video": 750, "format=": 750, "format=native": 750}
	if !maps.Equal(values, want) {
		t.Errorf("requests by value %v, want %v", values, want)
	}
	// Fills are every third request (country DE, each OS and format);
	// a seventh of their tokens carried no dimensions (unknown in all three).
	if totalImps == 0 || imps["country=US"] != 0 || imps["country="] != imps["os="] || imps["country=DE"]+imps["country="] != totalImps ||
		imps["country="] == 0 || imps["format=banner"] == 0 {
		t.Errorf("impressions by value %v of %d", imps, totalImps)
	}
	if again := c.Flush("edge-a", start.Add(time.Minute), start.Add(2*time.Minute)); len(again) != 0 {
		t.Fatalf("second flush: %d rows", len(again))
	}
	dev := []byte("dev-1")
	a := b.Assign(dev)
	d := Dims{Country: [2]byte{'U', 'S'}, OS: 2, Format: 1}
	if n := testing.AllocsPerRun(1000, func() { g.RequestDims(a, dev, Fill, time.Millisecond, &d) }); n != 0 {
		t.Errorf("RequestDims: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(1000, func() { g.ImpressionDims(a, 5, &d); g.ClickDims(a, &d) }); n != 0 {
		t.Errorf("ImpressionDims, ClickDims: %v allocs/op", n)
	}
	c.drain()
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
