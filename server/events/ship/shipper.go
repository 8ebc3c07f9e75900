package ship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
)

// OffsetFile is the shipper's resume point inside the log directory.
const OffsetFile = "shipped.offset"

// Options configure a Shipper.
type Options struct {
	// Batch is the most events per insert (default 20000).
	Batch int
	// Interval is how often a caught-up shipper looks again (default 1s).
	Interval time.Duration
	// Timeout bounds one HTTP request (default 30s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure, doubling
	// (defaults 100ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// RollupEvery is how often the issue hours this shipper inserted
	// events for are rebuilt in the rollups (Rollups); 0 = never (another
	// edge or `adtool events rollup` does it).
	RollupEvery time.Duration
	// OnError sees every failure (logging); may be nil.
	OnError func(error)
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 20000
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Shipper sends a live log to ClickHouse. Run it in one goroutine.
type Shipper struct {
	log *wal.Log
	cli *Client
	opt Options

	mu       sync.Mutex
	pos      wal.Pos // acknowledged by ClickHouse
	wake     chan struct{}
	oldestMs atomic.Int64 // time of the oldest event not yet acknowledged; 0 = caught up
	caughtUp atomic.Bool

	shipped, batches, failures, undecodable atomic.Int64
	rollups, rollupFailures                 atomic.Int64
	lastErr                                 atomic.Pointer[string]

	// touched holds the issue hours (unix hour numbers) of events shipped
	// since the last rollup; Run's goroutine only.
	touched    map[int64]struct{}
	lastRollup time.Time
}

// maxTouched bounds the hours remembered for the next rollup; past it the
// oldest are rebuilt first anyway (a token is valid for at most a day).
const maxTouched = 72

// New prepares a shipper for log to target, resuming from the log
// directory's offset file.
func New(log *wal.Log, target *Target, opt Options) (*Shipper, error) {
	opt.defaults()
	s := &Shipper{log: log, cli: NewClient(target, opt.Timeout), opt: opt, wake: make(chan struct{}, 1),
		touched: map[int64]struct{}{}, lastRollup: opt.Now()}
	p, err := ReadOffset(log.Dir())
	if err != nil {
		return nil, err
	}
	s.pos = p
	log.Release(p)
	return s, nil
}

type offsetJSON struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// ReadOffset reads dir's offset file (the zero position when there is
// none).
func ReadOffset(dir string) (wal.Pos, error) {
	b, err := os.ReadFile(filepath.Join(dir, OffsetFile))
	if errors.Is(err, os.ErrNotExist) {
		return wal.Pos{}, nil
	}
	if err != nil {
		return wal.Pos{}, err
	}
	var o offsetJSON
	if err := json.Unmarshal(b, &o); err != nil || o.Offset < 0 {
		return wal.Pos{}, fmt.Errorf("%s: not an offset file (%v): remove it to re-ship everything (the table collapses re-sends)", filepath.Join(dir, OffsetFile), err)
	}
	return wal.Pos{Segment: o.Segment, Offset: o.Offset}, nil
}

func writeOffset(dir string, p wal.Pos) error {
	b, _ := json.Marshal(offsetJSON{Segment: p.Segment, Offset: p.Offset})
	return atomicfile.WriteBytes(filepath.Join(dir, OffsetFile), append(b, '\n'))
}

// Pos is the acknowledged position.
func (s *Shipper) Pos() wal.Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Kick makes a waiting shipper look now (tests, shutdown).
func (s *Shipper) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run ships until ctx ends: schema first (idempotent), then batches from
// the acknowledged position up to the log's head. A failed insert is
// retried (the same events, from the same position) with backoff; nothing
// is skipped. It returns when ctx ends, after the batch in flight.
func (s *Shipper) Run(ctx context.Context) {
	backoff := s.opt.MinBackoff
	fail := func(err error) bool {
		s.failures.Add(1)
		if s.oldestMs.Load() == 0 {
			s.oldestMs.Store(s.peekTime())
		}
		msg := err.Error()
		s.lastErr.Store(&msg)
		if s.opt.OnError != nil {
			s.opt.OnError(err)
		}
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, s.opt.MaxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if err := s.cli.EnsureSchema(ctx); err != nil {
			if !fail(fmt.Errorf("schema: %w", err)) {
				return
			}
			continue
		}
		break
	}
	rd := wal.NewReader(s.log.Dir(), s.Pos(), s.log.Head)
	var buf []byte
	var ev events.Event
	insert := "INSERT INTO " + s.cli.T.TableName() + " FORMAT JSONEachRow"
	for ctx.Err() == nil {
		recs, err := rd.Next(s.opt.Batch)
		if err != nil {
			if !fail(fmt.Errorf("reading the log: %w", err)) {
				return
			}
			rd = wal.NewReader(s.log.Dir(), s.Pos(), s.log.Head)
			continue
		}
		if len(recs) == 0 {
			end := rd.Pos()
			if s.Pos().Less(end) {
				// Only damaged or undecodable bytes were passed: acknowledge them.
				s.ack(end, 0)
			}
			s.oldestMs.Store(0)
			s.caughtUp.Store(true)
			s.rollup(ctx, false)
			t := time.NewTimer(s.opt.Interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		s.caughtUp.Store(false)
		buf = buf[:0]
		n := 0
		for i, r := range recs {
			if ev.Decode(r.Payload) != nil {
				s.undecodable.Add(1) // a valid frame of a record this version cannot read
				continue
			}
			if i == 0 && s.oldestMs.Load() == 0 {
				s.oldestMs.Store(ev.Time)
			}
			if s.opt.RollupEvery > 0 && !ev.Duplicate() {
				s.touch(ev.Issued)
			}
			buf = ev.AppendJSON(buf)
			buf = append(buf, '\n')
			n++
		}
		end := recs[len(recs)-1].End
		for n > 0 {
			if _, err := s.cli.Exec(ctx, insert, buf, true); err != nil {
				if !fail(fmt.Errorf("insert of %d events: %w", n, err)) {
					return
				}
				continue
			}
			break
		}
		backoff = s.opt.MinBackoff
		if err := s.ack(end, n); err != nil {
			if !fail(fmt.Errorf("offset file: %w", err)) {
				return
			}
		}
		s.oldestMs.Store(0)
		s.rollup(ctx, false)
	}
}

func (s *Shipper) touch(issuedMs int64) {
	h := floorDiv(issuedMs, time.Hour.Milliseconds())
	if _, ok := s.touched[h]; ok || len(s.touched) < maxTouched {
		s.touched[h] = struct{}{}
		return
	}
	oldest := h
	for k := range s.touched {
		oldest = min(oldest, k)
	}
	delete(s.touched, oldest) // the newest hours matter most; an old one is rebuilt by its next event or by adtool
	s.touched[h] = struct{}{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// rollup rebuilds the touched hours when RollupEvery has passed (or now,
// with force). An hour whose rebuild fails stays touched for the next try.
func (s *Shipper) rollup(ctx context.Context, force bool) {
	now := s.opt.Now()
	if s.opt.RollupEvery <= 0 || len(s.touched) == 0 || !force && now.Sub(s.lastRollup) < s.opt.RollupEvery {
		return
	}
	s.lastRollup = now
	version := now.UnixMilli()
	// One rebuild per issue day, over its first to last touched hour:
	// each rebuild reads the day's partition, and the daily A/B rollup
	// (DailyTable) is rebuilt whole days at a time anyway.
	days := map[int64][2]int64{} // day -> first, last touched hour
	for h := range s.touched {
		d := floorDiv(h, 24)
		r, ok := days[d]
		if !ok {
			r = [2]int64{h, h}
		}
		days[d] = [2]int64{min(r[0], h), max(r[1], h)}
	}
	for _, r := range days {
		from := time.UnixMilli(r[0] * time.Hour.Milliseconds())
		if err := s.cli.Rebuild(ctx, from, time.UnixMilli((r[1]+1)*time.Hour.Milliseconds()), version); err != nil {
			s.rollupFailures.Add(1)
			if s.opt.OnError != nil {
				s.opt.OnError(err)
			}
			continue
		}
		for h := r[0]; h <= r[1]; h++ {
			if _, ok := s.touched[h]; ok {
				delete(s.touched, h)
				s.rollups.Add(1)
			}
		}
	}
}

// RollupNow rebuilds every touched hour at once (tests; Run's goroutine
// must not be running).
func (s *Shipper) RollupNow(ctx context.Context) { s.rollup(ctx, true) }

// peekTime is the time of the first unacknowledged event (0 if none).
func (s *Shipper) peekTime() int64 {
	recs, err := wal.NewReader(s.log.Dir(), s.Pos(), s.log.Head).Next(1)
	var ev events.Event
	if err != nil || len(recs) == 0 || ev.Decode(recs[0].Payload) != nil {
		return 0
	}
	return ev.Time
}

// ack records that everything before p is in ClickHouse.
func (s *Shipper) ack(p wal.Pos, n int) error {
	if err := writeOffset(s.log.Dir(), p); err != nil {
		return err
	}
	s.mu.Lock()
	s.pos = p
	s.mu.Unlock()
	s.log.Release(p)
	s.shipped.Add(int64(n))
	if n > 0 {
		s.batches.Add(1)
	}
	return nil
}

// Stats are the shipper's counters and backlog.
type Stats struct {
	Shipped, Batches, Failures, Undecodable int64
	Rollups, RollupFailures                 int64 // issue hours rebuilt
	BacklogBytes                            int64
	BacklogAge                              time.Duration // 0 when caught up
	LastError                               string
	Pos                                     wal.Pos
}

// Stats reads the counters and measures the backlog (bytes between the
// acknowledged position and the log's head).
func (s *Shipper) Stats() Stats {
	st := Stats{Shipped: s.shipped.Load(), Batches: s.batches.Load(), Failures: s.failures.Load(),
		Undecodable: s.undecodable.Load(), Pos: s.Pos(), Rollups: s.rollups.Load(), RollupFailures: s.rollupFailures.Load()}
	st.BacklogBytes = wal.Between(s.log.Dir(), st.Pos, s.log.Head())
	st.BacklogAge = s.BacklogAge(s.opt.Now())
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// BacklogAge is how old the oldest unacknowledged event is (0 when caught
// up); cheap enough for every health probe.
func (s *Shipper) BacklogAge(now time.Time) time.Duration {
	ms := s.oldestMs.Load()
	if ms == 0 {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(ms)))
}

// Redact hides a password in a URL for logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Register exports the shipper's series: events and batches shipped,
// failures, backlog bytes, estimated backlog events and oldest age.
func (s *Shipper) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_events_shipped_total", Help: "Events acknowledged by ClickHouse."},
			func() float64 { return float64(s.shipped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_events_ship_batches_total", Help: "Inserts acknowledged by ClickHouse."},
			func() float64 { return float64(s.batches.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_events_ship_failures_total", Help: "Failed inserts or schema statements (retried)."},
			func() float64 { return float64(s.failures.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_events_rollups_total", Help: "Issue hours rebuilt in the ClickHouse rollups (delivery_hourly, experiment_hourly)."},
			func() float64 { return float64(s.rollups.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "adedge_events_rollup_failures_total", Help: "Failed rollup rebuilds of an hour (retried at the next rollup)."},
			func() float64 { return float64(s.rollupFailures.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_events_backlog_bytes", Help: "Event log bytes not yet acknowledged by ClickHouse."},
			func() float64 { return float64(s.Stats().BacklogBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_events_backlog_events", Help: "Events not yet acknowledged, estimated from the backlog bytes (~200 B per framed record)."},
			func() float64 { return float64(s.Stats().BacklogBytes / approxRecord) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "adedge_events_backlog_age_seconds", Help: "Age of the oldest event not yet acknowledged (0 when caught up)."},
			func() float64 { return s.BacklogAge(s.opt.Now()).Seconds() }),
	)
}

// approxRecord is a typical framed record's size, for the backlog estimate.
const approxRecord = 200

// AppendHealthJSON appends the "shipping" member of /health.
func (s *Shipper) AppendHealthJSON(dst []byte, now time.Time) []byte {
	dst = append(dst, `,"shipping":{"shipped":`...)
	dst = strconv.AppendInt(dst, s.shipped.Load(), 10)
	dst = append(dst, `,"failures":`...)
	dst = strconv.AppendInt(dst, s.failures.Load(), 10)
	dst = append(dst, `,"backlog_bytes":`...)
	dst = strconv.AppendInt(dst, s.Stats().BacklogBytes, 10)
	dst = append(dst, `,"backlog_age_seconds":`...)
	dst = strconv.AppendFloat(dst, s.BacklogAge(now).Seconds(), 'f', 1, 64)
	return append(dst, '}')
}
