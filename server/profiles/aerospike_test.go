package profiles

import (
	"context"
	"errors"
	"math"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	as "github.com/aerospike/aerospike-client-go/v7"

	"github.com/adedge/adedge/server/profiles/aerotest"
)

// Generous slack for timing assertions: CI machines are slow and -race
// slows everything; these tests check "about the deadline", not latency.
const slack = time.Second

func openAero(t testing.TB, srv *aerotest.Server, query string) *AerospikeStore {
	t.Helper()
	s, err := Open("aerospike://" + srv.Addr() + "/test/profiles" + query)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*AerospikeStore)
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawClient talks to srv directly, to plant or inspect records.
func rawClient(t testing.TB, srv *aerotest.Server) *as.Client {
	t.Helper()
	c, err := as.NewClientWithPolicyAndHost(nil, as.NewHost(srv.Host(), srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func rawKey(t testing.TB, device string) *as.Key {
	k, err := as.NewKey("test", "profiles", device)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAerospikeHitMissAndBinSelection(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	ctx := ctxFor(t, 5*time.Second)
	in := &Profile{
		Segments:      []string{"gamers", "sports"},
		InstalledApps: sortApps([]uint64{AppHash("com.a"), AppHash("com.b"), math.MaxUint64}),
	}
	if err := s.PutProfile(ctx, "dev-1", in); err != nil {
		t.Fatal(err)
	}
	// A bin the edge doesn't need must not be transferred.
	raw := rawClient(t, srv)
	if err := raw.PutBins(nil, rawKey(t, "dev-1"), as.NewBin("history", strings.Repeat("x", 10000))); err != nil {
		t.Fatal(err)
	}

	var p Profile
	if err := s.Get(ctx, "dev-1", &p); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Segments, in.Segments) || !reflect.DeepEqual(p.InstalledApps, in.InstalledApps) {
		t.Fatalf("got %+v, want %+v", p, in)
	}
	if !p.HasApp(AppHash("com.b")) || !p.HasApp(math.MaxUint64) || p.HasApp(AppHash("com.c")) {
		t.Fatalf("HasApp wrong for %v", p.InstalledApps)
	}
	last := srv.LastRequest()
	if last.ReadAll || !reflect.DeepEqual(last.ReadBins, []string{BinSegments, BinApps, BinCaps}) || last.Write {
		t.Fatalf("Get asked for %+v, want only the profile bins", last)
	}

	if err := s.Get(ctx, "dev-2", &p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if len(p.Segments)+len(p.InstalledApps) != 0 {
		t.Fatal("miss left data in dst")
	}
	before := srv.Stats().DataRequests
	if err := s.Get(ctx, "", &p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty device: %v", err)
	}
	if srv.Stats().DataRequests != before {
		t.Fatal("empty device id went to the server")
	}
	if st := s.Stats(); st.Gets != 3 || st.Hits != 1 || st.Misses != 2 || st.Errors+st.Timeouts != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAerospikeCapWindows(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	ctx := ctxFor(t, 5*time.Second)
	const hour = 3600
	t0 := int64(1_700_000_000)
	t0 -= t0 % hour

	inc := func(campaign string, now int64, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if err := s.IncrementCap(ctx, "dev", campaign, hour, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	inc("c1", t0+10, 3)
	inc("c", t0+10, 1) // a prefix of "c1": must not touch c1's keys
	inc("c2", t0+20, 2)
	var p Profile
	if err := s.Get(ctx, "dev", &p); err != nil {
		t.Fatal(err)
	}
	if p.CapCount("c1", hour, t0+100) != 3 || p.CapCount("c2", hour, t0+100) != 2 || p.CapCount("c", hour, t0) != 1 {
		t.Fatalf("caps = %+v", p.Caps)
	}
	// Next window for c1 only: its count restarts, its old key is removed
	// server-side, the other campaigns keep theirs.
	inc("c1", t0+hour+1, 2)
	inc("c", t0+hour+1, 1)
	if err := s.Get(ctx, "dev", &p); err != nil {
		t.Fatal(err)
	}
	if got := p.CapCount("c1", hour, t0+hour+5); got != 2 {
		t.Fatalf("c1 next window = %d, want 2", got)
	}
	if got := p.CapCount("c1", hour, t0+5); got != 0 {
		t.Fatalf("c1 old window still present: %d", got)
	}
	if got := p.CapCount("c2", hour, t0+5); got != 2 {
		t.Fatalf("c2 = %d, want 2 (untouched)", got)
	}
	rec, err := rawClient(t, srv).Get(nil, rawKey(t, "dev"), BinCaps)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, pair := range rec.Bins[BinCaps].([]as.MapPair) {
		keys = append(keys, pair.Key.(string))
	}
	// Key order: '1' sorts before ':', so "c1:..." comes before "c:...".
	want := []string{CapKey("c1", t0+hour), CapKey("c2", t0), CapKey("c", t0+hour)}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("caps keys = %v, want %v", keys, want)
	}

	// Writing the profile later keeps the caps.
	if err := s.PutProfile(ctx, "dev", &Profile{Segments: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, "dev", &p); err != nil || p.CapCount("c1", hour, t0+hour) != 2 || !p.HasSegment("s") {
		t.Fatalf("after PutProfile: %+v %v", p, err)
	}
	if err := s.IncrementCap(ctx, "dev", "a:b", hour, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad campaign id: %v", err)
	}
	if st := s.Stats(); st.CapIncrements != 9 || st.CapErrors != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAerospikeSlowServerTimesOut(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	if err := s.PutProfile(ctxFor(t, 5*time.Second), "dev", &Profile{Segments: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(3 * time.Second)
	const deadline = 50 * time.Millisecond
	var p Profile
	start := time.Now()
	err := s.Get(ctxFor(t, deadline), "dev", &p)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow server: err = %v, want ErrTimeout", err)
	}
	if elapsed > deadline+slack {
		t.Fatalf("Get returned after %v with a %v deadline", elapsed, deadline)
	}
	// Writes honour their deadline too.
	start = time.Now()
	err = s.IncrementCap(ctxFor(t, deadline), "dev", "c", 60, 120)
	if !errors.Is(err, ErrTimeout) || time.Since(start) > deadline+slack {
		t.Fatalf("slow increment: %v after %v", err, time.Since(start))
	}
	if st := s.Stats(); st.Timeouts != 1 || st.CapErrors != 1 {
		t.Fatalf("stats = %+v", st)
	}
	srv.SetDelay(0)
	waitForGet(t, s, "dev")
}

// waitForGet retries Get until it succeeds: after faults the client may
// need a few requests to replace dead pooled connections.
func waitForGet(t *testing.T, s Store, device string) {
	t.Helper()
	var p Profile
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err = s.Get(ctxFor(t, 500*time.Millisecond), device, &p); err == nil {
			return
		}
	}
	t.Fatalf("store did not recover: last error %v", err)
}

func TestAerospikeDroppedConnection(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	if err := s.PutProfile(ctxFor(t, 5*time.Second), "dev", &Profile{Segments: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	// Connections closed in the middle of a request.
	srv.SetDelay(5 * time.Second)
	before := srv.Stats().DataRequests
	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		var p Profile
		start := time.Now()
		err := s.Get(ctxFor(t, 10*time.Second), "dev", &p)
		done <- result{err, time.Since(start)}
	}()
	for srv.Stats().DataRequests == before {
		time.Sleep(time.Millisecond)
	}
	srv.DropConnections()
	r := <-done
	if r.err == nil || errors.Is(r.err, ErrNotFound) || errors.Is(r.err, ErrTimeout) {
		t.Fatalf("dropped connection: err = %v, want a connection error", r.err)
	}
	if r.elapsed > 2*time.Second {
		t.Fatalf("Get took %v to notice the dropped connection", r.elapsed)
	}
	srv.SetDelay(0)
	waitForGet(t, s, "dev")

	// A request dropped right after it is read.
	srv.DropNextRequests(1)
	var p Profile
	if err := s.Get(ctxFor(t, 5*time.Second), "dev", &p); err == nil {
		t.Fatal("Get succeeded although the server dropped the request")
	}
	waitForGet(t, s, "dev")
	if st := s.Stats(); st.Errors < 2 {
		t.Fatalf("errors not counted: %+v", st)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestAerospikeRefusedConnection(t *testing.T) {
	addr := freePort(t)
	start := time.Now()
	_, err := Open("aerospike://" + addr + "/test/profiles?connect_timeout=2s")
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if !strings.Contains(err.Error(), "cannot connect to "+addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("unclear error: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second+slack {
		t.Fatalf("Open took %v to fail", el)
	}
}

func TestAerospikeServerGoneAfterOpen(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	srv.Close()
	var p Profile
	const deadline = 100 * time.Millisecond
	for i := 0; i < 3; i++ {
		start := time.Now()
		err := s.Get(ctxFor(t, deadline), "dev", &p)
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("Get with the server gone: %v", err)
		}
		if el := time.Since(start); el > deadline+slack {
			t.Fatalf("Get took %v", el)
		}
	}
	if err := s.IncrementCap(ctxFor(t, deadline), "dev", "c", 60, 120); err == nil {
		t.Fatal("IncrementCap with the server gone succeeded")
	}
}

func TestAerospikeWrongNamespace(t *testing.T) {
	srv := aerotest.New(t, "test", "users")
	_, err := Open("aerospike://" + srv.Addr() + "/profilez/set")
	if err == nil || !strings.Contains(err.Error(), `namespace "profilez" not on the cluster`) || !strings.Contains(err.Error(), "test;users") {
		t.Fatalf("err = %v", err)
	}
}

func TestAerospikeExpiredContext(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	before := srv.Stats().DataRequests
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	var p Profile
	if err := s.Get(ctx, "dev", &p); !errors.Is(err, ErrTimeout) {
		t.Fatalf("expired ctx: %v", err)
	}
	if srv.Stats().DataRequests != before {
		t.Fatal("a request was sent although the deadline had passed")
	}
}

func TestAerospikeCorruptBins(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	raw := rawClient(t, srv)
	cases := map[string]as.BinMap{
		"seg-int":    {BinSegments: 5},
		"seg-mixed":  {BinSegments: []any{"a", 1}},
		"apps-str":   {BinApps: []any{"com.a"}},
		"caps-list":  {BinCaps: []any{1}},
		"apps-float": {BinApps: []any{1.5}},
	}
	for dev, bins := range cases {
		if err := raw.Put(nil, rawKey(t, dev), bins); err != nil {
			t.Fatal(err)
		}
		p := Profile{Segments: []string{"stale"}}
		err := s.Get(ctxFor(t, 5*time.Second), dev, &p)
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTimeout) {
			t.Errorf("%s: err = %v, want a decode error", dev, err)
		}
		if len(p.Segments)+len(p.InstalledApps)+len(p.Caps) != 0 {
			t.Errorf("%s: dst not empty after error: %+v", dev, p)
		}
	}
	if st := s.Stats(); st.Errors != uint64(len(cases)) {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAerospikeTTL(t *testing.T) {
	srv := aerotest.New(t)
	raw := rawClient(t, srv)
	ctx := ctxFor(t, 5*time.Second)

	s := openAero(t, srv, "?ttl=1h")
	if err := s.PutProfile(ctx, "a", &Profile{}); err != nil {
		t.Fatal(err)
	}
	if err := s.IncrementCap(ctx, "b", "c", 60, 120); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"a", "b"} {
		rec, err := raw.GetHeader(nil, rawKey(t, dev))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Expiration < 3500 || rec.Expiration > 3600 {
			t.Fatalf("%s: expiration %d, want about 3600", dev, rec.Expiration)
		}
	}
	never := openAero(t, srv, "?ttl=-1")
	if err := never.PutProfile(ctx, "n", &Profile{}); err != nil {
		t.Fatal(err)
	}
	rec, err := raw.GetHeader(nil, rawKey(t, "n"))
	if err != nil || rec.Expiration != math.MaxUint32 {
		t.Fatalf("ttl=-1: %+v %v", rec, err)
	}
}

func TestAerospikeClosed(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	var p Profile
	if err := s.Get(context.Background(), "d", &p); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := s.IncrementCap(context.Background(), "d", "c", 60, 1); err == nil {
		t.Fatal("IncrementCap after Close succeeded")
	}
}

// TestAerospikeConcurrent runs reads and cap increments from many
// goroutines (use -race); server-side increments must not lose counts.
func TestAerospikeConcurrent(t *testing.T) {
	srv := aerotest.New(t)
	s := openAero(t, srv, "?max_conns=32&min_conns=4")
	ctx := ctxFor(t, 30*time.Second)
	const workers, perW = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p Profile
			for i := 0; i < perW; i++ {
				if err := s.IncrementCap(ctx, "dev", "c1", 3600, 1_700_000_000); err != nil {
					t.Error(err)
					return
				}
				if err := s.Get(ctx, "dev", &p); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var p Profile
	if err := s.Get(ctx, "dev", &p); err != nil {
		t.Fatal(err)
	}
	if got := p.CapCount("c1", 3600, 1_700_000_000); got != workers*perW {
		t.Fatalf("count = %d, want %d", got, workers*perW)
	}
}

func TestFillProfileForms(t *testing.T) {
	var p Profile
	err := fillProfile(as.BinMap{
		BinSegments: []any{"a"},
		BinApps:     []any{3, 1, 2, 1},
		BinCaps: map[any]any{
			"c1:0000000060": 4,
			"junk":          1,  // no window: skipped
			"c2:notanumber": 1,  // skipped
			"c3:0000000060": -3, // negative: clamped to 0
			7:               1,  // non-string key: skipped
		},
	}, &p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.InstalledApps, []uint64{1, 2, 3}) {
		t.Fatalf("apps not sorted/deduplicated: %v", p.InstalledApps)
	}
	if p.CapCount("c1", 60, 90) != 4 || p.CapCount("c3", 60, 90) != 0 || len(p.Caps) != 2 {
		t.Fatalf("caps = %+v", p.Caps)
	}
	p.Reset()
	if err := fillProfile(as.BinMap{BinCaps: []as.MapPair{{Key: "c:0000000120", Value: 2}}}, &p); err != nil {
		t.Fatal(err)
	}
	if p.CapCount("c", 60, 150) != 2 {
		t.Fatalf("ordered caps = %+v", p.Caps)
	}
}
