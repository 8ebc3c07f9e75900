package benchsuite

import (
	"encoding/json"
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
