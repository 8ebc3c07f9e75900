package health

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Register exports the health state as Prometheus series, read at scrape
// time from the same atomics the probe reads.
func (s *State) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_health_status",
			Help: "Serving status: 0 starting, 1 ok, 2 degraded, 3 draining (maintenance included)."},
			func() float64 { return float64(s.Status()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_health_agent_weight_percent",
			Help: "Weight the HAProxy agent-check reports (10-100), following load."},
			func() float64 { return float64(s.Weight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_health_cpu_ratio",
			Help: "Process CPU use over the last second as a share of GOMAXPROCS cores."},
			func() float64 { return s.read(time.Now()).cpu }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_health_profile_failure_ratio",
			Help: "Profile reads that timed out or failed over the health window."},
			func() float64 { v := s.read(time.Now()); return v.tRate + v.eRate }),
	)
}
