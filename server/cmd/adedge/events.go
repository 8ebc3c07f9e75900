package main

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/events/wal"
)

// eventFlags are the billing event log's flags (issue 10, docs/EVENTS.md).
type eventFlags struct {
	dir                      string
	fsync, segmentAge        time.Duration
	maxBytes, segmentBytes   int64
	sampleAds                float64
	dedupMax, queue          int
	failWindow               time.Duration
	clickhouse               string
	shipBatch                int
	shipInterval, backlogAge time.Duration
	rollup                   time.Duration
}

func (e *eventFlags) register(s *cliflag.Set) {
	g := s.Group("Billing events")
	g.String(&e.dir, "events-dir", "", "durable billing event log directory; a pixel is answered only after its event is written here (empty = off; docs/EVENTS.md)")
	g.Duration(&e.fsync, "events-fsync", 10*time.Millisecond, "group commit: fsync the event log at most this long after a write (the power-loss window); negative = fsync every append",
		func(d time.Duration) string {
			if d == 0 {
				return "a duration other than 0 (negative = fsync every append)"
			}
			return ""
		})
	g.Int64(&e.maxBytes, "events-max-bytes", 8<<30, "bound on the event log's bytes; past it shipped segments go, then pixels answer 503", cliflag.AtLeast(int64(1<<20)))
	g.Int64(&e.segmentBytes, "events-segment-bytes", 64<<20, "rotate an event log segment at this size", cliflag.AtLeast(int64(64<<10)))
	g.Duration(&e.segmentAge, "events-segment-age", time.Hour, "rotate an event log segment at this age", cliflag.AtLeast(time.Second))
	g.Float(&e.sampleAds, "events-sample-ads", 1, "share of ad decisions logged (0..1; 0 = none); impressions and clicks are never sampled", cliflag.Between(0.0, 1.0))
	g.Int(&e.dedupMax, "events-dedup-max", 32<<20, "cap on the recent event ids kept for exactly-once (~16 bytes each)", atLeastOne)
	g.Int(&e.queue, "events-queue", 16384, "decision and duplicate records waiting for the log writer; a full queue drops and counts", atLeastOne)
	g.Duration(&e.failWindow, "events-fail-window", 30*time.Second, "/health stays degraded this long after a pixel could not be recorded", positive)
	g.String(&e.clickhouse, "events-clickhouse", "", "ship the event log to ClickHouse at this HTTP URL (http://HOST:8123/?database=adedge); empty = keep it local")
	g.Int(&e.shipBatch, "events-ship-batch", 20000, "events per ClickHouse insert", atLeastOne)
	g.Duration(&e.shipInterval, "events-ship-interval", time.Second, "how often the shipper looks for new events when caught up", positive)
	g.Duration(&e.backlogAge, "events-backlog-age", time.Minute, "/health is degraded while the oldest unshipped event is older than this", positive)
	g.Duration(&e.rollup, "events-rollup", time.Minute, "rebuild the ClickHouse rollups (delivery_hourly, experiment_hourly) for the hours this edge shipped, this often; 0 = never (another edge or adtool report --refresh does it)",
		func(d time.Duration) string {
			if d < 0 {
				return "a duration >= 0"
			}
			return ""
		})
	s.After(e.check)
}

// check holds the rules across the events flags.
func (e *eventFlags) check() error {
	if e.dir == "" && e.clickhouse != "" {
		return errors.New("--events-clickhouse needs --events-dir")
	}
	if e.clickhouse != "" {
		if _, err := ship.ParseTarget(e.clickhouse); err != nil {
			return fmt.Errorf("--events-clickhouse: %w", err)
		}
	}
	return nil
}

// start opens the event log (recovering it) and wires the recorder into
// cfg (its metrics come with the server's) and /health. The returned func closes it: call it after the
// serving port has stopped, so every answered pixel's event is in the log.
func (e *eventFlags) start(cfg *edge.Config, edgeName string, tokenTTL time.Duration, hc *health.Config, reg prometheus.Registerer) (func(), error) {
	if e.dir == "" {
		return func() {}, nil
	}
	sample := e.sampleAds
	if sample == 0 {
		sample = -1 // none
	}
	rec, rc, err := events.Open(events.Options{Dir: e.dir, Window: tokenTTL, MaxIDs: e.dedupMax, SampleAds: sample, Queue: e.queue,
		Log: wal.Options{SegmentBytes: e.segmentBytes, SegmentAge: e.segmentAge, MaxBytes: e.maxBytes, FsyncInterval: e.fsync}})
	if err != nil {
		return nil, fmt.Errorf("--events-dir %s: %w", e.dir, err)
	}
	log.Printf("events: group commit every %s by %s", e.fsync, rec.Log().FsyncMode())
	if !rec.Log().Stats().AIOFsync && runtime.GOMAXPROCS(0) < 2 {
		// docs/DECISIONS.md, "The event log's fsync must not hold the only P".
		log.Printf("events: WARNING: one P (GOMAXPROCS 1) and a blocking fsync: every request waits out each group commit; give the edge two CPUs or GOMAXPROCS=2")
	}
	log.Printf("events: %s: %d segments, %d records, %d bytes recovered in %s; torn tail cut %d bytes; %d damaged spans (%d bytes) skipped; %d recent ids",
		e.dir, rc.Segments, rc.Records, rc.Bytes, rc.Took.Round(time.Millisecond), rc.TornBytes, len(rc.DamagedSpans), rc.DamagedBytes(), rec.Seen().Len())
	for i, d := range rc.DamagedSpans {
		if i == 10 {
			log.Printf("events: ... %d more damaged spans", len(rc.DamagedSpans)-10)
			break
		}
		log.Printf("events: damaged span in segment %d at %d, %d bytes (skipped)", d.Segment, d.Off, d.Len)
	}
	cfg.Events, cfg.EdgeName = rec, edgeName
	var shipper *ship.Shipper
	stopShip := func() {}
	if e.clickhouse != "" {
		tg, _ := ship.ParseTarget(e.clickhouse) // checked with the flags
		var last atomic.Int64
		shipper, err = ship.New(rec.Log(), tg, ship.Options{Batch: e.shipBatch, Interval: e.shipInterval, RollupEvery: e.rollup,
			OnError: func(err error) {
				// One line per 10 s at most: an outage must not flood the log.
				if now := time.Now().Unix(); now-last.Load() >= 10 {
					last.Store(now)
					log.Printf("events: shipping to %s: %v (retrying; the log keeps the events)", ship.Redact(e.clickhouse), err)
				}
			}})
		if err != nil {
			_ = rec.Close()
			return nil, fmt.Errorf("--events-clickhouse: %w", err)
		}
		shipper.Register(reg)
		stopShip = background(shipper.Run)
		log.Printf("events: shipping to %s from %+v", ship.Redact(e.clickhouse), shipper.Pos())
	}
	hc.EventsFn = func(now time.Time) (bool, bool) {
		return edge.EventsFailing(rec, now, e.failWindow), shipper != nil && shipper.BacklogAge(now) > e.backlogAge
	}
	hc.Extras = append(hc.Extras, func(dst []byte) []byte {
		now := time.Now()
		dst = edge.AppendEventsHealth(dst, rec, now)
		if shipper != nil {
			dst = shipper.AppendHealthJSON(dst, now)
		}
		return dst
	})
	return func() {
		stopShip()
		if err := rec.Close(); err != nil {
			log.Printf("events: close: %v", err)
		}
	}, nil
}
