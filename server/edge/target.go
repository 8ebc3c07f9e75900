package edge

import "github.com/valyala/fasthttp"

// target is a request's path and raw query. For the usual origin-form
// target ("/v1/ad?placement=..."), whose path needs none of fasthttp's
// normalising, it splits the request line's target in place: fasthttp's
// URI parse (host, path normalisation, query split) was 2.7% of the
// event-loop edge's CPU under wrk (docs/BENCHMARKS.md, "the edge on event
// loops"). Any other target (an absolute URI, percent-escapes, "//" or
// "/." in the path, a fragment, bytes outside printable ASCII) takes
// fasthttp's parsed URI, so both give the same answer (FuzzTarget holds
// them to it).
func target(ctx *fasthttp.RequestCtx) (path, query []byte) {
	if p, q, ok := splitTarget(ctx.Request.Header.RequestURI()); ok {
		return p, q
	}
	u := ctx.URI()
	return u.Path(), u.QueryString()
}

// splitTarget splits an origin-form target whose path fasthttp would leave
// as it is; ok is false for any other.
func splitTarget(uri []byte) (path, query []byte, ok bool) {
	if len(uri) == 0 || uri[0] != '/' {
		return nil, nil, false
	}
	path = uri
	for i, c := range uri {
		switch {
		case c == '?':
			path, query = uri[:i], uri[i+1:]
			for _, c := range query {
				if c == '#' || c < 0x21 || c > 0x7e {
					return nil, nil, false
				}
			}
			return path, query, true
		case c == '%' || c == '#' || c == '\\' || c < 0x21 || c > 0x7e:
			return nil, nil, false
		case c == '/' && i+1 < len(uri) && (uri[i+1] == '/' || uri[i+1] == '.'):
			return nil, nil, false
		}
	}
	return path, nil, true
}
