package selection

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/gen"
)

var created = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

type world struct {
	inv *inventory.Inventory
	r   *snapshot.Reader
}

func newWorld(tb testing.TB, scale string) *world {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "inv")
	if _, err := gen.Generate(dir, gen.Scales[scale], 3, nil); err != nil {
		tb.Fatal(err)
	}
	res, err := builder.Build(builder.Options{Input: dir, Out: tb.TempDir(), Created: created})
	if err != nil {
		tb.Fatal(err)
	}
	inv, err := inventory.Load(dir, inventory.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := snapshot.Open(res.Path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return &world{inv: inv, r: r}
}

// oracle picks the winner from the inventory itself, campaign by campaign,
// with the rules written out independently of Select.
func (w *world) oracle(pl *inventory.Placement, req *Request, prof *profiles.Profile, p *abtest.Params) (campaign int, ecpm int64) {
	campaign, ecpm = -1, 0
	bestScore := math.Inf(-1)
	country := snapshot.CountryCode(req.Country)
	for ci := range w.inv.Campaigns {
		c := &w.inv.Campaigns[ci]
		start, _ := time.Parse(time.RFC3339, c.Start)
		end, _ := time.Parse(time.RFC3339, c.End)
		if !end.After(created) || req.Now < start.Unix() || req.Now >= end.Unix() {
			continue
		}
		if !slices.Contains(c.Targeting.Countries, country) {
			continue
		}
		if slices.Contains(req.Exclude, uint32(ci)) {
			continue
		}
		osOK := false
		for _, o := range c.Targeting.OS {
			if o.Name == req.OS.String() {
				v, _ := snapshot.ParseOSVersion(o.MinVersion)
				osOK = o.MinVersion == "" || req.OSVersion >= v
				if o.MinVersion != "" && req.OSVersion == 0 {
					osOK = false
				}
			}
		}
		if !osOK {
			continue
		}
		app := string(req.App)
		if app == "" {
			app = pl.App
		}
		if (len(c.AllowedBundles) > 0 && !slices.Contains(c.AllowedBundles, app)) || slices.Contains(c.BlockedBundles, app) {
			continue
		}
		hasFit := false
		for _, id := range c.CreativeIDs {
			i, _ := w.inv.CreativeIndex(id)
			hasFit = hasFit || oracleFits(&w.inv.Creatives[i], pl, req)
		}
		if !hasFit {
			continue
		}
		dev := "phone"
		if req.DeviceType == snapshot.DeviceTablet {
			dev = "tablet"
		}
		if len(c.Targeting.DeviceTypes) > 0 && !slices.Contains(c.Targeting.DeviceTypes, dev) {
			continue
		}
		if slices.Contains(pl.BlockedAdvertisers, c.Advertiser) || slices.Contains(pl.BlockedCategories, c.Category) {
			continue
		}
		if len(c.Targeting.Segments) > 0 {
			if prof == nil || !slices.ContainsFunc(c.Targeting.Segments, prof.HasSegment) {
				continue
			}
		}
		if prof != nil && c.PromotedApp != "" && prof.HasApp(profiles.AppHash(c.PromotedApp)) {
			continue
		}
		if prof != nil && c.FrequencyCap != nil && prof.CapCount(c.ID, c.FrequencyCap.PeriodSeconds, req.Now) >= c.FrequencyCap.Count {
			continue
		}
		osv, _ := snapshot.ParseOS(req.OS.String())
		ctr, ir := w.inv.Prediction(ci, req.Country, osv)
		bt, _ := snapshot.ParseBidType(c.BidType)
		if p.MinCTR > 0 && bt != snapshot.BidCPM && float64(float32(ctr)) < p.MinCTR {
			continue
		}
		e := builder.ECPMMicros(bt, c.BidMicros, ctr, ir)
		if float64(e) < max(float64(pl.FloorMicros)*p.FloorMultiplier, float64(req.MinECPMMicros)) {
			continue
		}
		score := float64(e) * [3]float64{p.WeightCPM, p.WeightCPC, p.WeightCPI}[bt]
		if score > bestScore || (score == bestScore && (e > ecpm || (e == ecpm && ci < campaign))) {
			campaign, ecpm, bestScore = ci, e, score
		}
	}
	return campaign, ecpm
}

// oracleFits is the format rules of docs/API.md written out on the
// inventory: the placement allows the creative's format and the request
// accepts it (a video only with a VAST 4 protocol when protocols are
// named), its IAB category is not blocked, a full-screen banner only in an
// interstitial slot, a sized banner only in a size asked for, a video
// within the durations and with a media file of an accepted mime.
func oracleFits(cr *inventory.Creative, pl *inventory.Placement, req *Request) bool {
	f, _ := snapshot.ParseFormat(cr.Format)
	if !slices.Contains(pl.Formats, cr.Format) || (req.Accept != 0 && req.Accept&(1<<f) == 0) {
		return false
	}
	if cr.IABCategory != "" && slices.Contains(pl.BlockedCategories, cr.IABCategory) {
		return false
	}
	switch cr.Format {
	case "banner":
		instl := pl.Interstitial || req.Interstitial
		switch {
		case cr.Width == 0:
			return instl
		case len(req.Sizes) > 0:
			return slices.Contains(req.Sizes, snapshot.Size{W: cr.Width, H: cr.Height})
		}
		return !instl || (cr.Width >= 320 && cr.Height >= 320)
	case "video":
		if req.Protocols != 0 && req.Protocols&(1<<7|1<<11|1<<13) == 0 {
			return false
		}
		d := int32(cr.Video.DurationSeconds)
		if (req.MinDuration > 0 && d < req.MinDuration) || (req.MaxDuration > 0 && d > req.MaxDuration) {
			return false
		}
		if len(req.Mimes) == 0 {
			return true
		}
		for _, m := range cr.Video.MediaFiles {
			if slices.ContainsFunc(req.Mimes, func(b []byte) bool { return string(b) == m.MIME }) {
				return true
			}
		}
		return false
	}
	return true
}

// TestSelectMatchesOracle runs thousands of random requests, profiles and
// parameter sets through Select and through the oracle and demands the same
// winner every time; it also demands that every skip rule fired somewhere,
// so the comparison is not vacuous.
func TestSelectMatchesOracle(t *testing.T) {
	w := newWorld(t, "small")
	rng := rand.New(rand.NewPCG(1, 2))
	countries := []string{"US", "US", "US", "GB", "DE", "JP", "BR", "IN", "FR"}
	var segNames []string
	for i := 0; i < w.r.NumSegments(); i++ {
		segNames = append(segNames, w.r.Segment(uint32(i)))
	}
	var apps, bundles []string
	for _, c := range w.inv.Campaigns {
		if c.PromotedApp != "" {
			apps = append(apps, c.PromotedApp)
		}
		bundles = append(append(bundles, c.AllowedBundles...), c.BlockedBundles...)
	}
	paramSets := []abtest.Params{
		abtest.Defaults,
		abtest.Defaults.Apply(map[string]float64{"weight_cpi": 1.5, "weight_cpc": 0.7}),
		abtest.Defaults.Apply(map[string]float64{"floor_multiplier": 1.5, "min_ctr": 0.01}),
		abtest.Defaults.Apply(map[string]float64{"weight_cpm": 3}),
	}
	sel := Selector{MaxScan: 1 << 30}
	var outcomes [NumOutcomes]int
	var skips [NumSkips]int
	for n := 0; n < 4000; n++ {
		pl := &w.inv.Placements[rng.IntN(len(w.inv.Placements))]
		cc, _ := snapshot.CountryIndex(countries[rng.IntN(len(countries))])
		req := Request{
			Placement:  []byte(pl.ID),
			Country:    cc,
			OS:         snapshot.OS(rng.IntN(2)),
			DeviceType: []uint8{snapshot.DevicePhone, snapshot.DeviceTablet}[rng.IntN(2)],
			Now:        created.Unix() + rng.Int64N(400*86400) - 30*86400,
			Seed:       rng.Uint64(),
		}
		if rng.IntN(4) > 0 {
			req.OSVersion = uint32(8+rng.IntN(10)) << 16
		}
		if rng.IntN(3) == 0 { // a multi-imp request: earlier winners excluded
			var res Result
			sel.Select(w.r, &req, nil, &abtest.Defaults, &res)
			if res.Outcome == Filled {
				req.Exclude = append(req.Exclude, uint32(res.Campaign), uint32(rng.IntN(len(w.inv.Campaigns))))
			}
		}
		if rng.IntN(8) == 0 {
			req.MinECPMMicros = rng.Int64N(20_000_000)
		}
		randomSlot(rng, &req, bundles)
		var prof *profiles.Profile
		if rng.IntN(3) > 0 {
			prof = &profiles.Profile{}
			for _, s := range segNames {
				if rng.IntN(5) == 0 {
					prof.Segments = append(prof.Segments, s)
				}
			}
			for _, a := range apps {
				if rng.IntN(8) == 0 {
					prof.InstalledApps = append(prof.InstalledApps, profiles.AppHash(a))
				}
			}
			slices.Sort(prof.InstalledApps)
			for _, c := range w.inv.Campaigns {
				if c.FrequencyCap != nil && rng.IntN(3) == 0 {
					prof.Caps = append(prof.Caps, profiles.Cap{CampaignID: c.ID, Count: c.FrequencyCap.Count,
						WindowStart: profiles.WindowStart(req.Now, c.FrequencyCap.PeriodSeconds)})
				}
			}
		}
		params := &paramSets[rng.IntN(len(paramSets))]
		var res Result
		sel.Select(w.r, &req, prof, params, &res)
		outcomes[res.Outcome]++
		for i, s := range res.Skipped {
			skips[i] += int(s)
		}
		checkExplain(t, &sel, w.r, &req, prof, params, &res)
		wantC, wantE := w.oracle(pl, &req, prof, params)
		gotC := res.Campaign
		if res.Outcome != Filled {
			gotC = -1
		}
		if gotC != wantC {
			t.Fatalf("request %d %+v params %+v: Select chose campaign %d (%v), oracle %d (eCPM %d)", n, req, *params, gotC, res.Outcome, wantC, wantE)
		}
		if gotC >= 0 {
			if res.ECPMMicros != wantE || res.PriceMicros != wantE/1000 {
				t.Fatalf("eCPM %d price %d, want %d", res.ECPMMicros, res.PriceMicros, wantE)
			}
			cr := &w.inv.Creatives[res.Creative]
			if !oracleFits(cr, pl, &req) || !slices.Contains(w.inv.Campaigns[gotC].CreativeIDs, cr.ID) || cr.Format != res.Format.String() {
				t.Fatalf("creative %s does not belong to the winner or does not fit the slot (request %+v)", cr.ID, req)
			}
		}
	}
	t.Logf("outcomes %v skips %v", outcomes, skips)
	if outcomes[Filled] < 1000 {
		t.Fatalf("only %d fills out of 4000: the test is not exercising selection", outcomes[Filled])
	}
	for i, n := range skips {
		if n == 0 && i != SkipCorrupt && i != SkipPacing {
			t.Errorf("skip rule %s never fired", SkipNames[i])
		}
	}
	var res Result
	sel.Select(w.r, &Request{Placement: []byte("no-such-placement")}, nil, &abtest.Defaults, &res)
	if res.Outcome != UnknownPlacement {
		t.Fatalf("unknown placement: %v", res.Outcome)
	}
}

// randomSlot gives a request what an OpenRTB imp may say about its slot:
// accepted formats, interstitial, banner sizes, video mimes, durations and
// protocols, the app.
func randomSlot(rng *rand.Rand, req *Request, bundles []string) {
	if rng.IntN(3) == 0 {
		req.Accept = snapshot.FormatMask(1 + rng.IntN(int(snapshot.AllFormats)))
	}
	req.Interstitial = rng.IntN(8) == 0
	if rng.IntN(3) == 0 {
		sizes := []snapshot.Size{{W: 320, H: 50}, {W: 300, H: 250}, {W: 728, H: 90}, {W: 320, H: 480}, {W: 480, H: 320}, {W: 768, H: 1024}}
		for range 1 + rng.IntN(2) {
			req.Sizes = append(req.Sizes, sizes[rng.IntN(len(sizes))])
		}
	}
	if rng.IntN(3) == 0 {
		req.Mimes = [][]byte{[]byte([]string{"video/mp4", "video/webm", "application/x-mpegURL", "video/ogg"}[rng.IntN(4)])}
	}
	if rng.IntN(3) == 0 {
		req.MaxDuration = []int32{15, 30}[rng.IntN(2)]
		if rng.IntN(2) == 0 {
			req.MinDuration = 10
		}
	}
	switch rng.IntN(8) {
	case 0:
		req.Protocols = 1<<2 | 1<<3 // VAST 2 and 3 only
	case 1:
		req.Protocols = 1<<3 | 1<<7
	}
	if len(bundles) > 0 && rng.IntN(3) == 0 {
		req.App = []byte(bundles[rng.IntN(len(bundles))])
	}
}

// checkExplain demands that Explain agrees with Select's res: the same
// Result, one Won exactly when filled and it is the Result's campaign, the
// winner's score the highest of all eligible candidates (the earliest on a
// tie), and the skips Select counted are the Skipped verdicts among the
// candidates it examined.
func checkExplain(t *testing.T, sel *Selector, r *snapshot.Reader, req *Request, prof *profiles.Profile, p *abtest.Params, res *Result) {
	t.Helper()
	ex := sel.Explain(r, req, prof, p)
	if ex.Result != *res {
		t.Fatalf("Explain's result %+v, Select's %+v", ex.Result, *res)
	}
	if res.Outcome == UnknownPlacement {
		return
	}
	var skips [NumSkips]uint16
	won, eligibleN := -1, 0
	for i, c := range ex.Candidates {
		if c.Rank != i || (c.Verdict == Skipped) != (c.Skip >= 0) {
			t.Fatalf("candidate %d: %+v", i, c)
		}
		if i < res.Scanned && c.Verdict == Skipped {
			skips[c.Skip]++
		}
		if c.Verdict == Won {
			if won >= 0 {
				t.Fatalf("two winners: %d and %d", won, i)
			}
			won = i
		}
		if c.Verdict == Won || c.Verdict == Outscored {
			eligibleN++
			if float64(c.Candidate.ECPMMicros) < ex.Floor {
				t.Fatalf("candidate %d (%v) is under the floor %v", i, c.Verdict, ex.Floor)
			}
		}
	}
	if (won >= 0) != (res.Outcome == Filled) || (won >= 0 && (int(ex.Candidates[won].Candidate.Campaign) != res.Campaign || won != res.Rank)) {
		t.Fatalf("winner %d, result %+v", won, *res)
	}
	for i, c := range ex.Candidates {
		// The creative verdicts agree with the candidate's: a format skip
		// has no creative that fits; the winner's creative is the first
		// that fits in pick's order.
		firstFit := -1
		for _, cf := range c.Creatives {
			if cf.Fit == Fits && firstFit < 0 {
				firstFit = cf.Creative
			}
		}
		switch {
		case c.Verdict == Skipped && (c.Skip == SkipFormat || c.Skip == SkipBlocked) && c.Creatives != nil && firstFit >= 0:
			t.Fatalf("candidate %d skipped for %s with a creative that fits: %+v", i, SkipNames[c.Skip], c.Creatives)
		case c.Verdict == Won && firstFit != res.Creative:
			t.Fatalf("winner's creative %d, first fitting %d: %+v", res.Creative, firstFit, c.Creatives)
		}
	}
	if won < 0 && eligibleN > 0 {
		t.Fatalf("no fill (%v) but %d candidates are called eligible", res.Outcome, eligibleN)
	}
	for i, c := range ex.Candidates {
		if c.Verdict == Outscored {
			if w := ex.Candidates[won]; c.Score > w.Score || (c.Score == w.Score && i < won) {
				t.Fatalf("outscored candidate %d (score %v) beats the winner %d (score %v)", i, c.Score, won, w.Score)
			}
		}
	}
	if skips != res.Skipped {
		t.Fatalf("skips among the %d examined %v, Select counted %v", res.Scanned, skips, res.Skipped)
	}
}

// TestSelectAllocs: the request path allocates nothing, filled or not.
func TestSelectAllocs(t *testing.T) {
	w := newWorld(t, "small")
	us, _ := snapshot.CountryIndex("US")
	prof := &profiles.Profile{Segments: []string{"gamers"}}
	var sel Selector
	var res Result
	for _, pl := range w.inv.Placements[:20] {
		req := Request{Placement: []byte(pl.ID), Country: us, OS: snapshot.OSAndroid, OSVersion: 15 << 16, DeviceType: snapshot.DevicePhone, Now: created.Unix()}
		if n := testing.AllocsPerRun(50, func() { sel.Select(w.r, &req, prof, &abtest.Defaults, &res) }); n != 0 {
			t.Fatalf("placement %s: %v allocs/op", pl.ID, n)
		}
	}
}

func TestMaxScanBoundsWork(t *testing.T) {
	w := newWorld(t, "small")
	us, _ := snapshot.CountryIndex("US")
	sel := Selector{MaxScan: 3}
	// A profile-less request on a placement whose list is long: campaigns
	// needing segments are skipped, so scans continue; MaxScan stops them.
	for _, pl := range w.inv.Placements {
		f, _ := snapshot.ParseFormat(pl.Formats[0])
		if pl.FloorMicros != 0 || w.r.Candidates(f, us, snapshot.OSAndroid).Len() < 20 {
			continue
		}
		var res Result
		sel.Select(w.r, &Request{Placement: []byte(pl.ID), Country: us, OS: snapshot.OSAndroid, DeviceType: snapshot.DevicePhone, Now: 0}, nil, &abtest.Defaults, &res)
		if res.Scanned > 3 || !res.Truncated {
			t.Fatalf("scanned %d (truncated %v) with MaxScan 3 at Now=0 (everything off schedule)", res.Scanned, res.Truncated)
		}
		ex := sel.Explain(w.r, &Request{Placement: []byte(pl.ID), Country: us, OS: snapshot.OSAndroid, DeviceType: snapshot.DevicePhone, Now: 0}, nil, &abtest.Defaults)
		for i, c := range ex.Candidates {
			if i >= 3 && c.Verdict != NotScanned && c.Verdict != UnderFloor {
				t.Fatalf("candidate %d past MaxScan: %v", i, c.Verdict)
			}
			if i < 3 && (c.Verdict != Skipped || c.Skip != SkipSchedule) {
				t.Fatalf("candidate %d at Now=0: %v %d", i, c.Verdict, c.Skip)
			}
		}
		return
	}
	t.Fatal("no placement with a long list")
}

// BenchmarkSelect is the selection hot path on the medium scale over a mix
// of placements, countries and both OSes, with a profile.
func BenchmarkSelect(b *testing.B) {
	w := newWorld(b, "medium")
	benchSelect(b, w, &Selector{})
}

func benchSelect(b *testing.B, w *world, sel *Selector) {
	countries := []string{"US", "GB", "DE", "JP", "BR"}
	reqs := make([]Request, 512)
	for i := range reqs {
		cc, _ := snapshot.CountryIndex(countries[i%len(countries)])
		reqs[i] = Request{Placement: []byte(w.inv.Placements[(i*7919)%len(w.inv.Placements)].ID), Country: cc,
			OS: snapshot.OS(i & 1), OSVersion: 15 << 16, DeviceType: snapshot.DevicePhone, Now: created.Unix(), Seed: uint64(i)}
	}
	prof := &profiles.Profile{Segments: []string{"gamers", "casual_players"}}
	var res Result
	fills := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sel.Select(w.r, &reqs[i&511], prof, &abtest.Defaults, &res)
		if res.Outcome == Filled {
			fills++
		}
	}
	b.ReportMetric(float64(fills)/float64(b.N), "fill")
}

func ExampleOutcome_String() {
	fmt.Println(Filled, BelowFloor)
	// Output: filled below_floor
}
