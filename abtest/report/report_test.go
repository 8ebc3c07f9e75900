package report

import (
	"math"
	"strings"
	"testing"
	"time"

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
	if e := RowsSketch.RelError(); math.Abs(e-0.008125) > 1e-6 {
		t.Errorf("HLL relative error %g, want 0.008125", e)
	}
}

// The sample-ratio checks, overall and per day, widen each group's
// variance by the error of the sketch the report names (Options.UserSketch)
// and nothing else: the same counts pass with a coarse sketch and fail
// with a fine one, each statistic exactly Pearson's with that sketch's
// variance; counts without a named sketch are refused.
func TestSRMUsesTheReportsSketch(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	groups := []struct {
		test, variant string
		share         uint32
		users         float64
	}{{abtest.ControlTest, "control", 5000, 5e7}, {"t1", "a", 2000, 2e7}, {"t2", "b", 2000, 2e7}, {"t3", "c", 1000, 1.005e7}}
	var rs []abtest.Row
	users := map[UserKey]float64{}
	for i, g := range groups {
		for sh := range abtest.Shards {
			rs = append(rs, abtest.Row{Start: day, End: day.Add(24 * time.Hour), Env: "production", Experiment: "exp", Test: g.test, Variant: g.variant,
				TestIndex: uint8(i), ShareBP: g.share, Shard: uint8(sh), Requests: 1000})
			users[UserKey{Env: "production", Experiment: "exp", Test: g.test, Variant: g.variant, Shard: sh}] = g.users / abtest.Shards
		}
		users[UserKey{Env: "production", Experiment: "exp", Test: g.test, Variant: g.variant, Shard: -1, Day: day}] = g.users
	}
	count := func(k UserKey) (float64, bool) { v, ok := users[k]; return v, ok }
	if _, err := Build(rs, 1, Options{Users: count}); err == nil {
		t.Error("user counts without a sketch accepted")
	}
	failed := map[uint]bool{}
	for _, sk := range []UserSketch{{Name: "fine", Precision: 14}, {Name: "coarse", Precision: 12}} {
		rep, err := Build(rs, 1, Options{Users: count, UserSketch: sk})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Options.UserSketch != sk {
			t.Errorf("report carries sketch %+v, want %+v", rep.Options.UserSketch, sk)
		}
		er := rep.Experiments[0]
		var obs, exp, shardVar, dayVar []float64
		rel := 1.04 / math.Sqrt(float64(uint(1)<<sk.Precision))
		for _, g := range groups {
			obs, exp = append(obs, g.users), append(exp, float64(g.share))
			shardVar = append(shardVar, abtest.Shards*(rel*g.users/abtest.Shards)*(rel*g.users/abtest.Shards))
			dayVar = append(dayVar, (rel*g.users)*(rel*g.users))
		}
		want, _, _ := stats.ChiSquareGOFExtra(obs, exp, shardVar)
		wantDay, _, _ := stats.ChiSquareGOFExtra(obs, exp, dayVar)
		if math.Abs(er.SRM.Stat-want) > 1e-9*want || len(er.DaySRM) != 1 || math.Abs(er.DaySRM[0].Stat-wantDay) > 1e-9*wantDay {
			t.Errorf("%s: chi2 %g (day %+v), want %g (day %g) from the sketch's error", sk.Name, er.SRM.Stat, er.DaySRM, want, wantDay)
		}
		failed[sk.Precision] = er.SRM.Failed
	}
	if !failed[14] || failed[12] {
		t.Errorf("0.5%% excess in the 10%% group: failed %v, want a failure with the fine sketch only", failed)
	}
	if d := RowsSketch.Describe(); !strings.Contains(d, "axiomhq/hyperloglog") || !strings.Contains(d, "precision 14, 0.8125%") {
		t.Errorf("rows sketch described as %q", d)
	}
}
