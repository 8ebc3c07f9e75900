package snaptool

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	res := baseWorld().build(t)

	var out bytes.Buffer
	if err := Inspect(&out, res.Path, InspectOptions{Top: 3}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`(?m)^version\s+` + regexp.QuoteMeta(res.Manifest.Version) + `$`,
		`(?m)^format version\s+2$`,
		`(?m)^created\s+2027-01-15T08:00:00Z$`,
		`(?m)^content hash\s+` + res.Manifest.ContentHash + `$`,
		`(?m)^size\s+` + regexp.QuoteMeta(strings.TrimSpace(jsonNum(res.Manifest.Size))) + ` bytes`,
		`(?m)^campaigns\s+8$`, `(?m)^  ended at data time\s+1$`, `(?m)^creatives\s+9$`,
		`(?m)^placements\s+2$`, `(?m)^advertisers\s+6$`, `(?m)^categories\s+6$`, `(?m)^segments\s+1$`,
		`(?m)^candidate entries\s+14$`, `(?m)^non-empty keys\s+8$`,
		`(?m)^  campaigns\s+1216\s+1\.2 KiB\s+\d+\.\d%\s+152 B\s+8\s+[0-9a-f]{16}$`,
		`(?m)^  media-files\s+32\s+32 B\s+\d+\.\d%\s+32 B\s+1\s+[0-9a-f]{16}$`,
		`(?m)^  candidates\s+336\s+336 B\s+\d+\.\d%\s+24 B\s+14\s+[0-9a-f]{16}$`,
		`biggest candidate lists \(3 of 8 non-empty\)`,
		`(?m)^  banner/US/android:\s+7 candidates,\s+top eCPM 5\.00\s+\(c-02\)$`,
		`experiments "exp-1" \(salt "s1"\): 2 tests, control 70\.00%`,
		`(?m)^  t1\s+floor_plus_10\s+share_bp 2000 \(20\.00%\)\s+floor_multiplier=1\.1$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("inspect output lacks %s\n%s", want, text)
		}
	}
	if n := strings.Count(text, " candidates,"); n != 3 {
		t.Errorf("Top 3 printed %d lists", n)
	}

	out.Reset()
	if err := Inspect(&out, res.Path, InspectOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	var rep InspectReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("inspect JSON: %v\n%s", err, out.String())
	}
	want := InspectCounts{Campaigns: 8, Creatives: 9, Placements: 2, Advertisers: 6, Categories: 6, Segments: 1,
		CandidateEntries: 14, NonEmptyKeys: 8, EndedCampaigns: 1}
	if rep.Counts != want {
		t.Errorf("counts %+v, want %+v", rep.Counts, want)
	}
	if rep.Size != int(res.Manifest.Size) || rep.Version != res.Manifest.Version || len(rep.Sections) != 14 {
		t.Errorf("size %d version %s sections %d", rep.Size, rep.Version, len(rep.Sections))
	}
	var total uint64
	for _, s := range rep.Sections {
		total += s.Bytes
	}
	if total+rep.FramingBytes != uint64(rep.Size) {
		t.Errorf("sections %d + framing %d != size %d", total, rep.FramingBytes, rep.Size)
	}
	if len(rep.TopLists) != 8 || rep.TopLists[0] != (ListStat{Key: "banner/US/android", Candidates: 7, TopCampaign: "c-02", TopECPMMicros: 5_000_000}) {
		t.Errorf("top lists %+v", rep.TopLists)
	}
	e := rep.Experiments
	if e == nil || e.ID != "exp-1" || e.ControlBP != 7000 || len(e.Tests) != 2 || e.Tests[1].Params["weight_cpc"] != 1.5 {
		t.Errorf("experiments %+v", e)
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }
