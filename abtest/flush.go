package abtest

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// Row is what one edge counted for one bucket and user shard in one
// interval: one line of a rows file (package abtest/rows writes, reads and
// checks them; docs/REPORTS.md is the schema).
type Row struct {
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Edge          string    `json:"edge"`
	Env           string    `json:"env"`
	Snapshot      string    `json:"snapshot"`
	Experiment    string    `json:"experiment"`
	Layer         string    `json:"layer,omitempty"`
	Test          string    `json:"test"`
	TestIndex     uint8     `json:"test_index"`
	Variant       string    `json:"variant"`
	ShareBP       uint32    `json:"share_bp"`
	Shard         uint8     `json:"shard"`
	Requests      uint64    `json:"requests"`
	Fills         uint64    `json:"fills"`
	Errors        uint64    `json:"errors"`
	ForwardErrors uint64    `json:"forward_errors"`
	Impressions   uint64    `json:"impressions"`
	Clicks        uint64    `json:"clicks"`
	RevenueMicros uint64    `json:"revenue_micros"`
	LatencyUS     []uint64  `json:"latency_us"`
	Devices       uint64    `json:"devices"`
	HLL           string    `json:"hll"`
	// Breakdown dimensions of the requests counted here (empty: not
	// known; rows written before they existed have none). Totals are
	// sums over all rows whatever their dimensions, except breakdown
	// rows.
	Country string `json:"country,omitempty"` // ISO 3166 alpha-2
	OS      string `json:"os,omitempty"`
	Format  string `json:"format,omitempty"` // the ad's format (RequestDims)
	// Breakdown, when set (DimCountry, DimOS, DimFormat), makes this a
	// breakdown row: the requests, fills, errors and latency of its
	// (group, shard) that had this value of that one dimension (the
	// dimension's field; "" unknown), and the impressions, clicks and
	// revenue whose tracking tokens carried it (a v1 token: unknown).
	// They are counted in the group's ordinary rows too: totals skip
	// breakdown rows.
	Breakdown string `json:"breakdown,omitempty"`
}

// DimNames are the breakdown dimensions in Row.Breakdown's spelling, in
// report order.
var DimNames = [3]string{DimCountry, DimOS, DimFormat}

// Sketch decodes the row's device sketch (nil when the row saw no device).
func (r *Row) Sketch() (*hyperloglog.Sketch, error) {
	if r.HLL == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(r.HLL)
	if err != nil {
		return nil, fmt.Errorf("hll: %w", err)
	}
	sk, _ := hyperloglog.NewSketch(HLLPrecision, true)
	if err := sk.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("hll: %w", err)
	}
	return sk, nil
}

// Flush collects the rows of everything counted since the previous Flush,
// for the interval [start, end). Only one goroutine may flush (Run does).
func (c *Counters) Flush(edge string, start, end time.Time) []Row {
	c.drain()
	var rows []Row
	now := end.Unix()
	for _, g := range *c.gens.Load() {
		active := false
		for li := range g.layers {
			gl := &g.layers[li]
			for gi := range gl.cells {
				for sh := range gl.cells[gi] {
					cl := &gl.cells[gi][sh]
					cur := cl.load()
					d := cur.sub(&cl.flushed)
					if d.zero() && cl.hll == nil && !cl.dimsNew {
						continue
					}
					active = true
					cl.flushed = cur
					r := Row{Start: start.UTC(), End: end.UTC(), Edge: edge, Env: g.Env, Snapshot: g.Snapshot,
						Experiment: g.Experiment, Layer: gl.id, Test: gl.labels[gi][0], Variant: gl.labels[gi][1], ShareBP: gl.shares[gi], Shard: uint8(sh),
						Requests: d.requests, Fills: d.fills, Errors: d.errors, ForwardErrors: d.forwardErrors,
						Impressions: d.impressions, Clicks: d.clicks, RevenueMicros: d.revenue, LatencyUS: d.latency[:]}
					if gi <= MaxTests {
						r.TestIndex = uint8(gi)
					}
					if cl.hll != nil {
						r.Devices = cl.hll.Estimate()
						b, _ := cl.hll.MarshalBinary()
						r.HLL = base64.StdEncoding.EncodeToString(b)
						cl.hll = nil
					}
					r.LatencyUS = append([]uint64(nil), d.latency[:]...)
					rows = append(rows, r)
					rows = cl.appendBreakdowns(rows, &r)
				}
			}
		}
		if active {
			g.lastActive.Store(now)
		}
	}
	c.retire(now)
	return rows
}

// appendBreakdowns appends a breakdown row per dimension value the cell
// counted since the last flush (labels from base), in a fixed order, and
// zeroes the counts (the entries stay: no allocation next interval).
func (cl *cell) appendBreakdowns(rows []Row, base *Row) []Row {
	if !cl.dimsNew {
		return rows
	}
	cl.dimsNew = false
	type dv struct {
		dim int
		v   string
	}
	sums := map[dv]*counts{}
	for k, dc := range cl.dims {
		if dc.zero() {
			continue
		}
		for dim := range DimNames {
			x := dv{dim, dimName(dim, k)}
			s := sums[x]
			if s == nil {
				s = &counts{}
				sums[x] = s
			}
			s.add(dc)
		}
		*dc = counts{}
	}
	keys := slices.SortedFunc(maps.Keys(sums), func(a, b dv) int {
		if a.dim != b.dim {
			return a.dim - b.dim
		}
		return cmp.Compare(a.v, b.v)
	})
	for _, x := range keys {
		dc := sums[x]
		r := Row{Start: base.Start, End: base.End, Edge: base.Edge, Env: base.Env, Snapshot: base.Snapshot,
			Experiment: base.Experiment, Layer: base.Layer, Test: base.Test, TestIndex: base.TestIndex, Variant: base.Variant,
			ShareBP: base.ShareBP, Shard: base.Shard, Breakdown: DimNames[x.dim],
			Requests: dc.requests, Fills: dc.fills, Errors: dc.errors, Impressions: dc.impressions, Clicks: dc.clicks,
			RevenueMicros: dc.revenue, LatencyUS: append([]uint64(nil), dc.latency[:]...)}
		switch x.dim {
		case 0:
			r.Country = x.v
		case 1:
			r.OS = x.v
		default:
			r.Format = x.v
		}
		rows = append(rows, r)
	}
	return rows
}

func (k *counts) sub(o *counts) counts {
	d := counts{requests: k.requests - o.requests, fills: k.fills - o.fills, errors: k.errors - o.errors,
		forwardErrors: k.forwardErrors - o.forwardErrors, impressions: k.impressions - o.impressions,
		clicks: k.clicks - o.clicks, revenue: k.revenue - o.revenue}
	for i := range k.latency {
		d.latency[i] = k.latency[i] - o.latency[i]
	}
	return d
}

func (k *counts) zero() bool {
	if k.requests|k.fills|k.errors|k.forwardErrors|k.impressions|k.clicks|k.revenue != 0 {
		return false
	}
	for _, v := range k.latency {
		if v != 0 {
			return false
		}
	}
	return true
}

// retireAfter is how long a generation that is not the current one of any
// env stays after its last event (late impressions of an old snapshot).
const retireAfter = 2 * time.Hour

// retire drops idle generations that no edge serves any more, folding their
// totals into the Prometheus totals so counters never go down.
func (c *Counters) retire(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.gens.Load()
	var drop []genKey
	for k, g := range old {
		if !g.current.Load() && now-g.lastActive.Load() > int64(retireAfter/time.Second) {
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return
	}
	m := make(map[genKey]*Generation, len(old))
	for k, v := range old {
		m[k] = v
	}
	for _, k := range drop {
		c.foldRetired(m[k])
		delete(m, k)
	}
	c.gens.Store(&m)
}

// FlushConfig says how often Run flushes and where the rows go.
type FlushConfig struct {
	Interval time.Duration // row interval, default 1m; intervals start on multiples of it
	Edge     string        // this edge's name in rows
	// Write receives each interval's rows (none: counted, then dropped);
	// rows.FileSink writes them as rows files.
	Write   func(start, end time.Time, rows []Row) error
	OnError func(error) // Write failures (the rows of that interval are lost)
}

// Run feeds the device sketches every few milliseconds and hands each
// interval's rows to cfg.Write until ctx ends; then it flushes the last
// partial interval, so a drain loses no counts.
func (c *Counters) Run(ctx context.Context, cfg FlushConfig) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error) {}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	next := start.Truncate(cfg.Interval).Add(cfg.Interval)
	flush := func(end time.Time) {
		rows := c.Flush(cfg.Edge, start, end)
		if cfg.Write != nil {
			if err := cfg.Write(start, end, rows); err != nil {
				cfg.OnError(err)
			}
		}
		start = end
	}
	for {
		select {
		case <-ctx.Done():
			flush(time.Now())
			return
		case now := <-tick.C:
			c.drain()
			if !now.Before(next) {
				flush(next)
				next = next.Add(cfg.Interval)
				if next.Before(now) { // slept through intervals
					next = now.Truncate(cfg.Interval).Add(cfg.Interval)
				}
			}
		}
	}
}
