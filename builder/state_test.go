package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adedge/adedge/builder/inventory"
)

// The state file carries the set from one build to the next: a new
// experiments.json that moves a running test's users is refused with
// file:line and the test named, and nothing is written; halving t1 builds.
func TestBuildRefusesMovingRunningTests(t *testing.T) {
	in := genSmall(t)
	out := filepath.Join(t.TempDir(), "out")
	expPath := filepath.Join(in, inventory.ExperimentsFile)
	orig, err := os.ReadFile(expPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Input: in, Out: out, Created: created}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(filepath.Join(out, StateFile))
	if err != nil || st == nil || len(st.Set.Tests) != 3 || !st.Set.Layered() {
		t.Fatalf("state %+v %v", st, err)
	}
	edit := func(old, new string) {
		t.Helper()
		b, _ := os.ReadFile(expPath)
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q:\n%s", expPath, old, b)
		}
		if err := os.WriteFile(expPath, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// t2 grows into t3's segments: both refused, by line.
	edit(`"segments": "20-39"`, `"segments": "20-44"`)
	edit(`"segments": "40-49"`, `"segments": "45-49"`)
	before, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	_, err = Build(Options{Input: in, Out: out, Created: created.Add(1)})
	if err == nil {
		t.Fatal("a change moving t3's users into t2 was built")
	}
	for _, want := range []string{`experiments.json:`, `test "t2-cpi-weight" is running`, `test "t3-min-ctr" is running and its users would move to t2-cpi-weight 50.00%`, StateFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if string(before) != string(after) {
		t.Fatal("a refused build replaced manifest.json")
	}
	// Without the state the same file builds (a deliberate reset).
	if _, err := Build(Options{Input: in, Out: t.TempDir(), Created: created, State: NoState}); err != nil {
		t.Fatal(err)
	}
	// Halving t1 and ending t3 builds; t3 is retired in the new state.
	if err := os.WriteFile(expPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	edit(`"segments": "0-19"`, `"segments": "0-9"`)
	b, _ := os.ReadFile(expPath)
	i := strings.Index(string(b), `    {
      "id": "t3-min-ctr"`)
	if i < 0 {
		t.Fatalf("no t3 in\n%s", b)
	}
	cut := strings.TrimRight(string(b[:i]), " \n,") + "\n  ]\n}\n"
	if err := os.WriteFile(expPath, []byte(cut), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Input: in, Out: out, Created: created.Add(2)}); err != nil {
		t.Fatal(err)
	}
	st, err = ReadState(filepath.Join(out, StateFile))
	if err != nil || len(st.Set.Tests) != 2 || len(st.Retired) != 1 || st.Retired[0].ID != "t3-min-ctr" {
		t.Fatalf("state after ending t3: %+v %v", st, err)
	}
}
