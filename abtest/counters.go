package abtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/snapshot"
)

// LatencyBoundsUS are the upper bounds (microseconds, inclusive) of the
// per-bucket latency histogram; a last, open bucket counts the rest. They
// are fixed so rows from every edge add up bucket by bucket.
var LatencyBoundsUS = [...]uint32{10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000}

// NumLatencyBuckets is len(LatencyBoundsUS)+1 (the open last bucket).
const NumLatencyBuckets = len(LatencyBoundsUS) + 1

// Groups per layer of a generation: control, tests 1..3, unassigned,
// holdout.
const (
	numGroups       = MaxTests + 3
	unassignedGroup = MaxTests + 1
	holdoutGroup    = MaxTests + 2
)

// HLLPrecision is the precision of the per-row device sketches: 2^14
// registers, 0.8% standard error per sketch; user counts sum 64 disjoint
// shards, so a bucket's count is good to about 0.1%.
const HLLPrecision = 14

// counts are one cell's monotonic counters (Prometheus reads them as they
// are; the flusher writes the difference since its last flush).
type counts struct {
	requests, fills, errors, forwardErrors, impressions, clicks, revenue uint64
	latency                                                              [NumLatencyBuckets]uint64
}

// cell is one (group, shard) of a generation. Only atomics: requests on
// different shards touch different cells, so there is no shared lock and
// little shared cache traffic.
type cell struct {
	requests, fills, errors, forwardErrors, impressions, clicks, revenue atomic.Uint64
	latency                                                              [NumLatencyBuckets]atomic.Uint64

	// Owned by the Counters' Run goroutine.
	flushed counts
	hll     *hyperloglog.Sketch
	dims    map[uint32]*counts // by Dims.key since the last flush (entries are kept, zeroed); no forward errors
	dimsNew bool               // dims counted something since the last flush
	_       [64]byte
}

// Dims are one request's breakdown dimensions: the values its ad event
// carries (server/edge's decisionDims is the rule, for both). Zero
// fields are unknown.
type Dims struct {
	Country [2]byte // ISO 3166 alpha-2
	OS      uint8   // snapshot.OS + 1
	Format  uint8   // the events' format code (FormatCode: snapshot.Format + 1, or a set)
}

// key packs the dimensions into the consumer's map key.
func (d *Dims) key() uint32 {
	return uint32(d.Country[0])<<24 | uint32(d.Country[1])<<16 | uint32(d.OS)<<8 | uint32(d.Format)
}

// Breakdown dimensions of rows (Row.Breakdown).
const (
	DimCountry = "country"
	DimOS      = "os"
	DimFormat  = "format"
)

// dimNames renders one dimension (0 country, 1 OS, 2 format) of a packed
// key as rows spell it ("" unknown).
func dimName(dim int, k uint32) string {
	switch dim {
	case 0:
		if c := [2]byte{byte(k >> 24), byte(k >> 16)}; c != [2]byte{} {
			return string(c[:])
		}
	case 1:
		if o := uint8(k >> 8); o > 0 && int(o) <= snapshot.NumOS {
			return snapshot.OS(o - 1).String()
		}
	default:
		return FormatLabel(uint8(k))
	}
	return ""
}

// load reads the counters; requests last, so every fill and latency
// observation it sees has its request counted too (Request adds requests
// first).
func (c *cell) load() counts {
	var k counts
	for i := range c.latency {
		k.latency[i] = c.latency[i].Load()
	}
	k.fills, k.errors = c.fills.Load(), c.errors.Load()
	k.forwardErrors, k.impressions, k.clicks, k.revenue = c.forwardErrors.Load(), c.impressions.Load(), c.clicks.Load(), c.revenue.Load()
	k.requests = c.requests.Load()
	return k
}

// Generation holds the cells of one (env, snapshot, experiment set): the
// edge makes one per snapshot it serves, so rows carry the snapshot
// version and experiment set of the requests they count. Every request is
// counted once in each layer: one layer's cells alone partition the
// traffic.
type Generation struct {
	Env, Snapshot, Experiment string
	layers                    []genLayer
	bucketer                  *Bucketer // re-buckets tracking events; nil: labels only
	parent                    *Counters
	lastActive                atomic.Int64 // unix seconds of the last event
	current                   atomic.Bool  // an edge serves this generation now
}

// genLayer is one layer's groups in a generation.
type genLayer struct {
	id     string
	labels [numGroups][2]string // test id, variant
	shares [numGroups]uint32    // configured share_bp (control: the rest; unassigned: 0; holdout: the holdout's)
	cells  [numGroups][Shards]cell
}

// Counters are an edge's per-bucket counters and their flusher.
type Counters struct {
	mu   sync.Mutex
	gens atomic.Pointer[map[genKey]*Generation] // copy-on-write: readers never lock

	current map[string]*Generation // env -> generation served now; under mu
	retired map[promKey]*counts    // totals of retired generations; under mu

	rings   [numRings]hllRing
	dropped atomic.Uint64 // device hashes the HLL rings had no room for
}

type genKey struct{ env, snapshot, experiment string }

const (
	numRings = 8
	ringSize = 1 << 14
)

// NewCounters returns empty counters; run Run to feed the device sketches
// and Flush (or a Flusher) to write rows.
func NewCounters() *Counters {
	c := &Counters{current: map[string]*Generation{}, retired: map[promKey]*counts{}}
	m := map[genKey]*Generation{}
	c.gens.Store(&m)
	for i := range c.rings {
		c.rings[i].init(ringSize)
	}
	return c
}

// Generation returns the generation for (env, snapshot, experiment set),
// creating it with the bucketer's labels. Call it once per snapshot (it
// locks), not per request.
func (c *Counters) Generation(env, snapshot string, b *Bucketer) *Generation {
	exp := ""
	if b != nil {
		exp = b.set.ID
	}
	k := genKey{env, snapshot, exp}
	if g := (*c.gens.Load())[k]; g != nil {
		return g
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.gens.Load()
	if g := old[k]; g != nil {
		return g
	}
	g := &Generation{Env: env, Snapshot: snapshot, Experiment: exp, parent: c}
	nl := 1
	if b != nil {
		nl = b.NumLayers()
		if b.real {
			g.bucketer = b
		}
	}
	g.layers = make([]genLayer, nl)
	for l := range g.layers {
		gl := &g.layers[l]
		gl.labels[0] = [2]string{ControlTest, ControlVariant}
		gl.labels[unassignedGroup] = [2]string{ControlTest, UnassignedVariant}
		gl.labels[holdoutGroup] = [2]string{HoldoutTest, HoldoutTest}
		gl.shares[0] = Slots
		for i := 1; i <= MaxTests; i++ {
			gl.labels[i] = [2]string{"test-" + string(rune('0'+i)), "unknown"}
			if b == nil {
				continue
			}
			if t := b.GroupTest(l, uint8(i)); t != nil {
				gl.labels[i] = [2]string{t.ID, t.Variant}
				gl.shares[i] = b.GroupShareBP(l, uint8(i))
				gl.shares[0] -= gl.shares[i]
			}
		}
		if b != nil {
			gl.id = b.layers[l].id
			gl.shares[holdoutGroup] = b.HoldoutBP()
		}
	}
	g.lastActive.Store(time.Now().Unix())
	m := make(map[genKey]*Generation, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	m[k] = g
	c.gens.Store(&m)
	return g
}

// Serving is Generation for the snapshot an edge serves now in env: it
// stays (is not retired) until another snapshot replaces it.
func (c *Counters) Serving(env, snapshot string, b *Bucketer) *Generation {
	g := c.Generation(env, snapshot, b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.current[env]; old != nil && old != g {
		old.current.Store(false)
		old.lastActive.Store(time.Now().Unix())
	}
	c.current[env] = g
	g.current.Store(true)
	return g
}

// Lookup finds an existing generation without creating one (for tracking
// events, whose token names env, snapshot and experiment set). It does not
// allocate.
func (c *Counters) Lookup(env, snapshot, experiment []byte) *Generation {
	return (*c.gens.Load())[genKey{string(env), string(snapshot), string(experiment)}]
}

func group(a Assignment, l int) int {
	switch {
	case a.Unassigned:
		return unassignedGroup
	case a.Held:
		return holdoutGroup
	}
	return int(a.Groups[l] & 3)
}

func (g *Generation) cell(a Assignment, l int) *cell {
	return &g.layers[l].cells[group(a, l)][a.Shard%Shards]
}

// Outcome is what happened to one ad request, for the counters.
type Outcome uint8

// Request outcomes.
const (
	NoFill Outcome = iota
	Fill
	Error
)

// Request counts one ad request in every layer: its outcome, server
// latency and device. It does not allocate and takes no lock.
func (g *Generation) Request(a Assignment, device []byte, o Outcome, latency time.Duration) {
	g.count(a, device, o, latency, nil)
}

// RequestDims is Request with the request's breakdown dimensions: they
// ride the device-sketch ring to the Run goroutine (no shared counters
// per value on the request path) and come out as breakdown rows. A full
// ring drops them with the device hash (DroppedDevices), so breakdowns
// may then add up to a little less than the totals, which stay exact.
func (g *Generation) RequestDims(a Assignment, device []byte, o Outcome, latency time.Duration, d *Dims) {
	g.count(a, device, o, latency, d)
}

func (g *Generation) count(a Assignment, device []byte, o Outcome, latency time.Duration, d *Dims) {
	lb := latencyBucket(latency)
	var h uint64
	if len(device) > 0 {
		h = deviceHash(device)
	}
	for l := range g.layers {
		c := g.cell(a, l)
		c.requests.Add(1)
		switch o {
		case Fill:
			c.fills.Add(1)
		case Error:
			c.errors.Add(1)
		}
		c.latency[lb].Add(1)
		if len(device) > 0 || d != nil {
			e := ringEntry{c: c, h: h, device: len(device) > 0}
			if d != nil {
				e.dims, e.d, e.o, e.lb = true, *d, o, uint8(lb)
			}
			g.parent.push(a.Shard, &e)
		}
	}
}

// ForwardError counts a request this edge tried to hand to staging and
// served itself instead (in the staging generation's cells: it is
// staging's failure).
func (g *Generation) ForwardError(a Assignment) {
	for l := range g.layers {
		g.cell(a, l).forwardErrors.Add(1)
	}
}

// Impression counts a verified impression and its revenue.
func (g *Generation) Impression(a Assignment, priceMicros int64) {
	g.ImpressionDims(a, priceMicros, nil)
}

// ImpressionDims is Impression with the dimensions its tracking token
// carries (token v2: the request's country and OS, the creative's
// format; zero Dims for a v1 token): they ride the device-sketch ring
// like RequestDims' and come out in the breakdown rows' impressions and
// revenue. The totals stay exact when a full ring drops them.
func (g *Generation) ImpressionDims(a Assignment, priceMicros int64, d *Dims) {
	for l := range g.layers {
		c := g.cell(a, l)
		c.impressions.Add(1)
		if priceMicros > 0 {
			c.revenue.Add(uint64(priceMicros))
		}
		if d != nil {
			e := ringEntry{c: c, d: *d, dims: true, ev: evImpression}
			if priceMicros > 0 {
				e.h = uint64(priceMicros)
			}
			g.parent.push(a.Shard, &e)
		}
	}
}

// Click counts a verified click.
func (g *Generation) Click(a Assignment) { g.ClickDims(a, nil) }

// ClickDims is Click with its token's dimensions (see ImpressionDims).
func (g *Generation) ClickDims(a Assignment, d *Dims) {
	for l := range g.layers {
		c := g.cell(a, l)
		c.clicks.Add(1)
		if d != nil {
			g.parent.push(a.Shard, &ringEntry{c: c, d: *d, dims: true, ev: evClick})
		}
	}
}

// Tracked is the assignment a verified tracking token's event counts in:
// the generation's own bucketer re-buckets the token's device (the same
// answer the request got, in every layer); a generation known only by
// its labels (another edge's snapshot) falls back to the token's first
// layer test (GroupOf).
func (g *Generation) Tracked(test uint8, variant, device []byte) Assignment {
	if g.bucketer != nil && len(device) > 0 {
		return g.bucketer.Assign(device)
	}
	return GroupOf(test, variant, device)
}

// GroupOf maps a tracking token's labels (test index, variant) back to an
// assignment group in the first layer, with the device's shard.
func GroupOf(test uint8, variant, device []byte) Assignment {
	if len(device) == 0 || (test == 0 && string(variant) == UnassignedVariant) {
		return Assignment{Unassigned: true}
	}
	if test == 0 && string(variant) == HoldoutTest {
		return Assignment{Held: true, Shard: Shard(device)}
	}
	if test > MaxTests {
		test = 0
	}
	return Assignment{Test: test, Groups: [MaxLayers]uint8{test}, Shard: Shard(device)}
}

func latencyBucket(d time.Duration) int {
	us := d.Microseconds()
	lo, hi := 0, len(LatencyBoundsUS)
	for lo < hi {
		m := (lo + hi) >> 1
		if us <= int64(LatencyBoundsUS[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// deviceHash is the HLL input: a mix of xxhash64(device) so the sketch's
// register bits do not line up with the shard bits (low 6 bits).
func deviceHash(device []byte) uint64 {
	h := xxhash.Sum64(device)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func (c *Counters) push(shard uint8, e *ringEntry) {
	if !c.rings[shard%numRings].push(e) {
		c.dropped.Add(1)
	}
}

// DroppedDevices is how many device hashes were not added to a sketch
// because the ring was full (the Run goroutine fell behind): user counts
// may then run slightly low.
func (c *Counters) DroppedDevices() uint64 { return c.dropped.Load() }

// Queued is how many device hashes and breakdown dimensions wait in the
// rings for the Run goroutine (a test waits for 0 before it reads the
// sketches; an operator could watch it approach the rings' size).
func (c *Counters) Queued() int {
	n := 0
	for i := range c.rings {
		n += int(c.rings[i].head.Load() - c.rings[i].done.Load())
	}
	return n
}

// drain moves queued device hashes into the cells' sketches and
// breakdown dimensions into their counts. Only the Run goroutine calls it.
func (c *Counters) drain() {
	var e ringEntry
	for i := range c.rings {
		r := &c.rings[i]
		for r.pop(&e) {
			cl := e.c
			if e.device {
				if cl.hll == nil {
					cl.hll, _ = hyperloglog.NewSketch(HLLPrecision, true)
				}
				cl.hll.InsertHash(e.h)
			}
			if e.dims {
				cl.addDims(&e)
			}
		}
	}
}

func (cl *cell) addDims(e *ringEntry) {
	if cl.dims == nil {
		cl.dims = map[uint32]*counts{}
	}
	cl.dimsNew = true
	k := e.d.key()
	dc := cl.dims[k]
	if dc == nil {
		dc = &counts{}
		cl.dims[k] = dc
	}
	switch e.ev {
	case evImpression:
		dc.impressions++
		dc.revenue += e.h // the price (no device hash: users count requests)
		return
	case evClick:
		dc.clicks++
		return
	}
	dc.requests++
	switch e.o {
	case Fill:
		dc.fills++
	case Error:
		dc.errors++
	}
	dc.latency[e.lb]++
}

// hllRing is a bounded lock-free multi-producer, single-consumer queue
// (Vyukov's bounded MPMC design with one consumer): a full ring drops.
type hllRing struct {
	head  atomic.Uint64
	_     [56]byte
	tail  uint64        // consumer only
	done  atomic.Uint64 // tail, published for Queued (the Run goroutine stores it; no request pays)
	slots []hllSlot
	mask  uint64
}

// ringEntry is one request's work for the Run goroutine in one cell: a
// device hash for the sketch, breakdown dimensions, or both; or one
// impression's or click's dimensions (ev; h is then the impression's
// price in micros, device false).
type ringEntry struct {
	c            *cell
	h            uint64
	d            Dims
	o            Outcome
	lb           uint8
	ev           uint8 // evRequest, evImpression, evClick
	device, dims bool
}

// What a ring entry counts under its dimensions.
const (
	evRequest = iota
	evImpression
	evClick
)

type hllSlot struct {
	seq atomic.Uint64
	e   ringEntry
}

func (r *hllRing) init(n int) {
	r.slots = make([]hllSlot, n)
	r.mask = uint64(n - 1)
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
}

func (r *hllRing) push(e *ringEntry) bool {
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				s.e = *e
				s.seq.Store(pos + 1)
				return true
			}
			pos = r.head.Load()
		case d < 0:
			return false // full
		default:
			pos = r.head.Load()
		}
	}
}

func (r *hllRing) pop(e *ringEntry) bool {
	s := &r.slots[r.tail&r.mask]
	if s.seq.Load() != r.tail+1 {
		return false
	}
	*e = s.e
	s.e = ringEntry{}
	s.seq.Store(r.tail + r.mask + 1)
	r.tail++
	r.done.Store(r.tail)
	return true
}
