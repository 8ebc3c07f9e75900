// Package profiles reads user profiles (segments, installed apps, frequency
// caps) for the edge under a hard per-request deadline.
//
// The edge's hot path sees only the Store interface; the concrete backends
// (none, an embedded JSONL file, Aerospike) are chosen at start-up with Open.
// A missed, slow or failed read never fails an ad request: the caller serves
// it unpersonalised and the store counts what happened (see Stats).
package profiles

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Errors returned by Store methods. Callers branch on them with errors.Is.
var (
	// ErrNotFound means the device has no profile: serve unpersonalised.
	ErrNotFound = errors.New("profiles: not found")
	// ErrTimeout means the read (or write) did not finish before the
	// context deadline; the request must go on without the profile.
	ErrTimeout = errors.New("profiles: deadline exceeded")
	// ErrInvalid wraps bad arguments (empty campaign id, zero period, ...).
	ErrInvalid = errors.New("profiles: invalid argument")
)

// Cap is one frequency-cap counter: how many times CampaignID was shown to
// the device in the fixed window that starts at WindowStart (unix seconds).
// Windows are aligned to multiples of the cap period since the Unix epoch,
// so every edge computes the same window without coordination.
type Cap struct {
	CampaignID  string
	Count       uint32
	WindowStart int64
}

// Profile is what the edge knows about one device. It is designed to be
// reused: Store.Get overwrites a caller-owned Profile, keeping the
// capacity of its slices, so steady-state reads need not allocate.
type Profile struct {
	// Segments are audience segment names, e.g. "gamers".
	Segments []string
	// InstalledApps holds xxhash64 of app bundle ids (AppHash), sorted
	// ascending so HasApp can binary-search.
	InstalledApps []uint64
	// Caps are frequency-cap counters. A campaign may appear more than
	// once with different windows; only the current window counts.
	Caps []Cap
}

// Reset empties p but keeps its backing arrays for reuse.
func (p *Profile) Reset() {
	clear(p.Segments) // drop string references so pooled profiles don't pin memory
	p.Segments = p.Segments[:0]
	p.InstalledApps = p.InstalledApps[:0]
	clear(p.Caps)
	p.Caps = p.Caps[:0]
}

// HasApp reports whether the app with hash h (see AppHash) is installed.
func (p *Profile) HasApp(h uint64) bool {
	_, ok := slices.BinarySearch(p.InstalledApps, h)
	return ok
}

// HasSegment reports whether the profile is in segment name.
func (p *Profile) HasSegment(name string) bool {
	for _, s := range p.Segments {
		if s == name {
			return true
		}
	}
	return false
}

// CapCount returns how many times campaignID was counted in the window of
// length periodSeconds that contains now (unix seconds); 0 when the
// recorded window has expired or periodSeconds is 0.
func (p *Profile) CapCount(campaignID string, periodSeconds uint32, now int64) uint32 {
	if periodSeconds == 0 {
		return 0
	}
	ws := WindowStart(now, periodSeconds)
	for i := range p.Caps {
		c := &p.Caps[i]
		if c.WindowStart == ws && c.CampaignID == campaignID {
			return c.Count
		}
	}
	return 0
}

// AppHash is the hash stored in InstalledApps for an app bundle id such as
// "com.foo.bar"; the edge hashes request-side bundle ids the same way.
func AppHash(bundleID string) uint64 { return xxhash.Sum64String(bundleID) }

// WindowStart returns the start (unix seconds) of the fixed cap window of
// length periodSeconds containing now. periodSeconds must be > 0.
func WindowStart(now int64, periodSeconds uint32) int64 {
	p := int64(periodSeconds)
	m := now % p
	if m < 0 { // floor for times before 1970, so windows stay aligned
		m += p
	}
	return now - m
}

// sortApps sorts and de-duplicates hashes in place, skipping the work when
// they are already strictly increasing (the common case for loaded data).
func sortApps(h []uint64) []uint64 {
	for i := 1; i < len(h); i++ {
		if h[i-1] >= h[i] {
			slices.Sort(h)
			return slices.Compact(h)
		}
	}
	return h
}

// Store reads profiles and counts frequency caps. Implementations are safe
// for concurrent use.
type Store interface {
	// Get fills dst with the profile of device. It returns ErrNotFound when
	// there is none (dst is then empty), ErrTimeout when ctx's deadline
	// passes first, or another error wrapped with context.
	Get(ctx context.Context, device string, dst *Profile) error
	// IncrementCap adds one impression of campaignID for device in the
	// window of length periodSeconds containing now (unix seconds).
	IncrementCap(ctx context.Context, device, campaignID string, periodSeconds uint32, now int64) error
	// Stats returns a snapshot of the store's counters.
	Stats() Stats
	// Name identifies the store in logs and metrics (never a secret).
	Name() string
	// Close releases connections and memory. Calls after Close fail.
	Close() error
}

// InMemory marks a store whose Get answers from local memory without
// blocking. The edge skips the per-request deadline context (a timer, about
// 6% of the request's CPU) for such stores: there is nothing to wait for.
type InMemory interface {
	InMemory()
}

// Putter is implemented by stores that accept profile writes (the
// Aerospike store); the loader uses it, the edge never does.
type Putter interface {
	// PutProfile writes the segments and installed apps of device,
	// replacing previous ones and leaving frequency caps untouched.
	PutProfile(ctx context.Context, device string, p *Profile) error
}

// Stats is a point-in-time copy of a store's counters, for metrics.
type Stats struct {
	Gets          uint64 // Get calls
	Hits          uint64 // Get calls that returned a profile
	Misses        uint64 // Get calls that returned ErrNotFound
	Timeouts      uint64 // Get calls that returned ErrTimeout
	Errors        uint64 // Get calls that failed otherwise
	CapIncrements uint64 // successful IncrementCap calls
	CapErrors     uint64 // failed IncrementCap calls (timeouts included)
	// Unreachable is true while the backend refuses connections and calls
	// are shed (ErrUnavailable); Shed counts the calls shed so far and
	// BreakerTrips how often that started.
	Unreachable  bool
	Shed         uint64
	BreakerTrips uint64
	// Busy counts reads Bounded shed at once because its adaptive limit
	// of pending reads was reached (the store is slow); they are counted
	// in Timeouts too.
	Busy uint64
}

// counters backs Stats with atomics; stores embed it.
type counters struct {
	gets, hits, misses, timeouts, errors atomic.Uint64
	capIncrements, capErrors             atomic.Uint64
}

// Stats implements Store.Stats.
func (c *counters) Stats() Stats {
	return Stats{
		Gets:          c.gets.Load(),
		Hits:          c.hits.Load(),
		Misses:        c.misses.Load(),
		Timeouts:      c.timeouts.Load(),
		Errors:        c.errors.Load(),
		CapIncrements: c.capIncrements.Load(),
		CapErrors:     c.capErrors.Load(),
	}
}

// countGet classifies the outcome of one Get and returns err unchanged.
func (c *counters) countGet(err error) error {
	c.gets.Add(1)
	switch {
	case err == nil:
		c.hits.Add(1)
	case errors.Is(err, ErrNotFound):
		c.misses.Add(1)
	case errors.Is(err, ErrTimeout):
		c.timeouts.Add(1)
	default:
		c.errors.Add(1)
	}
	return err
}

// countCap classifies the outcome of one IncrementCap.
func (c *counters) countCap(err error) error {
	if err == nil {
		c.capIncrements.Add(1)
	} else {
		c.capErrors.Add(1)
	}
	return err
}

// ctxErr maps a finished context to the package's errors.
func ctxErr(ctx context.Context, op string) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	return fmt.Errorf("profiles: %s: %w", op, err)
}

// checkCapArgs validates IncrementCap arguments shared by all stores.
// Campaign ids must not contain ':' because the Aerospike layout uses it
// to separate the campaign from its window (see docs/PROFILES.md); the
// rule applies to every store so behaviour doesn't depend on the backend.
func checkCapArgs(device, campaignID string, periodSeconds uint32, now int64) error {
	switch {
	case now < 0:
		return fmt.Errorf("%w: negative time %d", ErrInvalid, now)
	case device == "":
		return fmt.Errorf("%w: empty device id", ErrInvalid)
	case campaignID == "":
		return fmt.Errorf("%w: empty campaign id", ErrInvalid)
	case strings.IndexByte(campaignID, ':') >= 0:
		return fmt.Errorf("%w: campaign id %q contains ':'", ErrInvalid, campaignID)
	case periodSeconds == 0:
		return fmt.Errorf("%w: cap period is 0 for campaign %q", ErrInvalid, campaignID)
	}
	return nil
}

// Open returns the store described by spec:
//
//	none                                       no profiles (always ErrNotFound)
//	file:PATH                                  profiles.jsonl loaded into memory
//	aerospike://HOST:PORT[,HOST:PORT...]/NAMESPACE/SET[?OPTIONS]
//
// Aerospike options are described in docs/PROFILES.md.
func Open(spec string) (Store, error) {
	switch {
	case spec == "none":
		return NewNone(), nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		if path == "" {
			return nil, fmt.Errorf("profiles: store spec %q: empty file path (want file:PATH)", spec)
		}
		s, err := OpenFile(path)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	case strings.HasPrefix(spec, "aerospike://"):
		cfg, err := ParseAerospikeSpec(spec)
		if err != nil {
			return nil, err
		}
		s, err := OpenAerospike(cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	case spec == "":
		return nil, errors.New("profiles: empty store spec: want none, file:PATH or aerospike://HOST:PORT[,HOST:PORT...]/NAMESPACE/SET")
	default:
		return nil, fmt.Errorf("profiles: unknown store spec %q: want none, file:PATH or aerospike://HOST:PORT[,HOST:PORT...]/NAMESPACE/SET", spec)
	}
}
