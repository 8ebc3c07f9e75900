package abtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"
)

// LatencyBoundsUS are the upper bounds (microseconds, inclusive) of the
// per-bucket latency histogram; a last, open bucket counts the rest. They
// are fixed so rows from every edge add up bucket by bucket.
var LatencyBoundsUS = [...]uint32{10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000}

// NumLatencyBuckets is len(LatencyBoundsUS)+1 (the open last bucket).
const NumLatencyBuckets = len(LatencyBoundsUS) + 1

// Groups per generation: control, tests 1..3, unassigned.
const (
	numGroups       = MaxTests + 2
	unassignedGroup = MaxTests + 1
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
	_       [64]byte
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
// version and experiment set of the requests they count.
type Generation struct {
	Env, Snapshot, Experiment string
	labels                    [numGroups][2]string // test id, variant
	shares                    [numGroups]uint32    // configured share_bp (control: the rest; unassigned: 0)
	cells                     [numGroups][Shards]cell
	parent                    *Counters
	lastActive                atomic.Int64 // unix seconds of the last event
	current                   atomic.Bool  // an edge serves this generation now
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
	g.labels[0] = [2]string{ControlTest, ControlVariant}
	g.labels[unassignedGroup] = [2]string{ControlTest, UnassignedVariant}
	g.shares[0] = Slots
	for i := 1; i <= MaxTests; i++ {
		g.labels[i] = [2]string{"test-" + string(rune('0'+i)), "unknown"}
		if b != nil && i <= b.n {
			t := &b.set.Tests[i-1]
			g.labels[i] = [2]string{t.ID, t.Variant}
			g.shares[i] = t.ShareBP
			g.shares[0] -= t.ShareBP
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

func group(a Assignment) int {
	if a.Unassigned {
		return unassignedGroup
	}
	return int(a.Test)
}

func (g *Generation) cell(a Assignment) *cell {
	return &g.cells[group(a)][a.Shard%Shards]
}

// Outcome is what happened to one ad request, for the counters.
type Outcome uint8

// Request outcomes.
const (
	NoFill Outcome = iota
	Fill
	Error
)

// Request counts one ad request: its outcome, server latency and device.
// It does not allocate and takes no lock.
func (g *Generation) Request(a Assignment, device []byte, o Outcome, latency time.Duration) {
	c := g.cell(a)
	c.requests.Add(1)
	switch o {
	case Fill:
		c.fills.Add(1)
	case Error:
		c.errors.Add(1)
	}
	c.latency[latencyBucket(latency)].Add(1)
	if len(device) > 0 {
		g.parent.pushDevice(c, a.Shard, device)
	}
}

// ForwardError counts a request this edge tried to hand to staging and
// served itself instead (in the staging generation's cells: it is
// staging's failure).
func (g *Generation) ForwardError(a Assignment) { g.cell(a).forwardErrors.Add(1) }

// Impression counts a verified impression and its revenue.
func (g *Generation) Impression(a Assignment, priceMicros int64) {
	c := g.cell(a)
	c.impressions.Add(1)
	if priceMicros > 0 {
		c.revenue.Add(uint64(priceMicros))
	}
}

// Click counts a verified click.
func (g *Generation) Click(a Assignment) { g.cell(a).clicks.Add(1) }

// GroupOf maps a tracking token's labels (test index, variant) back to an
// assignment group, with the device's shard.
func GroupOf(test uint8, variant, device []byte) Assignment {
	if len(device) == 0 || (test == 0 && string(variant) == UnassignedVariant) {
		return Assignment{Unassigned: true}
	}
	if test > MaxTests {
		test = 0
	}
	return Assignment{Test: test, Shard: Shard(device)}
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

func (c *Counters) pushDevice(cl *cell, shard uint8, device []byte) {
	if !c.rings[shard%numRings].push(cl, deviceHash(device)) {
		c.dropped.Add(1)
	}
}

// DroppedDevices is how many device hashes were not added to a sketch
// because the ring was full (the Run goroutine fell behind): user counts
// may then run slightly low.
func (c *Counters) DroppedDevices() uint64 { return c.dropped.Load() }

// drain moves queued device hashes into the cells' sketches. Only the Run
// goroutine calls it.
func (c *Counters) drain() {
	for i := range c.rings {
		r := &c.rings[i]
		for {
			cl, h, ok := r.pop()
			if !ok {
				break
			}
			if cl.hll == nil {
				cl.hll, _ = hyperloglog.NewSketch(HLLPrecision, true)
			}
			cl.hll.InsertHash(h)
		}
	}
}

// hllRing is a bounded lock-free multi-producer, single-consumer queue
// (Vyukov's bounded MPMC design with one consumer): a full ring drops.
type hllRing struct {
	head  atomic.Uint64
	_     [56]byte
	tail  uint64 // consumer only
	slots []hllSlot
	mask  uint64
}

type hllSlot struct {
	seq atomic.Uint64
	c   *cell
	h   uint64
}

func (r *hllRing) init(n int) {
	r.slots = make([]hllSlot, n)
	r.mask = uint64(n - 1)
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
}

func (r *hllRing) push(c *cell, h uint64) bool {
	pos := r.head.Load()
	for {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				s.c, s.h = c, h
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

func (r *hllRing) pop() (*cell, uint64, bool) {
	s := &r.slots[r.tail&r.mask]
	if s.seq.Load() != r.tail+1 {
		return nil, 0, false
	}
	c, h := s.c, s.h
	s.c = nil
	s.seq.Store(r.tail + r.mask + 1)
	r.tail++
	return c, h, true
}
