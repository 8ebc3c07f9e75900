package abtest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/abtest/stats"
)

func defaultSet() Set {
	return Set{ID: "exp-1", Salt: "s1", Tests: []Test{
		{ID: "t1", Variant: "floor_plus_10", ShareBP: 2000, Params: map[string]float64{"floor_multiplier": 1.1}},
		{ID: "t2", Variant: "cpc_heavy", ShareBP: 2000, Params: map[string]float64{"weight_cpc": 1.5}},
		{ID: "t3", Variant: "aa", ShareBP: 1000},
	}}
}

func TestSlotIsTheDocumentedRule(t *testing.T) {
	dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	want := uint16(xxhash.Sum64String("s1:"+string(dev)) % 10000)
	if got := Slot("s1", dev); got != want {
		t.Fatalf("Slot = %d, want xxhash64(\"s1:\"+device) mod 10000 = %d", got, want)
	}
	b, err := NewBucketer(defaultSet(), Defaults)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Assign(dev)
	if a.Slot != want || a.Shard != uint8(xxhash.Sum64(dev)%64) {
		t.Fatalf("Assign = %+v, want slot %d shard %d", a, want, xxhash.Sum64(dev)%64)
	}
	// Boundaries: [0,2000) t1, [2000,4000) t2, [4000,5000) t3, rest control.
	wantTest := uint8(0)
	switch {
	case want < 2000:
		wantTest = 1
	case want < 4000:
		wantTest = 2
	case want < 5000:
		wantTest = 3
	}
	if a.Test != wantTest {
		t.Fatalf("slot %d in test %d, want %d", want, a.Test, wantTest)
	}
}

func TestAssignStableAndSaltSensitive(t *testing.T) {
	s := defaultSet()
	b1, _ := NewBucketer(s, Defaults)
	b2, _ := NewBucketer(s, Defaults) // "another edge" / "after a restart"
	s.Salt = "s2"
	b3, _ := NewBucketer(s, Defaults)
	moved := 0
	for i := 0; i < 10000; i++ {
		d := []byte("dev-" + strconv.Itoa(i))
		if b1.Assign(d) != b2.Assign(d) {
			t.Fatalf("device %s bucketed differently by two bucketers of one set", d)
		}
		if b1.Assign(d).Test != b3.Assign(d).Test {
			moved++
		}
	}
	// With 50/20/20/10 two independent draws agree with probability
	// .25+.04+.04+.01 = .34, so about 66% move under a new salt.
	if moved < 6000 || moved > 7200 {
		t.Fatalf("a new salt moved %d of 10000 devices, want about 6600", moved)
	}
}

func TestUnassigned(t *testing.T) {
	b, _ := NewBucketer(defaultSet(), Defaults)
	a := b.Assign(nil)
	if !a.Unassigned || a.Test != 0 {
		t.Fatalf("no device: %+v", a)
	}
	if tt, v := b.Labels(a); tt != ControlTest || v != UnassignedVariant {
		t.Fatalf("labels %s/%s", tt, v)
	}
	if tt, v := b.Labels(Assignment{Test: 2, Groups: [MaxLayers]uint8{2}}); tt != "t2" || v != "cpc_heavy" {
		t.Fatalf("labels %s/%s", tt, v)
	}
}

func TestParamsPerTest(t *testing.T) {
	b, _ := NewBucketer(defaultSet(), Defaults)
	if *b.TestParams(0) != Defaults {
		t.Fatalf("control params %+v", *b.TestParams(0))
	}
	if b.TestParams(1).FloorMultiplier != 1.1 || b.TestParams(1).WeightCPC != 1 {
		t.Fatalf("t1 params %+v", *b.TestParams(1))
	}
	if b.TestParams(2).WeightCPC != 1.5 || b.TestParams(3).FloorMultiplier != 1 {
		t.Fatalf("t2/t3 params %+v %+v", *b.TestParams(2), *b.TestParams(3))
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		json string
	}{
		{"over 100%", `{"id":"e","salt":"s","tests":[{"id":"a","variant":"a","share_bp":6000},{"id":"b","variant":"b","share_bp":4001}]}`},
		{"four tests", `{"id":"e","salt":"s","tests":[{"id":"a","share_bp":1},{"id":"b","share_bp":1},{"id":"c","share_bp":1},{"id":"d","share_bp":1}]}`},
		{"duplicate", `{"id":"e","salt":"s","tests":[{"id":"a","share_bp":1},{"id":"a","share_bp":1}]}`},
		{"unknown param", `{"id":"e","salt":"s","tests":[{"id":"a","share_bp":1,"params":{"weight_cpx":1}}]}`},
		{"no salt", `{"id":"e","tests":[]}`},
		{"zero share", `{"id":"e","salt":"s","tests":[{"id":"a","share_bp":0}]}`},
		{"not json", `{"id":`},
	} {
		if _, err := ParseSet([]byte(c.json)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := ParseSet([]byte(`{"id":"e","salt":"s","tests":[{"id":"a","variant":"v","share_bp":10000}]}`)); err != nil {
		t.Errorf("100%% in one test refused: %v", err)
	}
}

// TestCheck: every rule of the one experiment-set validator, with the path
// and message the builder, the edge and adtool verify all report.
func TestCheck(t *testing.T) {
	ok := func() Set {
		return Set{ID: "e", Salt: "s", Tests: []Test{
			{ID: "a", Variant: "va", ShareBP: 2000, Params: map[string]float64{"floor_multiplier": 1.1}},
			{ID: "b", Variant: "vb", ShareBP: 1000},
		}}
	}
	for _, c := range []struct {
		name   string
		change func(s *Set)
		want   []string
	}{
		{"valid", func(*Set) {}, nil},
		{"empty salt", func(s *Set) { s.Salt = "" }, []string{"salt: required: must be non-empty (the bucketing salt)"}},
		{"empty set id", func(s *Set) { s.ID = "" }, []string{"id: required: must be non-empty (the experiment set id, in every report row)"}},
		{"test named control", func(s *Set) { s.Tests[1].ID = "control" }, []string{`tests[1].id: "control" is reserved for the control group`}},
		{"empty test id", func(s *Set) { s.Tests[0].ID = "" }, []string{"tests[0].id: required: must be non-empty"}},
		{"duplicate test id", func(s *Set) { s.Tests[1].ID = "a" }, []string{`tests[1].id: duplicate test id "a" (first at tests[0])`}},
		{"zero share", func(s *Set) { s.Tests[0].ShareBP = 0 }, []string{"tests[0].share_bp: must be >= 1 (0.01% of traffic), got 0"}},
		{"unknown parameter", func(s *Set) { s.Tests[1].Params = map[string]float64{"weight_cpx": 1} },
			[]string{`tests[1].params: unknown parameter "weight_cpx" (known: floor_multiplier, min_ctr, weight_cpc, weight_cpi, weight_cpm)`}},
		{"parameter out of range", func(s *Set) { s.Tests[0].Params["min_ctr"] = 2 }, []string{"tests[0].params.min_ctr: must be in [0, 1], got 2"}},
		{"parameter NaN", func(s *Set) { s.Tests[0].Params["floor_multiplier"] = math.NaN() }, []string{"tests[0].params.floor_multiplier: must be in [0, 10], got NaN"}},
		{"empty variant", func(s *Set) { s.Tests[0].Variant = "" }, []string{"tests[0].variant: required: must be non-empty (the label reports show)"}},
		{"over 100%", func(s *Set) { s.Tests[1].ShareBP = 8001 },
			[]string{"tests: share_bp values add up to 10001 (100.01%), more than 10000 (100%); control gets 10000 minus the sum"}},
		{"four tests", func(s *Set) {
			s.Tests = append(s.Tests, Test{ID: "c", Variant: "c", ShareBP: 1}, Test{ID: "d", Variant: "d", ShareBP: 1})
		}, []string{"tests: at most 3 tests run at once, got 4"}},
		{"several at once", func(s *Set) { s.Salt = ""; s.Tests[1].ID = "control"; s.Tests[1].ShareBP = 0 },
			[]string{"salt: required: must be non-empty (the bucketing salt)", `tests[1].id: "control" is reserved for the control group`, "tests[1].share_bp: must be >= 1 (0.01% of traffic), got 0"}},
	} {
		s := ok()
		c.change(&s)
		var got []string
		for _, p := range s.Check() {
			got = append(got, p.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: problems\n  %q\nwant\n  %q", c.name, got, c.want)
		}
		if err := s.Validate(); (err != nil) != (c.want != nil) {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
		if _, err := NewBucketer(s, Defaults); (err != nil) != (c.want != nil) {
			t.Errorf("%s: NewBucketer error %v", c.name, err)
		}
	}
}

// TestSharesChiSquare buckets 1M synthetic devices and checks the observed
// shares against the configured 20/20/10/50 with Pearson's chi-square at
// the 0.1% level (a correct bucketer fails it once in a thousand salts; the
// salts here are fixed, so the test is deterministic). It also checks the
// staging layer's 5% the same way.
func TestSharesChiSquare(t *testing.T) {
	const n = 1_000_000
	b, _ := NewBucketer(defaultSet(), Defaults)
	st, _ := NewStaging("", 5)
	var counts [4]float64
	var staged [2]float64
	dev := make([]byte, 0, 40)
	for i := 0; i < n; i++ {
		dev = fmt.Appendf(dev[:0], "%08x-0000-4000-8000-%012d", i*2654435761, i)
		counts[b.Assign(dev).Test]++
		if st.Staged(dev) {
			staged[0]++
		} else {
			staged[1]++
		}
	}
	stat, df, p := stats.ChiSquareGOF(counts[:], []float64{5000, 2000, 2000, 1000})
	t.Logf("A/B shares %v: chi2=%.2f df=%d p=%.3f", counts, stat, df, p)
	if df != 3 || p < 0.001 {
		t.Fatalf("observed %v vs 50/20/20/10: chi2=%.2f df=%d p=%.5f", counts, stat, df, p)
	}
	stat, df, p = stats.ChiSquareGOF(staged[:], []float64{500, 9500})
	t.Logf("staging %v: chi2=%.2f p=%.3f", staged, stat, p)
	if df != 1 || p < 0.001 {
		t.Fatalf("staging %v vs 5/95: chi2=%.2f p=%.5f", staged, stat, p)
	}
	// And the test must be able to fail: a 1-point skew over 1M devices.
	skew := []float64{counts[0] - 10000, counts[1] + 10000, counts[2], counts[3]}
	if _, _, p := stats.ChiSquareGOF(skew, []float64{5000, 2000, 2000, 1000}); p > 1e-6 {
		t.Fatalf("a 1%% skew passed: p=%g", p)
	}
}

func TestStaging(t *testing.T) {
	if _, err := NewStaging("", 101); err == nil {
		t.Fatal("101% accepted")
	}
	off, _ := NewStaging("", 0)
	all, _ := NewStaging("", 100)
	if off.Staged([]byte("x")) || !all.Staged([]byte("x")) || all.Staged(nil) {
		t.Fatal("0%/100%/no-device staging wrong")
	}
	// The staging salt is independent of the A/B salt: among staged devices
	// the A/B shares are the same.
	b, _ := NewBucketer(defaultSet(), Defaults)
	st, _ := NewStaging("", 50)
	var in, ctl float64
	for i := 0; i < 100000; i++ {
		d := []byte("d" + strconv.Itoa(i))
		if st.Staged(d) {
			in++
			if b.Assign(d).Test == 0 {
				ctl++
			}
		}
	}
	if f := ctl / in; f < 0.48 || f > 0.52 {
		t.Fatalf("control share among staged devices %.3f, want 0.50", f)
	}
}

func BenchmarkAssign(b *testing.B) {
	bk, _ := NewBucketer(defaultSet(), Defaults)
	dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	b.ReportAllocs()
	var sink uint8
	for b.Loop() {
		sink += bk.Assign(dev).Test
	}
	_ = sink
}

func BenchmarkStaged(b *testing.B) {
	st, _ := NewStaging("", 5)
	dev := []byte("38400000-8cf0-11bd-b23e-10b96e40000d")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if st.Staged(dev) {
			n++
		}
	}
	_ = n
}

func TestLongDeviceSameSlot(t *testing.T) {
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte('a' + i%26)
	}
	want := uint16(xxhash.Sum64String("s1:"+string(long)) % 10000)
	if got := Slot("s1", long); got != want {
		t.Fatalf("long device: slot %d, want %d", got, want)
	}
}

// TestSnapshotBucketer: a good set compiles as is; a refused one still
// gives a bucketer, everyone control under the set's id, and the reason.
func TestSnapshotBucketer(t *testing.T) {
	b, err := SnapshotBucketer([]byte(`{"id":"exp-1","salt":"s1","tests":[{"id":"t1","variant":"v","share_bp":5000,"params":{"min_ctr":0.01}}]}`), Defaults)
	if err != nil || b.NumTests() != 1 || b.TestParams(1).MinCTR != 0.01 {
		t.Fatalf("good set: %v, %d tests", err, b.NumTests())
	}
	if i, ok := b.TestIndex("t1"); !ok || i != 1 {
		t.Fatalf("TestIndex(t1) = %d %v", i, ok)
	}
	if i, ok := b.TestIndex(ControlTest); !ok || i != 0 {
		t.Fatalf("TestIndex(control) = %d %v", i, ok)
	}
	if _, ok := b.TestIndex("t2"); ok {
		t.Fatal("TestIndex(t2) found")
	}
	for _, bad := range []string{`{"id":"exp-2","salt":"","tests":[]}`, `{"id":"exp-2","salt":"s","tests":[{"id":"control","share_bp":1}]}`, `not json`} {
		b, err := SnapshotBucketer([]byte(bad), Defaults)
		if err == nil || b == nil || b.NumTests() != 0 || *b.TestParams(0) != Defaults {
			t.Fatalf("%s: err %v, bucketer %+v", bad, err, b)
		}
		if bad[0] == '{' && b.Set().ID != "exp-2" {
			t.Fatalf("%s: id %q", bad, b.Set().ID)
		}
		if a := b.Assign([]byte("dev-1")); a.Test != 0 {
			t.Fatalf("%s: assigned to test %d", bad, a.Test)
		}
	}
}
