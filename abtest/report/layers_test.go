package report

import (
	"strconv"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
)

// Rows of a layered set: one report per layer (each layer's rows count
// every request once), the holdout left out of the comparisons.
func TestReportPerLayer(t *testing.T) {
	set := abtest.Set{ID: "e", Salt: "s", Holdout: &abtest.Holdout{Salt: "h", ShareBP: 1000},
		Layers: []abtest.Layer{{ID: "ranking", Segments: 100}, {ID: "floors", Segments: 100}},
		Tests: []abtest.Test{
			{ID: "cpc", Layer: "ranking", Variant: "v", Segments: "0-49", Params: map[string]float64{"weight_cpc": 1.5}},
			{ID: "floor", Layer: "floors", Variant: "w", Segments: "50-99", Params: map[string]float64{"floor_multiplier": 1.1}},
		}}
	b, err := abtest.NewBucketer(set, abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	c := abtest.NewCounters()
	g := c.Serving("production", "snap", b)
	for i := 0; i < 5000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		g.Request(b.Assign(d), d, abtest.Fill, time.Millisecond)
	}
	rows := c.Flush("edge", time.Unix(0, 0), time.Unix(60, 0))
	rep, err := BuildReport(rows, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Experiments) != 2 || rep.Experiments[0].Layer != "floors" || rep.Experiments[1].Layer != "ranking" {
		t.Fatalf("reports %+v", rep.Experiments)
	}
	for _, er := range rep.Experiments {
		var total uint64
		held := false
		for _, gr := range er.Groups {
			total += gr.Requests
			if gr.Test == abtest.HoldoutTest {
				held = gr.Unassigned && gr.Requests > 300 && gr.Requests < 700
			}
		}
		if total != 5000 || !held || len(er.Comparisons) != 1 {
			t.Errorf("layer %s: %d requests, holdout kept apart %v, %d comparisons", er.Layer, total, held, len(er.Comparisons))
		}
	}
}
