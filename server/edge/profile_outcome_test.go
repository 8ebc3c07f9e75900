package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adedge/adedge/server/profiles"
)

// errStore fails every read with its current error.
type errStore struct {
	profiles.Store
	err atomic.Pointer[error]
}

func (s *errStore) set(err error) { s.err.Store(&err) }

func (s *errStore) Get(_ context.Context, _ string, dst *profiles.Profile) error {
	dst.Reset()
	return *s.err.Load()
}

// TestProfileOutcomes: each of the store's sentinel errors is its own
// lookup result, every one still serves the ad, and the error line for
// an unknown error is written at most once a second however many
// requests hit it.
func TestProfileOutcomes(t *testing.T) {
	st := &errStore{Store: profiles.NewNone()}
	st.set(profiles.ErrNotFound)
	clock := newTestClock(time.Now()) // the burst takes no time, however loaded the machine
	e := newEnv(t, envOpts{storeImpl: st, accessLog: true, httpServer: true, config: func(c *Config) { c.Now = clock.Now }})
	q := e.search(1, anyCampaign)[0]
	q.device = "dev-outcome"
	cases := []struct {
		err    error
		result string
	}{
		{profiles.ErrNotFound, ProfileMiss},
		{profiles.ErrTimeout, ProfileTimeout},
		{fmt.Errorf("wrapped: %w", profiles.ErrBusy), ProfileShed},
		{profiles.ErrUnavailable, ProfileUnavailable},
		{errors.New("decode: bin seg is an int"), ProfileError},
	}
	for _, c := range cases {
		st.set(c.err)
		before := e.metric("adedge_profile_lookups_total", "result", c.result)
		for i := 0; i < 50; i++ {
			if r := e.get(q.uri()); r.code != 200 {
				t.Fatalf("%v: ad answered %s", c.err, r)
			}
		}
		if got := e.metric("adedge_profile_lookups_total", "result", c.result) - before; got != 50 {
			t.Fatalf("%v: result %q counted %v times, want 50", c.err, c.result, got)
		}
	}
	// 50 errors within a second: one line, the rest suppressed.
	waitFor(t, "a profile_error line", func() bool { return strings.Contains(e.logBuf.String(), "event=profile_error") })
	if n := strings.Count(e.logBuf.String(), "event=profile_error"); n != 1 {
		t.Fatalf("%d profile_error lines for 50 errors within a second, want one", n)
	}
	// A second later the next error writes a line counting the 49.
	clock.Advance(eventEvery)
	if r := e.get(q.uri()); r.code != 200 {
		t.Fatalf("ad answered %s", r)
	}
	waitFor(t, "the second profile_error line", func() bool { return strings.Count(e.logBuf.String(), "event=profile_error") == 2 })
	if !strings.Contains(e.logBuf.String(), "suppressed=49") {
		t.Errorf("second line does not count the 49 suppressed: %q", e.logBuf.String())
	}
}

// TestEventLimits: one line per name per eventEvery; the next one
// carries the number suppressed; names are independent.
func TestEventLimits(t *testing.T) {
	var l eventLimits
	now := int64(1_000_000_000_000)
	if n, ok := l.allow("a", now); !ok || n != 0 {
		t.Fatalf("first line: %d %v", n, ok)
	}
	for i := 0; i < 5; i++ {
		if _, ok := l.allow("a", now+int64(i)*int64(time.Millisecond)); ok {
			t.Fatal("a second line within eventEvery")
		}
	}
	if _, ok := l.allow("b", now); !ok {
		t.Fatal("another name was suppressed")
	}
	if n, ok := l.allow("a", now+int64(eventEvery)); !ok || n != 5 {
		t.Fatalf("after eventEvery: %d %v, want 5 suppressed", n, ok)
	}
	if testing.AllocsPerRun(100, func() { l.allow("a", now) }) != 0 {
		t.Fatal("a suppressed event allocates")
	}
}
