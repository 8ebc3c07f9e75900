package evtool

import (
	"bytes"
	"context"
	"encoding/binary"
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
	s, err := ship.New(rec.Log(), tg, ship.Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Decisions go through the queue: wait until the log has them all, then
	// until the shipper has acknowledged the head.
	deadline := time.Now().Add(60 * time.Second)
	for rec.Stats().AdWritten < 8 || s.Pos().Less(rec.Log().Head()) {
		if time.Now().After(deadline) {
			t.Fatalf("not shipped: %+v at %+v", rec.Stats(), s.Pos())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cli := ship.NewClient(tg, 30*time.Second)
	rows, err := Delivery(context.Background(), cli, "campaign", time.UnixMilli(now).Add(-time.Hour), time.UnixMilli(now).Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]DeliveryRow{}
	for _, r := range rows {
		got[r.Key] = r
	}
	want := map[string]DeliveryRow{
		"c1": {Key: "c1", Requests: 10, Fills: 8, Impressions: 4, Clicks: 1, SpendMicros: 6000},
		"c2": {Key: "c2", Impressions: 2, SpendMicros: 2000},
		"":   {Key: "", Requests: 3},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("campaign %q: %+v, want %+v", k, got[k], w)
		}
	}
	if len(rows) != 3 {
		t.Errorf("rows %+v", rows)
	}
	if r := got["c1"]; r.ECPMMicros() != 1_500_000 || r.CTR() != 0.25 {
		t.Errorf("c1 eCPM %d CTR %v", r.ECPMMicros(), r.CTR())
	}
	// An empty window has no rows; every --by runs on 18.16.
	for _, by := range ByValues {
		rows, err := Delivery(context.Background(), cli, by, time.UnixMilli(now).Add(-time.Hour), time.UnixMilli(now).Add(time.Hour))
		if err != nil || len(rows) == 0 {
			t.Errorf("--by %s: %v %v", by, rows, err)
		}
	}
	if rows, err := Delivery(context.Background(), cli, "campaign", time.UnixMilli(now).Add(time.Hour), time.UnixMilli(now).Add(2*time.Hour)); err != nil || len(rows) != 0 {
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
	if _, err := DeliverySQL("t", "device", time.Now(), time.Now()); err == nil {
		t.Error("--by device accepted")
	}
	if err := WriteDelivery(&b, "campaign", "xml", rows); err == nil {
		t.Error("--format xml accepted")
	}
}
