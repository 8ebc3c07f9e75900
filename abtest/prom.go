package abtest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// promKey is the label set of the exported series: per-bucket totals
// without snapshot and shard, which would only multiply series.
type promKey struct{ env, experiment, layer, test, variant string }

// The layer label is empty for a set without layers; every layer counts
// every request, so sum series within one layer only.
var promLabels = []string{"env", "experiment", "layer", "test", "variant"}

var (
	descRequests    = prometheus.NewDesc("adedge_ab_requests_total", "Ad requests by A/B bucket.", promLabels, nil)
	descFills       = prometheus.NewDesc("adedge_ab_fills_total", "Filled ad requests by A/B bucket.", promLabels, nil)
	descErrors      = prometheus.NewDesc("adedge_ab_errors_total", "Ad requests answered with an error, by A/B bucket.", promLabels, nil)
	descFwdErrors   = prometheus.NewDesc("adedge_ab_forward_errors_total", "Requests staging failed to answer (served locally), by A/B bucket.", promLabels, nil)
	descImpressions = prometheus.NewDesc("adedge_ab_impressions_total", "Verified impressions by A/B bucket.", promLabels, nil)
	descClicks      = prometheus.NewDesc("adedge_ab_clicks_total", "Verified clicks by A/B bucket.", promLabels, nil)
	descRevenue     = prometheus.NewDesc("adedge_ab_revenue_micros_total", "Revenue of verified impressions by A/B bucket, micros.", promLabels, nil)
	descLatency     = prometheus.NewDesc("adedge_ab_request_duration_seconds", "Ad request server time by A/B bucket.", promLabels, nil)
	descDropped     = prometheus.NewDesc("adedge_ab_device_sketch_dropped_total", "Device ids not added to a user sketch because the queue was full.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Counters) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descFills, descErrors, descFwdErrors, descImpressions, descClicks, descRevenue, descLatency, descDropped} {
		ch <- d
	}
}

func (k *counts) add(o *counts) {
	k.requests += o.requests
	k.fills += o.fills
	k.errors += o.errors
	k.forwardErrors += o.forwardErrors
	k.impressions += o.impressions
	k.clicks += o.clicks
	k.revenue += o.revenue
	for i := range k.latency {
		k.latency[i] += o.latency[i]
	}
}

// foldRetired adds a retired generation's totals to c.retired (under mu).
func (c *Counters) foldRetired(g *Generation) {
	g.sum(c.retired)
}

// sum adds the generation's cells into tot by label set.
func (g *Generation) sum(tot map[promKey]*counts) {
	for li := range g.layers {
		gl := &g.layers[li]
		for gi := range gl.cells {
			k := promKey{g.Env, g.Experiment, gl.id, gl.labels[gi][0], gl.labels[gi][1]}
			t := tot[k]
			if t == nil {
				t = &counts{}
				tot[k] = t
			}
			for sh := range gl.cells[gi] {
				cur := gl.cells[gi][sh].load()
				t.add(&cur)
			}
		}
	}
}

// Collect implements prometheus.Collector: it sums the cells at scrape
// time, so the request path pays nothing for the export.
func (c *Counters) Collect(ch chan<- prometheus.Metric) {
	// retired and gens change together under mu: read them together, so a
	// generation retiring mid-scrape is counted exactly once.
	c.mu.Lock()
	tot := make(map[promKey]*counts, len(c.retired))
	for k, v := range c.retired {
		cp := *v
		tot[k] = &cp
	}
	gens := *c.gens.Load()
	c.mu.Unlock()
	for _, g := range gens {
		g.sum(tot)
	}
	for k, t := range tot {
		if t.requests == 0 && t.impressions == 0 && t.clicks == 0 && t.forwardErrors == 0 {
			continue
		}
		lv := []string{k.env, k.experiment, k.layer, k.test, k.variant}
		for _, m := range []struct {
			d *prometheus.Desc
			v uint64
		}{{descRequests, t.requests}, {descFills, t.fills}, {descErrors, t.errors}, {descFwdErrors, t.forwardErrors},
			{descImpressions, t.impressions}, {descClicks, t.clicks}, {descRevenue, t.revenue}} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), lv...)
		}
		buckets := make(map[float64]uint64, len(LatencyBoundsUS))
		var cum uint64
		var sum float64
		for i, b := range LatencyBoundsUS {
			cum += t.latency[i]
			buckets[float64(b)/1e6] = cum
			sum += float64(t.latency[i]) * float64(b) / 2e6 // midpoint-ish: the sum is approximate
		}
		cum += t.latency[len(LatencyBoundsUS)]
		ch <- prometheus.MustNewConstHistogram(descLatency, cum, sum, buckets, lv...)
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(c.dropped.Load()))
}
