package publish

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adedge/adedge/snapshot/manifestsig"
	"github.com/adedge/adedge/tools/gen"
)

var key = ed25519.NewKeyFromSeed([]byte("adedge publish test key seed 32b"))

func newPublisher(t *testing.T, input, data string, keep int) *Publisher {
	t.Helper()
	p, err := New(Options{Input: input, Data: data, Key: key, PublicURL: "http://127.0.0.1:1", Keep: keep, BindIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func touch(t *testing.T, dir string, at time.Time) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if err := os.Chtimes(filepath.Join(dir, e.Name()), at, at); err != nil {
			t.Fatal(err)
		}
	}
}

func manifestOf(t *testing.T, h http.Handler, ch string) (*manifestsig.Payload, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/manifest?channel="+ch, nil))
	if rec.Code != 200 {
		return nil, rec.Code
	}
	p, err := manifestsig.Verify(key.Public().(ed25519.PublicKey), rec.Body.Bytes(), ch)
	if err != nil {
		t.Fatal(err)
	}
	return p, 200
}

// TestChannels: builds go to staging, promote and rollback move production,
// every change re-signs with a higher seq, pruning keeps what channels and
// rollback need, and a restarted builder serves the same channels.
func TestChannels(t *testing.T) {
	input := t.TempDir()
	if _, err := gen.Generate(input, gen.Scales["small"], 3, nil); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	p := newPublisher(t, input, data, 1)
	h := p.Handler()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	touch(t, input, t0)
	v1, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, code := manifestOf(t, h, "production"); code != 404 {
		t.Fatalf("production before any promote: %d", code)
	}
	if _, code := manifestOf(t, h, "prod"); code != 400 {
		t.Fatalf("unknown channel: %d", code)
	}
	st, _ := manifestOf(t, h, "staging")
	if st.Version != v1 {
		t.Fatalf("staging %s, want %s", st.Version, v1)
	}
	if err := p.Promote("nope"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("promote unknown: %v", err)
	}
	if err := p.Promote(v1); err != nil {
		t.Fatal(err)
	}
	pr, _ := manifestOf(t, h, "production")
	if pr.Version != v1 || pr.Seq <= st.Seq {
		t.Fatalf("production %s seq %d (staging seq was %d)", pr.Version, pr.Seq, st.Seq)
	}
	touch(t, input, t0.Add(time.Hour))
	v2, err := p.Build()
	if err != nil || v2 == v1 {
		t.Fatalf("second build %s: %v", v2, err)
	}
	if err := p.Promote(v2); err != nil {
		t.Fatal(err)
	}
	// Keep=1, yet v1 stays: it is production's rollback target.
	if _, err := os.Stat(filepath.Join(data, "snapshots", v1+".snap")); err != nil {
		t.Fatalf("rollback target pruned: %v", err)
	}
	if v, err := p.Rollback(); err != nil || v != v1 {
		t.Fatalf("rollback: %s %v", v, err)
	}
	if _, err := p.Rollback(); err == nil {
		t.Fatal("rolled back past the first version")
	}
	pr2, _ := manifestOf(t, h, "production")
	if pr2.Version != v1 || pr2.Seq <= pr.Seq {
		t.Fatalf("after rollback: %s seq %d", pr2.Version, pr2.Seq)
	}
	// A third build: v2 is neither a channel's version nor the rollback
	// target any more, so Keep=1 prunes it.
	touch(t, input, t0.Add(2*time.Hour))
	v3, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "snapshots", v2+".snap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s not pruned: %v", v2, err)
	}
	// The web seed serves ranges and counts them.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/webseed/"+v3+".snap", nil)
	req.Header.Set("Range", "bytes=0-99")
	h.ServeHTTP(rec, req)
	if b, _ := io.ReadAll(rec.Body); rec.Code != 206 || len(b) != 100 || p.WebSeedBytes() != 100 {
		t.Fatalf("web seed range: %d, %d bytes, counted %d", rec.Code, len(b), p.WebSeedBytes())
	}
	for _, path := range []string{"/v1/webseed/" + v2 + ".snap", "/v1/torrent/" + v2 + ".torrent", "/v1/webseed/..%2fchannels.json"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 404 {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
	p.Close()

	// Restarted on the same data: same channels, seeding again.
	p2 := newPublisher(t, input, data, 1)
	defer p2.Close()
	s := p2.Status()
	if s.Staging != v3 || s.Production != v1 {
		t.Fatalf("after restart: %+v", s)
	}
	pr3, _ := manifestOf(t, p2.Handler(), "production")
	if pr3.Version != v1 || pr3.Seq <= pr2.Seq {
		t.Fatalf("after restart: production %s seq %d", pr3.Version, pr3.Seq)
	}
	if p2.lastPrint == "" || p2.lastPrint != fingerprint(input) {
		t.Fatal("a restart would rebuild unchanged inputs")
	}
}

// TestBadInventoryPublishesNothing: a refused build leaves the channels as
// they were.
func TestBadInventoryPublishesNothing(t *testing.T) {
	input := t.TempDir()
	if _, err := gen.Generate(input, gen.Scales["small"], 4, nil); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, input, t.TempDir(), 3)
	defer p.Close()
	v1, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(input, "campaigns.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"id\":\"broken\n")
	f.Close()
	if _, err := p.Build(); err == nil {
		t.Fatal("a broken inventory was built")
	}
	if s := p.Status(); s.Staging != v1 || s.LastError == "" || len(s.Versions) != 1 {
		t.Fatalf("status after a refused build: %+v", s)
	}
}

func TestParseRateFlag(t *testing.T) {
	// ParseRate lives in distrib; the builder relies on these forms.
	for in, want := range map[string]int64{"0": 0, "50M": 50e6, "50MB/s": 50e6, "32Mi": 32 << 20, "1.5G": 15e8, "100k": 1e5} {
		got, err := parseRateForTest(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	if _, err := parseRateForTest("fast"); err == nil {
		t.Error("junk rate accepted")
	}
}

// TestOriginInTrackerAtOnce: the builder's own announce of a new build is
// accepted, so edges find the origin in the swarm at once (it used to be
// refused as unknown, leaving the origin out for the library's next
// announce, a minute later).
func TestOriginInTrackerAtOnce(t *testing.T) {
	input := t.TempDir()
	if _, err := gen.Generate(input, gen.Scales["small"], 5, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Input: input, Data: t.TempDir(), Key: key, PublicURL: "http://" + ln.Addr().String(), BindIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	v, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	ih := p.infoHash[v]
	p.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for p.tracker.Peers(ih) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the origin is not in its own tracker 5 s after the build")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
