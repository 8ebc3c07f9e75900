// Package pacingsim is `adtool pacing-sim`: a fleet's day, compressed,
// against a real Aerospike spend store. Every edge is an OS process of
// its own (this executable re-executed, Worker) running pacing.SimEdge:
// the edge's own pacing.Service (flush, fleet read, controllers,
// Table.Allow on every opportunity) with its own Aerospike client,
// stepped tick by tick by the parent's simulated clock over a pipe, so
// the day stays compressible and the edges really flush to and read from
// the store concurrently (docs/PACING.md). The store is paused (SIGSTOP)
// mid-day for the outage.
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
	Outage    time.Duration // store down mid-day for this much of DayWall (default 30s, quick 1s; 0 = none)
	// OutageKind is how the store goes down: "kill" (default: SIGKILL,
	// restarted with its counters from a file) or "pause" (SIGSTOP).
	OutageKind string
	Quick      bool
	JSON       bool
	// InProcess runs the edges as goroutines of this process (one shared
	// store client) instead of edge processes.
	InProcess bool
	// Exe is the executable started as each edge process (WorkerEnv set;
	// it must call Worker first); empty = this one.
	Exe  string
	Seed uint64
	Log  io.Writer // progress lines (nil = none)
	// Server, if set, is the kit server behind Spend, paused for the
	// outage (tests); without it and without Spend, Run starts one.
	Server *aerokit.Server
}

// Result is both modes' figures.
type Result struct {
	Store string `json:"store"`
	// Edges is "processes" or "in-process".
	EdgesRun string `json:"edges_run"`
	DayWall  string `json:"day_wall"`
	Outage   string `json:"outage_wall"`
	// OutageKind: "kill" or "pause".
	OutageKind string `json:"outage_kind"`
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
	switch o.OutageKind {
	case "":
		o.OutageKind = "kill"
	case "kill", "pause":
	default:
		return nil, fmt.Errorf("--outage-kind %q: want kill or pause", o.OutageKind)
	}
	start := time.Now()
	srv := o.Server
	spec := o.Spend
	if spec == "" {
		var err error
		if srv, err = aerokit.StartServer(aerokit.Options{Persist: o.OutageKind == "kill"}); err != nil {
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
	if err := waitStore(ctx, store, 30*time.Second); err != nil {
		return nil, err
	}
	res := &Result{Store: store.Name(), DayWall: o.DayWall.String(), Outage: o.Outage.String(), OutageKind: o.OutageKind, EdgesRun: "processes"}
	if o.InProcess {
		res.EdgesRun = "in-process"
	}
	exe := o.Exe
	if exe == "" && !o.InProcess {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
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
	timeout := 2 * time.Second
	if o.OutageKind == "pause" {
		// Every flush against a paused store waits this out: short, or the
		// outage's ticks take the run's wall time.
		timeout = 200 * time.Millisecond
	}
	for _, mode := range []pacing.Mode{pacing.Even, pacing.ASAP} {
		runID := "sim" + strconv.FormatInt(time.Now().UnixNano(), 36) + mode.String()
		var t0, downAt time.Time
		down, downOnce := false, false
		noon := pacing.SimDay.Add(12 * time.Hour)
		resumeAt := noon.Add(outageSim)
		mctx, cancel := context.WithCancel(ctx)
		var fleet *procFleet
		var outageErr error
		abort := func(err error) {
			if outageErr == nil {
				outageErr = err
			}
			cancel()
		}
		cfg := pacing.SimConfig{Edges: o.Edges, Campaigns: o.Campaigns, Seed: o.Seed, Mode: mode, Tick: tick, Curve: diurnal,
			SpikeHour: 14, SpikeLength: time.Hour, SpikeFactor: 3, Store: store, RunID: runID, Timeout: timeout,
			Parallel: true,
			OnTick: func(i int, now time.Time) {
				if i == 0 {
					t0 = time.Now()
				}
				if srv != nil && outageSim > 0 && !now.Before(noon) && !downOnce {
					downOnce = true
					if err := storeDown(srv, o.OutageKind); err != nil {
						abort(err)
						return
					}
					down, downAt = true, time.Now()
					logf(o.Log, "%s: store %s at simulated %s for %s simulated", mode, map[string]string{"kill": "killed", "pause": "paused"}[o.OutageKind], now.Format("15:04"), outageSim)
				}
				if down && !now.Before(resumeAt) {
					down = false
					wall := time.Since(downAt)
					if err := storeUp(srv, o.OutageKind, fleet, store); err != nil {
						abort(err)
						return
					}
					if mode == pacing.Even {
						res.OutageWallEven = wall.Round(time.Millisecond).String()
					} else {
						res.OutageWallASAP = wall.Round(time.Millisecond).String()
					}
					logf(o.Log, "%s: store back at simulated %s after %s of wall time (restart and reconnect %s, not simulated time)", mode, now.Format("15:04"),
						wall.Round(time.Millisecond), (time.Since(downAt) - wall).Round(time.Millisecond))
					// The restart is not the day's time: the wall clock starts
					// again from here.
					t0 = time.Now().Add(-time.Duration(i) * perTick)
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
		if !o.InProcess {
			if fleet, err = startFleet(exe, cfg, spec, os.Stderr); err != nil {
				cancel()
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
			cfg.Fleet = fleet
			logf(o.Log, "%s: %d edge processes up (pids %v)", mode, o.Edges, fleet.pids())
		}
		r, err := pacing.Simulate(mctx, cfg)
		if down {
			_ = storeUp(srv, o.OutageKind, nil, nil)
		}
		if fleet != nil {
			fleet.Close()
		}
		cancel()
		if outageErr != nil {
			return nil, fmt.Errorf("%s: the store outage: %w", mode, outageErr)
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
		// Concurrent edges never lose an increment: the store holds at
		// least what the edges counted (more: adds counted twice).
		"no_increment_lost": res.Even.StoreSpend >= res.Even.CountedSpend && res.ASAP.StoreSpend >= res.ASAP.CountedSpend,
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
	fmt.Fprintf(w, "pacing-sim: %d edges (%s), %d campaigns, %s store, a day in %s, store %s at noon for %s simulated (%s of the day's wall clock; it lasted %s / %s of wall time), spike 3x at 14 UTC\n",
		o.Edges, res.EdgesRun, o.Campaigns, res.Store, o.DayWall, map[string]string{"kill": "killed", "pause": "paused"}[o.OutageKind], res.OutageSim, o.Outage, res.OutageWallEven, res.OutageWallASAP)
	fmt.Fprint(w, pacing.FormatSimTable(res.Even, res.ASAP))
	for _, r := range []pacing.SimResult{res.Even, res.ASAP} {
		fmt.Fprintf(w, "%s: the store holds %d micros for the day, the edges counted %d (%+.3f%%)\n", r.Mode, r.StoreSpend, r.CountedSpend,
			100*float64(r.StoreSpend-r.CountedSpend)/float64(max(1, r.CountedSpend)))
	}
	for k, v := range res.Targets {
		fmt.Fprintf(w, "target %-26s %v\n", k, v)
	}
	return res, nil
}

// storeDown starts the outage: kill (SIGKILL, once what the edges
// flushed is in the server's file) or pause (SIGSTOP).
func storeDown(srv *aerokit.Server, kind string) error {
	if kind == "pause" {
		return srv.Pause()
	}
	if err := srv.WaitPersisted(30 * time.Second); err != nil {
		return err
	}
	return srv.Kill()
}

// storeUp ends it: a killed server is restarted (its counters come back
// from the file) and the clock waits until every edge's client reads it
// again; a paused one is continued.
func storeUp(srv *aerokit.Server, kind string, fleet *procFleet, parent *pacing.Aerospike) error {
	if kind == "pause" {
		return srv.Resume()
	}
	if err := srv.Restart(); err != nil {
		return err
	}
	if parent != nil {
		if err := waitStore(context.Background(), parent, time.Minute); err != nil {
			return err
		}
	}
	if fleet != nil {
		return fleet.probe(time.Minute)
	}
	return nil
}

// waitStore polls st with a read until it answers, for at most d.
func waitStore(ctx context.Context, st *pacing.Aerospike, d time.Duration) error {
	deadline := time.Now().Add(d)
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
