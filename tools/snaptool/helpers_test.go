package snaptool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/snapshot"
)

// dataTime is the Created time of every test build.
var dataTime = time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC)

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

// world is a hand-written inventory. The banner/US/android list ranks
// c-02 (CPC 0.50 x CTR 0.01 = 5.00), c-05 4.00, c-06 3.50, c-04 3.00,
// c-01 2.00, c-03 1.00, c-07 0.10; c-08 has ended and is in no list.
type world struct {
	campaigns   []inventory.Campaign
	creatives   []inventory.Creative
	placements  []inventory.Placement
	predictions []inventory.Prediction
	experiments inventory.Experiments
}

func banner(id string) inventory.Creative {
	return inventory.Creative{ID: id, Format: "banner", Width: 320, Height: 50,
		AssetURL: "https://cdn.example.com/" + id + ".png", ClickURL: "https://click.example.com/" + id}
}

func usAndroidCPM(id, adv, cat string, bid int64, cr string) inventory.Campaign {
	return inventory.Campaign{
		ID: id, Advertiser: adv, Category: cat, BidType: "cpm", BidMicros: bid, DailyBudgetMicros: 100_000_000,
		Start: rfc(dataTime.AddDate(0, 0, -30)), End: rfc(dataTime.AddDate(0, 0, 30)),
		Targeting:   inventory.Targeting{Countries: []string{"US"}, OS: []inventory.OSTarget{{Name: "android"}}},
		CreativeIDs: []string{cr},
	}
}

func baseWorld() *world {
	w := &world{}
	c1 := usAndroidCPM("c-01", "acme", "IAB1", 2_000_000, "cr-01")
	c1.CreativeIDs = []string{"cr-01", "cr-02"}
	c1.Targeting = inventory.Targeting{Countries: []string{"US", "DE"}, OS: []inventory.OSTarget{{Name: "android", MinVersion: "14"}, {Name: "ios"}}}
	c1.FrequencyCap = &inventory.FrequencyCap{Count: 3, PeriodSeconds: 3600}
	c2 := usAndroidCPM("c-02", "globex", "IAB2", 500_000, "cr-03")
	c2.BidType = "cpc"
	c3 := usAndroidCPM("c-03", "initech", "IAB3", 1_000_000, "cr-04")
	c3.Targeting.DeviceTypes = []string{"tablet"}
	c4 := usAndroidCPM("c-04", "hooli", "IAB4", 3_000_000, "cr-05")
	c4.Start = rfc(dataTime.AddDate(0, 0, 1))
	c5 := usAndroidCPM("c-05", "umbrella", "IAB5", 4_000_000, "cr-06")
	c6 := usAndroidCPM("c-06", "soylent", "IAB25", 3_500_000, "cr-07")
	c6.Targeting.Segments = []string{"gamers"}
	c7 := usAndroidCPM("c-07", "acme", "IAB1", 100_000, "cr-08")
	c8 := usAndroidCPM("c-08", "globex", "IAB2", 9_000_000, "cr-09")
	c8.Start, c8.End = rfc(dataTime.AddDate(0, 0, -10)), rfc(dataTime.AddDate(0, 0, -1))
	w.campaigns = []inventory.Campaign{c1, c2, c3, c4, c5, c6, c7, c8}
	for _, id := range []string{"cr-01", "cr-03", "cr-04", "cr-05", "cr-06", "cr-07", "cr-08", "cr-09"} {
		w.creatives = append(w.creatives, banner(id))
	}
	w.creatives = append(w.creatives, inventory.Creative{ID: "cr-02", Format: "video",
		AssetURL: "https://cdn.example.com/cr-02.mp4", ClickURL: "https://click.example.com/cr-02",
		Video: &inventory.Video{DurationSeconds: 30, MediaFiles: []inventory.MediaFile{{URL: "https://cdn.example.com/cr-02.mp4", MIME: "video/mp4", Width: 1280, Height: 720}}}})
	w.placements = []inventory.Placement{
		{ID: "p-banner", App: "com.example.game", Formats: []string{"banner"}, FloorMicros: 500_000,
			BlockedAdvertisers: []string{"umbrella"}, BlockedCategories: []string{"IAB25"}},
		{ID: "p-inter", App: "com.example.game", Formats: []string{"banner", "video"}, Interstitial: true},
	}
	w.predictions = []inventory.Prediction{{CampaignID: "c-02", Country: "US", OS: "android", CTR: 0.01, InstallRate: 0.001}}
	w.experiments = inventory.Experiments{ID: "exp-1", Salt: "s1", Tests: []inventory.ExperimentTest{
		{ID: "t1", Variant: "floor_plus_10", ShareBP: 2000, Params: map[string]float64{"floor_multiplier": 1.1}},
		{ID: "t2", Variant: "cpc_boost", ShareBP: 1000, Params: map[string]float64{"weight_cpc": 1.5}},
	}}
	return w
}

func (w *world) campaign(id string) *inventory.Campaign {
	for i := range w.campaigns {
		if w.campaigns[i].ID == id {
			return &w.campaigns[i]
		}
	}
	return nil
}

func writeJSONL[T any](t *testing.T, path string, rows []T) {
	t.Helper()
	var b bytes.Buffer
	for i := range rows {
		line, err := json.Marshal(&rows[i])
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// build writes the inventory to a temp dir, runs the real builder and
// returns the build result (snapshot and manifests in their own dir).
func (w *world) build(t *testing.T) *builder.Result {
	t.Helper()
	in := t.TempDir()
	writeJSONL(t, filepath.Join(in, inventory.CampaignsFile), w.campaigns)
	writeJSONL(t, filepath.Join(in, inventory.CreativesFile), w.creatives)
	writeJSONL(t, filepath.Join(in, inventory.PlacementsFile), w.placements)
	writeJSONL(t, filepath.Join(in, inventory.PredictionsFile), w.predictions)
	exp, err := json.Marshal(&w.experiments)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, inventory.ExperimentsFile), exp, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := builder.Build(builder.Options{Input: in, Out: t.TempDir(), Created: dataTime})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

// reseal rewrites the snapshot at src into dir/name after mutate has
// changed section bytes in place; the result has valid checksums, so only
// the structural checks can catch what mutate did.
func reseal(t *testing.T, src, dst string, mutate func(id uint32, b []byte)) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.OpenBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sw, err := snapshot.NewWriter(&out, r.Header())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sections() {
		b := append([]byte(nil), data[s.Offset:s.Offset+s.Length]...)
		mutate(s.ID, b)
		if err := sw.WriteSection(s.ID, s.RecordSize, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
