package evtool

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/ship"
)

// TestDeliveryReport: known traffic shipped to a real ClickHouse comes back
// per campaign: requests (sampling weights), fills, impressions and clicks
// once each (replays and re-sends do not count), spend and eCPM.
func TestDeliveryReport(t *testing.T) {
	ch := chkit.Start(t)
	dir := t.TempDir()
	rec, _, err := events.Open(events.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	now := time.Now().UnixMilli()
	var scratch []byte
	id := uint64(0)
	emit := func(k events.Kind, campaign string, price int64, copies int, weight uint32, outcome uint8) {
		id++
		e := events.Event{Kind: k, Time: now, Issued: now, PriceMicros: price, Weight: weight, Outcome: outcome,
			Campaign: []byte(campaign), Placement: []byte("pl-1"), Country: []byte("US")}
		binary.LittleEndian.PutUint64(e.ID[:], id)
		for c := 0; c < copies; c++ {
			ev := e
			if k == events.KindAd {
				rec.Decision(&ev, &scratch)
				continue
			}
			if _, err := rec.Track(&ev, &scratch); err != nil {
				t.Fatal(err)
			}
		}
	}
	// c1: 10 requests (5 records of weight 2), 4 fills, 4 impressions (each
	// fired twice) at 1500, 1 click. c2: 2 impressions at 1000. No-fills: 3.
	for i := 0; i < 5; i++ {
		outcome := uint8(events.OutcomeFill)
		if i == 4 {
			outcome = events.OutcomeNoFill
		}
		emit(events.KindAd, "c1", 1500, 1, 2, outcome)
	}
	for i := 0; i < 4; i++ {
		emit(events.KindImp, "c1", 1500, 2, 1, 0)
	}
	emit(events.KindClick, "c1", 1500, 3, 1, 0)
	emit(events.KindImp, "c2", 1000, 1, 1, 0)
	emit(events.KindImp, "c2", 1000, 1, 1, 0)
	for i := 0; i < 3; i++ {
		emit(events.KindAd, "", 0, 1, 1, events.OutcomeNoFill)
	}
	url := ch.URL() + "?database=rep"
	tg, _ := ship.ParseTarget(url)
	cli := ship.NewClient(tg, 30*time.Second)
	from, to := time.UnixMilli(now).Truncate(time.Hour), time.UnixMilli(now).Truncate(time.Hour).Add(time.Hour)
	want := map[string]DeliveryRow{
		"c1": {Key: "c1", Requests: 10, Fills: 8, Impressions: 4, Clicks: 1, SpendMicros: 6000},
		"c2": {Key: "c2", Impressions: 2, SpendMicros: 2000},
		"":   {Key: "", Requests: 3},
	}
	check := func(what string, o DeliveryOptions) {
		t.Helper()
		rows, err := Delivery(context.Background(), cli, "campaign", from, to, o)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := map[string]DeliveryRow{}
		for _, r := range rows {
			got[r.Key] = r
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: campaign %q: %+v, want %+v", what, k, got[k], w)
			}
		}
		if len(rows) != 3 {
			t.Errorf("%s: rows %+v", what, rows)
		}
		if r := got["c1"]; r.ECPMMicros() != 1_500_000 || r.CTR() != 0.25 {
			t.Errorf("%s: c1 eCPM %d CTR %v", what, r.ECPMMicros(), r.CTR())
		}
	}
	// Ship it twice: a second shipper from the start of the log is another
	// edge (or a re-send after a lost acknowledgement) sending every event
	// again. Each one rolls up the hours it shipped.
	for round := 0; round < 2; round++ {
		if round == 1 {
			if err := os.Remove(filepath.Join(dir, ship.OffsetFile)); err != nil {
				t.Fatal(err)
			}
		}
		s, err := ship.New(rec.Log(), tg, ship.Options{Interval: 10 * time.Millisecond, RollupEvery: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		// Decisions go through the queue: wait until the log has them all,
		// then until the shipper has acknowledged the head and rolled up.
		deadline := time.Now().Add(60 * time.Second)
		for rec.Stats().AdWritten < 8 || s.Pos().Less(rec.Log().Head()) || s.Stats().Rollups == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not shipped and rolled up: %+v at %+v, %+v", round, rec.Stats(), s.Pos(), s.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		check(fmt.Sprintf("round %d, rollup", round), DeliveryOptions{})
		check(fmt.Sprintf("round %d, raw", round), DeliveryOptions{Raw: true})
	}
	var n int
	out, err := cli.Query(context.Background(), "SELECT count() FROM "+tg.TableName()+" WHERE kind = 'imp' FORMAT TSV")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscan(string(out), &n)
	if n < 2*6 {
		t.Fatalf("the second round did not re-send: %d impression rows", n)
	}
	// Every --by runs on 18.16, and the rollup agrees with the raw table.
	for _, by := range ByValues {
		rolled, err := Delivery(context.Background(), cli, by, from, to, DeliveryOptions{Refresh: true})
		if err != nil || len(rolled) == 0 {
			t.Errorf("--by %s: %v %v", by, rolled, err)
		}
		raw, err := Delivery(context.Background(), cli, by, from, to, DeliveryOptions{Raw: true})
		if err != nil || fmt.Sprint(raw) != fmt.Sprint(rolled) {
			t.Errorf("--by %s: rollup %v, raw %v (%v)", by, rolled, raw, err)
		}
	}
	if rows, err := Delivery(context.Background(), cli, "campaign", to, to.Add(time.Hour), DeliveryOptions{}); err != nil || len(rows) != 0 {
		t.Errorf("empty window: %v %v", rows, err)
	}
}

func TestDeliveryCSV(t *testing.T) {
	var b bytes.Buffer
	rows := []DeliveryRow{{Key: "c,1", Requests: 10, Fills: 5, Impressions: 4, Clicks: 1, SpendMicros: 6000}}
	if err := WriteDelivery(&b, "campaign", "csv", rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if !strings.HasPrefix(lines[0], "campaign,impressions,clicks,spend_micros") || lines[1] != `"c,1",4,1,6000,10,5,0.2500,1500000` {
		t.Fatalf("csv:\n%s", b.String())
	}
	if err := CheckBy("device"); err == nil {
		t.Error("--by device accepted")
	}
	if err := WriteDelivery(&b, "campaign", "xml", rows); err == nil {
		t.Error("--format xml accepted")
	}
}
