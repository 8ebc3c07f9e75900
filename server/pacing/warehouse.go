package pacing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/adedge/adedge/server/events/ship"
)

// CurveDays is how many previous full UTC days the warehouse curve is
// summed over (a week: every weekday once).
const CurveDays = 7

// MinCurveRequests is the fewest decisions over those days for the
// warehouse's shape to replace the configured curve: below it an hour's
// weight is mostly noise.
const MinCurveRequests = 24 * 100

// Aggregate is the events warehouse's hourly rollup (server/events/ship,
// docs/EVENTS.md): read when it holds the window's traffic, since it is
// small; the events table otherwise.
const Aggregate = "delivery_hourly"

// CurveSQL is the query for the traffic by UTC hour of day over
// [from, to) (unix seconds), in the session's database: ad requests, from
// the hourly rollup when fromAggregate, else from the decisions in the
// events table (weighted: a sampled decision stands for weight requests;
// first-seen only). The hour is taken from the unix time, not toHour, so
// the server's time zone does not matter.
func CurveSQL(fromAggregate bool, from, to int64) string {
	if fromAggregate {
		return fmt.Sprintf("SELECT intDiv(toUInt32(hour), 3600) %% 24 AS h, sum(requests) AS n FROM %s FINAL "+
			"WHERE hour >= toDateTime(%d) AND hour < toDateTime(%d) GROUP BY h ORDER BY h FORMAT TabSeparated",
			Aggregate, from, to)
	}
	return fmt.Sprintf("SELECT intDiv(toUInt32(time), 3600) %% 24 AS h, sum(weight) AS n FROM %s FINAL "+
		"WHERE kind = 'ad' AND duplicate = 0 AND time >= toDateTime(%d) AND time < toDateTime(%d) GROUP BY h ORDER BY h FORMAT TabSeparated",
		ship.Table, from, to)
}

// ErrFewRequests is a warehouse with too little traffic for a shape.
var ErrFewRequests = errors.New("pacing curve: too few requests in the warehouse")

// WarehouseCurve reads the previous CurveDays full UTC days' traffic
// shape before now from ClickHouse: 24 weights, hour 0 UTC first, and the
// requests they sum. Fewer than MinCurveRequests is ErrFewRequests (keep
// the configured curve). An hour without traffic keeps weight 0: even
// pacing then plans no spend in it, as the traffic had none.
func WarehouseCurve(ctx context.Context, c *ship.Client, now time.Time) (Curve, int64, error) {
	var curve Curve
	agg, err := c.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = '"+Aggregate+"' FORMAT TabSeparated")
	if err != nil {
		return curve, 0, err
	}
	to := now.UTC().Truncate(24 * time.Hour).Unix()
	from := to - CurveDays*86400
	// The rollup is read when it exists and holds the window's traffic;
	// the events schema creates it empty and fills it as hours are
	// rebuilt, so an empty or young rollup falls back to the events table.
	var total int64
	for _, fromAggregate := range []bool{true, false} {
		if fromAggregate && string(bytes.TrimSpace(agg)) != "1" {
			continue
		}
		out, err := c.Query(ctx, CurveSQL(fromAggregate, from, to))
		if err != nil {
			return Curve{}, 0, err
		}
		curve = Curve{}
		if total, err = parseCurveRows(out, &curve); err != nil {
			return Curve{}, 0, err
		}
		if total >= MinCurveRequests {
			break
		}
	}
	if total < MinCurveRequests {
		return Curve{}, total, fmt.Errorf("%w: %d over %d days, want %d", ErrFewRequests, total, CurveDays, MinCurveRequests)
	}
	return curve, total, nil
}

// parseCurveRows reads "hour\tcount" lines into c and returns the total.
func parseCurveRows(b []byte, c *Curve) (int64, error) {
	var total int64
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		f := bytes.Split(line, []byte("\t"))
		if len(f) != 2 {
			return 0, fmt.Errorf("pacing curve: warehouse row %q: want hour and count", line)
		}
		h, err1 := strconv.Atoi(string(f[0]))
		n, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil || h < 0 || h > 23 || n < 0 {
			return 0, fmt.Errorf("pacing curve: warehouse row %q: want an hour 0-23 and a non-negative count", line)
		}
		c[h] += float64(n)
		total += n
	}
	return total, nil
}

// FollowWarehouse reads the traffic curve from the events warehouse now
// and then every `every` until ctx ends, and installs it (SetCurve) when
// there is enough traffic; otherwise the configured curve stays (flat by
// default). Stats.CurveRequests is the requests the curve in use was
// built from (0: the configured one). logf reports each change of
// outcome once (a warehouse down for hours logs one line).
func (s *Service) FollowWarehouse(ctx context.Context, c *ship.Client, every time.Duration, logf func(format string, args ...any)) {
	last := ""
	for {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		curve, n, err := WarehouseCurve(qctx, c, time.Now())
		cancel()
		outcome := "ok"
		if err != nil {
			outcome = err.Error()
		} else {
			s.SetCurve(curve)
			s.stats.CurveRequests.Store(n)
		}
		if outcome != last && logf != nil {
			if err != nil {
				logf("pacing: traffic curve from the warehouse: %v (keeping the curve in use)", err)
			} else {
				logf("pacing: traffic curve from the warehouse: %d requests over the previous %d days", n, CurveDays)
			}
		}
		last = outcome
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
