package abtraffic

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/health"
	"github.com/adedge/adedge/server/edge"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/tools/gen"
	"github.com/adedge/adedge/tools/promtext"
)

// realEdge serves the small generated inventory's snapshot with a real
// edge.Server (A/B counters on) on a loopback port; it returns the
// serving URL, the inventory directory and a scrape of the edge's metrics.
func realEdge(t *testing.T) (target, inv string, scrape func() promtext.Samples) {
	t.Helper()
	inv = inventory(t)
	snapDir := filepath.Join(t.TempDir(), "snap")
	if _, err := builder.Build(builder.Options{Input: inv, Out: snapDir, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	src, err := snapsource.New(snapsource.Options{Dir: snapDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	if _, err := src.Reload(); err != nil || src.Stats().Version == "" {
		t.Fatalf("snapshot not loaded: %v", err)
	}
	signer, err := token.NewSigner(token.GenerateKey(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target = "http://" + ln.Addr().String()
	m := edge.NewMetrics()
	ctr := abtest.NewCounters()
	m.Registry.MustRegister(ctr)
	srv := edge.New(edge.Config{PublicURL: target, Counters: ctr}, src, profiles.NewNone(), signer, m, nil, health.Config{Build: "test"})
	m.RegisterServerMetrics(srv, nil)
	// Run's client keeps its connections open and idle, which a plain
	// Shutdown can wait on for ever: close them after a moment.
	hs := &fasthttp.Server{Handler: srv.Handler, IdleTimeout: 100 * time.Millisecond}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.ShutdownWithContext(ctx)
	})
	admin := httptest.NewServer(edge.AdminHandler(m, src))
	t.Cleanup(admin.Close)
	return target, inv, func() promtext.Samples {
		t.Helper()
		s, err := promtext.Scrape(admin.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// inventory generates the small demo inventory.
func inventory(t *testing.T) string {
	t.Helper()
	inv := filepath.Join(t.TempDir(), "inv")
	if _, err := gen.Generate(inv, gen.Scales["small"], 7, nil); err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestRunCountsWhatTheEdgeSaw: every request, fill, impression and click
// Run reports is one the edge counted, per A/B bucket too; with
// ImpressionP 1 every fill fires its impression, and ClickP 0.5 clicks
// about half of them.
func TestRunCountsWhatTheEdgeSaw(t *testing.T) {
	target, inv, scrape := realEdge(t)
	res, err := Run(Options{Target: target, Inventory: inv, Requests: 600, Workers: 4, ImpressionP: 1, ClickP: 0.5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	m := scrape()
	if res.Requests != 600 || res.Errors != 0 || res.ByEnv["production"] != 600 {
		t.Fatalf("requests %d errors %d by env %v, want 600 answered by production", res.Requests, res.Errors, res.ByEnv)
	}
	if got := m.Sum("adedge_ad_requests_total"); got != 600 {
		t.Errorf("edge counted %v ad requests, Run sent 600", got)
	}
	if res.Fills == 0 || res.Fills == res.Requests {
		t.Fatalf("fills %d of %d: the mix should both fill and not", res.Fills, res.Requests)
	}
	if got := m.Sum("adedge_ad_requests_total", `outcome="filled"`); got != float64(res.Fills) {
		t.Errorf("edge filled %v, Run counted %d fills", got, res.Fills)
	}
	if res.Impressions != res.Fills {
		t.Errorf("impressions %d, want one per fill (%d) with ImpressionP 1", res.Impressions, res.Fills)
	}
	if got := m.Sum("adedge_impressions_total"); got != float64(res.Impressions) {
		t.Errorf("edge verified %v impressions, Run fired %d", got, res.Impressions)
	}
	if got := m.Sum("adedge_clicks_total"); got != float64(res.Clicks) {
		t.Errorf("edge verified %v clicks, Run fired %d", got, res.Clicks)
	}
	if share := float64(res.Clicks) / float64(res.Impressions); share < 0.35 || share > 0.65 {
		t.Errorf("clicks %d of %d impressions with ClickP 0.5", res.Clicks, res.Impressions)
	}
	var inBuckets int64
	for b, n := range res.ByBucket {
		inBuckets += n
		test, variant, _ := strings.Cut(b, "/")
		if got := m.Sum("adedge_ab_fills_total", fmt.Sprintf("test=%q", test), fmt.Sprintf("variant=%q", variant)); got != float64(n) {
			t.Errorf("bucket %s: edge counted %v fills, Run %d", b, got, n)
		}
	}
	if inBuckets != res.Fills {
		t.Errorf("fills by bucket %v sum to %d, want %d", res.ByBucket, inBuckets, res.Fills)
	}
}

// TestRunWithoutPixels: ImpressionP 0 fires nothing; the same seed asks
// for the same requests (the same fills).
func TestRunWithoutPixels(t *testing.T) {
	target, inv, scrape := realEdge(t)
	a, err := Run(Options{Target: target, Inventory: inv, Requests: 200, Workers: 2, ImpressionP: 0, ClickP: 1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(Options{Target: target, Inventory: inv, Requests: 200, Workers: 3, ImpressionP: 0, ClickP: 1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if a.Impressions != 0 || a.Clicks != 0 || scrape().Sum("adedge_impressions_total") != 0 {
		t.Errorf("impressions %d clicks %d with ImpressionP 0", a.Impressions, a.Clicks)
	}
	if a.Fills == 0 || a.Fills != b.Fills {
		t.Errorf("same seed: %d then %d fills", a.Fills, b.Fills)
	}
}

// TestRunAgainstNothing: a target that refuses connections is counted as
// errors, not a failure of Run; a missing inventory is Run's error.
func TestRunAgainstNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	res, err := Run(Options{Target: dead, Inventory: inventory(t), Requests: 20, Workers: 2, ImpressionP: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.Errors != 20 || res.Fills != 0 {
		t.Errorf("dead target: %v, want 20 requests, all errors", res)
	}
	if _, err := Run(Options{Target: dead, Inventory: filepath.Join(t.TempDir(), "missing"), Requests: 1}); err == nil {
		t.Error("a missing inventory was not an error")
	}
}
