package snaptool

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/gen"
)

func TestLookupRanksAndExplains(t *testing.T) {
	w := baseWorld()
	w.experiments.Tests[1].Params = map[string]float64{"weight_cpc": 0.5}
	w.experiments.Tests = append(w.experiments.Tests, inventory.ExperimentTest{ID: "t3", Variant: "min_ctr_2pc", ShareBP: 1000, Params: map[string]float64{"min_ctr": 0.02}})
	res := w.build(t)
	var out bytes.Buffer
	opts := LookupOptions{OSVersion: "13", DeviceType: "phone", Now: dataTime}
	if err := Lookup(&out, res.Path, "p-banner", "US", "android", opts); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`(?m)^placement\s+p-banner\s+app com\.example\.game\s+formats banner\s+floor 0\.50$`,
		`(?m)^blocked\s+advertisers: umbrella\s+categories: IAB25$`,
		`(?m)^profile\s+none \(no device id or profile miss\)$`,
		`(?m)^bucket\s+control/control \(set exp-1\): floor x1, weights cpm 1 cpc 1 cpi 1, min CTR 0$`,
		`(?m)^formats\s+banner \(what the placement allows and the slot takes\)$`,
		`(?m)^lists\s+banner/US/android: 7 candidates, 1 eligible$`,
		`(?m)^serves\s+c-02 creative cr-03 \(banner, rank 1, eCPM 5\.00, score 5\.00\)$`,
		`(?m)^1\s+c-02\s+globex\s+IAB2\s+cpc\s+0\.50\s+0\.0100\s+5\.00\s+banner\s+cr-03\s+serves$`,
		`(?m)^2\s+c-05\s+umbrella\s+IAB5\s+cpm\s+4\.00\s+0\.0020\s+4\.00\s+banner\s+cr-06\s+no: advertiser umbrella blocked$`,
		`(?m)^3\s+c-06\s+.*no: category IAB25 blocked$`,
		`(?m)^4\s+c-04\s+.*no: not started \(starts 2027-01-16T08:00:00Z\)$`,
		`(?m)^5\s+c-01\s+.*no: android 13\.0\.0 < min 14\.0\.0$`,
		`(?m)^6\s+c-03\s+.*no: device phone not targeted \(tablet only\)$`,
		`(?m)^7\s+c-07\s+.*no: eCPM 0\.10 < floor 0\.50$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("lookup output lacks %s\n%s", want, text)
		}
	}

	// As at the edge: no OS version skips campaigns with a minimum, no
	// device type means phone. Later, c-04 has started and is outscored;
	// a limit of 2 still reports the served candidate.
	report := func(opts LookupOptions) LookupReport {
		t.Helper()
		out.Reset()
		opts.JSON = true
		if err := Lookup(&out, res.Path, "p-banner", "US", "android", opts); err != nil {
			t.Fatal(err)
		}
		var rep LookupReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	later := dataTime.AddDate(0, 0, 2)
	rep := report(LookupOptions{Now: later, Limit: 2})
	if rep.Candidates != 7 || rep.Eligible != 2 || len(rep.Rows) != 2 || rep.Serves == nil || rep.Serves.Campaign != "c-02" ||
		rep.DeviceType != "phone" || rep.Outcome != "filled" {
		t.Fatalf("report %+v", rep)
	}
	if !slices.Equal(rep.Rows[1].WhyNot, []string{"advertiser umbrella blocked"}) || rep.Rows[1].Eligible || rep.Rows[1].Verdict != "skipped" {
		t.Errorf("row 2 %+v", rep.Rows[1])
	}
	rep = report(LookupOptions{Now: later, Limit: -1})
	verdicts := map[string]string{}
	for _, r := range rep.Rows {
		verdicts[r.Campaign] = r.Verdict + ": " + strings.Join(r.WhyNot, "; ")
	}
	for c, want := range map[string]string{
		"c-02": "won: ", "c-04": "outscored: outscored by c-02 (score 5.00)",
		"c-01": "skipped: android version unknown, min 14.0.0", "c-07": "below_floor: eCPM 0.10 < floor 0.50",
	} {
		if verdicts[c] != want {
			t.Errorf("%s: %q, want %q", c, verdicts[c], want)
		}
	}

	// The A/B parameters: a lower CPC weight lets c-04 outscore c-02; a
	// MinCTR skips c-02; a floor multiplier raises the floor.
	rep = report(LookupOptions{Now: later, Test: "t2", Limit: -1})
	if rep.Serves == nil || rep.Serves.Campaign != "c-04" || rep.Rows[0].Verdict != "outscored" || rep.Rows[0].ScoreMicros != 2_500_000 ||
		rep.Bucket.Variant != "cpc_boost" || rep.Bucket.Params.WeightCPC != 0.5 {
		t.Errorf("t2: %+v", rep)
	}
	rep = report(LookupOptions{Now: later, Test: "t3", Limit: -1})
	if rep.Serves == nil || rep.Serves.Campaign != "c-04" || !slices.Equal(rep.Rows[0].WhyNot, []string{"CTR 0.0100 < min_ctr 0.02"}) {
		t.Errorf("t3: %+v", rep.Rows[0])
	}
	// With a profile, the conditions lookup cannot know are listed.
	rep = report(LookupOptions{Now: later, OSVersion: "14", Segments: []string{"gamers"}, Limit: -1})
	if !rep.Profile || rep.Rows[4].Campaign != "c-01" || rep.Rows[4].Verdict != "outscored" || !slices.Equal(rep.Rows[4].Needs, []string{"under cap 3 per 3600s"}) {
		t.Errorf("with a profile: %+v", rep.Rows[4])
	}
	rep = report(LookupOptions{Now: later, Test: "t1", Limit: -1})
	if rep.FloorMicros != 550_000 || !slices.Equal(rep.Rows[6].WhyNot, []string{"eCPM 0.10 < floor 0.55 (0.50 x 1.1)"}) {
		t.Errorf("t1: floor %d, %+v", rep.FloorMicros, rep.Rows[6])
	}

	// An interstitial placement showing banners and videos reads both
	// lists; an empty list is a no-fill, not an error.
	out.Reset()
	if err := Lookup(&out, res.Path, "p-inter", "FR", "ios", LookupOptions{Now: dataTime}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "banner/FR/ios, video/FR/ios: 0 candidates, 0 eligible") || !strings.Contains(out.String(), "no-fill (no_candidates)") {
		t.Errorf("empty list output\n%s", out.String())
	}
}

// TestLookupFormatDecisions: lookup says, creative by creative, why a
// candidate's creatives do not fit the slot, as selection decides it.
func TestLookupFormatDecisions(t *testing.T) {
	res := baseWorld().build(t)
	var out bytes.Buffer
	report := func(pl string, slot SlotOptions) LookupReport {
		t.Helper()
		out.Reset()
		if err := Lookup(&out, res.Path, pl, "US", "android", LookupOptions{OSVersion: "14", Now: dataTime, Limit: -1, JSON: true, Slot: slot}); err != nil {
			t.Fatal(err)
		}
		var rep LookupReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	row := func(rep LookupReport, campaign, format string) CandidateRow {
		t.Helper()
		for _, r := range rep.Rows {
			if r.Campaign == campaign && r.Format == format {
				return r
			}
		}
		t.Fatalf("no %s row for %s in %+v", format, campaign, rep.Rows)
		return CandidateRow{}
	}
	// The interstitial slot: the 320x50 banners are too small, c-01's
	// 30-second video fits and serves.
	rep := report("p-inter", SlotOptions{})
	if !slices.Equal(rep.Formats, []string{"banner", "video"}) || !rep.Placement.Interstitial || rep.Serves == nil ||
		rep.Serves.Campaign != "c-01" || rep.Serves.Served != "cr-02" || rep.Serves.Format != "video" {
		t.Fatalf("p-inter: %+v", rep)
	}
	if r := row(rep, "c-02", "banner"); r.Verdict != "skipped" || !slices.Equal(r.WhyNot, []string{"no creative fits the slot: cr-03 too_small_for_interstitial (320x50)"}) {
		t.Errorf("c-02 in the interstitial slot: %+v", r)
	}
	// A player that takes 15 s at most: the video does not fit either.
	rep = report("p-inter", SlotOptions{MaxDuration: 15})
	if rep.Serves != nil || rep.Outcome != "all_ineligible" {
		t.Fatalf("maxduration 15: %+v", rep)
	}
	if r := row(rep, "c-01", "video"); !slices.Equal(r.WhyNot, []string{"no creative fits the slot: cr-02 duration_out_of_range (video 30s video/mp4)"}) ||
		len(r.Fits) != 1 || r.Fits[0] != (CreativeFitRow{Creative: "cr-02", Fit: "duration_out_of_range", Detail: "video 30s video/mp4"}) {
		t.Errorf("c-01 video with maxduration 15: %+v", r)
	}
	// A banner slot asking 300x250 only: every 320x50 banner misfits;
	// a slot that takes video only reads no list at p-banner.
	rep = report("p-banner", SlotOptions{Sizes: []string{"300x250"}})
	if rep.Serves != nil || row(rep, "c-02", "banner").WhyNot[0] != "no creative fits the slot: cr-03 size_not_requested (320x50)" {
		t.Errorf("300x250: %+v", rep)
	}
	if rep = report("p-banner", SlotOptions{Formats: []string{"video"}}); len(rep.Formats) != 0 || len(rep.Keys) != 0 || rep.Outcome != "no_candidates" {
		t.Errorf("video at a banner placement: %+v", rep)
	}
	// Bad slot arguments are argument errors.
	for _, slot := range []SlotOptions{{Formats: []string{"audio"}}, {Sizes: []string{"320"}}, {MinDuration: 30, MaxDuration: 15}} {
		if err := Lookup(io.Discard, res.Path, "p-banner", "US", "android", LookupOptions{Slot: slot}); !errors.Is(err, ErrBadArgument) {
			t.Errorf("slot %+v: %v", slot, err)
		}
	}
}

// TestLookupServesWhatSelectServes: for every placement, a spread of
// countries, both OSes, every bucket of the experiment set, with and
// without a profile, lookup's served candidate is Select's answer.
func TestLookupServesWhatSelectServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inv")
	if _, err := gen.Generate(dir, gen.Scales["small"], 11, nil); err != nil {
		t.Fatal(err)
	}
	res, err := builder.Build(builder.Options{Input: dir, Out: t.TempDir(), Created: dataTime})
	if err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := abtest.SnapshotBucketer(r.ExperimentsJSON(), abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	buckets := []string{abtest.ControlTest}
	for _, tt := range b.Set().Tests {
		buckets = append(buckets, tt.ID)
	}
	if len(buckets) < 4 {
		t.Fatalf("generated set has %d buckets: the test wants every parameter kind", len(buckets))
	}
	var segs []string
	for i := 0; i < r.NumSegments(); i += 3 {
		segs = append(segs, r.Segment(uint32(i)))
	}
	var sel selection.Selector
	fills, compared := 0, 0
	differ := map[string]bool{} // placement/country/os whose winner depends on the bucket
	for pi := 0; pi < r.NumPlacements(); pi += 2 {
		p, _ := r.Placement(pi)
		id := r.String(p.ID)
		for _, cc := range []string{"US", "GB", "DE", "BR"} {
			for _, osName := range []string{"android", "ios"} {
				winners := map[string]bool{}
				for _, bucket := range buckets {
					for _, prof := range []*profiles.Profile{nil, {Segments: segs}} {
						opts := LookupOptions{Test: bucket, OSVersion: "15", Now: dataTime.Add(time.Hour), Limit: 1}
						if prof != nil {
							opts.Segments = prof.Segments
						}
						rep, err := BuildLookupReport(r, id, cc, osName, opts)
						if err != nil {
							t.Fatal(err)
						}
						country, _ := snapshot.CountryIndex(cc)
						os, _ := snapshot.ParseOS(osName)
						ti, _ := b.TestIndex(bucket)
						var got selection.Result
						sel.Select(r, &selection.Request{Placement: []byte(id), Country: country, OS: os, OSVersion: 15 << 16,
							DeviceType: snapshot.DevicePhone, Now: dataTime.Add(time.Hour).Unix()}, prof, b.TestParams(ti), &got)
						compared++
						if rep.Outcome != got.Outcome.String() {
							t.Fatalf("%s %s %s %s: lookup says %s, Select %s", id, cc, osName, bucket, rep.Outcome, got.Outcome)
						}
						if got.Outcome != selection.Filled {
							if rep.Serves != nil {
								t.Fatalf("%s %s %s %s: lookup serves %s on a no-fill", id, cc, osName, bucket, rep.Serves.Campaign)
							}
							continue
						}
						fills++
						if want := campaignID(r, uint32(got.Campaign)); rep.Serves == nil || rep.Serves.Campaign != want || rep.Serves.ECPMMicros != got.ECPMMicros {
							t.Fatalf("%s %s %s %s: lookup serves %+v, Select %s", id, cc, osName, bucket, rep.Serves, want)
						}
						winners[rep.Serves.Campaign] = true
					}
				}
				if len(winners) > 1 {
					differ[id+cc+osName] = true
				}
			}
		}
	}
	t.Logf("%d lookups compared, %d fills, %d keys whose winner depends on bucket or profile", compared, fills, len(differ))
	if fills < compared/4 || len(differ) == 0 {
		t.Fatalf("%d fills of %d, %d bucket-dependent winners: the comparison is not exercising selection", fills, compared, len(differ))
	}
}

func TestLookupErrors(t *testing.T) {
	res := baseWorld().build(t)
	for _, c := range []struct {
		placement, country, os string
		opts                   LookupOptions
		want                   error
		msg                    string
	}{
		{"p-nope", "US", "android", LookupOptions{}, ErrNotFound, `placement "p-nope" is not in snapshot`},
		{"p-banner", "USA", "android", LookupOptions{}, ErrBadArgument, `country "USA"`},
		{"p-banner", "us", "android", LookupOptions{}, ErrBadArgument, `upper-case: "US"`},
		{"p-banner", "US", "windows", LookupOptions{}, ErrBadArgument, `os "windows": want android or ios`},
		{"p-banner", "US", "ios", LookupOptions{OSVersion: "14.x"}, ErrBadArgument, `os version "14.x"`},
		{"p-banner", "US", "ios", LookupOptions{DeviceType: "tv"}, ErrBadArgument, `device type "tv"`},
		{"p-banner", "US", "ios", LookupOptions{Test: "t9"}, ErrBadArgument, `test "t9" is not in experiment set "exp-1" (tests: control, t1, t2)`},
	} {
		err := Lookup(&bytes.Buffer{}, res.Path, c.placement, c.country, c.os, c.opts)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s %s %+v: got %v, want %v mentioning %q", c.placement, c.country, c.os, c.opts, err, c.want, c.msg)
		}
	}
}
