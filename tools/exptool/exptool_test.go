package exptool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/tools/gen"
)

// demo builds the generated demo inventory and returns its snapshot and
// experiments.json paths.
func demo(t *testing.T) (snap, expPath string) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "inv")
	if _, err := gen.Generate(in, gen.Scales["small"], 1, nil); err != nil {
		t.Fatal(err)
	}
	res, err := builder.Build(builder.Options{Input: in, Out: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	return res.Path, filepath.Join(in, "experiments.json")
}

// The number: the demo set with t1's share halved moves 50% of
// t1's users (to control) and 0% of t2's and t3's; the builder accepts it.
func TestDiffDemoHalvingT1(t *testing.T) {
	snap, expPath := demo(t)
	b, _ := os.ReadFile(expPath)
	halved := filepath.Join(t.TempDir(), "experiments.json")
	if err := os.WriteFile(halved, bytes.Replace(b, []byte(`"segments": "0-19"`), []byte(`"segments": "0-9"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := LoadSet(snap)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := LoadSet(halved)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	refused, err := WriteDiff(&out, old, nw)
	if err != nil || refused {
		t.Fatalf("refused %v err %v\n%s", refused, err, out.String())
	}
	for _, want := range []string{
		"t1-floor       main   20.00%     10.00%     50.00%       0.00%           0.00%     resized",
		"t2-cpi-weight  main   20.00%     20.00%     0.00%        0.00%           0.00%     unchanged",
		"t3-min-ctr     main   10.00%     10.00%     0.00%        0.00%           0.00%     unchanged",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
	// The original consecutive-range form of the same set: halving t1
	// moves half of t2 into t3 and refuses.
	var legacy abtest.Set
	legacy.ID, legacy.Salt = old.ID, old.Salt
	shares := []uint32{2000, 2000, 1000}
	for i, tt := range old.Tests {
		legacy.Tests = append(legacy.Tests, abtest.Test{ID: tt.ID, Variant: tt.Variant, ShareBP: shares[i], Params: tt.Params})
	}
	lh := legacy
	lh.Tests = append([]abtest.Test(nil), legacy.Tests...)
	lh.Tests[0].ShareBP = 1000
	out.Reset()
	if refused, _ := WriteDiff(&out, &legacy, &lh); !refused || !strings.Contains(out.String(), `test "t2-cpi-weight" is running and its users would move to t3-min-ctr 50.00%`) {
		t.Errorf("original form: refused %v\n%s", refused, out.String())
	}
	// A state file reads as its set.
	st, _ := json.Marshal(builder.ExperimentsState{Snapshot: "v", Set: *old})
	stPath := filepath.Join(t.TempDir(), builder.StateFile)
	_ = os.WriteFile(stPath, st, 0o644)
	if s, err := LoadSet(stPath); err != nil || s.ID != old.ID || len(s.Tests) != 3 {
		t.Fatalf("state: %+v %v", s, err)
	}
	// A bad experiments.json names file:line.
	bad := filepath.Join(t.TempDir(), "experiments.json")
	_ = os.WriteFile(bad, bytes.Replace(b, []byte(`"segments": "20-39"`), []byte(`"segments": "15-39"`), 1), 0o644)
	if _, err := LoadSet(bad); err == nil || !strings.Contains(err.Error(), "experiments.json:") || !strings.Contains(err.Error(), "tests[1].segments: segment 15-19 is also tests[0]'s (t1-floor)") {
		t.Fatalf("bad set: %v", err)
	}
}

// adtool bucket prints the edge's bucketer's answer for every layer, one
// line per device and layer, in input order.
func TestBucketLines(t *testing.T) {
	snap, _ := demo(t)
	b, invalid, err := SnapshotBucketer(snap)
	if err != nil || invalid != nil {
		t.Fatal(err, invalid)
	}
	var in strings.Builder
	var want []string
	for i := 0; i < 500; i++ {
		d := "dev-" + strconv.Itoa(i)
		in.WriteString(d + "\n")
		a := b.Assign([]byte(d))
		tt, v := b.Labels(a)
		want = append(want, d+" main "+tt+" "+v)
	}
	in.WriteString("\n")
	want = append(want, "- main control unassigned")
	var out bytes.Buffer
	if err := WriteBuckets(&out, b, strings.NewReader(in.String())); err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %d lines, want %d; first %q", len(got), len(want), got[0])
	}
	seen := map[string]bool{}
	for _, l := range want {
		seen[strings.Fields(l)[2]] = true
	}
	if len(seen) != 4 {
		t.Fatalf("500 devices fell in %v", seen)
	}
	if err := WriteBuckets(&out, b, strings.NewReader(strings.Repeat("x", 5000))); err == nil || !strings.Contains(err.Error(), "line 1: longer than") {
		t.Fatalf("long line: %v", err)
	}
}
