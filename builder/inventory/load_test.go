package inventory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/snapshot"
)

// baseFiles is a small valid inventory; tests edit copies of it, so line
// numbers in expectations refer to these lines.
func baseFiles() map[string][]string {
	return map[string][]string{
		CampaignsFile: {
			`{"id":"cmp-a","advertiser":"acme","category":"games","bid_type":"cpi","bid_micros":2000000,"daily_budget_micros":50000000,"start":"2026-01-01T00:00:00Z","end":"2027-01-01T00:00:00Z","targeting":{"countries":["US","GB"],"os":[{"name":"ios","min_version":"14.0"},{"name":"android"}],"device_types":["phone"],"segments":["gamers"]},"frequency_cap":{"count":3,"period_seconds":3600},"promoted_app":"com.acme.game","creative_ids":["cr-1","cr-2"]}`,
			`{"id":"cmp-b","advertiser":"Globex Corp","category":"shopping","bid_type":"cpm","bid_micros":1500000,"start":"2026-01-01T00:00:00+01:00","end":"2026-06-01T00:00:00Z","targeting":{"countries":["DE"],"os":[{"name":"android","min_version":"8.1"}]},"creative_ids":["cr-3"]}`,
		},
		CreativesFile: {
			`{"id":"cr-1","format":"banner","width":320,"height":50,"asset_url":"https://cdn.example.com/cr-1.png","click_url":"https://click.example.com/c/1?x=y"}`,
			`{"id":"cr-2","format":"video","width":0,"height":0,"asset_url":"https://cdn.example.com/cr-2.mp4","click_url":"https://click.example.com/c/2","adomain":"acme.com","iab_category":"IAB9-30","video":{"duration_seconds":15,"media_files":[{"url":"https://cdn.example.com/cr-2.mp4","mime":"video/mp4","width":1280,"height":720,"bitrate_kbps":1500}]}}`,
			`{"id":"cr-3","format":"native","width":1200,"height":627,"asset_url":"https://cdn.example.com/cr-3.jpg","click_url":"https://click.example.com/c/3"}`,
		},
		PlacementsFile: {
			`{"id":"pl-1","app":"com.pub.news","formats":["banner"],"floor_micros":100000,"blocked_advertisers":["nobody-uses-this"],"blocked_categories":["gambling"]}`,
			`{"id":"pl-2","app":"com.pub.news","formats":["banner","video"],"interstitial":true}`,
		},
		PredictionsFile: {
			`{"campaign_id":"cmp-a","country":"US","os":"ios","ctr":0.02,"install_rate":0.004}`,
			`{"campaign_id":"cmp-a","country":"GB","os":"android","ctr":0.015,"install_rate":0.03}`,
			`{"campaign_id":"cmp-b","country":"DE","os":"android","ctr":0.01,"install_rate":0}`,
		},
		ExperimentsFile: {
			`{`,
			`  "id": "exp-1",`,
			`  "salt": "salt-1",`,
			`  "tests": [`,
			`    {"id": "t1", "variant": "floor_plus_10", "share_bp": 2000, "params": {"floor_multiplier": 1.1}},`,
			`    {"id": "t2", "variant": "cpi boost", "share_bp": 2000, "params": {"weight_cpi": 1.5}},`,
			`    {"id": "t3", "variant": "aa", "share_bp": 1000}`,
			`  ]`,
			`}`,
		},
	}
}

// files is an editable inventory.
type files struct {
	t testing.TB
	m map[string][]string
}

func newFiles(t testing.TB) *files { return &files{t, baseFiles()} }

// replace edits line n (1-based) of name, failing if old is not there.
func (f *files) replace(name string, n int, old, new string) {
	f.t.Helper()
	l := f.m[name][n-1]
	if !strings.Contains(l, old) {
		f.t.Fatalf("%s:%d does not contain %q", name, n, old)
	}
	f.m[name][n-1] = strings.Replace(l, old, new, 1)
}

func (f *files) set(name string, n int, line string) { f.m[name][n-1] = line }
func (f *files) add(name string, lines ...string)    { f.m[name] = append(f.m[name], lines...) }
func (f *files) remove(name string)                  { f.m[name] = nil }

func (f *files) write() string {
	f.t.Helper()
	dir := f.t.TempDir()
	for name, lines := range f.m {
		if lines == nil {
			continue
		}
		content := strings.Join(lines, "\n")
		if len(lines) > 0 {
			content += "\n"
		}
		writeFile(f.t, filepath.Join(dir, name), content)
	}
	return dir
}

var fixedNow = func() time.Time { return time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC) }

func loadFiles(t *testing.T, f *files) (*Inventory, error) {
	t.Helper()
	return Load(f.write(), Options{Now: fixedNow})
}

func TestLoadValid(t *testing.T) {
	f := newFiles(t)
	dir := f.write()
	var phases []string
	inv, err := Load(dir, Options{Now: fixedNow, Progress: func(p string, n int) { phases = append(phases, fmt.Sprintf("%s=%d", p, n)) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(inv.Campaigns, func(c Campaign) string { return c.ID }); !slices.Equal(got, []string{"cmp-a", "cmp-b"}) {
		t.Errorf("campaigns %v", got)
	}
	if got := ids(inv.Creatives, func(c Creative) string { return c.ID }); !slices.Equal(got, []string{"cr-1", "cr-2", "cr-3"}) {
		t.Errorf("creatives %v", got)
	}
	if got := ids(inv.Placements, func(p Placement) string { return p.ID }); !slices.Equal(got, []string{"pl-1", "pl-2"}) {
		t.Errorf("placements %v", got)
	}
	a := inv.Campaigns[0]
	want := Campaign{
		ID: "cmp-a", Advertiser: "acme", Category: "games", BidType: "cpi", BidMicros: 2000000, DailyBudgetMicros: 50000000,
		Start: "2026-01-01T00:00:00Z", End: "2027-01-01T00:00:00Z",
		Targeting: Targeting{
			Countries:   []string{"US", "GB"},
			OS:          []OSTarget{{"ios", "14.0"}, {"android", ""}},
			DeviceTypes: []string{"phone"}, Segments: []string{"gamers"},
		},
		FrequencyCap: &FrequencyCap{3, 3600}, PromotedApp: "com.acme.game", CreativeIDs: []string{"cr-1", "cr-2"},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("campaign a:\n got %+v\nwant %+v", a, want)
	}
	// Creative ids in campaigns share the creative's string.
	if unsafe.StringData(a.CreativeIDs[1]) != unsafe.StringData(inv.Creatives[1].ID) {
		t.Error("campaign creative id does not share the creative's string")
	}
	if inv.Campaigns[1].Advertiser != "Globex Corp" || inv.Campaigns[1].FrequencyCap != nil || inv.Campaigns[1].Targeting.DeviceTypes != nil {
		t.Errorf("campaign b: %+v", inv.Campaigns[1])
	}
	if inv.EndedCampaigns != 1 { // cmp-b ended 2026-06-01, before fixedNow
		t.Errorf("EndedCampaigns = %d, want 1", inv.EndedCampaigns)
	}
	// Predictions: compact, sorted, resolved.
	us, _ := snapshot.CountryIndex("US")
	gb, _ := snapshot.CountryIndex("GB")
	de, _ := snapshot.CountryIndex("DE")
	wantRows := []PredictionRow{
		{Campaign: 0, Country: gb, OS: uint8(snapshot.OSAndroid), CTR: 0.015, InstallRate: 0.03},
		{Campaign: 0, Country: us, OS: uint8(snapshot.OSiOS), CTR: 0.02, InstallRate: 0.004},
		{Campaign: 1, Country: de, OS: uint8(snapshot.OSAndroid), CTR: 0.01, InstallRate: 0},
	}
	if !reflect.DeepEqual(inv.Predictions, wantRows) {
		t.Errorf("predictions\n got %+v\nwant %+v", inv.Predictions, wantRows)
	}
	if s := unsafe.Sizeof(PredictionRow{}); s != 16 {
		t.Errorf("PredictionRow is %d bytes, want 16", s)
	}
	if ctr, ir := inv.Prediction(0, us, snapshot.OSiOS); ctr != float64(float32(0.02)) || ir != float64(float32(0.004)) {
		t.Errorf("Prediction(a, US, ios) = %v, %v", ctr, ir)
	}
	if ctr, ir := inv.Prediction(0, us, snapshot.OSAndroid); ctr != DefaultCTR || ir != DefaultInstallRate {
		t.Errorf("missing prediction = %v, %v, want defaults", ctr, ir)
	}
	if ctr, _ := inv.Prediction(7, us, snapshot.OSAndroid); ctr != DefaultCTR {
		t.Errorf("out-of-range campaign = %v, want default", ctr)
	}
	// The same answers without the index (an Inventory built by hand).
	bare := &Inventory{Campaigns: inv.Campaigns, Predictions: inv.Predictions}
	if ctr, _ := bare.Prediction(1, de, snapshot.OSAndroid); ctr != float64(float32(0.01)) {
		t.Errorf("unindexed Prediction = %v", ctr)
	}
	for _, id := range []string{"cmp-a", "cmp-b"} {
		if i, ok := inv.CampaignIndex(id); !ok || inv.Campaigns[i].ID != id {
			t.Errorf("CampaignIndex(%q) = %d, %v", id, i, ok)
		}
	}
	if i, ok := inv.CreativeIndex("cr-3"); !ok || i != 2 {
		t.Errorf("CreativeIndex(cr-3) = %d, %v", i, ok)
	}
	if i, ok := inv.PlacementIndex("pl-2"); !ok || i != 1 {
		t.Errorf("PlacementIndex(pl-2) = %d, %v", i, ok)
	}
	for _, id := range []string{"", "cmp-0", "cmp-c", "zzz"} {
		if i, ok := inv.CampaignIndex(id); ok || i != -1 {
			t.Errorf("CampaignIndex(%q) = %d, %v", id, i, ok)
		}
	}
	wantExp := Experiments{ID: "exp-1", Salt: "salt-1", Tests: []ExperimentTest{
		{ID: "t1", Variant: "floor_plus_10", ShareBP: 2000, Params: map[string]float64{"floor_multiplier": 1.1}},
		{ID: "t2", Variant: "cpi boost", ShareBP: 2000, Params: map[string]float64{"weight_cpi": 1.5}},
		{ID: "t3", Variant: "aa", ShareBP: 1000},
	}}
	if !reflect.DeepEqual(inv.Experiments, wantExp) {
		t.Errorf("experiments\n got %+v\nwant %+v", inv.Experiments, wantExp)
	}
	// Inputs: one per file, in Files order, hashing the raw bytes.
	if len(inv.Inputs) != len(Files) {
		t.Fatalf("inputs %+v", inv.Inputs)
	}
	for i, in := range inv.Inputs {
		raw, err := os.ReadFile(filepath.Join(dir, Files[i]))
		if err != nil {
			t.Fatal(err)
		}
		if in.Name != Files[i] || in.Size != int64(len(raw)) || in.XXHash64 != xxhash.Sum64(raw) {
			t.Errorf("input %d = %+v, want %s size %d hash %x", i, in, Files[i], len(raw), xxhash.Sum64(raw))
		}
	}
	wantPhases := []string{"campaigns=2", "predictions=3", "creatives=3", "placements=2", "experiments=3", "references=2"}
	slices.Sort(phases)
	slices.Sort(wantPhases)
	if !slices.Equal(phases, wantPhases) {
		t.Errorf("progress calls %v, want %v", phases, wantPhases)
	}
}

func ids[T any](s []T, id func(T) string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = id(v)
	}
	return out
}

func TestEmptyFilesAllowed(t *testing.T) {
	f := newFiles(t)
	for _, name := range []string{CampaignsFile, CreativesFile, PlacementsFile, PredictionsFile} {
		f.m[name] = []string{}
	}
	inv, err := loadFiles(t, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Campaigns)+len(inv.Creatives)+len(inv.Placements)+len(inv.Predictions) != 0 || len(inv.Inputs) != 5 || inv.Inputs[0].Size != 0 {
		t.Errorf("got %+v", inv)
	}
}

// TestBlankLinesAndCRLF: blank lines are skipped but still counted, so
// line numbers stay physical; CRLF line ends are fine; the last line may
// lack its newline.
func TestBlankLinesAndCRLF(t *testing.T) {
	f := newFiles(t)
	f.m[CreativesFile] = []string{"", "  \t", f.m[CreativesFile][0] + "\r", "", f.m[CreativesFile][1], f.m[CreativesFile][2]}
	f.replace(CreativesFile, 5, `"width":0`, `"width":-1`)
	_, err := loadFiles(t, f)
	expectProblems(t, err, `creatives.jsonl:5: width: expected an integer in [0, 65535], got -1`)

	f = newFiles(t)
	dir := f.write()
	raw, _ := os.ReadFile(filepath.Join(dir, PlacementsFile))
	writeFile(t, filepath.Join(dir, PlacementsFile), strings.TrimRight(string(raw), "\n"))
	if inv, err := Load(dir, Options{}); err != nil || len(inv.Placements) != 2 {
		t.Fatalf("no final newline: %v", err)
	}
}

func expectProblems(t *testing.T, err error, want ...string) *ValidationError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError containing %q, got %v", want, err)
	}
	msg := ve.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	return ve
}

type problemCase struct {
	name string
	edit func(f *files)
	want []string // substrings of the error, each with file and line
}

func runProblemCases(t *testing.T, cases []problemCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFiles(t)
			tc.edit(f)
			inv, err := loadFiles(t, f)
			if inv != nil {
				t.Error("got an inventory along with problems")
			}
			expectProblems(t, err, tc.want...)
		})
	}
}

func TestMalformedJSON(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"syntax", func(f *files) { f.set(CampaignsFile, 2, `{"id":"cmp-b",`) },
			[]string{`campaigns.jsonl:2: malformed JSON at column 15: expected a string (object key), found end of input`}},
		{"not an object", func(f *files) { f.set(PlacementsFile, 2, `["pl-2"]`) },
			[]string{`placements.jsonl:2: malformed JSON at column 1: expected a JSON object '{', found '['`}},
		{"byte order mark", func(f *files) { f.set(CreativesFile, 1, "\xef\xbb\xbf"+f.m[CreativesFile][0]) },
			[]string{`creatives.jsonl:1: malformed JSON at column 1: the file starts with a UTF-8 byte order mark; remove it`}},
		{"bad escape", func(f *files) { f.replace(CreativesFile, 3, `"cr-3"`, `"cr\x-3"`) },
			[]string{`creatives.jsonl:3: malformed JSON at column 10: invalid escape "\\x" in string`}},
		{"invalid utf8", func(f *files) { f.replace(CreativesFile, 3, `"cr-3"`, "\"cr-\xff\"") },
			[]string{`creatives.jsonl:3: malformed JSON at column 11: invalid UTF-8 in string`}},
		{"wrong type", func(f *files) { f.replace(CreativesFile, 1, `"width":320`, `"width":"320"`) },
			[]string{`creatives.jsonl:1: width: expected an integer in [0, 65535], got string "320"`}},
		{"wrong type nested", func(f *files) { f.replace(CampaignsFile, 1, `"count":3`, `"count":3.5`) },
			[]string{`campaigns.jsonl:1: frequency_cap.count: expected an integer in [0, 4294967295], got 3.5`}},
		{"wrong type in array", func(f *files) { f.replace(CampaignsFile, 1, `"countries":["US","GB"]`, `"countries":["US",7]`) },
			[]string{`campaigns.jsonl:1: targeting.countries[1]: expected a string, got number 7`}},
		{"null element", func(f *files) { f.replace(CampaignsFile, 2, `"creative_ids":["cr-3"]`, `"creative_ids":["cr-3",null]`) },
			[]string{`campaigns.jsonl:2: creative_ids[1]: expected a string, got null`}},
		{"several type errors on one line", func(f *files) {
			f.replace(PredictionsFile, 2, `"ctr":0.015`, `"ctr":"high"`)
			f.replace(PredictionsFile, 2, `"install_rate":0.03`, `"install_rate":true`)
		}, []string{`predictions.jsonl:2: ctr: expected a number, got string "high"`, `predictions.jsonl:2: install_rate: expected a number, got boolean true`}},
		{"overflow", func(f *files) {
			f.replace(CampaignsFile, 1, `"bid_micros":2000000`, `"bid_micros":99999999999999999999`)
		},
			[]string{`campaigns.jsonl:1: bid_micros: expected an integer, got 99999999999999999999`}},
		{"trailing garbage", func(f *files) { f.set(PlacementsFile, 1, f.m[PlacementsFile][0]+` x`) },
			[]string{fmt.Sprintf(`placements.jsonl:1: malformed JSON at column %d: unexpected data after the JSON value (one object per line)`, len(baseFiles()[PlacementsFile][0])+2)}},
		{"two objects on a line", func(f *files) { f.set(PlacementsFile, 2, f.m[PlacementsFile][1]+f.m[PlacementsFile][1]) },
			[]string{`placements.jsonl:2: malformed JSON at column 84: unexpected data after the JSON value`}},
		{"line too long", func(f *files) {
			f.set(PredictionsFile, 2, `{"campaign_id":"`+strings.Repeat("a", MaxLineBytes)+`"}`)
			f.replace(PredictionsFile, 3, `"ctr":0.01`, `"ctr":2`) // the reader resynchronises on the next line
		}, []string{`predictions.jsonl:2: line too long: 1048594 bytes, the limit is 1048576`, `predictions.jsonl:3: ctr: must be a probability in [0, 1], got 2`}},
		{"too deep", func(f *files) {
			f.replace(PlacementsFile, 2, `"interstitial":true`, `"interstitial":true,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100))
		}, []string{`placements.jsonl:2: malformed JSON at column 151: nested deeper than 64 levels`}},
		{"missing file", func(f *files) { f.remove(PlacementsFile) }, []string{`placements.jsonl: required file is missing`}},
		{"missing experiments", func(f *files) { f.remove(ExperimentsFile) }, []string{`experiments.json: required file is missing`}},
		{"empty experiments", func(f *files) { f.m[ExperimentsFile] = []string{"  "} }, []string{`experiments.json: empty file; expected a JSON object`}},
	})
}

func TestMissingFileIsNotADirectory(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope"), Options{}); err == nil || errors.As(err, new(*ValidationError)) {
		t.Errorf("missing dir: %v", err)
	}
	f := newFiles(t)
	dir := f.write()
	if err := os.Remove(filepath.Join(dir, CreativesFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, CreativesFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, Options{})
	expectProblems(t, err, `creatives.jsonl: cannot read: not a regular file`)
}

func TestUnknownFieldsAndValues(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"unknown field", func(f *files) { f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","bidtype":"cpm"`) },
			[]string{`campaigns.jsonl:2: unknown field "bidtype" (expected one of: id, advertiser,`}},
		{"field case", func(f *files) { f.replace(CreativesFile, 2, `"id":`, `"ID":`) },
			[]string{`creatives.jsonl:2: unknown field "ID" (field names are case-sensitive: did you mean "id"?)`, `creatives.jsonl:2: id: required: must be a non-empty id`}},
		{"nested unknown field", func(f *files) { f.replace(CampaignsFile, 1, `"countries":`, `"country":`) },
			[]string{`campaigns.jsonl:1: targeting: unknown field "country"`, `campaigns.jsonl:1: targeting.countries: must list at least one`}},
		{"repeated field", func(f *files) {
			f.replace(PlacementsFile, 2, `"interstitial":true`, `"interstitial":true,"interstitial":false`)
		},
			[]string{`placements.jsonl:2: field "interstitial" appears twice`}},
		{"format", func(f *files) { f.replace(CreativesFile, 3, `"native"`, `"audio"`) },
			[]string{`creatives.jsonl:3: format: unknown value "audio"; expected one of banner, video, native`}},
		{"format v1", func(f *files) { f.replace(CreativesFile, 2, `"format":"video"`, `"format":"rewarded"`) },
			[]string{`creatives.jsonl:2: format: "rewarded" is a placement property since snapshot format 2: give the creative format (banner, video or native) here and set interstitial or rewarded on the placement`}},
		{"placement format v1", func(f *files) {
			f.replace(PlacementsFile, 2, `"formats":["banner","video"]`, `"format":"interstitial"`)
		},
			[]string{`placements.jsonl:2: format: replaced in snapshot format 2 by formats (a list of banner, video, native), interstitial and rewarded (docs/INPUTS.md)`}},
		{"placement formats", func(f *files) { f.replace(PlacementsFile, 2, `["banner","video"]`, `["banner","Video","banner"]`) },
			[]string{`placements.jsonl:2: formats[1]: unknown value "Video"; expected one of banner, video, native (values are lower-case: "video")`,
				`placements.jsonl:2: formats[2]: duplicate "banner" (also at [0])`}},
		{"placement no formats", func(f *files) { f.replace(PlacementsFile, 1, `"formats":["banner"],`, ``) },
			[]string{`placements.jsonl:1: formats: required field missing (a list of banner, video, native)`}},
		{"placement empty formats", func(f *files) { f.replace(PlacementsFile, 1, `["banner"]`, `[]`) },
			[]string{`placements.jsonl:1: formats: must list at least one of banner, video, native`}},
		{"placement flag type", func(f *files) {
			f.replace(PlacementsFile, 2, `"interstitial":true`, `"interstitial":1,"rewarded":"yes"`)
		},
			[]string{`placements.jsonl:2: interstitial: expected true or false, got number 1`, `placements.jsonl:2: rewarded: expected true or false, got string "yes"`}},
		{"video missing", func(f *files) {
			f.replace(CreativesFile, 2, `,"video":{"duration_seconds":15,"media_files":[{"url":"https://cdn.example.com/cr-2.mp4","mime":"video/mp4","width":1280,"height":720,"bitrate_kbps":1500}]}`, ``)
		}, []string{`creatives.jsonl:2: video: required for format video (duration_seconds and media_files)`}},
		{"video on a banner", func(f *files) {
			f.replace(CreativesFile, 1, `"click_url"`, `"video":{"duration_seconds":15,"media_files":[]},"click_url"`)
		}, []string{`creatives.jsonl:1: video: only for format video, this creative is banner`}},
		{"video fields", func(f *files) {
			f.replace(CreativesFile, 2, `"duration_seconds":15`, `"duration_seconds":0`)
			f.replace(CreativesFile, 2, `"mime":"video/mp4"`, `"mime":"mp4"`)
			f.replace(CreativesFile, 2, `"width":1280,"height":720`, `"width":1280`)
			f.replace(CreativesFile, 2, `"bitrate_kbps":1500`, `"bitrate_kbps":150000,"delivery":"download","codec":"h264"`)
		}, []string{`creatives.jsonl:2: video.media_files[0]: unknown field "codec" (expected one of: url, mime, width, height, bitrate_kbps, delivery)`,
			`creatives.jsonl:2: video.duration_seconds: must be in [1, 3600], got 0`,
			`creatives.jsonl:2: video.media_files[0].mime: "mp4" is not a media type`,
			`creatives.jsonl:2: video.media_files[0].width, height: both required and > 0 pixels, got 1280 x 0`,
			`creatives.jsonl:2: video.media_files[0].bitrate_kbps: must be at most 100000, got 150000`,
			`creatives.jsonl:2: video.media_files[0].delivery: unknown value "download"; expected one of progressive, streaming`}},
		{"video no media", func(f *files) {
			f.replace(CreativesFile, 2, `"media_files":[{"url":"https://cdn.example.com/cr-2.mp4","mime":"video/mp4","width":1280,"height":720,"bitrate_kbps":1500}]`, `"media_files":[7]`)
		}, []string{`creatives.jsonl:2: video.media_files[0]: expected an object, got number 7`, `creatives.jsonl:2: video.media_files: must list 1 to 16 renditions, got 0`}},
		{"media url", func(f *files) {
			f.replace(CreativesFile, 2, `"url":"https://cdn.example.com/cr-2.mp4"`, `"url":"http://cdn.example.com/cr-2.mp4"`)
		},
			[]string{`creatives.jsonl:2: video.media_files[0].url: must use https, got scheme "http"`}},
		{"adomain", func(f *files) { f.replace(CreativesFile, 2, `"acme.com"`, `"https://acme.com/"`) },
			[]string{`creatives.jsonl:2: adomain: "https://acme.com/" is not a domain name: lower-case letters, digits, '-' and '.' only, no scheme or path (e.g. acme.com)`}},
		{"adomain no dot", func(f *files) { f.replace(CreativesFile, 2, `"acme.com"`, `"acme"`) },
			[]string{`creatives.jsonl:2: adomain: "acme" is not a domain name (e.g. acme.com)`}},
		{"iab category", func(f *files) { f.replace(CreativesFile, 2, `"IAB9-30"`, `"games"`) },
			[]string{`creatives.jsonl:2: iab_category: "games" is not an IAB content category (taxonomy 1.0: IAB1 to IAB26, or a subcategory such as IAB9-30)`}},
		{"iab category range", func(f *files) { f.replace(CreativesFile, 2, `"IAB9-30"`, `"IAB27"`) },
			[]string{`creatives.jsonl:2: iab_category: "IAB27" is not an IAB content category`}},
		{"half size", func(f *files) { f.replace(CreativesFile, 3, `"height":627`, `"height":0`) },
			[]string{`creatives.jsonl:3: height: must be > 0 when width is (give both, or neither for full screen / any size), got 1200 x 0`}},
		{"bundles", func(f *files) {
			f.replace(CampaignsFile, 1, `"creative_ids"`, `"allowed_bundles":["com.pub.news","com.pub.news","bad id"],"blocked_bundles":["com.pub.news"],"creative_ids"`)
		}, []string{`campaigns.jsonl:1: allowed_bundles[2]: must not contain whitespace`,
			`campaigns.jsonl:1: allowed_bundles[1]: duplicate bundle "com.pub.news" (also at [0])`,
			`campaigns.jsonl:1: blocked_bundles[0]: "com.pub.news" is also in allowed_bundles`}},
		{"bid type", func(f *files) { f.replace(CampaignsFile, 2, `"cpm"`, `"CPM"`) },
			[]string{`campaigns.jsonl:2: bid_type: unknown value "CPM"; expected one of cpm, cpc, cpi (values are lower-case: "cpm")`}},
		{"os name", func(f *files) { f.replace(CampaignsFile, 1, `"name":"android"`, `"name":"windows"`) },
			[]string{`campaigns.jsonl:1: targeting.os[1].name: unknown value "windows"; expected one of android, ios`}},
		{"prediction os", func(f *files) { f.replace(PredictionsFile, 3, `"os":"android"`, `"os":"Android"`) },
			[]string{`predictions.jsonl:3: os: unknown value "Android"`}},
		{"device type", func(f *files) {
			f.replace(CampaignsFile, 1, `"device_types":["phone"]`, `"device_types":["phone","tv"]`)
		},
			[]string{`campaigns.jsonl:1: targeting.device_types[1]: unknown value "tv"; expected one of phone, tablet`}},
		{"country unassigned", func(f *files) { f.replace(CampaignsFile, 2, `["DE"]`, `["DE","XX","XK"]`) },
			[]string{`campaigns.jsonl:2: targeting.countries[1]: "XX" is not an assigned ISO 3166-1 alpha-2 country code`, `campaigns.jsonl:2: targeting.countries[2]: "XK" is not`}},
		{"country UK", func(f *files) { f.replace(CampaignsFile, 1, `"GB"`, `"UK"`) },
			[]string{`campaigns.jsonl:1: targeting.countries[1]: "UK" is not an ISO 3166-1 alpha-2 code (the United Kingdom is "GB")`}},
		{"country lower case", func(f *files) { f.replace(PredictionsFile, 3, `"DE"`, `"de"`) },
			[]string{`predictions.jsonl:3: country: "de" is not an ISO 3166-1 alpha-2 code (codes are upper-case: "DE")`}},
		{"bad time", func(f *files) { f.replace(CampaignsFile, 2, `"2026-06-01T00:00:00Z"`, `"2026-13-01"`) },
			[]string{`campaigns.jsonl:2: end: not an RFC 3339 time (expected e.g. 2026-01-02T15:04:05Z): "2026-13-01"`}},
		{"missing time", func(f *files) { f.replace(CampaignsFile, 2, `"start":"2026-01-01T00:00:00+01:00",`, ``) },
			[]string{`campaigns.jsonl:2: start: required: expected an RFC 3339 time`}},
		{"os version", func(f *files) { f.replace(CampaignsFile, 2, `"8.1"`, `"8.x"`) },
			[]string{`campaigns.jsonl:2: targeting.os[0].min_version: "8.x" is not a version; expected major[.minor[.patch]]`}},
		{"os version range", func(f *files) { f.replace(CampaignsFile, 1, `"14.0"`, `"14.256"`) },
			[]string{`campaigns.jsonl:1: targeting.os[0].min_version: "14.256" is not a version`}},
		{"http url", func(f *files) { f.replace(CreativesFile, 1, `https://cdn`, `http://cdn`) },
			[]string{`creatives.jsonl:1: asset_url: must use https, got scheme "http"`}},
		{"relative url", func(f *files) {
			f.replace(CreativesFile, 2, `"https://click.example.com/c/2"`, `"click.example.com/c/2"`)
		},
			[]string{`creatives.jsonl:2: click_url: must be an absolute https URL, got "click.example.com/c/2"`}},
		{"unparsable url", func(f *files) { f.replace(CreativesFile, 3, `https://cdn.example.com/cr-3.jpg`, `https://[::1/x`) },
			[]string{`creatives.jsonl:3: asset_url: not a valid URL (missing ']' in host): "https://[::1/x"`}},
		{"url with space", func(f *files) { f.replace(CreativesFile, 3, `cr-3.jpg`, `cr 3.jpg`) },
			[]string{`creatives.jsonl:3: asset_url: must be printable ASCII without spaces (percent-encode the rest); found byte 0x20 at 26`}},
		{"url without host", func(f *files) { f.replace(CreativesFile, 3, `"https://click.example.com/c/3"`, `"https:///c/3"`) },
			[]string{`creatives.jsonl:3: click_url: must have a host`}},
		{"empty id", func(f *files) { f.replace(PlacementsFile, 2, `"pl-2"`, `""`) },
			[]string{`placements.jsonl:2: id: required: must be a non-empty id`}},
		{"missing id", func(f *files) { f.replace(PlacementsFile, 2, `"id":"pl-2",`, ``) },
			[]string{`placements.jsonl:2: id: required: must be a non-empty id`}},
		{"long id", func(f *files) { f.replace(CreativesFile, 3, `"cr-3"`, `"`+strings.Repeat("x", MaxIDLen+1)+`"`) },
			[]string{`creatives.jsonl:3: id: too long: 129 bytes, at most 128`, `campaigns.jsonl:2: creative_ids[0]: creative "cr-3" not found`}},
		{"id with space", func(f *files) { f.replace(CampaignsFile, 2, `"cmp-b"`, `"cmp b"`) },
			[]string{`campaigns.jsonl:2: id: must not contain whitespace or control characters (found U+0020 at byte 3)`}},
		{"id with control char", func(f *files) { f.replace(CreativesFile, 1, `"cr-1"`, `"cr-1\u0007"`) },
			[]string{`creatives.jsonl:1: id: must not contain whitespace or control characters (found U+0007 at byte 4)`}},
		{"id with unicode space", func(f *files) { f.replace(PlacementsFile, 1, `"pl-1"`, `"pl\u00a01"`) },
			[]string{`placements.jsonl:1: id: must not contain whitespace, control or invisible characters (found U+00A0 at byte 2)`}},
		{"label with trailing space", func(f *files) { f.replace(CampaignsFile, 1, `"acme"`, `"acme "`) },
			[]string{`campaigns.jsonl:1: advertiser: must not start or end with whitespace, got "acme "`}},
		{"app id", func(f *files) { f.replace(PlacementsFile, 2, `"com.pub.news"`, `"com pub"`) },
			[]string{`placements.jsonl:2: app: must not contain whitespace`}},
	})
}

func TestDuplicates(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"campaign id", func(f *files) { f.add(CampaignsFile, f.m[CampaignsFile][0]) },
			[]string{`campaigns.jsonl:3: id: duplicate campaign id "cmp-a" (first at line 1)`}},
		{"creative id", func(f *files) {
			f.m[CreativesFile] = append([]string{strings.Replace(f.m[CreativesFile][2], `"cr-3"`, `"cr-2"`, 1)}, f.m[CreativesFile]...)
		}, []string{`creatives.jsonl:3: id: duplicate creative id "cr-2" (first at line 1)`}},
		{"placement id", func(f *files) { f.replace(PlacementsFile, 2, `"pl-2"`, `"pl-1"`) },
			[]string{`placements.jsonl:2: id: duplicate placement id "pl-1" (first at line 1)`}},
		{"prediction key", func(f *files) {
			f.add(PredictionsFile, strings.Replace(f.m[PredictionsFile][0], `0.02`, `0.03`, 1), f.m[PredictionsFile][0])
		}, []string{
			`predictions.jsonl:4: duplicate prediction for campaign "cmp-a", country US, os ios (first at line 1)`,
			`predictions.jsonl:5: duplicate prediction for campaign "cmp-a", country US, os ios (first at line 1)`,
		}},
		{"country in campaign", func(f *files) { f.replace(CampaignsFile, 1, `["US","GB"]`, `["US","GB","US"]`) },
			[]string{`campaigns.jsonl:1: targeting.countries[2]: duplicate country "US" (also at [0])`}},
		{"os in campaign", func(f *files) {
			f.replace(CampaignsFile, 2, `[{"name":"android","min_version":"8.1"}]`, `[{"name":"android","min_version":"8.1"},{"name":"android"}]`)
		},
			[]string{`campaigns.jsonl:2: targeting.os[1].name: duplicate os "android" (also at [0])`}},
		{"creative in campaign", func(f *files) { f.replace(CampaignsFile, 1, `["cr-1","cr-2"]`, `["cr-1","cr-2","cr-1"]`) },
			[]string{`campaigns.jsonl:1: creative_ids[2]: duplicate creative "cr-1" (also at [0])`}},
		{"segment in campaign", func(f *files) { f.replace(CampaignsFile, 1, `["gamers"]`, `["gamers","gamers"]`) },
			[]string{`campaigns.jsonl:1: targeting.segments[1]: duplicate segment "gamers" (also at [0])`}},
		{"blocked category", func(f *files) { f.replace(PlacementsFile, 1, `["gambling"]`, `["gambling","gambling"]`) },
			[]string{`placements.jsonl:1: blocked_categories[1]: duplicate "gambling" (also at [0])`}},
		{"test id", func(f *files) { f.replace(ExperimentsFile, 7, `"t3"`, `"t1"`) },
			[]string{`experiments.json:7: tests[2].id: duplicate test id "t1" (first at tests[0])`}},
	})
}

func TestDanglingReferences(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"creative", func(f *files) { f.replace(CampaignsFile, 1, `["cr-1","cr-2"]`, `["cr-1","cr-9"]`) },
			[]string{`campaigns.jsonl:1: creative_ids[1]: creative "cr-9" not found in creatives.jsonl`}},
		{"creative on a malformed line", func(f *files) { f.set(CreativesFile, 3, `{"id":"cr-3"`) },
			[]string{`creatives.jsonl:3: malformed JSON`, `campaigns.jsonl:2: creative_ids[0]: creative "cr-3" not found in creatives.jsonl (creatives.jsonl has unreadable lines; it may be on one of them)`}},
		{"campaign", func(f *files) { f.replace(PredictionsFile, 2, `"cmp-a"`, `"cmp-z"`) },
			[]string{`predictions.jsonl:2: campaign_id: campaign "cmp-z" not found in campaigns.jsonl`}},
		{"invalid campaign id", func(f *files) { f.replace(PredictionsFile, 2, `"cmp-a"`, `"cmp a"`) },
			[]string{`predictions.jsonl:2: campaign_id: must not contain whitespace`}},
		{"untargeted country", func(f *files) { f.replace(PredictionsFile, 1, `"US"`, `"FR"`) },
			[]string{`predictions.jsonl:1: country: campaign "cmp-a" does not target FR (it targets GB US); predictions are only for targeted countries`}},
		{"untargeted os", func(f *files) { f.replace(PredictionsFile, 3, `"android"`, `"ios"`) },
			[]string{`predictions.jsonl:3: os: campaign "cmp-b" does not target ios`}},
	})
}

func TestImpossibleValues(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"negative bid", func(f *files) { f.replace(CampaignsFile, 2, `"bid_micros":1500000`, `"bid_micros":-5`) },
			[]string{`campaigns.jsonl:2: bid_micros: must be > 0, got -5`}},
		{"zero bid", func(f *files) { f.replace(CampaignsFile, 2, `"bid_micros":1500000`, `"bid_micros":0`) },
			[]string{`campaigns.jsonl:2: bid_micros: must be > 0, got 0`}},
		{"missing bid", func(f *files) { f.replace(CampaignsFile, 2, `"bid_micros":1500000,`, ``) },
			[]string{`campaigns.jsonl:2: bid_micros: required field missing`}},
		{"huge bid", func(f *files) { f.replace(CampaignsFile, 1, `"bid_micros":2000000`, `"bid_micros":1000000001`) },
			[]string{`campaigns.jsonl:1: bid_micros: must be <= 1000000000 (1000 currency units), got 1000000001`}},
		{"negative budget", func(f *files) {
			f.replace(CampaignsFile, 1, `"daily_budget_micros":50000000`, `"daily_budget_micros":-1`)
		},
			[]string{`campaigns.jsonl:1: daily_budget_micros: must be in [1, 1000000000000000] micros, got -1`}},
		{"huge budget", func(f *files) {
			f.replace(CampaignsFile, 1, `"daily_budget_micros":50000000`, `"daily_budget_micros":1000000000000001`)
		},
			[]string{`campaigns.jsonl:1: daily_budget_micros: must be in [1, 1000000000000000] micros, got 1000000000000001`}},
		{"zero budget", func(f *files) {
			f.replace(CampaignsFile, 1, `"daily_budget_micros":50000000`, `"daily_budget_micros":0`)
		},
			[]string{`campaigns.jsonl:1: daily_budget_micros: 0 is not a budget (nothing could ever serve); omit the field for no limit`}},
		{"zero lifetime budget", func(f *files) {
			f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","lifetime_budget_micros":0`)
		},
			[]string{`campaigns.jsonl:2: lifetime_budget_micros: 0 is not a budget`}},
		{"negative lifetime budget", func(f *files) {
			f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","lifetime_budget_micros":-5`)
		},
			[]string{`campaigns.jsonl:2: lifetime_budget_micros: must be in [1, 1000000000000000] micros, got -5`}},
		{"lifetime below daily", func(f *files) {
			f.replace(CampaignsFile, 1, `"daily_budget_micros":50000000`, `"daily_budget_micros":50000000,"lifetime_budget_micros":40000000`)
		},
			[]string{`campaigns.jsonl:1: lifetime_budget_micros: 40000000 is below daily_budget_micros 50000000: the daily budget could never be spent`}},
		{"unknown time zone", func(f *files) {
			f.replace(CampaignsFile, 1, `"bid_type":"cpi"`, `"bid_type":"cpi","time_zone":"Mars/Olympus_Mons"`)
		},
			[]string{`campaigns.jsonl:1: time_zone: unknown IANA time zone "Mars/Olympus_Mons"`}},
		{"local time zone", func(f *files) {
			f.replace(CampaignsFile, 1, `"bid_type":"cpi"`, `"bid_type":"cpi","time_zone":"Local"`)
		},
			[]string{`campaigns.jsonl:1: time_zone: "Local" is not an IANA time zone name`}},
		{"unknown pacing mode", func(f *files) {
			f.replace(CampaignsFile, 1, `"bid_type":"cpi"`, `"bid_type":"cpi","pacing":"fast"`)
		},
			[]string{`campaigns.jsonl:1: pacing: `}},
		{"click billing on cpm", func(f *files) {
			f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","billing_event":"click"`)
		},
			[]string{`campaigns.jsonl:2: billing_event: click is for cpc campaigns`}},
		{"unknown billing event", func(f *files) {
			f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","billing_event":"install"`)
		},
			[]string{`campaigns.jsonl:2: billing_event: `}},
		{"end before start", func(f *files) { f.replace(CampaignsFile, 2, `"2026-06-01T00:00:00Z"`, `"2025-12-31T23:00:00Z"`) },
			[]string{`campaigns.jsonl:2: end: must be after start, got start 2026-01-01T00:00:00+01:00 and end 2025-12-31T23:00:00Z`}},
		{"end equals start", func(f *files) { f.replace(CampaignsFile, 1, `"2027-01-01T00:00:00Z"`, `"2026-01-01T00:00:00Z"`) },
			[]string{`campaigns.jsonl:1: end: must be after start`}},
		{"negative floor", func(f *files) { f.replace(PlacementsFile, 1, `"floor_micros":100000`, `"floor_micros":-1`) },
			[]string{`placements.jsonl:1: floor_micros: must be in [0, 200000000] (micros of CPM; 0 = no floor), got -1`}},
		{"huge floor", func(f *files) { f.replace(PlacementsFile, 1, `"floor_micros":100000`, `"floor_micros":200000001`) },
			[]string{`placements.jsonl:1: floor_micros: must be in [0, 200000000]`}},
		{"ctr above 1", func(f *files) { f.replace(PredictionsFile, 1, `"ctr":0.02`, `"ctr":1.5`) },
			[]string{`predictions.jsonl:1: ctr: must be a probability in [0, 1], got 1.5`}},
		{"negative install rate", func(f *files) { f.replace(PredictionsFile, 2, `"install_rate":0.03`, `"install_rate":-0.1`) },
			[]string{`predictions.jsonl:2: install_rate: must be a probability in [0, 1], got -0.1`}},
		{"missing ctr", func(f *files) { f.replace(PredictionsFile, 2, `"ctr":0.015,`, ``) },
			[]string{`predictions.jsonl:2: ctr: required field missing`}},
		{"huge exponent", func(f *files) { f.replace(PredictionsFile, 2, `"ctr":0.015`, `"ctr":1e999`) },
			[]string{`predictions.jsonl:2: ctr: expected a number in float64 range, got 1e999`}},
		{"frequency cap count", func(f *files) { f.replace(CampaignsFile, 1, `"count":3`, `"count":0`) },
			[]string{`campaigns.jsonl:1: frequency_cap.count: must be >= 1 impression, got 0`}},
		{"frequency cap period", func(f *files) { f.replace(CampaignsFile, 1, `"period_seconds":3600`, `"period_seconds":30`) },
			[]string{`campaigns.jsonl:1: frequency_cap.period_seconds: must be >= 60, got 30`}},
		{"banner half a size", func(f *files) { f.replace(CreativesFile, 1, `"width":320,"height":50`, `"height":50`) },
			[]string{`creatives.jsonl:1: width: must be > 0 when height is (give both, or neither for full screen / any size), got 0 x 50`}},
		{"size too big", func(f *files) { f.replace(CreativesFile, 3, `"height":627`, `"height":65536`) },
			[]string{`creatives.jsonl:3: height: expected an integer in [0, 65535], got 65536`}},
		{"no creatives", func(f *files) { f.replace(CampaignsFile, 2, `["cr-3"]`, `[]`) },
			[]string{`campaigns.jsonl:2: creative_ids: must list at least one creative id`}},
		{"missing creatives", func(f *files) { f.replace(CampaignsFile, 2, `,"creative_ids":["cr-3"]`, ``) },
			[]string{`campaigns.jsonl:2: creative_ids: must list at least one creative id`}},
		{"no countries", func(f *files) { f.replace(CampaignsFile, 2, `["DE"]`, `[]`) },
			[]string{`campaigns.jsonl:2: targeting.countries: must list at least one ISO 3166-1 alpha-2 country code`}},
		{"no os", func(f *files) { f.replace(CampaignsFile, 2, `[{"name":"android","min_version":"8.1"}]`, `null`) },
			[]string{`campaigns.jsonl:2: targeting.os: must list at least one os`}},
		{"no targeting", func(f *files) { f.replace(CampaignsFile, 2, `"targeting":`, `"targeting":null,"x":`) },
			[]string{`campaigns.jsonl:2: targeting: required field missing`}},
		{"empty segment", func(f *files) { f.replace(CampaignsFile, 1, `["gamers"]`, `["gamers",""]`) },
			[]string{`campaigns.jsonl:1: targeting.segments[1]: required: must be non-empty`}},
		{"too many segments", func(f *files) {
			var a, b []string
			for i := range 200 {
				a = append(a, fmt.Sprintf(`"s%d"`, i))
			}
			for i := 150; i < 300; i++ { // 100 new: distinct number 257 is s256
				b = append(b, fmt.Sprintf(`"s%d"`, i))
			}
			f.replace(CampaignsFile, 1, `["gamers"]`, "["+strings.Join(a, ",")+"]")
			f.replace(CampaignsFile, 2, `"os":`, `"segments":[`+strings.Join(b, ",")+`],"os":`)
		}, []string{`campaigns.jsonl:2: targeting.segments: segment "s256" is distinct segment number 257; at most 256 distinct segments are allowed across all campaigns (found 300)`}},
	})
}

func TestTooManySegmentsReportedOnce(t *testing.T) {
	f := newFiles(t)
	for i := range 600 {
		f.add(CampaignsFile, strings.NewReplacer(`"cmp-b"`, fmt.Sprintf(`"cmp-x%d"`, i), `"os":`, fmt.Sprintf(`"segments":["x%d"],"os":`, i)).Replace(f.m[CampaignsFile][1]))
	}
	_, err := loadFiles(t, f)
	ve := expectProblems(t, err, `campaigns.jsonl:258: targeting.segments: segment "x255" is distinct segment number 257`)
	if ve.Total != 1 {
		t.Errorf("want the overflow reported once, got %d problems:\n%v", ve.Total, ve)
	}
}

// The budget pacing fields load with their values.
func TestPacingFields(t *testing.T) {
	f := newFiles(t)
	f.replace(CampaignsFile, 1, `"daily_budget_micros":50000000`, `"daily_budget_micros":50000000,"lifetime_budget_micros":900000000,"pacing":"asap","time_zone":"America/New_York"`)
	f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","pacing":"even","billing_event":"impression","time_zone":"UTC"`)
	inv, err := loadFiles(t, f)
	if err != nil {
		t.Fatal(err)
	}
	c := inv.Campaigns[0]
	if c.LifetimeBudgetMicros != 900000000 || c.Pacing != "asap" || c.TimeZone != "America/New_York" || c.BillingEvent != "" {
		t.Fatalf("%+v", c)
	}
}

func TestAllowedOddities(t *testing.T) {
	f := newFiles(t)
	// install_rate above ctr (view-through installs), an unknown blocked
	// advertiser (already in base), 0x0 interstitial (in base), control at
	// 0% (shares sum to 100%), a test without params (A/A), null as absent.
	f.replace(PredictionsFile, 2, `"install_rate":0.03`, `"install_rate":0.5`)
	f.replace(ExperimentsFile, 7, `"share_bp": 1000`, `"share_bp": 6000`)
	f.replace(PlacementsFile, 2, `"interstitial":true`, `"interstitial":true,"floor_micros":null,"blocked_categories":[]`)
	f.replace(CampaignsFile, 2, `"bid_type":"cpm"`, `"bid_type":"cpm","frequency_cap":null,"daily_budget_micros":null`)
	inv, err := loadFiles(t, f)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, tt := range inv.Experiments.Tests {
		sum += int(tt.ShareBP)
	}
	if sum != TotalShareBP {
		t.Errorf("shares %d", sum)
	}
}

func TestExperimentsProblems(t *testing.T) {
	runProblemCases(t, []problemCase{
		{"syntax error line from offset", func(f *files) { f.replace(ExperimentsFile, 6, `"share_bp": 2000,`, `"share_bp": 2000`) },
			[]string{`experiments.json:6: malformed JSON at column 59: expected ',' or '}' after object member, found '"'`}},
		{"trailing data", func(f *files) { f.add(ExperimentsFile, `{}`) },
			[]string{`experiments.json:10: malformed JSON at column 1: unexpected data after the JSON value`}},
		{"not an object", func(f *files) { f.m[ExperimentsFile] = []string{`[]`} },
			[]string{`experiments.json:1: malformed JSON at column 1: expected a JSON object '{', found '['`}},
		{"unknown field", func(f *files) { f.replace(ExperimentsFile, 3, `"salt"`, `"seed": 1, "salt"`) },
			[]string{`experiments.json:3: unknown field "seed" (expected one of: id, salt, tests, holdout, layers)`}},
		{"unknown test field", func(f *files) { f.replace(ExperimentsFile, 7, `"share_bp"`, `"weight": 2, "share_bp"`) },
			[]string{`experiments.json:7: tests[2]: unknown field "weight" (expected one of: id, variant, share_bp, params, layer, segments, allow_move)`}},
		{"empty id and salt", func(f *files) {
			f.replace(ExperimentsFile, 2, `"exp-1"`, `""`)
			f.replace(ExperimentsFile, 3, `"salt-1"`, `""`)
		}, []string{`experiments.json:2: id: required: must be non-empty (the experiment set id, in every report row)`,
			`experiments.json:3: salt: required: must be non-empty (the bucketing salt)`}},
		// abtest's rules, the edge's: the builder once accepted this one and
		// the edge then served everyone as control.
		{"test named control", func(f *files) { f.replace(ExperimentsFile, 7, `"t3"`, `"control"`) },
			[]string{`experiments.json:7: tests[2].id: "control" is reserved for the control group`}},
		{"unknown param with a non-number", func(f *files) { f.replace(ExperimentsFile, 6, `"weight_cpi": 1.5`, `"weight_cpx": "high"`) },
			[]string{`experiments.json:6: tests[1].params: unknown parameter "weight_cpx" (known: floor_multiplier, min_ctr, weight_cpc, weight_cpi, weight_cpm)`}},
		{"missing salt", func(f *files) { f.set(ExperimentsFile, 3, "") },
			[]string{`experiments.json:1: salt: required field missing`}},
		{"too many tests", func(f *files) {
			f.set(ExperimentsFile, 7, `    {"id": "t3", "variant": "aa", "share_bp": 1000}, {"id": "t4", "variant": "bb", "share_bp": 1}`)
		},
			[]string{`experiments.json:4: tests: at most 3 tests run at once, got 4`}},
		{"zero share", func(f *files) { f.replace(ExperimentsFile, 7, `"share_bp": 1000`, `"share_bp": 0`) },
			[]string{`experiments.json:7: tests[2].share_bp: must be >= 1 (0.01% of traffic), got 0`}},
		{"negative share", func(f *files) { f.replace(ExperimentsFile, 7, `"share_bp": 1000`, `"share_bp": -1`) },
			[]string{`experiments.json:7: tests[2].share_bp: expected an integer in [0, 4294967295], got -1`}},
		{"missing share", func(f *files) { f.replace(ExperimentsFile, 7, `, "share_bp": 1000`, ``) },
			[]string{`experiments.json:7: tests[2].share_bp: required field missing`}},
		{"shares over 100%", func(f *files) { f.replace(ExperimentsFile, 7, `"share_bp": 1000`, `"share_bp": 6001`) },
			[]string{`experiments.json:4: tests: share_bp values add up to 10001 (100.01%), more than 10000 (100%); control gets 10000 minus the sum`}},
		{"unknown param", func(f *files) { f.replace(ExperimentsFile, 6, `"weight_cpi"`, `"weight_cpx"`) },
			[]string{`experiments.json:6: tests[1].params: unknown parameter "weight_cpx" (known: floor_multiplier, min_ctr, weight_cpc, weight_cpi, weight_cpm)`}},
		{"param out of range", func(f *files) { f.replace(ExperimentsFile, 5, `"floor_multiplier": 1.1`, `"floor_multiplier": 11`) },
			[]string{`experiments.json:5: tests[0].params.floor_multiplier: must be in [0, 10], got 11`}},
		{"param null", func(f *files) { f.replace(ExperimentsFile, 5, `"floor_multiplier": 1.1`, `"floor_multiplier": null`) },
			[]string{`experiments.json:5: tests[0].params.floor_multiplier: expected a number, got null`}},
		{"empty variant", func(f *files) { f.replace(ExperimentsFile, 7, `"aa"`, `""`) },
			[]string{`experiments.json:7: tests[2].variant: required: must be non-empty`}},
		{"missing variant", func(f *files) { f.replace(ExperimentsFile, 7, `"variant": "aa", `, ``) },
			[]string{`experiments.json:7: tests[2].variant: required field missing`}},
		{"test not an object", func(f *files) { f.set(ExperimentsFile, 7, `    "t3"`) },
			[]string{`experiments.json:7: tests[2]: expected a test object, got string "t3"`}},
	})
}

func TestNaNAndInfRefused(t *testing.T) {
	// JSON cannot spell NaN or Inf, but the rules must not rely on that.
	for _, v := range []float64{math.NaN(), math.Inf(1), -0.5, 1.0000001} {
		if checkRate(v) == "" {
			t.Errorf("checkRate(%v) accepted", v)
		}
	}
	for _, v := range []float64{0, 1, 0.5} {
		if m := checkRate(v); m != "" {
			t.Errorf("checkRate(%v): %s", v, m)
		}
	}
}

func TestProblemCap(t *testing.T) {
	f := newFiles(t)
	for range 500 {
		f.add(CampaignsFile, `{"id":`)
	}
	_, err := loadFiles(t, f)
	ve := expectProblems(t, err, "campaigns.jsonl:3: malformed JSON", "campaigns.jsonl:102: malformed JSON")
	if len(ve.Problems) != MaxProblems || ve.Total != 500 {
		t.Fatalf("listed %d, total %d", len(ve.Problems), ve.Total)
	}
	if last := ve.Problems[len(ve.Problems)-1]; last.Line != 102 {
		t.Errorf("last listed %v", last)
	}
	msg := ve.Error()
	if !strings.HasSuffix(msg, "\n... and 400 more (500 problems in total)") || strings.Count(msg, "\n") != MaxProblems {
		t.Errorf("error text ends %q", msg[len(msg)-80:])
	}
	if strings.Contains(msg, "campaigns.jsonl:103:") {
		t.Error("listed a problem past the cap")
	}
}

// TestProblemOrder: problems are listed by file (Files order), then line,
// whatever order they were found in, and the cap keeps the earliest.
func TestProblemOrder(t *testing.T) {
	f := newFiles(t)
	for range 150 {
		f.add(PredictionsFile, `{`)
	}
	f.replace(ExperimentsFile, 2, `"exp-1"`, `""`)
	f.replace(CreativesFile, 3, `"native"`, `"audio"`)
	f.replace(CampaignsFile, 2, `["cr-3"]`, `["cr-3","cr-404"]`) // found last, after all files
	_, err := loadFiles(t, f)
	ve := expectProblems(t, err)
	got := ve.Problems[:3]
	want := []Problem{
		{CampaignsFile, 2, `creative_ids[1]: creative "cr-404" not found in creatives.jsonl`},
		{CreativesFile, 3, `format: unknown value "audio"; expected one of banner, video, native`},
		{PredictionsFile, 4, `malformed JSON at column 2: expected a string (object key), found end of input`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if ve.Total != 153 || len(ve.Problems) != MaxProblems {
		t.Errorf("total %d listed %d", ve.Total, len(ve.Problems))
	}
	if (Problem{File: "x.json", Msg: "m"}).String() != "x.json: m" {
		t.Error("Line 0 rendering")
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	genInventory(t, dir, genConfig{Campaigns: 300, CreativesPerCampaign: 3, Placements: 200, Seed: 1, Shuffle: true})
	a, err := Load(dir, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two loads of the same directory differ")
	}
	// The same records in another order give the same inventory.
	dir2 := t.TempDir()
	genInventory(t, dir2, genConfig{Campaigns: 300, CreativesPerCampaign: 3, Placements: 200, Seed: 1})
	c, err := Load(dir2, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	a.Inputs, c.Inputs = nil, nil
	if !reflect.DeepEqual(a, c) {
		t.Fatal("record order changed the inventory")
	}
	for i := 1; i < len(a.Campaigns); i++ {
		if a.Campaigns[i-1].ID >= a.Campaigns[i].ID {
			t.Fatal("campaigns not sorted")
		}
	}
	if !slices.IsSortedFunc(a.Predictions, comparePred) || len(a.Predictions) == 0 {
		t.Fatal("predictions not sorted")
	}
}

func TestLineReader(t *testing.T) {
	const max = 40
	line := func(n int) string { return strings.Repeat("x", n) }
	input := strings.Join([]string{line(max), line(max + 1), "", line(100), line(17), line(max)}, "\n") // no final newline
	r := &lineReader{br: bufio.NewReaderSize(strings.NewReader(input), 16), max: max}
	type got struct {
		n       int
		tooLong int64
	}
	var out []got
	for {
		l, tooLong, err := r.next()
		if len(l) > 0 || tooLong > 0 {
			out = append(out, got{len(bytes.TrimSuffix(l, []byte{'\n'})), tooLong})
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []got{{max, 0}, {0, max + 1}, {0, 0}, {0, 100}, {17, 0}, {max, 0}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %v, want %v", out, want)
	}
	if cap(r.long) > max+64 {
		t.Errorf("long-line buffer grew to %d", cap(r.long))
	}
}

// TestLineLengthLimit: a line of exactly MaxLineBytes is read (it spans
// many read buffers); one byte more is refused.
func TestLineLengthLimit(t *testing.T) {
	f := newFiles(t)
	ok := f.m[PredictionsFile][2]
	pad := MaxLineBytes - len(ok)
	f.set(PredictionsFile, 3, ok[:len(ok)-1]+strings.Repeat(" ", pad)+"}")
	if len(f.m[PredictionsFile][2]) != MaxLineBytes {
		t.Fatal("bad setup")
	}
	if _, err := loadFiles(t, f); err != nil {
		t.Fatalf("a line of exactly MaxLineBytes: %v", err)
	}
	f.set(PredictionsFile, 3, ok[:len(ok)-1]+strings.Repeat(" ", pad+1)+"}")
	_, err := loadFiles(t, f)
	ve := expectProblems(t, err, fmt.Sprintf("predictions.jsonl:3: line too long: %d bytes, the limit is %d", MaxLineBytes+1, MaxLineBytes))
	if ve.Total != 1 {
		t.Errorf("want 1 problem, got %v", ve)
	}
}

// TestOneProblemPerBadValue: a value of the wrong type is reported once,
// not again by the rules that check its value.
func TestOneProblemPerBadValue(t *testing.T) {
	f := newFiles(t)
	f.replace(PlacementsFile, 2, `"id":"pl-2"`, `"id":5`)
	f.replace(CreativesFile, 1, `"width":320`, `"width":-320`)
	f.replace(PredictionsFile, 3, `"ctr":0.01`, `"ctr":"0.01"`)
	f.replace(CampaignsFile, 2, `"targeting":{"countries":["DE"],`, `"targeting":{"countries":"DE",`)
	_, err := loadFiles(t, f)
	ve := expectProblems(t, err,
		`campaigns.jsonl:2: targeting.countries: expected an array of strings, got string "DE"`,
		`creatives.jsonl:1: width: expected an integer in [0, 65535], got -320`,
		`placements.jsonl:2: id: expected a string, got number 5`,
		`predictions.jsonl:3: ctr: expected a number, got string "0.01"`)
	if ve.Total != 4 {
		t.Errorf("want 4 problems, got:\n%v", ve)
	}
}
