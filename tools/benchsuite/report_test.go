package benchsuite

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/tools/loadgen"
	"github.com/adedge/adedge/tools/promtext"
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

// TestLatencyVerdicts: a latency run gets a client and a server row, each
// judged on its own figure; above the generator's ceiling the client row
// is invalid while the server row keeps its verdict.
func TestLatencyVerdicts(t *testing.T) {
	h := func(le100, inf float64) promtext.Samples {
		return promtext.Samples{
			`adedge_ad_request_duration_seconds_bucket{le="0.0001"}`: le100,
			`adedge_ad_request_duration_seconds_bucket{le="+Inf"}`:   inf,
		}
	}
	before, after := h(0, 0), h(1000, 1000) // every request <= 100 us server-side
	s := &suite{o: Options{Log: io.Discard}, rep: &Report{}, genMax: 5000, genRan: true}
	slow := &loadgen.Result{Status: map[string]int{"200": 1000}, LatencyUS: loadgen.Percentiles{P50: 200, P99: 2197, P999: 3000}}
	s.latencyRows("S", "adedge at 1000 req/s", "", 1000, slow, before, after, "", "cmd")
	fast := &loadgen.Result{Status: map[string]int{"200": 1000}, LatencyUS: loadgen.Percentiles{P50: 200, P99: 700, P999: 900}}
	s.latencyRows("S", "adedge at 20k req/s", "", 20000, fast, before, after, "", "cmd")
	want := []struct{ what, met string }{
		{"adedge at 1000 req/s, client", "no"}, // 2197 us: the server's 100 us does not rescue it
		{"adedge at 1000 req/s, server", "yes"},
		{"adedge at 20k req/s, client", "invalid"}, // above the 5000 req/s ceiling
		{"adedge at 20k req/s, server", "yes"},
	}
	if len(s.rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(s.rep.Rows), len(want))
	}
	for i, w := range want {
		if r := s.rep.Rows[i]; r.What != w.what || r.Met != w.met {
			t.Errorf("row %d: %q met %q, want %q met %q (%s)", i, r.What, r.Met, w.what, w.met, r.Figure)
		}
	}
}

// TestFIFOSaysSo: with --fifo in effect, pinned commands in the rows
// carry the chrt that ran them and the report's header says how servers
// and load were scheduled.
func TestFIFOSaysSo(t *testing.T) {
	s := &suite{o: Options{Log: io.Discard}, rep: &Report{Mode: "full", Sched: "at SCHED_FIFO 1"}, rt: true, pin: true}
	s.add(Row{Section: "S", What: "w", Command: "taskset -c 1 adtool loadgen --rate 1"})
	s.add(Row{Section: "S", What: "v", Command: "adtool bench --only swaps"})
	if got := s.rep.Rows[0].Command; got != "chrt -f 1 taskset -c 1 adtool loadgen --rate 1" {
		t.Errorf("pinned command %q", got)
	}
	if got := s.rep.Rows[1].Command; got != "adtool bench --only swaps" {
		t.Errorf("unpinned command %q", got)
	}
	if got := strings.Join(s.client("x"), " "); got != "chrt -f 1 taskset -c 1 x" {
		t.Errorf("client argv %q", got)
	}
	if md := s.rep.Markdown(); !strings.Contains(md, "Scheduling: at SCHED_FIFO 1.") {
		t.Errorf("no scheduling line:\n%s", md)
	}
}

// The platform meter's JSON (adtool hiccup --json) becomes the row's
// figure; output it cannot read says so instead of a zero.
func TestPlatformFigure(t *testing.T) {
	in := `{"period_ns":1000000,"threshold_ns":1000000,"cpus":[` +
		`{"cpu":0,"priority":99,"wakeups":9000,"stalls":2,"max_late_ns":1250000,"largest":[]},` +
		`{"cpu":1,"priority":99,"wakeups":8990,"stalls":5,"max_late_ns":30790000,"largest":[{"at_ns":5,"late_ns":30790000}]}]}`
	want := "platform: a SCHED_FIFO 99 sleeper woke at most 1.2 / 30.8 ms late on CPU 0 / 1 (7 wake-ups over 1ms late)"
	if got := platformFigure([]byte(in)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := platformFigure([]byte("hiccup: killed")); !strings.HasPrefix(got, "platform meter: unreadable") {
		t.Errorf("bad output: %s", got)
	}
	if got := joinFigures("a", "", "b"); got != "a; b" {
		t.Errorf("joinFigures: %q", got)
	}
}
