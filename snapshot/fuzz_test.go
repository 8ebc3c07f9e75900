package snapshot

import (
	"github.com/cespare/xxhash/v2"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to OpenBytes and, when a file is accepted,
// walks every accessor over every record: nothing may panic, hang or read out
// of bounds. Checksums make random mutations fail early, so the seed corpus
// includes the valid fixture; the fuzzer finds its way past the hashes only
// through the table, which is why accessors bounds-check on their own too.
func FuzzOpen(f *testing.F) {
	good := fixture{nPlacements: 6, nCampaigns: 5}.build(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(HeaderMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := OpenBytes(b)
		if err != nil {
			return
		}
		walk(r)
	})
}

// walk touches every accessor with every index, plus some out of range.
func walk(r *Reader) {
	_ = r.Header()
	for i := -1; i <= r.NumCampaigns(); i++ {
		c, _ := r.Campaign(i)
		_ = r.String(c.ID) + r.String(c.PromotedApp)
		for _, l := range []U32List{r.List(c.Creatives), r.List(c.Countries)} {
			for j := 0; j < l.Len(); j++ {
				_ = l.At(j)
			}
			_ = l.Contains(3)
		}
		_ = r.Advertiser(c.Advertiser) + r.Category(c.Category)
	}
	for i := -1; i <= r.NumCreatives(); i++ {
		c, _ := r.Creative(i)
		_ = r.String(c.ID) + r.String(c.AssetURL) + r.String(c.ClickURL)
		_, _ = r.LookupCreative(r.String(c.ID))
		_, _ = r.LookupCreativeBytes([]byte(r.String(c.ID) + "x"))
	}
	for i := -1; i <= r.NumPlacements(); i++ {
		p, _ := r.Placement(i)
		id := r.String(p.ID)
		_, _ = r.LookupPlacement(id)
		_, _ = r.LookupPlacementBytes([]byte(id + "x"))
		_ = r.List(p.BlockedAdvertisers).Contains(1)
		_ = r.List(p.BlockedCategories).Contains(1)
	}
	for i := uint32(0); i <= uint32(r.NumSegments()); i++ {
		_ = r.Segment(i)
	}
	for k := -1; k <= NumKeys; k++ {
		l := r.CandidatesAt(k)
		for j := 0; j < l.Len(); j++ {
			c := l.At(j)
			_, _ = r.Campaign(int(c.Campaign))
			_ = r.List(ListRef{c.CreativesOff, uint32(c.CreativesLen)})
		}
	}
	_ = r.ExperimentsJSON()
}

// reseal recomputes every checksum in b after a mutation, so the mutation
// reaches the structural checks and accessors instead of stopping at a hash.
// Offsets are trusted only as far as they lie inside b.
func reseal(b []byte) {
	if len(b) < HeaderSize+FooterSize {
		return
	}
	le.PutUint64(b[120:], xxhashSum(b[:120]))
	foot := b[len(b)-FooterSize:]
	tableOff := le.Uint64(foot[0:])
	n := uint64(le.Uint32(foot[8:]))
	if n > MaxSections || tableOff > uint64(len(b)) || n*TableEntrySize > uint64(len(b))-tableOff {
		return
	}
	table := b[tableOff : tableOff+n*TableEntrySize]
	for i := uint64(0); i < n; i++ {
		e := table[i*TableEntrySize:]
		off, length := le.Uint64(e[8:]), le.Uint64(e[16:])
		if off <= uint64(len(b)) && length <= uint64(len(b))-off {
			le.PutUint64(e[32:], xxhashSum(b[off:off+length]))
		}
	}
	le.PutUint64(foot[16:], xxhashSum(table))
}

// FuzzResealed flips bytes of a valid snapshot at fuzzer-chosen positions and
// re-seals the checksums, so hostile-but-consistent files (a crafted table,
// out-of-range references inside records) reach the accessors.
func FuzzResealed(f *testing.F) {
	good := fixture{nPlacements: 6, nCampaigns: 5}.build(f)
	f.Add(uint32(HeaderSize+2), []byte{0xff})
	f.Add(uint32(len(good)-FooterSize-40), []byte{0x7f, 0xff, 0xff})
	f.Add(uint32(len(good)-FooterSize+8), []byte{2})
	f.Fuzz(func(t *testing.T, pos uint32, patch []byte) {
		b := append([]byte(nil), good...)
		for i, x := range patch {
			b[(int(pos)+i)%len(b)] ^= x
		}
		reseal(b)
		r, err := OpenBytes(b)
		if err != nil {
			return
		}
		walk(r)
	})
}

func xxhashSum(b []byte) uint64 { return xxhash.Sum64(b) }
