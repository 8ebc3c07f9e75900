package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"log"
	"time"

	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/pacing"
)

// paceFlags are the budget pacing flags (issue 11, docs/PACING.md).
type paceFlags struct {
	spend, curve       string
	curveFrom          string
	curveTarget        *ship.Target
	edges              int
	staleAfter, impLag time.Duration
	parsedCurve        pacing.Curve
}

func (p *paceFlags) register(s *cliflag.Set) {
	g := s.Group("Budgets and pacing")
	g.String(&p.spend, "spend", "none", "fleet spend store for budgets: none | local (this edge only) | aerospike://HOST:PORT/NAMESPACE/SET (docs/PACING.md)", spendStore)
	g.String(&p.curve, "pacing-curve", "flat", "expected traffic by UTC hour for even pacing: flat | 24 comma-separated weights, hour 0 first",
		func(v string) string {
			if _, err := pacing.ParseCurve(v); err != nil {
				return "flat or 24 non-negative comma-separated weights, not all zero"
			}
			return ""
		})
	g.String(&p.curveFrom, "pacing-curve-from", "", "events warehouse to read even pacing's traffic curve from, hourly: http://HOST:8123/?database=NAME (ClickHouse; the previous 7 days' requests by UTC hour; --pacing-curve until it has enough)",
		func(v string) string {
			if v == "" {
				return ""
			}
			if _, err := ship.ParseTarget(v); err != nil {
				return "http://HOST:PORT/?database=NAME"
			}
			return ""
		})
	g.Int(&p.edges, "pacing-edges", 1, "expected edges in the fleet: while the spend store is stale each edge spends at most budget / this", cliflag.Between(1, 100000))
	g.Duration(&p.staleAfter, "pacing-stale-after", 5*time.Second, "fleet totals older than this: pace on this edge's own spend", cliflag.AtLeast(time.Second))
	g.Duration(&p.impLag, "pacing-imp-lag", time.Minute, "served-but-not-yet-billed window reserved as committed spend", cliflag.AtLeast(time.Second))
	s.After(func() (err error) {
		if p.parsedCurve, err = pacing.ParseCurve(p.curve); err != nil {
			return err
		}
		if p.curveFrom != "" {
			p.curveTarget, err = ship.ParseTarget(p.curveFrom)
		}
		return err
	})
}

// spendStore refuses a --spend value of no known scheme (the store checks
// the rest when it opens).
func spendStore(v string) string {
	if v == "none" || v == "local" || (len(v) > len("aerospike://") && v[:len("aerospike://")] == "aerospike://") {
		return ""
	}
	return "none, local or aerospike://HOST:PORT/NAMESPACE/SET"
}

// start opens the spend store and sets ecfg.Pacing; the returned func
// starts the pacing loop for the edge and returns its stop (which flushes
// once more and closes the store). --spend none: no pacing.
func (p *paceFlags) start(ecfg *edge.Config, m *edge.Metrics, hc *health.Config) (run func(srv *edge.Server) (stop func()), err error) {
	store, err := pacing.Open(p.spend)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return func(*edge.Server) func() { return func() {} }, nil
	}
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	svc := pacing.NewService(pacing.Config{Store: store, Curve: p.parsedCurve, Salt: binary.LittleEndian.Uint64(salt[:]),
		Params: pacing.Params{ExpectedEdges: p.edges, StaleAfter: p.staleAfter, ImpLag: p.impLag}})
	ecfg.Pacing = svc
	m.RegisterPacingMetrics(svc)
	hc.PacingProblem = svc.Problem
	return func(srv *edge.Server) func() {
		stop := background(srv.RunPacing)
		stopCurve := func() {}
		if p.curveTarget != nil {
			cl := ship.NewClient(p.curveTarget, 30*time.Second)
			stopCurve = background(func(ctx context.Context) { svc.FollowWarehouse(ctx, cl, time.Hour, log.Printf) })
		}
		return func() { stopCurve(); stop(); _ = store.Close() }
	}, nil
}
