package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/ship"
)

// writeLog records a known log: per kind, 3 first-seen events and (for
// pixels) 2 replays; returns the records as ClickHouse rows.
func writeLog(t *testing.T, dir string, issued time.Time) []byte {
	t.Helper()
	rec, _, err := events.Open(events.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var scratch, rows []byte
	ms := issued.UnixMilli()
	for i := 0; i < 3; i++ {
		for _, k := range []events.Kind{events.KindAd, events.KindImp, events.KindClick} {
			e := events.Event{Kind: k, Time: ms, Issued: ms, Weight: 1, Campaign: []byte("camp,1"), Placement: []byte("pl-1"), Country: []byte("US")}
			if k == events.KindImp {
				e.PriceMicros = 2000
			}
			if k == events.KindAd {
				e.Outcome = events.OutcomeFill
				e.PriceMicros = 2000
			}
			binary.LittleEndian.PutUint64(e.ID[:], uint64(i)+1)
			rows = append(e.AppendJSON(rows), '\n')
			copies := 1
			if k != events.KindAd && i < 2 {
				copies = 2 // a replay
			}
			for c := 0; c < copies; c++ {
				ev := e
				if k == events.KindAd {
					rec.Decision(&ev, &scratch)
				} else if _, err := rec.Track(&ev, &scratch); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestEventsStatsJSONShape: `adtool events stats --json DIR` prints one
// JSON object with, for each kind, {"unique": N, "duplicates": M}, and
// "damaged_records" (issue 10's interface for other tools).
func TestEventsStatsJSONShape(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, time.Now())
	code, out, errs := runAsAdtool(t, nil, "events", "stats", "--json", dir)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Fatalf("%d lines, want one JSON object:\n%s", n+1, out)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	want := map[string][2]int64{"ad": {3, 0}, "imp": {3, 2}, "click": {3, 2}}
	for kind, w := range want {
		var c map[string]int64
		if err := json.Unmarshal(got[kind], &c); err != nil {
			t.Fatalf("%q: %s: %v", kind, got[kind], err)
		}
		if c["unique"] != w[0] || c["duplicates"] != w[1] {
			t.Errorf("%q: %s, want unique %d duplicates %d", kind, got[kind], w[0], w[1])
		}
		if _, ok := c["unique"]; !ok {
			t.Errorf("%q has no unique: %s", kind, got[kind])
		}
		if _, ok := c["duplicates"]; !ok {
			t.Errorf("%q has no duplicates: %s", kind, got[kind])
		}
	}
	var damaged int64 = -1
	if err := json.Unmarshal(got["damaged_records"], &damaged); err != nil || damaged != 0 {
		t.Errorf("damaged_records %s (%v), want 0", got["damaged_records"], err)
	}
}

// TestReportDeliveryCSVHeader: `adtool report delivery --clickhouse URL
// --by campaign --format csv` against a real ClickHouse has a header row
// with at least campaign,impressions,clicks,spend_micros and the known
// traffic under it (issue 10's interface for other tools).
func TestReportDeliveryCSVHeader(t *testing.T) {
	ch := chkit.Start(t)
	url := ch.URL() + "?database=cli"
	tg, err := ship.ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	c := ship.NewClient(tg, 30*time.Second)
	ctx := context.Background()
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Truncate(time.Hour)
	rows := writeLog(t, t.TempDir(), hour.Add(time.Minute))
	if _, err := c.Exec(ctx, "INSERT INTO "+tg.TableName()+" FORMAT JSONEachRow", rows, true); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runAsAdtool(t, nil, "report", "delivery", "--clickhouse", url, "--by", "campaign", "--format", "csv", "--refresh",
		"--from", hour.Format(time.RFC3339), "--to", hour.Add(time.Hour).Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	head := strings.Split(lines[0], ",")
	if len(head) < 4 || strings.Join(head[:4], ",") != "campaign,impressions,clicks,spend_micros" {
		t.Fatalf("header %q, want campaign,impressions,clicks,spend_micros first", lines[0])
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], `"camp,1",3,3,6000,`) {
		t.Fatalf("rows:\n%s\nwant one for \"camp,1\": 3 impressions, 3 clicks, 6000 micros", out)
	}
}
