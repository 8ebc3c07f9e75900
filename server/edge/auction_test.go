package edge

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/server/geo"
	"github.com/adedge/adedge/server/geo/geotest"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
)

type bidResponse struct {
	ID      string `json:"id"`
	BidID   string `json:"bidid"`
	Cur     string `json:"cur"`
	SeatBid []struct {
		Seat string `json:"seat"`
		Bid  []bid  `json:"bid"`
	} `json:"seatbid"`
}

type bid struct {
	ID      string   `json:"id"`
	ImpID   string   `json:"impid"`
	Price   float64  `json:"price"`
	Adm     string   `json:"adm"`
	BURL    string   `json:"burl"`
	NURL    string   `json:"nurl"`
	CrID    string   `json:"crid"`
	CID     string   `json:"cid"`
	Bundle  string   `json:"bundle"`
	ADomain []string `json:"adomain"`
	Cat     []string `json:"cat"`
	W       int      `json:"w"`
	H       int      `json:"h"`
	MType   int      `json:"mtype"`
	Dur     int      `json:"dur"`
	Ext     struct {
		Format       string `json:"format"`
		Privacy      string `json:"privacy"`
		Rewarded     bool   `json:"rewarded"`
		Interstitial bool   `json:"interstitial"`
	} `json:"ext"`
}

func decodeBids(t *testing.T, r *resp) (*bidResponse, []bid) {
	t.Helper()
	if r.code != 200 {
		t.Fatalf("want 200, got %v", r)
	}
	var br bidResponse
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&br); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	if len(br.SeatBid) != 1 || br.Cur != "USD" || br.SeatBid[0].Seat != "adedge" {
		t.Fatalf("shape: %s", r.body)
	}
	return &br, br.SeatBid[0].Bid
}

// imp is one test imp: tag (placement) and the format object to send.
type imp struct {
	id, tag, kind string // kind: banner, video, rewarded, native
}

func (i imp) json() string {
	s := `{"id":"` + i.id + `","tagid":"` + i.tag + `"`
	switch i.kind {
	case "banner":
		s += `,"banner":{"w":320,"h":50}`
	case "bannerany":
		s += `,"banner":{}`
	case "video":
		s += `,"video":{"mimes":["video/mp4"],"maxduration":30,"w":1080,"h":1920}`
	case "interstitial":
		s += `,"instl":1,"video":{"mimes":["video/mp4"],"maxduration":30},"banner":{}`
	case "rewarded":
		s += `,"instl":1,"rwdd":1,"video":{"mimes":["video/mp4"],"maxduration":30,"w":1080,"h":1920},"banner":{}`
	case "native":
		s += `,"native":{"request":"{}"}`
	}
	return s + "}"
}

// ortbBody is an in-app BidRequest for q's country and OS.
func ortbBody(q adQuery, extra string, imps ...imp) []byte {
	var is []string
	for _, i := range imps {
		is = append(is, i.json())
	}
	a3 := map[string]string{"US": "USA", "GB": "GBR", "DE": "DEU", "JP": "JPN", "BR": "BRA", "IN": "IND", "FR": "FRA"}[q.country]
	dev := `"device":{"ifa":"` + q.device + `","os":"` + q.os + `","osv":"` + q.osv + `","devicetype":4,"geo":{"country":"` + a3 + `"}}`
	if strings.Contains(extra, `"device"`) {
		dev = ""
	} else if extra != "" {
		dev += ","
	}
	return []byte(`{"id":"req-1","tmax":100,"imp":[` + strings.Join(is, ",") + `],"app":{"bundle":"com.example.app"},` + dev + extra + `}`)
}

// queriesFor finds requests that fill on placements of a kind (snapshot.Placement.Kind).
func (e *env) queriesFor(t *testing.T, kind string, limit int) []adQuery {
	t.Helper()
	return e.queriesForTB(t, kind, limit)
}

func (e *env) queriesForTB(t testing.TB, kind string, limit int) []adQuery {
	t.Helper()
	snap := e.src.Acquire()
	defer snap.Release()
	var out []adQuery
	for _, q := range e.search(1000, func(*snapshot.Reader, *snapshot.Campaign) bool { return true }) {
		pi, ok := snap.R.LookupPlacementBytes([]byte(q.placement))
		if !ok {
			continue
		}
		if pl, _ := snap.R.Placement(pi); pl.Kind() == kind && len(out) < limit {
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no filling %s placement", kind)
	}
	return out
}

func TestAuctionBannerAndRewardedVideo(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	banners := e.queriesFor(t, "banner", 50)
	rewarded := e.queriesFor(t, "rewarded", 50)
	// A request pairing a banner and a rewarded slot for the same user.
	var sawVAST bool
	for _, bq := range banners {
		for _, rq := range rewarded {
			if rq.country != bq.country || rq.os != bq.os {
				continue
			}
			bq.device = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
			r := e.do("POST", "/openrtb2/auction", ortbBody(bq, "", imp{"b1", bq.placement, "bannerany"}, imp{"v1", rq.placement, "rewarded"}))
			if r.code == 204 {
				continue
			}
			br, bids := decodeBids(t, r)
			if br.ID != "req-1" || br.BidID == "" {
				t.Fatalf("ids: %s", r.body)
			}
			seen := map[string]bool{}
			for _, b := range bids {
				if seen[b.CID] {
					t.Fatalf("campaign %s twice in one response: %s", b.CID, r.body)
				}
				seen[b.CID] = true
				if b.Price <= 0 || b.CrID == "" || b.Ext.Privacy != "allowed" || !strings.HasPrefix(b.BURL, publicURL+"/v1/imp?t=") {
					t.Fatalf("bid %+v", b)
				}
				switch b.ImpID {
				case "b1":
					if b.Ext.Format != "banner" || b.MType != 1 || !strings.Contains(b.Adm, publicURL+"/v1/click?t=") {
						t.Fatalf("banner bid %+v", b)
					}
				case "v1":
					if !b.Ext.Rewarded || !b.Ext.Interstitial || (b.Ext.Format == "video") != (b.MType == 2) {
						t.Fatalf("rewarded bid %+v", b)
					}
					if b.MType == 2 {
						sawVAST = true
						checkVAST(t, e, b)
					}
				default:
					t.Fatalf("impid %q", b.ImpID)
				}
				// The win notice verifies and counts, and bills nothing.
				if !strings.HasPrefix(b.NURL, publicURL+"/v1/win?t=") || !strings.HasSuffix(b.NURL, "&p=${AUCTION_PRICE}") {
					t.Fatalf("nurl %q", b.NURL)
				}
				wins, imps := e.metric("adedge_win_notices_total"), e.metric("adedge_impressions_total")
				if got := e.get(trackPath(t, strings.Replace(b.NURL, "${AUCTION_PRICE}", "1.25", 1))); got.code != 204 {
					t.Fatalf("nurl: %v", got)
				}
				if e.metric("adedge_win_notices_total") != wins+1 || e.metric("adedge_impressions_total") != imps {
					t.Fatal("nurl did not count once, or billed")
				}
				if got := e.get(strings.Replace(trackPath(t, b.NURL), "t=", "t=x", 1)); got.code != 403 {
					t.Fatalf("forged nurl: %v", got)
				}
				// The billing URL verifies and counts an impression.
				before := e.metric("adedge_impressions_total")
				if got := e.get(trackPath(t, b.BURL)); got.code != 204 {
					t.Fatalf("burl: %v", got)
				}
				if e.metric("adedge_impressions_total") != before+1 {
					t.Fatal("burl did not count")
				}
			}
			if sawVAST {
				return
			}
		}
	}
	t.Fatal("no response carried a VAST rewarded bid")
}

// TestAuctionFillPerFormat: each kind of placement fills OpenRTB imps with
// creatives that fit: the bid's format is one the placement shows and the
// imp accepts, mtype says which, the flags are the placement's, no small
// banner in an interstitial slot, a video within the imp's durations with a
// VAST that validates; an imp taking only a format the placement does not
// show gets no bid.
func TestAuctionFillPerFormat(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	snap := e.src.Acquire()
	defer snap.Release()
	mtype := map[string]int{"banner": 1, "video": 2, "native": 4}
	for _, c := range []struct {
		kind, imp string
		accepts   []string
	}{
		{"banner", "bannerany", []string{"banner"}},
		{"interstitial", "interstitial", []string{"banner", "video"}},
		{"rewarded", "rewarded", []string{"banner", "video"}},
		{"native", "native", []string{"native"}},
		{"interstitial", "video", []string{"video"}},
		{"rewarded", "video", []string{"video"}},
	} {
		fills, sawVAST := 0, false
		for _, q := range e.queriesFor(t, c.kind, 60) {
			r := e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", q.placement, c.imp}))
			if r.code == 204 {
				continue
			}
			_, bids := decodeBids(t, r)
			b := bids[0]
			pi, _ := snap.R.LookupPlacement(q.placement)
			pl, _ := snap.R.Placement(pi)
			f, ok := snapshot.ParseFormat(b.Ext.Format)
			if !ok || !pl.Formats.Has(f) || !slices.Contains(c.accepts, b.Ext.Format) || b.MType != mtype[b.Ext.Format] ||
				b.Ext.Interstitial != pl.Interstitial() || b.Ext.Rewarded != pl.Rewarded() {
				t.Fatalf("%s placement %s (%s): bid %+v", c.kind, q.placement, pl.Kind(), b)
			}
			if f == snapshot.FormatBanner && pl.Interstitial() && b.W != 0 && min(b.W, b.H) < 320 {
				t.Fatalf("a %dx%d banner in interstitial slot %s", b.W, b.H, q.placement)
			}
			if f == snapshot.FormatVideo && !sawVAST {
				checkVAST(t, e, b) // duration within maxduration 30, mp4 only, XSD
				sawVAST = true
			}
			fills++
		}
		if fills == 0 || (c.imp == "video" && !sawVAST) {
			t.Errorf("%s placements, %s imps: %d filled", c.kind, c.imp, fills)
		}
	}
	q := e.queriesFor(t, "banner", 1)[0]
	if r := e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", q.placement, "video"})); r.code != 204 {
		t.Fatalf("a video-only imp at banner placement %s: %v", q.placement, r)
	}
}

// checkVAST: the VAST's tracking URLs verify and count, and the document
// validates against the IAB's schema.
func checkVAST(t *testing.T, e *env, b bid) {
	t.Helper()
	if b.Dur < 1 || b.Dur > 30 {
		t.Fatalf("video of %d s for an imp of maxduration 30: %+v", b.Dur, b)
	}
	for _, want := range []string{`<VAST version="4.2"`, "<MediaFiles>", `type="video/mp4"`, "<Impression", `event="start"`, `event="firstQuartile"`,
		`event="midpoint"`, `event="thirdQuartile"`, `event="complete"`, "<ClickThrough", "<ClickTracking", fmt.Sprintf("<Duration>00:00:%02d</Duration>", b.Dur)} {
		if !strings.Contains(b.Adm, want) {
			t.Fatalf("VAST lacks %s: %s", want, b.Adm)
		}
	}
	if strings.Contains(b.Adm, `type="video/webm"`) || strings.Contains(b.Adm, "m3u8") {
		t.Fatalf("VAST carries a media file the player did not ask for (mimes: video/mp4): %s", b.Adm)
	}
	validateVAST(t, b.Adm)
	i := strings.Index(b.Adm, `<Tracking event="firstQuartile">`)
	u := b.Adm[i+len(`<Tracking event="firstQuartile">`):]
	u = strings.ReplaceAll(u[:strings.Index(u, "<")], "&amp;", "&")
	before := e.metric("adedge_video_events_total", "event", "firstQuartile")
	if r := e.get(trackPath(t, u)); r.code != 204 {
		t.Fatalf("quartile %s: %v", u, r)
	}
	if e.metric("adedge_video_events_total", "event", "firstQuartile") != before+1 {
		t.Fatal("quartile not counted")
	}
}

// validateVAST runs xmllint against the IAB's VAST 4.2 XSD
// (testdata/vast/SOURCE.md); skipped outside CI without xmllint.
func validateVAST(t *testing.T, doc string) {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xmllint is not installed (CI=true: .ci/run installs libxml2-utils)")
		}
		t.Skip("skipping XSD validation: xmllint not installed (Debian package libxml2-utils)")
	}
	f := filepath.Join(t.TempDir(), "vast.xml")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", "testdata/vast/vast_4.2.xsd", f).CombinedOutput()
	if err != nil {
		t.Fatalf("VAST does not validate against vast_4.2.xsd: %v\n%s\n%s", err, out, doc)
	}
}

// The schema check can fail: a VAST without MediaFiles is refused.
func TestVASTValidatorRefuses(t *testing.T) {
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Skip("xmllint not installed")
	}
	bad := `<?xml version="1.0"?><VAST version="4.2" xmlns="http://www.iab.com/VAST"><Ad><InLine><AdSystem>x</AdSystem></InLine></Ad></VAST>`
	f := filepath.Join(t.TempDir(), "bad.xml")
	os.WriteFile(f, []byte(bad), 0o644)
	if out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", "testdata/vast/vast_4.2.xsd", f).CombinedOutput(); err == nil {
		t.Fatalf("invalid VAST accepted: %s", out)
	}
}

// Four imps on one placement: four different campaigns, or fewer bids.
func TestAuctionNeverRepeatsACampaign(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.queriesFor(t, "banner", 1)[0]
	r := e.do("POST", "/openrtb2/auction", ortbBody(q, "",
		imp{"1", q.placement, "bannerany"}, imp{"2", q.placement, "bannerany"}, imp{"3", q.placement, "bannerany"}, imp{"4", q.placement, "bannerany"}))
	_, bids := decodeBids(t, r)
	seen := map[string]bool{}
	for _, b := range bids {
		if seen[b.CID] {
			t.Fatalf("campaign %s twice: %s", b.CID, r.body)
		}
		seen[b.CID] = true
	}
	if len(bids) < 2 {
		t.Fatalf("only %d bids for 4 imps: %s", len(bids), r.body)
	}
	if bids[0].CID != q.campaign {
		t.Errorf("first imp got %s, the single-ad winner is %s", bids[0].CID, q.campaign)
	}
}

func TestAuctionPrivacy(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.queriesFor(t, "banner", 1)[0]
	q.device = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
	cases := []struct {
		name, extra, signal, action string
	}{
		{"coppa", `"regs":{"coppa":1}`, "coppa", "anonymous"},
		{"gdpr malformed", `"regs":{"ext":{"gdpr":1}},"user":{"ext":{"consent":"garbage"}}`, "gdpr_malformed", "anonymous"},
		{"us privacy", `"regs":{"ext":{"us_privacy":"1YYN"}}`, "us_privacy", "unpersonalised"},
		{"att denied", `"device":{"ifa":"` + q.device + `","os":"ios","osv":"20.0","geo":{"country":"` + map[string]string{"US": "USA", "GB": "GBR", "DE": "DEU", "JP": "JPN", "BR": "BRA", "IN": "IND", "FR": "FRA"}[q.country] + `"},"ext":{"atts":2}}`, "att", "anonymous"},
	}
	for _, c := range cases {
		before := e.metric("adedge_privacy_total", "signal", c.signal, "action", c.action)
		reads := e.metric("adedge_profile_lookups_total", "result", "no_device")
		body := ortbBody(q, c.extra, imp{"1", q.placement, "bannerany"})
		if c.signal == "att" && q.os != "ios" {
			continue
		}
		r := e.do("POST", "/openrtb2/auction", body)
		_, bids := decodeBids(t, r)
		if bids[0].Ext.Privacy != c.action {
			t.Errorf("%s: privacy %q, want %q", c.name, bids[0].Ext.Privacy, c.action)
		}
		if got := e.metric("adedge_privacy_total", "signal", c.signal, "action", c.action); got != before+1 {
			t.Errorf("%s: counter %v -> %v", c.name, before, got)
		}
		if e.metric("adedge_profile_lookups_total", "result", "no_device") != reads+1 {
			t.Errorf("%s: the profile was read", c.name)
		}
		claims := e.claimsOf(t, bids[0].BURL)
		switch c.action {
		case "anonymous":
			if len(claims.Device) != 0 || claims.CapPeriod != 0 {
				t.Errorf("%s: token carries device %q cap %d", c.name, claims.Device, claims.CapPeriod)
			}
		case "unpersonalised":
			if string(claims.Device) != q.device {
				t.Errorf("%s: token device %q", c.name, claims.Device)
			}
		}
	}
	// Without signals the profile is read and the device kept.
	reads := e.metric("adedge_profile_lookups_total", "result", "no_device")
	_, bids := decodeBids(t, e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", q.placement, "bannerany"})))
	if bids[0].Ext.Privacy != "allowed" || e.metric("adedge_profile_lookups_total", "result", "no_device") != reads {
		t.Errorf("no signal: %+v", bids[0])
	}
	if c := e.claimsOf(t, bids[0].BURL); string(c.Device) != q.device {
		t.Errorf("no signal: token device %q", c.Device)
	}
}

func TestAuctionErrors(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	q := e.queriesFor(t, "banner", 1)[0]
	cases := []struct {
		body        string
		code        int
		field, want string
	}{
		{`{"id":"x","imp":[{"id":"1","tagid":"p","video":{"maxduration":"30"}}]}`, 400, "imp[0].video.maxduration", "must be an integer"},
		{`{"id":"x","imp":[{"id":"1","tagid":"p"},{"id":"2"}]}`, 400, "imp[1].tagid", "required"},
		{`{"id":"x","imp":[{"id":"1","tagid":"p"}],"device":{"os":"OS X"}}`, 400, "device.os", "android or ios"},
		{`{"id":"x","imp":[{"id":"1","tagid":"p"}],"device":{"os":"ios"}}`, 400, "device.geo.country", "required"},
		{`{"id":"x","imp":[{"id":"1","tagid":"p"}],"device":{"os":"ios","geo":{"country":"XYZ"}}}`, 400, "device.geo.country", "alpha-3"},
		{`[]`, 400, "body", "JSON object"},
	}
	for _, c := range cases {
		r := e.do("POST", "/openrtb2/auction", []byte(c.body))
		if r.code != c.code {
			t.Errorf("%s: %v", c.body, r)
			continue
		}
		eb := decodeError(t, r)
		if eb.Field != c.field || !strings.Contains(eb.Error, c.want) {
			t.Errorf("%s: %+v", c.body, eb)
		}
	}
	if r := e.get("/openrtb2/auction"); r.code != 405 {
		t.Errorf("GET: %v", r)
	}
	// An unknown placement is no bid for that imp, not an error.
	if r := e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", "no-such-placement", "bannerany"})); r.code != 204 {
		t.Errorf("unknown placement: %v", r)
	}
	// A video-only imp on a banner placement gets no banner.
	if r := e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", q.placement, "video"})); r.code != 204 {
		t.Errorf("video imp on a banner placement: %v", r)
	}
	// Sizes the imp does not accept are not served.
	r := e.do("POST", "/openrtb2/auction", ortbBody(q, "", imp{"1", q.placement, "bannerany"}))
	_, bids := decodeBids(t, r)
	odd := strings.Replace(string(ortbBody(q, "", imp{"1", q.placement, "bannerany"})), `"banner":{}`, `"banner":{"w":1,"h":1}`, 1)
	if r := e.do("POST", "/openrtb2/auction", []byte(odd)); r.code != 204 {
		t.Errorf("1x1 banner imp filled with %dx%d: %v", bids[0].W, bids[0].H, r)
	}
}

func TestAuctionGeo(t *testing.T) {
	db := testGeoDB(t, map[string]string{"203.0.113.0/24": "US", "198.51.100.0/24": "DE"})
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Geo = db }})
	q := usBanner(t, e)
	body := func(ip string) []byte {
		return []byte(fmt.Sprintf(`{"id":"g","imp":[{"id":"1","tagid":%q,"banner":{}}],"device":{"os":%q,"osv":"20.0","ip":%q}}`, q.placement, q.os, ip))
	}
	before := e.metric("adedge_geo_country_total", "source", "device_ip")
	if r := e.do("POST", "/openrtb2/auction", body("203.0.113.7")); r.code != 200 {
		t.Fatalf("US device ip: %v", r)
	}
	if e.metric("adedge_geo_country_total", "source", "device_ip") != before+1 {
		t.Error("geo source not counted")
	}
	if r := e.do("POST", "/openrtb2/auction", body("10.0.0.1")); r.code != 400 {
		t.Errorf("ip not in the database: %v", r)
	}
}

// usBanner is a request filling a banner placement in the US.
func usBanner(t *testing.T, e *env) adQuery {
	t.Helper()
	for _, c := range e.queriesFor(t, "banner", 100) {
		if c.country == "US" {
			return c
		}
	}
	t.Fatal("no US banner fill in the small world")
	return adQuery{}
}

// testGeoDB writes and opens a country database of nets (CIDR -> code).
func testGeoDB(t *testing.T, nets map[string]string) *geo.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	if err := geotest.Write(path, nets); err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// claimsOf verifies a tracking URL's token with the env's key.
func (e *env) claimsOf(t *testing.T, u string) *tokenClaims {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	var c tokenClaims
	if err := e.signer.Verify([]byte(p.Query().Get("t")), timeNow(), &c); err != nil {
		t.Fatalf("token of %s: %v", u, err)
	}
	return &c
}

type tokenClaims = token.Claims

var timeNow = time.Now

// A body over the serving port's bound is refused before the handler,
// with the OpenRTB endpoint's own limit in the message.
func TestAuctionBodyTooLarge(t *testing.T) {
	e := newEnv(t, envOpts{httpServer: true})
	r, err := e.rawHeadersOnly("POST", "/openrtb2/auction", maxRequestBodySize+1)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 413 || !strings.Contains(string(r.body), "16384") {
		t.Fatalf("%v", r)
	}
}

// /v1/ad without a country, on an edge with a geoip database: the client
// IP decides, the first X-Forwarded-For hop only from a trusted balancer.
func TestAdCountryFromClientIP(t *testing.T) {
	db := testGeoDB(t, map[string]string{"203.0.113.0/24": "US", "0.0.0.0/32": "DE"})
	ps, _ := geo.ParseProxies("0.0.0.0/32") // the in-memory listener's peer address
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Geo, c.TrustedProxies = db, ps }})
	q := usBanner(t, e)
	get := func(xff string) *resp {
		req := fasthttp.AcquireRequest()
		res := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI("http://edge/v1/ad?placement=" + q.placement + "&os=" + q.os + "&osv=" + q.osv)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		if err := e.client.Do(req, res); err != nil {
			t.Fatal(err)
		}
		return &resp{code: res.StatusCode(), body: append([]byte(nil), res.Body()...)}
	}
	if r := get("203.0.113.50, 0.0.0.0"); r.code != 200 {
		t.Fatalf("US client behind the balancer: %v", r)
	}
	if r := get("10.9.9.9"); r.code != 400 || !strings.Contains(string(r.body), "country: required") {
		t.Fatalf("client IP not in the database: %v", r)
	}
	// Without the balancer trusted, the peer (DE here) counts, not the header.
	e2 := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Geo = db }})
	r := e2.get("/v1/ad?placement=" + q.placement + "&os=" + q.os + "&osv=" + q.osv)
	if r.code == 400 {
		t.Fatalf("peer address not looked up: %v", r)
	}
	// And an edge without a database still refuses a request without a country.
	e3 := newEnv(t, envOpts{httpServer: true})
	if r := e3.get("/v1/ad?placement=" + q.placement + "&os=" + q.os); r.code != 400 {
		t.Fatalf("no database: %v", r)
	}
}
