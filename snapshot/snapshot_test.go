package snapshot

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// fixture describes a synthetic snapshot: nPlacements placements "p-<i>",
// nCampaigns campaigns each with one creative of format i%NumFormats,
// targeting US and DE on both OSes, eCPM descending with the index.
type fixture struct {
	nPlacements, nCampaigns int
}

func (fx fixture) build(tb testing.TB) []byte {
	tb.Helper()
	var st StringTable
	var pool U32Pool
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	var adv, cat, seg []byte
	for _, s := range []string{"adv-a", "adv-b"} {
		r, err := st.Add(s)
		must(err)
		adv = AppendRef(adv, r.Off, r.Len)
	}
	r, err := st.Add("IAB9")
	must(err)
	cat = AppendRef(cat, r.Off, r.Len)
	r, err = st.Add("gamers")
	must(err)
	seg = AppendRef(seg, r.Off, r.Len)

	us, _ := CountryIndex("US")
	de, _ := CountryIndex("DE")
	var camps, crs []byte
	lists := make([][]Candidate, NumKeys)
	for i := 0; i < fx.nCampaigns; i++ {
		f := Format(i % NumFormats)
		id, err := st.AddUnique(fmt.Sprintf("c-%06d", i))
		must(err)
		crID, err := st.AddUnique(fmt.Sprintf("cr-%06d", i))
		must(err)
		asset, err := st.AddUnique(fmt.Sprintf("https://cdn.example/%d.png", i))
		must(err)
		crs = AppendCreative(crs, &Creative{ID: crID, Format: f, Width: 320, Height: 50, AssetURL: asset, ClickURL: asset})
		crRef, err := pool.Add([]uint32{uint32(i)})
		must(err)
		ctry, err := pool.Add([]uint32{uint32(de), uint32(us)})
		must(err)
		c := Campaign{ID: id, Advertiser: uint32(i % 2), BidType: BidCPM, DeviceTypes: AllDevices, OSMask: 3,
			BidMicros: int64(1_000_000 + i), Start: 0, End: 1 << 40, Creatives: crRef, Countries: ctry}
		camps = AppendCampaign(camps, &c)
		for _, ctryIdx := range []uint16{us, de} {
			for o := OS(0); o < NumOS; o++ {
				k := KeyIndex(f, ctryIdx, o)
				lists[k] = append(lists[k], Candidate{Campaign: uint32(i), CreativesOff: crRef.Off, CreativesLen: 1, CTR: 0.01, ECPMMicros: int64(10_000_000 - i)})
			}
		}
	}
	var keys, cands []byte
	n := 0
	for _, l := range lists {
		keys = AppendRef(keys, uint32(n), uint32(len(l)))
		for j := range l {
			cands = AppendCandidate(cands, &l[j])
		}
		n += len(l)
	}
	var pls []byte
	ids := make([]string, fx.nPlacements)
	for i := range ids {
		ids[i] = fmt.Sprintf("p-%d", i)
		id, err := st.AddUnique(ids[i])
		must(err)
		app, err := st.Add(fmt.Sprintf("com.app%d", i%7))
		must(err)
		blocked, err := pool.Add([]uint32{1})
		must(err)
		pls = AppendPlacement(pls, &Placement{ID: id, App: app, Formats: 1 << (i % NumFormats), FloorMicros: int64(i), BlockedAdvertisers: blocked})
	}
	var out bytes.Buffer
	w, err := NewWriter(&out, Header{Created: 1_800_000_000, ContentHash: 42, Version: "20270115T080000Z-0000002a"})
	must(err)
	must(w.WriteSection(SecStrings, 0, st.Bytes()))
	must(w.WriteSection(SecU32Pool, 4, pool.Bytes()))
	must(w.WriteSection(SecAdvertisers, RefSize, adv))
	must(w.WriteSection(SecCategories, RefSize, cat))
	must(w.WriteSection(SecSegments, RefSize, seg))
	must(w.WriteSection(SecCampaigns, CampaignSize, camps))
	must(w.WriteSection(SecCreatives, CreativeSize, crs))
	must(w.WriteSection(SecPlacements, PlacementSize, pls))
	must(w.WriteSection(SecPlacementIndex, SlotSize, BuildPlacementIndex(ids)))
	must(w.WriteSection(SecCandidateIndex, RefSize, keys))
	must(w.WriteSection(SecCandidates, CandidateSize, cands))
	must(w.WriteSection(SecExperiments, 0, []byte(`{"id":"exp","salt":"s","tests":[]}`)))
	must(w.WriteSection(SecMediaFiles, MediaFileSize, nil))
	must(w.WriteSection(SecBundles, RefSize, nil))
	sum, err := w.Close()
	must(err)
	if sum.Size != int64(out.Len()) || sum.XXHash64 != xxhash.Sum64(out.Bytes()) {
		tb.Fatalf("summary %d/%x disagrees with bytes %d/%x", sum.Size, sum.XXHash64, out.Len(), xxhash.Sum64(out.Bytes()))
	}
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := fixture{nPlacements: 100, nCampaigns: 40}.build(t)
	path := filepath.Join(t.TempDir(), "x.snap")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := r.Header()
	if h.Version != "20270115T080000Z-0000002a" || h.Created != 1_800_000_000 || h.ContentHash != 42 {
		t.Fatalf("header %+v", h)
	}
	if r.NumCampaigns() != 40 || r.NumCreatives() != 40 || r.NumPlacements() != 100 || r.NumAdvertisers() != 2 {
		t.Fatalf("counts %d %d %d %d", r.NumCampaigns(), r.NumCreatives(), r.NumPlacements(), r.NumAdvertisers())
	}
	for i := 0; i < 100; i++ {
		idx, ok := r.LookupPlacement(fmt.Sprintf("p-%d", i))
		if !ok || idx != i {
			t.Fatalf("lookup p-%d = %d,%v", i, idx, ok)
		}
		p, _ := r.Placement(idx)
		if r.String(p.ID) != fmt.Sprintf("p-%d", i) || r.String(p.App) != fmt.Sprintf("com.app%d", i%7) || p.FloorMicros != int64(i) {
			t.Fatalf("placement %d: %+v", i, p)
		}
		if bl := r.List(p.BlockedAdvertisers); bl.Len() != 1 || !bl.Contains(1) || bl.Contains(0) {
			t.Fatalf("blocked list wrong")
		}
	}
	for _, miss := range []string{"p-100", "", "p-", "nope"} {
		if _, ok := r.LookupPlacement(miss); ok {
			t.Fatalf("lookup %q found something", miss)
		}
	}
	us, _ := CountryIndex("US")
	l := r.Candidates(FormatBanner, us, OSiOS)
	if want := (40 + NumFormats - 1) / NumFormats; l.Len() != want {
		t.Fatalf("banner/US/ios has %d candidates, want %d", l.Len(), want)
	}
	for i := 0; i < l.Len(); i++ {
		c := l.At(i)
		camp, ok := r.Campaign(int(c.Campaign))
		if !ok || r.String(camp.ID) != fmt.Sprintf("c-%06d", NumFormats*i) {
			t.Fatalf("candidate %d: campaign %d %q", i, c.Campaign, r.String(camp.ID))
		}
		if i > 0 && c.ECPMMicros > l.At(i-1).ECPMMicros {
			t.Fatal("candidates not sorted by eCPM")
		}
		cr, _ := r.Creative(int(r.List(ListRef{c.CreativesOff, uint32(c.CreativesLen)}).At(0)))
		if cr.Format != FormatBanner || r.String(cr.ID) != fmt.Sprintf("cr-%06d", NumFormats*i) {
			t.Fatalf("creative %+v", cr)
		}
	}
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("cr-%06d", i)
		idx, ok := r.LookupCreative(id)
		if !ok || idx != i {
			t.Fatalf("lookup %s = %d,%v", id, idx, ok)
		}
		if idx2, ok := r.LookupCreativeBytes([]byte(id)); !ok || idx2 != i {
			t.Fatalf("lookup bytes %s = %d,%v", id, idx2, ok)
		}
	}
	for _, miss := range []string{"", "cr-", "cr-000040", "cr-0000005", "a", "zz", "cr-000000\x00"} {
		if i, ok := r.LookupCreative(miss); ok {
			t.Fatalf("lookup creative %q found %d", miss, i)
		}
	}
	if r.Candidates(FormatBanner, 0, OSiOS).Len() != 0 || r.Candidates(9, us, 0).Len() != 0 || r.Candidates(0, 9999, 0).Len() != 0 {
		t.Fatal("empty or out-of-range keys must give empty lists")
	}
	if r.Advertiser(1) != "adv-b" || r.Advertiser(2) != "" || r.Segment(0) != "gamers" || r.Category(0) != "IAB9" {
		t.Fatal("dictionaries wrong")
	}
	if _, ok := r.Campaign(40); ok {
		t.Fatal("out-of-range campaign returned ok")
	}
	if !strings.Contains(string(r.ExperimentsJSON()), `"salt":"s"`) {
		t.Fatal("experiments lost")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterDeterministic(t *testing.T) {
	a := fixture{nPlacements: 50, nCampaigns: 20}.build(t)
	b := fixture{nPlacements: 50, nCampaigns: 20}.build(t)
	if !bytes.Equal(a, b) {
		t.Fatal("same content gave different bytes")
	}
}

// TestRefusals checks each way a file can be wrong gives its own error.
func TestRefusals(t *testing.T) {
	good := fixture{nPlacements: 20, nCampaigns: 8}.build(t)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	versioned := mut(func(b []byte) []byte { le.PutUint32(b[8:], FormatVersion+1); return b })
	// A flag bit this reader does not know, under a valid header checksum:
	// a newer writer's feature, refused rather than misread.
	flagged := mut(func(b []byte) []byte {
		le.PutUint32(b[84:], 1<<2)
		le.PutUint64(b[120:], xxhash.Sum64(b[:120]))
		return b
	})
	cases := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"zero-length", nil, ErrEmpty, "empty"},
		{"not-a-snapshot", []byte("{\"hello\": \"json\"}\n and more text to be long enough for a header ........................................................................................................."), ErrNotSnapshot, "magic"},
		{"elf", append([]byte("\x7fELF"), make([]byte, 400)...), ErrNotSnapshot, "magic"},
		{"truncated-header", good[:60], ErrTruncated, "header"},
		{"truncated-half", good[:len(good)/2], ErrTruncated, "footer"},
		{"truncated-one-byte", good[:len(good)-1], ErrTruncated, "footer"},
		{"appended", append(append([]byte(nil), good...), 0), ErrTruncated, "footer"},
		{"wrong-version", versioned, ErrUnsupportedVersion, "version 3"},
		{"unknown-flag", flagged, ErrUnsupportedVersion, "flags 0x4"},
		{"bitflip-header", mut(func(b []byte) []byte { b[40] ^= 1; return b }), ErrChecksum, "header"},
		{"bitflip-strings", mut(func(b []byte) []byte { b[HeaderSize+3] ^= 0x10; return b }), ErrChecksum, "section strings"},
		{"bitflip-table", mut(func(b []byte) []byte { b[len(b)-FooterSize-5] ^= 0x80; return b }), ErrChecksum, "section table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenBytes(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not mention %q", err, c.msg)
			}
		})
	}
	// A flipped bit in every section is caught and names that section.
	r, err := OpenBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sections() {
		if s.Length == 0 {
			continue
		}
		b := mut(func(b []byte) []byte { b[s.Offset+s.Length/2] ^= 4; return b })
		_, err := OpenBytes(b)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "section "+s.Name()) {
			t.Fatalf("flip in %s: %v", s.Name(), err)
		}
	}
	// Through a file too: empty file and a directory.
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.snap")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.snap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWriterMisuse(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, Header{Version: ""}); err == nil {
		t.Fatal("empty version accepted")
	}
	if _, err := NewWriter(&buf, Header{Version: strings.Repeat("v", MaxVersionLen+1)}); err == nil {
		t.Fatal("long version accepted")
	}
	w, _ := NewWriter(&buf, Header{Version: "v"})
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write outside section accepted")
	}
	_ = w.BeginSection(SecCampaigns, CampaignSize)
	if err := w.BeginSection(SecStrings, 0); err == nil {
		t.Fatal("nested section accepted")
	}
	_, _ = w.Write([]byte("abc"))
	if err := w.EndSection(); err == nil {
		t.Fatal("partial record accepted")
	}
}

func TestParseOSVersion(t *testing.T) {
	for in, want := range map[string]uint32{"14": 14 << 16, "14.2": 14<<16 | 2<<8, "8.1.3": 8<<16 | 1<<8 | 3, "0": 0} {
		if got, ok := ParseOSVersion(in); !ok || got != want {
			t.Errorf("%q = %x,%v want %x", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", ".", "1.", ".1", "1..2", "a", "1.2.3.4", "1.256", "70000", "1.-1", "123456"} {
		if _, ok := ParseOSVersion(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if FormatOSVersion(14<<16|2<<8) != "14.2.0" {
		t.Error(FormatOSVersion(14<<16 | 2<<8))
	}
}

func TestCountryIndex(t *testing.T) {
	for _, c := range []string{"AA", "US", "ZZ"} {
		i, ok := CountryIndex(c)
		if !ok || CountryCode(i) != c {
			t.Errorf("%s round trip failed", c)
		}
	}
	for _, bad := range []string{"", "U", "us", "USA", "U1"} {
		if _, ok := CountryIndex(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkLookupPlacement measures the id -> record path the edge takes per
// request over 100k placements.
func BenchmarkLookupPlacement(b *testing.B) {
	r, err := OpenBytes(fixture{nPlacements: 100_000, nCampaigns: 100}.build(b))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([][]byte, 1024)
	for i := range ids {
		ids[i] = []byte(fmt.Sprintf("p-%d", (i*7919)%100_000))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx, ok := r.LookupPlacementBytes(ids[i&1023])
		if !ok {
			b.Fatal("miss")
		}
		if _, ok := r.Placement(idx); !ok {
			b.Fatal("bad index")
		}
	}
}

// BenchmarkLookupCreative measures the id -> creative path a click takes
// (binary search over 100k sorted records).
func BenchmarkLookupCreative(b *testing.B) {
	r, err := OpenBytes(fixture{nPlacements: 10, nCampaigns: 100_000}.build(b))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([][]byte, 1024)
	for i := range ids {
		ids[i] = []byte(fmt.Sprintf("cr-%06d", (i*7919)%100_000))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx, ok := r.LookupCreativeBytes(ids[i&1023])
		if !ok {
			b.Fatal("miss")
		}
		if _, ok := r.Creative(idx); !ok {
			b.Fatal("bad index")
		}
	}
}

// TestLookupAllocs: the per-request lookups allocate nothing, hit or miss.
func TestLookupAllocs(t *testing.T) {
	r, err := OpenBytes(fixture{nPlacements: 1000, nCampaigns: 1000}.build(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, cr, miss := []byte("p-517"), []byte("cr-000517"), []byte("cr-999999")
	for name, f := range map[string]func(){
		"LookupPlacementBytes": func() { _, _ = r.LookupPlacementBytes(pl) },
		"LookupCreativeBytes":  func() { _, _ = r.LookupCreativeBytes(cr) },
		"LookupCreative miss":  func() { _, _ = r.LookupCreativeBytes(miss) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}

func TestHashFile(t *testing.T) {
	b := fixture{nPlacements: 30, nCampaigns: 10}.build(t)
	path := filepath.Join(t.TempDir(), "x.snap")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := HashFile(path)
	if err != nil || h != xxhash.Sum64(b) {
		t.Fatalf("HashFile = %016x, %v; want %016x", h, err, xxhash.Sum64(b))
	}
	if _, err := HashFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// BenchmarkCandidates fetches a list and decodes its first 8 entries, as
// selection does before it finds an eligible one.
func BenchmarkCandidates(b *testing.B) {
	r, err := OpenBytes(fixture{nPlacements: 10, nCampaigns: 2000}.build(b))
	if err != nil {
		b.Fatal(err)
	}
	us, _ := CountryIndex("US")
	b.ReportAllocs()
	b.ResetTimer()
	var sum int64
	for i := 0; i < b.N; i++ {
		l := r.Candidates(Format(i%NumFormats), us, OS(i&1))
		for j := 0; j < 8 && j < l.Len(); j++ {
			sum += l.At(j).ECPMMicros
		}
	}
	if sum == 0 {
		b.Fatal("no candidates")
	}
}

// BenchmarkOpenVerify is Open's full verification (header, table, every
// section checksum) over an in-memory ~64 MiB snapshot; SetBytes makes the
// MB/s column the verify throughput.
func BenchmarkOpenVerify(b *testing.B) {
	data := fixture{nPlacements: 1_000_000, nCampaigns: 150_000}.build(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := OpenBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash compares xxhash64, SHA-1 and SHA-256 on the same snapshot
// bytes in one run; the MB/s columns give the ratio.
func BenchmarkHash(b *testing.B) {
	data := fixture{nPlacements: 200_000, nCampaigns: 30_000}.build(b)
	b.Run("xxhash64", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			xxhash.Sum64(data)
		}
	})
	b.Run("sha1", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			sha1.Sum(data)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			sha256.Sum256(data)
		}
	})
}

// TestYieldingSum64: the chunked checksum equals the one-shot one at and
// around the chunk boundaries.
func TestYieldingSum64(t *testing.T) {
	b := make([]byte, 3*yieldChunk+17)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	for _, n := range []int{0, 1, yieldChunk - 1, yieldChunk, yieldChunk + 1, 2 * yieldChunk, len(b)} {
		if got, want := yieldingSum64(b[:n]), xxhash.Sum64(b[:n]); got != want {
			t.Errorf("len %d: %x, want %x", n, got, want)
		}
	}
}
