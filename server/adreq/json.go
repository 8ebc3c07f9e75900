package adreq

import (
	"github.com/adedge/adedge/snapshot"
	"github.com/valyala/fastjson"
)

// Scratch is ParseJSON's reusable memory (the decoded body). Keep one per
// worker or pooled request context; it must not be used by two requests at
// once, and a Request parsed with it is valid until its next use.
type Scratch struct {
	p fastjson.Parser
}

// ParseJSON fills dst from a POST /v1/ad body, a flat JSON object whose
// members are the query parameters with string values, e.g.
//
//	{"placement":"p1","device":"…","country":"US","os":"ios","osv":"17.1"}
//
// It is strict so SDK bugs surface at integration time rather than as
// silently ignored targeting: the body must be a single valid JSON object
// (RFC 8259) of at most MaxBodyLen bytes; unknown members, repeated members
// and non-string values are refused, except that null counts as absent.
// String escapes are decoded into scratch, and dst's byte fields alias it.
func ParseJSON(body []byte, dst *Request, scratch *Scratch) *FieldError {
	return parseJSON(body, dst, scratch, false)
}

// ParseJSONGeo is ParseJSON for an edge with a geoip database: a missing
// country leaves dst.Country at NoCountry instead of failing.
func ParseJSONGeo(body []byte, dst *Request, scratch *Scratch) *FieldError {
	return parseJSON(body, dst, scratch, true)
}

func parseJSON(body []byte, dst *Request, scratch *Scratch, geo bool) *FieldError {
	*dst = Request{}
	if len(body) > MaxBodyLen {
		return errBodyTooLarge
	}
	// fastjson's parser is lenient about escapes (\q passes as is);
	// validating first makes the accepted grammar exactly JSON's.
	if err := fastjson.ValidateBytes(body); err != nil {
		if IsBlank(body) {
			return errBodyEmpty
		}
		return &FieldError{"body", "invalid JSON: " + err.Error()}
	}
	v, err := scratch.p.ParseBytes(body)
	if err != nil { // valid JSON nested deeper than fastjson.MaxDepth
		return &FieldError{"body", "invalid JSON: " + err.Error()}
	}
	obj, err := v.Object()
	if err != nil {
		return errBodyNotObject
	}
	r := Request{DeviceType: snapshot.DevicePhone}
	if geo {
		r.Country = NoCountry
	}
	var fs fields
	var first *FieldError
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if first != nil {
			return
		}
		f, ok := lookupField(key)
		if !ok {
			first = &FieldError{sanitize(key), "unknown field"}
			return
		}
		var s []byte
		switch v.Type() {
		case fastjson.TypeString:
			s, _ = v.StringBytes()
		case fastjson.TypeNull:
		default:
			first = errNotString[f]
			return
		}
		first = fs.set(&r, f, s)
	})
	if first != nil {
		return first
	}
	if err := fs.required(geo); err != nil {
		return err
	}
	*dst = r
	return nil
}

// IsBlank reports whether b is only JSON whitespace (an empty body).
func IsBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// sanitize makes an unknown key safe to echo in an error: at most 64 bytes,
// non-printable bytes replaced by '?', and `""` for the empty key.
func sanitize(key []byte) string {
	const max = 64
	if len(key) == 0 {
		return `""`
	}
	b := make([]byte, 0, max+3)
	for i, c := range key {
		if i == max {
			b = append(b, "..."...)
			break
		}
		if c < ' ' || c > '~' {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}
