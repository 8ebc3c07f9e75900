package abtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/internal/atomicfile"
)

// Row is one line of a rows file: what one edge counted for one bucket and
// user shard in one interval. docs/REPORTS.md is the schema.
type Row struct {
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Edge          string    `json:"edge"`
	Env           string    `json:"env"`
	Snapshot      string    `json:"snapshot"`
	Experiment    string    `json:"experiment"`
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
}

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
		for gi := range g.cells {
			for sh := range g.cells[gi] {
				cl := &g.cells[gi][sh]
				cur := cl.load()
				d := cur.sub(&cl.flushed)
				if d.zero() && cl.hll == nil {
					continue
				}
				active = true
				cl.flushed = cur
				r := Row{Start: start.UTC(), End: end.UTC(), Edge: edge, Env: g.Env, Snapshot: g.Snapshot,
					Experiment: g.Experiment, Test: g.labels[gi][0], Variant: g.labels[gi][1], ShareBP: g.shares[gi], Shard: uint8(sh),
					Requests: d.requests, Fills: d.fills, Errors: d.errors, ForwardErrors: d.forwardErrors,
					Impressions: d.impressions, Clicks: d.clicks, RevenueMicros: d.revenue, LatencyUS: d.latency[:]}
				if gi != unassignedGroup {
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
			}
		}
		if active {
			g.lastActive.Store(now)
		}
	}
	c.retire(now)
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

// FlushConfig says where and how often Run writes rows files.
type FlushConfig struct {
	Dir      string        // report directory (created if missing)
	Interval time.Duration // row interval, default 1m; files start on multiples of it
	Edge     string        // this edge's name in rows and file names
	Keep     time.Duration // delete rows files older than this (0 = keep all)
	OnError  func(error)   // write failures (the rows of that interval are lost)
}

// Run feeds the device sketches every few milliseconds and, with a Dir,
// writes one rows file per interval until ctx ends; then it writes the last
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
		if cfg.Dir != "" {
			if _, err := WriteRowsFile(cfg.Dir, cfg.Edge, start, rows); err != nil {
				cfg.OnError(err)
			}
			if cfg.Keep > 0 {
				if err := PruneRows(cfg.Dir, end.Add(-cfg.Keep)); err != nil {
					cfg.OnError(err)
				}
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

// Rows files are named rows-<edge>-<start>-<rows>-<xxhash64 hex>.jsonl: the
// row count and the checksum of the content are in the name, so a
// truncated or altered copy is detected and refused as a whole.
const rowsPrefix, rowsSuffix = "rows-", ".jsonl"

// safeName keeps [A-Za-z0-9._] and maps the rest to '_'.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "edge"
	}
	return string(b)
}

// WriteRowsFile writes rows atomically (temp file, fsync, rename, fsync of
// the directory) and returns the file's path. An interval with no rows
// writes nothing.
func WriteRowsFile(dir, edge string, start time.Time, rows []Row) (string, error) {
	if len(rows) == 0 {
		return "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return "", err
		}
	}
	name := fmt.Sprintf("%s%s-%s-%d-%016x%s", rowsPrefix, safeName(edge), start.UTC().Format("20060102T150405.000Z"),
		len(rows), xxhash.Sum64(buf.Bytes()), rowsSuffix)
	path := filepath.Join(dir, name)
	// Temp, fsync, rename, directory fsync; 0644 because analysts' tools
	// read the files.
	if err := atomicfile.WriteBytes(path, buf.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// PruneRows deletes rows files whose interval started before cutoff.
func PruneRows(dir string, cutoff time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		meta, ok := parseRowsName(e.Name())
		if ok && meta.start.Before(cutoff) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

type rowsMeta struct {
	start time.Time
	rows  int
	sum   uint64
}

func parseRowsName(name string) (rowsMeta, bool) {
	if !strings.HasPrefix(name, rowsPrefix) || !strings.HasSuffix(name, rowsSuffix) {
		return rowsMeta{}, false
	}
	parts := strings.Split(strings.TrimSuffix(name, rowsSuffix), "-")
	if len(parts) < 5 {
		return rowsMeta{}, false
	}
	n := len(parts)
	st, err1 := time.Parse("20060102T150405.000Z", parts[n-3])
	rows, err2 := strconv.Atoi(parts[n-2])
	sum, err3 := strconv.ParseUint(parts[n-1], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || len(parts[n-1]) != 16 || rows <= 0 {
		return rowsMeta{}, false
	}
	return rowsMeta{start: st, rows: rows, sum: sum}, true
}

// MaxRowsFileBytes bounds what ReadRowsFile reads (a minute of one edge is
// a few MiB at most).
const MaxRowsFileBytes = 512 << 20

// ReadRowsFile reads and checks one rows file: name, size, checksum, row
// count and every row. Any problem refuses the whole file, so a report
// never merges part of one.
func ReadRowsFile(path string) ([]Row, error) {
	meta, ok := parseRowsName(filepath.Base(path))
	if !ok {
		return nil, errors.New("not a rows file name (rows-<edge>-<start>-<rows>-<xxhash>.jsonl)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() > MaxRowsFileBytes {
		return nil, fmt.Errorf("%d bytes, over the %d limit", st.Size(), MaxRowsFileBytes)
	}
	data, err := readAll(f)
	if err != nil {
		return nil, err
	}
	if got := xxhash.Sum64(data); got != meta.sum {
		n := bytes.Count(data, []byte{'\n'})
		return nil, fmt.Errorf("checksum %016x, name says %016x (truncated or altered: %d of %d lines)", got, meta.sum, n, meta.rows)
	}
	rows := make([]Row, 0, meta.rows)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		r, err := ParseRow(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(rows) != meta.rows {
		return nil, fmt.Errorf("%d rows, name says %d", len(rows), meta.rows)
	}
	return rows, nil
}

func readAll(f *os.File) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.Bytes(), err
}

// ParseRow decodes and checks one rows line strictly: unknown fields,
// missing labels, bad shards, histograms of the wrong size and undecodable
// sketches are all refused.
func ParseRow(line []byte) (Row, error) {
	var r Row
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Row{}, err
	}
	if d.More() {
		return Row{}, errors.New("data after the row object")
	}
	switch {
	case r.Start.IsZero() || r.End.IsZero() || r.End.Before(r.Start):
		return Row{}, errors.New("start/end missing or reversed")
	case r.Env == "" || r.Test == "" || r.Variant == "":
		return Row{}, errors.New("env, test and variant are required")
	case r.Shard >= Shards:
		return Row{}, fmt.Errorf("shard %d, want < %d", r.Shard, Shards)
	case r.ShareBP > Slots:
		return Row{}, fmt.Errorf("share_bp %d, want <= %d", r.ShareBP, Slots)
	case r.TestIndex > MaxTests:
		return Row{}, fmt.Errorf("test_index %d, want <= %d", r.TestIndex, MaxTests)
	case len(r.LatencyUS) != NumLatencyBuckets:
		return Row{}, fmt.Errorf("latency_us has %d buckets, want %d", len(r.LatencyUS), NumLatencyBuckets)
	}
	// No cross-field checks (fills <= requests, histogram total ==
	// requests): a request in flight at a flush may have its request counted
	// in one row and its fill or latency in the next, so they hold over
	// rows, not per row. The file name's checksum guards the content.
	if _, err := r.Sketch(); err != nil {
		return Row{}, err
	}
	return r, nil
}

// ListRowsFiles returns the rows files under each dir (not recursive),
// plus the names in them that look like rows files but do not parse as
// one (for the report's list of skipped files).
func ListRowsFiles(dirs []string) (files []string, err error) {
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && strings.HasPrefix(e.Name(), rowsPrefix) && strings.HasSuffix(e.Name(), rowsSuffix) {
				files = append(files, filepath.Join(d, e.Name()))
			}
		}
	}
	return files, nil
}
