package benchsuite

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/adedge/adedge/builder/inventory"
)

// The pacing row's snapshot keeps every campaign field but the budgets,
// which go to the largest the builder accepts; a line that is not JSON is
// an error naming it.
func TestUnboundBudgets(t *testing.T) {
	in := `{"id":"c1","bid_micros":5,"daily_budget_micros":100,"targeting":{"countries":["US"]}}
{"id":"c2","daily_budget_micros":7,"lifetime_budget_micros":9}
`
	out, err := unboundBudgets([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	var c1, c2 inventory.Campaign
	if err := json.Unmarshal([]byte(lines[0]), &c1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &c2); err != nil {
		t.Fatal(err)
	}
	if c1.ID != "c1" || c1.BidMicros != 5 || c1.DailyBudgetMicros != inventory.MaxBudgetMicros || c1.LifetimeBudgetMicros != 0 ||
		len(c1.Targeting.Countries) != 1 {
		t.Fatalf("c1 = %+v", c1)
	}
	if c2.DailyBudgetMicros != inventory.MaxBudgetMicros || c2.LifetimeBudgetMicros != inventory.MaxBudgetMicros {
		t.Fatalf("c2 = %+v", c2)
	}
	if _, err := unboundBudgets([]byte("{\"id\":\"c1\"}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: %v", err)
	}
}

// TestOpsSampleAds: the logging row reads the ops unit's sampling, and a
// unit without it is an error rather than a silent full-logging row.
func TestOpsSampleAds(t *testing.T) {
	v, err := opsSampleAds("../..")
	if err != nil {
		t.Fatal(err)
	}
	if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 || f > 1 {
		t.Fatalf("ops unit --events-sample-ads %q: want a share in (0, 1]", v)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ops/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, opsUnit), []byte("ExecStart=/usr/local/bin/adedge --events-dir /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := opsSampleAds(dir); err == nil || !strings.Contains(err.Error(), "no --events-sample-ads") {
		t.Fatalf("unit without sampling: %v", err)
	}
}
