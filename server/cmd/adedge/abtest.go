package main

import (
	"context"
	"log"
	"math"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/staging"
)

// abFlags are the A/B counters' and staging forwarder's flags (issue 5).
type abFlags struct {
	stagingPercent             float64
	stagingSalt                string
	stagingTimeout             time.Duration
	stagingMirror              bool
	stagingQueue               int
	reportDir, edgeName        string
	reportInterval, reportKeep time.Duration
	upstreams                  []string
}

func (a *abFlags) register(s *cliflag.Set) {
	st := s.Group("Staging")
	st.StringList(&a.upstreams, "staging-upstream", nil, "staging edges `HOST:PORT,...`; empty = no staging traffic", cliflag.HostPort)
	st.Float(&a.stagingPercent, "staging-percent", 5, "share of devices (0..100, 0.01 steps) whose requests go to --staging-upstream", cliflag.Between(0.0, 100.0))
	st.String(&a.stagingSalt, "staging-salt", abtest.DefaultStagingSalt, "salt of the staging layer (the same on every edge)", cliflag.NonEmpty())
	st.Duration(&a.stagingTimeout, "staging-timeout", 20*time.Millisecond, "a forwarded request not answered in this time is served here", positive)
	st.Bool(&a.stagingMirror, "staging-mirror", false, "send staged requests' copies to staging and discard its answers (users never see staging)")
	st.Int(&a.stagingQueue, "staging-mirror-queue", 4096, "pending mirror copies; a full queue drops and counts", atLeastOne)

	ab := s.Group("A/B reports")
	ab.String(&a.reportDir, "report-dir", "", "write per-bucket A/B rows files here every --report-interval (docs/REPORTS.md); empty = metrics only")
	ab.Duration(&a.reportInterval, "report-interval", time.Minute, "length of one rows interval", cliflag.AtLeast(time.Second))
	ab.Duration(&a.reportKeep, "report-keep", 7*24*time.Hour, "delete rows files older than this (0 = keep all)", nonNegative)
	ab.String(&a.edgeName, "edge-name", "", "this edge's name in rows files (default hostname-port)")
}

// check fills the defaults that depend on other flags.
func (a *abFlags) check(listen string) error {
	if a.edgeName == "" {
		h, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(listen)
		a.edgeName = h + "-" + port
	}
	return nil
}

// start wires the counters and the forwarder into cfg and starts their
// goroutines; the returned func stops them, writing the last rows.
func (a *abFlags) start(cfg *edge.Config, reg prometheus.Registerer, hc *health.Config) (func(), error) {
	ctr := abtest.NewCounters()
	reg.MustRegister(ctr)
	cfg.Counters = ctr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	n := 1
	fc := abtest.FlushConfig{Interval: a.reportInterval, Edge: a.edgeName, OnError: func(err error) { log.Printf("report: %v", err) }}
	if a.reportDir != "" {
		fc.Write = rows.FileSink(a.reportDir, a.edgeName, a.reportKeep)
	}
	go func() {
		ctr.Run(ctx, fc)
		done <- struct{}{}
	}()
	if len(a.upstreams) > 0 && a.stagingPercent > 0 {
		st, err := abtest.NewStaging(a.stagingSalt, a.stagingPercent)
		if err != nil {
			cancel()
			return nil, err
		}
		fwd, err := staging.New(staging.Config{Upstreams: a.upstreams, Timeout: a.stagingTimeout, Mirror: a.stagingMirror, Queue: a.stagingQueue})
		if err != nil {
			cancel()
			return nil, err
		}
		fwd.Register(reg)
		cfg.Staging, cfg.Forwarder = st, fwd
		n += 2
		go func() { fwd.Run(ctx); done <- struct{}{} }()
		report, run := stagingReport(fwd, a.stagingPercent)
		hc.Staging = report
		go func() { run(ctx); done <- struct{}{} }()
		mode := "forwarding"
		if a.stagingMirror {
			mode = "mirroring"
		}
		log.Printf("staging: %s %.2f%% of devices to %v (timeout %s)", mode, a.stagingPercent, a.upstreams, a.stagingTimeout)
	}
	return func() {
		cancel()
		for i := 0; i < n; i++ {
			<-done
		}
	}, nil
}

// Staging health: over the last stagingWindow, when at least
// stagingMinForwards requests were forwarded and stagingFailRate of them
// fell back to local serving, /health says staging is failing (degraded:
// production still serves those requests).
const (
	stagingWindow      = 10
	stagingMinForwards = 20
	stagingFailRate    = 0.5
)

// stagingReport is the staging forwarder's /health report and the loop
// that feeds it: run samples the forwarder once a second and publishes its
// recent fallback rate through atomics, which report (the probe's) reads.
func stagingReport(fwd *staging.Forwarder, percent float64) (report func() health.Staging, run func(ctx context.Context)) {
	var rate atomic.Uint64 // float64 bits
	var failing atomic.Bool
	report = func() health.Staging {
		st := health.Staging{State: health.StagingOn, Percent: percent, ErrorRate: math.Float64frombits(rate.Load())}
		if failing.Load() {
			st.State = health.StagingFailing
		}
		return st
	}
	return report, func(ctx context.Context) { sampleStaging(ctx, fwd, &rate, &failing) }
}

func sampleStaging(ctx context.Context, fwd *staging.Forwarder, rate *atomic.Uint64, failing *atomic.Bool) {
	type sample struct{ sent, failed uint64 }
	ring := make([]sample, 0, stagingWindow+1)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := fwd.Stats()
		cur := sample{sent: st.Forwarded + st.Fallbacks + st.Mirrored + st.MirrorErrors, failed: st.Fallbacks + st.MirrorErrors}
		if len(ring) == cap(ring) {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, cur)
		sent, failed := cur.sent-ring[0].sent, cur.failed-ring[0].failed
		r := 0.0
		if sent > 0 {
			r = float64(failed) / float64(sent)
		}
		rate.Store(math.Float64bits(r))
		failing.Store(sent >= stagingMinForwards && r >= stagingFailRate)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
