package pacing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/gen"
)

// The pacing fields travel inventory -> builder -> PACING section ->
// SpecsFromSnapshot; an inventory without them writes no section.
func TestSnapshotPacingFields(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inv")
	if _, err := gen.Generate(dir, gen.Scales["small"], 3, nil); err != nil {
		t.Fatal(err)
	}
	build := func() *snapshot.Reader {
		res, err := builder.Build(builder.Options{Input: dir, Out: t.TempDir(), Created: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := snapshot.Open(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	if r := build(); r.HasPacing() {
		t.Fatal("a PACING section without any pacing field")
	}
	path := filepath.Join(dir, "campaigns.jsonl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	id := lines[0][strings.Index(lines[0], `"id":"`)+6:]
	id = id[:strings.IndexByte(id, '"')]
	lines[0] = strings.Replace(lines[0], `"creative_ids"`, `"lifetime_budget_micros":999000000000,"pacing":"asap","time_zone":"Asia/Tokyo","creative_ids"`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := build()
	if !r.HasPacing() {
		t.Fatal("no PACING section")
	}
	specs := SpecsFromSnapshot(r)
	found := false
	for i, s := range specs {
		if s.ID != id {
			if s.Budget.Mode != Even || s.Budget.Lifetime != 0 || s.Budget.Loc != nil {
				t.Fatalf("%s: defaults expected, got %+v", s.ID, s.Budget)
			}
			continue
		}
		found = true
		if s.Budget.Mode != ASAP || s.Budget.Lifetime != 999000000000 || s.Budget.Loc == nil || s.Budget.Loc.String() != "Asia/Tokyo" {
			t.Fatalf("%+v", s.Budget)
		}
		c, _ := r.Campaign(i)
		if !Limited(r, i, &c) {
			t.Fatal("not limited")
		}
	}
	if !found {
		t.Fatalf("campaign %s not in the snapshot", id)
	}
}
