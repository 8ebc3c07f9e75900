package ortb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adedge/adedge/snapshot"
)

const inApp = `{
  "id": "req-1", "tmax": 120, "at": 1, "cur": ["USD"],
  "imp": [
    {"id": "1", "tagid": "banner-home", "bidfloor": 0.5, "bidfloorcur": "USD",
     "banner": {"w": 320, "h": 50, "format": [{"w": 320, "h": 50}, {"w": 300, "h": 250}]},
     "ext": {"prebid": {"bidder": {}}}},
    {"id": "2", "tagid": "rewarded-level", "instl": 1, "rwdd": 1,
     "video": {"mimes": ["video/mp4", "video/webm"], "protocols": [2, 3, 7], "w": 1080, "h": 1920,
               "minduration": 5, "maxduration": 30, "plcmt": 3, "placement": 5}}
  ],
  "app": {"id": "a1", "bundle": "com.example.game", "cat": ["IAB9-30", "IAB1"],
          "publisher": {"id": "pub-7", "name": "Example"}},
  "device": {"ifa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "lmt": 0, "ip": "203.0.113.9",
             "ua": "Mozilla/5.0 (iPhone)", "make": "Apple", "model": "iPhone15,2", "os": "iOS",
             "osv": "17.1", "devicetype": 4, "connectiontype": 2,
             "geo": {"country": "USA", "lat": 40.7}, "ext": {"atts": 3, "ifv": "x"}},
  "user": {"ext": {"consent": "CONSENT-EXT"}},
  "regs": {"coppa": 0, "ext": {"gdpr": 1, "us_privacy": "1YNN"}, "gpp": "DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", "gpp_sid": [2, 7]}
}`

func parse(t *testing.T, body string) (*Request, *Error) {
	t.Helper()
	var r Request
	var s Scratch
	err := Parse([]byte(body), &r, &s)
	return &r, err
}

func TestParseInApp(t *testing.T) {
	r, err := parse(t, inApp)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.ID) != "req-1" || r.TMax != 120 || len(r.Imp) != 2 {
		t.Fatalf("top: %+v", r)
	}
	b := r.Imp[0]
	if string(b.ID) != "1" || string(b.TagID) != "banner-home" || !b.HasBanner || b.HasVideo || b.BidFloor != 0.5 || string(b.FloorCur) != "USD" {
		t.Fatalf("imp 0: %+v", b)
	}
	if got := b.Banner.Sizes(); len(got) != 3 || got[0] != (Size{W: 320, H: 50}) || got[2] != (Size{W: 300, H: 250}) {
		t.Fatalf("banner sizes %v", got)
	}
	v := r.Imp[1]
	if !v.HasVideo || !v.Instl || !v.Rwdd || v.HasBanner {
		t.Fatalf("imp 1: %+v", v)
	}
	vd := v.Video
	if vd.NMimes != 2 || string(vd.Mimes[1]) != "video/webm" || vd.Protocols != 1<<2|1<<3|1<<7 ||
		vd.W != 1080 || vd.H != 1920 || vd.MinDuration != 5 || vd.MaxDuration != 30 || vd.Plcmt != 3 {
		t.Fatalf("video %+v", vd)
	}
	if !r.HasApp || string(r.App.Bundle) != "com.example.game" || string(r.App.PublisherID) != "pub-7" || r.App.NCat != 2 {
		t.Fatalf("app %+v", r.App)
	}
	d := r.Device
	if string(d.IFA) != "6D92078A-8246-4BA4-AE5B-76104861E7DC" || d.LMT != No || d.ATTS != 3 || string(d.IP) != "203.0.113.9" ||
		string(d.OS) != "iOS" || string(d.OSV) != "17.1" || d.DeviceType != 4 || d.ConnectionType != 2 || string(d.Country) != "USA" ||
		string(d.Make) != "Apple" || string(d.Model) != "iPhone15,2" {
		t.Fatalf("device %+v", d)
	}
	if string(r.Consent) != "CONSENT-EXT" {
		t.Fatalf("consent %q", r.Consent)
	}
	g := r.Regs
	if g.COPPA != No || g.GDPR != Yes || string(g.USPrivacy) != "1YNN" || !strings.HasPrefix(string(g.GPP), "DBABMA~") ||
		len(g.GPPSIDs()) != 2 || g.GPPSIDs()[1] != 7 {
		t.Fatalf("regs %+v", g)
	}
}

// The 2.6 members win over their 2.5 ext spellings; absent flags stay Unset.
func TestParse26Members(t *testing.T) {
	r, err := parse(t, `{"id":"x","imp":[{"id":"1"}],
		"user":{"consent":"C26","ext":{"consent":"C25"}},
		"regs":{"gdpr":0,"us_privacy":"1NNN","ext":{"gdpr":1,"us_privacy":"1YYN"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Consent) != "C26" || r.Regs.GDPR != No || string(r.Regs.USPrivacy) != "1NNN" {
		t.Fatalf("%q %+v", r.Consent, r.Regs)
	}
	r, err = parse(t, `{"id":"x","imp":[{"id":"1"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Regs.COPPA != Unset || r.Regs.GDPR != Unset || r.Device.LMT != Unset || r.Device.ATTS != -1 || r.Device.DeviceType != -1 {
		t.Fatalf("defaults %+v %+v", r.Regs, r.Device)
	}
}

// The IAB's own examples (testdata/iab/SOURCE.md) parse without error.
func TestIABExamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/iab/*.json")
	if len(files) < 5 {
		t.Fatalf("want the 5 IAB examples, found %d", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r Request
		var s Scratch
		if err := Parse(b, &r, &s); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(r.Imp) != 1 || len(r.ID) == 0 {
			t.Errorf("%s: %d imps, id %q", f, len(r.Imp), r.ID)
		}
		if strings.Contains(f, "video") && (!r.Imp[0].HasVideo || r.Imp[0].Video.MaxDuration != 30 || r.Imp[0].Video.NMimes != 3) {
			t.Errorf("%s: video %+v", f, r.Imp[0].Video)
		}
		if strings.Contains(f, "mobile") && (string(r.App.Bundle) != "12345" || string(r.Device.IFA) == "" || r.Imp[0].Banner.Sizes()[0] != (Size{W: 728, H: 90})) {
			t.Errorf("%s: app %+v device %+v", f, r.App, r.Device)
		}
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", MaxIDLen+1)
	cases := []struct {
		body, field, reason string
		status              int
	}{
		{`{"id":"x","imp":[{"id":"1"},{"id":"2","video":{"maxduration":"30"}}]}`, "imp[1].video.maxduration", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1","video":{"maxduration":1.5}}]}`, "imp[0].video.maxduration", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1","video":{"mimes":["video/mp4",3]}}]}`, "imp[0].video.mimes[1]", "must be a string", 400},
		{`{"id":"x","imp":[{"id":"1","video":{"mimes":"video/mp4"}}]}`, "imp[0].video.mimes", "must be an array", 400},
		{`{"id":"x","imp":[{"id":"1","video":{"minduration":40,"maxduration":30}}]}`, "imp[0].video.minduration", "must not exceed maxduration", 400},
		{`{"id":"x","imp":[{"id":"1","banner":{"format":[{"w":320,"h":"50"}]}}]}`, "imp[0].banner.format[0].h", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1","banner":{"w":70000}}]}`, "imp[0].banner.w", "must be between 0 and 65535", 400},
		{`{"id":"x","imp":[{"id":"1","banner":[]}]}`, "imp[0].banner", "must be an object", 400},
		{`{"id":"x","imp":[{"id":"1","instl":2}]}`, "imp[0].instl", "must be 0 or 1", 400},
		{`{"id":"x","imp":[{"id":"1","rwdd":true}]}`, "imp[0].rwdd", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1","bidfloor":-1}]}`, "imp[0].bidfloor", "must be a number >= 0", 400},
		{`{"id":"x","imp":[{"id":"1","bidfloor":"0.5"}]}`, "imp[0].bidfloor", "must be a number", 400},
		{`{"id":"x","imp":[{"id":"1","tagid":"a b"}]}`, "imp[0].tagid", "must be printable ASCII without spaces", 400},
		{`{"id":"x","imp":[{"id":"1","tagid":"` + long + `"}]}`, "imp[0].tagid", "too long (max 128 bytes)", 400},
		{`{"id":"x","imp":[null]}`, "imp[0]", "must be an object", 400},
		{`{"id":"x","imp":{}}`, "imp", "must be an array", 400},
		{`{"id":"x","imp":[]}`, "imp", "required (at least one)", 400},
		{`{"imp":[{"id":"1"}]}`, "id", "required", 400},
		{`{"id":7,"imp":[{"id":"1"}]}`, "id", "must be a string", 400},
		{`{"id":"x","imp":[{"id":"1"}],"device":{"lmt":"1"}}`, "device.lmt", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1"}],"device":{"ext":{"atts":4}}}`, "device.ext.atts", "must be between 0 and 3", 400},
		{`{"id":"x","imp":[{"id":"1"}],"device":{"geo":{"country":840}}}`, "device.geo.country", "must be a string", 400},
		{`{"id":"x","imp":[{"id":"1"}],"device":"phone"}`, "device", "must be an object", 400},
		{`{"id":"x","imp":[{"id":"1"}],"user":{"ext":{"consent":1}}}`, "user.ext.consent", "must be a string", 400},
		{`{"id":"x","imp":[{"id":"1"}],"regs":{"coppa":"1"}}`, "regs.coppa", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1"}],"regs":{"ext":{"gdpr":3}}}`, "regs.ext.gdpr", "must be 0 or 1", 400},
		{`{"id":"x","imp":[{"id":"1"}],"regs":{"gpp_sid":[2,"7"]}}`, "regs.gpp_sid[1]", "must be an integer", 400},
		{`{"id":"x","imp":[{"id":"1"}],"app":{"publisher":{"id":5}}}`, "app.publisher.id", "must be a string", 400},
		{`{"id":"x","imp":[{"id":"1"}],"tmax":-5}`, "tmax", "must be between 0 and 2147483647", 400},
		{``, "body", "empty", 400},
		{` [1] `, "body", "must be a JSON object", 400},
		{`{"id":"x",}`, "body", "", 400},
		{`{"id":"\q"}`, "body", "", 400},
		{`{"id":"x","imp":[` + strings.Repeat(`{"id":"1"},`, MaxImps) + `{"id":"z"}]}`, "imp", "too many (max 16)", 413},
		{`{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, "body", "nested deeper than 16 levels", 400},
		{`{"a":[` + strings.Repeat("0,", MaxArrayLen) + `0]}`, "body", "an array has more than 512 elements", 400},
		{`{"a":"` + strings.Repeat("x", MaxBodyLen) + `"}`, "body", "too large (max 16384 bytes)", 413},
	}
	for _, c := range cases {
		_, err := parse(t, c.body)
		name := c.body
		if len(name) > 80 {
			name = name[:80]
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if err.Field != c.field || (c.reason != "" && err.Reason != c.reason) || err.Status != c.status {
			t.Errorf("%s: got %q (%d), want %s: %s (%d)", name, err.Error(), err.Status, c.field, c.reason, c.status)
		}
	}
}

// Many small arrays and objects under the per-array limit still stop at
// MaxNodes, before fastjson builds its value tree.
func TestParseNodeLimit(t *testing.T) {
	inner := `[` + strings.Repeat(`0,`, 499) + `0],`
	body := `{"a":[` + strings.Repeat(inner, MaxNodes/500+1) + `0]}`
	if len(body) > MaxBodyLen {
		t.Fatalf("test body %d bytes: over the body limit, not testing the node limit", len(body))
	}
	_, err := parse(t, body)
	if err == nil || err.Reason != "more than 4096 values" {
		t.Fatalf("got %v", err)
	}
}

// Brackets and commas inside strings are not structure.
func TestShapeIgnoresStrings(t *testing.T) {
	s := strings.Repeat(`[,{\"`, 200)
	r, err := parse(t, `{"id":"x","imp":[{"id":"1","tagid":"t"}],"user":{"consent":"`+s+`"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Consent) != strings.ReplaceAll(s, `\"`, `"`) {
		t.Fatalf("consent %q", r.Consent)
	}
}

// Only the first MaxFormats banner sizes are kept; w/h stays first.
func TestBannerFormatBound(t *testing.T) {
	body := `{"id":"x","imp":[{"id":"1","banner":{"w":1,"h":2,"format":[` + strings.Repeat(`{"w":3,"h":4},`, 40) + `{"w":5,"h":6}]}}]}`
	r, err := parse(t, body)
	if err != nil {
		t.Fatal(err)
	}
	sz := r.Imp[0].Banner.Sizes()
	if len(sz) != MaxFormats || sz[0] != (Size{W: 1, H: 2}) || sz[1] != (Size{W: 3, H: 4}) {
		t.Fatalf("%v", sz)
	}
}

// A reused Scratch parses a warm request without allocating.
func TestParseAllocs(t *testing.T) {
	body := []byte(inApp)
	var r Request
	var s Scratch
	if err := Parse(body, &r, &s); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := Parse(body, &r, &s); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocs per parse, want 0", n)
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(inApp)
	var r Request
	var s Scratch
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(body, &r, &s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCountryIndex(t *testing.T) {
	for in, want := range map[string]string{"USA": "US", "usa": "US", "DEU": "DE", "FRA": "FR", "JPN": "JP", "GBR": "GB", "BRA": "BR", "IND": "IN", "US": "US", "gb": "GB"} {
		idx, ok := CountryIndex([]byte(in))
		if !ok || snapshot.CountryCode(idx) != want {
			t.Errorf("%s: got %v %v, want %s", in, snapshot.CountryCode(idx), ok, want)
		}
	}
	for _, in := range []string{"", "U", "XXX", "ZZZ", "US1", "U5A", "USAA", "EUR"} {
		if _, ok := CountryIndex([]byte(in)); ok {
			t.Errorf("%q accepted", in)
		}
	}
	n := 0
	for _, v := range alpha3 {
		if v != 0 {
			n++
		}
	}
	if n < 240 {
		t.Errorf("only %d alpha-3 codes known", n)
	}
	if a := testing.AllocsPerRun(100, func() { CountryIndex([]byte("USA")) }); a != 0 {
		t.Errorf("%v allocs", a)
	}
}
