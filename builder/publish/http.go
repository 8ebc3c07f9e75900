package publish

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/snapshot/distrib"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

type metrics struct {
	reg       *prometheus.Registry
	builds    *prometheus.CounterVec
	webseedUp atomic.Int64
	manifests atomic.Int64
}

func newMetrics(p *Publisher) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.builds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "adbuilder_builds_total",
		Help: "Builds by result (ok, failed: a refused inventory publishes nothing)."}, []string{"result"})
	m.reg.MustRegister(m.builds)
	m.reg.MustRegister(distrib.NewCollector("adbuilder", func() distrib.Totals {
		t := p.cl.Totals()
		return t
	}, func() int64 { return m.webseedUp.Load() }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adbuilder_manifest_requests_total",
		Help: "Manifest requests answered."}, func() float64 { return float64(m.manifests.Load()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adbuilder_seeding_torrents",
		Help: "Snapshots being seeded."}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.seeding))
	}))
	return m
}

// Handler is the builder's public HTTP: what edges fetch.
//
//	GET /v1/manifest?channel=staging|production   signed manifest (JSON)
//	GET /v1/torrent/<version>.torrent             the private .torrent
//	GET /v1/webseed/<version>.snap                BEP 19 web seed (Range requests)
//	GET /announce                                 the tracker
func (p *Publisher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/manifest", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("channel")
		if !manifestsig.ValidChannel(ch) {
			httpError(w, http.StatusBadRequest, "channel must be staging or production")
			return
		}
		env := p.Manifest(ch)
		if env == nil {
			httpError(w, http.StatusNotFound, "channel "+ch+" has no version yet")
			return
		}
		p.m.manifests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(env)
	})
	mux.HandleFunc("GET /v1/torrent/{file}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := strings.CutSuffix(r.PathValue("file"), ".torrent")
		if !ok || !p.have(v) {
			httpError(w, http.StatusNotFound, "no such torrent")
			return
		}
		w.Header().Set("Content-Type", "application/x-bittorrent")
		http.ServeFile(w, r, p.o.torrentPath(v))
	})
	mux.HandleFunc("GET /v1/webseed/{file}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := strings.CutSuffix(r.PathValue("file"), ".snap")
		if !ok || !p.have(v) {
			httpError(w, http.StatusNotFound, "no such snapshot")
			return
		}
		f, err := os.Open(p.o.snapPath(v))
		if err != nil {
			httpError(w, http.StatusNotFound, "no such snapshot")
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		lw := &limitedWriter{ResponseWriter: w, ctx: r.Context(), lim: p.limiter, n: &p.m.webseedUp}
		http.ServeContent(lw, r, v+".snap", st.ModTime(), f)
	})
	mux.Handle("GET /announce", p.tracker.Handler())
	return mux
}

func (p *Publisher) have(v string) bool {
	if !snapshot.ValidVersion(v) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.seeding[v]
	return ok
}

// AdminHandler is the builder's control plane (keep it on loopback):
//
//	GET  /metrics, /debug/pprof/
//	GET  /admin/status
//	POST /admin/build
//	POST /admin/promote?version=V
//	POST /admin/rollback
func (p *Publisher) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, p.Status()) })
	mux.HandleFunc("POST /admin/build", func(w http.ResponseWriter, r *http.Request) {
		v, err := p.Build()
		if err != nil {
			httpError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		writeJSON(w, 200, map[string]string{"version": v, "channel": manifestsig.Staging})
	})
	mux.HandleFunc("POST /admin/promote", func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("version")
		if err := p.Promote(v); err != nil {
			httpError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, 200, map[string]string{"production": v})
	})
	mux.HandleFunc("POST /admin/rollback", func(w http.ResponseWriter, r *http.Request) {
		v, err := p.Rollback()
		if err != nil {
			httpError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSON(w, 200, map[string]string{"production": v})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// limitedWriter paces a web seed response through the origin's upload
// limiter (shared with BitTorrent) and counts what it sends.
type limitedWriter struct {
	http.ResponseWriter
	ctx context.Context
	lim *rate.Limiter
	n   *atomic.Int64
}

func (w *limitedWriter) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		c := len(b) - done
		if w.lim != nil {
			c = min(c, w.lim.Burst())
			if err := w.lim.WaitN(w.ctx, c); err != nil {
				return done, err
			}
		}
		n, err := w.ResponseWriter.Write(b[done : done+c])
		done += n
		w.n.Add(int64(n))
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// ServerTimeouts are the builder HTTP's limits: web seed responses are
// long, so only headers and idle connections are bounded.
func ServerTimeouts(s *http.Server) {
	s.ReadHeaderTimeout = 10 * time.Second
	s.IdleTimeout = 2 * time.Minute
	s.MaxHeaderBytes = 16 << 10
}
