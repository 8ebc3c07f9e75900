package report

import (
	"math"
	"testing"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/stats"
)

// groupOf makes a group with users spread evenly over the shards.
func groupOf(users float64, share uint32) *GroupTotals {
	g := &GroupTotals{ShareBP: share, Users: users}
	for i := range g.shard {
		g.shard[i][fUsers] = users / abtest.Shards
	}
	return g
}

// At ten million users a group, the sketches' ~0.1% error exceeds
// the sampling error: the SRM check must allow for it (no false alarm on a
// 0.3% estimation error) and still catch a real 2% loss.
func TestSRMAllowsForSketchError(t *testing.T) {
	srm := func(users ...float64) SRM {
		er := &ExperimentReport{}
		shares := []uint32{5000, 2000, 2000, 1000}
		for i, u := range users {
			g := groupOf(u, shares[i])
			g.Test = "t"
			if i == 0 {
				g.Test = abtest.ControlTest
			}
			g.Variant = string(rune('a' + i))
			er.Groups = append(er.Groups, g)
		}
		o := Options{}
		o.defaults()
		er.compare(&o)
		return er.SRM
	}
	// 0.3% over-estimate of the 10% group: about 3 sketch standard errors, 9 sampling ones.
	if s := srm(5e7, 2e7, 2e7, 1.003e7); s.Failed {
		t.Errorf("sketch-sized error flagged: %+v", s)
	}
	// Without the allowance the same counts fail Pearson's test outright.
	if _, _, p := stats.ChiSquareGOF([]float64{5e7, 2e7, 2e7, 1.003e7}, []float64{5000, 2000, 2000, 1000}); p > SRMThreshold {
		t.Errorf("plain Pearson p=%g: the allowance test is not testing anything", p)
	}
	if s := srm(5e7, 2e7, 2e7, 0.98e7); !s.Failed {
		t.Errorf("2%% loss not flagged: %+v", s)
	}
	if math.Abs(HLLRelError-0.008125) > 1e-6 {
		t.Errorf("HLL relative error %g, want 0.008125", HLLRelError)
	}
}
