// Package ship sends an edge's event log to ClickHouse over its HTTP
// interface: batches of JSONEachRow rows, at least once, resuming from an
// atomically written offset file; the table collapses re-sends by event id
// (docs/EVENTS.md). ClickHouse down or slow never touches serving: the log
// grows up to its bound and the shipper retries with backoff.
package ship

import (
	"fmt"
	"net/url"
	"strings"
)

// MinClickHouse is the oldest ClickHouse the schema and queries are tested
// on: Debian's clickhouse-server 18.16 (new-style MergeTree syntax, FINAL,
// JSONEachRow over HTTP; no LowCardinality, no DateTime64).
const MinClickHouse = "18.16"

// Table is the events table's name inside the database.
const Table = "events"

// Column is one column of the events table.
type Column struct{ Name, Type string }

// Columns are the events table's columns in order: the members of
// events.Event.AppendJSON. Columns after the first version's are added to
// an older table by EnsureSchema (18.16 has no ADD COLUMN IF NOT EXISTS).
var Columns = []Column{
	{"day", "Date"}, {"kind", "String"}, {"event_id", "String"}, {"time", "DateTime"}, {"time_ms", "UInt16"},
	{"issued", "DateTime"}, {"duplicate", "UInt8"}, {"env", "String"}, {"test_code", "UInt8"}, {"shard", "UInt8"},
	{"outcome", "String"}, {"format", "UInt8"}, {"price_micros", "Int64"}, {"cap_period", "UInt32"}, {"weight", "UInt32"},
	// record version 2
	{"latency_us", "UInt32"}, {"share_bp", "UInt32"}, {"device_hash", "UInt64"}, {"privacy", "UInt8"},
	{"privacy_signals", "UInt16"}, {"token_version", "UInt8"},
	// the string fields (events.FieldNames)
	{"edge", "String"}, {"snapshot", "String"}, {"placement", "String"}, {"campaign", "String"}, {"creative", "String"},
	{"experiment", "String"}, {"test", "String"}, {"variant", "String"}, {"country", "String"}, {"os", "String"},
	{"device_type", "String"}, {"layers", "String"}, {"ip", "String"},
}

// Schema returns the statements that create the database, the events
// table and the rollups (docs/EVENTS.md); all are idempotent (IF NOT
// EXISTS).
//
// ReplacingMergeTree collapses rows with the same sorting key, (kind,
// event_id, duplicate), when parts merge; queries use FINAL (or GROUP BY
// event_id) to see each event once before that. The partition is the
// token's issue day (a pixel's day is its token's issue day), so every
// re-send of one event lands in the same partition, where collapsing
// happens, and a rollup rebuild of an hour reads one day's partition.
// (Tables made before record version 2 are partitioned by month; they
// work the same, their rebuilds read the month.)
func Schema(db string) []string {
	cols := make([]string, len(Columns))
	for i, c := range Columns {
		cols[i] = "    " + c.Name + " " + c.Type
	}
	out := []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(db),
		`CREATE TABLE IF NOT EXISTS ` + quoteIdent(db) + `.` + Table + " (\n" + strings.Join(cols, ",\n") + `
) ENGINE = ReplacingMergeTree
PARTITION BY day
ORDER BY (kind, event_id, duplicate)`,
	}
	for _, r := range Rollups {
		out = append(out, r.create(db))
	}
	return append(out, dailyCreate(db))
}

// quoteIdent backquotes a database name.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

// Target is a parsed --events-clickhouse / --clickhouse URL: the HTTP
// endpoint with its other query parameters (user, password, settings) and
// the database.
type Target struct {
	Base     *url.URL // scheme, host, path; query without "database"
	Database string
}

// ParseTarget reads http://HOST:PORT/?database=NAME (database defaults to
// "adedge").
func ParseTarget(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("clickhouse URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("clickhouse URL %q: want http://HOST:PORT/?database=NAME", raw)
	}
	q := u.Query()
	db := q.Get("database")
	if db == "" {
		db = "adedge"
	}
	q.Del("database")
	u.RawQuery = q.Encode()
	if u.Path == "" {
		u.Path = "/"
	}
	return &Target{Base: u, Database: db}, nil
}

// TableName is the database-qualified events table.
func (t *Target) TableName() string { return quoteIdent(t.Database) + "." + Table }

// queryURL is the endpoint with query= set (and, inDB, the session
// database, for unqualified names in the statement).
func (t *Target) queryURL(query string, inDB bool) string {
	u := *t.Base
	q := u.Query()
	q.Set("query", query)
	if inDB {
		q.Set("database", t.Database)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
