package adreq

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/adedge/adedge/snapshot"
	"github.com/valyala/fasthttp"
)

// checkRules fails t unless r obeys every rule in the package doc.
func checkRules(t *testing.T, r *Request) {
	t.Helper()
	if n := len(r.Placement); n < 1 || n > MaxPlacementLen || !IDChars(r.Placement) {
		t.Fatalf("accepted placement %q", r.Placement)
	}
	if len(r.Device) > MaxDeviceLen || !IDChars(r.Device) || string(r.Device) == ZeroDeviceID {
		t.Fatalf("accepted device %q", r.Device)
	}
	if r.Device != nil && len(r.Device) == 0 || r.App != nil && len(r.App) == 0 {
		t.Fatalf("empty but non-nil optional field: %+v", r)
	}
	if len(r.App) > MaxAppLen || !IDChars(r.App) {
		t.Fatalf("accepted app %q", r.App)
	}
	if r.Country >= snapshot.NumCountries || int(r.OS) >= snapshot.NumOS {
		t.Fatalf("accepted country %d, os %d", r.Country, r.OS)
	}
	if r.DeviceType != snapshot.DevicePhone && r.DeviceType != snapshot.DeviceTablet {
		t.Fatalf("accepted devtype %d", r.DeviceType)
	}
	if v, ok := snapshot.ParseOSVersion(snapshot.FormatOSVersion(r.OSVersion)); !ok || v != r.OSVersion {
		t.Fatalf("accepted osv %x", r.OSVersion)
	}
}

// canonical lists r's fields in their normalised input spelling.
func canonical(r *Request) map[string]string {
	m := map[string]string{
		"placement": string(r.Placement),
		"country":   snapshot.CountryCode(r.Country),
		"os":        r.OS.String(),
		"devtype":   "phone",
	}
	if r.DeviceType == snapshot.DeviceTablet {
		m["devtype"] = "tablet"
	}
	if r.Device != nil {
		m["device"] = string(r.Device)
	}
	if r.App != nil {
		m["app"] = string(r.App)
	}
	if r.OSVersion != 0 {
		m["osv"] = snapshot.FormatOSVersion(r.OSVersion)
	}
	return m
}

// FuzzParseQuery: no panic; anything accepted obeys the rules, and the JSON
// parser accepts the same request spelled as JSON.
func FuzzParseQuery(f *testing.F) {
	f.Add(benchQuery)
	f.Add("placement=p&country=US&os=ios")
	f.Add("placement=p&country=us&os=Android&osv=14.2&devtype=Tablet&app=com.x&device=" + ZeroDeviceID)
	f.Add("placement=a%20b&country=US&os=ios&placement=c")
	f.Add("placement&country&os=&osv=1..2&devtype=tv&=x&&")
	f.Fuzz(func(t *testing.T, raw string) {
		var args fasthttp.Args
		args.Parse(raw)
		var r Request
		if err := ParseQuery(&args, &r); err != nil {
			if err.Field == "" || err.Reason == "" {
				t.Fatalf("empty error %+v", err)
			}
			return
		}
		checkRules(t, &r)
		body, _ := json.Marshal(canonical(&r))
		var j Request
		var sc Scratch
		if err := ParseJSON(body, &j, &sc); err != nil {
			t.Fatalf("JSON refuses %s, accepted as query %q: %v", body, raw, err)
		}
		if !sameRequest(&r, &j) {
			t.Fatalf("query %q gives %+v, JSON %s gives %+v", raw, r, body, j)
		}
	})
}

// FuzzParseJSON: no panic; anything accepted obeys the rules, encoding/json
// reads the same values from the body, and the query parser agrees.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(benchJSON))
	f.Add([]byte(`{"placement":"p","country":"US","os":"ios"}`))
	f.Add([]byte(`{"placement":"p\u0041","country":"us","os":"IOS","device":null,"app":"a\/b","osv":"1.2"}`))
	f.Add([]byte(`{"placement":"p","country":"US","os":"ios","placement":"q"}`))
	f.Add([]byte(`{"app":[[{}]],"x":1.5e3,"y":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		var sc Scratch
		if err := ParseJSON(body, &r, &sc); err != nil {
			if err.Field == "" || err.Reason == "" {
				t.Fatalf("empty error %+v", err)
			}
			return
		}
		checkRules(t, &r)
		var m map[string]*string
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q, encoding/json refuses it: %v", body, err)
		}
		want := canonical(&r)
		for k, v := range m {
			if v == nil || *v == "" || k == "country" || k == "os" || k == "osv" || k == "devtype" {
				continue // absent, or normalised: compared through the query parser below
			}
			if k == "device" && *v == ZeroDeviceID {
				continue
			}
			if want[k] != *v {
				t.Fatalf("%s: encoding/json reads %q, ParseJSON %q", k, *v, want[k])
			}
		}
		var args fasthttp.Args
		for k, v := range m {
			if v != nil {
				args.Add(k, *v)
			}
		}
		var q Request
		if err := ParseQuery(&args, &q); err != nil {
			t.Fatalf("query parser refuses %q: %v", body, err)
		}
		if !sameRequest(&q, &r) || !bytes.Equal(q.Placement, r.Placement) {
			t.Fatalf("JSON %q gives %+v, query gives %+v", body, r, q)
		}
	})
}

// FuzzParseRawQuery: the raw-query parser the serving path uses gives
// exactly ParseQuery's answer on fasthttp's Args for every query string
// (the oracle), in both geo modes, and never allocates beyond its buffer.
func FuzzParseRawQuery(f *testing.F) {
	f.Add(benchQuery)
	f.Add("placement=p&country=US&os=ios")
	f.Add("placement=a%20b&country=US&os=ios&placement=c")
	f.Add("placement&country&os=&osv=1..2&devtype=tv&=x&&")
	f.Add("pl%61cement=p1&country=u%53&os=i+os&device=%zz&app=%4")
	f.Add("=&&=&placement==x=&country=US=&os=ios")
	f.Fuzz(func(t *testing.T, raw string) {
		var args fasthttp.Args
		args.Parse(raw)
		for _, geo := range []bool{false, true} {
			var want, got Request
			var werr, gerr *FieldError
			var buf []byte
			q := []byte(raw)
			if geo {
				werr, gerr = ParseQueryGeo(&args, &want), ParseRawQueryGeo(q, &buf, &got)
			} else {
				werr, gerr = ParseQuery(&args, &want), ParseRawQuery(q, &buf, &got)
			}
			if (werr == nil) != (gerr == nil) || werr != nil && *werr != *gerr {
				t.Fatalf("query %q geo %v: Args error %v, raw error %v", raw, geo, werr, gerr)
			}
			if !sameRequest(&want, &got) {
				t.Fatalf("query %q geo %v: Args gives %+v, raw %+v", raw, geo, want, got)
			}
		}
	})
}
