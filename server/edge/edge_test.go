package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/server/adreq"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
	"github.com/adedge/adedge/tools/exptool"
)

func anyCampaign(*snapshot.Reader, *snapshot.Campaign) bool { return true }

// experimentID is the experiment set id the serving snapshot ships.
func (e *env) experimentID() string {
	e.t.Helper()
	snap := e.src.Acquire()
	defer snap.Release()
	var set struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(snap.R.ExperimentsJSON(), &set); err != nil {
		e.t.Fatal(err)
	}
	return set.ID
}

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkFill checks every field of a 200 against the snapshot, the query
// and the signer.
func checkFill(t *testing.T, e *env, r *resp, q adQuery, envName string) *adResponse {
	t.Helper()
	ad := decodeAd(t, r)
	if got := r.header["x-adedge-env"]; got != envName {
		t.Errorf("X-Adedge-Env = %q, want %q", got, envName)
	}
	if ct := r.header["content-type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !hex16.MatchString(ad.RequestID) {
		t.Errorf("request_id %q: want 16 hex digits", ad.RequestID)
	}
	if ad.Campaign != q.campaign {
		t.Errorf("campaign %q, want the selection's winner %q", ad.Campaign, q.campaign)
	}
	if crs := e.campaignCreatives(ad.Campaign); !slices.Contains(crs, ad.Creative.ID) {
		t.Errorf("creative %q is not one of campaign %s's %v", ad.Creative.ID, ad.Campaign, crs)
	}
	cr := e.creative(ad.Creative.ID)
	if ad.Creative.Format != cr.format || ad.Creative.Width != cr.width || ad.Creative.Height != cr.height || ad.Creative.AssetURL != cr.asset {
		t.Errorf("creative %+v, snapshot has %+v", ad.Creative, cr)
	}
	// 0 x 0 means full screen: a banner only in an interstitial slot. A
	// video carries its duration and VAST.
	if ad.Creative.AssetURL == "" || ad.Creative.Format == "" || (ad.Creative.Width == 0) != (ad.Creative.Height == 0) ||
		(ad.Creative.Format == "banner" && ad.Creative.Width == 0 && !ad.Creative.Interstitial) ||
		(ad.Creative.Format == "video") != (ad.Creative.VAST != "" && ad.Creative.DurationSeconds > 0) {
		t.Errorf("creative incomplete: %+v", ad.Creative)
	}
	if ad.Creative.VAST != "" {
		validateVAST(t, ad.Creative.VAST)
	}
	tok := tokenOf(t, ad.ImpressionURL)
	if want := publicURL + "/v1/imp?t=" + tok; ad.ImpressionURL != want {
		t.Errorf("impression_url %q", ad.ImpressionURL)
	}
	if want := publicURL + "/v1/click?t=" + tok; ad.ClickURL != want {
		t.Errorf("click_url %q, want %q", ad.ClickURL, want)
	}
	if ad.ECPMMicros <= 0 || ad.PriceMicros != ad.ECPMMicros/1000 {
		t.Errorf("price_micros %d, ecpm_micros %d: want price = ecpm/1000 > 0", ad.PriceMicros, ad.ECPMMicros)
	}
	version := e.src.Stats().Version
	if ad.Snapshot != version {
		t.Errorf("snapshot %q, serving %q", ad.Snapshot, version)
	}
	wantTest, wantVariant, wantIndex := e.bucketOf(q.device)
	if ad.Bucket.Env != envName || ad.Bucket.Experiment != e.experimentID() || ad.Bucket.Experiment == "" ||
		ad.Bucket.Test != wantTest || ad.Bucket.Variant != wantVariant {
		t.Errorf("bucket %+v, want test %q variant %q", ad.Bucket, wantTest, wantVariant)
	}
	// adtool bucket on the serving snapshot file prints the response's
	// layers, line for line (one bucketing rule, the edge's).
	if bk, invalid, err := exptool.SnapshotBucketer(filepath.Join(e.dir, version+".snap")); err != nil || invalid != nil {
		t.Errorf("adtool bucket: %v %v", err, invalid)
	} else {
		var out bytes.Buffer
		_ = exptool.WriteBucket(&out, bk, q.device)
		var got strings.Builder
		dev := q.device
		if dev == "" {
			dev = "-"
		}
		for _, l := range ad.Bucket.Layers {
			fmt.Fprintf(&got, "%s %s %s %s\n", dev, l.Layer, l.Test, l.Variant)
		}
		if len(ad.Bucket.Layers) == 0 || got.String() != out.String() {
			t.Errorf("response layers %+v, adtool bucket says %q", ad.Bucket.Layers, out.String())
		}
	}
	// The token carries what the tracking endpoints need.
	var c token.Claims
	if err := e.signer.Verify([]byte(tok), e.now(), &c); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	camp := e.campaign(ad.Campaign)
	wantPeriod := camp.FreqCapPeriod
	if camp.FreqCapCount == 0 {
		wantPeriod = 0
	}
	wantEnv := uint8(0)
	if envName == "staging" {
		wantEnv = 1
	}
	if string(c.Campaign) != ad.Campaign || string(c.Creative) != ad.Creative.ID || c.PriceMicros != ad.PriceMicros ||
		string(c.Snapshot) != version || string(c.Experiment) != ad.Bucket.Experiment || string(c.Variant) != wantVariant ||
		string(c.Device) != q.device || c.CapPeriod != wantPeriod || c.Env != wantEnv || c.Test != wantIndex {
		t.Errorf("claims %+v do not match the response %+v (query %+v)", c, ad, q)
	}
	if age := e.now().Sub(time.UnixMilli(c.Issued)); age < 0 || age > time.Minute {
		t.Errorf("token issued %v ago", age)
	}
	return ad
}

// TestAdFill: a request that wins gets a complete, consistent 200, by GET
// query and by POST JSON, in production and staging.
func TestAdFill(t *testing.T) {
	for _, envName := range []string{"production", "staging"} {
		t.Run(envName, func(t *testing.T) {
			e := newEnv(t, envOpts{httpServer: true, env: envName})
			qs := e.search(3, anyCampaign)
			ids := map[string]bool{}
			for _, q := range qs {
				ad := checkFill(t, e, e.get(q.uri()), q, envName)
				ids[ad.RequestID] = true
				ad = checkFill(t, e, e.do("POST", "/v1/ad", q.json()), q, envName)
				ids[ad.RequestID] = true
				// Upper-case enums and a device are accepted too.
				q2 := q
				q2.os, q2.country, q2.device = strings.ToUpper(q.os), strings.ToLower(q.country), "dev-fill-"+envName
				checkFill(t, e, e.get(q2.uri()), q2, envName)
			}
			// The all-zero IDFA/GAID (limit ad tracking) is no device at all.
			qz := qs[0]
			qz.device = adreq.ZeroDeviceID
			r := e.get(qz.uri())
			qz.device = ""
			checkFill(t, e, r, qz, envName)
			if len(ids) != 2*len(qs) {
				t.Errorf("request ids repeat: %v", ids)
			}
			n := float64(3*len(qs) + 1)
			if got := e.metric("adedge_ad_requests_total", "outcome", "filled"); got != n {
				t.Errorf("filled counter %v, want %v", got, n)
			}
			if got := e.metric("adedge_http_requests_total", "endpoint", "ad"); got != n {
				t.Errorf("http ad counter %v", got)
			}
			if got := e.metric("adedge_ad_request_duration_seconds"); got != n {
				t.Errorf("latency histogram count %v", got)
			}
			// Devices were looked up (misses: not in profiles.jsonl); the rest skipped it.
			if miss, skip := e.metric("adedge_profile_lookups_total", "result", "miss"), e.metric("adedge_profile_lookups_total", "result", "no_device"); miss != float64(len(qs)) || skip != n-miss {
				t.Errorf("profile lookups: miss %v no_device %v", miss, skip)
			}
		})
	}
}

// TestAdNoFill: a country nobody targets gets 204 with no body.
func TestAdNoFill(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	q.country = "AQ"
	for _, r := range []*resp{e.get(q.uri()), e.do("POST", "/v1/ad", q.json())} {
		if r.code != 204 || len(r.body) != 0 {
			t.Errorf("Antarctica: %v, want 204 without body", r)
		}
		if r.header["x-adedge-env"] != "production" {
			t.Errorf("no-fill lacks X-Adedge-Env: %v", r.header)
		}
	}
	if got := e.metric("adedge_ad_requests_total", "outcome", "no_candidates"); got != 2 {
		t.Errorf("no_candidates counter %v, want 2", got)
	}
}

// TestAdBadRequests: every malformed request gets a 4xx with a JSON body
// naming the field; nothing is selected for it.
func TestAdBadRequests(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	p := q.placement
	cases := []struct {
		name, method, uri, body, field string
	}{
		{"missing placement", "GET", "/v1/ad?country=US&os=ios", "", "placement"},
		{"empty placement", "GET", "/v1/ad?placement=&country=US&os=ios", "", "placement"},
		{"unknown placement", "GET", "/v1/ad?placement=no-such-placement&country=US&os=ios", "", "placement"},
		{"placement with space", "GET", "/v1/ad?placement=a%20b&country=US&os=ios", "", "placement"},
		{"duplicate placement", "GET", "/v1/ad?placement=" + p + "&placement=" + p + "&country=US&os=ios", "", "placement"},
		{"missing country", "GET", "/v1/ad?placement=" + p + "&os=ios", "", "country"},
		{"bad country", "GET", "/v1/ad?placement=" + p + "&country=USA&os=ios", "", "country"},
		{"non-letter country", "GET", "/v1/ad?placement=" + p + "&country=U1&os=ios", "", "country"},
		{"missing os", "GET", "/v1/ad?placement=" + p + "&country=US", "", "os"},
		{"bad os", "GET", "/v1/ad?placement=" + p + "&country=US&os=windows", "", "os"},
		{"bad osv", "GET", "/v1/ad?placement=" + p + "&country=US&os=ios&osv=seventeen", "", "osv"},
		{"osv minor over 255", "GET", "/v1/ad?placement=" + p + "&country=US&os=ios&osv=17.256", "", "osv"},
		{"bad devtype", "GET", "/v1/ad?placement=" + p + "&country=US&os=ios&devtype=watch", "", "devtype"},
		{"long device", "GET", "/v1/ad?placement=" + p + "&country=US&os=ios&device=" + strings.Repeat("d", 65), "", "device"},
		{"malformed JSON", "POST", "/v1/ad", `{"placement":"` + p + `","country":"US",`, "body"},
		{"JSON array", "POST", "/v1/ad", `[]`, "body"},
		{"empty body", "POST", "/v1/ad", ``, "body"},
		{"unknown JSON field", "POST", "/v1/ad", `{"placement":"` + p + `","country":"US","os":"ios","size":"big"}`, "size"},
		{"non-string JSON value", "POST", "/v1/ad", `{"placement":"` + p + `","country":"US","os":1}`, "os"},
		{"unknown placement JSON", "POST", "/v1/ad", `{"placement":"nope","country":"US","os":"ios"}`, "placement"},
		{"bad country JSON", "POST", "/v1/ad", `{"placement":"` + p + `","country":"XXX","os":"ios"}`, "country"},
	}
	for _, c := range cases {
		var body []byte
		if c.method == "POST" {
			body = []byte(c.body)
		}
		r := e.do(c.method, c.uri, body)
		if r.code != 400 {
			t.Errorf("%s: %v, want 400", c.name, r)
			continue
		}
		eb := decodeError(t, r)
		if eb.Field != c.field || !strings.Contains(eb.Error, c.field) {
			t.Errorf("%s: %+v, want field %q named in the message", c.name, eb, c.field)
		}
	}
	if got := e.metric("adedge_ad_bad_requests_total"); got != float64(len(cases)) {
		t.Errorf("bad requests counter %v, want %d", got, len(cases))
	}
	if got := e.metric("adedge_ad_requests_total", "outcome", "filled"); got != 0 {
		t.Errorf("bad requests filled %v", got)
	}
}

// TestAdBodyLimits: the handler's own limit (adreq.MaxBodyLen) is exact and
// answered in JSON; above the server's MaxRequestBodySize fasthttp refuses
// before the handler runs.
func TestAdBodyLimits(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	pad := func(n int) []byte {
		b := q.json()
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...) // trailing whitespace is valid JSON
	}
	if r := e.do("POST", "/v1/ad", pad(adreq.MaxBodyLen)); r.code != 200 {
		t.Errorf("body of exactly %d bytes: %v, want 200", adreq.MaxBodyLen, r)
	}
	r := e.do("POST", "/v1/ad", pad(adreq.MaxBodyLen+1))
	if r.code != 413 {
		t.Fatalf("body of %d bytes: %v, want 413", adreq.MaxBodyLen+1, r)
	}
	if eb := decodeError(t, r); eb.Field != "body" {
		t.Errorf("413 body %+v, want field body", eb)
	}
	// Above the server's bound fasthttp refuses the request before the
	// handler runs and closes the connection; ErrorHandler makes that the
	// same JSON 413 (fasthttp's default is a text/plain 400).
	// The request goes over a raw connection with the headers only: the
	// server answers from Content-Length without reading the body, and a
	// client still blocked writing the body into the in-memory pipe would
	// otherwise see the close before the answer (a race on loaded CI).
	before := e.metric("adedge_http_requests_total", "endpoint", "ad")
	r, err := e.rawHeadersOnly("POST", "/v1/ad", maxRequestBodySize+1)
	if err != nil {
		t.Fatalf("body over MaxRequestBodySize: %v", err)
	}
	if r.code != 413 || r.header["connection"] != "close" {
		t.Errorf("body over MaxRequestBodySize: %v %v, want 413 and Connection: close", r, r.header)
	} else if eb := decodeError(t, r); eb.Field != "body" {
		t.Errorf("body over MaxRequestBodySize: %+v", eb)
	}
	if after := e.metric("adedge_http_requests_total", "endpoint", "ad"); after != before {
		t.Errorf("the handler ran for an oversized body")
	}
	// The edge still serves afterwards.
	checkFill(t, e, e.get(q.uri()), q, "production")
}

// TestRouting: unknown paths are 404 and wrong methods 405 with Allow, all
// in JSON.
func TestRouting(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	for _, path := range []string{"/", "/v1/ads", "/v2/ad", "/v1/ad/", "/metrics", "/admin/reload"} {
		r := e.get(path)
		if r.code != 404 {
			t.Errorf("GET %s: %v, want 404", path, r)
			continue
		}
		decodeError(t, r)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/v1/ad", "GET, POST"},
		{"DELETE", "/v1/ad", "GET, POST"},
		{"POST", "/v1/imp", "GET"},
		{"POST", "/v1/click", "GET"},
		{"POST", "/health", "GET, HEAD"},
		{"PUT", "/health", "GET, HEAD"},
	} {
		r := e.do(c.method, c.path, []byte("{}"))
		if r.code != 405 || r.header["allow"] != c.allow {
			t.Errorf("%s %s: %v Allow %q, want 405 Allow %q", c.method, c.path, r, r.header["allow"], c.allow)
			continue
		}
		decodeError(t, r)
	}
	if got := e.metric("adedge_http_requests_total", "endpoint", "other"); got != 6 {
		t.Errorf("other counter %v", got)
	}
}

// TestNoSnapshot: before any snapshot, /v1/ad and /health are 503; once one
// is dropped in and reloaded, both are 200.
func TestNoSnapshot(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true, empty: true})
	q := adQuery{placement: "p", country: "US", os: "ios"}
	r := e.get(q.uri())
	if r.code != 503 {
		t.Fatalf("ad without snapshot: %v, want 503", r)
	}
	decodeError(t, r)
	if r := e.do("POST", "/v1/ad", q.json()); r.code != 503 {
		t.Errorf("POST ad without snapshot: %v", r)
	}
	r = e.get("/health")
	if r.code != 503 || !bytes.Contains(r.body, []byte(`"status":"starting"`)) {
		t.Errorf("health without snapshot: %v", r)
	}
	// A click with a valid token and no snapshot to look the URL up in.
	if r := e.get("/v1/click?t=" + e.craftToken(t, "c", "cr", "", 0, time.Now())); r.code != 204 {
		t.Errorf("click without snapshot: %v, want 204", r)
	}
	if got := e.metric("adedge_ad_no_snapshot_total"); got != 2 {
		t.Errorf("no snapshot counter %v", got)
	}

	publish(t, e.dir, e.w.snapshot(t, baseCreated))
	if swapped, err := e.src.Reload(); !swapped || err != nil {
		t.Fatalf("Reload: %v %v", swapped, err)
	}
	q = e.search(1, anyCampaign)[0]
	checkFill(t, e, e.get(q.uri()), q, "production")
	r = e.get("/health")
	if r.code != 200 || !bytes.Contains(r.body, []byte(`"status":"ok"`)) || !bytes.Contains(r.body, []byte(e.src.Stats().Version)) {
		t.Errorf("health with snapshot: %v", r)
	}
}

// craftToken signs claims directly, as an edge would have.
func (e *env) craftToken(tb testing.TB, campaign, creative, device string, capPeriod uint32, issued time.Time) string {
	tb.Helper()
	return signToken(tb, e.signer, campaign, creative, device, capPeriod, issued)
}

func signToken(tb testing.TB, s *token.Signer, campaign, creative, device string, capPeriod uint32, issued time.Time) string {
	tb.Helper()
	c := token.Claims{Issued: issued.UnixMilli(), PriceMicros: 1234, CapPeriod: capPeriod,
		Campaign: []byte(campaign), Creative: []byte(creative), Device: []byte(device),
		Experiment: []byte("e"), Variant: []byte("control"), Snapshot: []byte("v")}
	b, err := s.Append(nil, &c)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestImpressionsAndFrequencyCap: impressions count and earn, their cap
// updates reach the profile store, and a capped campaign stops being
// served to the device once it has been shown cap-count times.
func TestImpressionsAndFrequencyCap(t *testing.T) {
	// The edge's clock starts a second into a cap window and moves only
	// when the test advances it: the test stays inside one window however
	// slow the machine is, and then crosses into the next without waiting.
	clock := newTestClock(time.Now())
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Now = clock.Now }})
	qs := e.search(1, func(_ *snapshot.Reader, c *snapshot.Campaign) bool {
		return c.FreqCapCount >= 2 && c.FreqCapCount <= 5 && c.FreqCapPeriod >= 600
	})
	q := qs[0]
	camp := e.campaign(q.campaign)
	count, period := camp.FreqCapCount, camp.FreqCapPeriod
	windowStart := profiles.WindowStart(clock.Now().Unix(), period)
	clock.ns.Store(time.Unix(windowStart+1, 0).UnixNano())
	q.device = "cap-test-device-1"
	t.Logf("campaign %s: cap %d per %ds; request %s", q.campaign, count, period, q.uri())

	var revenue int64
	for i := uint32(0); i < count; i++ {
		ad := checkFill(t, e, e.get(q.uri()), q, "production")
		revenue += ad.PriceMicros
		r := e.get(trackPath(t, ad.ImpressionURL))
		if r.code != 204 || len(r.body) != 0 {
			t.Fatalf("impression %d: %v, want 204", i, r)
		}
		want := i + 1
		waitFor(t, fmt.Sprintf("cap count %d in the store", want), func() bool {
			var p profiles.Profile
			if err := e.store.Get(context.Background(), q.device, &p); err != nil {
				return false
			}
			return p.CapCount(q.campaign, period, clock.Now().Unix()) == want
		})
	}
	if got := e.metric("adedge_impressions_total"); got != float64(count) {
		t.Errorf("impressions %v, want %d", got, count)
	}
	if got := e.metric("adedge_revenue_micros_total"); got != float64(revenue) {
		t.Errorf("revenue %v, want %d", got, revenue)
	}
	if got := e.metric("adedge_cap_updates_total", "result", "ok"); got != float64(count) {
		t.Errorf("cap updates ok %v, want %d", got, count)
	}

	// Capped now: this device gets another campaign or nothing.
	r := e.get(q.uri())
	switch r.code {
	case 204:
	case 200:
		if ad := decodeAd(t, r); ad.Campaign == q.campaign {
			t.Fatalf("campaign %s served a %d-th time to a device capped at %d", q.campaign, count+1, count)
		}
	default:
		t.Fatalf("after the cap: %v", r)
	}
	if got := e.metric("adedge_selection_skips_total", "reason", "frequency_cap"); got < 1 {
		t.Errorf("frequency_cap skips %v", got)
	}
	if e.metric("adedge_profile_lookups_total", "result", "miss") < 1 || e.metric("adedge_profile_lookups_total", "result", "hit") < 1 {
		t.Errorf("profile lookups: want a miss (first request) and hits (after the first cap)")
	}
	// Caps are per device: without one the campaign still wins.
	q2 := q
	q2.device = ""
	checkFill(t, e, e.get(q2.uri()), q2, "production")

	// Still capped at the window's last second; in the next window the
	// device gets the campaign again.
	clock.ns.Store(time.Unix(windowStart+int64(period)-1, 0).UnixNano())
	if r := e.get(q.uri()); r.code == 200 && decodeAd(t, r).Campaign == q.campaign {
		t.Fatalf("campaign %s served again in the window's last second", q.campaign)
	}
	clock.Advance(time.Second)
	checkFill(t, e, e.get(q.uri()), q, "production")
}

// TestTrackingTokens: bad tokens are refused and counted by reason; a
// valid click redirects to the creative's click URL.
func TestTrackingTokens(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	ad := checkFill(t, e, e.get(q.uri()), q, "production")
	tok := tokenOf(t, ad.ImpressionURL)

	other, err := token.NewSigner(token.GenerateKey(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(tok)
	i := len(flipped) / 2
	if flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	cases := []struct {
		name, query string
		code        int
		reason      string
	}{
		{"missing", "", 400, "missing"},
		{"empty", "?t=", 400, "missing"},
		{"other key", "?t=" + signToken(t, other, ad.Campaign, ad.Creative.ID, "", 0, time.Now()), 403, "forged"},
		{"flipped character", "?t=" + string(flipped), 403, "forged"},
		{"expired", "?t=" + e.craftToken(t, ad.Campaign, ad.Creative.ID, "", 0, time.Now().Add(-25*time.Hour)), 403, "expired"},
		{"malformed", "?t=not-a-token", 403, "malformed"},
		{"bad base64", "?t=" + strings.Repeat("*", 60), 403, "malformed"},
		{"too long", "?t=" + strings.Repeat("A", token.MaxTokenLen+1), 403, "malformed"},
	}
	want := map[string]float64{}
	for _, c := range cases {
		for _, path := range []string{"/v1/imp", "/v1/click"} {
			r := e.get(path + c.query)
			if r.code != c.code {
				t.Errorf("%s %s: %v, want %d", path, c.name, r, c.code)
				continue
			}
			if eb := decodeError(t, r); eb.Field != "t" {
				t.Errorf("%s %s: %+v, want field t", path, c.name, eb)
			}
			want[c.reason]++
		}
	}
	for reason, n := range want {
		if got := e.metric("adedge_tracking_rejected_total", "reason", reason); got != n {
			t.Errorf("rejected{%s} = %v, want %v", reason, got, n)
		}
	}
	if e.metric("adedge_impressions_total") != 0 || e.metric("adedge_clicks_total") != 0 {
		t.Errorf("refused tokens were counted")
	}

	// A valid click: 302 to the creative's click URL.
	r := e.get(trackPath(t, ad.ClickURL))
	if r.code != 302 || r.header["location"] != e.creative(ad.Creative.ID).click || r.header["location"] == "" {
		t.Errorf("click: %v Location %q, want 302 to %q", r, r.header["location"], e.creative(ad.Creative.ID).click)
	}
	// A click for a creative the snapshot no longer has: counted, no redirect.
	if r := e.get("/v1/click?t=" + e.craftToken(t, "gone", "gone-creative", "", 0, time.Now())); r.code != 204 {
		t.Errorf("click of an unknown creative: %v, want 204", r)
	}
	if got := e.metric("adedge_clicks_total"); got != 2 {
		t.Errorf("clicks %v, want 2", got)
	}
	// The impression URL of the same ad works once tokens are valid.
	if r := e.get(trackPath(t, ad.ImpressionURL)); r.code != 204 {
		t.Errorf("impression: %v", r)
	}
}

// TestClickURLEveryCreative: the click lookup (a binary search that relies
// on the snapshot's creatives being sorted by id) finds every creative.
func TestClickURLEveryCreative(t *testing.T) {
	e := newEnv(t, envOpts{})
	snap := e.src.Acquire()
	defer snap.Release()
	r := snap.R
	for i := 0; i < r.NumCreatives(); i++ {
		cr, _ := r.Creative(i)
		if got, want := e.srv.clickURL([]byte(r.String(cr.ID))), r.String(cr.ClickURL); got != want || got == "" {
			t.Fatalf("creative %d %s: click URL %q, want %q", i, r.String(cr.ID), got, want)
		}
	}
	if got := e.srv.clickURL([]byte("zzz-no-such")); got != "" {
		t.Errorf("unknown creative: %q", got)
	}
}

// TestCapQueueFull: with the queue full and no worker draining it, further
// cap updates are dropped and counted, and the impression still answers
// 204 (a blocking enqueue would never answer: no worker drains the queue,
// so the client's 5 s timeout fails it; a 1 s bound on the time taken
// failed on a loaded machine at 1.01 s for the first impression, which has
// room in the queue and cannot block).
func TestCapQueueFull(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true, capQueue: 1, noWorkers: true})
	for i := 0; i < 3; i++ {
		tok := e.craftToken(t, "camp-q", "cr-q", "dev-q", 3600, time.Now())
		start := time.Now()
		if r := e.get("/v1/imp?t=" + tok); r.code != 204 {
			t.Fatalf("impression %d: %v after %v", i, r, time.Since(start))
		}
	}
	if got := e.metric("adedge_cap_updates_total", "result", "dropped"); got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
	if got := e.metric("adedge_cap_queue_length"); got != 1 {
		t.Errorf("queue length %v, want 1", got)
	}
	if got := e.metric("adedge_impressions_total"); got != 3 {
		t.Errorf("impressions %v, want 3 (dropped cap updates still count)", got)
	}
	// A worker drains what was queued.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.RunCapWorkers(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the queued update", func() bool { return e.metric("adedge_cap_updates_total", "result", "ok") == 1 })
	var p profiles.Profile
	if err := e.store.Get(context.Background(), "dev-q", &p); err != nil || p.CapCount("camp-q", 3600, time.Now().Unix()) != 1 {
		t.Errorf("store after drain: %v %+v", err, p)
	}
}

// TestHealth: GET and HEAD while serving, 503 once draining.
func TestHealth(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	r := e.get("/health")
	var h struct {
		Status   string `json:"status"`
		Snapshot struct {
			Version string `json:"version"`
		} `json:"snapshot"`
		InFlight *int64 `json:"in_flight"`
	}
	if r.code != 200 || json.Unmarshal(r.body, &h) != nil || h.Status != "ok" || h.Snapshot.Version != e.src.Stats().Version || h.InFlight == nil {
		t.Errorf("GET /health: %v", r)
	}
	if r.header["cache-control"] != "no-store" {
		t.Errorf("health Cache-Control %q", r.header["cache-control"])
	}
	r = e.do("HEAD", "/health", nil)
	if r.code != 200 || len(r.body) != 0 {
		t.Errorf("HEAD /health: %v, want 200 without body", r)
	}
	e.health.Drain()
	for _, m := range []string{"GET", "HEAD"} {
		if r := e.do(m, "/health", nil); r.code != 503 {
			t.Errorf("%s /health draining: %v", m, r)
		}
	}
	// Draining only changes the probe; requests still in the pipe are served.
	q := e.search(1, anyCampaign)[0]
	checkFill(t, e, e.get(q.uri()), q, "production")
}

// TestAdmin: /metrics exposes the edge's series; POST /admin/reload swaps
// in a new file and reports a corrupt one; GET is refused.
func TestAdmin(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.search(1, anyCampaign)[0]
	checkFill(t, e, e.get(q.uri()), q, "production")
	hs := httptest.NewServer(AdminHandler(e.metrics, e.src))
	defer hs.Close()

	res, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, s := range []string{
		`adedge_ad_requests_total{outcome="filled"} 1`, "adedge_ad_request_duration_seconds_bucket",
		"adedge_snapshot_swaps_total 1", "adedge_snapshot_open_mappings 1", "adedge_in_flight_requests 0",
		"adedge_cap_queue_length 0", `adedge_profile_lookups_total{result="no_device"} 1`, "go_goroutines",
	} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("/metrics lacks %q", s)
		}
	}

	reload := func() (int, map[string]any) {
		t.Helper()
		res, err := http.Post(hs.URL+"/admin/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("reload response: %v %v", err, res.Header)
		}
		return res.StatusCode, out
	}
	v1 := e.src.Stats().Version
	if code, out := reload(); code != 200 || out["swapped"] != false || out["version"] != v1 {
		t.Errorf("reload with nothing new: %d %v", code, out)
	}
	publish(t, e.dir, e.w.snapshot(t, baseCreated.Add(time.Minute)))
	code, out := reload()
	v2 := e.src.Stats().Version
	if code != 200 || out["swapped"] != true || out["version"] != v2 || v2 == v1 {
		t.Errorf("reload with a new file: %d %v", code, out)
	}
	// A newer but corrupt file: 409, reported, the current one keeps serving.
	b := bytes.Clone(e.w.snapshot(t, baseCreated.Add(2*time.Minute)))
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(e.dir, "corrupt.snap"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = reload()
	if code != 409 || out["version"] != v2 || out["error"] == nil || out["rejected"] != float64(1) {
		t.Errorf("reload with a corrupt file: %d %v", code, out)
	}
	q = e.search(1, anyCampaign)[0]
	if ad := checkFill(t, e, e.get(q.uri()), q, "production"); ad.Snapshot != v2 {
		t.Errorf("serving %s after the corrupt reload, want %s", ad.Snapshot, v2)
	}

	res, err = http.Get(hs.URL + "/admin/reload")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 || res.Header.Get("Allow") != "POST" {
		t.Errorf("GET /admin/reload: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res, err = http.Get(hs.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("pprof index: %d", res.StatusCode)
	}
}

// TestAccessLog: with a log ring, each selected request leaves one line
// with status, outcome, placement and the winning campaign.
func TestAccessLog(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true, accessLog: true})
	q := e.search(1, anyCampaign)[0]
	checkFill(t, e, e.get(q.uri()), q, "production")
	nf := q
	nf.country = "AQ"
	if r := e.get(nf.uri()); r.code != 204 {
		t.Fatalf("no-fill: %v", r)
	}
	waitFor(t, "two access lines", func() bool { return e.ring.Written() >= 2 })
	lines := strings.Split(strings.TrimSpace(e.logBuf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log: %q", lines)
	}
	fill := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ad 200 \d+us filled placement=` + regexp.QuoteMeta(q.placement) +
		` campaign=` + regexp.QuoteMeta(q.campaign) + `$`)
	if !fill.MatchString(lines[0]) {
		t.Errorf("fill line %q", lines[0])
	}
	if !strings.Contains(lines[1], " ad 204 ") || !strings.HasSuffix(lines[1], "no_candidates placement="+q.placement) {
		t.Errorf("no-fill line %q", lines[1])
	}
}

// TestErrorHandler: what fasthttp refuses before the handler gets the
// status naming the problem and a JSON body.
func TestErrorHandler(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{fasthttp.ErrBodyTooLarge, 413},
		{&fasthttp.ErrSmallBuffer{}, 431},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, 408},
		{io.ErrUnexpectedEOF, 400},
		{errors.New("cannot find http request method"), 400},
	} {
		var ctx fasthttp.RequestCtx
		ErrorHandler(&ctx, c.err)
		var eb errorBody
		if ctx.Response.StatusCode() != c.code || json.Unmarshal(ctx.Response.Body(), &eb) != nil || eb.Error == "" ||
			string(ctx.Response.Header.ContentType()) != "application/json" {
			t.Errorf("%v: %d %q, want %d and a JSON error", c.err, ctx.Response.StatusCode(), ctx.Response.Body(), c.code)
		}
	}
}

// TestHotSwapUnderLoad: four clients hammer /v1/ad while a new snapshot is
// installed after every 20 answers; no request fails, several versions serve, and
// every old mapping is released afterwards.
func TestHotSwapUnderLoad(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true, store: "none"})
	qs := e.search(16, anyCampaign)
	const swaps = 20
	snaps := make([][]byte, swaps)
	for i := range snaps {
		snaps[i] = e.w.snapshot(t, baseCreated.Add(time.Duration(i+1)*time.Second))
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[string]int{}
		bad      []string
		total    atomic.Int64
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			seen := map[string]int{}
			var fails []string
			for i := g; !stop.Load() && i < 1_000_000; i++ {
				q := qs[i%len(qs)]
				var r *resp
				var err error
				if i%2 == 0 {
					r, err = e.try("GET", q.uri(), nil)
				} else {
					r, err = e.try("POST", "/v1/ad", q.json())
				}
				total.Add(1)
				switch {
				case err != nil:
					fails = append(fails, err.Error())
				case r.code == 200:
					var ad adResponse
					if err := json.Unmarshal(r.body, &ad); err != nil || ad.Snapshot == "" {
						fails = append(fails, fmt.Sprintf("bad body %q", r.body))
						continue
					}
					seen[ad.Snapshot]++
				case r.code == 204:
				default:
					fails = append(fails, r.String())
				}
			}
			mu.Lock()
			for v, n := range seen {
				versions[v] += n
			}
			bad = append(bad, fails...)
			mu.Unlock()
		}(g)
	}
	defer stop.Store(true) // a failed wait below stops the clients too
	// Each version serves some traffic: between swaps, wait for requests to
	// complete (not for a time, which a loaded machine may spend elsewhere).
	served := func(n int64) {
		at := total.Load()
		waitFor(t, fmt.Sprintf("%d more requests answered", n), func() bool { return total.Load() >= at+n })
	}
	start := time.Now()
	for i := 0; i < swaps; i++ {
		served(20)
		publish(t, e.dir, snaps[i])
		if swapped, err := e.src.Reload(); !swapped || err != nil {
			t.Errorf("swap %d: %v %v", i, swapped, err)
		}
		if _, err := e.src.Prune(3); err != nil {
			t.Errorf("prune: %v", err)
		}
	}
	served(20)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests in %v, %d versions served: %v", total.Load(), time.Since(start).Round(time.Millisecond), len(versions), versions)
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed, first: %v", len(bad), total.Load(), bad[0])
	}
	if len(versions) != swaps+1 {
		t.Errorf("%d versions served: %v, want all %d (each serves 20 answers, at most 4 of them begun on the one before)", len(versions), versions, swaps+1)
	}
	if final := e.src.Stats().Version; versions[final] == 0 {
		t.Errorf("the last version %s never served", final)
	}
	waitFor(t, "old mappings released", func() bool { return e.src.Stats().Open == 1 })
}
