package builder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/gen"
)

var created = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func genSmall(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "inv")
	if _, err := gen.Generate(dir, gen.Scales["small"], 7, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildDeterministicAndVerifiable(t *testing.T) {
	in := genSmall(t)
	a, err := Build(Options{Input: in, Out: filepath.Join(t.TempDir(), "a"), Created: created})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Input: in, Out: filepath.Join(t.TempDir(), "b"), Created: created})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a.Path)
	bb, _ := os.ReadFile(b.Path)
	if !bytes.Equal(ab, bb) || filepath.Base(a.Path) != filepath.Base(b.Path) {
		t.Fatal("same inputs gave different snapshots")
	}
	m, err := snapshot.ReadManifest(a.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(ab)) || m.XXHash64 != snapshot.Hex16(xxhash.Sum64(ab)) || m.File != filepath.Base(a.Path) {
		t.Fatalf("manifest %+v does not describe the file", m)
	}
	if !strings.HasPrefix(m.Version, "20261122T000000Z-") {
		t.Fatalf("version %q", m.Version)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(a.Path), m.Version+".manifest.json")); err != nil {
		t.Fatal(err)
	}
	// A changed input changes the version and the bytes.
	f, err := os.OpenFile(filepath.Join(in, inventory.PlacementsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"pl-extra","app":"com.extra.app","formats":["banner"],"floor_micros":0}` + "\n")
	f.Close()
	c, err := Build(Options{Input: in, Out: filepath.Join(t.TempDir(), "c"), Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if c.Manifest.Version == a.Manifest.Version || c.Manifest.Counts["placements"] != a.Manifest.Counts["placements"]+1 {
		t.Fatalf("changed input: version %s vs %s, placements %d", c.Manifest.Version, a.Manifest.Version, c.Manifest.Counts["placements"])
	}
}

// TestBuildContent checks the snapshot against the inventory it came from:
// every live campaign sits in exactly the lists its targeting and creatives
// name, with the eCPM the documented formula gives, and lists are ranked.
func TestBuildContent(t *testing.T) {
	in := genSmall(t)
	res, err := Build(Options{Input: in, Out: t.TempDir(), Created: created})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(in, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumCampaigns() != len(inv.Campaigns) || r.NumCreatives() != len(inv.Creatives) || r.NumPlacements() != len(inv.Placements) {
		t.Fatal("record counts differ from the inventory")
	}
	type key struct {
		k        int
		campaign uint32
	}
	want := map[key]int64{}
	for ci, c := range inv.Campaigns {
		end, _ := time.Parse(time.RFC3339, c.End)
		if !end.After(created) {
			continue
		}
		bt, _ := snapshot.ParseBidType(c.BidType)
		formats := map[snapshot.Format]bool{}
		for _, id := range c.CreativeIDs {
			i, _ := inv.CreativeIndex(id)
			f, _ := snapshot.ParseFormat(inv.Creatives[i].Format)
			formats[f] = true
		}
		for _, cc := range c.Targeting.Countries {
			country, _ := snapshot.CountryIndex(cc)
			for _, o := range c.Targeting.OS {
				os, _ := snapshot.ParseOS(o.Name)
				ctr, ir := inv.Prediction(ci, country, os)
				for f := range formats {
					want[key{snapshot.KeyIndex(f, country, os), uint32(ci)}] = ECPMMicros(bt, c.BidMicros, ctr, ir)
				}
			}
		}
	}
	got := 0
	for k := 0; k < snapshot.NumKeys; k++ {
		l := r.CandidatesAt(k)
		for i := 0; i < l.Len(); i++ {
			c := l.At(i)
			e, ok := want[key{k, c.Campaign}]
			if !ok {
				t.Fatalf("key %d: campaign %d should not be listed", k, c.Campaign)
			}
			if e != c.ECPMMicros {
				t.Fatalf("key %d campaign %d: eCPM %d, want %d", k, c.Campaign, c.ECPMMicros, e)
			}
			if i > 0 {
				p := l.At(i - 1)
				if p.ECPMMicros < c.ECPMMicros || (p.ECPMMicros == c.ECPMMicros && p.Campaign >= c.Campaign) {
					t.Fatalf("key %d not ranked at %d", k, i)
				}
			}
			camp, _ := r.Campaign(int(c.Campaign))
			crs := r.List(snapshot.ListRef{Off: c.CreativesOff, Len: uint32(c.CreativesLen)})
			for j := 0; j < crs.Len(); j++ {
				cr, _ := r.Creative(int(crs.At(j)))
				if cr.Format != snapshot.Format(k/(snapshot.NumCountries*snapshot.NumOS)) {
					t.Fatalf("campaign %s: creative of the wrong format in key %d", r.String(camp.ID), k)
				}
			}
			got++
		}
	}
	if got != len(want) || got == 0 {
		t.Fatalf("%d candidates listed, want %d", got, len(want))
	}
	for _, p := range inv.Placements {
		i, ok := r.LookupPlacement(p.ID)
		pl, _ := r.Placement(i)
		if !ok || r.String(pl.ID) != p.ID || pl.FloorMicros != p.FloorMicros || r.String(pl.App) != p.App {
			t.Fatalf("placement %s not found intact", p.ID)
		}
	}
}

func TestBuildRefusesBadInventoryAndWritesNothing(t *testing.T) {
	in := genSmall(t)
	path := filepath.Join(in, inventory.CampaignsFile)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"bid_type":"`, `"bid_type":"x`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	_, err := Build(Options{Input: in, Out: out, Created: created})
	var ve *inventory.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error, got %v", err)
	}
	if !strings.Contains(err.Error(), "campaigns.jsonl:2:") {
		t.Fatalf("error does not name file:line: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("output directory created for a refused inventory")
	}
}

func TestDataTime(t *testing.T) {
	in := genSmall(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1800000000")
	res, err := Build(Options{Input: in, Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Created != time.Unix(1800000000, 0).UTC().Format(time.RFC3339) {
		t.Fatalf("created %s", res.Manifest.Created)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := Build(Options{Input: in, Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH: %v", err)
	}
}

func TestECPM(t *testing.T) {
	for _, c := range []struct {
		bt      snapshot.BidType
		bid     int64
		ctr, ir float64
		want    int64
	}{
		{snapshot.BidCPM, 2_500_000, 0.5, 0.5, 2_500_000},
		{snapshot.BidCPC, 500_000, 0.01, 0, 5_000_000},    // $0.50 per click at 1% CTR = $5 CPM
		{snapshot.BidCPI, 3_000_000, 0, 0.001, 3_000_000}, // $3 per install at 0.1% = $3 CPM
	} {
		if got := ECPMMicros(c.bt, c.bid, c.ctr, c.ir); got != c.want {
			t.Errorf("%v: %d, want %d", c.bt, got, c.want)
		}
	}
}

// BenchmarkBuildSmall times a whole build of the small scale.
func BenchmarkBuildSmall(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "inv")
	if _, err := gen.Generate(dir, gen.Scales["small"], 7, nil); err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Build(Options{Input: dir, Out: out, Created: created}); err != nil {
			b.Fatal(err)
		}
	}
}
