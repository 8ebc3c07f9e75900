package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adedge/adedge/server/events/wal"
)

func sampleImp(i byte) Event {
	e := Event{Kind: KindImp, Env: 0, Test: 2, Shard: 17, ID: ID{i, 1, 2, 3}, Time: 1_700_000_000_123,
		Issued: 1_700_000_000_000, PriceMicros: 1500, CapPeriod: 3600, Weight: 1,
		Edge: []byte("edge-1"), Snapshot: []byte("snap"), Campaign: []byte("c1"), Creative: []byte("cr1"),
		Experiment: []byte("exp"), Variant: []byte("B")}
	return e
}

func TestEventRoundTrip(t *testing.T) {
	e := sampleImp(9)
	e.Country, e.OS, e.DeviceType, e.Placement = []byte("US"), []byte("android"), []byte("phone"), []byte("p1")
	b, err := e.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d Event
	if err := d.Decode(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := d.Append(nil)
	if !bytes.Equal(b, b2) || d.ID != e.ID || d.PriceMicros != 1500 || string(d.Variant) != "B" || string(d.Country) != "US" {
		t.Fatalf("round trip: %+v", d)
	}
	for _, bad := range [][]byte{nil, b[:10], b[:len(b)-1], append(append([]byte(nil), b...), 0)} {
		if err := d.Decode(bad); err == nil {
			t.Fatalf("decoded %d bytes of a %d-byte record", len(bad), len(b))
		}
	}
	v := append([]byte(nil), b...)
	v[0] = 9
	if err := d.Decode(v); !errors.Is(err, ErrVersion) {
		t.Fatalf("unknown version: %v", err)
	}
	e.Campaign = bytes.Repeat([]byte{'c'}, 256)
	if _, err := e.Append(nil); !errors.Is(err, ErrField) {
		t.Fatalf("long field: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	e := sampleImp(1)
	b, _ := e.Append(nil)
	f.Add(b)
	f.Add(b[:fixedSize])
	f.Add(v1Record(&e))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Event
		if d.Decode(b) != nil {
			return
		}
		// A record that decodes re-encodes to the same bytes (canonical);
		// a version 1 record re-encodes as version 2 with the same content.
		out, err := d.Append(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if d.Version == V1 {
			var d2 Event
			if err := d2.Decode(out); err != nil {
				t.Fatal(err)
			}
			d2.Version = V1
			if again, _ := d2.Append(nil); !bytes.Equal(again, out) {
				t.Fatal("a v1 record's content changed through v2")
			}
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatal("re-encode differs")
		}
	})
}

// v1Record encodes e the way record version 1 did (56 fixed bytes, eleven
// strings): what logs written before the upgrade hold.
func v1Record(e *Event) []byte {
	b, _ := e.Append(nil)
	out := append([]byte{V1}, b[1:fixedSizeV1]...)
	p := fixedSize
	for i := 0; i < numFieldsV1; i++ {
		n := int(b[p])
		out = append(out, b[p:p+1+n]...)
		p += 1 + n
	}
	return out
}

// TestDecodesV1Records: a log written before record version 2 still reads
// (the shipper ships it after an upgrade); the v2 fields are zero.
func TestDecodesV1Records(t *testing.T) {
	e := sampleImp(3)
	e.Country = []byte("FR")
	var d Event
	if err := d.Decode(v1Record(&e)); err != nil {
		t.Fatal(err)
	}
	if d.Version != V1 || d.ID != e.ID || d.PriceMicros != e.PriceMicros || string(d.Country) != "FR" || string(d.Variant) != "B" ||
		d.LatencyUS != 0 || d.DeviceHash != 0 || len(d.IP) != 0 || len(d.Layers) != 0 {
		t.Fatalf("v1 record decoded as %+v", d)
	}
	e2 := sampleImp(3)
	e2.Country, e2.IP, e2.Layers, e2.DeviceHash, e2.LatencyUS, e2.ShareBP = []byte("FR"), []byte("10.1.2.0"), []byte("a:t1:B"), 77, 120, 5000
	e2.Privacy, e2.PrivacySignals, e2.TokenVersion = 2, 0x10, 2
	b, _ := e2.Append(nil)
	if err := d.Decode(b); err != nil {
		t.Fatal(err)
	}
	if d.Version != Version || string(d.IP) != "10.1.2.0" || string(d.Layers) != "a:t1:B" || d.DeviceHash != 77 || d.LatencyUS != 120 ||
		d.ShareBP != 5000 || d.Privacy != 2 || d.PrivacySignals != 0x10 || d.TokenVersion != 2 {
		t.Fatalf("v2 record decoded as %+v", d)
	}
}

func TestSeenWindowAndCap(t *testing.T) {
	hour := time.Hour.Milliseconds()
	now := 100 * hour
	s := NewSeen(2*time.Hour, 1<<20)
	if dup, _ := s.Do(1, now, now, nil); dup {
		t.Fatal("first seen is a duplicate")
	}
	if dup, _ := s.Do(1, now, now, nil); !dup {
		t.Fatal("second not a duplicate")
	}
	// The same key issued in another hour is another token.
	if dup, _ := s.Do(1, now-hour, now, nil); dup {
		t.Fatal("other hour")
	}
	// A failed record is not remembered.
	if _, err := s.Do(2, now, now, func() error { return errors.New("disk") }); err == nil {
		t.Fatal("error lost")
	}
	if dup, _ := s.Do(2, now, now, nil); dup {
		t.Fatal("failed record remembered")
	}
	// Hours older than the window expire when a new hour opens.
	later := now + 4*hour
	s.Do(3, later, later, nil)
	s.Expire(later)
	if s.Len() != 1 {
		t.Fatalf("after expiry %d ids held", s.Len())
	}
	// The cap: per shard 1 id; a second id in a shard evicts the oldest hour.
	c := NewSeen(24*time.Hour, seenShards)
	c.Do(seenShards, now-hour, now, nil)
	c.Do(2*seenShards, now, now, nil)
	if c.Len() != 1 || c.Evicted() != 1 {
		t.Fatalf("cap: len %d evicted %d", c.Len(), c.Evicted())
	}
}

func openRec(t *testing.T, dir string, opt Options) *Recorder {
	t.Helper()
	opt.Dir = dir
	r, _, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTrackExactlyOnceConcurrent(t *testing.T) {
	dir := t.TempDir()
	r := openRec(t, dir, Options{})
	const ids, copies = 50, 8
	var firsts, dups atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < copies; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch []byte
			for i := 0; i < ids; i++ {
				e := sampleImp(byte(i))
				dup, err := r.Track(&e, &scratch)
				if err != nil {
					t.Error(err)
					return
				}
				if dup {
					dups.Add(1)
				} else {
					firsts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != ids || dups.Load() != ids*(copies-1) {
		t.Fatalf("firsts %d dups %d", firsts.Load(), dups.Load())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The log: one first-seen record per id, the duplicates flagged.
	n, d := countLog(t, dir)
	if n != ids || d != ids*(copies-1) {
		t.Fatalf("log has %d first-seen, %d duplicates", n, d)
	}
	// After a restart the set is rebuilt from the log: still duplicates.
	r2 := openRec(t, dir, Options{Now: func() time.Time { return time.UnixMilli(1_700_000_000_500) }})
	defer r2.Close()
	var scratch []byte
	e := sampleImp(3)
	if dup, err := r2.Track(&e, &scratch); err != nil || !dup {
		t.Fatalf("after restart: dup %v err %v", dup, err)
	}
}

func countLog(t *testing.T, dir string) (first, dup int) {
	t.Helper()
	rd := wal.NewReader(dir, wal.Pos{}, nil)
	for {
		recs, err := rd.Next(64)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		for _, x := range recs {
			var e Event
			if err := e.Decode(x.Payload); err != nil {
				t.Fatal(err)
			}
			if e.Duplicate() {
				dup++
			} else {
				first++
			}
		}
	}
}

func TestTrackFailsWhenLogFull(t *testing.T) {
	r := openRec(t, t.TempDir(), Options{Log: wal.Options{MaxBytes: 200}})
	defer r.Close()
	var scratch []byte
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		e := sampleImp(byte(i))
		_, err = r.Track(&e, &scratch)
	}
	if !errors.Is(err, ErrNotRecorded) || !errors.Is(err, wal.ErrFull) {
		t.Fatalf("full log: %v", err)
	}
	st := r.Stats()
	if st.TrackFailed != 1 || st.LastFailure.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	// The failed id was not remembered: a retry once there is room records it.
}

func TestDecisionsQueueDropsNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	r := openRec(t, dir, Options{Queue: 4, SampleAds: 0.5})
	var scratch []byte
	logged := 0
	for seq := uint64(0); seq < 2000; seq++ {
		ok, w := r.SampleAd(seq)
		if !ok {
			continue
		}
		logged++
		e := Event{Kind: KindAd, Outcome: OutcomeFill, Weight: w, Time: 1, Issued: 1, Placement: []byte("p")}
		r.Decision(&e, &scratch)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if logged != 1000 || st.AdSampledOut != 1000 {
		t.Fatalf("sampling: logged %d, sampled out %d", logged, st.AdSampledOut)
	}
	if st.AdWritten+st.AdDropped != 1000 || st.AdWritten == 0 {
		t.Fatalf("written %d + dropped %d != 1000", st.AdWritten, st.AdDropped)
	}
	n, _ := countLog(t, dir)
	if int64(n) != st.AdWritten {
		t.Fatalf("log has %d decisions, counters say %d", n, st.AdWritten)
	}
}

func TestHotPathAllocs(t *testing.T) {
	r := openRec(t, t.TempDir(), Options{})
	defer r.Close()
	scratch := make([]byte, 0, 1024)
	e := sampleImp(1)
	r.Track(&e, &scratch)
	if n := testing.AllocsPerRun(200, func() { r.Track(&e, &scratch) }); n != 0 {
		t.Fatalf("duplicate Track allocates %.1f", n)
	}
	ad := Event{Kind: KindAd, Placement: []byte("p"), Campaign: []byte("c")}
	if n := testing.AllocsPerRun(200, func() { r.Decision(&ad, &scratch) }); n != 0 {
		t.Fatalf("Decision allocates %.1f", n)
	}
}

func BenchmarkTrackFirstSeen(b *testing.B) {
	r, _, err := Open(Options{Dir: b.TempDir(), Log: wal.Options{MaxBytes: 64 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	scratch := make([]byte, 0, 1024)
	e := sampleImp(1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.ID[8], e.ID[9], e.ID[10], e.ID[11] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		if _, err := r.Track(&e, &scratch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecision(b *testing.B) {
	r, _, err := Open(Options{Dir: b.TempDir(), Log: wal.Options{MaxBytes: 64 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	scratch := make([]byte, 0, 1024)
	e := sampleImp(1)
	e.Kind = KindAd
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Decision(&e, &scratch)
	}
}

// Structured ids (sequence numbers) of different kinds never share a key.
func TestKeyNoStructuredCollisions(t *testing.T) {
	seen := map[uint64]bool{}
	for i := uint64(0); i < 20000; i++ {
		for _, k := range Kinds {
			var id ID
			binary.LittleEndian.PutUint64(id[:8], i)
			key := id.Key(k)
			if seen[key] {
				t.Fatalf("key collision at id %d kind %s", i, k)
			}
			seen[key] = true
		}
	}
}

// TestReplayStorm: the same pixel 100k times is recorded once; the recent
// id set holds it once and the heap does not grow with the storm (the
// duplicates' records go through the bounded queue, dropped when it is
// full, never kept).
func TestReplayStorm(t *testing.T) {
	dir := t.TempDir()
	r := openRec(t, dir, Options{Queue: 64})
	e := sampleImp(5)
	var scratch []byte
	e.Time = time.Now().UnixMilli()
	e.Issued = e.Time
	if dup, err := r.Track(&e, &scratch); dup || err != nil {
		t.Fatalf("first: %v %v", dup, err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 100_000
	for i := 0; i < n; i++ {
		ev := e
		if dup, err := r.Track(&ev, &scratch); !dup || err != nil {
			t.Fatalf("replay %d: dup %v err %v", i, dup, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := r.Stats()
	if st.Tracked != 1 || st.Duplicates != n || st.SeenIDs != 1 {
		t.Fatalf("after the storm: %+v", st)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 4<<20 {
		t.Fatalf("heap grew %d bytes over %d replays", grew, n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	first, dups := countLog(t, dir)
	if first != 1 || int64(dups)+st.DupDropped != n {
		t.Fatalf("log: %d first-seen, %d duplicate records (+%d dropped), want 1 and %d", first, dups, st.DupDropped, n)
	}
}

// Decisions are written a gather period after the first one, all at once:
// the request path never wakes the writer per record (that cost an edge
// half its throughput). Close writes what is still gathering.
func TestDecisionsGather(t *testing.T) {
	dir := t.TempDir()
	r := openRec(t, dir, Options{Gather: time.Hour})
	var scratch []byte
	ad := Event{Kind: KindAd, Outcome: OutcomeFill, Weight: 1, Time: 1, Issued: 1, Placement: []byte("p")}
	for i := 0; i < 100; i++ {
		r.Decision(&ad, &scratch)
	}
	e := sampleImp(9)
	if _, err := r.Track(&e, &scratch); err != nil { // pixels never wait for the gather
		t.Fatal(err)
	}
	if st := r.Stats(); st.Tracked != 1 || st.AdWritten != 0 || st.Log.Appends != 1 {
		t.Fatalf("within the gather period: %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.AdWritten != 100 || st.AdDropped != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	if first, _ := countLog(t, dir); first != 101 {
		t.Fatalf("log has %d records, want 100 decisions and 1 impression", first)
	}

	// With the default period the writer comes by on its own.
	r = openRec(t, t.TempDir(), Options{})
	defer r.Close()
	for i := 0; i < 10; i++ {
		r.Decision(&ad, &scratch)
	}
	for deadline := time.Now().Add(10 * time.Second); r.Stats().AdWritten != 10; {
		if time.Now().After(deadline) {
			t.Fatalf("decisions not written within 10s: %+v", r.Stats())
		}
		runtime.Gosched()
	}
}
