package pacingtool

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/server/pacing"
)

type badStore struct{ *pacing.Local }

func (b badStore) Read(ctx context.Context, keys []pacing.Delta, out []pacing.Totals) error {
	if err := b.Local.Read(ctx, keys, out); err != nil {
		return err
	}
	for i, k := range keys {
		if k.Campaign == "bad" {
			out[i] = pacing.Totals{Err: pacing.ErrBadRecord}
		}
	}
	return nil
}

func TestReport(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	st := pacing.NewLocal()
	out := make([]pacing.Totals, 2)
	_ = st.Apply(context.Background(), []pacing.Delta{
		{Campaign: "done", Day: 20260302, Spend: 1000, P: 0, At: now.Unix() - 3},
		{Campaign: "half", Day: 20260302, Spend: 400, P: 0.25, At: now.Unix() - 1},
	}, out)
	specs := []pacing.Spec{
		{ID: "free"},
		{ID: "done", Budget: pacing.Budget{Daily: 1000, Mode: pacing.ASAP}},
		{ID: "half", Budget: pacing.Budget{Daily: 1000}},
		{ID: "bad", Budget: pacing.Budget{Daily: 1000}},
		{ID: "new", Budget: pacing.Budget{Daily: 1000}},
	}
	s, err := Report(context.Background(), badStore{st}, specs, pacing.Curve{}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"no_budget": 1, "exhausted": 1, "pacing": 2, "unknown": 1}
	for k, v := range want {
		if s.States[k] != v {
			t.Errorf("state %s: %d, want %d (%v)", k, s.States[k], v, s.States)
		}
	}
	by := map[string]pacing.Report{}
	for _, r := range s.Reports {
		by[r.ID] = r
	}
	if r := by["half"]; r.Planned != 500 || r.P != 0.25 || r.PAge != 1 || r.Spent != 400 {
		t.Errorf("half: %+v (flat curve at noon: half the budget planned)", r)
	}
	if r := by["new"]; r.P != -1 || r.State != "pacing" || r.Spent != 0 {
		t.Errorf("no record yet: %+v", r)
	}
	if r := by["bad"]; r.Error == "" {
		t.Errorf("bad record: %+v", r)
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	var w bytes.Buffer
	for _, o := range []Options{{Spend: "local", Snapshot: "x"}, {Spend: "aerospike://127.0.0.1:1/test/s"}} {
		if err := Run(context.Background(), o, &w); err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("%+v accepted", o)
		} else if !strings.Contains(err.Error(), "--") {
			t.Errorf("%+v: %v does not name the flag", o, err)
		}
	}
}
