package fetch

import (
	"context"
	"crypto/ed25519"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/publish"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/snapshot/manifestsig"
	"github.com/adedge/adedge/tools/gen"
)

// The tests run a real builder (publish.Publisher: builds, torrents,
// tracker, web seed, signed manifests) and real edges (snapsource + Fetcher)
// in one process, each on its own 127.0.0.x address: BitTorrent bans are per
// IP, and distinct addresses are how separate machines look on loopback.

var (
	invOnce sync.Once
	invDir  string
	invErr  error
	testKey = ed25519.NewKeyFromSeed([]byte("adedge fetch test key seed 32 b."))
	testPub = testKey.Public().(ed25519.PublicKey)
)

// inventory is a synthetic inventory whose snapshot is about 5 MB: several
// hundred 16 KiB..64 KiB pieces, enough for swarming to matter.
func inventory(t *testing.T) string {
	t.Helper()
	invOnce.Do(func() {
		invDir, invErr = os.MkdirTemp("", "adedge-fetch-inv-")
		if invErr != nil {
			return
		}
		sc := gen.Scales["small"]
		sc.Campaigns, sc.Creatives, sc.Placements, sc.Profiles = 3000, 15000, 8000, 10
		_, invErr = gen.Generate(invDir, sc, 1, nil)
	})
	if invErr != nil {
		t.Fatal(invErr)
	}
	return invDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if invDir != "" {
		os.RemoveAll(invDir)
	}
	os.Exit(code)
}

type testBuilder struct {
	p    *publish.Publisher
	srv  *http.Server
	url  string // public base URL
	once sync.Once
}

// startBuilder builds the inventory once and serves it; version is staging
// and production.
func startBuilder(t *testing.T, ip string, rate int64, created time.Time, wrap func(http.Handler) http.Handler) (*testBuilder, string) {
	t.Helper()
	return startBuilderWith(t, ip, func(o *publish.Options) { o.UploadRate, o.Created = rate, created }, wrap)
}

func startBuilderWith(t *testing.T, ip string, mod func(*publish.Options), wrap func(http.Handler) http.Handler) (*testBuilder, string) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	o := publish.Options{
		Input: inventory(t), Data: t.TempDir(), Key: testKey, PublicURL: "http://" + ln.Addr().String(),
		BindIP: ip, PieceLength: 64 << 10, Poll: time.Hour,
	}
	mod(&o)
	p, err := publish.New(o)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Promote(v); err != nil {
		t.Fatal(err)
	}
	h := p.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	b := &testBuilder{p: p, srv: &http.Server{Handler: h}, url: "http://" + ln.Addr().String()}
	go b.srv.Serve(ln)
	t.Cleanup(b.stop)
	return b, v
}

// stop kills the builder: HTTP (manifests, tracker, web seed) and seeding.
func (b *testBuilder) stop() {
	b.once.Do(func() {
		b.srv.Close()
		b.p.Close()
	})
}

type testEdge struct {
	f      *Fetcher
	src    *snapsource.Source
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// startEdge runs an edge on dir (which may already hold snapshots).
func startEdge(t *testing.T, ip, dir, manifestURL string, mod func(*Options)) *testEdge {
	t.Helper()
	src, err := snapsource.New(snapsource.Options{Dir: dir, Poll: time.Hour, Pin: PinnedVersion(dir)})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		ManifestURL: manifestURL + "/v1/manifest", Channel: manifestsig.Production, PubKey: testPub,
		SnapshotDir: dir, Snapshots: FromSource(src), Poll: 200 * time.Millisecond, StallTimeout: time.Minute,
		BindIP: ip, Log: func(ev string, kv ...any) { t.Log(append([]any{ip, ev}, kv...)...) },
	}
	if mod != nil {
		mod(&o)
	}
	f, err := New(o)
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEdge{f: f, src: src, dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() { f.Run(ctx); close(e.done) }()
	t.Cleanup(e.stop)
	return e
}

func (e *testEdge) stop() {
	e.once.Do(func() {
		e.cancel()
		<-e.done
		e.f.Close()
		e.src.Close()
	})
}

func (e *testEdge) serving() string { return e.src.Stats().Version }

// oldSnapshot builds the inventory with an earlier data time straight into
// dir: what the edge served before the new version.
func oldSnapshot(t *testing.T, dir string) string {
	t.Helper()
	r, err := builder.Build(builder.Options{Input: inventory(t), Out: dir, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(r.Path, old, old)
	return r.Manifest.Version
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func snapPath(dir, v string) string { return filepath.Join(dir, v+".snap") }

var newCreated = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
