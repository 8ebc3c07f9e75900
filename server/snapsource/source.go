// Package snapsource keeps the edge's current snapshot: it loads the newest
// good *.snap in a directory, swaps in newer ones as they arrive, and unmaps an
// old one only after the last request using it lets go.
//
// Requests call Acquire and Release around their use of a snapshot. Both are
// lock-free and allocation-free: an atomic pointer to the current Snap plus a
// per-Snap atomic reference count. Everything else (scanning, verifying,
// swapping, pruning) runs on the control plane under one mutex.
package snapsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adedge/adedge/snapshot"
)

// ErrClosed is returned by Reload and Prune after Close.
var ErrClosed = errors.New("snapsource: source closed")

// settle is how long after its last modification a file counts as written
// completely when nothing else (a rename event, two equal polls) says so.
const settle = 500 * time.Millisecond

// dead marks a Snap whose mapping is gone. It is so negative that stray
// increments from racing Acquires can never bring the count back to zero.
const dead = math.MinInt64 / 2

// Snap is one open, verified snapshot shared by requests. The exported fields
// never change after the Snap is published; R and anything read from it are
// valid only between Acquire and Release.
type Snap struct {
	R        *snapshot.Reader
	Path     string
	Version  string
	Created  time.Time
	LoadedAt time.Time

	refs    atomic.Int64 // the source's reference plus one per request
	created int64        // header Created, unix seconds, for ordering
	src     *Source
	done    chan struct{} // closed once R is unmapped
}

// Release drops a reference taken by Acquire. The last one hands the unmap to
// a new goroutine, so a request never pays for munmap. Releasing twice panics:
// it would otherwise unmap memory another request is still reading.
func (s *Snap) Release() { s.release(false) }

func (s *Snap) release(inline bool) {
	n := s.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("snapsource: Snap released more times than acquired")
	}
	// Zero: no holder left. A racing Acquire may have bumped the count in the
	// meantime; then the CAS fails and that Acquire's own Release closes it.
	if !s.refs.CompareAndSwap(0, dead) {
		return
	}
	if inline {
		s.unmap()
	} else {
		go s.unmap()
	}
}

func (s *Snap) unmap() {
	err := s.R.Close()
	src := s.src
	src.liveMu.Lock()
	delete(src.live, s)
	open := len(src.live)
	src.liveMu.Unlock()
	close(s.done)
	src.log("snapshot_unmapped", "path", s.Path, "version", s.Version, "open", open, "err", err)
}

// Options configures a Source.
type Options struct {
	// Dir holds the snapshots; candidates are *.snap files directly in it.
	Dir string
	// Poll is the scan interval of Run (default 1s). Inotify, where
	// available, wakes Run sooner; polling stays as the fallback.
	Poll time.Duration
	// Log receives control-plane events (never called on the request path).
	// May be nil.
	Log func(event string, kv ...any)
	// OnSwap is called with the old and new versions ("" for none) after a
	// snapshot is installed, outside the source's lock. May be nil.
	OnSwap func(old, new string)
	// OnReject is called for each file that failed verification, outside the
	// source's lock. May be nil.
	OnReject func(path string, err error)
	// Pin, when set, is the version to serve instead of the newest (see
	// Source.Pin); the distribution layer sets it from the channel manifest.
	Pin string
}

// Stats is the source's state for /health, /metrics and the admin API.
type Stats struct {
	Version     string    // serving version; "" when nothing is served
	Created     time.Time // its header's data time
	LoadedAt    time.Time // when it was installed
	Swaps       uint64    // snapshots installed, the first load included
	Rejected    uint64    // files that failed verification
	LastError   string
	LastErrorAt time.Time
	Open        int // mappings still open: the current one plus old ones held by in-flight requests
}

// Source owns the current snapshot of a directory.
type Source struct {
	cur  atomic.Pointer[Snap]
	opts Options
	done chan struct{} // closed by Close; stops Run

	mu       sync.Mutex // serialises scans, Prune and Close
	closed   bool
	prev     map[string]fileKey // what the previous scan saw, for the two-poll rule
	rejected map[fileKey]error  // failed files, not retried until they change
	peeked   map[fileKey]peekResult

	pinned string // under mu: serve this version, not the newest (Pin)

	noteMu   sync.Mutex
	notified map[string]struct{} // names inotify reported complete since the last scan
	kick     chan struct{}

	liveMu sync.Mutex
	live   map[*Snap]struct{} // every Snap whose mapping is open

	statsMu     sync.Mutex
	swaps       uint64
	nRejected   uint64
	lastErr     string
	lastErrAt   time.Time
	openedTotal atomic.Uint64 // snapshot.Open calls, so tests can see retries
	scans       atomic.Uint64 // completed directory scans

	watch func(dir string, notify func(name string)) (io.Closer, error) // tests swap it out
}

// New loads the newest good snapshot in opts.Dir at once, falling back to
// older files when newer ones fail verification. An empty directory is not an
// error: Acquire returns nil until a snapshot appears. A missing or unreadable
// directory is, since polling it could never succeed.
func New(opts Options) (*Source, error) {
	if opts.Dir == "" {
		return nil, errors.New("snapsource: Options.Dir is empty")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	st, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("snapsource: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("snapsource: %s is not a directory", opts.Dir)
	}
	s := &Source{
		opts:     opts,
		done:     make(chan struct{}),
		prev:     map[string]fileKey{},
		rejected: map[fileKey]error{},
		peeked:   map[fileKey]peekResult{},
		notified: map[string]struct{}{},
		kick:     make(chan struct{}, 1),
		live:     map[*Snap]struct{}{},
		watch:    startWatch,
		pinned:   opts.Pin,
	}
	if _, err := s.scan(true); err != nil && !isRejection(err) {
		return nil, err
	}
	return s, nil
}

// Acquire returns the current snapshot with a reference taken, or nil when
// none is loaded. The caller must Release it. It never locks or allocates:
// load the pointer, count ourselves in, and recheck that the pointer did not
// move meanwhile (if it did, the Snap may already be on its way out).
func (s *Source) Acquire() *Snap {
	for {
		p := s.cur.Load()
		if p == nil {
			return nil
		}
		if p.refs.Add(1) <= 0 {
			// Already unmapped: the pointer has moved on; undo and retry.
			p.refs.Add(-1)
			continue
		}
		if s.cur.Load() == p {
			return p
		}
		p.release(false)
	}
}

// Stats returns a consistent-enough view for monitoring; it does not block
// behind a scan that is verifying a large file.
func (s *Source) Stats() Stats {
	var st Stats
	if p := s.cur.Load(); p != nil {
		// The descriptive fields are plain Go values, safe even if p gets
		// unmapped concurrently.
		st.Version, st.Created, st.LoadedAt = p.Version, p.Created, p.LoadedAt
	}
	s.statsMu.Lock()
	st.Swaps, st.Rejected, st.LastError, st.LastErrorAt = s.swaps, s.nRejected, s.lastErr, s.lastErrAt
	s.statsMu.Unlock()
	s.liveMu.Lock()
	st.Open = len(s.live)
	s.liveMu.Unlock()
	return st
}

// Close drops the source's reference to the current snapshot and stops Run.
// Mappings still held by requests close when those requests release them.
func (s *Source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	old := s.cur.Swap(nil)
	s.mu.Unlock()
	if old != nil {
		old.release(true)
	}
	return nil
}

// Run scans Dir every Poll, and sooner when inotify reports a file renamed or
// written into it, until ctx ends or the source is closed. Call it once.
func (s *Source) Run(ctx context.Context) {
	w, err := s.watch(s.opts.Dir, s.notify)
	if err != nil {
		s.log("snapshot_watch_unavailable", "dir", s.opts.Dir, "err", err, "poll", s.opts.Poll)
	} else {
		defer w.Close()
	}
	t := time.NewTicker(s.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		case <-s.kick:
		}
		_, _ = s.scan(false) // outcomes are logged and kept in Stats
	}
}

// Pin makes the source serve version (older or newer than the current one)
// as soon as a good file of it is in Dir, and nothing else while it is
// served: a channel's manifest, not file age, then decides what serves, so a
// rollback to an older snapshot takes effect. "" returns to newest-wins.
// It rescans at once and reports like Reload.
func (s *Source) Pin(version string) (swapped bool, err error) {
	s.mu.Lock()
	s.pinned = version
	s.mu.Unlock()
	return s.scan(true)
}

// Reload scans Dir now (admin /admin/reload, SIGHUP). Unlike a poll it does
// not wait for fresh files to settle. err reports files rejected by this scan
// (or, for newer files, by earlier ones) and failures to read Dir; the current
// snapshot keeps serving either way.
func (s *Source) Reload() (swapped bool, err error) { return s.scan(true) }

// notify records that name was completed in Dir (inotify) and wakes Run.
func (s *Source) notify(name string) {
	if name != "" {
		if !isCandidate(name) {
			return
		}
		s.noteMu.Lock()
		s.notified[name] = struct{}{}
		s.noteMu.Unlock()
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Source) log(event string, kv ...any) {
	if s.opts.Log != nil {
		s.opts.Log(event, kv...)
	}
}

func (s *Source) noteError(err error) {
	s.statsMu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), time.Now()
	s.statsMu.Unlock()
}
