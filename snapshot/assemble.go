package snapshot

import (
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// StringTable accumulates the STRINGS section. Add deduplicates (for
// low-cardinality strings: advertisers, apps, countries); AddUnique does not
// (ids and URLs, where a dedup map would cost more than it saves).
type StringTable struct {
	buf   []byte
	dedup map[string]StrRef
}

// Grow reserves room for n more bytes, so a builder that knows its total
// avoids the transient copies of append doubling a large buffer.
func (t *StringTable) Grow(n int) { t.buf = slices.Grow(t.buf, n) }

// Add stores s once and returns its reference.
func (t *StringTable) Add(s string) (StrRef, error) {
	if ref, ok := t.dedup[s]; ok {
		return ref, nil
	}
	ref, err := t.AddUnique(s)
	if err != nil {
		return ref, err
	}
	if t.dedup == nil {
		t.dedup = make(map[string]StrRef)
	}
	t.dedup[s] = ref
	return ref, nil
}

// AddUnique appends s without deduplication.
func (t *StringTable) AddUnique(s string) (StrRef, error) {
	if len(s) == 0 {
		return StrRef{}, nil
	}
	if uint64(len(t.buf))+uint64(len(s)) > math.MaxUint32 {
		return StrRef{}, fmt.Errorf("snapshot: string table exceeds 4 GiB")
	}
	ref := StrRef{Off: uint32(len(t.buf)), Len: uint32(len(s))}
	t.buf = append(t.buf, s...)
	return ref, nil
}

// Bytes is the section content.
func (t *StringTable) Bytes() []byte { return t.buf }

// U32Pool accumulates the U32POOL section.
type U32Pool struct{ buf []byte }

// Add appends vs and returns their reference.
func (p *U32Pool) Add(vs []uint32) (ListRef, error) {
	if len(vs) == 0 {
		return ListRef{}, nil
	}
	off := len(p.buf) / 4
	if uint64(off)+uint64(len(vs)) > math.MaxUint32 {
		return ListRef{}, fmt.Errorf("snapshot: u32 pool exceeds 2^32 elements")
	}
	for _, v := range vs {
		p.buf = AppendU32(p.buf, v)
	}
	return ListRef{Off: uint32(off), Len: uint32(len(vs))}, nil
}

// Grow reserves room for n more elements.
func (p *U32Pool) Grow(n int) { p.buf = slices.Grow(p.buf, 4*n) }

// Len is the number of elements so far.
func (p *U32Pool) Len() int { return len(p.buf) / 4 }

// Bytes is the section content.
func (p *U32Pool) Bytes() []byte { return p.buf }

// BuildPlacementIndex returns the PLACEMENT_INDEX section for placements
// whose ids are given in record order: a power-of-two table at most half
// full, so a miss ends after a couple of probes on average.
func BuildPlacementIndex(ids []string) []byte {
	n := 1
	for n < 2*len(ids) {
		n <<= 1
	}
	if len(ids) == 0 {
		n = 0
	}
	b := make([]byte, n*SlotSize)
	mask := n - 1
	for i, id := range ids {
		h := xxhash.Sum64String(id)
		j := int(h) & mask
		for le.Uint32(b[j*SlotSize+8:]) != 0 {
			j = (j + 1) & mask
		}
		le.PutUint64(b[j*SlotSize:], h)
		le.PutUint32(b[j*SlotSize+8:], uint32(i+1))
	}
	return b
}
