package adreq

import (
	"bytes"

	"github.com/adedge/adedge/snapshot"
	"github.com/valyala/fasthttp"
)

// ParseQuery fills dst from GET /v1/ad query arguments
// (placement, device, country, os, osv, devtype, app; others are ignored).
// fasthttp has already percent-decoded them; dst's byte fields alias args.
// It returns nil or the first problem found. The serving path parses the
// raw query instead (ParseRawQuery); this is the reference that
// FuzzParseRawQuery holds it to.
func ParseQuery(args *fasthttp.Args, dst *Request) *FieldError {
	return parseArgs(args, dst, false)
}

// ParseQueryGeo is ParseQuery for an edge with a geoip database: a
// missing country leaves dst.Country at NoCountry instead of failing.
func ParseQueryGeo(args *fasthttp.Args, dst *Request) *FieldError {
	return parseArgs(args, dst, true)
}

// ParseRawQuery is ParseQuery on the raw query string (the request URI
// after '?', before any '#'; fasthttp's URI.QueryString) without
// fasthttp's Args, which split and copy every pair first: the serving
// path's GET /v1/ad uses it (docs/BENCHMARKS.md, "raw query"). Pairs
// split and decode exactly as fasthttp.Args does (FuzzParseRawQuery holds
// the two to the same answer); decoding goes through
// fasthttp.AppendUnquotedArg. A pair without '%' or '+' aliases q; one
// with them is decoded into *buf, whose capacity is made len(q) once so
// decoded values never move.
func ParseRawQuery(q []byte, buf *[]byte, dst *Request) *FieldError {
	return parseRaw(q, buf, dst, false)
}

// ParseRawQueryGeo is ParseRawQuery for an edge with a geoip database
// (see ParseQueryGeo).
func ParseRawQueryGeo(q []byte, buf *[]byte, dst *Request) *FieldError {
	return parseRaw(q, buf, dst, true)
}

func parseArgs(args *fasthttp.Args, dst *Request, geo bool) *FieldError {
	p := startQuery(dst, geo)
	for k, v := range args.All() {
		if err := p.pair(k, v); err != nil {
			return err
		}
	}
	return p.finish()
}

// parseRaw splits q on '&' and each pair on its first '=' as fasthttp's
// argsScanner does, dropping empty pairs as it does, and decodes keys and
// values as its decodeArgAppend does.
func parseRaw(q []byte, buf *[]byte, dst *Request, geo bool) *FieldError {
	if cap(*buf) < len(q) {
		*buf = make([]byte, 0, len(q))
	}
	*buf = (*buf)[:0]
	p := startQuery(dst, geo)
	for len(q) > 0 {
		pair := q
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			q = nil
		}
		k, v := pair, pair[len(pair):]
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			k, v = pair[:i], pair[i+1:]
		}
		if len(k) == 0 && len(v) == 0 {
			continue
		}
		if err := p.pair(unquote(k, buf), unquote(v, buf)); err != nil {
			return err
		}
	}
	return p.finish()
}

// unquote is src decoded: src itself when nothing in it is encoded, else
// its decoding appended to *buf (which never grows: decoding only
// shortens, and the caller sized it to the whole query).
func unquote(src []byte, buf *[]byte) []byte {
	if bytes.IndexByte(src, '%') < 0 && bytes.IndexByte(src, '+') < 0 {
		return src
	}
	n := len(*buf)
	*buf = fasthttp.AppendUnquotedArg(*buf, src)
	return (*buf)[n:len(*buf):len(*buf)]
}

// queryParser is one query's parse in progress, shared by the Args and
// raw paths so the field rules live once.
type queryParser struct {
	dst *Request
	fs  fields
	geo bool
}

func startQuery(dst *Request, geo bool) queryParser {
	*dst = Request{DeviceType: snapshot.DevicePhone}
	if geo {
		dst.Country = NoCountry
	}
	return queryParser{dst: dst, geo: geo}
}

// pair applies one decoded key/value; unknown keys are ignored.
func (p *queryParser) pair(k, v []byte) *FieldError {
	f, ok := lookupField(k)
	if !ok {
		return nil
	}
	if err := p.fs.set(p.dst, f, v); err != nil {
		*p.dst = Request{}
		return err
	}
	return nil
}

// finish checks the required fields once every pair is in.
func (p *queryParser) finish() *FieldError {
	if err := p.fs.required(p.geo); err != nil {
		*p.dst = Request{}
		return err
	}
	return nil
}
