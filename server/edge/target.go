package edge

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// target is a request's path and raw query. For the usual origin-form
// target ("/v1/ad?placement=..."), whose path needs none of fasthttp's
// normalising, it splits the request line's target in place: fasthttp's
// URI parse (host, path normalisation, query split) was 2.7% of the
// event-loop edge's CPU under wrk (docs/BENCHMARKS.md, "the edge on event
// loops"). Any other target (an absolute URI, percent-escapes, "//" or
// "/." in the path, a fragment, path bytes outside printable ASCII) takes
// fasthttp's parsed URI, so both give the same answer for every target
// fasthttp accepts (FuzzTarget holds them to it).
func target(ctx *fasthttp.RequestCtx) (path, query []byte) {
	if p, q, ok := splitTarget(ctx.Request.Header.RequestURI()); ok {
		return p, q
	}
	u := ctx.URI()
	return u.Path(), u.QueryString()
}

// splitTarget splits an origin-form target whose path fasthttp would leave
// as it is; ok is false for any other. The query is not scanned byte by
// byte: a target with control bytes never reaches a handler (fasthttp's
// server, and server/evloop's checkTarget, answer 400 first), so only a
// fragment can make fasthttp's query differ from the raw one.
func splitTarget(uri []byte) (path, query []byte, ok bool) {
	if len(uri) == 0 || uri[0] != '/' || bytes.IndexByte(uri, '#') >= 0 {
		return nil, nil, false
	}
	path = uri
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		path, query = uri[:q], uri[q+1:]
	}
	for i, c := range path {
		if c == '%' || c == '\\' || c < 0x21 || c > 0x7e || (c == '/' && i+1 < len(path) && (path[i+1] == '/' || path[i+1] == '.')) {
			return nil, nil, false
		}
	}
	return path, query, true
}
