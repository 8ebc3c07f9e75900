// Package eventlog moves access and event log lines off the request path: a
// bounded lock-free ring that producers write into without waiting, and one
// goroutine that drains it to a writer. When the ring is full a line is
// dropped and counted, never waited for.
package eventlog

import (
	"bufio"
	"context"
	"io"
	"sync/atomic"
	"time"
)

// LineSize is the fixed slot size; longer lines are cut (and end in "...").
const LineSize = 256

type slot struct {
	seq atomic.Uint64
	n   int
	b   [LineSize]byte
}

// Ring is a bounded multi-producer, single-consumer queue of log lines
// (Dmitry Vyukov's bounded queue: one atomic add per write, no locks).
type Ring struct {
	slots   []slot
	mask    uint64
	head    atomic.Uint64 // next write position
	tail    uint64        // next read position, consumer only
	dropped atomic.Uint64
	written atomic.Uint64
}

// New returns a ring of at least size slots (rounded up to a power of two).
func New(size int) *Ring {
	n := 1
	for n < size {
		n <<= 1
	}
	r := &Ring{slots: make([]slot, n), mask: uint64(n - 1)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Write copies line into the ring (without a trailing newline; the drainer
// adds one). It never blocks: a full ring drops the line and returns false.
func (r *Ring) Write(line []byte) bool {
	for {
		pos := r.head.Load()
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch {
		case seq == pos:
			if r.head.CompareAndSwap(pos, pos+1) {
				n := copy(s.b[:], line)
				if n < len(line) {
					copy(s.b[LineSize-3:], "...")
				}
				s.n = n
				s.seq.Store(pos + 1)
				return true
			}
		case seq < pos:
			r.dropped.Add(1)
			return false
		}
		// Another producer took pos; retry with the new head.
	}
}

// Dropped counts lines lost to a full ring.
func (r *Ring) Dropped() uint64 { return r.dropped.Load() }

// Written counts lines handed to the writer.
func (r *Ring) Written() uint64 { return r.written.Load() }

// drain writes every ready line to w and reports how many.
func (r *Ring) drain(w *bufio.Writer) int {
	n := 0
	for {
		s := &r.slots[r.tail&r.mask]
		if s.seq.Load() != r.tail+1 {
			return n
		}
		_, _ = w.Write(s.b[:s.n])
		_ = w.WriteByte('\n')
		s.seq.Store(r.tail + r.mask + 1)
		r.tail++
		n++
	}
}

// Run drains the ring to w every interval until ctx ends, then drains what
// is left and flushes. Only one Run may be active.
func (r *Ring) Run(ctx context.Context, w io.Writer, interval time.Duration) {
	bw := bufio.NewWriterSize(w, 64<<10)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.written.Add(uint64(r.drain(bw)))
			_ = bw.Flush()
			return
		case <-t.C:
			if n := r.drain(bw); n > 0 {
				r.written.Add(uint64(n))
				_ = bw.Flush()
			}
		}
	}
}
