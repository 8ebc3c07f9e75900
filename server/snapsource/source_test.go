package snapsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/snapshot"
)

const nPlacements = 8

// build returns a valid snapshot whose placements "p-<i>" all belong to the
// app "app-<version>", so a lookup proves which mapping answered.
func build(tb testing.TB, version string, created int64) []byte {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	var st snapshot.StringTable
	var pool snapshot.U32Pool
	ref := func(s string) snapshot.StrRef {
		r, err := st.Add(s)
		must(err)
		return r
	}
	var adv, cat, seg, pls, keys []byte
	a := ref("adv")
	adv = snapshot.AppendRef(adv, a.Off, a.Len)
	c := ref("IAB1")
	cat = snapshot.AppendRef(cat, c.Off, c.Len)
	g := ref("seg")
	seg = snapshot.AppendRef(seg, g.Off, g.Len)
	app := ref("app-" + version)
	ids := make([]string, nPlacements)
	for i := range ids {
		ids[i] = fmt.Sprintf("p-%d", i)
		blocked, err := pool.Add([]uint32{0})
		must(err)
		pls = snapshot.AppendPlacement(pls, &snapshot.Placement{ID: ref(ids[i]), App: app, Formats: 1 << snapshot.FormatBanner, BlockedAdvertisers: blocked})
	}
	for range snapshot.NumKeys {
		keys = snapshot.AppendRef(keys, 0, 0)
	}
	var out bytes.Buffer
	w, err := snapshot.NewWriter(&out, snapshot.Header{Created: created, ContentHash: 1, Version: version})
	must(err)
	must(w.WriteSection(snapshot.SecStrings, 0, st.Bytes()))
	must(w.WriteSection(snapshot.SecU32Pool, 4, pool.Bytes()))
	must(w.WriteSection(snapshot.SecAdvertisers, snapshot.RefSize, adv))
	must(w.WriteSection(snapshot.SecCategories, snapshot.RefSize, cat))
	must(w.WriteSection(snapshot.SecSegments, snapshot.RefSize, seg))
	must(w.WriteSection(snapshot.SecCampaigns, snapshot.CampaignSize, nil))
	must(w.WriteSection(snapshot.SecCreatives, snapshot.CreativeSize, nil))
	must(w.WriteSection(snapshot.SecPlacements, snapshot.PlacementSize, pls))
	must(w.WriteSection(snapshot.SecPlacementIndex, snapshot.SlotSize, snapshot.BuildPlacementIndex(ids)))
	must(w.WriteSection(snapshot.SecCandidateIndex, snapshot.RefSize, keys))
	must(w.WriteSection(snapshot.SecCandidates, snapshot.CandidateSize, nil))
	must(w.WriteSection(snapshot.SecExperiments, 0, []byte(`{"id":"e","salt":"s","tests":[]}`)))
	_, err = w.Close()
	must(err)
	return out.Bytes()
}

// publish writes b as dir/name the way the builder does: temp file, rename.
func publish(tb testing.TB, dir, name string, b []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := atomicfile.WriteBytes(path, b); err != nil {
		tb.Fatal(err)
	}
	return path
}

func writeGood(tb testing.TB, dir, version string, created int64) string {
	return publish(tb, dir, version+".snap", build(tb, version, created))
}

// writeCorrupt publishes a snapshot with an intact header (so it sorts as
// newest) but one flipped byte in a section.
func writeCorrupt(tb testing.TB, dir, version string, created int64) string {
	b := build(tb, version, created)
	b[snapshot.HeaderSize+3] ^= 0xff
	return publish(tb, dir, version+".snap", b)
}

// age backdates path past the settle window, like a file that arrived a
// while ago.
func age(tb testing.TB, paths ...string) {
	tb.Helper()
	old := time.Now().Add(-time.Hour)
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			tb.Fatal(err)
		}
	}
}

func ver(i int) string { return fmt.Sprintf("20270101T000000Z-%08x", i) }

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func closed(sn *Snap) bool {
	select {
	case <-sn.done:
		return true
	default:
		return false
	}
}

// check reads from sn's mapping and fails if it is not sn's own live data.
func check(sn *Snap, placement int) error {
	if closed(sn) {
		return fmt.Errorf("snap %s unmapped while referenced", sn.Version)
	}
	if h := sn.R.Header(); h.Version != sn.Version {
		return fmt.Errorf("header version %q, snap %q", h.Version, sn.Version)
	}
	idx, ok := sn.R.LookupPlacement(fmt.Sprintf("p-%d", placement))
	if !ok {
		return fmt.Errorf("%s: placement p-%d missing", sn.Version, placement)
	}
	p, _ := sn.R.Placement(idx)
	if got := sn.R.String(p.App); got != "app-"+sn.Version {
		return fmt.Errorf("%s: app string %q", sn.Version, got)
	}
	return nil
}

func currentVersion(s *Source) string {
	sn := s.Acquire()
	if sn == nil {
		return ""
	}
	defer sn.Release()
	return sn.Version
}

func newSource(tb testing.TB, opts Options) *Source {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func runSource(tb testing.TB, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
}

func TestStartupPicksNewestGood(t *testing.T) {
	dir := t.TempDir()
	writeGood(t, dir, ver(1), 100)
	writeGood(t, dir, ver(0xa), 200)
	want := writeGood(t, dir, ver(0xb), 200)   // same Created, greater Version
	writeGood(t, dir, "zzzzzzzz", 150)         // greater Version, older Created
	bad := writeCorrupt(t, dir, ver(0xc), 300) // newest by header, broken
	if err := os.WriteFile(filepath.Join(dir, "junk.snap"), []byte("not a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	publish(t, dir, ".hidden.snap", build(t, ver(0xd), 900))
	if err := os.WriteFile(filepath.Join(dir, "x.snap.tmp-1"), build(t, ver(0xe), 900), 0o644); err != nil {
		t.Fatal(err)
	}
	writeGood(t, dir, ver(0xf), 900)
	if err := os.Rename(filepath.Join(dir, ver(0xf)+".snap"), filepath.Join(dir, ver(0xf)+".snap.old")); err != nil {
		t.Fatal(err)
	}

	var rejected []string
	var mu sync.Mutex
	s := newSource(t, Options{Dir: dir, OnReject: func(path string, err error) {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, filepath.Base(path))
	}})
	sn := s.Acquire()
	if sn == nil {
		t.Fatal("nothing loaded")
	}
	if sn.Path != want || sn.Version != ver(0xb) || !sn.Created.Equal(time.Unix(200, 0)) {
		t.Fatalf("loaded %s (%s, %v), want %s", sn.Path, sn.Version, sn.Created, want)
	}
	if err := check(sn, 3); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	st := s.Stats()
	if st.Rejected != 2 || st.Open != 1 || st.Swaps != 1 || st.Version != ver(0xb) {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(st.LastError, "checksum") {
		t.Fatalf("LastError %q", st.LastError)
	}
	mu.Lock()
	slices.Sort(rejected)
	if !slices.Equal(rejected, []string{ver(0xc) + ".snap", "junk.snap"}) {
		t.Fatalf("OnReject saw %v", rejected)
	}
	mu.Unlock()

	// An explicit reload reports the known-bad newer files again without
	// re-verifying them.
	opened := s.openedTotal.Load()
	swapped, err := s.Reload()
	if swapped || !errors.Is(err, snapshot.ErrChecksum) || !errors.Is(err, snapshot.ErrNotSnapshot) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Reload = %v, %v", swapped, err)
	}
	if s.openedTotal.Load() != opened || s.Stats().Rejected != 2 {
		t.Fatal("Reload retried files already rejected")
	}
}

func TestEmptyDirThenFileAppears(t *testing.T) {
	dir := t.TempDir()
	var swaps atomic.Int32
	s := newSource(t, Options{Dir: dir, Poll: 20 * time.Millisecond, OnSwap: func(old, new string) {
		if old == "" && new == ver(1) {
			swaps.Add(1)
		}
	}})
	if sn := s.Acquire(); sn != nil {
		t.Fatalf("empty dir served %s", sn.Version)
	}
	if st := s.Stats(); st.Version != "" || st.Open != 0 || st.Swaps != 0 || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
	runSource(t, s)
	writeGood(t, dir, ver(1), 1)
	waitFor(t, "first snapshot", func() bool { return currentVersion(s) == ver(1) })
	// OnSwap runs after the swap is published (outside the source's lock),
	// so a request can see v1 a moment before the hook has run: poll.
	waitFor(t, "OnSwap(\"\", v1)", func() bool { return swaps.Load() >= 1 })
	if swaps.Load() != 1 {
		t.Fatalf("OnSwap(\"\", v1) called %d times", swaps.Load())
	}
}

func TestNewRefusesMissingDir(t *testing.T) {
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "nope")}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("empty Dir accepted")
	}
}

// TestRunPicksUpRenamedFile checks both wake-ups: polling alone (two equal
// polls make a fresh file eligible) and inotify with a poll too slow to matter.
func TestRunPicksUpRenamedFile(t *testing.T) {
	for _, mode := range []string{"poll", "inotify"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "inotify" && runtime.GOOS != "linux" {
				t.Skip("inotify is Linux only")
			}
			dir := t.TempDir()
			age(t, writeGood(t, dir, ver(1), 1))
			opts := Options{Dir: dir, Poll: 20 * time.Millisecond}
			if mode == "inotify" {
				opts.Poll = time.Hour
			}
			var swapped atomic.Value
			opts.OnSwap = func(old, new string) { swapped.Store(old + ">" + new) }
			s := newSource(t, opts)
			watching := make(chan error, 1)
			s.watch = func(dir string, notify func(string)) (io.Closer, error) {
				if mode == "poll" {
					watching <- nil
					return nil, errors.New("disabled by the test")
				}
				c, err := startWatch(dir, notify)
				watching <- err
				return c, err
			}
			runSource(t, s)
			if err := <-watching; err != nil {
				t.Fatal(err)
			}
			writeGood(t, dir, ver(2), 2)
			waitFor(t, "new snapshot", func() bool { return currentVersion(s) == ver(2) })
			// OnSwap runs just after the swap is published: poll for it.
			waitFor(t, "OnSwap(v1, v2)", func() bool { return swapped.Load() == ver(1)+">"+ver(2) })
			waitFor(t, "old mapping closed", func() bool { return s.Stats().Open == 1 })
		})
	}
}

func TestBadFileRejectedNotRetried(t *testing.T) {
	dir := t.TempDir()
	age(t, writeGood(t, dir, ver(1), 1))
	var rejectErr atomic.Value
	s := newSource(t, Options{Dir: dir, Poll: 20 * time.Millisecond, OnReject: func(path string, err error) {
		rejectErr.Store(err)
	}})
	runSource(t, s)
	bad := writeCorrupt(t, dir, ver(2), 2)
	waitFor(t, "rejection", func() bool { return s.Stats().Rejected == 1 })
	if err, _ := rejectErr.Load().(error); !errors.Is(err, snapshot.ErrChecksum) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("OnReject err %v", err)
	}
	st := s.Stats()
	if st.Version != ver(1) || !strings.Contains(st.LastError, "checksum") || st.LastErrorAt.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	opened, scans := s.openedTotal.Load(), s.scans.Load()
	waitFor(t, "five more polls", func() bool { return s.scans.Load() >= scans+5 })
	if s.openedTotal.Load() != opened || s.Stats().Rejected != 1 {
		t.Fatalf("rejected file retried: opens %d -> %d", opened, s.openedTotal.Load())
	}
	if err := check(mustAcquire(t, s), 1); err != nil {
		t.Fatal(err)
	}

	// A fixed file under the same name is a new (name, size, mtime): retried.
	writeGood(t, dir, ver(2), 2)
	waitFor(t, "fixed file", func() bool { return currentVersion(s) == ver(2) })
	if s.Stats().Rejected != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

// mustAcquire returns the current snap, released at the end of the test.
func mustAcquire(tb testing.TB, s *Source) *Snap {
	tb.Helper()
	sn := s.Acquire()
	if sn == nil {
		tb.Fatal("no snapshot")
	}
	tb.Cleanup(sn.Release)
	return sn
}

func TestHeldReferenceSurvivesSwap(t *testing.T) {
	dir := t.TempDir()
	writeGood(t, dir, ver(1), 1)
	s := newSource(t, Options{Dir: dir})
	old := s.Acquire()
	if old == nil || old.Version != ver(1) {
		t.Fatalf("got %v", old)
	}
	writeGood(t, dir, ver(2), 2)
	if swapped, err := s.Reload(); !swapped || err != nil {
		t.Fatalf("Reload = %v, %v", swapped, err)
	}
	if got := currentVersion(s); got != ver(2) {
		t.Fatalf("serving %s after swap", got)
	}
	// The old mapping is still there and still old.
	if st := s.Stats(); st.Open != 2 || st.Version != ver(2) || st.Swaps != 2 {
		t.Fatalf("stats %+v", st)
	}
	for i := range nPlacements {
		if err := check(old, i); err != nil {
			t.Fatal(err)
		}
	}
	old.Release()
	select {
	case <-old.done:
	case <-time.After(10 * time.Second):
		t.Fatal("old snapshot not unmapped after the last release")
	}
	if st := s.Stats(); st.Open != 1 {
		t.Fatalf("Open = %d", st.Open)
	}

	// With no request holding it, a swapped-out snapshot is unmapped at once.
	prev := s.Acquire()
	prev.Release()
	writeGood(t, dir, ver(3), 3)
	if swapped, err := s.Reload(); !swapped || err != nil {
		t.Fatalf("Reload = %v, %v", swapped, err)
	}
	if !closed(prev) || s.Stats().Open != 1 {
		t.Fatalf("unheld old snapshot still mapped (open %d)", s.Stats().Open)
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	dir := t.TempDir()
	writeGood(t, dir, ver(1), 1)
	s := newSource(t, Options{Dir: dir})
	sn := s.Acquire()
	_ = s.Close()
	sn.Release() // the last reference: unmaps
	waitFor(t, "unmap", func() bool { return closed(sn) })
	defer func() {
		if recover() == nil {
			t.Fatal("second Release did not panic")
		}
	}()
	sn.Release()
}

func TestConcurrentAcquireDuringSwaps(t *testing.T) {
	const swaps = 50
	dir := t.TempDir()
	writeGood(t, dir, ver(0), 0)
	s := newSource(t, Options{Dir: dir})
	images := make([][]byte, swaps+1)
	for i := 1; i <= swaps; i++ {
		images[i] = build(t, ver(i), int64(i))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acquired, stale atomic.Int64
	errc := make(chan error, 1)
	for g := range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sn := s.Acquire()
				if sn == nil {
					select {
					case errc <- errors.New("Acquire returned nil while a snapshot was loaded"):
					default:
					}
					return
				}
				err := check(sn, (g+i)%nPlacements)
				if i%16 == 0 {
					runtime.Gosched() // hold the reference across a likely swap
					if err == nil {
						err = check(sn, i%nPlacements)
					}
				}
				if s.cur.Load() != sn {
					stale.Add(1) // read an old mapping after it was swapped out
				}
				sn.Release()
				acquired.Add(1)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		})
	}
	for i := 1; i <= swaps; i++ {
		publish(t, dir, ver(i)+".snap", images[i])
		if swapped, err := s.Reload(); !swapped || err != nil {
			t.Fatalf("swap %d: %v, %v", i, swapped, err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if acquired.Load() == 0 {
		t.Fatal("no acquisitions happened")
	}
	waitFor(t, "old mappings to close", func() bool { return s.Stats().Open == 1 })
	if st := s.Stats(); st.Swaps != swaps+1 || st.Version != ver(swaps) {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%d acquisitions during %d swaps, %d still reading a swapped-out snapshot", acquired.Load(), swaps, stale.Load())

	// Close drops the last mapping; a held one survives until released.
	held := s.Acquire()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Acquire() != nil {
		t.Fatal("Acquire after Close returned a snapshot")
	}
	if err := check(held, 0); err != nil {
		t.Fatal(err)
	}
	held.Release()
	waitFor(t, "last mapping closed", func() bool { return s.Stats().Open == 0 })
	if _, err := s.Reload(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reload after Close: %v", err)
	}
}

func TestRunStopsOnClose(t *testing.T) {
	s := newSource(t, Options{Dir: t.TempDir(), Poll: time.Hour})
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	_ = s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	p := map[int]string{}
	p[1] = writeGood(t, dir, ver(1), 1)
	age(t, p[1])
	s := newSource(t, Options{Dir: dir})
	held := s.Acquire() // a request still reading v1

	p[2] = writeGood(t, dir, ver(2), 2)
	age(t, p[2])
	if swapped, _ := s.Reload(); !swapped {
		t.Fatal("v2 not loaded")
	}
	// v3..v5 arrived but are not loaded yet: v2 is in use, v1 held.
	for i := 3; i <= 5; i++ {
		p[i] = writeGood(t, dir, ver(i), int64(i))
		age(t, p[i])
	}
	junk := filepath.Join(dir, "junk.snap")
	tmp := filepath.Join(dir, ".x.snap.tmp-1")
	for _, f := range []string{junk, tmp} {
		if err := os.WriteFile(f, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
		age(t, f)
	}
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	expect := func(removed []string, err error, want ...string) {
		t.Helper()
		slices.Sort(removed)
		slices.Sort(want)
		if err != nil || !slices.Equal(removed, want) {
			t.Fatalf("Prune removed %v, %v; want %v", removed, err, want)
		}
		for _, f := range want {
			if exists(f) {
				t.Fatalf("%s still exists", f)
			}
		}
	}

	removed, err := s.Prune(2)
	expect(removed, err, p[3]) // keeps v5, v4 (newest), v2 (in use), v1 (held)

	// A corrupt newest file is rejected and not counted towards keep.
	bad := writeCorrupt(t, dir, ver(6), 6)
	age(t, bad)
	if swapped, err := s.Reload(); !swapped || !errors.Is(err, snapshot.ErrChecksum) || currentVersion(s) != ver(5) {
		t.Fatalf("Reload = %v, %v, serving %s", swapped, err, currentVersion(s))
	}
	removed, err = s.Prune(1)
	expect(removed, err, p[4], p[2]) // v1 still held
	if !exists(p[1]) || !exists(p[5]) || !exists(bad) || !exists(junk) || !exists(tmp) {
		t.Fatal("Prune removed a file it must keep")
	}

	// Once released, v1 goes; a fresh (maybe half-written) file never does.
	fresh := writeGood(t, dir, ver(0), 0)
	held.Release()
	waitFor(t, "v1 unmapped", func() bool { return closed(held) })
	removed, err = s.Prune(1)
	expect(removed, err, p[1])
	if !exists(fresh) || !exists(p[5]) {
		t.Fatal("Prune removed the fresh or the current file")
	}
	if _, err := s.Prune(0); err == nil {
		t.Fatal("Prune(0) accepted")
	}
	if err := check(mustAcquire(t, s), 2); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireReleaseAllocFree(t *testing.T) {
	dir := t.TempDir()
	writeGood(t, dir, ver(1), 1)
	s := newSource(t, Options{Dir: dir})
	if n := testing.AllocsPerRun(1000, func() { s.Acquire().Release() }); n != 0 {
		t.Fatalf("Acquire+Release allocates %.1f times", n)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	dir := b.TempDir()
	writeGood(b, dir, ver(1), 1)
	s := newSource(b, Options{Dir: dir})
	b.ReportAllocs()
	for b.Loop() {
		s.Acquire().Release()
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	dir := b.TempDir()
	writeGood(b, dir, ver(1), 1)
	s := newSource(b, Options{Dir: dir})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Acquire().Release()
		}
	})
}
