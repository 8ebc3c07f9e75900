// Package ortb parses the OpenRTB 2.6 BidRequest subset that
// POST /openrtb2/auction serves: the fields an SDK-side mediation layer or
// prebid-style client sends for in-app inventory (docs/API.md lists them).
//
// It follows OpenRTB's extension rule: members it does not know, at any
// level, are ignored, so a full request from another exchange parses. A
// member it knows with the wrong type is a 400 naming the JSON path
// (`imp[1].video.maxduration: must be an integer`). Before the body is
// decoded, one pass over its bytes refuses a body over MaxBodyLen (413),
// nesting deeper than MaxDepth, an array longer than MaxArrayLen and more
// than MaxNodes values in all (400), so a hostile body costs neither memory
// nor time in the decoder.
//
// Parsing allocates nothing on valid input once a Scratch has warmed up:
// byte fields alias the Scratch's decoded copy of the body.
package ortb

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/adedge/adedge/server/adreq"
	"github.com/adedge/adedge/snapshot"
)

// Limits on a request's shape. An in-app request is 1-3 KiB with a few
// hundred values; the bounds leave room for long consent strings and
// exchange extensions while keeping a pooled Scratch small.
const (
	MaxBodyLen  = 16 << 10 // bytes; over it: 413 (the serving port reads no more)
	MaxImps     = 16       // imp[] elements; over it: 413
	MaxDepth    = 16       // nesting of objects and arrays
	MaxArrayLen = 512      // elements of any one array
	MaxNodes    = 4096     // values in the whole body
	MaxFormats  = 16       // banner.format[] sizes kept (the rest are checked and dropped)
	MaxMimes    = 16       // video.mimes[] kept
	MaxCats     = 16       // app.cat[] kept
	MaxGPPSIDs  = 16       // regs.gpp_sid[] kept

	MaxIDLen      = 128 // request, imp, tag and publisher ids, bundle, make, model, os, osv
	MaxDeviceLen  = 64  // device.ifa (IDFA/GAID are 36)
	MaxIPLen      = 45  // longest textual IPv6
	MaxUALen      = 1024
	MaxConsentLen = 8 << 10 // TCF and GPP strings grow with the vendor list
	MaxShortLen   = 64      // country, mime types, categories, us_privacy
)

// Status codes an Error carries.
const (
	StatusBadRequest = 400
	StatusTooLarge   = 413
)

// Error says which member of a request is wrong and why: the handler
// answers Status with {"error": Error(), "field": Field}.
type Error struct {
	Field, Reason string
	Status        int
}

// Error returns "path: reason", e.g. "imp[1].video.maxduration: must be an integer".
func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Tri is an OpenRTB integer flag that may be absent: Unset, 0 or 1.
type Tri int8

// Tri values.
const (
	Unset Tri = -1
	No    Tri = 0
	Yes   Tri = 1
)

// Size is a banner size: the snapshot's type, so selection matches the
// request's sizes against creatives without a copy.
type Size = snapshot.Size

// Banner is imp.banner.
type Banner struct {
	W, H    uint16
	Format  [MaxFormats]Size
	NFormat int
}

// Sizes returns the accepted sizes: w/h first when given, then format[].
func (b *Banner) Sizes() []Size { return b.Format[:b.NFormat] }

// Video is imp.video.
type Video struct {
	Mimes                    [MaxMimes][]byte
	NMimes                   int
	Protocols                uint64 // bit n set: protocol n accepted (AdCOM list; n < 64)
	W, H                     uint16
	MinDuration, MaxDuration int32 // seconds; 0 = not given
	Plcmt                    int32
}

// MimeList returns the accepted mime types.
func (v *Video) MimeList() [][]byte { return v.Mimes[:v.NMimes] }

// Imp is one impression opportunity.
type Imp struct {
	ID, TagID []byte
	HasBanner bool
	Banner    Banner
	HasVideo  bool
	Video     Video
	HasNative bool
	Instl     bool
	Rwdd      bool
	BidFloor  float64 // CPM in BidFloorCur (USD when absent)
	FloorCur  []byte
}

// App is the app object.
type App struct {
	Bundle, PublisherID []byte
	Cat                 [MaxCats][]byte
	NCat                int
}

// Device is the device object.
type Device struct {
	IFA            []byte
	LMT            Tri
	ATTS           int8 // device.ext.atts (0-3); -1 absent
	IP, IPv6, UA   []byte
	Make, Model    []byte
	OS, OSV        []byte
	DeviceType     int8 // AdCOM device type; -1 absent
	ConnectionType int8 // -1 absent
	Country        []byte
}

// Regs is the regs object with its 2.6 members and their 2.5 ext spellings.
type Regs struct {
	COPPA     Tri
	GDPR      Tri    // regs.gdpr, else regs.ext.gdpr
	USPrivacy []byte // regs.us_privacy, else regs.ext.us_privacy
	GPP       []byte
	GPPSID    [MaxGPPSIDs]uint16
	NGPPSID   int
}

// GPPSIDs returns the applicable GPP section ids.
func (r *Regs) GPPSIDs() []uint16 { return r.GPPSID[:r.NGPPSID] }

// Request is a parsed BidRequest. Byte fields alias the Scratch it was
// parsed with; Imp aliases its imp array.
type Request struct {
	ID      []byte
	Imp     []Imp
	HasApp  bool
	App     App
	Device  Device
	Consent []byte // user.consent, else user.ext.consent
	Regs    Regs
	TMax    int64 // milliseconds; 0 = not given
}

// Scratch is Parse's reusable memory. One per worker or pooled request
// state; not for two requests at once.
type Scratch struct {
	p    fastjson.Parser
	imps [MaxImps]Imp
}

// Preallocated errors for the structural checks.
var (
	errEmpty    = &Error{"body", "empty", StatusBadRequest}
	errTooLarge = &Error{"body", "too large (max " + strconv.Itoa(MaxBodyLen) + " bytes)", StatusTooLarge}
	errDepth    = &Error{"body", "nested deeper than " + strconv.Itoa(MaxDepth) + " levels", StatusBadRequest}
	errArray    = &Error{"body", "an array has more than " + strconv.Itoa(MaxArrayLen) + " elements", StatusBadRequest}
	errNodes    = &Error{"body", "more than " + strconv.Itoa(MaxNodes) + " values", StatusBadRequest}
	errNotObj   = &Error{"body", "must be a JSON object", StatusBadRequest}
	errTooMany  = &Error{"imp", "too many (max " + strconv.Itoa(MaxImps) + ")", StatusTooLarge}
	errNoImp    = &Error{"imp", "required (at least one)", StatusBadRequest}
	errNoID     = &Error{"id", "required", StatusBadRequest}
)

// Parse fills dst from a BidRequest body. It returns nil or the first
// problem found; dst is valid until scratch is used again.
func Parse(body []byte, dst *Request, scratch *Scratch) *Error {
	*dst = Request{}
	if len(body) > MaxBodyLen {
		return errTooLarge
	}
	if err := checkShape(body); err != nil {
		return err
	}
	// fastjson's parser is lenient about escapes; validating first makes
	// the accepted grammar exactly JSON's.
	if err := fastjson.ValidateBytes(body); err != nil {
		if adreq.IsBlank(body) {
			return errEmpty
		}
		return &Error{"body", "invalid JSON: " + err.Error(), StatusBadRequest}
	}
	v, err := scratch.p.ParseBytes(body)
	if err != nil {
		return &Error{"body", "invalid JSON: " + err.Error(), StatusBadRequest}
	}
	if v.Type() != fastjson.TypeObject {
		return errNotObj
	}
	p := parser{s: scratch}
	r := Request{Device: Device{LMT: Unset, ATTS: -1, DeviceType: -1, ConnectionType: -1},
		Regs: Regs{COPPA: Unset, GDPR: Unset}}
	p.request(v, &r)
	if p.err != nil {
		return p.err
	}
	if len(r.ID) == 0 {
		return errNoID
	}
	if len(r.Imp) == 0 {
		return errNoImp
	}
	*dst = r
	return nil
}

// checkShape bounds depth, array lengths and the number of values in one
// pass over the raw bytes, before the decoder sees them. It is not a
// validator: malformed JSON passes here and fails in fastjson.
func checkShape(b []byte) *Error {
	var arr [MaxDepth + 1]bool // arr[d]: the container at depth d is an array
	var elems [MaxDepth + 1]int
	depth, nodes := 0, 1
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			if depth == MaxDepth {
				return errDepth
			}
			depth++
			arr[depth] = c == '['
			elems[depth] = 1
		case '}', ']':
			if depth > 0 {
				depth--
			}
		case ',':
			nodes++
			if nodes > MaxNodes {
				return errNodes
			}
			if arr[depth] {
				elems[depth]++
				if elems[depth] > MaxArrayLen {
					return errArray
				}
			}
		}
	}
	if adreq.IsBlank(b) {
		return errEmpty
	}
	return nil
}

// seg is one step of a JSON path: a member name, or an index when name is "".
type seg struct {
	name string
	idx  int
}

// parser walks a decoded request, keeping the path for error messages.
type parser struct {
	s    *Scratch
	path [MaxDepth + 2]seg
	n    int
	err  *Error
}

func (p *parser) push(name string) { p.path[p.n] = seg{name: name}; p.n++ }
func (p *parser) pushIdx(i int)    { p.path[p.n] = seg{idx: i}; p.n++ }
func (p *parser) pop()             { p.n-- }

// fail records the first error at the current path plus member name.
func (p *parser) fail(name, reason string) {
	if p.err != nil {
		return
	}
	var b []byte
	for _, s := range p.path[:p.n] {
		if s.name == "" {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.idx), 10)
			b = append(b, ']')
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, s.name...)
	}
	if name != "" {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, name...)
	}
	p.err = &Error{string(b), reason, StatusBadRequest}
}

func isNull(v *fastjson.Value) bool { return v.Type() == fastjson.TypeNull }

// object checks v is an object (null counts as absent: false, no error).
func (p *parser) object(name string, v *fastjson.Value) (*fastjson.Object, bool) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o, true
	case fastjson.TypeNull:
	default:
		p.fail(name, "must be an object")
	}
	return nil, false
}

// str returns a string member of at most max bytes (null: nil).
func (p *parser) str(name string, v *fastjson.Value, max int) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		if len(s) > max {
			p.fail(name, "too long (max "+strconv.Itoa(max)+" bytes)")
			return nil
		}
		if len(s) == 0 {
			return nil
		}
		return s
	case fastjson.TypeNull:
	default:
		p.fail(name, "must be a string")
	}
	return nil
}

// id is str restricted to printable ASCII without spaces: ids end up in
// URLs, tokens and logs unescaped.
func (p *parser) id(name string, v *fastjson.Value, max int) []byte {
	s := p.str(name, v, max)
	if !adreq.IDChars(s) {
		p.fail(name, "must be printable ASCII without spaces")
		return nil
	}
	return s
}

// integer returns an integer member in [lo, hi]; ok is false when null or wrong.
func (p *parser) integer(name string, v *fastjson.Value, lo, hi int64) (int64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		n, err := v.Int64()
		if err != nil {
			p.fail(name, "must be an integer")
			return 0, false
		}
		if n < lo || n > hi {
			p.fail(name, "must be between "+strconv.FormatInt(lo, 10)+" and "+strconv.FormatInt(hi, 10))
			return 0, false
		}
		return n, true
	case fastjson.TypeNull:
	default:
		p.fail(name, "must be an integer")
	}
	return 0, false
}

func (p *parser) flag(name string, v *fastjson.Value) Tri {
	if v.Type() == fastjson.TypeNumber {
		if n, err := v.Int64(); err != nil || (n != 0 && n != 1) {
			p.fail(name, "must be 0 or 1")
			return Unset
		}
	}
	n, ok := p.integer(name, v, 0, 1)
	if !ok {
		return Unset
	}
	return Tri(n)
}

func (p *parser) u16(name string, v *fastjson.Value) uint16 {
	n, _ := p.integer(name, v, 0, math.MaxUint16)
	return uint16(n)
}

// array calls f for each element of an array member (null: nothing).
func (p *parser) array(name string, v *fastjson.Value, f func(i int, e *fastjson.Value)) {
	switch v.Type() {
	case fastjson.TypeArray:
		a, _ := v.Array()
		p.push(name)
		for i, e := range a {
			if p.err != nil {
				break
			}
			p.pushIdx(i)
			f(i, e)
			p.pop()
		}
		p.pop()
	case fastjson.TypeNull:
	default:
		p.fail(name, "must be an array")
	}
}

// strings fills dst from an array of strings, keeping the first len(dst).
func (p *parser) strings(name string, v *fastjson.Value, dst [][]byte, max int) int {
	n := 0
	p.array(name, v, func(_ int, e *fastjson.Value) {
		s := p.str("", e, max)
		if s != nil && n < len(dst) {
			dst[n] = s
			n++
		}
	})
	return n
}

func (p *parser) request(v *fastjson.Value, r *Request) {
	o, _ := v.Object()
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "id":
			r.ID = p.id("id", v, MaxIDLen)
		case "imp":
			p.imps(v, r)
		case "app":
			if ao, ok := p.object("app", v); ok {
				r.HasApp = true
				p.push("app")
				p.app(ao, &r.App)
				p.pop()
			}
		case "device":
			if d, ok := p.object("device", v); ok {
				p.push("device")
				p.device(d, &r.Device)
				p.pop()
			}
		case "user":
			if u, ok := p.object("user", v); ok {
				p.push("user")
				p.user(u, r)
				p.pop()
			}
		case "regs":
			if g, ok := p.object("regs", v); ok {
				p.push("regs")
				p.regs(g, &r.Regs)
				p.pop()
			}
		case "tmax":
			r.TMax, _ = p.integer("tmax", v, 0, math.MaxInt32)
		}
	})
}

func (p *parser) imps(v *fastjson.Value, r *Request) {
	if v.Type() == fastjson.TypeArray {
		if a, _ := v.Array(); len(a) > MaxImps {
			p.err = errTooMany
			return
		}
	}
	n := 0
	p.array("imp", v, func(_ int, e *fastjson.Value) {
		o, ok := p.object("", e)
		if !ok {
			if isNull(e) {
				p.fail("", "must be an object")
			}
			return
		}
		imp := &p.s.imps[n]
		*imp = Imp{}
		p.imp(o, imp)
		n++
	})
	r.Imp = p.s.imps[:n]
}

func (p *parser) imp(o *fastjson.Object, imp *Imp) {
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "id":
			imp.ID = p.id("id", v, MaxIDLen)
		case "tagid":
			imp.TagID = p.id("tagid", v, MaxIDLen)
		case "banner":
			if b, ok := p.object("banner", v); ok {
				imp.HasBanner = true
				p.push("banner")
				p.banner(b, &imp.Banner)
				p.pop()
			}
		case "video":
			if vo, ok := p.object("video", v); ok {
				imp.HasVideo = true
				p.push("video")
				p.video(vo, &imp.Video)
				p.pop()
			}
		case "native":
			if _, ok := p.object("native", v); ok {
				imp.HasNative = true
			}
		case "instl":
			imp.Instl = p.flag("instl", v) == Yes
		case "rwdd":
			imp.Rwdd = p.flag("rwdd", v) == Yes
		case "bidfloor":
			switch v.Type() {
			case fastjson.TypeNumber:
				f, err := v.Float64()
				if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
					p.fail("bidfloor", "must be a number >= 0")
					return
				}
				imp.BidFloor = f
			case fastjson.TypeNull:
			default:
				p.fail("bidfloor", "must be a number")
			}
		case "bidfloorcur":
			imp.FloorCur = p.str("bidfloorcur", v, 3)
		}
	})
}

func (p *parser) banner(o *fastjson.Object, b *Banner) {
	var w, h uint16
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "w":
			w = p.u16("w", v)
		case "h":
			h = p.u16("h", v)
		case "format":
			b.NFormat = 0
			p.array("format", v, func(_ int, e *fastjson.Value) {
				fo, ok := p.object("", e)
				if !ok {
					return
				}
				var s Size
				fo.Visit(func(k []byte, v *fastjson.Value) {
					switch string(k) {
					case "w":
						s.W = p.u16("w", v)
					case "h":
						s.H = p.u16("h", v)
					}
				})
				if s.W > 0 && s.H > 0 && b.NFormat < MaxFormats {
					b.Format[b.NFormat] = s
					b.NFormat++
				}
			})
		}
	})
	b.W, b.H = w, h
	if w > 0 && h > 0 {
		// w/h first: it is the primary size.
		if b.NFormat == MaxFormats {
			b.NFormat--
		}
		copy(b.Format[1:b.NFormat+1], b.Format[:b.NFormat])
		b.Format[0] = Size{W: w, H: h}
		b.NFormat++
	}
}

func (p *parser) video(o *fastjson.Object, vd *Video) {
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "mimes":
			vd.NMimes = p.strings("mimes", v, vd.Mimes[:], MaxShortLen)
		case "protocols":
			vd.Protocols = 0
			p.array("protocols", v, func(_ int, e *fastjson.Value) {
				if n, ok := p.integer("", e, 0, math.MaxInt32); ok && n < 64 {
					vd.Protocols |= 1 << uint(n)
				}
			})
		case "w":
			vd.W = p.u16("w", v)
		case "h":
			vd.H = p.u16("h", v)
		case "minduration":
			n, _ := p.integer("minduration", v, 0, math.MaxInt32)
			vd.MinDuration = int32(n)
		case "maxduration":
			n, _ := p.integer("maxduration", v, 0, math.MaxInt32)
			vd.MaxDuration = int32(n)
		case "plcmt":
			n, _ := p.integer("plcmt", v, 0, math.MaxInt32)
			vd.Plcmt = int32(n)
		}
	})
	if vd.MaxDuration > 0 && vd.MinDuration > vd.MaxDuration {
		p.fail("minduration", "must not exceed maxduration")
	}
}

func (p *parser) app(o *fastjson.Object, a *App) {
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "bundle":
			a.Bundle = p.id("bundle", v, MaxIDLen)
		case "cat":
			a.NCat = p.strings("cat", v, a.Cat[:], MaxShortLen)
		case "publisher":
			if po, ok := p.object("publisher", v); ok {
				p.push("publisher")
				po.Visit(func(k []byte, v *fastjson.Value) {
					if string(k) == "id" {
						a.PublisherID = p.id("id", v, MaxIDLen)
					}
				})
				p.pop()
			}
		}
	})
}

func (p *parser) device(o *fastjson.Object, d *Device) {
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "ifa":
			d.IFA = p.id("ifa", v, MaxDeviceLen)
		case "lmt":
			d.LMT = p.flag("lmt", v)
		case "ip":
			d.IP = p.str("ip", v, MaxIPLen)
		case "ipv6":
			d.IPv6 = p.str("ipv6", v, MaxIPLen)
		case "ua":
			d.UA = p.str("ua", v, MaxUALen)
		case "make":
			d.Make = p.str("make", v, MaxIDLen)
		case "model":
			d.Model = p.str("model", v, MaxIDLen)
		case "os":
			d.OS = p.str("os", v, MaxIDLen)
		case "osv":
			d.OSV = p.str("osv", v, MaxIDLen)
		case "devicetype":
			if n, ok := p.integer("devicetype", v, 0, 127); ok {
				d.DeviceType = int8(n)
			}
		case "connectiontype":
			if n, ok := p.integer("connectiontype", v, 0, 127); ok {
				d.ConnectionType = int8(n)
			}
		case "geo":
			if g, ok := p.object("geo", v); ok {
				p.push("geo")
				g.Visit(func(k []byte, v *fastjson.Value) {
					if string(k) == "country" {
						d.Country = p.str("country", v, MaxShortLen)
					}
				})
				p.pop()
			}
		case "ext":
			if e, ok := p.object("ext", v); ok {
				p.push("ext")
				e.Visit(func(k []byte, v *fastjson.Value) {
					if string(k) == "atts" {
						if n, ok := p.integer("atts", v, 0, 3); ok {
							d.ATTS = int8(n)
						}
					}
				})
				p.pop()
			}
		}
	})
}

func (p *parser) user(o *fastjson.Object, r *Request) {
	var ext []byte
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "consent":
			r.Consent = p.str("consent", v, MaxConsentLen)
		case "ext":
			if e, ok := p.object("ext", v); ok {
				p.push("ext")
				e.Visit(func(k []byte, v *fastjson.Value) {
					if string(k) == "consent" {
						ext = p.str("consent", v, MaxConsentLen)
					}
				})
				p.pop()
			}
		}
	})
	if r.Consent == nil {
		r.Consent = ext
	}
}

func (p *parser) regs(o *fastjson.Object, g *Regs) {
	extGDPR, extUSP := Unset, []byte(nil)
	o.Visit(func(k []byte, v *fastjson.Value) {
		if p.err != nil {
			return
		}
		switch string(k) {
		case "coppa":
			g.COPPA = p.flag("coppa", v)
		case "gdpr":
			g.GDPR = p.flag("gdpr", v)
		case "us_privacy":
			g.USPrivacy = p.str("us_privacy", v, MaxShortLen)
		case "gpp":
			g.GPP = p.str("gpp", v, MaxConsentLen)
		case "gpp_sid":
			g.NGPPSID = 0
			p.array("gpp_sid", v, func(_ int, e *fastjson.Value) {
				if n, ok := p.integer("", e, 0, math.MaxUint16); ok && g.NGPPSID < MaxGPPSIDs {
					g.GPPSID[g.NGPPSID] = uint16(n)
					g.NGPPSID++
				}
			})
		case "ext":
			if e, ok := p.object("ext", v); ok {
				p.push("ext")
				e.Visit(func(k []byte, v *fastjson.Value) {
					switch string(k) {
					case "gdpr":
						extGDPR = p.flag("gdpr", v)
					case "us_privacy":
						extUSP = p.str("us_privacy", v, MaxShortLen)
					}
				})
				p.pop()
			}
		}
	})
	if g.GDPR == Unset {
		g.GDPR = extGDPR
	}
	if g.USPrivacy == nil {
		g.USPrivacy = extUSP
	}
}
