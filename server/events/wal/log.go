package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors an append returns; all of them mean "not recorded".
var (
	// ErrFull: the log is at its MaxBytes bound and nothing released can go.
	ErrFull = errors.New("wal: over the size bound")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrTooLarge: a payload over MaxRecord (or empty).
	ErrTooLarge = errors.New("wal: record empty or over MaxRecord")
	// ErrBadFrame: AppendFramed was given bytes that are not whole frames.
	ErrBadFrame = errors.New("wal: framed bytes end mid-frame or carry a bad length")
)

// Options configure a Log. Zero values take the defaults.
type Options struct {
	// SegmentBytes rotates a segment once it holds this many bytes
	// (default 64 MiB).
	SegmentBytes int64
	// SegmentAge rotates a non-empty segment this long after it was opened
	// (default 1h), so a quiet edge still closes files the shipper can
	// forget.
	SegmentAge time.Duration
	// MaxBytes bounds the segments' total size (default 8 GiB). Appends past
	// it first delete the oldest segments wholly before Release's mark,
	// then fail with ErrFull.
	MaxBytes int64
	// FsyncInterval is the group commit: data written since the last fsync
	// is fsync'd at most this long after it was written (default 10 ms).
	// Negative: fsync inside every append (slow; for comparison).
	FsyncInterval time.Duration
	// BlockingFsync uses fsync(2) even where Linux AIO can run it without
	// holding a P (Stats.AIOFsync; comparisons and tests).
	BlockingFsync bool
	// OnRecord, if set, sees every valid record found while recovering
	// (the edge rebuilds its recent-id set from it).
	OnRecord func(payload []byte)
	// Now is the clock (tests).
	Now func() time.Time

	// syncDir fsyncs the log's directory (tests count the calls).
	syncDir func(dir string) error
}

func (o *Options) defaults() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 8 << 30
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = 10 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.syncDir == nil {
		o.syncDir = syncDir
	}
}

// Pos is a place in the log: a segment number and a byte offset in it.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Less orders positions.
func (p Pos) Less(q Pos) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Recovery is what Open found in the segments already on disk.
type Recovery struct {
	Segments     int
	Records      int64
	Bytes        int64
	TornBytes    int64 // cut from segment tails
	DamagedSpans []Span
	Took         time.Duration
}

// DamagedBytes sums the damaged spans.
func (r *Recovery) DamagedBytes() int64 {
	var n int64
	for _, s := range r.DamagedSpans {
		n += s.Len
	}
	return n
}

// Log is an open event log; safe for concurrent use.
type Log struct {
	dir string
	opt Options

	mu       sync.Mutex
	f        *os.File
	seg      uint64
	off      int64 // bytes in the current segment
	opened   time.Time
	segs     []segInfo // closed segments, oldest first
	total    int64     // bytes in all segments, the current one included
	released Pos       // segments wholly before this may be deleted
	closed   bool
	broken   error // the next append starts a new segment: a write could not be cut back, or no segment is open (disk full at Open; f is nil)
	buf      []byte
	toClose  []*os.File // rotated out, fsync'd and closed by the syncer
	dirDirty bool       // a segment was created since the directory was last fsync'd

	written atomic.Int64  // bytes written to the OS, ever (this process)
	synced  atomic.Int64  // of those, fsync'd
	head    atomic.Uint64 // Pos packed: segment<<40 | offset

	appends, appendErrs, fsyncs, fsyncErrs, deleted atomic.Int64

	syncMu sync.Mutex
	aio    atomic.Pointer[aioFsync] // nil: fsync(2)
	noAIO  string                   // why not AIO, for the operator
	stop   chan struct{}
	done   chan struct{}
}

type segInfo struct {
	n    uint64
	size int64
}

func segName(n uint64) string { return fmt.Sprintf("%08d.seg", n) }

// Segments lists the segment numbers in dir, oldest first.
func Segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".seg") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Open recovers the log in dir (created if missing) and opens a new segment
// for appending. Every existing segment is scanned: a torn tail is cut back
// to the last valid record, damaged spans are left in place (readers skip
// them the same way) and reported.
func Open(dir string, opt Options) (*Log, *Recovery, error) {
	opt.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	l := &Log{dir: dir, opt: opt, stop: make(chan struct{}), done: make(chan struct{})}
	rec := &Recovery{}
	nums, err := Segments(dir)
	if err != nil {
		return nil, nil, err
	}
	var buf []byte
	for _, n := range nums {
		size, err := recoverSegment(dir, n, rec, opt.OnRecord, &buf)
		if err != nil {
			return nil, nil, err
		}
		l.segs = append(l.segs, segInfo{n, size})
		l.total += size
		l.seg = n
	}
	rec.Segments = len(nums)
	rec.Bytes = l.total
	l.mu.Lock()
	err = l.openSegment(l.seg + 1)
	if errors.Is(err, syscall.ENOSPC) {
		// A full disk must not keep the edge from starting (ads serve
		// without the log): appends fail with ENOSPC and open the segment
		// once there is room (space freed, or shipped segments released).
		l.broken = err
		if len(l.segs) > 0 {
			l.head.Store(packPos(Pos{Segment: l.seg, Offset: l.segs[len(l.segs)-1].size}))
		}
		err = nil
	}
	l.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	rec.Took = time.Since(start)
	if opt.BlockingFsync {
		l.noAIO = "BlockingFsync set"
	} else if a, err := newAIOFsync(); err != nil {
		l.noAIO = err.Error()
	} else {
		l.aio.Store(a)
	}
	go l.syncLoop()
	return l, rec, nil
}

// recoverSegment scans one segment, cuts its torn tail, and returns its
// size afterwards.
func recoverSegment(dir string, n uint64, rec *Recovery, fn func([]byte), buf *[]byte) (int64, error) {
	path := filepath.Join(dir, segName(n))
	b, err := readInto(path, buf)
	if err != nil {
		return 0, err
	}
	start := int64(0)
	if len(b) >= len(segHeader) && string(b[:len(segHeader)]) == segHeader {
		start = int64(len(segHeader))
	}
	var cb func([]byte, int64) bool
	if fn != nil {
		cb = func(p []byte, _ int64) bool { fn(p); return true }
	}
	r := scan(n, b, start, cb)
	rec.Records += r.records
	rec.DamagedSpans = append(rec.DamagedSpans, r.damaged...)
	size := int64(len(b))
	if r.torn > 0 {
		rec.TornBytes += r.torn
		size = int64(len(b)) - r.torn
		if size < int64(len(segHeader)) && r.records == 0 {
			size = 0
		}
		if err := os.Truncate(path, size); err != nil {
			return 0, fmt.Errorf("wal: cut torn tail of %s: %w", path, err)
		}
	}
	return size, nil
}

// readInto reads a whole file into *buf, reusing its memory.
func readInto(path string, buf *[]byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(cap(*buf)) < fi.Size() {
		*buf = make([]byte, fi.Size())
	}
	b := (*buf)[:fi.Size()]
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:n], nil
}

// openSegment starts segment n; l.mu held.
func (l *Log) openSegment(n uint64) error {
	path := filepath.Join(l.dir, segName(n))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(segHeader), 0); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	// The new name reaches the disk with the next Sync, outside l.mu, as
	// the records written to it do: a directory fsync here held every
	// append (pixels waiting to be answered) for as long as a busy disk
	// took, up to seconds.
	l.dirDirty = true
	if l.f != nil {
		l.segs = append(l.segs, segInfo{l.seg, l.off})
		l.toClose = append(l.toClose, l.f)
	}
	l.f, l.seg, l.off, l.opened = f, n, int64(len(segHeader)), l.opt.Now()
	l.total += int64(len(segHeader))
	l.written.Add(int64(len(segHeader)))
	l.head.Store(packPos(Pos{Segment: n, Offset: l.off}))
	l.broken = nil
	return nil
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append writes one record to the OS (it survives a crash of this process
// when Append returns nil) and returns the position just past it. The
// record is fsync'd within FsyncInterval.
func (l *Log) Append(payload []byte) (Pos, error) {
	if len(payload) == 0 || len(payload) > MaxRecord {
		l.appendErrs.Add(1)
		return Pos{}, ErrTooLarge
	}
	l.mu.Lock()
	l.buf = appendFrame(l.buf[:0], payload)
	p, err := l.writeLocked(l.buf, 1)
	l.mu.Unlock()
	if err == nil && l.opt.FsyncInterval < 0 {
		err = l.Sync()
	}
	return p, err
}

// AppendBatch writes several records with one write; all or none are
// recorded. Payloads over MaxRecord fail the batch.
func (l *Log) AppendBatch(payloads [][]byte) (Pos, error) {
	l.mu.Lock()
	b := l.buf[:0]
	for _, p := range payloads {
		if len(p) == 0 || len(p) > MaxRecord {
			l.mu.Unlock()
			l.appendErrs.Add(int64(len(payloads)))
			return Pos{}, ErrTooLarge
		}
		b = appendFrame(b, p)
	}
	l.buf = b
	p, err := l.writeLocked(b, int64(len(payloads)))
	l.mu.Unlock()
	if err == nil && l.opt.FsyncInterval < 0 {
		err = l.Sync()
	}
	return p, err
}

// AppendFramed writes records already framed (SealFrame), as many per
// write as fit in the current segment, so segments still rotate at
// SegmentBytes. It returns how many leading records were written; an error
// means the rest were not. A frame whose header does not match its bytes
// fails the call (ErrBadFrame) before anything of it is written.
func (l *Log) AppendFramed(b []byte) (int, error) {
	for p := 0; p < len(b); {
		size, ok := framedSize(b[p:])
		if !ok {
			l.appendErrs.Add(1)
			return 0, ErrBadFrame
		}
		p += size
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	written := 0
	for len(b) > 0 {
		room := l.opt.SegmentBytes - l.off
		end, k := 0, 0
		for end < len(b) {
			size, _ := framedSize(b[end:])
			if k > 0 && int64(end+size) > room {
				break
			}
			end += size
			k++
		}
		if _, err := l.writeLocked(b[:end], int64(k)); err != nil {
			return written, err
		}
		written += k
		b = b[end:]
	}
	return written, nil
}

// framedSize is the size of the frame at b[0] by its length field, checked
// against MaxRecord and len(b) (the checksum is the reader's to check).
func framedSize(b []byte) (int, bool) {
	if len(b) < FrameHeader {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[0:4]))
	if n == 0 || n > MaxRecord || FrameHeader+n > len(b) {
		return 0, false
	}
	return FrameHeader + n, true
}

// writeLocked writes framed bytes at the current offset, rotating and
// enforcing the bound first. On a failed or short write the segment is cut
// back, so a full disk leaves no partial record behind.
func (l *Log) writeLocked(b []byte, n int64) (Pos, error) {
	fail := func(err error) (Pos, error) {
		l.appendErrs.Add(n)
		return Pos{}, err
	}
	if l.closed {
		return fail(ErrClosed)
	}
	if l.broken != nil || l.off+int64(len(b)) > l.opt.SegmentBytes && l.off > int64(len(segHeader)) ||
		l.off > int64(len(segHeader)) && l.opt.Now().Sub(l.opened) >= l.opt.SegmentAge {
		err := l.openSegment(l.seg + 1)
		if errors.Is(err, syscall.ENOSPC) && l.deleteReleasedLocked() > 0 {
			err = l.openSegment(l.seg + 1) // shipped segments made room
		}
		if err != nil {
			return fail(err)
		}
	}
	if l.total+int64(len(b)) > l.opt.MaxBytes {
		l.deleteReleasedLocked()
		if l.total+int64(len(b)) > l.opt.MaxBytes {
			return fail(ErrFull)
		}
	}
	err := l.writeAtLocked(b)
	if errors.Is(err, syscall.ENOSPC) && l.broken == nil && l.deleteReleasedLocked() > 0 {
		err = l.writeAtLocked(b) // the disk is full: shipped segments made room
	}
	if err != nil {
		return fail(err)
	}
	w := len(b)
	l.off += int64(w)
	l.total += int64(w)
	l.written.Add(int64(w))
	l.appends.Add(n)
	p := Pos{Segment: l.seg, Offset: l.off}
	l.head.Store(packPos(p))
	return p, nil
}

// writeAtLocked writes b at the current offset. A failed or short write
// (ENOSPC mid-record) is cut back to the offset, so no partial record is
// left behind; if even that fails the segment is marked broken and the next
// append starts a new one.
func (l *Log) writeAtLocked(b []byte) error {
	w, err := l.f.WriteAt(b, l.off)
	if err == nil && w == len(b) {
		return nil
	}
	if err == nil {
		err = errors.New("wal: short write")
	}
	if terr := l.f.Truncate(l.off); terr != nil {
		l.broken = terr
	}
	return err
}

// deleteReleasedLocked removes the oldest closed segments that lie wholly
// before the release mark and returns how many went. It runs when the
// bound is reached and when the disk is full (ENOSPC).
func (l *Log) deleteReleasedLocked() int {
	n := 0
	for len(l.segs) > 0 && l.segs[0].n < l.released.Segment {
		s := l.segs[0]
		path := filepath.Join(l.dir, segName(s.n))
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			break
		}
		// A removed file's blocks come back only when it is closed: a
		// rotated segment the syncer has not closed yet is closed here
		// (it was shipped; it needs no fsync), or a full disk stays full.
		for i, f := range l.toClose {
			if f.Name() == path {
				f.Close()
				l.toClose = append(l.toClose[:i], l.toClose[i+1:]...)
				break
			}
		}
		l.segs = l.segs[1:]
		l.total -= s.size
		l.deleted.Add(1)
		n++
	}
	return n
}

// Release marks everything before p as no longer needed (shipped): those
// segments are deleted when the log needs the room.
func (l *Log) Release(p Pos) {
	l.mu.Lock()
	if l.released.Less(p) {
		l.released = p
	}
	l.mu.Unlock()
}

// Head is the position just past the last record written to the OS:
// readers in this process read up to it.
func (l *Log) Head() Pos {
	v := l.head.Load()
	return Pos{Segment: v >> 40, Offset: int64(v & (1<<40 - 1))}
}

func packPos(p Pos) uint64 { return p.Segment<<40 | uint64(p.Offset) }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Sync fsyncs everything written so far.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	f, old, dir := l.f, l.toClose, l.dirDirty
	l.toClose, l.dirDirty = nil, false
	target := l.written.Load()
	closed := l.closed
	l.mu.Unlock()
	var first error
	for _, o := range old {
		if err := l.fsyncFile(o); err != nil && first == nil {
			first = err
		}
		o.Close()
	}
	if target > l.synced.Load() && !closed && f != nil {
		l.fsyncs.Add(1)
		if err := l.fsyncFile(f); err != nil && first == nil {
			first = err
		}
	}
	if dir {
		if err := l.opt.syncDir(l.dir); err != nil {
			l.mu.Lock()
			l.dirDirty = true // try again with the next Sync
			l.mu.Unlock()
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		l.fsyncErrs.Add(1)
		return first
	}
	l.synced.Store(target)
	return nil
}

// fsyncFile flushes f through AIO where the kernel takes it, else with
// fsync(2). A kernel that refuses AIO fsync (before 4.18) is asked once.
// Callers hold syncMu.
func (l *Log) fsyncFile(f *os.File) error {
	if a := l.aio.Load(); a != nil {
		err := a.fsync(f)
		if !errors.Is(err, errNoAIO) {
			return err
		}
		l.noAIO = err.Error()
		l.aio.Store(nil)
		a.close()
	}
	return f.Sync()
}

// FsyncMode says how the log fsyncs, for the operator's start-up line:
// "aio", or "fsync(2)" with the reason AIO is not used.
func (l *Log) FsyncMode() string {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.aio.Load() != nil {
		return "aio"
	}
	return "fsync(2) (" + l.noAIO + ")"
}

func (l *Log) syncLoop() {
	defer close(l.done)
	iv := l.opt.FsyncInterval
	if iv < 0 {
		iv = time.Second // appends fsync themselves; this only closes rotated files
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.written.Load() > l.synced.Load() || l.pendingClose() {
				_ = l.Sync()
			}
		}
	}
}

func (l *Log) pendingClose() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.toClose) > 0 || l.dirDirty
}

// Close fsyncs and closes the log; later appends fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	err := l.Sync()
	l.syncMu.Lock()
	l.mu.Lock()
	l.closed = true
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	}
	l.mu.Unlock()
	if a := l.aio.Swap(nil); a != nil {
		a.close()
	}
	l.syncMu.Unlock()
	return err
}

// Stats is a point-in-time view for metrics and /health.
type Stats struct {
	Bytes, MaxBytes     int64
	Segments            int
	Head, Released      Pos
	Appends, AppendErrs int64
	Fsyncs, FsyncErrs   int64
	Unsynced            int64 // bytes written but not yet fsync'd
	Deleted             int64 // segments deleted after release
	AIOFsync            bool  // fsync runs through Linux AIO (holds no P while the disk flushes)
}

// Stats reports the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	s := Stats{Bytes: l.total, MaxBytes: l.opt.MaxBytes, Segments: len(l.segs) + 1, Released: l.released}
	l.mu.Unlock()
	s.Head = l.Head()
	s.Appends, s.AppendErrs = l.appends.Load(), l.appendErrs.Load()
	s.Fsyncs, s.FsyncErrs = l.fsyncs.Load(), l.fsyncErrs.Load()
	s.Unsynced = l.written.Load() - l.synced.Load()
	s.Deleted = l.deleted.Load()
	s.AIOFsync = l.aio.Load() != nil
	return s
}
