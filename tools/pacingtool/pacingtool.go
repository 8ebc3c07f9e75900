// Package pacingtool is `adtool pacing`: per budgeted campaign of a
// snapshot, its budget, the fleet's spend today from the spend store, the
// spend planned by now, the serve probability the edges last published and
// its state. It reads the store with the edge's own code (server/pacing).
package pacingtool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/snapshot"
)

// Options are adtool pacing's inputs.
type Options struct {
	Spend    string // aerospike://... (the fleet's store)
	Snapshot string // the snapshot whose campaigns to report
	Curve    pacing.Curve
	// CurveFrom is the events warehouse the edges read their traffic
	// curve from (their --pacing-curve-from); nil: Curve (their
	// --pacing-curve) is the curve.
	CurveFrom *ship.Target
	Now       time.Time
	JSON      bool
	Limit     int // rows printed (0 = all); the summary counts all
}

// Summary is the report's totals.
type Summary struct {
	Campaigns int `json:"campaigns"`
	// Curve says which traffic curve the planned spend follows.
	Curve           string          `json:"curve"`
	States          map[string]int  `json:"states"`
	OverspendMicros int64           `json:"overspend_micros"`
	Reports         []pacing.Report `json:"campaigns_report"`
}

// Run prints the report to w.
func Run(ctx context.Context, o Options, w io.Writer) error {
	if o.Spend == "" || o.Spend == "none" || o.Spend == "local" {
		return errors.New("--spend: want the fleet's store, aerospike://HOST:PORT/NAMESPACE/SET (local lives inside one edge)")
	}
	if o.Snapshot == "" {
		return errors.New("--snapshot is required (the campaigns and budgets come from it)")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	store, err := pacing.Open(o.Spend)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := snapshot.Open(o.Snapshot)
	if err != nil {
		return err
	}
	defer r.Close()
	curve, about, err := Curve(ctx, o)
	if err != nil {
		return err
	}
	s, err := Report(ctx, store, pacing.SpecsFromSnapshot(r), curve, o.Now)
	if err != nil {
		return err
	}
	s.Curve = about
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "%-24s %-5s %-10s %14s %14s %14s %8s %10s\n", "campaign", "mode", "billing", "budget", "spent_today", "planned_now", "p", "state")
	for i, rep := range s.Reports {
		if o.Limit > 0 && i >= o.Limit {
			fmt.Fprintf(w, "... %d more\n", len(s.Reports)-i)
			break
		}
		p := "-"
		if rep.P >= 0 {
			p = fmt.Sprintf("%.4f", rep.P)
		}
		state := rep.State
		if rep.Error != "" {
			state += " (" + rep.Error + ")"
		}
		fmt.Fprintf(w, "%-24s %-5s %-10s %14s %14s %14s %8s %s\n", rep.ID, rep.Mode, rep.Billing, money(rep.Budget), money(rep.Spent), money(rep.Planned), p, state)
	}
	var parts []string
	for _, k := range []string{"pacing", "capped", "exhausted", "unknown", "no_budget"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, s.States[k]))
	}
	fmt.Fprintf(w, "%d campaigns: %s; fleet overspend today %s\n", s.Campaigns, strings.Join(parts, ", "), money(s.OverspendMicros))
	fmt.Fprintf(w, "planned spend along the traffic curve: %s\n", s.Curve)
	return nil
}

// Curve is the traffic curve the edges plan along, as they get it: with
// CurveFrom, the warehouse's shape of the previous days
// (pacing.WarehouseCurve, what the edge's FollowWarehouse installs) when
// it has enough traffic, the configured curve otherwise (as on the
// edge). A warehouse that does not answer is an error: the edges keep
// whatever curve they last read, which the tool cannot know. about says
// which curve it is.
func Curve(ctx context.Context, o Options) (c pacing.Curve, about string, err error) {
	if o.CurveFrom == nil {
		return o.Curve, "--pacing-curve", nil
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, n, err := pacing.WarehouseCurve(qctx, ship.NewClient(o.CurveFrom, 30*time.Second), now)
	switch {
	case errors.Is(err, pacing.ErrFewRequests):
		return o.Curve, fmt.Sprintf("--pacing-curve (the warehouse has too few requests for a shape: %v)", err), nil
	case err != nil:
		return c, "", fmt.Errorf("--pacing-curve-from: %w", err)
	}
	return c, fmt.Sprintf("the warehouse's, %d requests over the previous %d days", n, pacing.CurveDays), nil
}

// Report reads the budgeted campaigns' totals in one batch and describes
// each; unbudgeted campaigns are only counted.
func Report(ctx context.Context, store pacing.Store, specs []pacing.Spec, curve pacing.Curve, now time.Time) (*Summary, error) {
	s := &Summary{Campaigns: len(specs), States: map[string]int{}}
	var keys []pacing.Delta
	var budgeted []pacing.Spec
	for _, sp := range specs {
		if !sp.Budget.Limited() {
			s.States[pacing.NoBudget.String()]++
			continue
		}
		_, _, day := pacing.DayBounds(sp.Budget.Loc, now)
		keys = append(keys, pacing.Delta{Campaign: sp.ID, Day: day})
		budgeted = append(budgeted, sp)
	}
	out := make([]pacing.Totals, len(keys))
	if len(keys) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := store.Read(cctx, keys, out); err != nil {
			return nil, fmt.Errorf("spend store %s: %w", store.Name(), err)
		}
	}
	for i, sp := range budgeted {
		rep := pacing.Describe(sp, out[i], now, &curve)
		s.States[rep.State]++
		if rep.Budget > 0 && rep.Spent > rep.Budget {
			s.OverspendMicros += rep.Spent - rep.Budget
		}
		s.Reports = append(s.Reports, rep)
	}
	order := map[string]int{"exhausted": 0, "capped": 1, "unknown": 2, "pacing": 3}
	sort.SliceStable(s.Reports, func(a, b int) bool {
		ra, rb := s.Reports[a], s.Reports[b]
		if order[ra.State] != order[rb.State] {
			return order[ra.State] < order[rb.State]
		}
		return ra.Spent > rb.Spent
	})
	return s, nil
}

func money(m int64) string { return fmt.Sprintf("%.2f", float64(m)/1e6) }
