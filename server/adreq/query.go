package adreq

import (
	"github.com/adedge/adedge/snapshot"
	"github.com/valyala/fasthttp"
)

// ParseQuery fills dst from GET /v1/ad query arguments
// (placement, device, country, os, osv, devtype, app; others are ignored).
// fasthttp has already percent-decoded them; dst's byte fields alias args.
// It returns nil or the first problem found.
func ParseQuery(args *fasthttp.Args, dst *Request) *FieldError {
	return parseQuery(args, dst, false)
}

// ParseQueryGeo is ParseQuery for an edge with a geoip database: a
// missing country leaves dst.Country at NoCountry instead of failing.
func ParseQueryGeo(args *fasthttp.Args, dst *Request) *FieldError {
	return parseQuery(args, dst, true)
}

func parseQuery(args *fasthttp.Args, dst *Request, geo bool) *FieldError {
	*dst = Request{DeviceType: snapshot.DevicePhone}
	if geo {
		dst.Country = NoCountry
	}
	var fs fields
	for k, v := range args.All() {
		f, ok := lookupField(k)
		if !ok {
			continue
		}
		if err := fs.set(dst, f, v); err != nil {
			*dst = Request{}
			return err
		}
	}
	if err := fs.required(geo); err != nil {
		*dst = Request{}
		return err
	}
	return nil
}
