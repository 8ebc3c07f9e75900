package snapshot_test

// The golden v2 fixture (pebble's writer_fixture_test.go habit): a small
// inventory under testdata/golden/v2/inventory, the snapshot the builder
// makes of it (golden.snap) and that file's `hexdump -C` (golden.hexdump),
// all committed. The writer test proves today's builder and Writer still
// produce the file byte for byte; the reader test proves today's Reader
// still reads it. A deliberate format change regenerates them:
//
//	go test ./snapshot -run Golden -update
//
// and the diff of golden.hexdump shows the change for review. When the
// format version moves on, keep the old files: testdata/golden/v1 is the
// last version 1 file, which this reader refuses by its version
// (TestGoldenV1Refused).

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/snapshot"
)

var update = flag.Bool("update", false, "regenerate testdata/golden/v2/golden.{snap,hexdump} (a deliberate format change only)")

const goldenDir = "testdata/golden/v2"

var goldenCreated = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func TestGoldenV2Writer(t *testing.T) {
	res, err := builder.Build(builder.Options{Input: filepath.Join(goldenDir, "inventory"), Out: t.TempDir(), Created: goldenCreated})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	snapPath, dumpPath := filepath.Join(goldenDir, "golden.snap"), filepath.Join(goldenDir, "golden.hexdump")
	if *update {
		if err := os.WriteFile(snapPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dumpPath, []byte(hexdump(got)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the builder no longer writes %s byte for byte (%s): if the format change is deliberate, run go test ./snapshot -run Golden -update and review the diff of %s",
			snapPath, firstDiff(got, want), dumpPath)
	}
	dump, err := os.ReadFile(dumpPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(dump) != hexdump(want) {
		t.Fatalf("%s is not the hexdump of %s: regenerate both with -update", dumpPath, snapPath)
	}

	// The framing alone: re-emitting every section through a Writer with
	// the same header gives the same bytes (padding, table, footer).
	r, err := snapshot.OpenBytes(want)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, r.Header())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sections() {
		if err := w.WriteSection(s.ID, s.RecordSize, want[s.Offset:s.Offset+s.Length]); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) || sum.XXHash64 != xxhash.Sum64(want) {
		t.Fatalf("Writer re-emits the golden file differently (%s)", firstDiff(buf.Bytes(), want))
	}
}

// firstDiff names the first offset where a and b differ.
func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d (%#x) of %d vs %d bytes", i, i, len(a), len(b))
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// TestGoldenV1Refused: the last version 1 file is refused by its version
// number, with both numbers in the message, before anything else is read.
func TestGoldenV1Refused(t *testing.T) {
	_, err := snapshot.Open("testdata/golden/v1/golden.snap")
	if !errors.Is(err, snapshot.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "file has version 1, this reader knows version 2") {
		t.Fatalf("v1 file: %v", err)
	}
}

// TestGoldenV2Reader reads the committed file (through mmap, as an edge
// does) and checks what the inventory says it holds.
func TestGoldenV2Reader(t *testing.T) {
	r, err := snapshot.Open(filepath.Join(goldenDir, "golden.snap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := r.Header()
	if h.FormatVersion != 2 || h.Created != goldenCreated.Unix() || !strings.HasPrefix(h.Version, "20261122T000000Z-") ||
		h.Version[17:] != snapshot.Hex16(h.ContentHash)[:8] {
		t.Fatalf("header %+v", h)
	}
	if r.NumCampaigns() != 4 || r.NumCreatives() != 5 || r.NumPlacements() != 4 || r.NumMediaFiles() != 3 {
		t.Fatalf("counts: %d campaigns, %d creatives, %d placements", r.NumCampaigns(), r.NumCreatives(), r.NumPlacements())
	}
	dict := func(n int, at func(uint32) string) string {
		var l []string
		for i := 0; i < n; i++ {
			l = append(l, at(uint32(i)))
		}
		return strings.Join(l, ",")
	}
	if got := dict(r.NumAdvertisers(), r.Advertiser); got != "Globex Corp,acme,initech" {
		t.Errorf("advertisers %s", got)
	}
	if got := dict(r.NumCategories(), r.Category); got != "IAB13,IAB9-30,finance,gambling,games,tools" {
		t.Errorf("categories %s", got)
	}
	if got := dict(r.NumBundles(), r.Bundle); got != "com.pub.game,com.pub.kids,com.pub.news" {
		t.Errorf("bundles %s", got)
	}
	if i, ok := r.LookupBundle("com.pub.news"); !ok || i != 2 {
		t.Errorf("bundle com.pub.news at %d %v", i, ok)
	}
	if _, ok := r.LookupBundle("com.pub.other"); ok {
		t.Error("bundle com.pub.other found")
	}
	if got := dict(r.NumSegments(), r.Segment); got != "gamers,savers" {
		t.Errorf("segments %s", got)
	}
	list := func(ref snapshot.ListRef, name func(uint32) string) string {
		l := r.List(ref)
		var out []string
		for i := 0; i < l.Len(); i++ {
			out = append(out, name(l.At(i)))
		}
		return strings.Join(out, ",")
	}
	creativeID := func(i uint32) string { c, _ := r.Creative(int(i)); return r.String(c.ID) }

	// cmp-a: every campaign field set.
	a, _ := r.Campaign(0)
	if r.String(a.ID) != "cmp-a" || r.Advertiser(a.Advertiser) != "acme" || r.Category(a.Category) != "games" ||
		a.BidType != snapshot.BidCPI || a.BidMicros != 2_000_000 || a.DailyBudgetMicros != 50_000_000 ||
		a.DeviceTypes != snapshot.DevicePhone || a.OSMask != 1<<snapshot.OSAndroid|1<<snapshot.OSiOS ||
		a.MinOSVersion[snapshot.OSiOS] != 14<<16 || a.MinOSVersion[snapshot.OSAndroid] != 0 ||
		a.FreqCapCount != 3 || a.FreqCapPeriod != 3600 ||
		r.String(a.PromotedApp) != "com.acme.game" || a.PromotedAppHash != xxhash.Sum64String("com.acme.game") ||
		a.Start != time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix() || a.End != time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Unix() ||
		a.Segments != [4]uint64{1, 0, 0, 0} {
		t.Errorf("cmp-a %+v", a)
	}
	if got := list(a.Creatives, creativeID); got != "cr-1,cr-2" {
		t.Errorf("cmp-a creatives %s", got)
	}
	if got := list(a.Countries, func(i uint32) string { return snapshot.CountryCode(uint16(i)) }); got != "GB,US" {
		t.Errorf("cmp-a countries %s", got)
	}
	if got := list(a.BlockedBundles, r.Bundle); got != "com.pub.kids" || a.AllowedBundles.Len != 0 {
		t.Errorf("cmp-a bundles: blocked %s, %d allowed", got, a.AllowedBundles.Len)
	}
	// cmp-c: creatives ordered by format (banner before native), both devices.
	c, _ := r.Campaign(2)
	if r.String(c.ID) != "cmp-c" || c.DeviceTypes != snapshot.AllDevices || c.PromotedAppHash != 0 || c.FreqCapCount != 0 ||
		list(c.Creatives, creativeID) != "cr-1,cr-4" {
		t.Errorf("cmp-c %+v", c)
	}
	b, _ := r.Campaign(1)
	if r.String(b.ID) != "cmp-b" || b.Segments != [4]uint64{3, 0, 0, 0} || b.MinOSVersion[snapshot.OSAndroid] != 8<<16|1<<8 ||
		list(b.AllowedBundles, r.Bundle) != "com.pub.game,com.pub.news" || b.BlockedBundles.Len != 0 {
		t.Errorf("cmp-b %+v", b)
	}

	// Placements, through the hash index.
	i, ok := r.LookupPlacement("pl-1")
	p, _ := r.Placement(i)
	if !ok || r.String(p.App) != "com.pub.news" || p.Formats != 1<<snapshot.FormatBanner || p.Flags != 0 || p.FloorMicros != 100_000 ||
		list(p.BlockedAdvertisers, r.Advertiser) != "acme,initech" || list(p.BlockedCategories, r.Category) != "gambling" {
		t.Errorf("pl-1 %d %v %+v", i, ok, p)
	}
	if i, ok := r.LookupPlacement("pl-3"); !ok || i != 2 {
		t.Errorf("pl-3 at %d %v", i, ok)
	}
	if i, ok := r.LookupPlacement("pl-2"); !ok {
		t.Error("pl-2 missing")
	} else if p, _ := r.Placement(i); p.Formats != 1<<snapshot.FormatBanner|1<<snapshot.FormatVideo || !p.Interstitial() || p.Rewarded() {
		t.Errorf("pl-2 %+v", p)
	}
	if i, ok := r.LookupPlacement("pl-4"); !ok {
		t.Error("pl-4 missing")
	} else if p, _ := r.Placement(i); p.Formats != 1<<snapshot.FormatVideo || !p.Interstitial() || !p.Rewarded() {
		t.Errorf("pl-4 %+v", p)
	}
	if _, ok := r.LookupPlacement("pl-5"); ok {
		t.Error("pl-5 found")
	}
	// Creatives, by binary search.
	if i, ok := r.LookupCreative("cr-3"); !ok || i != 2 {
		t.Errorf("cr-3 at %d %v", i, ok)
	} else if cr, _ := r.Creative(i); r.String(cr.ClickURL) != "https://click.example.com/c/3" || cr.Width != 300 || cr.Height != 250 {
		t.Errorf("cr-3 %+v", cr)
	}
	if i, ok := r.LookupCreative("cr-unused"); !ok || i != 4 {
		t.Errorf("cr-unused at %d %v", i, ok)
	}
	// The banner's domain and IAB category, the video's duration and media files.
	if cr, _ := r.Creative(0); r.String(cr.ADomain) != "acme.com" || cr.Format != snapshot.FormatBanner {
		t.Errorf("cr-1 %+v", cr)
	} else if ci, ok := cr.HasCategory(); !ok || r.Category(ci) != "IAB9-30" {
		t.Errorf("cr-1 category %d %v", ci, ok)
	}
	if cr, _ := r.Creative(2); cr.Category == 0 || r.Category(cr.Category-1) != "IAB13" || cr.ADomain.Len != 0 {
		t.Errorf("cr-3 %+v", cr)
	}
	cr2, _ := r.Creative(1)
	if cr2.Format != snapshot.FormatVideo || cr2.DurationSeconds != 15 || cr2.MediaFiles.Len != 2 || cr2.Category != 0 {
		t.Errorf("cr-2 %+v", cr2)
	}
	var files []string
	for k := 0; k < int(cr2.MediaFiles.Len); k++ {
		m, _ := r.MediaFile(int(cr2.MediaFiles.Off) + k)
		files = append(files, fmt.Sprintf("%s %s %dx%d %d %s", r.String(m.URL), r.String(m.MIME), m.Width, m.Height, m.BitrateKbps, snapshot.DeliveryName(m.Delivery)))
	}
	if got, want := strings.Join(files, "; "), "https://cdn.example.com/cr-2-720.mp4 video/mp4 1280x720 1500 progressive; https://cdn.example.com/cr-2.m3u8 application/x-mpegURL 1280x720 0 streaming"; got != want {
		t.Errorf("cr-2 media files %q, want %q", got, want)
	}

	// Candidate lists: ranked by eCPM (predictions or the defaults), the
	// expired campaign left out.
	us, _ := snapshot.CountryIndex("US")
	cands := func(f snapshot.Format, os snapshot.OS) string {
		l := r.Candidates(f, us, os)
		var out []string
		for i := 0; i < l.Len(); i++ {
			x := l.At(i)
			cm, _ := r.Campaign(int(x.Campaign))
			out = append(out, fmt.Sprintf("%s:%d:%g:%s", r.String(cm.ID), x.ECPMMicros, x.CTR,
				list(snapshot.ListRef{Off: x.CreativesOff, Len: uint32(x.CreativesLen)}, creativeID)))
		}
		return strings.Join(out, " ")
	}
	for _, want := range []struct {
		f    snapshot.Format
		os   snapshot.OS
		list string
	}{
		{snapshot.FormatBanner, snapshot.OSiOS, "cmp-a:8000000:0.02:cr-1 cmp-c:1500000:0.002:cr-1"},
		{snapshot.FormatBanner, snapshot.OSAndroid, "cmp-b:25000000:0.05:cr-3 cmp-a:400000:0.002:cr-1"},
		{snapshot.FormatVideo, snapshot.OSiOS, "cmp-a:8000000:0.02:cr-2"},
		{snapshot.FormatVideo, snapshot.OSAndroid, "cmp-a:400000:0.002:cr-2"},
		{snapshot.FormatNative, snapshot.OSiOS, "cmp-c:1500000:0.002:cr-4"},
		{snapshot.FormatNative, snapshot.OSAndroid, ""},
	} {
		if got := cands(want.f, want.os); got != want.list {
			t.Errorf("%s/US/%s: %q, want %q", want.f, want.os, got, want.list)
		}
	}
	var exp struct {
		ID, Salt string
		Tests    []struct {
			ID      string
			ShareBP int `json:"share_bp"`
		}
	}
	if err := json.Unmarshal(r.ExperimentsJSON(), &exp); err != nil || exp.ID != "exp-golden" || exp.Salt != "s-golden" ||
		len(exp.Tests) != 2 || exp.Tests[0].ShareBP != 2000 {
		t.Errorf("experiments %s: %v", r.ExperimentsJSON(), err)
	}
}

// hexdump renders b as `hexdump -C` does (a run of identical lines as one
// "*"), so `hexdump -C golden.snap | diff - golden.hexdump` is empty.
func hexdump(b []byte) string {
	var sb strings.Builder
	var prev []byte
	starred := false
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		if prev != nil && len(line) == 16 && bytes.Equal(line, prev) {
			if !starred {
				sb.WriteString("*\n")
				starred = true
			}
			continue
		}
		starred = false
		prev = line
		fmt.Fprintf(&sb, "%08x ", off)
		for i := 0; i < 16; i++ {
			if i == 8 {
				sb.WriteByte(' ')
			}
			if i < len(line) {
				fmt.Fprintf(&sb, " %02x", line[i])
			} else {
				sb.WriteString("   ")
			}
		}
		sb.WriteString("  |")
		for _, c := range line {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			sb.WriteByte(c)
		}
		sb.WriteString("|\n")
	}
	fmt.Fprintf(&sb, "%08x\n", len(b))
	return sb.String()
}
