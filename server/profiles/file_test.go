package profiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// writeFile writes content to a profiles.jsonl in a temp dir.
func writeFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profiles.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const sampleProfiles = `{"device":"d1","segments":["gamers","sports"],"installed_apps":["com.b.game","com.a.chat"]}

{"device":"d2","segments":["gamers"]}
  {"device":"d3","installed_apps":["com.x"],"segments":null}` + "\r\n"

func TestFileStoreGet(t *testing.T) {
	s, err := OpenFile(writeFile(t, sampleProfiles))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	ctx := context.Background()
	var p Profile
	if err := s.Get(ctx, "d1", &p); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Segments, ",") != "gamers,sports" {
		t.Errorf("segments = %v", p.Segments)
	}
	if !p.HasApp(AppHash("com.a.chat")) || !p.HasApp(AppHash("com.b.game")) || p.HasApp(AppHash("com.x")) {
		t.Errorf("apps = %v", p.InstalledApps)
	}
	if err := s.Get(ctx, "d3", &p); err != nil || len(p.Segments) != 0 || !p.HasApp(AppHash("com.x")) {
		t.Fatalf("d3: %+v %v", p, err)
	}
	if err := s.Get(ctx, "nobody", &p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if len(p.Segments)+len(p.InstalledApps)+len(p.Caps) != 0 {
		t.Fatalf("miss left data in dst: %+v", p)
	}
	// Segment strings are interned: one copy shared by all profiles.
	var p2 Profile
	_ = s.Get(ctx, "d1", &p)
	_ = s.Get(ctx, "d2", &p2)
	if unsafe.StringData(p.Segments[0]) != unsafe.StringData(p2.Segments[0]) {
		t.Error("segment names not interned")
	}

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := s.Get(expired, "d1", &p); !errors.Is(err, ErrTimeout) {
		t.Fatalf("expired ctx: %v, want ErrTimeout", err)
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := s.Get(cancelled, "d1", &p); err == nil || errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	st := s.Stats()
	want := Stats{Gets: 7, Hits: 4, Misses: 1, Timeouts: 1, Errors: 1}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}

	s.Close()
	if err := s.Get(ctx, "d1", &p); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestFileStoreParseErrors(t *testing.T) {
	content := strings.Join([]string{
		`{"device":"ok1","segments":["a"]}`,                     // 1
		`{"device":"x","segments":["a"],"age":3}`,               // 2 unknown field
		`{"device":"y","segments":["a"]`,                        // 3 truncated
		`not json`,                                              // 4
		`{"segments":["a"]}`,                                    // 5 no device
		`{"device":"z","segments":"gamers"}`,                    // 6 wrong type
		`{"device":"w","segments":[""]}`,                        // 7 empty segment
		`{"device":"v","installed_apps":["com.a",""]}`,          // 8 empty bundle
		`{"device":"u"} {"device":"t"}`,                         // 9 two objects
		`["d"]`,                                                 // 10 array
		`{"device":"ok1"}`,                                      // 11 duplicate of line 1
		`{"device":"s","segments":[1]}`,                         // 12 number in list
		`{"device":"ok2","segments":["b"],"installed_apps":[]}`, // 13 fine
	}, "\n")
	path := writeFile(t, content)
	_, err := OpenFile(path)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *ParseError", err)
	}
	wants := map[int]string{
		2:  `unknown field "age"`,
		3:  "unexpected end",
		4:  "not a JSON object",
		5:  `missing or empty "device"`,
		6:  `field "segments"`,
		7:  "segments[0]: empty segment name",
		8:  "installed_apps[1]: empty bundle id",
		9:  "trailing data",
		10: "not a JSON object",
		11: `duplicate device "ok1" (first on line 1)`,
		12: `field "segments`,
	}
	if pe.Total != len(wants) || len(pe.Problems) != len(wants) {
		t.Fatalf("got %d problems (%d listed), want %d:\n%v", pe.Total, len(pe.Problems), len(wants), err)
	}
	msg := err.Error()
	for line, want := range wants {
		prefix := fmt.Sprintf("%s:%d: ", path, line)
		found := false
		for _, p := range pe.Problems {
			if strings.HasPrefix(p, prefix) && strings.Contains(p, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %q%q in:\n%s", prefix, want, msg)
		}
	}
	for _, okLine := range []int{1, 13} {
		if strings.Contains(msg, fmt.Sprintf("%s:%d: ", path, okLine)) {
			t.Errorf("valid line %d reported:\n%s", okLine, msg)
		}
	}
}

func TestFileStoreProblemCap(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 120; i++ {
		b.WriteString("{bad\n")
	}
	_, err := OpenFile(writeFile(t, b.String()))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if pe.Total != 120 || len(pe.Problems) != MaxReportedProblems {
		t.Fatalf("total %d listed %d, want 120 and %d", pe.Total, len(pe.Problems), MaxReportedProblems)
	}
	if !strings.Contains(err.Error(), "... and 70 more problem(s)") {
		t.Fatalf("error does not count the rest:\n%s", err)
	}
}

func TestFileStoreCaps(t *testing.T) {
	s, err := OpenFile(writeFile(t, `{"device":"d1","segments":["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const hour = 3600
	t0 := int64(1_700_000_000)
	t0 -= t0 % hour
	for i := 0; i < 3; i++ {
		if err := s.IncrementCap(ctx, "d1", "c1", hour, t0+int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IncrementCap(ctx, "d1", "c2", 60, t0); err != nil {
		t.Fatal(err)
	}
	var p Profile
	if err := s.Get(ctx, "d1", &p); err != nil {
		t.Fatal(err)
	}
	if got := p.CapCount("c1", hour, t0+100); got != 3 {
		t.Fatalf("c1 = %d, want 3", got)
	}
	if got := p.CapCount("c2", 60, t0); got != 1 {
		t.Fatalf("c2 = %d, want 1", got)
	}
	// Next window: the count restarts.
	if err := s.IncrementCap(ctx, "d1", "c1", hour, t0+hour+5); err != nil {
		t.Fatal(err)
	}
	_ = s.Get(ctx, "d1", &p)
	if got := p.CapCount("c1", hour, t0+hour+5); got != 1 {
		t.Fatalf("c1 in next window = %d, want 1", got)
	}
	if got := p.CapCount("c1", hour, t0+5); got != 0 {
		t.Fatalf("old window still counted: %d", got)
	}
	// A late event for the old window doesn't disturb the new one.
	if err := s.IncrementCap(ctx, "d1", "c1", hour, t0+10); err != nil {
		t.Fatal(err)
	}
	_ = s.Get(ctx, "d1", &p)
	if got := p.CapCount("c1", hour, t0+hour+5); got != 1 {
		t.Fatalf("late event changed the current window: %d", got)
	}
	// Devices without a profile line still get caps (a hit with caps only).
	if err := s.IncrementCap(ctx, "anon", "c1", hour, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, "anon", &p); err != nil || len(p.Segments) != 0 || p.CapCount("c1", hour, t0) != 1 {
		t.Fatalf("anon: %+v %v", p, err)
	}
	if err := s.IncrementCap(ctx, "d1", "bad:id", hour, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("campaign with ':' = %v", err)
	}
	st := s.Stats()
	if st.CapIncrements != 7 || st.CapErrors != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestFileStoreCapKeysCopied checks that strings aliasing a caller's buffer
// (as fasthttp hands out) are copied before the store keeps them.
func TestFileStoreCapKeysCopied(t *testing.T) {
	s, err := OpenFile(writeFile(t, `{"device":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("dev-1camp-1")
	dev := unsafe.String(&buf[0], 5)
	camp := unsafe.String(&buf[5], 6)
	if err := s.IncrementCap(context.Background(), dev, camp, 60, 120); err != nil {
		t.Fatal(err)
	}
	if err := s.IncrementCap(context.Background(), dev, "camp-2", 60, 120); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXXXXX") // the request buffer is reused
	var p Profile
	if err := s.Get(context.Background(), "dev-1", &p); err != nil {
		t.Fatalf("device key was not copied: %v", err)
	}
	if p.CapCount("camp-1", 60, 120) != 1 {
		t.Fatalf("campaign id was not copied: %+v", p.Caps)
	}
}

// TestFileStoreConcurrentCaps hammers caps and reads from many goroutines;
// run with -race. Counts must be exact.
func TestFileStoreConcurrentCaps(t *testing.T) {
	s, err := OpenFile(writeFile(t, `{"device":"shared","segments":["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers = 16
		perW    = 500
		period  = 3600
	)
	now := int64(1_700_000_000)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			own := fmt.Sprintf("dev-%d", w)
			var p Profile
			for i := 0; i < perW; i++ {
				if err := s.IncrementCap(ctx, "shared", "c1", period, now); err != nil {
					t.Error(err)
					return
				}
				if err := s.IncrementCap(ctx, own, fmt.Sprintf("c%d", i%4), period, now); err != nil {
					t.Error(err)
					return
				}
				if err := s.Get(ctx, "shared", &p); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	var p Profile
	if err := s.Get(ctx, "shared", &p); err != nil {
		t.Fatal(err)
	}
	if got := p.CapCount("c1", period, now); got != workers*perW {
		t.Fatalf("shared count = %d, want %d", got, workers*perW)
	}
	for w := 0; w < workers; w++ {
		_ = s.Get(ctx, fmt.Sprintf("dev-%d", w), &p)
		for c := 0; c < 4; c++ {
			if got := p.CapCount(fmt.Sprintf("c%d", c), period, now); got != perW/4 {
				t.Fatalf("dev-%d c%d = %d, want %d", w, c, got, perW/4)
			}
		}
	}
	if st := s.Stats(); st.CapIncrements != 2*workers*perW || st.CapErrors != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFileStoreGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	s, err := OpenFile(writeFile(t, sampleProfiles))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.IncrementCap(context.Background(), "d1", "c1", 60, 120)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var p Profile
	_ = s.Get(ctx, "d1", &p) // grow dst once
	if n := testing.AllocsPerRun(200, func() {
		if err := s.Get(ctx, "d1", &p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Get allocates %v times per call with a reused Profile", n)
	}
}
