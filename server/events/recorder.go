package events

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adedge/adedge/server/events/wal"
)

// Options configure a Recorder.
type Options struct {
	// Dir is the log directory (--events-dir).
	Dir string
	// Log tunes the segment log (fsync interval, rotation, bound).
	Log wal.Options
	// Window is how long ids are remembered: the token TTL.
	Window time.Duration
	// MaxIDs caps the recent-id set (default 32M).
	MaxIDs int
	// SampleAds is the share of ad decisions logged, (0, 1]; 0 is the
	// default 1 (all), negative logs none. A sampled record carries the
	// number of decisions it stands for. Impressions and clicks are never
	// sampled.
	SampleAds float64
	// Queue bounds decision and duplicate records waiting for the writer
	// (default 16384, and at most Queue*768 bytes of them); a full queue
	// drops and counts.
	Queue int
	// Gather is how long the writer lets queued records gather after the
	// first one before it writes them all at once (default 2ms). Waking
	// the writer per record cost an edge a goroutine switch and a write
	// syscall per ad request: under wrk, half its throughput.
	Gather time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Recorder writes an edge's events: impressions and clicks synchronously
// and exactly once per id, decisions and duplicates through a bounded
// queue that never blocks the request.
type Recorder struct {
	log    *wal.Log
	seen   *Seen
	now    func() time.Time
	every  uint64 // log one decision in every
	q      queue
	qDone  chan struct{}
	kick   chan struct{} // capacity 1: the first record since a drain wakes the writer
	armed  atomic.Bool   // a kick is pending or the writer is gathering
	gather time.Duration
	closed atomic.Bool
	wg     sync.WaitGroup

	// Counters (cumulative).
	tracked, trackFailed, duplicates  atomic.Int64
	adWritten, adDropped, adSampled   atomic.Int64
	asyncFailed, dupDropped, adErrors atomic.Int64
	lastFailMs                        atomic.Int64
	lastErr                           atomic.Pointer[string]
}

// asyncSize bounds a queued record; a decision record is ~150-300 bytes.
const asyncSize = 768

// queue holds the framed records waiting for the writer, back to back in
// one buffer: a request copies its record in once under the lock, and the
// writer swaps the buffer for its empty spare and hands it to the log in
// one call. (A channel of fixed 768-byte slots copied every record twice
// at its largest size and cost 2 us of a 7.6 us handler.)
type queue struct {
	mu       sync.Mutex
	buf      []byte // framed records
	n, ads   int    // records in buf; of them, decisions
	closed   bool   // Close has taken the last batch
	maxN     int
	maxBytes int
	// The writer's; the capacity the writer last used, reused.
	spare []byte
}

// put appends one framed record; false when the queue is full or closed.
func (q *queue) put(frame []byte, ad bool) bool {
	q.mu.Lock()
	if q.closed || q.n >= q.maxN || len(q.buf)+len(frame) > q.maxBytes {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, frame...)
	q.n++
	if ad {
		q.ads++
	}
	q.mu.Unlock()
	return true
}

// take swaps out everything queued (the writer's): its bytes stay valid
// until the next take. close marks the queue closed in the same step.
func (q *queue) take(close bool) (b []byte, n, ads int) {
	q.mu.Lock()
	b, n, ads = q.buf, q.n, q.ads
	q.buf, q.n, q.ads = q.spare[:0], 0, 0
	q.spare = b
	q.closed = q.closed || close
	q.mu.Unlock()
	return b, n, ads
}

// ErrNotRecorded wraps every reason a tracking event could not be logged.
var ErrNotRecorded = errors.New("events: not recorded")

// Open recovers the log in opt.Dir, rebuilds the recent-id set from it, and
// starts the queue writer.
func Open(opt Options) (*Recorder, *wal.Recovery, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Window <= 0 {
		opt.Window = 24 * time.Hour
	}
	if opt.Queue <= 0 {
		opt.Queue = 16384
	}
	if opt.Gather <= 0 {
		opt.Gather = 2 * time.Millisecond
	}
	r := &Recorder{seen: NewSeen(opt.Window, opt.MaxIDs), now: opt.Now, every: sampleEvery(opt.SampleAds),
		q: queue{maxN: opt.Queue, maxBytes: opt.Queue * asyncSize}, qDone: make(chan struct{}), kick: make(chan struct{}, 1), gather: opt.Gather}
	nowMs := opt.Now().UnixMilli()
	var ev Event
	lo := opt.Log
	lo.OnRecord = func(p []byte) {
		if ev.Decode(p) != nil || ev.Kind == KindAd || ev.Duplicate() {
			return
		}
		r.seen.Add(ev.ID.Key(ev.Kind), ev.Issued, nowMs)
	}
	if lo.Now == nil {
		lo.Now = opt.Now
	}
	l, rec, err := wal.Open(opt.Dir, lo)
	if err != nil {
		return nil, nil, err
	}
	r.log = l
	r.wg.Add(1)
	go r.writer()
	return r, rec, nil
}

func sampleEvery(rate float64) uint64 {
	switch {
	case rate < 0:
		return 0 // no decisions logged
	case rate == 0 || rate >= 1:
		return 1
	}
	return uint64(1/rate + 0.5)
}

// Log is the underlying segment log (the shipper reads it).
func (r *Recorder) Log() *wal.Log { return r.log }

// Seen is the recent-id set.
func (r *Recorder) Seen() *Seen { return r.seen }

// Track records an impression or click e (encoded into *scratch) before
// the pixel is answered. dup means the id was already recorded: answer as
// the first time, count nothing (a duplicate record is queued, droppable).
// An error means nothing was recorded: answer 503.
func (r *Recorder) Track(e *Event, scratch *[]byte) (dup bool, err error) {
	e.Flags &^= FlagDuplicate
	f, err := e.Append(append((*scratch)[:0], make([]byte, wal.FrameHeader)...))
	*scratch = f
	if err != nil {
		return false, r.failed(err)
	}
	b := f[wal.FrameHeader:]
	dup, err = r.seen.Do(e.ID.Key(e.Kind), e.Issued, e.Time, func() error {
		_, err := r.log.Append(b)
		return err
	})
	if err != nil {
		return false, r.failed(err)
	}
	if !dup {
		r.tracked.Add(1)
		return false, nil
	}
	r.duplicates.Add(1)
	e.Flags |= FlagDuplicate
	b[2] |= FlagDuplicate // the flags byte: no re-encode
	if !r.enqueue(f, false) {
		r.dupDropped.Add(1)
	}
	return true, nil
}

// failed counts a tracking event that could not be recorded and keeps the
// reason for /health (a failing pixel may allocate; a recorded one does not).
func (r *Recorder) failed(err error) error {
	r.trackFailed.Add(1)
	r.lastFailMs.Store(r.now().UnixMilli())
	msg := err.Error()
	r.lastErr.Store(&msg)
	return errors.Join(ErrNotRecorded, err)
}

// SampleAd reports whether decision number seq is to be logged (and the
// weight its record carries). Decide before building the record.
func (r *Recorder) SampleAd(seq uint64) (bool, uint32) {
	if r.every == 0 {
		return false, 0
	}
	if seq%r.every != 0 {
		r.adSampled.Add(1)
		return false, 0
	}
	return true, uint32(r.every)
}

// Decision queues a decision record; it never blocks. A full queue or a
// record over the slot size drops it (counted).
func (r *Recorder) Decision(e *Event, scratch *[]byte) {
	f, err := e.Append(append((*scratch)[:0], make([]byte, wal.FrameHeader)...))
	*scratch = f
	if err != nil {
		r.adErrors.Add(1)
		return
	}
	if !r.enqueue(f, true) {
		r.adDropped.Add(1)
		return
	}
}

// enqueue seals frame (FrameHeader bytes, then the record) and queues it
// for the writer; false when it is too large or the queue is full.
func (r *Recorder) enqueue(frame []byte, ad bool) bool {
	if len(frame) > wal.FrameHeader+asyncSize || wal.SealFrame(frame) != nil || !r.q.put(frame, ad) {
		return false
	}
	if !r.armed.Load() && r.armed.CompareAndSwap(false, true) {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// writer drains the queue into the log in batches: woken by the first
// record since its last drain, it lets records gather for r.gather, then
// writes everything queued. A busy edge pays one wake and a few writes per
// gather period, not a goroutine switch and a syscall per decision.
func (r *Recorder) writer() {
	defer r.wg.Done()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	gather := time.NewTimer(r.gather)
	gather.Stop()
	for {
		select {
		case <-r.kick:
			gather.Reset(r.gather)
			select {
			case <-gather.C:
			case <-r.qDone:
				r.drain(true)
				return
			}
			r.armed.Store(false) // before the drain: a record queued during it kicks again
			r.drain(false)
		case <-sweep.C:
			r.seen.Expire(r.now().UnixMilli())
		case <-r.qDone:
			r.drain(true)
			return
		}
	}
}

// drain writes every queued record; last closes the queue as it takes
// them, so a record queued after Close is refused, not lost.
func (r *Recorder) drain(last bool) {
	b, n, ads := r.q.take(last)
	if n == 0 {
		return
	}
	w, err := r.log.AppendFramed(b)
	if err == nil {
		r.adWritten.Add(int64(ads))
		return
	}
	// Which of the first w were decisions: read the kind byte of each.
	wa := 0
	for p, i := 0, 0; i < w; i++ {
		size := wal.FrameHeader + int(binary.LittleEndian.Uint32(b[p:]))
		if Kind(b[p+wal.FrameHeader+1]) == KindAd {
			wa++
		}
		p += size
	}
	r.adWritten.Add(int64(wa))
	r.asyncFailed.Add(int64(n - w))
	r.adDropped.Add(int64(ads - wa))
	r.dupDropped.Add(int64(n - w - (ads - wa)))
}

// Close stops taking records, writes what is queued, fsyncs and closes the
// log.
func (r *Recorder) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(r.qDone)
	r.wg.Wait()
	return r.log.Close()
}

// LastFailure is when a pixel last could not be recorded (zero: never);
// cheap enough for every health probe.
func (r *Recorder) LastFailure() time.Time {
	if ms := r.lastFailMs.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Stats are the recorder's counters for metrics and /health.
type Stats struct {
	Tracked, TrackFailed, Duplicates, DupDropped int64
	AdWritten, AdDropped, AdSampledOut, AdErrors int64
	LastFailure                                  time.Time // zero: never
	LastError                                    string    // why the last pixel was not recorded
	SeenIDs, SeenEvicted                         int64
	Log                                          wal.Stats
}

// Stats reads the counters.
func (r *Recorder) Stats() Stats {
	s := Stats{Tracked: r.tracked.Load(), TrackFailed: r.trackFailed.Load(), Duplicates: r.duplicates.Load(),
		DupDropped: r.dupDropped.Load(), AdWritten: r.adWritten.Load(), AdDropped: r.adDropped.Load(),
		AdSampledOut: r.adSampled.Load(), AdErrors: r.adErrors.Load(),
		SeenIDs: r.seen.Len(), SeenEvicted: r.seen.Evicted(), Log: r.log.Stats()}
	if ms := r.lastFailMs.Load(); ms != 0 {
		s.LastFailure = time.UnixMilli(ms)
	}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}
