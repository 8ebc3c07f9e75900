package pacing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// Delta is one campaign's unflushed spend for one day.
type Delta struct {
	Campaign string
	Day      uint32 // YYYYMMDD in the campaign's time zone
	Spend    int64  // billed micros counted on this edge since its last flush
	Served   int64  // served value micros (the price of the ads served)
	// P is the serve probability this edge last computed, published for
	// adtool pacing (the edges compute nearly the same one); At is when.
	P  float64
	At int64 // unix seconds
}

// Totals are the fleet's counters for one campaign after a flush.
type Totals struct {
	Day, Served, Life int64
	// P and PAt: the serve probability an edge last published, and when
	// (unix seconds; 0 = never).
	P   float64
	PAt int64
	// Err is why the record could not be used (the store failed, or the
	// record is missing, negative or not a counter): the totals are then
	// unknown, never zero. Applied says whether the delta was added
	// anyway (false: the caller keeps it for the next flush).
	Err     error
	Applied bool
}

// ErrBadRecord marks a counter record that exists but is not a
// non-negative integer counter.
var ErrBadRecord = errors.New("pacing: counter record is not a non-negative integer")

// ErrNoRecord marks a counter record that is missing on a read (adtool
// pacing: nothing was spent yet, or the record expired).
var ErrNoRecord = errors.New("pacing: no counter record")

// Store is the fleet's shared spend counters: one record per campaign per
// day and one per campaign for its lifetime (docs/PACING.md).
type Store interface {
	// Apply adds every delta server-side (zero deltas create the records)
	// and fills out[i] with the totals after the add, in one round trip.
	// An error means the whole call failed (no delta applied).
	Apply(ctx context.Context, deltas []Delta, out []Totals) error
	// Read fills out[i] with the totals for keys[i] without changing them.
	Read(ctx context.Context, keys []Delta, out []Totals) error
	// Name describes the store for logs and /health.
	Name() string
	Close() error
}

// Open returns the store a --spend value names: "none" (nil: no
// pacing), "local" (in process, for one edge) or
// "aerospike://HOST:PORT/NS/SET".
func Open(spec string) (Store, error) {
	switch {
	case spec == "none" || spec == "":
		return nil, nil
	case spec == "local":
		return NewLocal(), nil
	case len(spec) > 12 && spec[:12] == "aerospike://":
		return OpenAerospike(spec)
	}
	return nil, fmt.Errorf("--spend %q: want none, local or aerospike://HOST:PORT/NAMESPACE/SET", spec)
}

// Local is an in-process Store: the embedded default for one edge (make
// demo without Aerospike) and the simulation's store.
type Local struct {
	mu   sync.Mutex
	day  map[dayKey]*localRec
	life map[string]int64
	// Fail, when set, is called on every call; a non-nil error fails it
	// (the simulation's store outage).
	Fail func() error
}

type dayKey struct {
	campaign string
	day      uint32
}

type localRec struct {
	spend, served int64
	p             float64
	pAt           int64
}

// NewLocal returns an empty in-process store.
func NewLocal() *Local {
	return &Local{day: map[dayKey]*localRec{}, life: map[string]int64{}}
}

// Apply implements Store.
func (l *Local) Apply(_ context.Context, deltas []Delta, out []Totals) error {
	if l.Fail != nil {
		if err := l.Fail(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, d := range deltas {
		k := dayKey{d.Campaign, d.Day}
		r := l.day[k]
		if r == nil {
			r = new(localRec)
			l.day[k] = r
		}
		r.spend += d.Spend
		r.served += d.Served
		if d.At != 0 {
			r.p, r.pAt = d.P, d.At
		}
		l.life[d.Campaign] += d.Spend
		out[i] = Totals{Day: r.spend, Served: r.served, Life: l.life[d.Campaign], P: r.p, PAt: r.pAt, Applied: true}
	}
	return nil
}

// Read implements Store.
func (l *Local) Read(_ context.Context, keys []Delta, out []Totals) error {
	if l.Fail != nil {
		if err := l.Fail(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, d := range keys {
		r := l.day[dayKey{d.Campaign, d.Day}]
		if r == nil {
			out[i] = Totals{Err: ErrNoRecord, Life: l.life[d.Campaign]}
			continue
		}
		out[i] = Totals{Day: r.spend, Served: r.served, Life: l.life[d.Campaign], P: r.p, PAt: r.pAt}
	}
	return nil
}

// Name implements Store.
func (l *Local) Name() string { return "local" }

// Close implements Store.
func (l *Local) Close() error { return nil }

// DayRecordKey is the user key of a campaign's record for one day.
func DayRecordKey(campaign string, day uint32) string {
	return campaign + "/" + strconv.FormatUint(uint64(day), 10)
}

// LifeRecordKey is the user key of a campaign's lifetime record.
func LifeRecordKey(campaign string) string { return campaign + "/life" }
