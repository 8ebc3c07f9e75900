package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/privacy"
)

// videoEvents are the VAST tracking events /v1/video counts, in the order
// of their labels.
var videoEvents = [...]string{"start", "firstQuartile", "midpoint", "thirdQuartile", "complete", "click"}

// videoKinds are the event kinds /v1/video records (0: not recorded).
var videoKinds = [len(videoEvents)]events.Kind{events.KindVideoStart, events.KindVideoFirstQuartile,
	events.KindVideoMidpoint, events.KindVideoThirdQuartile, events.KindVideoComplete, 0}

// sdkMetrics are the OpenRTB endpoint's series (issue 12).
type sdkMetrics struct {
	privacy     [privacy.NumSignals]prometheus.Counter
	auctions    map[string]prometheus.Counter // by result: bid, no_bid, bad_request
	bids        prometheus.Counter
	videoEvents [len(videoEvents)]prometheus.Counter
	wins        prometheus.Counter            // verified win notices (nurl)
	geo         map[string]prometheus.Counter // country source: request, device_ip, client_ip, none
}

func newSDKMetrics(f func(prometheus.Collector)) sdkMetrics {
	var m sdkMetrics
	pv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_privacy_total",
		Help: "Privacy signals seen on ad requests, by signal and the action taken (docs/PRIVACY.md)."}, []string{"signal", "action"})
	f(pv)
	for s := privacy.Signal(0); s < privacy.NumSignals; s++ {
		m.privacy[s] = pv.WithLabelValues(s.String(), privacy.SignalLevel(s).String())
	}
	au := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_openrtb_requests_total",
		Help: "POST /openrtb2/auction requests by result."}, []string{"result"})
	f(au)
	m.auctions = map[string]prometheus.Counter{}
	for _, r := range []string{"bid", "no_bid", "bad_request"} {
		m.auctions[r] = au.WithLabelValues(r)
	}
	m.bids = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_openrtb_bids_total", Help: "Bids (one per filled imp) in OpenRTB responses."})
	f(m.bids)
	ve := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_video_events_total",
		Help: "Verified VAST tracking events (/v1/video), by event."}, []string{"event"})
	f(ve)
	for i, e := range videoEvents {
		m.videoEvents[i] = ve.WithLabelValues(e)
	}
	m.wins = prometheus.NewCounter(prometheus.CounterOpts{Name: "adedge_win_notices_total",
		Help: "Verified OpenRTB win notices (a bid's nurl, /v1/win); not billing: burl (/v1/imp) bills."})
	f(m.wins)
	g := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adedge_geo_country_total",
		Help: "Where an OpenRTB or /v1/ad request's country came from."}, []string{"source"})
	f(g)
	m.geo = map[string]prometheus.Counter{}
	for _, s := range []string{"request", "device_ip", "client_ip", "none"} {
		m.geo[s] = g.WithLabelValues(s)
	}
	return m
}

// countPrivacy counts each signal a decision saw.
func (m *sdkMetrics) countPrivacy(d privacy.Decision) {
	if d.Signals == 0 {
		return
	}
	for s := privacy.Signal(0); s < privacy.NumSignals; s++ {
		if d.Has(s) {
			m.privacy[s].Inc()
		}
	}
}
