package edge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
)

// Metrics are the edge's Prometheus series. Label values are resolved once
// here, so the request path only does atomic adds.
type Metrics struct {
	Registry *prometheus.Registry

	adRequests   [selection.NumOutcomes]prometheus.Counter
	badRequests  prometheus.Counter
	noSnapshot   prometheus.Counter
	skips        [selection.NumSkips]prometheus.Counter
	truncated    prometheus.Counter
	profile      [numProfileResults]prometheus.Counter // by profileResult
	adLatency    prometheus.Histogram
	impressions  prometheus.Counter
	clicks       prometheus.Counter
	revenue      prometheus.Counter
	trackReject  map[string]prometheus.Counter
	capUpdates   map[string]prometheus.Counter
	httpRequests [numEndpoints]prometheus.Counter
	sdk          sdkMetrics // OpenRTB, privacy, geo, video (sdkmetrics.go)
}

// Profile lookup results, as labels.
const (
	ProfileHit     = "hit"
	ProfileMiss    = "miss"
	ProfileTimeout = "timeout"
	// ProfileShed: the store is slow and its adaptive limit of pending
	// reads was reached (profiles.ErrBusy); no read was sent.
	ProfileShed = "shed"
	// ProfileUnavailable: the store's backend is down and its breaker
	// sheds reads (profiles.ErrUnavailable); no read was sent.
	ProfileUnavailable = "unavailable"
	ProfileError       = "error"
	ProfileSkipped     = "no_device"
)

// profileResult indexes Metrics.profile: the request path counts with an
// array index, not a map lookup by label.
type profileResult uint8

const (
	profileHit profileResult = iota
	profileMiss
	profileTimeout
	profileShed
	profileUnavailable
	profileError
	profileSkipped
	numProfileResults
)

var profileResultNames = [numProfileResults]string{ProfileHit, ProfileMiss, ProfileTimeout, ProfileShed, ProfileUnavailable, ProfileError, ProfileSkipped}

// endpoint indexes Metrics.httpRequests (label "endpoint").
type endpoint uint8

const (
	endpointAd endpoint = iota
	endpointAuction
	endpointImp
	endpointClick
	endpointVideo
	endpointWin
	endpointHealth
	endpointOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"ad", "auction", "imp", "click", "video", "win", "health", "other"}

// NewMetrics registers the edge's series in a fresh registry (plus the Go
// runtime and process collectors).
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }

	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_ad_requests_total",
		Help: "Valid ad requests by selection outcome (filled or the no-fill reason)."}, []string{"outcome"})
	f(outcomes)
	for o := selection.Outcome(0); o < selection.NumOutcomes; o++ {
		m.adRequests[o] = outcomes.WithLabelValues(o.String())
	}
	m.badRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_ad_bad_requests_total", Help: "Ad requests refused with 4xx."})
	m.noSnapshot = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_ad_no_snapshot_total", Help: "Ad requests answered 503 because no snapshot is loaded."})
	m.truncated = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_selection_scan_truncated_total", Help: "Selections stopped by the scan bound."})
	f(m.badRequests)
	f(m.noSnapshot)
	f(m.truncated)
	skips := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_selection_skips_total",
		Help: "Candidates skipped during selection, by reason."}, []string{"reason"})
	f(skips)
	for i, n := range selection.SkipNames {
		m.skips[i] = skips.WithLabelValues(n)
	}
	prof := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_profile_lookups_total",
		Help: "Profile reads by result; all but hit serve unpersonalised (shed: store slow, limit reached; unavailable: store down)."}, []string{"result"})
	f(prof)
	for r, name := range profileResultNames {
		m.profile[r] = prof.WithLabelValues(name)
	}
	m.adLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "adedge_ad_request_duration_seconds",
		Help:    "Server time of /v1/ad, parse to response written.",
		Buckets: []float64{25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 700e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}})
	f(m.adLatency)
	m.impressions = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_impressions_total", Help: "Verified impression pixels."})
	m.clicks = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_clicks_total", Help: "Verified clicks."})
	m.revenue = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_revenue_micros_total", Help: "Revenue of verified impressions, micros."})
	f(m.impressions)
	f(m.clicks)
	f(m.revenue)
	tr := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_tracking_rejected_total",
		Help: "Impression and click tokens refused, by reason."}, []string{"reason"})
	f(tr)
	m.trackReject = map[string]prometheus.Counter{}
	for _, r := range []string{"missing", "malformed", "forged", "expired", "not_yet_valid"} {
		m.trackReject[r] = tr.WithLabelValues(r)
	}
	cu := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_cap_updates_total",
		Help: "Frequency-cap increments by result; dropped means the bounded queue was full."}, []string{"result"})
	f(cu)
	m.capUpdates = map[string]prometheus.Counter{}
	for _, r := range []string{"ok", "dropped", "error"} {
		m.capUpdates[r] = cu.WithLabelValues(r)
	}
	hr := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_http_requests_total",
		Help: "Requests on the serving port by endpoint."}, []string{"endpoint"})
	f(hr)
	for e, name := range endpointNames {
		m.httpRequests[e] = hr.WithLabelValues(name)
	}
	m.sdk = newSDKMetrics(f)
	return m
}

// OpenConnections exports the serving port's open connection count (a
// connection storm, a balancer that stopped reusing connections) as
// adedge_open_connections.
func (m *Metrics) OpenConnections(count func() int32) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_open_connections",
		Help: "Connections open on the serving port."}, func() float64 { return float64(count()) }))
}

// ProfileStore exports the store's breaker state: adedge_profile_store_unreachable
// (1 while calls are shed) and adedge_profile_store_shed_total.
func (m *Metrics) ProfileStore(stats func() profiles.Stats) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_profile_store_unreachable",
		Help: "1 while the profile store refuses connections and reads are shed (served unpersonalised at once)."},
		func() float64 {
			if stats().Unreachable {
				return 1
			}
			return 0
		}))
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_profile_store_shed_total",
		Help: "Profile reads and cap writes not sent to an unreachable store."},
		func() float64 { return float64(stats().Shed) }))
}
