package pacing

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

func TestTableAllowFollowsProbability(t *testing.T) {
	s := NewService(Config{Store: NewLocal(), Salt: 1})
	s.SetCampaigns("snap", []Spec{{ID: "free"}, {ID: "b", Budget: Budget{Daily: 1e6}}})
	tab := s.Table()
	if !tab.For("snap") || tab.For("other") {
		t.Fatal("For")
	}
	if tab.Allow(1, 1) {
		t.Fatal("a budgeted campaign serves before the first tick")
	}
	if !tab.Allow(0, 1) || tab.Allow(2, 1) || tab.Allow(-1, 1) {
		t.Fatal("unbudgeted must serve, out of range must not")
	}
	for _, p := range []float64{0, 0.01, 0.3, 0.9, 1} {
		tab.thr[1].Store(threshold(p))
		n := 0
		const draws = 200_000
		for i := uint64(0); i < draws; i++ {
			if tab.Allow(1, i) {
				n++
			}
		}
		if got := float64(n) / draws; math.Abs(got-p) > 0.005 {
			t.Errorf("p %.2f: served %.4f", p, got)
		}
	}
}

func TestAllowZeroAllocs(t *testing.T) {
	s := NewService(Config{Store: NewLocal()})
	s.SetCampaigns("snap", []Spec{{ID: "b", Budget: Budget{Daily: 1e6}}})
	tab := s.Table()
	tab.thr[0].Store(threshold(0.5))
	seed := uint64(0)
	if a := testing.AllocsPerRun(1000, func() { seed++; tab.Allow(0, seed); tab.Served(0, 10) }); a != 0 {
		t.Fatalf("%v allocs", a)
	}
	id := []byte("b")
	if a := testing.AllocsPerRun(1000, func() { s.Counted(id, false, 10) }); a != 0 {
		t.Fatalf("Counted: %v allocs", a)
	}
}

func BenchmarkAllow(b *testing.B) {
	s := NewService(Config{Store: NewLocal()})
	s.SetCampaigns("snap", []Spec{{ID: "b", Budget: Budget{Daily: 1e6}}})
	tab := s.Table()
	tab.thr[0].Store(threshold(0.5))
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if tab.Allow(0, uint64(i)) {
			n++
		}
	}
	_ = n
}

// Spend counts the campaign's billing event only: the token's price on
// impressions, the bid on clicks for CPC campaigns.
func TestCountedBillingEvent(t *testing.T) {
	st := NewLocal()
	s := NewService(Config{Store: st})
	s.SetCampaigns(1, []Spec{
		{ID: "cpm", Budget: Budget{Daily: 1e9}},
		{ID: "cpc", Budget: Budget{Daily: 1e9, Billing: BillClick}, Bid: 500_000},
		{ID: "free"},
	})
	s.Counted([]byte("cpm"), false, 2000)
	s.Counted([]byte("cpm"), true, 2000)
	s.Counted([]byte("cpc"), false, 2000)
	s.Counted([]byte("cpc"), true, 2000)
	s.Counted([]byte("free"), false, 2000)
	s.Counted([]byte("gone"), false, 2000)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s.Tick(context.Background(), now)
	out := make([]Totals, 2)
	if err := st.Read(context.Background(), []Delta{{Campaign: "cpm", Day: 20260302}, {Campaign: "cpc", Day: 20260302}}, out); err != nil {
		t.Fatal(err)
	}
	if out[0].Day != 2000 || out[1].Day != 500_000 {
		t.Fatalf("cpm %d (want 2000), cpc %d (want 500000)", out[0].Day, out[1].Day)
	}
	if out[0].Life != 2000 {
		t.Fatalf("lifetime %d", out[0].Life)
	}
}

// failing is a store whose calls fail while down is set.
type failing struct {
	*Local
	mu   sync.Mutex
	down bool
}

func (f *failing) Apply(ctx context.Context, d []Delta, out []Totals) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return context.DeadlineExceeded
	}
	return f.Local.Apply(ctx, d, out)
}

// A failed flush keeps the spend for the next one: nothing is lost, and
// the service reports the problem until a flush succeeds.
func TestFailedFlushKeepsSpend(t *testing.T) {
	st := &failing{Local: NewLocal()}
	s := NewService(Config{Store: st})
	s.SetCampaigns(1, []Spec{{ID: "c", Budget: Budget{Daily: 1e9}}})
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s.Tick(context.Background(), now)
	st.down = true
	s.Counted([]byte("c"), false, 700)
	s.Tick(context.Background(), now.Add(time.Second))
	if s.Problem() == "" || s.Stats().StoreErrors.Load() != 1 {
		t.Fatalf("problem %q, errors %d", s.Problem(), s.Stats().StoreErrors.Load())
	}
	st.down = false
	s.Counted([]byte("c"), false, 300)
	s.Tick(context.Background(), now.Add(2*time.Second))
	if s.Problem() != "" {
		t.Fatalf("still degraded: %q", s.Problem())
	}
	out := make([]Totals, 1)
	_ = st.Read(context.Background(), []Delta{{Campaign: "c", Day: 20260302}}, out)
	if out[0].Day != 1000 {
		t.Fatalf("stored %d, want 1000", out[0].Day)
	}
}

// A new snapshot keeps each campaign's measured state (by id), so its
// probability carries over instead of restarting at the probe.
func TestSetCampaignsKeepsState(t *testing.T) {
	s := NewService(Config{Store: NewLocal()})
	spec := Spec{ID: "c", Budget: Budget{Daily: 1e12, Mode: ASAP}}
	s.SetCampaigns(1, []Spec{spec})
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		s.Table().Served(0, 1000)
		s.Tick(context.Background(), now.Add(time.Duration(i)*time.Second))
	}
	if !s.Table().Allow(0, 1) {
		t.Fatal("not serving")
	}
	s.SetCampaigns(2, []Spec{{ID: "new", Budget: Budget{Daily: 5}}, spec})
	tab := s.Table()
	if !tab.For(2) || tab.thr[1].Load() != always || tab.thr[0].Load() != 0 {
		t.Fatalf("thresholds after swap: %d %d", tab.thr[0].Load(), tab.thr[1].Load())
	}
}
