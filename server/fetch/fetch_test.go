package fetch

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/adedge/adedge/builder/publish"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/snapshot/manifestsig"
)

// TestTransferToTwoEdges: a builder seeds a ~5 MB snapshot; two edges fetch
// it over BitTorrent, verify it, swap it in and seed it on.
func TestTransferToTwoEdges(t *testing.T) {
	b, v := startBuilder(t, "127.0.0.11", 0, newCreated, nil)
	// Edge 1 had an older snapshot and keeps one: once the new one serves,
	// the old file goes.
	dir1 := t.TempDir()
	old := oldSnapshot(t, dir1)
	e1 := startEdge(t, "127.0.0.12", dir1, b.url, func(o *Options) { o.Keep = 1 })
	e2 := startEdge(t, "127.0.0.13", t.TempDir(), b.url, nil)
	waitUntil(t, 60*time.Second, "both edges serving "+v, func() bool { return e1.serving() == v && e2.serving() == v })
	for _, e := range []*testEdge{e1, e2} {
		st := e.f.Status()
		if st.State != Idle || st.LastError != "" {
			t.Errorf("%s: status %+v", e.dir, st)
		}
		tot := e.f.Totals()
		if tot.WebSeedDown != 0 {
			t.Errorf("web seed used with a healthy swarm: %d bytes", tot.WebSeedDown)
		}
		if _, err := os.Stat(snapPath(e.dir, v)); err != nil {
			t.Error(err)
		}
		// Progress shows in /health's distribution member, as JSON.
		body := append([]byte("{\"x\":1"), e.f.AppendHealthJSON(nil)...)
		body = append(body, '}')
		if !json.Valid(body) || !bytes.Contains(body, []byte(`"state":"idle"`)) {
			t.Errorf("health JSON %s", body)
		}
	}
	// Pruning follows the swap (the fetcher prunes once the source serves
	// the new version), so it is polled for, not expected at once.
	pruned := func() bool { _, err := os.Stat(snapPath(dir1, old)); return errors.Is(err, os.ErrNotExist) }
	waitUntil(t, 20*time.Second, "old snapshot pruned with keep=1", pruned)
	fi, _ := os.Stat(snapPath(e1.dir, v))
	down := e1.f.Totals().TorrentDown + e2.f.Totals().TorrentDown
	if down < 2*fi.Size() {
		t.Errorf("edges downloaded %d bytes over BitTorrent, want >= 2 x %d", down, fi.Size())
	}
	// The metrics carry both paths.
	reg := prometheus.NewRegistry()
	reg.MustRegister(e1.f.Collector())
	if n, err := testutil.GatherAndCount(reg, "adedge_distribution_bytes_total"); err != nil || n != 4 {
		t.Errorf("distribution byte series: %d, %v", n, err)
	}
	t.Logf("file %d bytes; builder uploaded %d; edges uploaded %d and %d", fi.Size(), b.p.Totals().TorrentUp, e1.f.Totals().TorrentUp, e2.f.Totals().TorrentUp)
}

// TestBadSignatureRefused: a manifest signed with another key is refused,
// nothing is downloaded, the old snapshot keeps serving, and the refusal
// shows in status and metrics.
func TestBadSignatureRefused(t *testing.T) {
	_, otherPriv, _ := manifestsig.GenerateKey()
	b, _ := startBuilder(t, "127.0.0.14", 0, newCreated, resigned(t, otherPriv, func(*manifestsig.Payload) {}, nil))
	dir := t.TempDir()
	old := oldSnapshot(t, dir)
	e := startEdge(t, "127.0.0.15", dir, b.url, nil)
	waitUntil(t, 10*time.Second, "a refusal", func() bool { return e.f.refused.Load() >= 2 })
	st := e.f.Status()
	if !strings.Contains(st.LastError, "bad signature") || st.Target != "" {
		t.Fatalf("status %+v", st)
	}
	if e.serving() != old {
		t.Fatalf("serving %q, want the old %q", e.serving(), old)
	}
	if tot := e.f.Totals(); tot.TorrentDown+tot.WebSeedDown != 0 {
		t.Fatalf("downloaded %+v after a refused manifest", tot)
	}
	if !bytes.Contains(e.f.AppendHealthJSON(nil), []byte("bad signature")) {
		t.Fatal("/health does not show the refusal")
	}
}

// resigned wraps the builder's handler: every manifest it serves is the
// real one changed by edit and signed with key; polls (if set) counts the
// manifests served.
func resigned(t *testing.T, key ed25519.PrivateKey, edit func(*manifestsig.Payload), polls *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/manifest" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			p := payloadOf(t, rec.Body.Bytes())
			edit(p)
			env, err := manifestsig.Sign(key, p)
			if err != nil {
				t.Error(err)
			}
			if polls != nil {
				polls.Add(1)
			}
			w.Write(env)
		})
	}
}

// payloadOf decodes an envelope's payload without checking it.
func payloadOf(t *testing.T, env []byte) *manifestsig.Payload {
	t.Helper()
	var e manifestsig.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	body, _ := base64.StdEncoding.DecodeString(e.Signed)
	var p manifestsig.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestXXHashMismatchRefused: a validly signed manifest whose xxhash64 does not
// match the file (every piece passes its SHA-1): the file is discarded, never
// renamed into the snapshot directory, and the old snapshot keeps serving.
func TestXXHashMismatchRefused(t *testing.T) {
	var polls atomic.Int64
	b, v := startBuilder(t, "127.0.0.16", 0, newCreated, resigned(t, testKey, func(p *manifestsig.Payload) { p.XXHash64 = "00000000deadbeef" }, &polls))
	dir := t.TempDir()
	old := oldSnapshot(t, dir)
	e := startEdge(t, "127.0.0.17", dir, b.url, nil)
	waitUntil(t, 30*time.Second, "the mismatch", func() bool { return e.f.failures.Load() >= 1 })
	st := e.f.Status()
	if !strings.Contains(st.LastError, "xxhash64") {
		t.Fatalf("status %+v", st)
	}
	// Three more polls of the same manifest: it is not retried.
	after := polls.Load()
	waitUntil(t, 30*time.Second, "three more manifest polls", func() bool { return polls.Load() >= after+3 })
	if n := e.f.failures.Load(); n != 1 {
		t.Errorf("%d failures: the bad manifest was retried", n)
	}
	if e.serving() != old {
		t.Fatalf("serving %q, want the old %q", e.serving(), old)
	}
	if _, err := os.Stat(snapPath(dir, v)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the mismatching file reached the snapshot dir: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, ".dist", "incoming")); len(ents) != 0 {
		t.Errorf("incoming not cleaned: %v", ents)
	}
}

// TestBuilderKilledEdgesFinishFromEachOther: the builder dies once every
// piece has reached some edge; the edges complete from each other (the
// builder's tracker and web seed are gone too) and serve the snapshot.
func TestBuilderKilledEdgesFinishFromEachOther(t *testing.T) {
	// The builder feeds one edge (--max-peers 1); the second joins later and
	// can only fetch from the first, more slowly than the first fetches from
	// the builder, so when every piece is on some edge the second edge is
	// still missing many.
	b, v := startBuilderWith(t, "127.0.0.18", func(o *publish.Options) {
		o.UploadRate, o.Created, o.MaxPeers = 2<<20, newCreated, 1
	}, nil)
	slow := func(o *Options) { o.UploadRate = 1 << 20 }
	e1 := startEdge(t, "127.0.0.19", t.TempDir(), b.url, slow)
	waitUntil(t, 30*time.Second, "edge 1 downloading from the builder", func() bool {
		t1 := e1.f.currentTorrent()
		return t1 != nil && t1.BytesCompleted() > 0
	})
	e2 := startEdge(t, "127.0.0.20", t.TempDir(), b.url, slow)
	var killedAt [2]int64
	pieces := func(e *testEdge) (func(int) bool, int64, bool) {
		if tt := e.f.currentTorrent(); tt != nil {
			return tt.PieceComplete, tt.BytesCompleted(), true
		}
		if e.serving() == v {
			fi, _ := os.Stat(snapPath(e.dir, v))
			return func(int) bool { return true }, fi.Size(), true
		}
		return nil, 0, false
	}
	waitUntil(t, 60*time.Second, "every piece on some edge", func() bool {
		h1, n1, ok1 := pieces(e1)
		h2, n2, ok2 := pieces(e2)
		tt := e2.f.currentTorrent()
		if !ok1 || !ok2 || tt == nil {
			return false
		}
		for i := 0; i < tt.NumPieces(); i++ {
			if !h1(i) && !h2(i) {
				return false
			}
		}
		killedAt = [2]int64{n1, n2}
		return true
	})
	up := b.p.Totals().TorrentUp
	b.stop()
	t.Logf("builder killed after uploading %d bytes; edges had %d and %d", up, killedAt[0], killedAt[1])
	waitUntil(t, 60*time.Second, "both edges serving "+v, func() bool { return e1.serving() == v && e2.serving() == v })
	fi, _ := os.Stat(snapPath(e1.dir, v))
	if killedAt[1] == fi.Size() {
		t.Fatal("edge 2 was complete before the builder died: the test proved nothing")
	}
	if e1.f.Totals().WebSeedDown+e2.f.Totals().WebSeedDown != 0 {
		t.Fatal("web seed bytes with the builder dead")
	}
}

// TestRestartResumes: an edge stopped mid-download resumes from its
// recorded pieces instead of starting over.
func TestRestartResumes(t *testing.T) {
	b, v := startBuilder(t, "127.0.0.21", 2<<20, newCreated, nil)
	dir := t.TempDir()
	e := startEdge(t, "127.0.0.22", dir, b.url, nil)
	waitUntil(t, 30*time.Second, "a third of the file", func() bool {
		tt := e.f.currentTorrent()
		return tt != nil && tt.BytesCompleted() > tt.Length()/3
	})
	e.stop()
	pieces := filepath.Join(dir, ".dist", "incoming", v+".pieces")
	had := int64(0)
	if b, err := os.ReadFile(pieces); err == nil {
		had = int64(bytes.Count(b, []byte{1})) * 64 << 10
	}
	if had == 0 {
		t.Fatal("no pieces recorded before the restart")
	}
	e2 := startEdge(t, "127.0.0.22", dir, b.url, nil)
	waitUntil(t, 60*time.Second, "serving "+v, func() bool { return e2.serving() == v })
	fi, _ := os.Stat(snapPath(dir, v))
	got := e2.f.Totals().TorrentDown + e2.f.Totals().WebSeedDown
	if got > fi.Size()-had+256<<10 {
		t.Fatalf("after the restart fetched %d bytes; only %d of %d were missing", got, fi.Size()-had, fi.Size())
	}
	t.Logf("had %d of %d before the restart, fetched %d after", had, fi.Size(), got)
}

// TestDiskFull: the snapshot directory fills up mid-download. The old
// snapshot keeps serving and the error shows in status, /health and
// metrics. A real size-limited tmpfs is used when this process may mount
// one (root); otherwise writes fail through the storage's fault hook.
func TestDiskFull(t *testing.T) {
	b, _ := startBuilder(t, "127.0.0.23", 0, newCreated, nil)
	dir := t.TempDir()
	var hook func(off int64, n int) error
	err := errors.New("ADEDGE_TEST_NO_MOUNT is set")
	if os.Getenv("ADEDGE_TEST_NO_MOUNT") == "" {
		err = syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m")
	}
	if err != nil {
		t.Logf("cannot mount a tmpfs (%v): injecting ENOSPC through the storage write hook instead", err)
		hook = func(off int64, n int) error {
			if off > 1<<20 {
				return syscall.ENOSPC
			}
			return nil
		}
	} else {
		t.Logf("snapshot dir on a 8 MiB tmpfs")
		// Detached: a file the stopping edge still holds (a loaded machine
		// got there first once) made a plain unmount fail with EBUSY and
		// the temp dir's removal with it, as tmpfs.Mount already knows.
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	old := oldSnapshot(t, dir) // ~5 MB of the 8 MiB: the new one cannot fit
	e := startEdge(t, "127.0.0.24", dir, b.url, func(o *Options) { o.WriteHook = hook })
	// The write error is counted a moment before the status records it
	// (a loaded machine read the status in between): wait for both.
	waitUntil(t, 30*time.Second, "a write error counted and in the status", func() bool {
		return e.f.writeErr.Load() > 0 && strings.Contains(e.f.Status().LastError, "disk full")
	})
	if e.serving() != old {
		t.Fatalf("serving %q, want the old %q", e.serving(), old)
	}
	if !bytes.Contains(e.f.AppendHealthJSON(nil), []byte("disk full")) {
		t.Fatal("/health does not show the error")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.f.Collector())
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "adedge_distribution_write_errors_total" && mf.GetMetric()[0].GetCounter().GetValue() > 0 {
			found = true
		}
	}
	if !found {
		t.Fatal("write errors not in the metrics")
	}
	// The old snapshot is still readable and whole.
	r, err := snapshot.Open(snapPath(dir, old))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	e.stop() // close files before the tmpfs is unmounted
}

// TestWebSeedFallback: the swarm is unreachable (the tracker hands out no
// peers), so after the stall timeout the edge adds the builder's web seed and
// completes over HTTP.
func TestWebSeedFallback(t *testing.T) {
	b, v := startBuilder(t, "127.0.0.25", 0, newCreated, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/announce" {
				w.Write([]byte("d8:intervali60e5:peers0:e"))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	e := startEdge(t, "127.0.0.26", t.TempDir(), b.url, func(o *Options) { o.StallTimeout = 500 * time.Millisecond })
	waitUntil(t, 60*time.Second, "serving "+v+" via the web seed", func() bool { return e.serving() == v })
	fi, _ := os.Stat(snapPath(e.dir, v))
	tot := e.f.Totals()
	if tot.WebSeedDown < fi.Size() || tot.TorrentDown != 0 {
		t.Fatalf("web seed %d, torrent %d bytes for a %d-byte file", tot.WebSeedDown, tot.TorrentDown, fi.Size())
	}
	if up := b.p.WebSeedBytes(); up < fi.Size() {
		t.Fatalf("builder web seed counted %d bytes", up)
	}
}
