package ship

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Rollup is one materialized aggregate of the events table: a
// ReplacingMergeTree(version) keyed by the issue hour and its dimensions,
// rebuilt hour by hour from `events FINAL` (first-seen records only).
//
// Why rebuilt and not a MATERIALIZED VIEW: a view sums at insert time, and
// the same pixel arrives at ClickHouse more than once by design (two edges
// that both saw it first, a batch re-sent after a timeout); only the
// events table's FINAL collapses those. A rebuild of an hour inserts every
// row of that hour again with a higher version, and FINAL on the rollup
// keeps the newest: re-sends never double-count and a rebuild is
// idempotent. The hour is the token's issue hour (the decision's hour): it
// is the same in every copy of an event, so filtering on it before the
// collapse (ClickHouse may move WHERE to PREWHERE) cannot split a key.
type Rollup struct {
	Name    string
	Keys    []Column // after hour
	Metrics []Column
	// keyExprs are the keys' SELECT expressions, in order (the metrics'
	// are metricSQL, the same for every rollup).
	keyExprs []string
	// arrayJoin, when set, is an expression the rows are expanded by
	// (experiment layers), referenced by keyExprs as lv.
	arrayJoin string
}

// Rollups are the aggregates Schema creates and Rebuild fills. Names and
// columns are shared with expstats and pacing (their readers): change them
// only with a note in docs/EVENTS.md.
var Rollups = []Rollup{
	{
		Name: "delivery_hourly",
		Keys: []Column{{"env", "String"}, {"campaign", "String"}, {"creative", "String"}, {"placement", "String"}, {"country", "String"}},
		Metrics: []Column{{"requests", "UInt64"}, {"fills", "UInt64"}, {"errors", "UInt64"}, {"impressions", "UInt64"},
			{"clicks", "UInt64"}, {"spend_micros", "Int64"}},
		keyExprs: []string{"env", "campaign", "creative", "placement", "country"},
	},
	{
		Name: "experiment_hourly",
		Keys: []Column{{"env", "String"}, {"experiment", "String"}, {"layer", "String"}, {"test", "String"}, {"variant", "String"},
			{"shard", "UInt8"}, {"country", "String"}, {"os", "String"}, {"format", "UInt8"}},
		Metrics: []Column{{"requests", "UInt64"}, {"fills", "UInt64"}, {"errors", "UInt64"}, {"impressions", "UInt64"},
			{"clicks", "UInt64"}, {"revenue_micros", "Int64"}},
		// One row per layer: "layer:test:variant;..." (exp's layers field);
		// a record without layers is the unnamed layer "" with its test and
		// variant.
		arrayJoin: "arrayJoin(if(layers = '', [concat(':', test, ':', variant)], splitByChar(';', layers)))",
		keyExprs: []string{"env", "experiment", "splitByChar(':', lv)[1]", "splitByChar(':', lv)[2]", "splitByChar(':', lv)[3]",
			"shard", "country", "os", "format"},
	},
}

// metricSQL is the one definition of each metric over first-seen events
// (decisions carry their sampling weight).
var metricSQL = []string{
	"sumIf(weight, kind = 'ad')",
	"sumIf(weight, kind = 'ad' AND outcome = 'fill')",
	"sumIf(weight, kind = 'ad' AND outcome = 'error')",
	"countIf(kind = 'imp')",
	"countIf(kind = 'click')",
	"sumIf(price_micros, kind = 'imp')",
}

func (r *Rollup) create(db string) string {
	cols := []string{"    hour DateTime"}
	for _, c := range append(append([]Column(nil), r.Keys...), r.Metrics...) {
		cols = append(cols, "    "+c.Name+" "+c.Type)
	}
	cols = append(cols, "    version UInt64")
	keys := []string{"hour"}
	for _, c := range r.Keys {
		keys = append(keys, c.Name)
	}
	return `CREATE TABLE IF NOT EXISTS ` + quoteIdent(db) + `.` + r.Name + " (\n" + strings.Join(cols, ",\n") + `
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (` + strings.Join(keys, ", ") + `)`
}

// rebuildSQL re-inserts the rollup's rows for issue times in [from, to)
// with version.
func (r *Rollup) rebuildSQL(db string, from, to time.Time, version int64) string {
	names := []string{"hour"}
	sel := []string{"toStartOfHour(issued) AS hour"}
	group := []string{"hour"}
	for i, c := range r.Keys {
		names = append(names, c.Name)
		alias := "k_" + c.Name
		sel = append(sel, r.keyExprs[i]+" AS "+alias)
		group = append(group, alias)
	}
	for i, c := range r.Metrics {
		names = append(names, c.Name)
		sel = append(sel, metricSQL[i]+" AS m_"+c.Name)
	}
	names = append(names, "version")
	sel = append(sel, fmt.Sprintf("toUInt64(%d) AS version", version))
	// day (the partition key, the issue day in UTC) prunes the scan to the
	// days the hours fall in.
	src := "SELECT * FROM " + quoteIdent(db) + "." + Table + " FINAL WHERE duplicate = 0 AND kind IN ('ad', 'imp', 'click')" +
		fmt.Sprintf(" AND day >= '%s' AND day <= '%s'", from.UTC().Format(time.DateOnly), to.Add(-time.Millisecond).UTC().Format(time.DateOnly)) +
		fmt.Sprintf(" AND issued >= toDateTime(%d) AND issued < toDateTime(%d)", from.Unix(), to.Unix())
	if r.arrayJoin != "" {
		src = "SELECT *, " + r.arrayJoin + " AS lv FROM (" + src + ")"
	}
	return "INSERT INTO " + quoteIdent(db) + "." + r.Name + " (" + strings.Join(names, ", ") + ")\nSELECT " +
		strings.Join(sel, ", ") + "\nFROM (" + src + ")\nGROUP BY " + strings.Join(group, ", ")
}

// Rebuild recomputes every rollup for the issue hours overlapping [from,
// to) (widened to whole hours; DailyTable to whole days), with version (use the time the rebuild
// started, in ms: a later rebuild sees at least what an earlier one saw).
func (c *Client) Rebuild(ctx context.Context, from, to time.Time, version int64) error {
	from, to = from.UTC().Truncate(time.Hour), to.UTC().Add(time.Hour-1).Truncate(time.Hour)
	if !from.Before(to) {
		return nil
	}
	for i := range Rollups {
		if _, err := c.Exec(ctx, Rollups[i].rebuildSQL(c.T.Database, from, to, version), nil, true); err != nil {
			return fmt.Errorf("rollup %s: %w", Rollups[i].Name, err)
		}
	}
	// The daily A/B rollup: the whole issue days the hours fall in.
	dfrom, dto := from.Truncate(24*time.Hour), to.Add(24*time.Hour-1).Truncate(24*time.Hour)
	for _, q := range dailyRebuildSQL(c.T.Database, dfrom, dto, version) {
		if _, err := c.Exec(ctx, q, nil, true); err != nil {
			return fmt.Errorf("rollup %s: %w", DailyTable, err)
		}
	}
	return nil
}

// RollupName is the database-qualified name of a rollup table.
func (t *Target) RollupName(name string) string { return quoteIdent(t.Database) + "." + name }
