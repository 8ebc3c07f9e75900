package edge

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/server/pacing"
)

// RunPacing keeps the pacing table on the serving snapshot and ticks the
// pacing service until ctx ends (then flushes once more). Without
// Config.Pacing it returns at once.
func (s *Server) RunPacing(ctx context.Context) {
	p := s.cfg.Pacing
	if p == nil {
		return
	}
	p.Run(ctx, func() {
		snap := s.src.Acquire()
		if snap == nil {
			return
		}
		defer snap.Release()
		if !p.Table().For(snap.R) {
			p.SetCampaigns(snap.R, pacing.SpecsFromSnapshot(snap.R))
		}
	})
}

// RegisterPacingMetrics exports the pacing service's state: campaigns per
// state, the fleet's overspend, store errors, unreadable records and the
// age of the last good flush (no per-campaign labels: adtool pacing has
// those).
func (m *Metrics) RegisterPacingMetrics(p *pacing.Service) {
	st := p.Stats()
	states := prometheus.NewDesc("adedge_pacing_campaigns", "Campaigns of the serving snapshot per pacing state.", []string{"state"}, nil)
	m.Registry.MustRegister(collectorFunc{desc: states, collect: func(ch chan<- prometheus.Metric) {
		for i := pacing.State(0); i < pacing.NumStates; i++ {
			ch <- prometheus.MustNewConstMetric(states, prometheus.GaugeValue, float64(st.States[i].Load()), i.String())
		}
	}})
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_pacing_fallback_campaigns",
			Help: "Budgeted campaigns paced on this edge's own spend (spend store stale or records unreadable)."},
			func() float64 { return float64(st.Fallback.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_pacing_overspend_micros",
			Help: "Fleet spend today beyond today's budget, summed over campaigns, as this edge last read it."},
			func() float64 { return float64(st.OverspendMicros.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_pacing_curve_requests",
			Help: "Requests the events warehouse's traffic curve in use was built from (0 = the configured curve)."},
			func() float64 { return float64(st.CurveRequests.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_pacing_store_errors_total",
			Help: "Spend flushes that failed (the spend is kept and sent with the next one)."},
			func() float64 { return float64(st.StoreErrors.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_pacing_bad_records_total",
			Help: "Counter records found missing, negative or not integers (treated as unknown)."},
			func() float64 { return float64(st.BadRecords.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_pacing_last_flush_age_seconds",
			Help: "Seconds since the last flush that read every campaign's fleet totals (-1 = never)."},
			func() float64 {
				at := st.LastGood.Load()
				if at == 0 {
					return -1
				}
				return max(0, time.Since(time.Unix(0, at)).Seconds())
			}),
	)
}

// collectorFunc is a Collector from a desc and a func, for a fixed set of
// label values read from atomics.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
