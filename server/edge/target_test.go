package edge

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzTarget: wherever splitTarget takes a request target that fasthttp
// accepts (the server refuses the rest before any handler), its path and
// query are exactly fasthttp's parsed URI's; the cases it declines go to
// fasthttp itself.
func FuzzTarget(f *testing.F) {
	for _, s := range []string{
		"/v1/ad?placement=pl-1&country=US", "/health", "/v1/ad", "/v1/ad?", "/v1//ad?x=1", "/v1/./ad",
		"/v1/../health", "/v1/%61d?x", "/v1/ad#frag", "/v1/ad?x=1#f", "http://h/v1/ad?x=1", "*", "",
		"/v1/ad?a=%20b&c", "/a\\b", "/\xff", "/v1/ad?x=\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, uri []byte) {
		path, query, ok := splitTarget(uri)
		if !ok {
			return
		}
		var u fasthttp.URI
		if u.Parse([]byte("edge"), uri) != nil {
			return
		}
		if !bytes.Equal(path, u.Path()) || !bytes.Equal(query, u.QueryString()) {
			t.Fatalf("%q: split %q ? %q, fasthttp %q ? %q", uri, path, query, u.Path(), u.QueryString())
		}
	})
}

// TestTargetFallsBack: targets splitTarget declines still route by
// fasthttp's normalised path.
func TestTargetFallsBack(t *testing.T) {
	for _, tc := range []struct{ uri, path, query string }{
		{"/v1/ad?placement=p", "/v1/ad", "placement=p"},
		{"/v1//ad?placement=p", "/v1/ad", "placement=p"},
		{"/v1/%61d?x=1", "/v1/ad", "x=1"},
		{"http://edge/health", "/health", ""},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetRequestURI(tc.uri)
		ctx.Request.Header.SetHost("edge")
		p, q := target(&ctx)
		if string(p) != tc.path || string(q) != tc.query {
			t.Errorf("%q: %q ? %q, want %q ? %q", tc.uri, p, q, tc.path, tc.query)
		}
	}
}

// BenchmarkTarget is target on the suite's ad request line;
// BenchmarkTargetParsed is what it replaces, fasthttp's URI parse.
func BenchmarkTarget(b *testing.B)       { benchTarget(b, false) }
func BenchmarkTargetParsed(b *testing.B) { benchTarget(b, true) }

func benchTarget(b *testing.B, parsed bool) {
	var ctx fasthttp.RequestCtx
	uri := []byte("/v1/ad?placement=pl-0000001&country=US&os=android&osv=12&device=9195bb1b-fadd-4b94-9c7b-2e11a4070113")
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		ctx.Request.SetRequestURIBytes(uri)
		if parsed {
			n += len(ctx.Path()) + len(ctx.URI().QueryString())
		} else {
			p, q := target(&ctx)
			n += len(p) + len(q)
		}
	}
	if n != b.N*(len(uri)-1) {
		b.Fatalf("split lengths %d", n)
	}
}
