package ship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/events/wal"
)

// traffic records n impressions (every third replayed once) and n
// decisions; it returns the unique impressions' count and price sum.
func traffic(t testing.TB, rec *events.Recorder, from, n int) (int64, int64) {
	t.Helper()
	var scratch []byte
	var count, sum int64
	now := time.Now().UnixMilli()
	for i := from; i < from+n; i++ {
		e := events.Event{Kind: events.KindImp, Time: now, Issued: now - 1000, PriceMicros: int64(1000 + i%7), Weight: 1,
			Campaign: []byte(fmt.Sprintf("c%d", i%5)), Creative: []byte("cr"), Edge: []byte("e1"), Variant: []byte("control")}
		binary.LittleEndian.PutUint64(e.ID[:8], uint64(i)+1)
		copies := 1 + boolInt(i%3 == 0)
		for c := 0; c < copies; c++ {
			ev := e
			dup, err := rec.Track(&ev, &scratch)
			if err != nil {
				t.Fatal(err)
			}
			if !dup {
				count++
				sum += e.PriceMicros
			}
		}
		ad := events.Event{Kind: events.KindAd, Time: now, Issued: now, Outcome: events.OutcomeFill, Weight: 1, Placement: []byte("p1")}
		binary.LittleEndian.PutUint64(ad.ID[:8], uint64(i)+1)
		rec.Decision(&ad, &scratch)
	}
	return count, sum
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func openRecorder(t testing.TB, dir string) *events.Recorder {
	t.Helper()
	rec, _, err := events.Open(events.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func startShipper(t testing.TB, log *wal.Log, url string, opt Options) (*Shipper, func()) {
	t.Helper()
	tg, err := ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	if opt.MaxBackoff == 0 {
		opt.MinBackoff, opt.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	}
	if opt.Interval == 0 {
		opt.Interval = 20 * time.Millisecond
	}
	s, err := New(log, tg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return s, func() { cancel(); <-done }
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp: everything the log holds is acknowledged.
func caughtUp(s *Shipper, l *wal.Log) func() bool {
	return func() bool { return !s.Pos().Less(l.Head()) && s.caughtUp.Load() }
}

func count(t testing.TB, c *Client, where string) (int64, int64) {
	t.Helper()
	out, err := c.Query(context.Background(), "SELECT count(), sum(price_micros) FROM "+c.T.TableName()+" FINAL WHERE "+where+" FORMAT TSV")
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int64
	if _, err := fmt.Sscan(string(out), &n, &sum); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	return n, sum
}

// TestShipToClickHouse: a real server; every unique impression once (count
// and price sum), re-sends collapse, ClickHouse stopped under traffic
// loses nothing and the backlog drains when it returns.
func TestShipToClickHouse(t *testing.T) {
	ch := chkit.Start(t)
	dir := t.TempDir()
	rec := openRecorder(t, dir)
	defer rec.Close()
	url := ch.URL() + "?database=adedge_test"
	s, stop := startShipper(t, rec.Log(), url, Options{Batch: 500})
	wantN, wantSum := traffic(t, rec, 0, 3000)
	waitFor(t, "the shipper to catch up", 60*time.Second, caughtUp(s, rec.Log()))
	cli := s.cli
	if n, sum := count(t, cli, "kind = 'imp' AND duplicate = 0"); n != wantN || sum != wantSum {
		t.Fatalf("ClickHouse has %d impressions, %d micros; want %d, %d", n, sum, wantN, wantSum)
	}
	if n, _ := count(t, cli, "kind = 'imp' AND duplicate = 1"); n != 1000 {
		t.Errorf("duplicates in ClickHouse %d, want 1000", n)
	}
	if n, _ := count(t, cli, "kind = 'ad'"); n != 3000 {
		t.Errorf("decisions in ClickHouse %d, want 3000", n)
	}
	off, err := ReadOffset(dir)
	if err != nil || off != s.Pos() {
		t.Fatalf("offset file %+v (%v), shipper at %+v", off, err, s.Pos())
	}
	stop()

	// Re-ship everything (offset file gone): the table collapses re-sends.
	if err := os.Remove(filepath.Join(dir, OffsetFile)); err != nil {
		t.Fatal(err)
	}
	s, stop = startShipper(t, rec.Log(), url, Options{Batch: 700})
	waitFor(t, "the re-send", 60*time.Second, caughtUp(s, rec.Log()))
	if n, sum := count(t, cli, "kind = 'imp' AND duplicate = 0"); n != wantN || sum != wantSum {
		t.Fatalf("after a re-send: %d impressions, %d micros; want %d, %d", n, sum, wantN, wantSum)
	}

	// ClickHouse down: serving goes on, the backlog grows and ages.
	if err := ch.Kill(); err != nil {
		t.Fatal(err)
	}
	n2, sum2 := traffic(t, rec, 3000, 2000)
	wantN, wantSum = wantN+n2, wantSum+sum2
	waitFor(t, "shipping failures", 30*time.Second, func() bool { return s.Stats().Failures > 0 })
	st := s.Stats()
	if st.BacklogBytes == 0 || s.BacklogAge(time.Now().Add(time.Second)) == 0 {
		t.Fatalf("backlog while ClickHouse is down: %+v", st)
	}
	start := time.Now()
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to drain", 60*time.Second, caughtUp(s, rec.Log()))
	t.Logf("backlog of 4000 events drained %s after ClickHouse answered again", time.Since(start).Round(time.Millisecond))
	stop()
	if n, sum := count(t, cli, "kind = 'imp' AND duplicate = 0"); n != wantN || sum != wantSum {
		t.Fatalf("after the outage: %d impressions, %d micros; want %d, %d", n, sum, wantN, wantSum)
	}
	if s.Stats().BacklogBytes != 0 || s.BacklogAge(time.Now()) != 0 {
		t.Errorf("backlog after draining: %+v", s.Stats())
	}
}

// fakeCH answers inserts from a script of failures, then accepts and keeps
// the rows (event ids) it was sent.
type fakeCH struct {
	mu     sync.Mutex
	script []func(w http.ResponseWriter)
	ids    map[string]int
	calls  int
}

func (f *fakeCH) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("query")
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(q, "INSERT") {
		return // schema statements: 200
	}
	f.calls++
	if len(f.script) > 0 {
		next := f.script[0]
		f.script = f.script[1:]
		next(w)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row struct {
			Kind string `json:"kind"`
			ID   string `json:"event_id"`
			Dup  int    `json:"duplicate"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			http.Error(w, "Cannot parse JSON: "+err.Error(), 400)
			return
		}
		if row.Kind == "imp" && row.Dup == 0 {
			f.ids[row.ID]++
		}
	}
}

// TestShipperRetriesEveryAnswer: HTTP errors, a schema mismatch, garbage,
// a hang past the timeout and a dropped connection are all retried with
// backoff; every event arrives (at least once).
func TestShipperRetriesEveryAnswer(t *testing.T) {
	f := &fakeCH{ids: map[string]int{}}
	f.script = []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			http.Error(w, "Code: 241, e.displayText() = DB::Exception: Memory limit exceeded", 500)
		},
		func(w http.ResponseWriter) {
			http.Error(w, "Code: 16, DB::Exception: No such column edge in table adedge.events", 400)
		},
		func(w http.ResponseWriter) { w.WriteHeader(503); _, _ = w.Write([]byte{0xff, 0x00, 0x01}) },
		func(w http.ResponseWriter) { time.Sleep(3 * time.Second) }, // past the 1 s timeout
		func(w http.ResponseWriter) {
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
		},
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := t.TempDir()
	rec := openRecorder(t, dir)
	defer rec.Close()
	wantN, _ := traffic(t, rec, 0, 500)
	var errs []string
	var emu sync.Mutex
	s, stop := startShipper(t, rec.Log(), srv.URL+"/?database=x", Options{Batch: 200, Timeout: time.Second,
		OnError: func(err error) { emu.Lock(); errs = append(errs, err.Error()); emu.Unlock() }})
	defer stop()
	waitFor(t, "shipping through the failures", 30*time.Second, caughtUp(s, rec.Log()))
	f.mu.Lock()
	defer f.mu.Unlock()
	if int64(len(f.ids)) != wantN {
		t.Fatalf("fake ClickHouse got %d distinct impressions, want %d", len(f.ids), wantN)
	}
	// The five scripted answers fail in order (the slow one and the closed
	// connection both as client timeouts); a loaded machine may add
	// timeouts of healthy answers (load 23: one took past the 1 s), never
	// another kind of failure.
	emu.Lock()
	defer emu.Unlock()
	var other []string
	timeouts := 0
	for _, e := range errs {
		if strings.Contains(e, "Timeout exceeded") || strings.Contains(e, "deadline exceeded") {
			timeouts++
		} else {
			other = append(other, e)
		}
	}
	if st := s.Stats(); st.Failures != int64(len(errs)) || timeouts < 2 {
		t.Errorf("failures %d, %d reported, %d of them timeouts (the scripted two at least): %q", st.Failures, len(errs), timeouts, errs)
	}
	if len(other) != 3 || !strings.Contains(other[0], "Memory limit exceeded") || !strings.Contains(other[1], "No such column") ||
		!strings.Contains(other[2], "HTTP 503") {
		t.Errorf("errors not reported with ClickHouse's message, in order: %q (all: %q)", other, errs)
	}
}

func TestParseTarget(t *testing.T) {
	tg, err := ParseTarget("http://127.0.0.1:8123/?database=ads&user=u")
	if err != nil || tg.Database != "ads" || tg.TableName() != "`ads`.events" || tg.Base.Query().Get("user") != "u" {
		t.Fatalf("%+v %v", tg, err)
	}
	if tg, _ := ParseTarget("http://h:8123"); tg.Database != "adedge" {
		t.Fatalf("default database %q", tg.Database)
	}
	for _, bad := range []string{"", "h:8123", "ftp://h/", "http:///x", "http://h:8123/\x7f"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := Redact("http://u:p@h:1/?password=secret"); strings.Contains(got, "secret") || strings.Contains(got, ":p@") {
		t.Errorf("redacted %q", got)
	}
}

// TestSchemaUpgradesV1Table: a table created by the record-version-1
// schema gains the v2 columns (18.16 has no ADD COLUMN IF NOT EXISTS), a
// second EnsureSchema changes nothing, and a v2 row inserts; the rollups
// exist.
func TestSchemaUpgradesV1Table(t *testing.T) {
	ch := chkit.Start(t)
	tg, err := ParseTarget(ch.URL() + "?database=up")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(tg, 30*time.Second)
	ctx := context.Background()
	v1 := `CREATE TABLE up.events (day Date, kind String, event_id String, time DateTime, time_ms UInt16, issued DateTime,
    duplicate UInt8, env String, test_code UInt8, shard UInt8, outcome String, format UInt8, price_micros Int64,
    cap_period UInt32, weight UInt32, edge String, snapshot String, placement String, campaign String, creative String,
    experiment String, test String, variant String, country String, os String, device_type String)
ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (kind, event_id, duplicate)`
	for _, st := range []string{"CREATE DATABASE up", v1} {
		if _, err := c.Exec(ctx, st, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := c.EnsureSchema(ctx); err != nil {
			t.Fatalf("EnsureSchema %d: %v", i, err)
		}
	}
	out, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = 'up' AND table = 'events' FORMAT TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, col := range Columns {
		want = append(want, col.Name)
	}
	if got := strings.Fields(string(out)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("columns after the upgrade:\n%v\nwant\n%v", got, want)
	}
	e := events.Event{Kind: events.KindImp, Time: 1_800_000_000_000, Issued: 1_800_000_000_000, PriceMicros: 5, Weight: 1,
		IP: []byte("10.0.0.0"), Layers: []byte("l:t:v"), DeviceHash: 42, Privacy: 2}
	if _, err := c.Exec(ctx, "INSERT INTO "+tg.TableName()+" FORMAT JSONEachRow", e.AppendJSON(nil), true); err != nil {
		t.Fatalf("v2 row into the upgraded table: %v", err)
	}
	// experiment_hourly: a layered decision counts once in each layer, a
	// legacy one in layer ''; the same decision sent twice counts once.
	var rows []byte
	for i, layers := range []string{"L1:t1:A;L2:ctl:control", "L1:t1:A;L2:ctl:control", ""} {
		d := events.Event{Kind: events.KindAd, Outcome: events.OutcomeFill, Time: 1_800_000_000_000, Issued: 1_800_000_000_000,
			Weight: 1, Experiment: []byte("x"), TestID: []byte("t1"), Variant: []byte("A"), Layers: []byte(layers)}
		d.ID[0] = byte(1 + i/2*7) // the first two are one decision sent twice
		rows = append(d.AppendJSON(rows), '\n')
	}
	if _, err := c.Exec(ctx, "INSERT INTO "+tg.TableName()+" FORMAT JSONEachRow", rows, true); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000)
	if err := c.Rebuild(ctx, at, at.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	out, err = c.Query(ctx, "SELECT layer, test, variant, sum(requests), sum(fills) FROM "+tg.RollupName("experiment_hourly")+
		" FINAL WHERE experiment = 'x' GROUP BY layer, test, variant ORDER BY layer FORMAT TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "\tt1\tA\t1\t1\nL1\tt1\tA\t1\t1\nL2\tctl\tcontrol\t1\t1\n"; got != want {
		t.Fatalf("experiment_hourly by layer:\n%q\nwant\n%q", got, want)
	}
}

// FuzzShipperAnswers: whatever ClickHouse answers to the inserts (any
// status with any body, a dropped connection, an answer past the timeout),
// in any order, the shipper retries from the same position and in the end
// every unique impression arrives; nothing is skipped, nothing panics.
func FuzzShipperAnswers(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4}, []byte("Code: 16, DB::Exception: No such column"))
	f.Add([]byte{5, 5, 0}, []byte{0xff, 0})
	f.Add([]byte{}, []byte{})
	statuses := []int{500, 400, 503, 404, 200, 302, 429, 502}
	f.Fuzz(func(t *testing.T, script, body []byte) {
		if len(script) > 8 {
			script = script[:8]
		}
		fc := &fakeCH{ids: map[string]int{}}
		for _, b := range script {
			switch b % 10 {
			case 8: // dropped connection
				fc.script = append(fc.script, func(w http.ResponseWriter) {
					if hj, ok := w.(http.Hijacker); ok {
						c, _, _ := hj.Hijack()
						c.Close()
					}
				})
			case 9: // past the timeout
				fc.script = append(fc.script, func(http.ResponseWriter) { time.Sleep(2200 * time.Millisecond) })
			default:
				code := statuses[int(b%10)%len(statuses)]
				if code == 200 {
					continue // a healthy answer: the fake records the rows
				}
				fc.script = append(fc.script, func(w http.ResponseWriter) { w.WriteHeader(code); _, _ = w.Write(body) })
			}
		}
		srv := httptest.NewServer(fc)
		defer srv.Close()
		rec := openRecorder(t, t.TempDir())
		defer rec.Close()
		wantN, _ := traffic(t, rec, 0, 60)
		// The timeout is one a healthy answer on a loaded machine never
		// reaches: only the scripted answers fail.
		s, stop := startShipper(t, rec.Log(), srv.URL+"/?database=x", Options{Batch: 25, Timeout: 2 * time.Second,
			MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
		defer stop()
		waitFor(t, "shipping through the scripted answers", 60*time.Second, func() bool {
			fc.mu.Lock()
			defer fc.mu.Unlock()
			return int64(len(fc.ids)) == wantN && len(fc.script) == 0 && caughtUp(s, rec.Log())()
		})
	})
}
