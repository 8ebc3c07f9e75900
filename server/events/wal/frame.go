// Package wal is the edge's durable event log: append-only segment files of
// length- and checksum-framed records, written to the OS before an append
// returns, fsync'd by a group commit at most every interval, rotated by
// size and age, bounded in total bytes, and recovered on open (a torn tail
// is cut, a damaged span skipped and counted, never a panic).
//
// The model is Prometheus tsdb's wlog (numbered segments, a new segment on
// every open, readers that follow the writer); the frame is simpler (one
// record per frame, no page padding), so a reader resynchronises after
// damage by scanning for the next frame whose checksum holds.
//
// Segment file: an 8-byte header "ADEVLOG" + version byte 1, then frames:
//
//	0  uint32  payload length n (1..MaxRecord), little-endian
//	4  uint32  CRC-32C of bytes 0..3 and the payload
//	8  n bytes payload
package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// MaxRecord bounds one payload; an event record is a few hundred bytes, so a
// length over this is damage, not data.
const MaxRecord = 8192

// FrameHeader is the per-record overhead in bytes.
const FrameHeader = 8

const segHeader = "ADEVLOG\x01"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends payload framed to b.
func appendFrame(b, payload []byte) []byte {
	at := len(b)
	b = append(append(b, make([]byte, FrameHeader)...), payload...)
	_ = SealFrame(b[at:]) // callers have checked the payload's size
	return b
}

// SealFrame fills in the header of a frame built in place: b is
// FrameHeader reserved bytes followed by the payload. Callers that queue
// records for AppendFramed build them this way, so the checksum is computed
// by the request that made the record, outside any lock.
func SealFrame(b []byte) error {
	n := len(b) - FrameHeader
	if n <= 0 || n > MaxRecord {
		return ErrTooLarge
	}
	binary.LittleEndian.PutUint32(b[0:4], uint32(n))
	c := crc32.Update(0, castagnoli, b[0:4])
	c = crc32.Update(c, castagnoli, b[FrameHeader:])
	binary.LittleEndian.PutUint32(b[4:8], c)
	return nil
}

// frameAt reports whether a whole, valid frame starts at b[0]: its payload
// and total size. short is true when b ends before a frame whose header is
// plausible could end (more bytes may make it valid).
func frameAt(b []byte) (payload []byte, size int, short bool) {
	if len(b) < FrameHeader {
		return nil, 0, true
	}
	n := int(binary.LittleEndian.Uint32(b[0:4]))
	if n == 0 || n > MaxRecord {
		return nil, 0, false
	}
	if len(b) < FrameHeader+n {
		return nil, 0, true
	}
	c := crc32.Update(0, castagnoli, b[0:4])
	c = crc32.Update(c, castagnoli, b[FrameHeader:FrameHeader+n])
	if c != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, 0, false
	}
	return b[FrameHeader : FrameHeader+n], FrameHeader + n, false
}

// Span is a damaged byte range of a segment that readers skip.
type Span struct {
	Segment  uint64
	Off, Len int64
}

// scanResult is what scanning one segment's bytes found.
type scanResult struct {
	records int64
	good    int64 // offset just past the last valid frame (the cut point)
	damaged []Span
	torn    int64 // bytes after good with no valid frame following
}

// scan walks a whole segment's bytes from off, calling fn for every valid
// frame with its payload and the offset just past it. Invalid bytes followed
// by a valid frame are a damaged span; invalid bytes up to the end are the
// torn tail. fn may be nil.
func scan(seg uint64, b []byte, off int64, fn func(payload []byte, end int64) bool) scanResult {
	r := scanResult{good: off}
	p := int(off)
	bad := -1 // start of the current invalid run
	for p < len(b) {
		payload, size, _ := frameAt(b[p:])
		if size == 0 {
			if bad < 0 {
				bad = p
			}
			p++
			continue
		}
		if bad >= 0 {
			r.damaged = append(r.damaged, Span{Segment: seg, Off: int64(bad), Len: int64(p - bad)})
			bad = -1
		}
		p += size
		r.records++
		r.good = int64(p)
		if fn != nil && !fn(payload, int64(p)) {
			return r
		}
	}
	if bad >= 0 {
		r.torn = int64(len(b) - bad)
	}
	return r
}
