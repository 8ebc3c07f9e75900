package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/edsrzf/mmap-go"
)

// Errors Open returns, each for a distinct way a file can be wrong. Use
// errors.Is; the wrapped message names the file and the detail.
var (
	ErrEmpty              = errors.New("snapshot file is empty (zero bytes)")
	ErrNotSnapshot        = errors.New("not an adedge snapshot (bad header magic)")
	ErrUnsupportedVersion = errors.New("unsupported snapshot format version or flags")
	ErrTruncated          = errors.New("snapshot truncated or extended (footer missing or file length mismatch)")
	ErrChecksum           = errors.New("snapshot checksum mismatch")
	ErrCorrupt            = errors.New("snapshot structure invalid")
)

// section is one verified section's bytes and record stride.
type section struct {
	b      []byte
	stride int
	n      int
}

func (s *section) rec(i int) ([]byte, bool) {
	if uint(i) >= uint(s.n) {
		return nil, false
	}
	o := i * s.stride
	return s.b[o : o+s.stride], true
}

// Reader serves lookups from a verified snapshot, in place: accessors copy
// fixed-size records out of the mapping and return strings that alias it, so
// nothing allocates. Strings and slices it returns are valid until Close.
//
// A Reader never trusts its input: Open checks magic, version, footer, table
// and every section checksum, and each accessor bounds-checks every offset
// it follows, returning zero values (and false) instead of panicking.
type Reader struct {
	mm   mmap.MMap
	data []byte
	hdr  Header
	info []SectionInfo

	strings     []byte
	u32pool     []byte
	advertisers section
	categories  section
	segments    section
	campaigns   section
	creatives   section
	placements  section
	slots       section
	keys        section
	cands       section
	pacing      section // optional (n == 0 when absent)
	media       section
	bundles     section
	experiments []byte
}

// Open maps path read-only and verifies it. The file must not be modified
// while mapped (writers replace snapshots by rename, never in place).
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrNotSnapshot)
	}
	mm, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	prefault(mm)
	r, err := parse(mm)
	if err != nil {
		_ = mm.Unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.mm = mm
	return r, nil
}

// OpenBytes verifies b and reads from it in place (tests, fuzzing, and
// snapshots already in memory). b must not change while the Reader is used.
func OpenBytes(b []byte) (*Reader, error) {
	if len(b) == 0 {
		return nil, ErrEmpty
	}
	return parse(b)
}

// Close unmaps the file. No accessor may be called, and no string or slice
// obtained from the Reader used, afterwards.
func (r *Reader) Close() error {
	if r.mm == nil {
		return nil
	}
	err := r.mm.Unmap()
	r.mm = nil
	r.data = nil
	return err
}

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

func parse(b []byte) (*Reader, error) {
	if len(b) < len(HeaderMagic) || string(b[:len(HeaderMagic)]) != HeaderMagic {
		return nil, ErrNotSnapshot
	}
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrTruncated, len(b), HeaderSize)
	}
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return nil, fmt.Errorf("%w: file has version %d, this reader knows version %d (upgrade adedge, or rebuild the snapshot with a matching adbuilder)", ErrUnsupportedVersion, v, FormatVersion)
	}
	if got, want := xxhash.Sum64(b[:120]), le.Uint64(b[120:]); got != want {
		return nil, fmt.Errorf("%w in header: computed %016x, stored %016x", ErrChecksum, got, want)
	}
	if fl := le.Uint32(b[84:]); fl&^KnownFlags != 0 {
		return nil, fmt.Errorf("%w: header flags %#x include bits %#x this reader does not know (upgrade adedge, or rebuild the snapshot with a matching adbuilder)", ErrUnsupportedVersion, fl, fl&^KnownFlags)
	}
	if hs := le.Uint32(b[12:]); hs != HeaderSize {
		return nil, corrupt("header size %d, want %d", hs, HeaderSize)
	}
	r := &Reader{data: b}
	r.hdr.FormatVersion = FormatVersion
	r.hdr.Created = int64(le.Uint64(b[16:]))
	r.hdr.ContentHash = le.Uint64(b[24:])
	vb := b[32 : 32+MaxVersionLen+1]
	if i := bytes.IndexByte(vb, 0); i >= 0 {
		vb = vb[:i]
	} else {
		return nil, corrupt("version string not terminated")
	}
	r.hdr.Version = string(vb)

	if len(b) < HeaderSize+FooterSize || string(b[len(b)-8:]) != FooterMagic {
		return nil, fmt.Errorf("%w: no footer magic at the end of the %d-byte file", ErrTruncated, len(b))
	}
	foot := b[len(b)-FooterSize:]
	if fl := le.Uint64(foot[24:]); fl != uint64(len(b)) {
		return nil, fmt.Errorf("%w: footer records %d bytes, file has %d", ErrTruncated, fl, len(b))
	}
	tableOff := le.Uint64(foot[0:])
	n := le.Uint32(foot[8:])
	if n > MaxSections {
		return nil, corrupt("%d sections, at most %d allowed", n, MaxSections)
	}
	tableEnd := tableOff + uint64(n)*TableEntrySize
	if tableOff < HeaderSize || tableEnd != uint64(len(b)-FooterSize) {
		return nil, corrupt("section table at %d+%d does not end at the footer (%d)", tableOff, uint64(n)*TableEntrySize, len(b)-FooterSize)
	}
	table := b[tableOff:tableEnd]
	if got, want := xxhash.Sum64(table), le.Uint64(foot[16:]); got != want {
		return nil, fmt.Errorf("%w in section table: computed %016x, stored %016x", ErrChecksum, got, want)
	}
	r.info = make([]SectionInfo, 0, n)
	seen := map[uint32]bool{}
	for i := uint32(0); i < n; i++ {
		e := table[i*TableEntrySize:]
		s := SectionInfo{
			ID: le.Uint32(e[0:]), RecordSize: le.Uint32(e[4:]), Offset: le.Uint64(e[8:]),
			Length: le.Uint64(e[16:]), Count: le.Uint64(e[24:]), XXHash64: le.Uint64(e[32:]),
		}
		name := SectionName(s.ID)
		if seen[s.ID] {
			return nil, corrupt("section %s (id %d) appears twice", name, s.ID)
		}
		seen[s.ID] = true
		if s.Offset < HeaderSize || s.Offset > tableOff || s.Length > tableOff-s.Offset {
			return nil, corrupt("section %s at %d+%d lies outside the data area [%d,%d)", name, s.Offset, s.Length, HeaderSize, tableOff)
		}
		if s.RecordSize > 0 {
			if s.Length%uint64(s.RecordSize) != 0 || s.Count != s.Length/uint64(s.RecordSize) {
				return nil, corrupt("section %s: %d bytes, %d-byte records, count %d disagree", name, s.Length, s.RecordSize, s.Count)
			}
		} else if s.Count != 0 {
			return nil, corrupt("blob section %s has a record count", name)
		}
		sb := b[s.Offset : s.Offset+s.Length]
		if got := yieldingSum64(sb); got != s.XXHash64 {
			return nil, fmt.Errorf("%w in section %s: computed %016x, stored %016x", ErrChecksum, name, got, s.XXHash64)
		}
		r.info = append(r.info, s)
		if err := r.attach(s, sb); err != nil {
			return nil, err
		}
	}
	for _, id := range []uint32{SecStrings, SecU32Pool, SecAdvertisers, SecCategories, SecSegments, SecCampaigns,
		SecCreatives, SecPlacements, SecPlacementIndex, SecCandidateIndex, SecCandidates, SecExperiments} {
		if !seen[id] {
			return nil, corrupt("required section %s missing", SectionName(id))
		}
	}
	if r.keys.n != NumKeys {
		return nil, corrupt("candidate index has %d keys, want %d", r.keys.n, NumKeys)
	}
	if r.slots.n != 0 && bits.OnesCount(uint(r.slots.n)) != 1 {
		return nil, corrupt("placement index has %d slots, not a power of two", r.slots.n)
	}
	if r.slots.n < r.placements.n {
		return nil, corrupt("placement index has %d slots for %d placements", r.slots.n, r.placements.n)
	}
	if r.segments.n > MaxSegments {
		return nil, corrupt("%d segments, at most %d", r.segments.n, MaxSegments)
	}
	if len(r.u32pool)%4 != 0 {
		return nil, corrupt("u32pool length %d not a multiple of 4", len(r.u32pool))
	}
	if r.pacing.n != 0 && r.pacing.n != r.campaigns.n {
		return nil, corrupt("pacing section has %d records for %d campaigns", r.pacing.n, r.campaigns.n)
	}
	if !json.Valid(r.experiments) {
		return nil, corrupt("experiments section is not valid JSON")
	}
	return r, nil
}

func (r *Reader) attach(s SectionInfo, b []byte) error {
	rec := func(dst *section, min int) error {
		if s.RecordSize < uint32(min) {
			return corrupt("section %s has %d-byte records, need at least %d", SectionName(s.ID), s.RecordSize, min)
		}
		if s.Count > 1<<31 {
			return corrupt("section %s has %d records", SectionName(s.ID), s.Count)
		}
		*dst = section{b: b, stride: int(s.RecordSize), n: int(s.Count)}
		return nil
	}
	switch s.ID {
	case SecStrings:
		r.strings = b
	case SecU32Pool:
		r.u32pool = b
	case SecExperiments:
		r.experiments = b
	case SecAdvertisers:
		return rec(&r.advertisers, RefSize)
	case SecCategories:
		return rec(&r.categories, RefSize)
	case SecSegments:
		return rec(&r.segments, RefSize)
	case SecCampaigns:
		return rec(&r.campaigns, CampaignSize)
	case SecCreatives:
		return rec(&r.creatives, CreativeSize)
	case SecPlacements:
		return rec(&r.placements, PlacementSize)
	case SecPlacementIndex:
		return rec(&r.slots, SlotSize)
	case SecCandidateIndex:
		return rec(&r.keys, RefSize)
	case SecCandidates:
		return rec(&r.cands, CandidateSize)
	case SecPacing:
		return rec(&r.pacing, PacingSize)
	case SecMediaFiles:
		return rec(&r.media, MediaFileSize)
	case SecBundles:
		return rec(&r.bundles, RefSize)
	}
	return nil // unknown sections: written by a newer compatible builder; skipped
}

// CampaignPacing returns campaign i's budget pacing fields: the zero
// record (defaults) when the snapshot has no PACING section; false when i
// is out of range.
func (r *Reader) CampaignPacing(i int) (CampaignPacing, bool) {
	var p CampaignPacing
	if i < 0 || i >= r.campaigns.n {
		return p, false
	}
	if r.pacing.n == 0 {
		return p, true
	}
	b, ok := r.pacing.rec(i)
	if !ok {
		return p, false
	}
	decodePacing(b, &p)
	return p, true
}

// HasPacing reports whether the snapshot carries a PACING section.
func (r *Reader) HasPacing() bool { return r.pacing.n != 0 }

// Header returns the snapshot's identity.
func (r *Reader) Header() Header { return r.hdr }

// Sections lists the section table in file order.
func (r *Reader) Sections() []SectionInfo { return r.info }

// Size is the file's length in bytes.
func (r *Reader) Size() int { return len(r.data) }

// Bytes is the whole mapped file (for hashing it, e.g. against a manifest).
func (r *Reader) Bytes() []byte { return r.data }

// String returns the string ref points at, aliasing the mapping ("" when the
// ref is out of bounds).
func (r *Reader) String(ref StrRef) string {
	end := uint64(ref.Off) + uint64(ref.Len)
	if end > uint64(len(r.strings)) || ref.Len == 0 {
		return ""
	}
	return unsafe.String(&r.strings[ref.Off], int(ref.Len))
}

// U32List is a list of uint32 read in place from the U32POOL section.
type U32List struct{ b []byte }

// Len is the number of elements.
func (l U32List) Len() int { return len(l.b) / 4 }

// At returns element i; i must be in [0, Len()).
func (l U32List) At(i int) uint32 { return le.Uint32(l.b[4*i:]) }

// Contains reports whether the ascending list holds v (binary search).
func (l U32List) Contains(v uint32) bool {
	lo, hi := 0, l.Len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		x := l.At(m)
		if x == v {
			return true
		}
		if x < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return false
}

// List returns the U32POOL elements ref points at (empty when out of bounds).
func (r *Reader) List(ref ListRef) U32List {
	start := uint64(ref.Off) * 4
	end := start + uint64(ref.Len)*4
	if end > uint64(len(r.u32pool)) {
		return U32List{}
	}
	return U32List{r.u32pool[start:end]}
}

func (r *Reader) dictString(s *section, i uint32) string {
	b, ok := s.rec(int(i))
	if !ok {
		return ""
	}
	return r.String(getStrRef(b))
}

// NumAdvertisers is the size of the advertiser dictionary.
func (r *Reader) NumAdvertisers() int { return r.advertisers.n }

// Advertiser returns advertiser i's name.
func (r *Reader) Advertiser(i uint32) string { return r.dictString(&r.advertisers, i) }

// NumCategories is the size of the category dictionary.
func (r *Reader) NumCategories() int { return r.categories.n }

// Category returns category i's name.
func (r *Reader) Category(i uint32) string { return r.dictString(&r.categories, i) }

// NumSegments is the number of segment names (bits in the segment sets).
func (r *Reader) NumSegments() int { return r.segments.n }

// Segment returns the name of segment bit i.
func (r *Reader) Segment(i uint32) string { return r.dictString(&r.segments, i) }

// NumBundles is the size of the app bundle dictionary.
func (r *Reader) NumBundles() int { return r.bundles.n }

// Bundle returns app bundle i's id.
func (r *Reader) Bundle(i uint32) string { return r.dictString(&r.bundles, i) }

// LookupBundle finds an app bundle id in the (sorted) dictionary: the
// index campaign allow and block lists hold. It does not allocate.
func (r *Reader) LookupBundle(s string) (uint32, bool) {
	lo, hi := 0, r.bundles.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.dictString(&r.bundles, uint32(m)) < s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < r.bundles.n && s != "" && r.dictString(&r.bundles, uint32(lo)) == s {
		return uint32(lo), true
	}
	return 0, false
}

// NumMediaFiles is the number of media file records.
func (r *Reader) NumMediaFiles() int { return r.media.n }

// MediaFile returns media file record i (Creative.MediaFiles.Off + k).
func (r *Reader) MediaFile(i int) (MediaFile, bool) {
	var m MediaFile
	b, ok := r.media.rec(i)
	if ok {
		decodeMediaFile(b, &m)
	}
	return m, ok
}

// NumCampaigns is the number of campaign records.
func (r *Reader) NumCampaigns() int { return r.campaigns.n }

// Campaign returns campaign record i.
func (r *Reader) Campaign(i int) (Campaign, bool) {
	var c Campaign
	b, ok := r.campaigns.rec(i)
	if ok {
		decodeCampaign(b, &c)
	}
	return c, ok
}

// NumCreatives is the number of creative records.
func (r *Reader) NumCreatives() int { return r.creatives.n }

// Creative returns creative record i.
func (r *Reader) Creative(i int) (Creative, bool) {
	var c Creative
	b, ok := r.creatives.rec(i)
	if ok {
		decodeCreative(b, &c)
	}
	return c, ok
}

// NumPlacements is the number of placement records.
func (r *Reader) NumPlacements() int { return r.placements.n }

// Placement returns placement record i.
func (r *Reader) Placement(i int) (Placement, bool) {
	var p Placement
	b, ok := r.placements.rec(i)
	if ok {
		decodePlacement(b, &p)
	}
	return p, ok
}

// LookupPlacement finds a placement by id through the hash index.
func (r *Reader) LookupPlacement(id string) (int, bool) {
	return r.lookupPlacement(xxhash.Sum64String(id), id)
}

// LookupPlacementBytes is LookupPlacement for a request's raw bytes; it does
// not allocate.
func (r *Reader) LookupPlacementBytes(id []byte) (int, bool) {
	return r.lookupPlacement(xxhash.Sum64(id), unsafe.String(unsafe.SliceData(id), len(id)))
}

func (r *Reader) lookupPlacement(h uint64, id string) (int, bool) {
	n := r.slots.n
	if n == 0 {
		return 0, false
	}
	mask := n - 1
	i := int(h) & mask
	for probes := 0; probes < n; probes++ {
		s := r.slots.b[i*r.slots.stride:]
		idx := le.Uint32(s[8:])
		if idx == 0 {
			return 0, false
		}
		if le.Uint64(s) == h {
			pb, ok := r.placements.rec(int(idx - 1))
			if ok && r.String(getStrRef(pb)) == id {
				return int(idx - 1), true
			}
		}
		i = (i + 1) & mask
	}
	return 0, false
}

// LookupCreative finds a creative by id. Creatives are sorted by id, so it
// is a binary search over the records in place; it does not allocate.
func (r *Reader) LookupCreative(id string) (int, bool) {
	lo, hi := 0, r.creatives.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.String(getStrRef(r.creatives.b[m*r.creatives.stride:])) < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < r.creatives.n && r.String(getStrRef(r.creatives.b[lo*r.creatives.stride:])) == id {
		return lo, true
	}
	return 0, false
}

// LookupCreativeBytes is LookupCreative for a request's raw bytes.
func (r *Reader) LookupCreativeBytes(id []byte) (int, bool) {
	return r.LookupCreative(unsafe.String(unsafe.SliceData(id), len(id)))
}

// CandidateList is one (creative format, country, OS) run of candidates in eCPM order,
// read in place.
type CandidateList struct {
	b      []byte
	stride int
}

// Len is the number of candidates.
func (l CandidateList) Len() int {
	if l.stride == 0 {
		return 0
	}
	return len(l.b) / l.stride
}

// At returns candidate i; i must be in [0, Len()).
func (l CandidateList) At(i int) Candidate {
	var c Candidate
	decodeCandidate(l.b[i*l.stride:], &c)
	return c
}

// Candidates returns the list for (format, country, OS), empty when there is
// none or the key is out of range.
func (r *Reader) Candidates(f Format, country uint16, os OS) CandidateList {
	if int(f) >= NumFormats || int(country) >= NumCountries || int(os) >= NumOS {
		return CandidateList{}
	}
	return r.CandidatesAt(KeyIndex(f, country, os))
}

// CandidatesAt returns the list at a raw KeyIndex (tools iterate all keys).
func (r *Reader) CandidatesAt(key int) CandidateList {
	kb, ok := r.keys.rec(key)
	if !ok {
		return CandidateList{}
	}
	ref := getListRef(kb)
	stride := uint64(r.cands.stride)
	start := uint64(ref.Off) * stride
	end := start + uint64(ref.Len)*stride
	if end > uint64(len(r.cands.b)) {
		return CandidateList{}
	}
	return CandidateList{b: r.cands.b[start:end], stride: r.cands.stride}
}

// ExperimentsJSON is the experiment set as stored (canonical JSON). It aliases
// the mapping.
func (r *Reader) ExperimentsJSON() []byte { return r.experiments }
