package gen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/snapshot"
)

// medium-ish: a fifth of medium, enough for stable distribution checks.
var mediumish = Scale{Campaigns: 2_000, Creatives: 10_000, Placements: 5_000, Advertisers: 300, Apps: 800, Profiles: 20_000, PredictionCoverage: 0.85}

func generate(t testing.TB, sc Scale, seed uint64) (string, Stats) {
	t.Helper()
	dir := t.TempDir()
	st, err := Generate(dir, sc, seed, nil)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return dir, st
}

// decodeStrict decodes exactly one JSON value from line into v, refusing
// unknown fields and trailing data, as the builder does.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// readLines decodes every line of a JSONL file strictly into a new T.
func readLines[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), inventory.MaxLineBytes)
	for n := 1; sc.Scan(); n++ {
		var v T
		if err := decodeStrict(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s:%d: %v\n%s", filepath.Base(path), n, err, sc.Bytes())
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

type inv struct {
	campaigns   []inventory.Campaign
	creatives   []inventory.Creative
	placements  []inventory.Placement
	predictions []inventory.Prediction
	experiments inventory.Experiments
	profiles    []Profile
}

func load(t *testing.T, dir string) *inv {
	t.Helper()
	in := &inv{
		campaigns:   readLines[inventory.Campaign](t, filepath.Join(dir, inventory.CampaignsFile)),
		creatives:   readLines[inventory.Creative](t, filepath.Join(dir, inventory.CreativesFile)),
		placements:  readLines[inventory.Placement](t, filepath.Join(dir, inventory.PlacementsFile)),
		predictions: readLines[inventory.Prediction](t, filepath.Join(dir, inventory.PredictionsFile)),
		profiles:    readLines[Profile](t, filepath.Join(dir, inventory.ProfilesFile)),
	}
	b, err := os.ReadFile(filepath.Join(dir, inventory.ExperimentsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(b, &in.experiments); err != nil {
		t.Fatalf("experiments.json: %v", err)
	}
	return in
}

var (
	upperUUID = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	lowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	appID     = regexp.MustCompile(`^com\.[a-z][a-z0-9]*\.[a-z][a-z0-9]*$`)
	catCode   = regexp.MustCompile(`^IAB([1-9]|1[0-9]|2[0-6])(-[1-9][0-9]?)?$`)
)

func checkID(t *testing.T, what, id string) {
	t.Helper()
	if id == "" || len(id) > inventory.MaxIDLen || strings.ContainsAny(id, " \t\r\n\v\f") {
		t.Fatalf("%s: bad id %q", what, id)
	}
}

func checkURL(t *testing.T, what, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || len(s) > inventory.MaxURLLen {
		t.Fatalf("%s: bad URL %q (%v)", what, s, err)
	}
}

func checkUnique(t *testing.T, what string, l []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range l {
		if seen[s] {
			t.Fatalf("%s: duplicate %q", what, s)
		}
		seen[s] = true
	}
}

// validate applies the rules builder/inventory documents (ids, ranges,
// references, predictions only where targeted, ...) to a decoded inventory.
func validate(t *testing.T, in *inv) {
	t.Helper()
	creatives := map[string]*inventory.Creative{}
	for i := range in.creatives {
		c := &in.creatives[i]
		checkID(t, "creative", c.ID)
		if creatives[c.ID] != nil {
			t.Fatalf("duplicate creative %s", c.ID)
		}
		creatives[c.ID] = c
		f, ok := snapshot.ParseFormat(c.Format)
		if !ok {
			t.Fatalf("creative %s: format %q", c.ID, c.Format)
		}
		if (c.Width == 0) != (c.Height == 0) {
			t.Fatalf("creative %s: %dx%d", c.ID, c.Width, c.Height)
		}
		if (f == snapshot.FormatVideo) != (c.Video != nil) {
			t.Fatalf("creative %s: format %s, video %+v", c.ID, c.Format, c.Video)
		}
		if v := c.Video; v != nil {
			if v.DurationSeconds == 0 || len(v.MediaFiles) < 2 {
				t.Fatalf("creative %s: video %+v", c.ID, *v)
			}
			for _, m := range v.MediaFiles {
				checkURL(t, c.ID, m.URL)
				if m.Width == 0 || m.Height == 0 || m.MIME == "" {
					t.Fatalf("creative %s: media file %+v", c.ID, m)
				}
			}
		}
		if c.ADomain == "" || (c.IABCategory != "" && !catCode.MatchString(c.IABCategory)) {
			t.Fatalf("creative %s: adomain %q, category %q", c.ID, c.ADomain, c.IABCategory)
		}
		checkURL(t, c.ID, c.AssetURL)
		checkURL(t, c.ID, c.ClickURL)
	}
	type key struct{ camp, country, os string }
	targeted := map[key]bool{}
	campaigns := map[string]*inventory.Campaign{}
	advertisers, cats, segs, promoted := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	used := map[string]bool{}
	for i := range in.campaigns {
		c := &in.campaigns[i]
		checkID(t, "campaign", c.ID)
		checkID(t, c.ID+" advertiser", c.Advertiser)
		checkID(t, c.ID+" category", c.Category)
		if campaigns[c.ID] != nil {
			t.Fatalf("duplicate campaign %s", c.ID)
		}
		campaigns[c.ID] = c
		advertisers[c.Advertiser], cats[c.Category] = true, true
		if !catCode.MatchString(c.Category) {
			t.Fatalf("%s: category %q", c.ID, c.Category)
		}
		bt, ok := snapshot.ParseBidType(c.BidType)
		if !ok {
			t.Fatalf("%s: bid type %q", c.ID, c.BidType)
		}
		if c.BidMicros <= 0 || c.BidMicros > inventory.MaxBidMicros {
			t.Fatalf("%s: bid %d", c.ID, c.BidMicros)
		}
		if c.DailyBudgetMicros <= 0 || c.DailyBudgetMicros > inventory.MaxBudgetMicros || c.DailyBudgetMicros < c.BidMicros {
			t.Fatalf("%s: budget %d (bid %d)", c.ID, c.DailyBudgetMicros, c.BidMicros)
		}
		start, err1 := time.Parse(time.RFC3339, c.Start)
		end, err2 := time.Parse(time.RFC3339, c.End)
		if err1 != nil || err2 != nil || !end.After(start) {
			t.Fatalf("%s: schedule %s..%s", c.ID, c.Start, c.End)
		}
		tg := c.Targeting
		if len(tg.Countries) == 0 || len(tg.OS) == 0 {
			t.Fatalf("%s: empty targeting", c.ID)
		}
		checkUnique(t, c.ID+" countries", tg.Countries)
		if !slices.IsSorted(tg.Countries) {
			t.Fatalf("%s: countries not sorted: %v", c.ID, tg.Countries)
		}
		for _, cc := range tg.Countries {
			if _, ok := snapshot.CountryIndex(cc); !ok || !slices.Contains(countries[:], cc) {
				t.Fatalf("%s: country %q", c.ID, cc)
			}
		}
		var osNames []string
		for _, o := range tg.OS {
			if _, ok := snapshot.ParseOS(o.Name); !ok {
				t.Fatalf("%s: os %q", c.ID, o.Name)
			}
			if o.MinVersion != "" {
				if _, ok := snapshot.ParseOSVersion(o.MinVersion); !ok {
					t.Fatalf("%s: min version %q", c.ID, o.MinVersion)
				}
			}
			osNames = append(osNames, o.Name)
			for _, cc := range tg.Countries {
				targeted[key{c.ID, cc, o.Name}] = true
			}
		}
		checkUnique(t, c.ID+" os", osNames)
		for _, d := range tg.DeviceTypes {
			if _, ok := snapshot.ParseDeviceType(d); !ok {
				t.Fatalf("%s: device type %q", c.ID, d)
			}
		}
		checkUnique(t, c.ID+" device types", tg.DeviceTypes)
		checkUnique(t, c.ID+" segments", tg.Segments)
		for _, s := range tg.Segments {
			checkID(t, c.ID+" segment", s)
			segs[s] = true
		}
		if fc := c.FrequencyCap; fc != nil && (fc.Count < 1 || fc.PeriodSeconds < 60) {
			t.Fatalf("%s: frequency cap %+v", c.ID, *fc)
		}
		if bt == snapshot.BidCPI && c.PromotedApp == "" {
			t.Fatalf("%s: CPI campaign without promoted app", c.ID)
		}
		if c.PromotedApp != "" {
			if !appID.MatchString(c.PromotedApp) || !strings.HasPrefix(c.PromotedApp, "com."+c.Advertiser+".") {
				t.Fatalf("%s: promoted app %q for %q", c.ID, c.PromotedApp, c.Advertiser)
			}
			promoted[c.PromotedApp] = true
		}
		if n := len(c.CreativeIDs); n < 1 || n > 10 {
			t.Fatalf("%s: %d creatives", c.ID, n)
		}
		checkUnique(t, c.ID+" creative_ids", c.CreativeIDs)
		for _, id := range c.CreativeIDs {
			if creatives[id] == nil {
				t.Fatalf("%s: unknown creative %s", c.ID, id)
			}
			used[id] = true
		}
	}
	if len(segs) > snapshot.MaxSegments {
		t.Fatalf("%d distinct segments", len(segs))
	}
	if len(used) != len(creatives) {
		t.Errorf("%d creatives not referenced by any campaign", len(creatives)-len(used))
	}
	plIDs := map[string]bool{}
	for _, p := range in.placements {
		checkID(t, "placement", p.ID)
		checkID(t, p.ID+" app", p.App)
		if plIDs[p.ID] {
			t.Fatalf("duplicate placement %s", p.ID)
		}
		plIDs[p.ID] = true
		if len(p.Formats) == 0 || p.Rewarded && !p.Interstitial {
			t.Fatalf("%s: formats %v, interstitial %v, rewarded %v", p.ID, p.Formats, p.Interstitial, p.Rewarded)
		}
		for _, f := range p.Formats {
			if _, ok := snapshot.ParseFormat(f); !ok {
				t.Fatalf("%s: format %q", p.ID, f)
			}
		}
		if p.FloorMicros < 0 || p.FloorMicros > inventory.MaxFloorMicros {
			t.Fatalf("%s: floor %d", p.ID, p.FloorMicros)
		}
		checkUnique(t, p.ID+" blocked advertisers", p.BlockedAdvertisers)
		checkUnique(t, p.ID+" blocked categories", p.BlockedCategories)
		for _, a := range p.BlockedAdvertisers {
			if !advertisers[a] {
				t.Fatalf("%s: blocks unknown advertiser %q", p.ID, a)
			}
		}
		for _, c := range p.BlockedCategories {
			if !cats[c] {
				t.Fatalf("%s: blocks unused category %q", p.ID, c)
			}
		}
	}
	seen := map[key]bool{}
	for _, p := range in.predictions {
		k := key{p.CampaignID, p.Country, p.OS}
		if !targeted[k] {
			t.Fatalf("prediction for untargeted %+v", k)
		}
		if seen[k] {
			t.Fatalf("duplicate prediction %+v", k)
		}
		seen[k] = true
		if !(p.CTR >= 0 && p.CTR <= 1 && p.InstallRate >= 0 && p.InstallRate <= 1) {
			t.Fatalf("prediction %+v out of [0,1]", p)
		}
	}
	e := in.experiments
	checkID(t, "experiment set", e.ID)
	if e.Salt == "" || len(e.Tests) > inventory.MaxTests {
		t.Fatalf("experiments: %+v", e)
	}
	var share uint32
	var testIDs []string
	for _, tt := range e.Tests {
		checkID(t, "test", tt.ID)
		checkID(t, "variant", tt.Variant)
		testIDs = append(testIDs, tt.ID)
		share += tt.ShareBP
		if len(tt.Params) == 0 {
			t.Fatalf("test %s overrides nothing", tt.ID)
		}
		for name, v := range tt.Params {
			r, ok := abtest.ParamNames[name]
			if !ok || v < r.Min || v > r.Max {
				t.Fatalf("test %s: param %s=%v", tt.ID, name, v)
			}
		}
	}
	checkUnique(t, "test ids", testIDs)
	if share > inventory.TotalShareBP {
		t.Fatalf("tests take %d bp", share)
	}
	devices := map[string]bool{}
	for _, p := range in.profiles {
		if !upperUUID.MatchString(p.Device) && !lowerUUID.MatchString(p.Device) {
			t.Fatalf("device id %q", p.Device)
		}
		if devices[p.Device] {
			t.Fatalf("duplicate device %s", p.Device)
		}
		devices[p.Device] = true
		checkUnique(t, p.Device+" segments", p.Segments)
		checkUnique(t, p.Device+" installed_apps", p.InstalledApps)
		for _, s := range p.Segments {
			if !slices.Contains(segments[:], s) {
				t.Fatalf("%s: segment %q not in the dictionary", p.Device, s)
			}
		}
		for _, a := range p.InstalledApps {
			if !appID.MatchString(a) {
				t.Fatalf("%s: app %q", p.Device, a)
			}
		}
	}
}

func checkStats(t *testing.T, dir string, sc Scale, st Stats, in *inv) {
	t.Helper()
	want := map[string]int{
		inventory.CampaignsFile:   sc.Campaigns,
		inventory.CreativesFile:   sc.Creatives,
		inventory.PlacementsFile:  sc.Placements,
		inventory.PredictionsFile: len(in.predictions),
		inventory.ExperimentsFile: len(in.experiments.Tests),
		inventory.ProfilesFile:    sc.Profiles,
	}
	got := map[string]int{
		inventory.CampaignsFile:   len(in.campaigns),
		inventory.CreativesFile:   len(in.creatives),
		inventory.PlacementsFile:  len(in.placements),
		inventory.PredictionsFile: len(in.predictions),
		inventory.ExperimentsFile: len(in.experiments.Tests),
		inventory.ProfilesFile:    len(in.profiles),
	}
	if len(st.Files) != len(FileNames) {
		t.Fatalf("stats list %d files", len(st.Files))
	}
	var total int64
	for i, fs := range st.Files {
		if fs.Name != FileNames[i] {
			t.Fatalf("stats file %d is %s, want %s", i, fs.Name, FileNames[i])
		}
		fi, err := os.Stat(filepath.Join(dir, fs.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != fs.Bytes {
			t.Errorf("%s: stats say %d bytes, file has %d", fs.Name, fs.Bytes, fi.Size())
		}
		if fs.Records != want[fs.Name] || got[fs.Name] != want[fs.Name] {
			t.Errorf("%s: stats %d records, decoded %d, want %d", fs.Name, fs.Records, got[fs.Name], want[fs.Name])
		}
		total += fs.Bytes
	}
	if total != st.Bytes {
		t.Errorf("stats total %d != sum %d", st.Bytes, total)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(FileNames) {
		t.Errorf("dir has %d entries (temp files left?)", len(ents))
	}
}

func TestStrictDecodeAndRules(t *testing.T) {
	cases := []struct {
		name string
		sc   Scale
	}{{"small", Scales["small"]}, {"mediumish", mediumish}, {"medium", Scales["medium"]}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "medium" && testing.Short() {
				t.Skip("short")
			}
			dir, st := generate(t, c.sc, 42)
			in := load(t, dir)
			validate(t, in)
			checkStats(t, dir, c.sc, st, in)
		})
	}
}

// The builder's own validator must accept what gen writes.
func TestBuilderLoadAccepts(t *testing.T) {
	for name, sc := range map[string]Scale{"small": Scales["small"], "mediumish": mediumish} {
		t.Run(name, func(t *testing.T) {
			dir, st := generate(t, sc, 11)
			now := func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
			inv, err := inventory.Load(dir, inventory.Options{Now: now})
			if err != nil {
				t.Fatalf("inventory.Load refused generated inventory: %v", err)
			}
			if len(inv.Campaigns) != sc.Campaigns || len(inv.Creatives) != sc.Creatives ||
				len(inv.Placements) != sc.Placements || len(inv.Predictions) != st.File(inventory.PredictionsFile).Records {
				t.Errorf("loaded %d/%d/%d/%d records, generated %+v", len(inv.Campaigns), len(inv.Creatives),
					len(inv.Placements), len(inv.Predictions), st.Files)
			}
			if f := float64(inv.EndedCampaigns) / float64(len(inv.Campaigns)); f > 0.15 {
				t.Errorf("%.2f of campaigns already ended on %v", f, now())
			}
		})
	}
}

func TestSmallIsFast(t *testing.T) {
	start := time.Now()
	generate(t, Scales["small"], 7)
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("small scale took %v, want well under 1s", el)
	}
}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, name := range FileNames {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = b
	}
	return m
}

func TestDeterministic(t *testing.T) {
	sc := Scales["small"]
	a, _ := generate(t, sc, 1234)
	b, _ := generate(t, sc, 1234)
	c, _ := generate(t, sc, 1235)
	fa, fb, fc := readAll(t, a), readAll(t, b), readAll(t, c)
	for _, name := range FileNames {
		if !bytes.Equal(fa[name], fb[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if bytes.Equal(fa[name], fc[name]) {
			t.Errorf("%s identical for different seeds", name)
		}
	}
}

// The files are generated concurrently; the output must not depend on how
// many workers run or in which order they finish.
func TestDeterministicAcrossWorkerCounts(t *testing.T) {
	sc := Scales["small"]
	a, _ := generate(t, sc, 99)
	old := workers
	workers = func(n int) int { return 1 }
	defer func() { workers = old }()
	b, _ := generate(t, sc, 99)
	fa, fb := readAll(t, a), readAll(t, b)
	for _, name := range FileNames {
		if !bytes.Equal(fa[name], fb[name]) {
			t.Errorf("%s differs between 1 and several workers", name)
		}
	}
}

func share[T any](l []T, f func(T) bool) float64 {
	n := 0
	for _, x := range l {
		if f(x) {
			n++
		}
	}
	return float64(n) / float64(len(l))
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s = %.3f, want %.2f ± %.2f", what, got, want, tol)
	} else {
		t.Logf("%s = %.3f", what, got)
	}
}

func quantile(v []float64, q float64) float64 {
	sort.Float64s(v)
	return v[int(q*float64(len(v)-1))]
}

// TestRealism checks the distributions an analyst would look at first.
func TestRealism(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir, _ := generate(t, mediumish, 3)
	in := load(t, dir)
	cs := in.campaigns

	// Countries: Zipf-like, US first, long tail of real codes.
	ctry := map[string]int{}
	for _, c := range cs {
		for _, cc := range c.Targeting.Countries {
			ctry[cc]++
		}
	}
	if len(ctry) < 55 {
		t.Errorf("only %d countries targeted", len(ctry))
	}
	if ctry["US"] <= ctry["GB"] || ctry["GB"] <= ctry["FR"] || ctry["US"] < 5*ctry["NZ"] {
		t.Errorf("country skew off: US %d GB %d FR %d NZ %d", ctry["US"], ctry["GB"], ctry["FR"], ctry["NZ"])
	}
	near(t, "single-country campaigns", share(cs, func(c inventory.Campaign) bool { return len(c.Targeting.Countries) == 1 }), 0.45, 0.05)

	// Bid mix and prices.
	near(t, "CPI share", share(cs, func(c inventory.Campaign) bool { return c.BidType == "cpi" }), 0.6, 0.08)
	prices := map[string][]float64{}
	for _, c := range cs {
		prices[c.BidType] = append(prices[c.BidType], float64(c.BidMicros)/1e6)
	}
	for bt, rng := range map[string][2]float64{"cpi": {0.5, 8}, "cpc": {0.05, 2}, "cpm": {0.5, 20}} {
		v := prices[bt]
		if len(v) < 50 {
			t.Fatalf("only %d %s campaigns", len(v), bt)
		}
		lo, med, hi := quantile(v, 0), quantile(v, 0.5), quantile(v, 1)
		if lo < rng[0] || hi > rng[1] || med < 2*rng[0] || med > rng[1]/2 {
			t.Errorf("%s bids min %.2f median %.2f max %.2f, want within %v", bt, lo, med, hi, rng)
		}
	}
	near(t, "frequency capped", share(cs, func(c inventory.Campaign) bool { return c.FrequencyCap != nil }), 0.4, 0.04)
	near(t, "segment targeted", share(cs, func(c inventory.Campaign) bool { return len(c.Targeting.Segments) > 0 }), 0.25, 0.04)
	near(t, "all device types", share(cs, func(c inventory.Campaign) bool { return len(c.Targeting.DeviceTypes) == 0 }), 0.85, 0.04)
	mid := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	active := func(c inventory.Campaign) bool { return c.Start <= mid && c.End > mid }
	if s := share(cs, active); s < 0.8 {
		t.Errorf("only %.2f of campaigns active on %s", s, mid)
	}
	// Campaigns per advertiser skewed: the top 10% of advertisers run most.
	perAdv := map[string]int{}
	for _, c := range cs {
		perAdv[c.Advertiser]++
	}
	counts := make([]float64, 0, len(perAdv))
	for _, n := range perAdv {
		counts = append(counts, float64(n))
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(counts)))
	top := 0.0
	for _, n := range counts[:len(counts)/10] {
		top += n
	}
	near(t, "campaign share of top 10% advertisers", top/float64(len(cs)), 0.45, 0.15)

	// OS: Android-heavy targeting and devices.
	android := 0
	all := 0
	for _, c := range cs {
		for _, o := range c.Targeting.OS {
			all++
			if o.Name == "android" {
				android++
			}
		}
	}
	near(t, "android share of OS targets", float64(android)/float64(all), 0.62, 0.08)
	near(t, "iOS (upper-case IDFA) profiles", share(in.profiles, func(p Profile) bool { return upperUUID.MatchString(p.Device) }), 0.3, 0.02)

	// Creatives: games lean video (interstitial and rewarded slots).
	byID := map[string]inventory.Creative{}
	for _, c := range in.creatives {
		byID[c.ID] = c
	}
	var gameFull, game, nonGameFull, nonGame int
	for _, c := range cs {
		isGame := strings.HasPrefix(c.Category, "IAB9-")
		for _, id := range c.CreativeIDs {
			full := byID[id].Format == "video"
			if isGame {
				game++
				if full {
					gameFull++
				}
			} else {
				nonGame++
				if full {
					nonGameFull++
				}
			}
		}
	}
	if g, n := float64(gameFull)/float64(game), float64(nonGameFull)/float64(nonGame); g < 0.3 || g < n+0.15 {
		t.Errorf("video share: games %.2f, others %.2f", g, n)
	}
	near(t, "rewarded placements", share(in.placements, func(p inventory.Placement) bool { return p.Rewarded }), 0.2, 0.04)
	near(t, "campaigns with bundle lists", share(cs, func(c inventory.Campaign) bool { return len(c.AllowedBundles)+len(c.BlockedBundles) > 0 }), 0.15, 0.04)

	// Placements: zero floors, blocks, app skew.
	ps := in.placements
	near(t, "zero floors", share(ps, func(p inventory.Placement) bool { return p.FloorMicros == 0 }), 0.2, 0.03)
	near(t, "placements with blocks", share(ps, func(p inventory.Placement) bool {
		return len(p.BlockedAdvertisers)+len(p.BlockedCategories) > 0
	}), 0.15, 0.03)
	perApp := map[string]int{}
	for _, p := range ps {
		perApp[p.App]++
	}
	maxApp := 0
	for _, n := range perApp {
		maxApp = max(maxApp, n)
	}
	if mean := float64(len(ps)) / float64(len(perApp)); float64(maxApp) < 10*mean {
		t.Errorf("placements per app not skewed: max %d, mean %.1f", maxApp, mean)
	}

	// Predictions: ~85% of targeted triples, plausible rates.
	pairs := 0
	for _, c := range cs {
		pairs += len(c.Targeting.Countries) * len(c.Targeting.OS)
	}
	near(t, "prediction coverage", float64(len(in.predictions))/float64(pairs), 0.85, 0.02)
	var ctrs []float64
	for _, p := range in.predictions {
		ctrs = append(ctrs, p.CTR)
		if p.InstallRate > p.CTR {
			t.Fatalf("install rate above CTR: %+v", p)
		}
	}
	if m := quantile(ctrs, 0.5); m < 0.005 || m > 0.03 {
		t.Errorf("median CTR %.4f", m)
	}

	// Profiles: installed apps come from promoted apps, skewed, so the
	// "already installed" filter triggers for the popular apps.
	promoted := map[string]bool{}
	for _, c := range cs {
		if c.PromotedApp != "" {
			promoted[c.PromotedApp] = true
		}
	}
	inst := map[string]int{}
	hit := 0
	for _, p := range in.profiles {
		h := false
		for _, a := range p.InstalledApps {
			inst[a]++
			h = h || promoted[a]
		}
		if h {
			hit++
		}
	}
	if s := float64(hit) / float64(len(in.profiles)); s < 0.7 {
		t.Errorf("only %.2f of profiles have an app some campaign promotes", s)
	}
	best := 0
	for _, n := range inst {
		best = max(best, n)
	}
	if s := float64(best) / float64(len(in.profiles)); s < 0.1 {
		t.Errorf("most installed app on only %.2f of devices", s)
	}
	near(t, "profiles with segments", share(in.profiles, func(p Profile) bool { return len(p.Segments) > 0 }), 0.85, 0.02)
}

func TestScales(t *testing.T) {
	for name, sc := range Scales {
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	l := Scales["large"]
	if l.Campaigns < 200_000 || l.Creatives < 1_000_000 || l.Placements < 500_000 || l.Profiles < 1_000_000 {
		t.Errorf("large too small: %+v", l)
	}
	bad := []Scale{
		{},
		{Campaigns: 10, Creatives: 9, Advertisers: 1},
		{Campaigns: 10, Creatives: 101, Advertisers: 1},
		{Campaigns: 10, Creatives: 10, Advertisers: 0},
		{Campaigns: 10, Creatives: 10, Advertisers: 1, Placements: 5},
		{Campaigns: 10, Creatives: 10, Advertisers: 1, PredictionCoverage: 1.5},
	}
	for _, sc := range bad {
		if sc.Validate() == nil {
			t.Errorf("%+v accepted", sc)
		}
		if _, err := Generate(t.TempDir(), sc, 1, nil); err == nil {
			t.Errorf("Generate accepted %+v", sc)
		}
	}
}

// Extreme creative counts (1 and 10 per campaign) hit exactly.
func TestCreativeCountBounds(t *testing.T) {
	for _, n := range []int{50, 500, 237} {
		sc := Scale{Campaigns: 50, Creatives: n, Placements: 10, Advertisers: 5, Apps: 3, Profiles: 10, PredictionCoverage: 1}
		dir, st := generate(t, sc, 5)
		if got := st.File(inventory.CreativesFile).Records; got != n {
			t.Errorf("asked %d creatives, got %d", n, got)
		}
		in := load(t, dir)
		validate(t, in)
	}
}

func TestGenerateErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(f, Scales["small"], 1, nil); err == nil {
		t.Error("Generate into a regular file succeeded")
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Generate(t.TempDir(), Scales["small"], 1, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, name := range FileNames {
		if !strings.Contains(out, name) {
			t.Errorf("progress does not mention %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "records/s") || !strings.Contains(out, "gen: done") {
		t.Errorf("progress lacks rates or summary:\n%s", out)
	}
}

func TestAppendHelpers(t *testing.T) {
	if got := string(appendNum(nil, 42, 5)); got != "00042" {
		t.Errorf("appendNum = %q", got)
	}
	if got := string(appendNum(nil, 1234567, 3)); got != "1234567" {
		t.Errorf("appendNum wide = %q", got)
	}
	for _, s := range []string{"plain", `q"uote\back`, "ctl\x01\n", "ünï"} {
		var back string
		if err := json.Unmarshal(appendStr(nil, s), &back); err != nil || back != s {
			t.Errorf("appendStr(%q) round trip = %q, %v", s, back, err)
		}
	}
	if u := string(appendUUID(nil, ^uint64(0), 0, true)); !upperUUID.MatchString(u) {
		t.Errorf("upper UUID %q", u)
	}
	if u := string(appendUUID(nil, 0, ^uint64(0), false)); !lowerUUID.MatchString(u) {
		t.Errorf("lower UUID %q", u)
	}
}

// TestLarge times a large generation. It writes ~650 MB, so it only runs when
// ADEDGE_GEN_LARGE is set (to a directory, or "1" for a temp dir).
func TestLarge(t *testing.T) {
	dir := os.Getenv("ADEDGE_GEN_LARGE")
	if dir == "" {
		t.Skip("set ADEDGE_GEN_LARGE=1 (or a directory) to time a large generation")
	}
	if dir == "1" {
		dir = t.TempDir()
	}
	st, err := Generate(dir, Scales["large"], 1, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Files {
		t.Logf("%-18s %9d records %12d bytes", f.Name, f.Records, f.Bytes)
	}
	t.Logf("total %d records, %.1f MB, %v", st.Records, float64(st.Bytes)/1e6, st.Elapsed)
	if st.Elapsed > time.Minute {
		t.Errorf("large generation took %v", st.Elapsed)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// BenchmarkGenerate reports lines/s and MB/s for the medium scale.
func BenchmarkGenerate(b *testing.B) {
	sc := Scales["medium"]
	dir := b.TempDir()
	var st Stats
	for b.Loop() {
		var err error
		if st, err = Generate(dir, sc, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(st.Records)/sec, "lines/s")
	b.ReportMetric(float64(st.Bytes)/1e6/sec, "MB/s")
}
