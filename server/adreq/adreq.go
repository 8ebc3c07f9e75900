// Package adreq parses and validates ad requests: GET /v1/ad query strings
// and POST /v1/ad JSON bodies carry the same fields and obey the same rules,
// so an SDK may use either.
//
// Both parsers allocate nothing on valid input: the byte fields of a Request
// alias the request (query) or the Scratch (JSON). Invalid input yields a
// *FieldError naming the first problem, for a 400 response.
//
// Fields and rules:
//
//	placement  required; 1..128 bytes of printable ASCII, no spaces
//	device     optional; <= 64 bytes of printable ASCII, no spaces; the
//	           all-zero IDFA/GAID (limit ad tracking) counts as absent
//	country    required; two letters, any case (normalised to upper case)
//	os         required; android or ios, any case
//	osv        optional; major[.minor[.patch]] (snapshot.ParseOSVersion)
//	devtype    optional; phone or tablet, any case; default phone
//	app        optional; <= 128 bytes of printable ASCII, no spaces
//
// An empty value counts as absent (SDK URL templates often leave blanks).
// The query parser ignores parameters it does not know (cache busters, SDK
// version tags); the JSON parser is strict and refuses unknown fields.
package adreq

import (
	"github.com/adedge/adedge/snapshot"
)

// Request is a validated ad request. Placement, Device and App alias the
// input and are valid only as long as it is (the request, or the Scratch
// passed to ParseJSON): copy them to keep them.
type Request struct {
	Placement, Device, App []byte
	Country                uint16 // snapshot.CountryIndex
	OS                     snapshot.OS
	OSVersion              uint32 // snapshot.ParseOSVersion; 0 when absent
	DeviceType             uint8  // snapshot.DevicePhone or snapshot.DeviceTablet
}

// Limits on field lengths, in bytes.
const (
	MaxPlacementLen = 128
	MaxDeviceLen    = 64
	MaxAppLen       = 128
	// MaxBodyLen bounds a POST body: a request is a few hundred bytes, and
	// the bound keeps a pooled Scratch from growing without limit.
	MaxBodyLen = 8192
)

// ZeroDeviceID is what iOS (IDFA) and Android (GAID) report when the user
// limits ad tracking. Every such device would share one frequency cap and
// one A/B bucket, so it is treated as no device at all.
const ZeroDeviceID = "00000000-0000-0000-0000-000000000000"

// FieldError says which field of a request is wrong and why; the handler
// answers 400 {"error": Error(), "field": Field}. Field is "body" for a POST
// body that is not a JSON object. Returned values may be shared: do not
// modify them.
type FieldError struct {
	Field, Reason string
}

// Error returns "field: reason", e.g. "placement: required".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

type field uint8

const (
	fPlacement field = iota
	fDevice
	fCountry
	fOS
	fOSV
	fDevType
	fApp
	numFields
)

var fieldNames = [numFields]string{"placement", "device", "country", "os", "osv", "devtype", "app"}

// lookupField maps a parameter or JSON key to its field.
func lookupField(key []byte) (field, bool) {
	switch string(key) { // no allocation: the compiler compares in place
	case "placement":
		return fPlacement, true
	case "device":
		return fDevice, true
	case "country":
		return fCountry, true
	case "os":
		return fOS, true
	case "osv":
		return fOSV, true
	case "devtype":
		return fDevType, true
	case "app":
		return fApp, true
	}
	return 0, false
}

// Preallocated errors keep a flood of bad requests from allocating.
var (
	errRequired  [numFields]*FieldError
	errDuplicate [numFields]*FieldError
	errNotString [numFields]*FieldError
	errTooLong   = [numFields]*FieldError{
		fPlacement: {"placement", "too long (max 128 bytes)"},
		fDevice:    {"device", "too long (max 64 bytes)"},
		fApp:       {"app", "too long (max 128 bytes)"},
	}
	errCharset [numFields]*FieldError
	errCountry = &FieldError{"country", "must be a two-letter country code"}
	errOS      = &FieldError{"os", "must be android or ios"}
	errOSV     = &FieldError{"osv", "must be a version like 17.1 (major[.minor[.patch]], minor and patch < 256)"}
	errDevType = &FieldError{"devtype", "must be phone or tablet"}

	errBodyEmpty     = &FieldError{"body", "empty"}
	errBodyTooLarge  = &FieldError{"body", "too large (max 8192 bytes)"}
	errBodyNotObject = &FieldError{"body", "must be a JSON object"}
)

func init() {
	for f := range numFields {
		n := fieldNames[f]
		errRequired[f] = &FieldError{n, "required"}
		errDuplicate[f] = &FieldError{n, "given more than once"}
		errNotString[f] = &FieldError{n, "must be a string"}
		errCharset[f] = &FieldError{n, "must be printable ASCII without spaces"}
	}
}

// IDChars reports whether every byte of b is printable ASCII other than
// space: ids end up in URLs, logs and report rows unescaped. The OpenRTB
// parser (server/ortb) applies the same rule to its ids.
func IDChars(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// fields tracks which fields a request named (to refuse duplicates) and
// which it gave a value (to check required ones): empty values count as
// absent, yet `device=&device=x` is still ambiguous.
type fields struct{ named, valued uint8 }

// set validates v as field f and stores it in dst.
func (fs *fields) set(dst *Request, f field, v []byte) *FieldError {
	if fs.named&(1<<f) != 0 {
		return errDuplicate[f]
	}
	fs.named |= 1 << f
	if len(v) == 0 {
		return nil
	}
	switch f {
	case fPlacement, fDevice, fApp:
		limit := MaxPlacementLen
		if f == fDevice {
			limit = MaxDeviceLen
		} else if f == fApp {
			limit = MaxAppLen
		}
		if len(v) > limit {
			return errTooLong[f]
		}
		if !IDChars(v) {
			return errCharset[f]
		}
		switch f {
		case fPlacement:
			dst.Placement = v
		case fDevice:
			if string(v) != ZeroDeviceID {
				dst.Device = v
			}
		case fApp:
			dst.App = v
		}
	case fCountry:
		if len(v) != 2 {
			return errCountry
		}
		cc := [2]byte{upper(v[0]), upper(v[1])}
		idx, ok := snapshot.CountryIndex(string(cc[:]))
		if !ok {
			return errCountry
		}
		dst.Country = idx
	case fOS:
		os, ok := ParseOS(v)
		if !ok {
			return errOS
		}
		dst.OS = os
	case fOSV:
		osv, ok := snapshot.ParseOSVersion(string(v))
		if !ok {
			return errOSV
		}
		dst.OSVersion = osv
	case fDevType:
		var low [6]byte // len("tablet")
		if len(v) > len(low) {
			return errDevType
		}
		dt, ok := snapshot.ParseDeviceType(string(lower(low[:0], v)))
		if !ok {
			return errDevType
		}
		dst.DeviceType = dt
	}
	fs.valued |= 1 << f
	return nil
}

// ParseOS reads an OS name in any case ("iOS", "android"): the rule of
// /v1/ad's os and OpenRTB's device.os.
func ParseOS(v []byte) (snapshot.OS, bool) {
	var low [7]byte // len("android")
	if len(v) > len(low) {
		return 0, false
	}
	return snapshot.ParseOS(string(lower(low[:0], v)))
}

// required reports the first required field without a value. With
// geo, a missing country is not an error: the caller derives it.
func (fs *fields) required(geo bool) *FieldError {
	for _, f := range [...]field{fPlacement, fCountry, fOS} {
		if fs.valued&(1<<f) == 0 && (f != fCountry || !geo) {
			return errRequired[f]
		}
	}
	return nil
}

// NoCountry is Request.Country after ParseQueryGeo or ParseJSONGeo when
// the request gave none: the caller finds it from the client IP.
const NoCountry uint16 = 0xFFFF

// ErrCountryRequired is the error for a request without a country that
// the client IP could not place either.
var ErrCountryRequired = &FieldError{"country", "required (not in the request, and the client IP is not in the geoip database)"}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
