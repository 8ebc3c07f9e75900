package ship

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DailyTable is the A/B report's rollup (issue 15): per issue day, (env,
// experiment, layer, test, variant, test code, user shard), the sums,
// the decisions' latency histogram, the group's share and a
// uniqHLL12 state of the decisions' device hashes (2^12 registers,
// ~2.5 KB: uniqCombined's states were ~32 KB at 100M events and merging
// 7,680 of them took 20 s); and, in rows of
// their own (dim = 'country', 'os' or 'format', value), the sums per
// dimension value, never their cross product (dim = ”: the day's
// totals). A 30-day test is a few tens of thousands of rows whatever its
// event count, so `abreport --clickhouse` answers from it in well under
// a second (docs/BENCHMARKS.md).
//
// Exact like the hourly rollups: rebuilt from `events FINAL` a whole
// issue day at a time (its user states cannot take an hour's part),
// ReplacingMergeTree(version), read with FINAL. The shipper rebuilds the
// days of the hours it touched once per rollup pass (the hourly
// rebuilds already read the day's partition).
const DailyTable = "experiment_daily"

// DailyLatencyBoundsUS are the histogram's bucket upper bounds, the A/B
// rows' (abtest.LatencyBoundsUS: the reader checks they agree; this
// package cannot import abtest).
var DailyLatencyBoundsUS = []uint32{10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000}

func dailyCreate(db string) string {
	return `CREATE TABLE IF NOT EXISTS ` + quoteIdent(db) + `.` + DailyTable + ` (
    day Date, env String, experiment String, layer String, test String, variant String, test_code UInt8, shard UInt8,
    dim String, value String,
    requests UInt64, fills UInt64, errors UInt64, impressions UInt64, clicks UInt64, revenue_micros Int64,
    latency Array(UInt64), share_bp UInt32, users AggregateFunction(uniqHLL12, UInt64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, env, experiment, layer, test, variant, test_code, shard, dim, value)`
}

// dailyRebuildSQL is the two statements that re-insert the rows of
// issue days [from, to) (UTC midnights) with version: the day's totals
// per group and shard (with latency and users), then the dimension rows
// (sums only, one ARRAY JOIN of three keys: each event counts under its
// country, OS and format).
func dailyRebuildSQL(db string, from, to time.Time, version int64) []string {
	bounds := make([]string, len(DailyLatencyBoundsUS))
	for i, b := range DailyLatencyBoundsUS {
		bounds[i] = strconv.Itoa(int(b))
	}
	lat := make([]string, len(DailyLatencyBoundsUS)+1)
	for i := range lat {
		lat[i] = "sumIf(weight, bkt = " + strconv.Itoa(i+1) + ")"
	}
	last := to.Add(-time.Millisecond).UTC().Format(time.DateOnly)
	// One row per layer of the record (the unnamed layer '' without
	// layers); the first layer's test code and share are the record's own,
	// a later layer's share is the 4th field of its entry when present.
	// bkt is the decision's latency bucket, 1-based (0: not a decision or
	// no latency, records before format 2). Only the columns used are
	// read (FINAL reads its sorting key besides).
	src := "SELECT day, kind, env, experiment, test, variant, test_code, shard, outcome, format, weight, price_micros, share_bp, device_hash, country, os, arrayJoin(if(layers = '', [(concat(':', test, ':', variant), toUInt32(1))], " +
		"arrayMap((x, i) -> (x, i), splitByChar(';', layers), arrayEnumerate(splitByChar(';', layers))))) AS lv, " +
		"splitByChar(':', lv.1) AS lp, " +
		"if(kind = 'ad' AND latency_us > 0, if((arrayFirstIndex(b -> latency_us <= b, [" + strings.Join(bounds, ", ") + "]) AS fb) = 0, " +
		strconv.Itoa(len(lat)) + ", fb), 0) AS bkt FROM " + quoteIdent(db) + "." + Table + " FINAL" +
		" WHERE duplicate = 0 AND kind IN ('ad', 'imp', 'click')" +
		fmt.Sprintf(" AND day >= '%s' AND day <= '%s'", from.UTC().Format(time.DateOnly), last)
	into := "INSERT INTO " + quoteIdent(db) + "." + DailyTable +
		" (day, env, experiment, layer, test, variant, test_code, shard, dim, value, requests, fills, errors, impressions, clicks, revenue_micros, latency, share_bp, users, version)\n"
	keys := "SELECT day, env, experiment, lp[1] AS k_layer, lp[2] AS k_test, lp[3] AS k_variant, if(lv.2 = 1, test_code, 255) AS k_code, shard"
	group := "GROUP BY day, env, experiment, k_layer, k_test, k_variant, k_code, shard"
	ver := fmt.Sprintf("toUInt64(%d)", version)
	totals := into + keys + ", '', '',\n    " + strings.Join(metricSQL, ", ") + ",\n    [" + strings.Join(lat, ", ") + "],\n" +
		"    maxIf(if(lv.2 = 1, share_bp, toUInt32OrZero(lp[4])), kind = 'ad'),\n" +
		"    uniqHLL12StateIf(device_hash, kind = 'ad' AND device_hash != 0), " + ver + "\n" +
		"FROM (" + src + ")\n" + group
	dims := into + keys + ", kd.1 AS k_dim, kd.2 AS k_value,\n    " + strings.Join(metricSQL, ", ") + ",\n" +
		"    emptyArrayUInt64(), toUInt32(0), uniqHLL12StateIf(device_hash, 0), " + ver + "\n" +
		"FROM (" + src + ")\n" +
		"ARRAY JOIN [('country', country), ('os', os), ('format', toString(format))] AS kd\n" + group + ", k_dim, k_value"
	return []string{totals, dims}
}
