package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Seen is the edge's memory-bounded, time-windowed set of recent event ids.
//
// An id is filed under the hour its token was issued (the same hour
// wherever the pixel arrives), so a lookup touches one map and a whole hour
// expires at once when every token issued in it has expired (the window is
// the token TTL: a token older than that fails verification before it gets
// here). Memory: Go maps of uint64 cost about 16 bytes per id; at the
// reference scale (300 impressions/s per edge, 24 h TTL) that is ~26M ids,
// ~420 MB. MaxIDs caps it: past the cap the oldest hour is dropped early
// (counted; the warehouse still deduplicates by id).
type Seen struct {
	slotMs  int64
	gens    int64
	perCap  int
	shards  [seenShards]seenShard
	evicted atomic.Int64
	size    atomic.Int64
}

const seenShards = 64

type seenShard struct {
	mu  sync.Mutex
	hrs map[int64]map[uint64]struct{}
	n   int
}

// SeenSlot is the generation width: ids are filed per issue hour.
const SeenSlot = time.Hour

// NewSeen returns a set remembering ids for window (rounded up to whole
// hours, plus one for the hour in progress), holding at most maxIDs.
func NewSeen(window time.Duration, maxIDs int) *Seen {
	s := &Seen{slotMs: SeenSlot.Milliseconds()}
	s.gens = int64((window+SeenSlot-1)/SeenSlot) + 1
	if maxIDs <= 0 {
		maxIDs = 32 << 20
	}
	s.perCap = max(1, maxIDs/seenShards)
	for i := range s.shards {
		s.shards[i].hrs = make(map[int64]map[uint64]struct{})
	}
	return s
}

// Do runs record for key when the set has not seen it (for the hour
// issuedMs falls in), and remembers key when record succeeds. It holds the
// key's shard while record runs, so two arrivals of one id never both
// record: the second waits and is a duplicate. dup reports a key already
// seen (record not run).
func (s *Seen) Do(key uint64, issuedMs, nowMs int64, record func() error) (dup bool, err error) {
	sh := &s.shards[key%seenShards]
	hr := issuedMs / s.slotMs
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.hrs[hr]
	if m != nil {
		if _, ok := m[key]; ok {
			return true, nil
		}
	}
	if record != nil {
		if err := record(); err != nil {
			return false, err
		}
	}
	s.addLocked(sh, hr, nowMs/s.slotMs, key)
	return false, nil
}

// Add remembers key without a record (recovery from the log).
func (s *Seen) Add(key uint64, issuedMs, nowMs int64) {
	sh := &s.shards[key%seenShards]
	sh.mu.Lock()
	s.addLocked(sh, issuedMs/s.slotMs, nowMs/s.slotMs, key)
	sh.mu.Unlock()
}

func (s *Seen) addLocked(sh *seenShard, hr, nowHr int64, key uint64) {
	if hr <= nowHr-s.gens {
		return // expired already: its token no longer verifies
	}
	m := sh.hrs[hr]
	if m == nil {
		for h, old := range sh.hrs { // at most gens+few entries
			if h <= nowHr-s.gens {
				sh.n -= len(old)
				s.size.Add(-int64(len(old)))
				delete(sh.hrs, h)
			}
		}
		m = make(map[uint64]struct{})
		sh.hrs[hr] = m
	}
	for sh.n >= s.perCap {
		oldest := int64(1<<63 - 1)
		for h := range sh.hrs {
			oldest = min(oldest, h)
		}
		old := sh.hrs[oldest]
		sh.n -= len(old)
		s.size.Add(-int64(len(old)))
		s.evicted.Add(int64(len(old)))
		delete(sh.hrs, oldest)
		if oldest == hr {
			m = make(map[uint64]struct{})
			sh.hrs[hr] = m
		}
	}
	m[key] = struct{}{}
	sh.n++
	s.size.Add(1)
}

// Expire drops every hour whose tokens have all expired by nowMs. Shards
// also expire lazily when a new hour opens in them; the recorder calls this
// once a minute so quiet shards give their memory back too.
func (s *Seen) Expire(nowMs int64) {
	nowHr := nowMs / s.slotMs
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for h, old := range sh.hrs {
			if h <= nowHr-s.gens {
				sh.n -= len(old)
				s.size.Add(-int64(len(old)))
				delete(sh.hrs, h)
			}
		}
		sh.mu.Unlock()
	}
}

// Len is the number of ids held.
func (s *Seen) Len() int64 { return s.size.Load() }

// Evicted counts ids dropped before their window ended (the cap).
func (s *Seen) Evicted() int64 { return s.evicted.Load() }
