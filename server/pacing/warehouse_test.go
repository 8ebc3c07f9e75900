package pacing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events/ship"
)

// insertHours adds one row per hour of the CurveDays days before day
// (unix seconds of a UTC midnight) to table: sel is the SELECT of one row
// from the expressions %[1]s (its unix time), %[2]s (its count: shapeSQL
// of the hour h, times the day's number d, so the days differ) and %[3]s
// (a unique id).
func insertHours(t *testing.T, c *ship.Client, table, cols, sel string, day int64, shapeSQL string) {
	t.Helper()
	ts := fmt.Sprintf("(%d - (intDiv(number, 24) + 1) * 86400 + (number %% 24) * 3600 + 125)", day)
	n := "((" + strings.ReplaceAll(shapeSQL, "h", "(number % 24)") + ") * (intDiv(number, 24) + 1))"
	q := "INSERT INTO " + table + " (" + cols + ") " + fmt.Sprintf(sel, ts, n, "toString(number)") +
		fmt.Sprintf(" FROM system.numbers LIMIT %d", CurveDays*24)
	if _, err := c.Query(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// The traffic curve from a real ClickHouse: the events table's decisions
// (weighted; duplicates, pixels, today and older days left out), then the
// hourly rollup once it exists; too little traffic is ErrFewRequests and a
// server that is gone an error, both leaving the curve in use alone.
func TestWarehouseCurve(t *testing.T) {
	srv := chkit.Start(t)
	tgt, err := ship.ParseTarget(srv.URL() + "?database=curve_test")
	if err != nil {
		t.Fatal(err)
	}
	c := ship.NewClient(tgt, 20*time.Second)
	ctx := context.Background()
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 9, 15, 30, 0, 0, time.UTC)
	today := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC).Unix()

	if _, _, err := WarehouseCurve(ctx, c, now); !errors.Is(err, ErrFewRequests) {
		t.Fatalf("empty warehouse: %v, want ErrFewRequests", err)
	}

	// Decisions: the shape is 10 + h*h per hour and day-number, with
	// weight (a sampled decision stands for several requests).
	shape := func(h int) int64 { return 10 + int64(h*h) }
	const cols = "day, kind, event_id, time, duplicate, weight"
	insertHours(t, c, ship.Table, cols, "SELECT toDate(toDateTime(%[1]s)), 'ad', %[3]s, toDateTime(%[1]s), 0, %[2]s", today, "10 + h * h")
	// Rows that must not count: a duplicate, an impression, today, 8 days ago.
	for _, sel := range []string{
		fmt.Sprintf("SELECT toDate(toDateTime(%d)), 'ad', 'dup', toDateTime(%d), 1, 100000", today-3600, today-3600),
		fmt.Sprintf("SELECT toDate(toDateTime(%d)), 'imp', 'imp', toDateTime(%d), 0, 100000", today-3600, today-3600),
		fmt.Sprintf("SELECT toDate(toDateTime(%d)), 'ad', 'today', toDateTime(%d), 0, 100000", today+60, today+60),
		fmt.Sprintf("SELECT toDate(toDateTime(%d)), 'ad', 'old', toDateTime(%d), 0, 100000", today-8*86400, today-8*86400),
	} {
		if _, err := c.Query(ctx, "INSERT INTO "+ship.Table+" ("+cols+") "+sel); err != nil {
			t.Fatal(err)
		}
	}
	curve, n, err := WarehouseCurve(ctx, c, now)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for h := 0; h < 24; h++ {
		want += shape(h) * (1 + 2 + 3 + 4 + 5 + 6 + 7)
	}
	if n != want {
		t.Fatalf("requests %d, want %d (only the 7 previous days' first-seen decisions)", n, want)
	}
	checkShape(t, "events", curve, shape)

	// The rollup, once there, is read instead (another shape tells them
	// apart).
	if _, err := c.Query(ctx, "CREATE TABLE IF NOT EXISTS "+Aggregate+" (hour DateTime, requests UInt64) ENGINE = ReplacingMergeTree ORDER BY hour"); err != nil {
		t.Fatal(err)
	}
	flatNight := func(h int) int64 {
		if h < 6 {
			return 1000
		}
		return 5000
	}
	insertHours(t, c, Aggregate, "hour, requests", "SELECT toStartOfHour(toDateTime(%[1]s)), %[2]s", today, "if(h < 6, 1000, 5000)")
	curve, _, err = WarehouseCurve(ctx, c, now)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, Aggregate, curve, flatNight)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WarehouseCurve(ctx, c, now); err == nil || errors.Is(err, ErrFewRequests) {
		t.Fatalf("server stopped: %v, want a connection error", err)
	}
}

func checkShape(t *testing.T, from string, got Curve, shape func(h int) int64) {
	t.Helper()
	var want Curve
	for h := range want {
		want[h] = float64(shape(h))
	}
	gw, ww := got.weights(), want.weights()
	for h := range gw {
		if math.Abs(gw[h]-ww[h]) > 1e-9 {
			t.Fatalf("%s: hour %d weight %.6f, want %.6f (curve %v)", from, h, gw[h], ww[h], got)
		}
	}
}

// SetCurve re-plans today at the next tick: the plan by 06:00 is a
// quarter of the budget on a flat curve and all of it when the traffic
// is all before 06:00.
func TestSetCurveReplans(t *testing.T) {
	s := NewService(Config{Store: NewLocal()})
	s.SetCampaigns("snap", []Spec{{ID: "b", Budget: Budget{Daily: 1_000_000, Mode: Even, Unit: 10}}})
	at := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	s.Tick(context.Background(), at)
	if got := s.Status()[0].Planned; got != 250_000 {
		t.Fatalf("flat curve: planned %d by 06:00, want 250000", got)
	}
	var early Curve
	for h := 0; h < 6; h++ {
		early[h] = 1
	}
	s.SetCurve(early)
	if s.Curve() != early {
		t.Fatal("Curve does not report the curve set")
	}
	s.Tick(context.Background(), at.Add(time.Second))
	if got := s.Status()[0].Planned; got != 1_000_000 {
		t.Fatalf("all traffic before 06:00: planned %d by 06:00, want the whole budget", got)
	}
	if n := s.Stats().CurveRequests.Load(); n != 0 {
		t.Fatalf("CurveRequests %d without a warehouse", n)
	}
}

// A warehouse answer that is not hour-and-count rows is an error, never
// a curve.
func TestParseCurveRows(t *testing.T) {
	var c Curve
	if n, err := parseCurveRows([]byte("0\t5\n23\t7\n"), &c); err != nil || n != 12 || c[0] != 5 || c[23] != 7 {
		t.Fatalf("%v %d %v", err, n, c)
	}
	for _, bad := range []string{"24\t1", "-1\t1", "3\t-2", "x\t1", "3", "3\t1\t2", "3\t1.5"} {
		var c Curve
		if _, err := parseCurveRows([]byte(bad), &c); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
