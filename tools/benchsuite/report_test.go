package benchsuite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMet(t *testing.T) {
	for _, c := range []struct {
		v      float64
		target string
		want   string
	}{{0.7, ">= 0.6", "yes"}, {0.5, ">= 0.6", "no"}, {900, "< 1000", "yes"}, {0, "<= 0", "yes"}, {1, "<= 0", "no"}, {3, "", ""}, {3, "about 3", ""}} {
		if got := met(c.v, c.target); got != c.want {
			t.Errorf("met(%v, %q) = %q, want %q", c.v, c.target, got, c.want)
		}
	}
}

// TestWriteMarkdownKeepsTheRest: the generated part is replaced between
// the markers and the hand-written text around it survives; a file
// without markers gets them appended; one marker alone is an error.
func TestWriteMarkdownKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "B.md")
	os.WriteFile(p, []byte("# Title\n\nnotes before\n\n"+BeginMarker+"\nold figures\n"+EndMarker+"\n\nnotes after\n"), 0o644)
	r := &Report{Mode: "full", Started: time.Now(), Rows: []Row{{Step: "micro", Section: "S", What: "w|x", Figure: "1 ns", Target: "<= 0", Met: "yes", Command: "go test"}}}
	if err := r.WriteMarkdown(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	for _, want := range []string{"notes before", "notes after", "### S", `w\|x`, "`go test`"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old figures") || strings.Count(s, BeginMarker) != 1 {
		t.Errorf("old part not replaced exactly once:\n%s", s)
	}
	q := filepath.Join(dir, "new.md")
	os.WriteFile(q, []byte("# New\n"), 0o644)
	if err := r.WriteMarkdown(q); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(q); !strings.Contains(string(b), BeginMarker) || !strings.HasPrefix(string(b), "# New") {
		t.Errorf("markers not appended: %s", b)
	}
	bad := filepath.Join(dir, "bad.md")
	os.WriteFile(bad, []byte(BeginMarker+"\n"), 0o644)
	if err := r.WriteMarkdown(bad); err == nil {
		t.Error("a lone marker accepted")
	}
}

// TestMergeOld: a partial run keeps the other steps' rows, in step order.
func TestMergeOld(t *testing.T) {
	old := &Report{Rows: []Row{{Step: "micro", What: "m"}, {Step: "throughput", What: "old t"}, {Step: "builder", What: "b"}}}
	r := &Report{Rows: []Row{{Step: "throughput", What: "new t"}}}
	r.MergeOld(old, []string{"throughput"})
	var got []string
	for _, row := range r.Rows {
		got = append(got, row.What)
	}
	if strings.Join(got, ",") != "m,new t,b" {
		t.Errorf("rows %v", got)
	}
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkServeAd/no-device-2   	  169423	      5976 ns/op	       787.2 B/fill	         1.000 fill	       0 B/op	       0 allocs/op
BenchmarkServeAd/no-device-2   	  169423	      5000 ns/op	       787.2 B/fill	         1.000 fill	       0 B/op	       0 allocs/op
BenchmarkHash/xxhash64-2         	     100	  3000 ns/op	 11200.00 MB/s
PASS
`)
	b := parseBench(out)
	if len(b["BenchmarkServeAd/no-device"]) != 2 || b["BenchmarkHash/xxhash64"][0].mbS != 11200 {
		t.Fatalf("%+v", b)
	}
	if m := medianOf(b["BenchmarkServeAd/no-device"], func(l benchLine) float64 { return l.nsOp }); m != 5488 {
		t.Errorf("median %v", m)
	}
	if b["BenchmarkServeAd/no-device"][0].metrics["B/fill"] != 787.2 {
		t.Errorf("custom metric lost")
	}
}
