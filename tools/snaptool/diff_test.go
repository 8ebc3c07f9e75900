package snaptool

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"testing"

	"github.com/adedge/adedge/builder/inventory"
)

func TestDiff(t *testing.T) {
	oldRes := baseWorld().build(t)

	w := baseWorld()
	w.campaign("c-01").BidMicros = 6_000_000 // 2.00 -> 6.00: from rank 5 to 1 on banner/US/android
	w.campaign("c-03").Targeting.Countries = []string{"US", "FR"}
	w.campaigns = slices.DeleteFunc(w.campaigns, func(c inventory.Campaign) bool { return c.ID == "c-07" })
	c9 := usAndroidCPM("c-09", "hooli", "IAB4", 2_500_000, "cr-10")
	w.campaigns = append(w.campaigns, c9)
	w.creatives = append(w.creatives, banner("cr-10"))
	w.placements[0].FloorMicros = 600_000
	newRes := w.build(t)

	var out bytes.Buffer
	if err := Diff(&out, oldRes.Path, newRes.Path, DiffOptions{Keys: 1, Top: 10}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`\Atotals: campaigns 8 -> 8 \(\+1 -1 ~2\); creatives 9 -> 10 \(\+1 -0 ~0\); placements 2 -> 2 \(\+0 -0 ~1\); candidates 14 -> 15;`,
		`(?m)^  \+\s+c-09$`,
		`(?m)^  -\s+c-07$`,
		`(?m)^  ~\s+c-01\s+bid\s+2\.00 -> 6\.00$`,
		`(?m)^  ~\s+c-03\s+targeting\.countries\s+\+FR$`,
		`(?m)^  ~\s+p-banner\s+floor\s+0\.50 -> 0\.60$`,
		`(?m)^banner/US/android: 7 candidates \(old 7\)$`,
		`(?m)^  1\s+c-01\s+6\.00\s+5\s+2\.00\s+up 4$`,
		`(?m)^  2\s+c-02\s+5\.00\s+1\s+5\.00\s+down 1$`,
		`(?m)^  6\s+c-09\s+2\.50\s+-\s+-\s+new$`,
		`(?m)^  -\s+c-07\s+-\s+7\s+0\.10\s+gone$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("diff output lacks %s\n%s", want, text)
		}
	}

	out.Reset()
	if err := Diff(&out, oldRes.Path, newRes.Path, DiffOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	var rep DiffReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	c := rep.Campaigns
	if !slices.Equal(c.Added, []string{"c-09"}) || !slices.Equal(c.Removed, []string{"c-07"}) || len(c.Changed) != 2 {
		t.Fatalf("campaign changes %+v", c)
	}
	if ch := c.Changed[0]; ch.ID != "c-01" || len(ch.Fields) != 1 || ch.Fields[0] != (FieldChange{Field: "bid", Old: "2.00", New: "6.00"}) {
		t.Errorf("c-01 change %+v", ch)
	}
	if ch := c.Changed[1]; ch.ID != "c-03" || len(ch.Fields) != 1 || ch.Fields[0].Field != "targeting.countries" || ch.Fields[0].Detail != "+FR" {
		t.Errorf("c-03 change %+v", ch)
	}
	if len(rep.Rankings) != 5 || rep.Rankings[0].Key != "banner/US/android" || rep.Rankings[0].Unchanged {
		t.Fatalf("rankings %+v", rep.Rankings)
	}
	if r0 := rep.Rankings[0].Rows[0]; r0 != (RankRow{Campaign: "c-01", NewRank: 1, OldRank: 5, NewECPM: 6_000_000, OldECPM: 2_000_000, Mark: "up 4"}) {
		t.Errorf("top row %+v", r0)
	}

	// A snapshot against itself: no changes, every ranking unchanged.
	out.Reset()
	if err := Diff(&out, oldRes.Path, oldRes.Path, DiffOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	rep = DiffReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Campaigns.AddedCount+rep.Campaigns.RemovedCount+rep.Campaigns.ChangedCount+rep.Placements.ChangedCount != 0 {
		t.Errorf("self diff found changes: %+v", rep)
	}
	for _, kr := range rep.Rankings {
		if !kr.Unchanged {
			t.Errorf("self diff: %s changed", kr.Key)
		}
	}
}

// TestDiffUnsortedIDs checks the merge stays right when a file's records
// are not in id order (the fallback sort).
func TestDiffUnsortedIDs(t *testing.T) {
	order, ids := idOrder(4, func(i int) string { return []string{"b", "d", "a", "c"}[i] })
	var got []string
	for _, i := range order {
		got = append(got, ids[i])
	}
	if !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("order %v", got)
	}
	cs := diffRecords(3, 3, -1,
		func(i int) string { return []string{"z", "a", "m"}[i] },
		func(j int) string { return []string{"a", "n", "z"}[j] },
		func(i, j int) []FieldChange { return nil })
	if !slices.Equal(cs.Added, []string{"n"}) || !slices.Equal(cs.Removed, []string{"m"}) || cs.ChangedCount != 0 {
		t.Fatalf("%+v", cs)
	}
}
