package adreq

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/adedge/adedge/snapshot"
	"github.com/valyala/fasthttp"
)

const idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"

// parseBoth runs the same fields through both parsers: as a query string and
// as a JSON object with the same members (values given as strings).
func parseBoth(t *testing.T, kv [][2]string) (q, j Request, qerr, jerr *FieldError) {
	t.Helper()
	var qs, js strings.Builder
	js.WriteByte('{')
	for i, p := range kv {
		if i > 0 {
			qs.WriteByte('&')
			js.WriteByte(',')
		}
		qs.WriteString(url.QueryEscape(p[0]) + "=" + url.QueryEscape(p[1]))
		k, _ := json.Marshal(p[0])
		v, _ := json.Marshal(p[1])
		js.Write(k)
		js.WriteByte(':')
		js.Write(v)
	}
	js.WriteByte('}')
	var args fasthttp.Args
	args.Parse(qs.String())
	qerr = ParseQuery(&args, &q)
	var sc Scratch
	jerr = ParseJSON([]byte(js.String()), &j, &sc)
	// Copy aliased fields so they outlive args and scratch.
	for _, r := range []*Request{&q, &j} {
		r.Placement, r.Device, r.App = clone(r.Placement), clone(r.Device), clone(r.App)
	}
	return
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func base() [][2]string {
	return [][2]string{{"placement", "home_banner"}, {"country", "US"}, {"os", "ios"}}
}

func with(kv [][2]string, extra ...string) [][2]string {
	out := append([][2]string(nil), kv...)
	for i := 0; i < len(extra); i += 2 {
		replaced := false
		for j := range out {
			if out[j][0] == extra[i] {
				out[j][1] = extra[i+1]
				replaced = true
			}
		}
		if !replaced {
			out = append(out, [2]string{extra[i], extra[i+1]})
		}
	}
	return out
}

func without(kv [][2]string, key string) [][2]string {
	var out [][2]string
	for _, p := range kv {
		if p[0] != key {
			out = append(out, p)
		}
	}
	return out
}

func sameRequest(a, b *Request) bool {
	return string(a.Placement) == string(b.Placement) && string(a.Device) == string(b.Device) &&
		string(a.App) == string(b.App) && (a.Placement == nil) == (b.Placement == nil) &&
		(a.Device == nil) == (b.Device == nil) && (a.App == nil) == (b.App == nil) &&
		a.Country == b.Country && a.OS == b.OS && a.OSVersion == b.OSVersion && a.DeviceType == b.DeviceType
}

func country(t *testing.T, cc string) uint16 {
	i, ok := snapshot.CountryIndex(cc)
	if !ok {
		t.Fatal(cc)
	}
	return i
}

func TestValid(t *testing.T) {
	for name, c := range map[string]struct {
		kv   [][2]string
		want Request
	}{
		"minimal": {base(), Request{Placement: []byte("home_banner"), Country: country(t, "US"), OS: snapshot.OSiOS, DeviceType: snapshot.DevicePhone}},
		"full": {with(base(), "device", idfa, "osv", "17.1", "devtype", "tablet", "app", "com.example.game"),
			Request{Placement: []byte("home_banner"), Device: []byte(idfa), App: []byte("com.example.game"),
				Country: country(t, "US"), OS: snapshot.OSiOS, OSVersion: 17<<16 | 1<<8, DeviceType: snapshot.DeviceTablet}},
		"case-insensitive": {with(base(), "country", "de", "os", "Android", "devtype", "PHONE"),
			Request{Placement: []byte("home_banner"), Country: country(t, "DE"), OS: snapshot.OSAndroid, DeviceType: snapshot.DevicePhone}},
		"mixed-case country": {with(base(), "country", "gB"),
			Request{Placement: []byte("home_banner"), Country: country(t, "GB"), OS: snapshot.OSiOS, DeviceType: snapshot.DevicePhone}},
		"zero IDFA is no device": {with(base(), "device", ZeroDeviceID),
			Request{Placement: []byte("home_banner"), Country: country(t, "US"), OS: snapshot.OSiOS, DeviceType: snapshot.DevicePhone}},
		"empty optionals are absent": {with(base(), "device", "", "osv", "", "devtype", "", "app", ""),
			Request{Placement: []byte("home_banner"), Country: country(t, "US"), OS: snapshot.OSiOS, DeviceType: snapshot.DevicePhone}},
		"max lengths and punctuation": {with(base(), "placement", strings.Repeat("p", 127)+"~", "device", strings.Repeat("!", 64), "app", strings.Repeat("a", 128)),
			Request{Placement: []byte(strings.Repeat("p", 127) + "~"), Device: []byte(strings.Repeat("!", 64)), App: []byte(strings.Repeat("a", 128)),
				Country: country(t, "US"), OS: snapshot.OSiOS, DeviceType: snapshot.DevicePhone}},
		"osv major only": {with(base(), "osv", "14"),
			Request{Placement: []byte("home_banner"), Country: country(t, "US"), OS: snapshot.OSiOS, OSVersion: 14 << 16, DeviceType: snapshot.DevicePhone}},
	} {
		t.Run(name, func(t *testing.T) {
			q, j, qerr, jerr := parseBoth(t, c.kv)
			if qerr != nil || jerr != nil {
				t.Fatalf("query: %v, json: %v", qerr, jerr)
			}
			if !sameRequest(&q, &c.want) {
				t.Errorf("query: got %+v\nwant %+v", q, c.want)
			}
			if !sameRequest(&j, &c.want) {
				t.Errorf("json: got %+v\nwant %+v", j, c.want)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	for _, c := range []struct {
		kv      [][2]string
		message string
	}{
		{without(base(), "placement"), "placement: required"},
		{with(base(), "placement", ""), "placement: required"},
		{with(base(), "placement", strings.Repeat("p", 129)), "placement: too long (max 128 bytes)"},
		{with(base(), "placement", "home banner"), "placement: must be printable ASCII without spaces"},
		{with(base(), "placement", "caf\u00e9"), "placement: must be printable ASCII without spaces"},
		{with(base(), "placement", "a\tb"), "placement: must be printable ASCII without spaces"},
		{with(base(), "device", strings.Repeat("d", 65)), "device: too long (max 64 bytes)"},
		{with(base(), "device", "abc\x7f"), "device: must be printable ASCII without spaces"},
		{without(base(), "country"), "country: required"},
		{with(base(), "country", ""), "country: required"},
		{with(base(), "country", "USA"), "country: must be a two-letter country code"},
		{with(base(), "country", "U"), "country: must be a two-letter country code"},
		{with(base(), "country", "U1"), "country: must be a two-letter country code"},
		{without(base(), "os"), "os: required"},
		{with(base(), "os", "windows"), "os: must be android or ios"},
		{with(base(), "os", "androidx"), "os: must be android or ios"},
		{with(base(), "os", "iOS 17"), "os: must be android or ios"},
		{with(base(), "osv", "17.1.2.3"), "osv: must be a version like 17.1 (major[.minor[.patch]], minor and patch < 256)"},
		{with(base(), "osv", "17.beta"), "osv: must be a version like 17.1 (major[.minor[.patch]], minor and patch < 256)"},
		{with(base(), "osv", "1.256"), "osv: must be a version like 17.1 (major[.minor[.patch]], minor and patch < 256)"},
		{with(base(), "devtype", "tv"), "devtype: must be phone or tablet"},
		{with(base(), "devtype", "smartphone"), "devtype: must be phone or tablet"},
		{with(base(), "app", strings.Repeat("a", 129)), "app: too long (max 128 bytes)"},
		{with(base(), "app", "my app"), "app: must be printable ASCII without spaces"},
		{nil, "placement: required"},
	} {
		q, j, qerr, jerr := parseBoth(t, c.kv)
		for name, err := range map[string]*FieldError{"query": qerr, "json": jerr} {
			if err == nil || err.Error() != c.message {
				t.Errorf("%s %v: got %v, want %q", name, c.kv, err, c.message)
			} else if !strings.HasPrefix(c.message, err.Field+": ") {
				t.Errorf("%s: Field %q does not match %q", name, err.Field, c.message)
			}
		}
		if !sameRequest(&q, &Request{}) || !sameRequest(&j, &Request{}) {
			t.Errorf("%v: dst not cleared on error: %+v %+v", c.kv, q, j)
		}
	}
}

func TestQueryRepeatedAndUnknown(t *testing.T) {
	for qs, want := range map[string]string{
		"placement=a&country=US&os=ios&placement=b":      "placement: given more than once",
		"placement=a&country=US&os=ios&device=&device=x": "device: given more than once",
		"placement=a&country=US&os=ios&_=1733&sdk=4.2":   "",
		"placement=a+b&country=US&os=ios":                "placement: must be printable ASCII without spaces",
		"placement=a%20b&country=US&os=ios":              "placement: must be printable ASCII without spaces",
		"placement=a%2Fb&country=US&os=ios":              "",
		"placement&country=US&os=ios":                    "placement: required",
		"":                                               "placement: required",
	} {
		var args fasthttp.Args
		args.Parse(qs)
		var r Request
		err := ParseQuery(&args, &r)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", qs, got, want)
		}
	}
}

func TestJSONStrict(t *testing.T) {
	const ok = `"placement":"p","country":"US","os":"ios"`
	for body, want := range map[string]string{
		`{` + ok + `}`:                          "",
		" \n{ " + ok + " }\n":                   "",
		`{` + ok + `,"device":null,"app":null}`: "",
		`{"placement":"p\u0031","country":"U\u0053","os":"\/ios"}`: "os: must be android or ios",
		`{"placement":"p\/1","country":"US","os":"i\u006fs"}`:      "",
		`{` + ok + `,"":""}`:                                           `"": unknown field`,
		`{` + ok + `,"colour":"red"}`:                                  "colour: unknown field",
		`{` + ok + `,"Placement":"x"}`:                                 "Placement: unknown field",
		`{` + ok + `,"a\u0000b":1}`:                                    "a?b: unknown field",
		`{` + ok + `,"placement":"q"}`:                                 "placement: given more than once",
		`{` + ok + `,"pl\u0061cement":"q"}`:                            "placement: given more than once",
		`{` + ok + `,"device":"a","device":"a"}`:                       "device: given more than once",
		`{` + ok + `,"osv":17.1}`:                                      "osv: must be a string",
		`{` + ok + `,"devtype":["phone"]}`:                             "devtype: must be a string",
		`{` + ok + `,"app":{"id":"x"}}`:                                "app: must be a string",
		`{` + ok + `,"device":true}`:                                   "device: must be a string",
		`{"placement":null,"country":"US","os":"ios"}`:                 "placement: required",
		`{"placement":"p","country":"US","os":"ios","placement":null}`: "placement: given more than once",
		`{"placement":"home banner","country":"US","os":"ios"}`:        "placement: must be printable ASCII without spaces",
		`{"placement":"p\n","country":"US","os":"ios"}`:                "placement: must be printable ASCII without spaces",
		`{"placement":"p\u00e9","country":"US","os":"ios"}`:            "placement: must be printable ASCII without spaces",
		`[` + `{` + ok + `}]`:                                          "body: must be a JSON object",
		`"placement"`:                                                  "body: must be a JSON object",
		`null`:                                                         "body: must be a JSON object",
		`42`:                                                           "body: must be a JSON object",
		``:                                                             "body: empty",
		" \r\n\t":                                                      "body: empty",
		`{}`:                                                           "placement: required",
		`{"app":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`: "app: must be a string",
	} {
		var r Request
		var sc Scratch
		err := ParseJSON([]byte(body), &r, &sc)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", body, got, want)
		}
	}
}

func TestJSONSyntaxErrors(t *testing.T) {
	const ok = `"placement":"p","country":"US","os":"ios"`
	for _, body := range []string{
		`{` + ok,
		`{` + ok + `}}`,
		`{` + ok + `}{}`,
		`{` + ok + `,}`,
		`{'placement':'p'}`,
		`{placement:"p"}`,
		`{` + ok + `,"app":"\q"}`,
		`{` + ok + `,"app":"\u12"}`,
		`{` + ok + `,"app":"unterminated}`,
		`{` + ok + `,"osv":01}`,
		`{` + ok + `,"osv":1.}`,
		`{` + ok + `,"osv":NaN}`,
		`{` + ok + `} // comment`,
		`{"app":` + strings.Repeat(`[`, 1000) + strings.Repeat(`]`, 1000) + `}`, // deeper than fastjson.MaxDepth
	} {
		var r Request
		var sc Scratch
		err := ParseJSON([]byte(body), &r, &sc)
		if err == nil || err.Field != "body" || !strings.HasPrefix(err.Reason, "invalid JSON") {
			t.Errorf("%.60s: got %v, want a body: invalid JSON error", body, err)
		}
	}
	var r Request
	var sc Scratch
	big := `{` + `"placement":"p","country":"US","os":"ios"` + strings.Repeat(" ", MaxBodyLen) + `}`
	if err := ParseJSON([]byte(big), &r, &sc); err == nil || err.Error() != "body: too large (max 8192 bytes)" {
		t.Errorf("oversized body: %v", err)
	}
}

func TestUnknownFieldNameSanitised(t *testing.T) {
	key := strings.Repeat("k", 200)
	var r Request
	var sc Scratch
	err := ParseJSON([]byte(`{"`+key+`":"v"}`), &r, &sc)
	if err == nil || err.Field != strings.Repeat("k", 64)+"..." || err.Reason != "unknown field" {
		t.Fatalf("got %+v", err)
	}
}

func TestJSONAliasesScratchNotBody(t *testing.T) {
	body := []byte(`{"placement":"p\u0041","country":"US","os":"ios","app":"com.x"}`)
	var r Request
	var sc Scratch
	if err := ParseJSON(body, &r, &sc); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X' // the server may reuse the body buffer; r must not change
	}
	if string(r.Placement) != "pA" || string(r.App) != "com.x" {
		t.Fatalf("request changed with the body: %q %q", r.Placement, r.App)
	}
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	var args fasthttp.Args
	args.Parse(benchQuery)
	var r Request
	if n := testing.AllocsPerRun(200, func() {
		if err := ParseQuery(&args, &r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ParseQuery: %v allocs, want 0", n)
	}
	var sc Scratch
	body := []byte(benchJSON)
	if n := testing.AllocsPerRun(200, func() {
		if err := ParseJSON(body, &r, &sc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ParseJSON: %v allocs, want 0", n)
	}
	escaped := []byte(`{"placement":"home\/banner","device":"` + idfa + `","country":"us","os":"IOS","app":"com\u002eexample"}`)
	if n := testing.AllocsPerRun(200, func() {
		if err := ParseJSON(escaped, &r, &sc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ParseJSON with escapes: %v allocs, want 0", n)
	}
	var buf []byte
	for _, q := range []string{benchQuery, "placement=a%2Db&device=ab%2Dcd&country=us&os=ios"} {
		raw := []byte(q)
		if n := testing.AllocsPerRun(200, func() {
			if err := ParseRawQuery(raw, &buf, &r); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("ParseRawQuery(%q): %v allocs, want 0", q, n)
		}
	}
	args.Parse("placement=p&country=US")
	if n := testing.AllocsPerRun(200, func() { _ = ParseQuery(&args, &r) }); n != 0 {
		t.Errorf("ParseQuery error path: %v allocs, want 0", n)
	}
}

const (
	benchQuery = "placement=home_banner_320x50&device=" + idfa + "&country=us&os=ios&osv=17.1.2&devtype=phone&app=com.example.game&_=1733456"
	benchJSON  = `{"placement":"home_banner_320x50","device":"` + idfa + `","country":"US","os":"ios","osv":"17.1.2","devtype":"phone","app":"com.example.game"}`
)

func BenchmarkParseQuery(b *testing.B) {
	var args fasthttp.Args
	args.Parse(benchQuery)
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseQuery(&args, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseQueryWithArgs is the old serving path's whole query cost:
// fasthttp's Args split and decode, then ParseQuery (BenchmarkParseQuery
// leaves the split out).
func BenchmarkParseQueryWithArgs(b *testing.B) {
	var args fasthttp.Args
	raw := []byte(benchQuery)
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		args.ParseBytes(raw)
		if err := ParseQuery(&args, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRawQuery is the serving path's: split, decode and parse.
func BenchmarkParseRawQuery(b *testing.B) {
	raw := []byte(benchQuery)
	var buf []byte
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseRawQuery(raw, &buf, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSON(b *testing.B) {
	body := []byte(benchJSON)
	var r Request
	var sc Scratch
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseJSON(body, &r, &sc); err != nil {
			b.Fatal(err)
		}
	}
}
