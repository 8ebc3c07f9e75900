package abtest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// layeredDemo is defaultSet in the layered form: the same salt, 100
// segments, t1 0-19, t2 20-39, t3 40-49. It buckets exactly as the
// original form.
func layeredDemo() Set {
	return Set{ID: "exp-1", Salt: "s1", Layers: []Layer{{ID: "main", Salt: "s1", Segments: 100}}, Tests: []Test{
		{ID: "t1", Layer: "main", Variant: "floor_plus_10", Segments: "0-19", Params: map[string]float64{"floor_multiplier": 1.1}},
		{ID: "t2", Layer: "main", Variant: "cpc_heavy", Segments: "20-39", Params: map[string]float64{"weight_cpc": 1.5}},
		{ID: "t3", Layer: "main", Variant: "aa", Segments: "40-49"},
	}}
}

func mustBucketer(t testing.TB, s Set) *Bucketer {
	t.Helper()
	b, err := NewBucketer(s, Defaults)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLayeredFormBucketsAsOriginal(t *testing.T) {
	old, lay := mustBucketer(t, defaultSet()), mustBucketer(t, layeredDemo())
	for i := 0; i < 20000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		a, b := old.Assign(d), lay.Assign(d)
		at, av := old.Labels(a)
		bt, bv := lay.Labels(b)
		if at != bt || av != bv || a.Slot != b.Slot || *old.Params(a) != *lay.Params(b) {
			t.Fatalf("%s: original %s/%s slot %d, layered %s/%s slot %d", d, at, av, a.Slot, bt, bv, b.Slot)
		}
	}
	o, l := defaultSet(), layeredDemo()
	for _, m := range Moves(&o, &l) {
		if m.Status != "unchanged" || m.Moved != 0 {
			t.Errorf("migration moves %s: %+v", m.Test, m)
		}
	}
}

// The number: halving t1's share in the layered demo set moves
// none of t2's and t3's users; in the original form it moves half of
// t2's (into t3) and all of t3's, and the builder's rule refuses it.
func TestHalveT1(t *testing.T) {
	old, nw := layeredDemo(), layeredDemo()
	nw.Tests[0].Segments = "0-9"
	got := map[string]Move{}
	for _, m := range Moves(&old, &nw) {
		got[m.Test] = m
	}
	if m := got["t1"]; m.Status != "resized" || m.Moved != 0.5 || m.ToOther != 0 || m.OldShare != 0.2 || m.NewShare != 0.1 {
		t.Errorf("t1 %+v", m)
	}
	for _, id := range []string{"t2", "t3"} {
		if m := got[id]; m.Status != "unchanged" || m.Moved != 0 {
			t.Errorf("%s %+v", id, m)
		}
	}
	if ps := nw.CheckChange(&old, nil); len(ps) != 0 {
		t.Errorf("halving t1 refused: %v", ps)
	}
	// Each device checked: no t2/t3 user changes bucket.
	ob, nb := mustBucketer(t, old), mustBucketer(t, nw)
	for i := 0; i < 20000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		a, b := ob.Assign(d), nb.Assign(d)
		if a.Test >= 2 && a.Test != b.Test {
			t.Fatalf("%s moved from test %d to %d", d, a.Test, b.Test)
		}
	}

	lo, ln := defaultSet(), defaultSet()
	ln.Tests[0].ShareBP = 1000
	got = map[string]Move{}
	for _, m := range Moves(&lo, &ln) {
		got[m.Test] = m
	}
	if m := got["t2"]; m.Status != "moved" || m.Moved != 0.5 || m.Into["t3"] != 0.5 {
		t.Errorf("original form t2 %+v", m)
	}
	if m := got["t3"]; m.Status != "moved" || m.Moved != 1 || m.From != 1 {
		t.Errorf("original form t3 %+v", m)
	}
	ps := ln.CheckChange(&lo, nil)
	// t1's upper half goes to t2, t2's upper half to t3, t3 is all new
	// users: every test of the original form is refused, by name.
	if len(ps) != 3 || ps[0].Path != "tests[0].segments" || !strings.Contains(ps[0].Msg, "t2 50.00%") ||
		ps[1].Path != "tests[1].segments" || !strings.Contains(ps[1].Msg, `"t2" is running`) ||
		!strings.Contains(ps[1].Msg, "t3 50.00%") || ps[2].Path != "tests[2].segments" {
		t.Errorf("original-form halving: %v", ps)
	}
	ln.Tests[0].AllowMove, ln.Tests[1].AllowMove, ln.Tests[2].AllowMove = true, true, true
	if ps := ln.CheckChange(&lo, nil); len(ps) != 0 {
		t.Errorf("allow_move still refused: %v", ps)
	}
}

func TestCheckChangeRules(t *testing.T) {
	old := layeredDemo()
	for _, c := range []struct {
		name string
		edit func(s *Set)
		path string
		msg  string
	}{
		{"new test on t1's segments", func(s *Set) {
			s.Tests[0].Segments = "0-9"
			s.Tests[2] = Test{ID: "t4", Layer: "main", Variant: "v4", Segments: "10-14"}
		}, "tests[0].segments", "t4 25.00%"},
		{"params changed", func(s *Set) { s.Tests[1].Params = map[string]float64{"weight_cpc": 2} }, "tests[1].params", "needs a new id"},
		{"variant changed", func(s *Set) { s.Tests[2].Variant = "bb" }, "tests[2].params", "needs a new id"},
		{"re-salted", func(s *Set) { s.Layers[0].Salt = "s9" }, "tests[0].layer", "salt changed"},
		{"changed layer", func(s *Set) {
			s.Layers = append(s.Layers, Layer{ID: "other", Salt: "s2", Segments: 100})
			s.Tests[2].Layer = "other"
		}, "tests[2].layer", `from layer "main" to "other"`},
		{"grows into t2", func(s *Set) { s.Tests[0].Segments = "0-24"; s.Tests[1].Segments = "25-39" }, "tests[0].segments", "new users would come from other"},
	} {
		nw := layeredDemo()
		c.edit(&nw)
		if err := nw.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ps := nw.CheckChange(&old, nil)
		if len(ps) == 0 || ps[0].Path != c.path || !strings.Contains(ps[0].Msg, c.msg) {
			t.Errorf("%s: %v, want %s: ...%s...", c.name, ps, c.path, c.msg)
		}
	}
	// An ended test's id reused for another treatment (known from the
	// builder's state: retired tests).
	nw := layeredDemo()
	nw.Tests[2].Params = map[string]float64{"min_ctr": 0.01}
	retired := []Test{{ID: "t3", Variant: "aa"}}
	if ps := nw.CheckChange(&Set{ID: "exp-1", Salt: "s1", Tests: []Test{}}, retired); len(ps) != 1 || ps[0].Path != "tests[2].id" {
		t.Errorf("reused ended id: %v", ps)
	}
	// Ending a test and holding out more users is allowed.
	nw = layeredDemo()
	nw.Tests = nw.Tests[1:]
	nw.Holdout = &Holdout{Salt: "h", ShareBP: 500}
	if ps := nw.CheckChange(&old, nil); len(ps) != 0 {
		t.Errorf("ending t1 and a holdout refused: %v", ps)
	}
	for _, m := range Moves(&old, &nw) {
		if m.Test == "t2" && (math.Abs(m.Held-0.05) > 1e-12 || math.Abs(m.Moved-0.05) > 1e-12 || m.Status != "resized") {
			t.Errorf("holdout: %+v", m)
		}
		if m.Test == "t1" && (m.Status != "ended" || m.Moved != 1) {
			t.Errorf("ended: %+v", m)
		}
	}
}

func TestCheckLayered(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
		path string
		msg  string
	}{
		{"overlap", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"0-19"},{"id":"y","layer":"a","variant":"v","segments":"15-30"}]}`,
			"tests[1].segments", `segment 15-19 is also tests[0]'s (x)`},
		{"exceeds space", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"90-100"}]}`,
			"tests[0].segments", "outside the layer's 100 segments (0-99)"},
		{"unknown layer", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"b","variant":"v","segments":"0"}]}`,
			"tests[0].layer", `unknown layer "b" (layers: "a")`},
		{"layer without layers", `{"id":"e","salt":"s","tests":[{"id":"x","layer":"b","variant":"v","share_bp":10}]}`,
			"tests[0].layer", `unknown layer "b": the set has no layers`},
		{"param in two layers", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100},{"id":"b","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"0","params":{"min_ctr":0.1}},{"id":"y","layer":"b","variant":"v","segments":"0","params":{"min_ctr":0.2}}]}`,
			"tests[1].params.min_ctr", "each parameter belongs to one layer"},
		{"segments not dividing", `{"id":"e","salt":"s","layers":[{"id":"a","segments":300}],"tests":[]}`, "layers[0].segments", "must divide 10000"},
		{"duplicate layer", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100},{"id":"a","segments":10}],"tests":[]}`, "layers[1].id", "duplicate layer id"},
		{"same salt", `{"id":"e","salt":"s","layers":[{"id":"a","salt":"q","segments":100},{"id":"b","salt":"q","segments":10}],"tests":[]}`, "layers[1].salt", "independent salts"},
		{"share in layered", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"0","share_bp":100}]}`, "tests[0].share_bp", "not share_bp"},
		{"no segments", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v"}]}`, "tests[0].segments", "required"},
		{"bad range", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"9-3"}]}`, "tests[0].segments", "backwards"},
		{"twice", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"x","layer":"a","variant":"v","segments":"1-5,5"}]}`, "tests[0].segments", "listed twice"},
		{"four in a layer", `{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"w","layer":"a","variant":"v","segments":"0"},{"id":"x","layer":"a","variant":"v","segments":"1"},{"id":"y","layer":"a","variant":"v","segments":"2"},{"id":"z","layer":"a","variant":"v","segments":"3"}]}`,
			"tests[3].layer", "already has 3 tests"},
		{"five layers", `{"id":"e","salt":"s","layers":[{"id":"a","segments":1},{"id":"b","segments":1},{"id":"c","segments":1},{"id":"d","segments":1},{"id":"f","segments":1}],"tests":[]}`, "layers", "at most 4 layers"},
		{"separator", `{"id":"e","salt":"s","layers":[{"id":"a:b","segments":100}],"tests":[]}`, "layers[0].id", "must not contain"},
		{"holdout share", `{"id":"e","salt":"s","holdout":{"salt":"h","share_bp":10000},"tests":[]}`, "holdout.share_bp", "must be in [1, 9999]"},
		{"holdout salt", `{"id":"e","salt":"s","holdout":{"salt":"s","share_bp":10},"tests":[]}`, "holdout.salt", "must differ"},
		{"holdout id", `{"id":"e","salt":"s","tests":[{"id":"holdout","variant":"v","share_bp":10}]}`, "tests[0].id", "reserved"},
	} {
		var s Set
		if err := json.Unmarshal([]byte(c.json), &s); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ps := s.Check()
		found := false
		for _, p := range ps {
			if p.Path == c.path && strings.Contains(p.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %v, want %s: ...%s...", c.name, ps, c.path, c.msg)
		}
	}
}

func twoLayers() Set {
	return Set{ID: "e", Salt: "s", Holdout: &Holdout{Salt: "hold", ShareBP: 500},
		Layers: []Layer{{ID: "ranking", Segments: 100}, {ID: "floors", Segments: 1000}},
		Tests: []Test{
			{ID: "cpc", Layer: "ranking", Variant: "cpc_x1.5", Segments: "0-49", Params: map[string]float64{"weight_cpc": 1.5}},
			{ID: "floor", Layer: "floors", Variant: "floor_x1.1", Segments: "500-999", Params: map[string]float64{"floor_multiplier": 1.1}},
		}}
}

// Layers are independent draws: the 2x2 table of two 50/50 layers has
// about a quarter in each cell (chi-square, 3 df), and the parameters of
// both layers' tests merge.
func TestLayersOverlapIndependently(t *testing.T) {
	b := mustBucketer(t, twoLayers())
	var cells [2][2]float64
	held := 0
	const n = 200000
	for i := 0; i < n; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		a := b.Assign(d)
		if a.Held {
			held++
			if *b.Params(a) != Defaults {
				t.Fatalf("held out device runs %+v", *b.Params(a))
			}
			if l, tt, v := b.LayerLabels(a, 1); l != "floors" || tt != HoldoutTest || v != HoldoutTest {
				t.Fatalf("held out labels %s %s %s", l, tt, v)
			}
			continue
		}
		cells[a.Groups[0]][a.Groups[1]]++
		p := b.Params(a)
		if (p.WeightCPC == 1.5) != (a.Groups[0] == 1) || (p.FloorMultiplier == 1.1) != (a.Groups[1] == 1) {
			t.Fatalf("groups %v params %+v", a.Groups, *p)
		}
	}
	if h := float64(held) / n; math.Abs(h-0.05) > 0.003 {
		t.Fatalf("held out %.4f, want 0.05", h)
	}
	exp := float64(n-held) / 4
	chi := 0.0
	for i := range cells {
		for j := range cells[i] {
			chi += (cells[i][j] - exp) * (cells[i][j] - exp) / exp
		}
	}
	if chi > 16.27 { // p = 0.001 at 3 df
		t.Fatalf("layers not independent: %v chi2 %.1f", cells, chi)
	}
	if o, ok := b.Only("floor"); !ok || b.Params(o).FloorMultiplier != 1.1 || b.Params(o).WeightCPC != 1 {
		t.Fatalf("Only(floor) %+v", *b.Params(o))
	}
}

func TestAssignLayeredAllocs(t *testing.T) {
	s := twoLayers()
	s.Layers = append(s.Layers, Layer{ID: "c", Segments: 10}, Layer{ID: "d", Segments: 10})
	b := mustBucketer(t, s)
	d := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	if n := testing.AllocsPerRun(1000, func() { _ = b.Params(b.Assign(d)) }); n != 0 {
		t.Fatalf("Assign over 4 layers: %v allocs", n)
	}
}

func BenchmarkAssignLayers(b *testing.B) {
	for _, c := range []struct {
		name string
		set  Set
	}{{"original", defaultSet()}, {"1layer", layeredDemo()}, {"2layers+holdout", twoLayers()}} {
		b.Run(c.name, func(b *testing.B) {
			bk := mustBucketer(b, c.set)
			d := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = bk.Params(bk.Assign(d))
			}
		})
	}
}

func TestCountersPerLayer(t *testing.T) {
	c := NewCounters()
	b := mustBucketer(t, twoLayers())
	g := c.Serving("production", "snap-1", b)
	for i := 0; i < 2000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		a := b.Assign(d)
		g.Request(a, d, Fill, time.Millisecond)
		g.Impression(g.Tracked(a.Test, nil, d), 10)
	}
	g.Request(b.Assign(nil), nil, NoFill, time.Millisecond)
	c.drain()
	rows := c.Flush("e1", time.Unix(0, 0), time.Unix(60, 0))
	req := map[string]uint64{}
	imp := map[string]uint64{}
	groups := map[string]uint64{}
	for _, r := range rows {
		req[r.Layer] += r.Requests
		imp[r.Layer] += r.Impressions
		groups[r.Layer+"/"+r.Test] += r.Requests
	}
	for _, l := range []string{"ranking", "floors"} {
		if req[l] != 2001 || imp[l] != 2000 {
			t.Errorf("layer %s: %d requests %d impressions, want 2001 and 2000 (every request once per layer)", l, req[l], imp[l])
		}
	}
	if groups["ranking/holdout"] == 0 || groups["floors/holdout"] != groups["ranking/holdout"] || groups["ranking/cpc"] == 0 || groups["floors/floor"] == 0 {
		t.Errorf("groups %v", groups)
	}
}

func TestAppendLayers(t *testing.T) {
	b := mustBucketer(t, twoLayers())
	var buf []byte
	found := map[string]bool{}
	for i := 0; i < 2000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		a := b.Assign(d)
		buf = b.AppendLayers(buf[:0], a)
		_, t0, v0 := b.LayerLabels(a, 0)
		_, t1, v1 := b.LayerLabels(a, 1)
		// Shares from the set as written: each layer's test and control
		// hold half of it; the holdout 5%.
		share := func(test string) string {
			if test == HoldoutTest {
				return "500"
			}
			return "5000"
		}
		if want := "ranking:" + t0 + ":" + v0 + ":" + share(t0) + ";floors:" + t1 + ":" + v1 + ":" + share(t1); string(buf) != want {
			t.Fatalf("%s: %q, want %q", d, buf, want)
		}
		found[string(buf)] = true
	}
	if len(found) != 5 { // 2x2 plus holdout
		t.Fatalf("combinations %v", found)
	}
	if n := testing.AllocsPerRun(100, func() { buf = b.AppendLayers(buf[:0], b.Assign([]byte("x"))) }); n != 0 {
		t.Fatalf("AppendLayers: %v allocs", n)
	}
	if got := mustBucketer(t, defaultSet()).AppendLayers(nil, Assignment{}); len(got) != 0 {
		t.Fatalf("original form: %q", got)
	}
}

// GroupShareBP is the configured share (the original form's ShareBP, or a
// layer's segments) and the count of the group's slots, for every group
// byte a caller may pass; it is read once per logged decision, so it is a
// table lookup, not a count over the 10,000 slots.
func TestGroupShareBP(t *testing.T) {
	orig := mustBucketer(t, defaultSet())
	for g, want := range []uint32{5000, 2000, 2000, 1000, 0} {
		if got := orig.GroupShareBP(0, uint8(g)); got != want {
			t.Fatalf("original form group %d: %d bp, want %d", g, got, want)
		}
	}
	for _, s := range []Set{defaultSet(), layeredDemo(), twoLayers()} {
		b := mustBucketer(t, s)
		for l := 0; l < b.NumLayers(); l++ {
			total := uint32(0)
			for g := 0; g < 256; g++ {
				n := uint32(0)
				for _, x := range b.layers[l].group {
					if int(x) == g {
						n++
					}
				}
				if got := b.GroupShareBP(l, uint8(g)); got != n {
					t.Fatalf("set %s layer %d group %d: %d bp, the slot table has %d", s.ID, l, g, got, n)
				}
				total += n
			}
			if total != Slots {
				t.Fatalf("set %s layer %d: shares sum to %d", s.ID, l, total)
			}
		}
	}
	d := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	a := orig.Assign(d)
	if n := testing.AllocsPerRun(1000, func() { _ = orig.LayerShareBP(a, 0) }); n != 0 {
		t.Fatalf("LayerShareBP: %v allocs", n)
	}
}

func BenchmarkLayerShareBP(b *testing.B) {
	bk := mustBucketer(b, twoLayers())
	a := bk.Assign([]byte("38400000-8cf0-11bd-b23e-10b96e40000d"))
	for i := 0; i < b.N; i++ {
		_ = bk.LayerShareBP(a, i&1)
	}
}

// LabelKey is what the edge memoises a fill's bucket JSON by: two
// assignments with one key must have the same labels in every layer, and
// every key Assign produces is in range. Over devices that land in each
// cell of twoLayers, the holdout and unassigned.
func TestLabelKey(t *testing.T) {
	b := mustBucketer(t, twoLayers())
	type labels [MaxLayers][3]string
	seen := map[int]labels{}
	check := func(a Assignment) {
		t.Helper()
		k := a.LabelKey()
		if k < 0 || k >= NumLabelKeys {
			t.Fatalf("%+v: key %d out of [0, %d)", a, k, NumLabelKeys)
		}
		var l labels
		for i := 0; i < b.NumLayers(); i++ {
			l[i][0], l[i][1], l[i][2] = b.LayerLabels(a, i)
		}
		if prev, ok := seen[k]; ok && prev != l {
			t.Fatalf("key %d: labels %v and %v", k, prev, l)
		}
		seen[k] = l
	}
	check(b.Assign(nil))
	for i := 0; i < 20000; i++ {
		check(b.Assign([]byte("dev-" + strconv.Itoa(i))))
	}
	// 2x2 cells, the holdout, unassigned: six label sets, six keys.
	if len(seen) != 6 {
		t.Errorf("%d distinct keys, want 6: %v", len(seen), seen)
	}
	if k := (Assignment{Groups: [MaxLayers]uint8{MaxTests + 1}}).LabelKey(); k != -1 {
		t.Errorf("group over MaxTests: key %d, want -1", k)
	}
}
