package edge

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/adedge/adedge/server/snapsource"
)

// AdminHandler serves the control plane: /metrics, /debug/pprof/ and
// POST /admin/reload. It belongs on a loopback address: pprof and reload
// are not for the internet.
func AdminHandler(m *Metrics, src *snapsource.Source) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/admin/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, `{"error":"use POST"}`, http.StatusMethodNotAllowed)
			return
		}
		swapped, err := src.Reload()
		st := src.Stats()
		out := map[string]any{"swapped": swapped, "version": st.Version, "rejected": st.Rejected}
		code := http.StatusOK
		if err != nil {
			out["error"] = err.Error()
			code = http.StatusConflict
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out)
	})
	return mux
}

// RegisterSourceMetrics exports the snapshot source's state.
func (m *Metrics) RegisterSourceMetrics(src *snapsource.Source) {
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_snapshot_swaps_total", Help: "Snapshots installed, the first load included."},
			func() float64 { return float64(src.Stats().Swaps) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_snapshot_rejected_total", Help: "Snapshot files refused by verification; the previous one kept serving."},
			func() float64 { return float64(src.Stats().Rejected) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_snapshot_open_mappings", Help: "Mapped snapshots: the current one plus old ones held by in-flight requests."},
			func() float64 { return float64(src.Stats().Open) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_snapshot_created_timestamp_seconds", Help: "Data time of the serving snapshot (0 when none)."},
			func() float64 {
				st := src.Stats()
				if st.Version == "" {
					return 0
				}
				return float64(st.Created.Unix())
			}),
	)
}

// RegisterServerMetrics exports gauges read from the server itself.
func (m *Metrics) RegisterServerMetrics(s *Server, logDropped func() uint64) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_in_flight_requests", Help: "Requests being served."},
			func() float64 { return float64(s.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_cap_queue_length", Help: "Frequency-cap updates waiting."},
			func() float64 { return float64(len(s.capQ)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_answer_memo_bytes",
			Help: "Bytes of the current snapshot's memoised fill JSON (creative parts; capped, past the cap fills are encoded per request)."},
			func() float64 { used, _ := s.answerMemo(); return float64(used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_answer_memo_full",
			Help: "1 when the current snapshot's answer memo has reached its cap: new creatives' fills are encoded per request (slower, same bytes)."},
			func() float64 {
				if _, full := s.answerMemo(); full {
					return 1
				}
				return 0
			}),
	)
	if logDropped == nil {
		// No access log: nothing is dropped, and the series the dashboard
		// plots still exists (an absent series looks like a broken scrape).
		logDropped = func() uint64 { return 0 }
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_log_lines_dropped_total",
		Help: "Access and event log lines dropped because the log ring was full."}, func() float64 { return float64(logDropped()) }))
	if s.cfg.Events != nil {
		m.registerEvents(s.cfg.Events)
	}
}
