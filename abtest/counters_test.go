package abtest

import (
	"context"
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
