package evtool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
)

func TestStatsAndCat(t *testing.T) {
	dir := t.TempDir()
	rec, _, err := events.Open(events.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var scratch []byte
	for i := 0; i < 10; i++ {
		for _, k := range []events.Kind{events.KindImp, events.KindClick} {
			e := events.Event{Kind: k, Time: 1_700_000_000_000, Issued: 1_700_000_000_000, PriceMicros: 100, Campaign: []byte("c1")}
			binary.LittleEndian.PutUint64(e.ID[:], uint64(i))
			for c := 0; c < 1+i%2; c++ { // odd ids twice
				ev := e
				if _, err := rec.Track(&ev, &scratch); err != nil {
					t.Fatal(err)
				}
			}
		}
		ad := events.Event{Kind: events.KindAd, Time: 1, Issued: 1, Placement: []byte("p\"1")}
		binary.LittleEndian.PutUint64(ad.ID[:], uint64(i))
		rec.Decision(&ad, &scratch)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage one byte in the middle of the first segment.
	segs, _ := wal.Segments(dir)
	p := filepath.Join(dir, "00000001.seg")
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, _ := os.ReadFile(p)
	b[200] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := ComputeStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(st.AppendJSON(nil), &got); err != nil {
		t.Fatalf("%s: %v", st.AppendJSON(nil), err)
	}
	if got["damaged_records"].(float64) != 1 {
		t.Errorf("damaged_records %v", got["damaged_records"])
	}
	imp := got["imp"].(map[string]any)
	click := got["click"].(map[string]any)
	ad := got["ad"].(map[string]any)
	// One record lost to the damage: 10+5 imp, 10+5 click, 10 ad = 40 minus 1.
	total := imp["unique"].(float64) + imp["duplicates"].(float64) + click["unique"].(float64) + click["duplicates"].(float64) + ad["unique"].(float64)
	if total != 39 || imp["unique"].(float64) < 9 || imp["duplicates"].(float64) < 4 || ad["duplicates"].(float64) != 0 {
		t.Errorf("stats %s", st.AppendJSON(nil))
	}
	var out bytes.Buffer
	r, err := Cat(&out, dir, true)
	if err != nil || len(r.Damaged) != 1 {
		t.Fatalf("cat: %v damaged %v", err, r.Damaged)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 39 {
		t.Fatalf("cat printed %d lines", len(lines))
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	if !strings.Contains(out.String(), `"placement":"p\"1"`) {
		t.Error("placement not escaped")
	}
	if _, err := ComputeStats(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory is not an error")
	}
}
