// Package pacingsim is `adtool pacing-sim`: a fleet's day, compressed,
// against a real Aerospike spend store. Every edge is an in-process
// pacing.Service (the edge's own flush, fleet read, controllers and
// Table.Allow on every opportunity): eight edge processes with HTTP
// would spend the two cores on request handling, not on what is measured
// (docs/PACING.md). The store is paused (SIGSTOP) mid-day for the outage.
package pacingsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/adedge/adedge/internal/aerokit"
	"github.com/adedge/adedge/server/pacing"
)

// Options are adtool pacing-sim's inputs.
type Options struct {
	Spend     string        // aerospike://HOST:PORT/NS/SET; empty = start a kit server
	Edges     int           // default 8
	Campaigns int           // default 200 (quick 50)
	DayWall   time.Duration // wall time of one simulated day (default 4m, quick 15s)
	Outage    time.Duration // store paused mid-day for this much of DayWall (default 30s, quick 1s; 0 = none)
	Quick     bool
	JSON      bool
	Seed      uint64
	Log       io.Writer // progress lines (nil = none)
	// Server, if set, is the kit server behind Spend, paused for the
	// outage (tests); without it and without Spend, Run starts one.
	Server *aerokit.Server
}

// Result is both modes' figures.
type Result struct {
	Store   string `json:"store"`
	DayWall string `json:"day_wall"`
	Outage  string `json:"outage_wall"`
	// OutageSim is the simulated span the store was paused for; the
	// OutageWall fields how long the pause lasted in wall time per mode.
	OutageSim      string             `json:"outage_simulated"`
	OutageWallEven string             `json:"outage_wall_even,omitempty"`
	OutageWallASAP string             `json:"outage_wall_asap,omitempty"`
	Even           pacing.SimResult   `json:"even"`
	ASAP           pacing.SimResult   `json:"asap"`
	Targets        map[string]bool    `json:"targets_met"`
	Summary        map[string]float64 `json:"summary"`
	WallSecs       float64            `json:"wall_seconds"`
}

// diurnal is the simulated day's traffic shape (and the plan's curve).
var diurnal = pacing.Curve{3, 2, 1.5, 1.2, 1, 1.2, 2, 3, 4, 4.5, 5, 5, 5, 5, 5, 5, 5.5, 6, 6.5, 6.5, 6, 5.5, 4.5, 3.5}

// Run simulates both modes and writes the table (or JSON) to w.
func Run(ctx context.Context, o Options, w io.Writer) (*Result, error) {
	if o.Edges <= 0 {
		o.Edges = 8
	}
	if o.Campaigns <= 0 {
		o.Campaigns = 200
		if o.Quick {
			o.Campaigns = 50
		}
	}
	if o.DayWall <= 0 {
		o.DayWall = 4 * time.Minute
		if o.Quick {
			o.DayWall = 15 * time.Second
		}
	}
	if o.Outage < 0 {
		o.Outage = 0
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	start := time.Now()
	srv := o.Server
	spec := o.Spend
	if spec == "" {
		var err error
		if srv, err = aerokit.StartServer(aerokit.Options{}); err != nil {
			return nil, fmt.Errorf("starting the Aerospike kit (or pass --spend): %w", err)
		}
		defer func() { _ = srv.Stop(); _ = os.RemoveAll(srv.Dir()) }()
		spec = "aerospike://" + srv.Addr() + "/" + aerokit.NamespaceTest + "/pacing_sim"
	}
	store, err := pacing.OpenAerospike(spec)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if err := waitStore(ctx, store); err != nil {
		return nil, err
	}
	res := &Result{Store: store.Name(), DayWall: o.DayWall.String(), Outage: o.Outage.String()}
	tick := 20 * time.Second
	if o.Quick {
		tick = time.Minute
	}
	ticks := int(24 * time.Hour / tick)
	perTick := o.DayWall / time.Duration(ticks)
	// The outage is a span of the compressed day: --outage of its wall
	// clock is outage*24h/DayWall simulated (30 s of a 4-minute day: 3
	// hours). The store stays paused until the simulated clock has crossed
	// that span, however slowly the ticks run while every flush times out,
	// so the simulated outage is what the flag says and the wall-clock
	// pause is at least as long.
	outageSim := time.Duration(float64(o.Outage) * float64(24*time.Hour) / float64(o.DayWall)).Round(tick)
	res.OutageSim = outageSim.String()
	for _, mode := range []pacing.Mode{pacing.Even, pacing.ASAP} {
		runID := "sim" + strconv.FormatInt(time.Now().UnixNano(), 36) + mode.String()
		var t0, pausedAt time.Time
		paused, pausedOnce := false, false
		noon := pacing.SimDay.Add(12 * time.Hour)
		resumeAt := noon.Add(outageSim)
		cfg := pacing.SimConfig{Edges: o.Edges, Campaigns: o.Campaigns, Seed: o.Seed, Mode: mode, Tick: tick, Curve: diurnal,
			SpikeHour: 14, SpikeLength: time.Hour, SpikeFactor: 3, Store: store, RunID: runID, Timeout: 200 * time.Millisecond,
			Parallel: true,
			OnTick: func(i int, now time.Time) {
				if i == 0 {
					t0 = time.Now()
				}
				if srv != nil && outageSim > 0 && !now.Before(noon) && !pausedOnce {
					pausedOnce = true
					if err := srv.Pause(); err == nil {
						paused, pausedAt = true, time.Now()
						logf(o.Log, "%s: store paused at simulated %s for %s simulated", mode, now.Format("15:04"), outageSim)
					}
				}
				if paused && !now.Before(resumeAt) {
					_ = srv.Resume()
					paused = false
					wall := time.Since(pausedAt)
					if mode == pacing.Even {
						res.OutageWallEven = wall.Round(time.Millisecond).String()
					} else {
						res.OutageWallASAP = wall.Round(time.Millisecond).String()
					}
					logf(o.Log, "%s: store resumed at simulated %s after %s of wall time", mode, now.Format("15:04"), wall.Round(time.Millisecond))
				}
				if i < ticks {
					// The compressed day's clock: each tick takes its share of
					// the wall time (a tool pacing itself, not a test's sync).
					// Ticks that ran late (the outage) are not made up by
					// skipping: the simulated clock only moves tick by tick.
					if d := time.Until(t0.Add(time.Duration(i) * perTick)); d > 0 {
						time.Sleep(d)
					}
				}
			}}
		r, err := pacing.Simulate(ctx, cfg)
		if paused {
			_ = srv.Resume()
		}
		if err != nil {
			return nil, err
		}
		r.PerCampaign = nil
		if mode == pacing.Even {
			res.Even = r
		} else {
			res.ASAP = r
		}
		logf(o.Log, "%s done: %d ticks, %d store errors", mode, r.Ticks, r.StoreErrors)
	}
	res.WallSecs = time.Since(start).Seconds()
	res.Targets = map[string]bool{
		"max_overspend_le_1pct":    res.Even.MaxOverspendPct <= 1 && res.ASAP.MaxOverspendPct <= 1,
		"delivered_ge_97pct":       res.Even.UnderdeliveryPct <= 3 && res.ASAP.UnderdeliveryPct <= 3,
		"even_hourly_within_10pct": res.Even.HourlyPaceErrorPct <= 10,
		"store_outage_exercised":   o.Outage == 0 || srv == nil || res.Even.StoreErrors+res.ASAP.StoreErrors > 0,
	}
	res.Summary = map[string]float64{
		"max_overspend_pct":     max(res.Even.MaxOverspendPct, res.ASAP.MaxOverspendPct),
		"total_overspend_pct":   max(res.Even.TotalOverspendPct, res.ASAP.TotalOverspendPct),
		"underdelivery_pct":     max(res.Even.UnderdeliveryPct, res.ASAP.UnderdeliveryPct),
		"hourly_pace_error_pct": res.Even.HourlyPaceErrorPct,
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return res, enc.Encode(res)
	}
	fmt.Fprintf(w, "pacing-sim: %d in-process edges, %d campaigns, %s store, a day in %s, store paused at noon for %s simulated (%s of the day's wall clock; the pause lasted %s / %s), spike 3x at 14 UTC\n",
		o.Edges, o.Campaigns, res.Store, o.DayWall, res.OutageSim, o.Outage, res.OutageWallEven, res.OutageWallASAP)
	fmt.Fprint(w, pacing.FormatSimTable(res.Even, res.ASAP))
	for k, v := range res.Targets {
		fmt.Fprintf(w, "target %-26s %v\n", k, v)
	}
	return res, nil
}

func waitStore(ctx context.Context, st *pacing.Aerospike) error {
	deadline := time.Now().Add(30 * time.Second)
	out := make([]pacing.Totals, 1)
	for {
		err := st.Read(ctx, []pacing.Delta{{Campaign: "probe", Day: 1}}, out)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("spend store not answering: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "pacing-sim: "+format+"\n", args...)
	}
}
