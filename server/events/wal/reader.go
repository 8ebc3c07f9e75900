package wal

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Record is one payload read from the log and the position just past it
// (where a reader that has handled it resumes).
type Record struct {
	Payload []byte // valid until the reader's next call
	End     Pos
}

// Reader reads records in order from a position, skipping damaged spans
// the way recovery found them. It follows a live log when given its Head.
type Reader struct {
	dir   string
	pos   Pos
	limit func() Pos // nil: read every segment to its current size

	// Damaged lists the damaged spans passed over; Torn counts bytes at the
	// end of a segment that hold no valid record (a crashed writer's tail
	// that no Open has cut yet).
	Damaged []Span
	Torn    int64

	buf  []byte
	recs []Record
}

// NewReader reads dir from pos. limit, when set, is the live log's Head:
// the reader never reads past it. Without it every segment is read to its
// size on disk (an offline log).
func NewReader(dir string, pos Pos, limit func() Pos) *Reader {
	return &Reader{dir: dir, pos: pos, limit: limit}
}

// Pos is where the next read starts.
func (r *Reader) Pos() Pos { return r.pos }

// readChunk bounds one read; a chunk with no whole frame in it grows.
const readChunk = 4 << 20

// Next returns up to max records after the reader's position, or none when
// it has caught up (call again later for a live log). Payloads alias the
// reader's buffer until the next call.
func (r *Reader) Next(max int) ([]Record, error) {
	r.recs = r.recs[:0]
	for len(r.recs) == 0 {
		more, err := r.step(max)
		if err != nil || !more {
			return r.recs, err
		}
	}
	return r.recs, nil
}

// step reads from the current segment once; more is false when there is
// nothing further to read now.
func (r *Reader) step(max int) (more bool, err error) {
	var head Pos
	live := r.limit != nil
	if live {
		head = r.limit()
		if !r.pos.Less(head) {
			return false, nil
		}
	}
	nums, err := Segments(r.dir)
	if err != nil {
		return false, err
	}
	// The first segment at or after pos (older ones may have been deleted).
	i := 0
	for i < len(nums) && nums[i] < r.pos.Segment {
		i++
	}
	if i == len(nums) {
		return false, nil
	}
	if nums[i] != r.pos.Segment {
		r.pos = Pos{Segment: nums[i]}
	}
	last := i == len(nums)-1
	path := filepath.Join(r.dir, segName(r.pos.Segment))
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return true, nil // deleted under us: the next listing skips it
		}
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	end := fi.Size()
	if live && r.pos.Segment == head.Segment {
		end = min(end, head.Offset)
	}
	if r.pos.Offset == 0 {
		var h [len(segHeader)]byte
		if n, _ := f.ReadAt(h[:], 0); n == len(h) && string(h[:]) == segHeader {
			r.pos.Offset = int64(len(segHeader))
		}
	}
	if r.pos.Offset >= end {
		// Done with this segment once a newer one exists.
		if !last && (!live || r.pos.Segment < head.Segment) {
			r.pos = Pos{Segment: r.pos.Segment + 1}
			return true, nil
		}
		return false, nil
	}
	chunk := int64(readChunk)
	for {
		n := min(chunk, end-r.pos.Offset)
		if int64(cap(r.buf)) < n {
			r.buf = make([]byte, n)
		}
		b := r.buf[:n]
		if _, err := f.ReadAt(b, r.pos.Offset); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		atEnd := r.pos.Offset+n == end
		base := r.pos.Offset
		seg := r.pos.Segment
		res := scan(seg, b, 0, func(p []byte, e int64) bool {
			r.recs = append(r.recs, Record{Payload: p, End: Pos{Segment: seg, Offset: base + e}})
			return len(r.recs) < max
		})
		if res.records == 0 && !atEnd {
			chunk *= 2 // a damaged run longer than the chunk, or one big frame
			continue
		}
		for _, d := range res.damaged {
			d.Off += base
			r.Damaged = append(r.Damaged, d)
		}
		r.pos.Offset = base + res.good
		if atEnd && res.torn > 0 && len(r.recs) < max {
			// Nothing valid up to the end: a torn tail (or, for the live
			// segment of another process, a write in progress).
			if !last || !live {
				r.Torn += res.torn
				r.pos.Offset = end
			}
		}
		return true, nil
	}
}

// Between is the number of log bytes from a to b (a before b; 0 otherwise),
// measured on the segment files: the shipper's backlog.
func Between(dir string, a, b Pos) int64 {
	if !a.Less(b) {
		return 0
	}
	nums, err := Segments(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, s := range nums {
		if s < a.Segment || s > b.Segment {
			continue
		}
		size := b.Offset
		if s != b.Segment {
			fi, err := os.Stat(filepath.Join(dir, segName(s)))
			if err != nil {
				continue
			}
			size = fi.Size()
		}
		from := int64(0)
		if s == a.Segment {
			from = a.Offset
		}
		n += max(0, size-from)
	}
	return n
}
