package health

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// report is the /health body as a client decodes it.
type report struct {
	Status   string
	Reasons  []string
	Maint    bool
	Snapshot *struct {
		Version    string
		AgeSeconds int64 `json:"age_seconds"`
	}
	Profiles struct {
		Store         string
		Reachable     *bool
		WindowSeconds int64 `json:"window_seconds"`
		Reads         uint64
		TimeoutRate   float64 `json:"timeout_rate"`
		ErrorRate     float64 `json:"error_rate"`
	}
	Staging struct {
		State   string
		Percent float64
	}
	InFlight      *int64 `json:"in_flight"`
	WeightPercent int    `json:"weight_percent"`
	Uptime        *int64 `json:"uptime_seconds"`
	Build         string
}

func decode(t *testing.T, s *State, now time.Time) (report, int) {
	t.Helper()
	body, code := s.AppendJSON(nil, now)
	var r report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("invalid JSON %s: %v", body, err)
	}
	return r, code
}

func TestStatusLifecycle(t *testing.T) {
	now := time.Now()
	if r, code := decode(t, New(Config{Build: "test"}), now); code != 503 || r.Status != "starting" {
		t.Fatalf("no snapshot fn: %d %+v", code, r)
	}
	loaded := false
	cfg := Config{Build: "test",
		SnapshotFn: func() (Snapshot, bool) { return Snapshot{Version: "v1", Created: now.Add(-time.Hour)}, loaded },
		InFlightFn: func() int64 { return 3 }}
	s := New(cfg)
	if r, code := decode(t, s, now); code != 503 || r.Status != "starting" || len(r.Reasons) != 1 || r.Reasons[0] != "no_snapshot" {
		t.Fatalf("starting: %d %+v", code, r)
	}
	loaded = true
	r, code := decode(t, s, now)
	if code != 200 || r.Status != "ok" || r.Snapshot == nil || r.Snapshot.Version != "v1" || r.Snapshot.AgeSeconds != 3600 ||
		r.InFlight == nil || *r.InFlight != 3 || r.Build != "test" || r.Staging.State != "off" || r.Reasons != nil {
		t.Fatalf("ok: %d %+v", code, r)
	}
	old := cfg
	old.MaxSnapshotAge = 30 * time.Minute
	if r, code := decode(t, New(old), now); code != 200 || r.Status != "degraded" || r.Reasons[0] != "snapshot_too_old" {
		t.Fatalf("old snapshot: %d %+v", code, r)
	}
	s.SetMaint(true)
	if r, code := decode(t, s, now); code != 503 || r.Status != "draining" || !r.Maint {
		t.Fatalf("maint: %d %+v", code, r)
	}
	s.SetMaint(false)
	if s.Status() != OK {
		t.Fatal("maint off must be ok again")
	}
	s.Drain()
	if r, code := decode(t, s, now); code != 503 || r.Status != "draining" || s.Status() != Draining {
		t.Fatalf("draining: %d %+v", code, r)
	}
	s.SetMaint(false)
	if s.Status() != Draining {
		t.Fatal("a drain is for good")
	}
}

// TestProfileWindow: the sampler's window decides reachable and degraded;
// old failures leave the window.
func TestProfileWindow(t *testing.T) {
	var c ProfileCounters
	s := New(Config{Build: "test", SnapshotFn: serving, ProfileStore: "aerospike", ProfilesFn: func() ProfileCounters { return c }})
	now := time.Now()
	var ring []sample
	step := func(gets, hits, timeouts, errs uint64) {
		c.Gets += gets
		c.Hits += hits
		c.Timeouts += timeouts
		c.Errors += errs
		now = now.Add(time.Second)
		ring = s.sampleOnce(ring, 4, now) // a 3 s window
	}
	if r, _ := decode(t, s, now); r.Profiles.Reachable != nil {
		t.Fatalf("before any sample reachable must be null: %+v", r.Profiles)
	}
	step(0, 0, 0, 0)
	step(100, 99, 1, 0)
	r, code := decode(t, s, now)
	if code != 200 || r.Status != "ok" || r.Profiles.Reachable == nil || !*r.Profiles.Reachable || r.Profiles.Reads != 100 ||
		r.Profiles.TimeoutRate != 0.01 || r.Profiles.WindowSeconds != 1 {
		t.Fatalf("healthy store: %d %+v", code, r)
	}
	step(100, 60, 30, 10) // 41 failures of 200 in the window: >= 10%
	r, code = decode(t, s, now)
	if code != 200 || r.Status != "degraded" || r.Reasons[0] != "profile_failures" || r.Profiles.ErrorRate != 0.05 {
		t.Fatalf("failing store: %d %+v", code, r)
	}
	step(50, 0, 50, 0)
	step(50, 0, 50, 0)
	step(50, 0, 50, 0) // the window now holds only the last three seconds: all timeouts
	r, _ = decode(t, s, now)
	if r.Profiles.Reachable == nil || *r.Profiles.Reachable || r.Status != "degraded" || len(r.Reasons) != 2 || r.Profiles.WindowSeconds != 3 {
		t.Fatalf("dead store: %+v", r)
	}
	step(50, 50, 0, 0)
	step(50, 50, 0, 0)
	step(50, 50, 0, 0)
	if r, _ := decode(t, s, now); r.Status != "ok" {
		t.Fatalf("recovered store: %+v", r)
	}
	step(5, 0, 5, 0) // too few reads to judge
	step(0, 0, 0, 0)
	step(0, 0, 0, 0)
	if r, _ := decode(t, s, now); r.Status != "ok" || r.Profiles.Reads != 5 {
		t.Fatalf("few reads: %+v", r)
	}
}

func TestStagingHook(t *testing.T) {
	st := Staging{State: StagingOn, Percent: 5}
	s := New(Config{Build: "test", SnapshotFn: serving, Staging: func() Staging { return st }})
	if r, code := decode(t, s, time.Now()); code != 200 || r.Staging.State != "on" || r.Staging.Percent != 5 || r.Status != "ok" {
		t.Fatalf("staging on: %d %+v", code, r)
	}
	st = Staging{State: StagingFailing, Percent: 5, ErrorRate: 0.5}
	if r, code := decode(t, s, time.Now()); code != 200 || r.Status != "degraded" || r.Reasons[0] != "staging_failing" {
		t.Fatalf("staging failing: %d %+v", code, r)
	}
	if r, _ := decode(t, New(Config{Build: "test", SnapshotFn: serving}), time.Now()); r.Staging.State != "off" {
		t.Fatalf("no staging: %+v", r)
	}
}

// serving reports a fresh snapshot v1.
func serving() (Snapshot, bool) { return Snapshot{Version: "v1", Created: time.Now()}, true }

func TestWeight(t *testing.T) {
	var inFlight int64
	s := New(Config{Build: "test", InFlightFn: func() int64 { return inFlight }, Capacity: 100})
	for _, c := range []struct {
		inFlight int64
		want     int
	}{{0, 100}, {50, 100}, {75, 55}, {100, 10}, {5000, 10}} {
		inFlight = c.inFlight
		if got := s.Weight(); got != c.want {
			t.Errorf("in flight %d of 100: weight %d, want %d", c.inFlight, got, c.want)
		}
	}
}

// agentReply dials the agent like HAProxy does and reads its one line.
func agentReply(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAgent(t *testing.T) {
	var loaded atomic.Bool
	var inFlight atomic.Int64
	s := New(Config{Build: "test", SnapshotFn: func() (Snapshot, bool) { return Snapshot{Version: "v1", Created: time.Now()}, loaded.Load() },
		InFlightFn: inFlight.Load, Capacity: 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeAgent(ln) }()
	addr := ln.Addr().String()
	check := func(want string) {
		t.Helper()
		if got := agentReply(t, addr); got != want {
			t.Errorf("agent said %q, want %q", got, want)
		}
	}
	check("down#starting\n")
	loaded.Store(true)
	check("up ready 100%\n")
	inFlight.Store(9)
	check("up ready 28%\n")
	s.SetMaint(true)
	check("maint\n")
	s.SetMaint(false)
	check("up ready 28%\n")
	s.Drain()
	check("drain\n")
	// A peer that sends first (agent-send) still gets its line.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello\n"))
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "drain\n" {
		t.Errorf("after agent-send: %q", b)
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeAgent after close: %v", err)
	}
}

func TestAdminHandler(t *testing.T) {
	s := New(Config{Build: "test", SnapshotFn: serving})
	var drains atomic.Int32
	srv := httptest.NewServer(s.AdminHandler(func() { drains.Add(1) }))
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	if code, _ := do("GET", "/admin/drain"); code != 405 || s.Draining() {
		t.Fatalf("GET drain: %d", code)
	}
	if code, _ := do("POST", "/admin/maint?on=maybe"); code != 400 {
		t.Fatalf("bad maint: %d", code)
	}
	if code, body := do("POST", "/admin/maint?on=true"); code != 200 || !strings.Contains(body, `"maint":true`) {
		t.Fatalf("maint on: %d %s", code, body)
	}
	if code, body := do("POST", "/admin/maint?on=false"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("maint off: %d %s", code, body)
	}
	if code, body := do("POST", "/admin/drain"); code != 202 || !strings.Contains(body, `"status":"draining"`) || drains.Load() != 1 {
		t.Fatalf("drain: %d %s", code, body)
	}
	if code, body := do("GET", "/admin/health"); code != 200 || !strings.Contains(body, `"draining_seconds":`) {
		t.Fatalf("admin health: %d %s", code, body)
	}
}

// TestRunSamples: Run publishes a window from real ticks and stops with ctx.
func TestRunSamples(t *testing.T) {
	var gets atomic.Uint64
	s := New(Config{Build: "test", ProfileStore: "file",
		ProfilesFn: func() ProfileCounters { g := gets.Add(10); return ProfileCounters{Gets: g, Hits: g} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, 10*time.Millisecond, 50*time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := decode(t, s, time.Now())
		if r.Profiles.Reads >= 50 && r.Profiles.Reachable != nil && *r.Profiles.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("window never filled: %+v", r.Profiles)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestProbeAllocs: the probe allocates nothing once its buffer has room.
func TestProbeAllocs(t *testing.T) {
	s := benchState()
	buf := make([]byte, 0, 2048)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { buf, _ = s.AppendJSON(buf[:0], now) }); n != 0 {
		t.Errorf("AppendJSON: %v allocs per probe", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = s.AppendAgent(buf[:0]) }); n != 0 {
		t.Errorf("AppendAgent: %v allocs per reply", n)
	}
}

func benchState() *State {
	created := time.Now().Add(-time.Minute)
	var n atomic.Int64
	st := Staging{State: StagingOn, Percent: 5}
	s := New(Config{Build: "v1.2.3",
		SnapshotFn:   func() (Snapshot, bool) { return Snapshot{Version: "20261201T000000Z-0123abcd", Created: created}, true },
		InFlightFn:   n.Load,
		ProfileStore: "aerospike",
		ProfilesFn:   func() ProfileCounters { return ProfileCounters{Gets: 1000, Hits: 990, Timeouts: 10} },
		Staging:      func() Staging { return st }})
	s.sampleOnce(nil, 2, time.Now())
	return s
}

func BenchmarkAppendJSON(b *testing.B) {
	s := benchState()
	buf := make([]byte, 0, 2048)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendJSON(buf[:0], now)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendJSONParallel(b *testing.B) {
	s := benchState()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 2048)
		for pb.Next() {
			buf, _ = s.AppendJSON(buf[:0], time.Now())
		}
	})
}

func TestExtras(t *testing.T) {
	s := New(Config{Build: "test", SnapshotFn: serving, Extras: []func([]byte) []byte{
		func(dst []byte) []byte { return append(dst, `,"distribution":{"state":"idle"}`...) },
		func(dst []byte) []byte { return append(dst, `,"events":{"backlog":0}`...) },
	}})
	body, code := s.AppendJSON(nil, time.Now())
	var got struct {
		Distribution struct{ State string }
		Events       struct{ Backlog *int }
	}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || got.Distribution.State != "idle" || got.Events.Backlog == nil {
		t.Fatalf("%d %s %v", code, body, err)
	}
}

// A pacing problem (spend store down) degrades the edge with its reason;
// it still serves (200).
func TestPacingProblemDegrades(t *testing.T) {
	problem := ""
	s := New(Config{Build: "test", SnapshotFn: serving, PacingProblem: func() string { return problem }})
	body, code := s.AppendJSON(nil, time.Now())
	if code != 200 || !strings.Contains(string(body), `"pacing":{"state":"ok"}`) || strings.Contains(string(body), "degraded") {
		t.Fatalf("%d %s", code, body)
	}
	problem = `spend store aerospike://x: "timeout"`
	body, code = s.AppendJSON(nil, time.Now())
	var got struct {
		Status  string
		Reasons []string
		Pacing  struct{ State, Reason string }
	}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 {
		t.Fatalf("%d %s %v", code, body, err)
	}
	if got.Status != "degraded" || len(got.Reasons) != 1 || got.Reasons[0] != "pacing_degraded" || got.Pacing.State != "degraded" || !strings.Contains(got.Pacing.Reason, "timeout") {
		t.Fatalf("%+v", got)
	}
}
