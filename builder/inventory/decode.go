package inventory

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/adedge/adedge/snapshot"
)

// This file decodes one JSONL line into the schema types of types.go. It is
// stricter than encoding/json with DisallowUnknownFields: field names are
// case-sensitive, a repeated field is refused, strings must be valid UTF-8.
// Like encoding/json, null means "absent" (the zero value). It reports
// every type mismatch and unknown field of a line, not just the first, and
// names the field path of each ("targeting.os[1].min_version: ...").
//
// Decoding checks shapes only; the rules on values are in validate.go.

// Canonical enum spellings, shared by every decoded record.
var (
	formatNames     = enumNames(snapshot.NumFormats, func(i int) string { return snapshot.Format(i).String() })
	osNames         = enumNames(snapshot.NumOS, func(i int) string { return snapshot.OS(i).String() })
	bidTypeNames    = enumNames(snapshot.NumBidTypes, func(i int) string { return snapshot.BidType(i).String() })
	deviceTypeNames = []string{"phone", "tablet"} // snapshot.ParseDeviceType
)

func enumNames(n int, name func(int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = name(i)
	}
	return out
}

// interner returns one shared string per distinct value, up to limit
// distinct values (then it just copies), so hostile input cannot grow it
// without bound.
type interner struct {
	m     map[string]string
	limit int
}

func newInterner(limit int) *interner {
	return &interner{m: make(map[string]string), limit: limit}
}

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < in.limit {
		in.m[s] = s
	}
	return s
}

// arena packs many small immutable strings into shared blocks: no
// per-string allocation, no size-class rounding (a 50-byte URL would take a
// 64-byte slot) and a few large objects for the GC instead of millions.
// Bytes are only ever appended, so strings over them stay valid; a string
// keeps its whole block alive, so only strings that live as long as the
// Inventory go here.
type arena struct{ block []byte }

const arenaBlock = 1 << 20

func (a *arena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaBlock/16 {
		return string(b)
	}
	if cap(a.block)-len(a.block) < len(b) {
		a.block = make([]byte, 0, arenaBlock)
	}
	off := len(a.block)
	a.block = append(a.block, b...)
	return unsafe.String(&a.block[off], len(b))
}

// strConv turns decoded bytes into the string to keep.
type strConv uint8

const (
	convArena   strConv = iota // packed in the arena: ids and URLs the Inventory keeps
	convCopy                   // a fresh string: may be dropped before the Inventory is built
	convLabel                  // interned: advertisers, categories, segments, apps
	convTime                   // interned separately: timestamps repeat a lot
	convCountry                // canonical code string (or a copy if unassigned)
	convFormat                 // canonical enum spellings (or a copy if unknown)
	convOS
	convBidType
	convDeviceType
)

func canonical(b []byte, names []string) string {
	for _, n := range names {
		if string(b) == n {
			return n
		}
	}
	return string(b)
}

// countryBytes returns the canonical string and index of an assigned code.
func countryBytes(b []byte) (string, uint16, bool) {
	if len(b) == 2 && b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z' {
		i := uint16(b[0]-'A')*26 + uint16(b[1]-'A')
		if s := countryName[i]; s != "" {
			return s, i, true
		}
	}
	return "", 0, false
}

type pathElem struct {
	field string
	idx   int // >= 0: field[idx]
}

// lineDecoder decodes lines of one file; it is not safe for concurrent use.
type lineDecoder struct {
	s      scanner
	path   []pathElem
	msgs   []string // problems of the current line, in order
	msgPos []int    // byte offset each message is about (experiments.json needs lines)
	bad    bool     // the line has a shape problem (syntax, type, unknown or repeated field)
	badAt  []string // paths of the values with a type problem
	labels *interner
	times  *interner
	arena  arena

	strTmp []string    // reused list buffers
	osTmp  []OSTarget  //
	mfTmp  []MediaFile //
	cid    []byte      // prediction campaign id, copied out of the scanner
}

func newLineDecoder() *lineDecoder {
	return &lineDecoder{labels: newInterner(1 << 18), times: newInterner(1 << 14)}
}

func (d *lineDecoder) conv(b []byte, c strConv) string {
	switch c {
	case convArena:
		return d.arena.str(b)
	case convLabel:
		return d.labels.get(b)
	case convTime:
		return d.times.get(b)
	case convCountry:
		if s, _, ok := countryBytes(b); ok {
			return s
		}
	case convFormat:
		return canonical(b, formatNames)
	case convOS:
		return canonical(b, osNames)
	case convBidType:
		return canonical(b, bidTypeNames)
	case convDeviceType:
		return canonical(b, deviceTypeNames)
	}
	return string(b)
}

// begin starts a line: it must hold one JSON object.
func (d *lineDecoder) begin(line []byte) bool {
	d.s.reset(line)
	d.path = d.path[:0]
	d.msgs = d.msgs[:0]
	d.msgPos = d.msgPos[:0]
	d.badAt = d.badAt[:0]
	d.bad = false
	if d.s.beginObject() {
		return true
	}
	switch {
	case d.s.failed():
	case bytes.HasPrefix(line, []byte("\xef\xbb\xbf")):
		d.s.fail(0, "the file starts with a UTF-8 byte order mark; remove it")
	default:
		d.s.unexpected("a JSON object '{'")
	}
	return false
}

// finish ends a line. On a syntax error the line's only message is the
// syntax error and it returns false: the record must be dropped.
func (d *lineDecoder) finish() bool {
	d.s.end()
	if d.s.failed() {
		d.bad = true
		d.msgs = append(d.msgs[:0], fmt.Sprintf("malformed JSON at column %d: %s", d.s.synPos+1, d.s.synErr))
		d.msgPos = append(d.msgPos[:0], d.s.synPos)
		return false
	}
	return true
}

func (d *lineDecoder) where() string {
	var b strings.Builder
	for i, e := range d.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.field)
		if e.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.idx))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func (d *lineDecoder) errf(format string, args ...any) {
	d.errfAt(d.s.pos, format, args...)
}

func (d *lineDecoder) errfAt(pos int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(d.path) > 0 {
		msg = d.where() + ": " + msg
	}
	d.msgs = append(d.msgs, msg)
	d.msgPos = append(d.msgPos, pos)
}

func (d *lineDecoder) push(field string) { d.path = append(d.path, pathElem{field, -1}) }
func (d *lineDecoder) pop()              { d.path = d.path[:len(d.path)-1] }
func (d *lineDecoder) index(i int)       { d.path[len(d.path)-1].idx = i }

// valueErr reports a value that cannot be decoded. The value's path is
// remembered so validation does not report the same field again.
func (d *lineDecoder) valueErr(pos int, format string, args ...any) {
	d.bad = true
	d.badAt = append(d.badAt, d.where())
	d.errfAt(pos, format, args...)
}

// typeErr reports a value of the wrong type and skips it.
func (d *lineDecoder) typeErr(want string) {
	start := d.s.pos
	got := d.s.skipDescribe()
	if d.s.failed() {
		return
	}
	d.valueErr(start, "expected %s, got %s", want, got)
}

// unshadowed drops from ms (validation messages, "path: ...") those about
// a value that already has a type problem: "id: expected a string, got
// number 5" needs no "id: required" after it.
func (d *lineDecoder) unshadowed(ms msgs) msgs {
	if len(d.badAt) == 0 {
		return ms
	}
	out := ms[:0]
	for _, m := range ms {
		path, _, _ := strings.Cut(m, ": ")
		if !slices.Contains(d.badAt, path) {
			out = append(out, m)
		}
	}
	return out
}

// field looks key up in names. For an unknown or repeated key it reports,
// skips the value and returns -1.
func (d *lineDecoder) field(key []byte, names []string, seen *uint32) int {
	for i, n := range names {
		if string(key) == n {
			if *seen&(1<<i) != 0 {
				d.bad = true
				d.errf("field %q appears twice", n)
				d.s.skipValue()
				return -1
			}
			*seen |= 1 << i
			return i
		}
	}
	k := string(key)
	d.bad = true
	hint := "expected one of: " + strings.Join(names, ", ")
	for _, n := range names {
		if strings.EqualFold(n, k) {
			hint = fmt.Sprintf("field names are case-sensitive: did you mean %q?", n)
		}
	}
	d.errf("unknown field %q (%s)", k, hint)
	d.s.skipValue()
	return -1
}

// str reads a string. ok is false for null (absent) or a type mismatch
// (reported).
func (d *lineDecoder) str() ([]byte, bool) {
	if d.s.null() {
		return nil, false
	}
	if b, ok := d.s.str(); ok {
		return b, true
	}
	if !d.s.failed() {
		d.typeErr("a string")
	}
	return nil, false
}

func (d *lineDecoder) strInto(dst *string, c strConv) bool {
	b, ok := d.str()
	if ok {
		*dst = d.conv(b, c)
	}
	return ok
}

// integer reads an integral number within [min, max]; want names it.
func (d *lineDecoder) integer(min, max int64, want string) (int64, bool) {
	if d.s.null() {
		return 0, false
	}
	lit, integral, ok := d.s.number()
	if !ok {
		if !d.s.failed() {
			d.typeErr(want)
		}
		return 0, false
	}
	v, inRange := parseInt(lit, min, max)
	if !integral || !inRange || (min >= 0 && lit[0] == '-') {
		d.valueErr(d.s.pos-len(lit), "expected %s, got %s", want, preview(lit))
		return 0, false
	}
	return v, true
}

func (d *lineDecoder) int64Into(dst *int64) bool {
	v, ok := d.integer(-1<<63, 1<<63-1, "an integer")
	if ok {
		*dst = v
	}
	return ok
}

func (d *lineDecoder) uint32Into(dst *uint32) bool {
	v, ok := d.integer(0, 1<<32-1, "an integer in [0, 4294967295]")
	if ok {
		*dst = uint32(v)
	}
	return ok
}

func (d *lineDecoder) uint16Into(dst *uint16) bool {
	v, ok := d.integer(0, 1<<16-1, "an integer in [0, 65535]")
	if ok {
		*dst = uint16(v)
	}
	return ok
}

func (d *lineDecoder) float64Into(dst *float64) bool {
	if d.s.null() {
		return false
	}
	lit, _, ok := d.s.number()
	if !ok {
		if !d.s.failed() {
			d.typeErr("a number")
		}
		return false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		d.valueErr(d.s.pos-len(lit), "expected a number in float64 range, got %s", preview(lit))
		return false
	}
	*dst = v
	return true
}

// strList reads an array of strings into a right-sized slice. Elements
// must be strings (null elements are refused).
func (d *lineDecoder) strList(dst *[]string, c strConv) bool {
	if d.s.null() {
		return false
	}
	if !d.s.beginArray() {
		if !d.s.failed() {
			d.typeErr("an array of strings")
		}
		return false
	}
	tmp := d.strTmp[:0]
	first := true
	for i := 0; d.s.nextElem(&first); i++ {
		if b, ok := d.s.str(); ok {
			tmp = append(tmp, d.conv(b, c))
			continue
		}
		if d.s.failed() {
			break
		}
		d.index(i)
		d.typeErr("a string")
	}
	d.index(-1)
	d.strTmp = tmp[:0]
	if len(tmp) > 0 {
		*dst = slices.Clone(tmp)
	} else {
		*dst = []string{}
	}
	clear(tmp)
	return true
}

// beginObj starts an object value; false for null or a type mismatch.
func (d *lineDecoder) beginObj() bool {
	if d.s.null() {
		return false
	}
	if d.s.beginObject() {
		return true
	}
	if !d.s.failed() {
		d.typeErr("an object")
	}
	return false
}

// Field names, in the order of the *Field constants below.
var (
	campaignFieldNames = []string{"id", "advertiser", "category", "bid_type", "bid_micros", "daily_budget_micros", "start", "end", "targeting", "frequency_cap", "promoted_app", "creative_ids",
		"lifetime_budget_micros", "pacing", "billing_event", "time_zone", "allowed_bundles", "blocked_bundles"}
	targetingFieldNames  = []string{"countries", "os", "device_types", "segments"}
	osTargetFieldNames   = []string{"name", "min_version"}
	freqCapFieldNames    = []string{"count", "period_seconds"}
	creativeFieldNames   = []string{"id", "format", "width", "height", "asset_url", "click_url", "adomain", "iab_category", "video"}
	videoFieldNames      = []string{"duration_seconds", "media_files"}
	mediaFileFieldNames  = []string{"url", "mime", "width", "height", "bitrate_kbps", "delivery"}
	placementFieldNames  = []string{"id", "app", "formats", "floor_micros", "blocked_advertisers", "blocked_categories", "interstitial", "rewarded", "format"}
	predictionFieldNames = []string{"campaign_id", "country", "os", "ctr", "install_rate"}
)

// Bits of the "present" masks the decoders return (1 << field index).
const (
	campID = 1 << iota
	campAdvertiser
	campCategory
	campBidType
	campBid
	campBudget
	campStart
	campEnd
	campTargeting
	campFreqCap
	campPromotedApp
	campCreatives
	campLifetime
	campPacing
	campBilling
	campTimeZone
	campAllowedBundles
	campBlockedBundles
)

const (
	tgtCountries = 1 << iota
	tgtOS
	tgtDeviceTypes
	tgtSegments
)

const (
	crID = 1 << iota
	crFormat
	crWidth
	crHeight
	crAsset
	crClick
	crADomain
	crIABCategory
	crVideo
)

const (
	vidDuration = 1 << iota
	vidMediaFiles
)

const (
	mfURL = 1 << iota
	mfMIME
	mfWidth
	mfHeight
	mfBitrate
	mfDelivery
)

const (
	plID = 1 << iota
	plApp
	plFormats
	plFloor
	plBlockedAdv
	plBlockedCat
	plInterstitial
	plRewarded
	plLegacyFormat // format version 1's "format": refused with a hint
)

const (
	prCampaign = 1 << iota
	prCountry
	prOS
	prCTR
	prInstallRate
)

// members decodes the members of the object being read: each known key
// once, through value(f) with f its index in names, which reports whether
// the value was present (not null). The result has bit f set for each
// present field; unknown and repeated keys are reported by field. Every
// record decoder is this loop with its own value function.
func (d *lineDecoder) members(names []string, value func(f int) bool) (present uint32) {
	var seen uint32
	first := true
	for {
		key, more := d.s.nextKey(&first)
		if !more {
			return present
		}
		f := d.field(key, names, &seen)
		if f < 0 {
			continue
		}
		d.push(names[f])
		if value(f) {
			present |= 1 << f
		}
		d.pop()
	}
}

// record decodes one JSONL line as an object with value per member (see
// members); ok is false on a syntax error.
func (d *lineDecoder) record(line []byte, names []string, value func(f int) bool) (present uint32, ok bool) {
	if !d.begin(line) {
		return 0, d.finish()
	}
	present = d.members(names, value)
	return present, d.finish()
}

// campaign decodes one campaigns.jsonl line into c (which must be zero)
// and returns which fields were present and non-null. ok is false on a
// syntax error.
func (d *lineDecoder) campaign(line []byte, c *Campaign) (present uint32, ok bool) {
	return d.record(line, campaignFieldNames, func(f int) (got bool) {
		switch 1 << f {
		case campID:
			got = d.strInto(&c.ID, convArena)
		case campAdvertiser:
			got = d.strInto(&c.Advertiser, convLabel)
		case campCategory:
			got = d.strInto(&c.Category, convLabel)
		case campBidType:
			got = d.strInto(&c.BidType, convBidType)
		case campBid:
			got = d.int64Into(&c.BidMicros)
		case campBudget:
			got = d.int64Into(&c.DailyBudgetMicros)
		case campStart:
			got = d.strInto(&c.Start, convTime)
		case campEnd:
			got = d.strInto(&c.End, convTime)
		case campTargeting:
			got = d.targeting(&c.Targeting)
		case campFreqCap:
			if d.beginObj() {
				got = true
				c.FrequencyCap = &FrequencyCap{}
				d.freqCap(c.FrequencyCap)
			}
		case campPromotedApp:
			got = d.strInto(&c.PromotedApp, convLabel)
		case campCreatives:
			got = d.strList(&c.CreativeIDs, convCopy)
		case campLifetime:
			got = d.int64Into(&c.LifetimeBudgetMicros)
		case campPacing:
			got = d.strInto(&c.Pacing, convLabel)
		case campBilling:
			got = d.strInto(&c.BillingEvent, convLabel)
		case campTimeZone:
			got = d.strInto(&c.TimeZone, convLabel)
		case campAllowedBundles:
			got = d.strList(&c.AllowedBundles, convLabel)
		case campBlockedBundles:
			got = d.strList(&c.BlockedBundles, convLabel)
		}
		return got
	})
}

func (d *lineDecoder) targeting(t *Targeting) bool {
	if !d.beginObj() {
		return false
	}
	d.members(targetingFieldNames, func(f int) bool {
		switch 1 << f {
		case tgtCountries:
			return d.strList(&t.Countries, convCountry)
		case tgtOS:
			d.osList(&t.OS)
		case tgtDeviceTypes:
			return d.strList(&t.DeviceTypes, convDeviceType)
		case tgtSegments:
			return d.strList(&t.Segments, convLabel)
		}
		return false
	})
	return true
}

func (d *lineDecoder) osList(dst *[]OSTarget) {
	if l, ok := objectArray(d, &d.osTmp, func(o *OSTarget) {
		d.members(osTargetFieldNames, func(f int) bool {
			if f == 0 {
				return d.strInto(&o.Name, convOS)
			}
			return d.strInto(&o.MinVersion, convTime) // versions repeat like timestamps
		})
	}); ok {
		*dst = l
	}
}

// objectArray decodes an array of objects into a right-sized slice, each
// element's members through elem; buf is the decoder's reused scratch
// list. ok is false for null (absent) or a type mismatch (reported); a
// non-object element is reported at its index and skipped.
func objectArray[T any](d *lineDecoder, buf *[]T, elem func(v *T)) (out []T, ok bool) {
	if d.s.null() {
		return nil, false
	}
	if !d.s.beginArray() {
		if !d.s.failed() {
			d.typeErr("an array of objects")
		}
		return nil, false
	}
	tmp := (*buf)[:0]
	first := true
	for i := 0; d.s.nextElem(&first); i++ {
		d.index(i)
		if !d.s.beginObject() {
			if d.s.failed() {
				break
			}
			d.typeErr("an object")
			continue
		}
		var v T
		elem(&v)
		tmp = append(tmp, v)
	}
	d.index(-1)
	out = slices.Clone(tmp)
	if out == nil {
		out = []T{}
	}
	clear(tmp)
	*buf = tmp[:0]
	return out, true
}

func (d *lineDecoder) freqCap(fc *FrequencyCap) {
	d.members(freqCapFieldNames, func(f int) bool {
		if f == 0 {
			return d.uint32Into(&fc.Count)
		}
		return d.uint32Into(&fc.PeriodSeconds)
	})
}

// creative decodes one creatives.jsonl line; see campaign.
func (d *lineDecoder) creative(line []byte, c *Creative) (present uint32, ok bool) {
	return d.record(line, creativeFieldNames, func(f int) (got bool) {
		switch 1 << f {
		case crID:
			got = d.strInto(&c.ID, convArena)
		case crFormat:
			got = d.strInto(&c.Format, convFormat)
		case crWidth:
			got = d.uint16Into(&c.Width)
		case crHeight:
			got = d.uint16Into(&c.Height)
		case crAsset:
			got = d.strInto(&c.AssetURL, convArena)
		case crClick:
			got = d.strInto(&c.ClickURL, convArena)
		case crADomain:
			got = d.strInto(&c.ADomain, convLabel)
		case crIABCategory:
			got = d.strInto(&c.IABCategory, convLabel)
		case crVideo:
			if d.beginObj() {
				got = true
				c.Video = &Video{}
				c.Video.present = d.video(c.Video)
			}
		}
		return got
	})
}

// video decodes a creative's video object.
func (d *lineDecoder) video(v *Video) (present uint32) {
	return d.members(videoFieldNames, func(f int) bool {
		if 1<<f == vidDuration {
			return d.uint16Into(&v.DurationSeconds)
		}
		return d.mediaFiles(&v.MediaFiles)
	})
}

// mediaFiles decodes video.media_files: an array of objects.
func (d *lineDecoder) mediaFiles(dst *[]MediaFile) bool {
	l, ok := objectArray(d, &d.mfTmp, func(m *MediaFile) {
		m.present = d.members(mediaFileFieldNames, func(f int) bool {
			switch 1 << f {
			case mfURL:
				return d.strInto(&m.URL, convArena)
			case mfMIME:
				return d.strInto(&m.MIME, convLabel)
			case mfWidth:
				return d.uint16Into(&m.Width)
			case mfHeight:
				return d.uint16Into(&m.Height)
			case mfBitrate:
				return d.uint32Into(&m.BitrateKbps)
			}
			return d.strInto(&m.Delivery, convLabel)
		})
	})
	if ok {
		*dst = l
	}
	return ok
}

// placement decodes one placements.jsonl line; see campaign.
func (d *lineDecoder) placement(line []byte, p *Placement) (present uint32, ok bool) {
	return d.record(line, placementFieldNames, func(f int) (got bool) {
		switch 1 << f {
		case plID:
			got = d.strInto(&p.ID, convArena)
		case plApp:
			got = d.strInto(&p.App, convLabel)
		case plFormats:
			got = d.strList(&p.Formats, convFormat)
		case plInterstitial:
			got = d.boolInto(&p.Interstitial)
		case plRewarded:
			got = d.boolInto(&p.Rewarded)
		case plLegacyFormat:
			start := d.s.pos
			d.s.skipValue()
			d.valueErr(start, "replaced in snapshot format 2 by formats (a list of banner, video, native), interstitial and rewarded (docs/INPUTS.md)")
			got = true
		case plFloor:
			got = d.int64Into(&p.FloorMicros)
		case plBlockedAdv:
			got = d.strList(&p.BlockedAdvertisers, convLabel)
		case plBlockedCat:
			got = d.strList(&p.BlockedCategories, convLabel)
		}
		return got
	})
}

// predLine is a decoded predictions.jsonl line. The campaign id stays in
// bytes (copied into the decoder's buffer) so the 1.5M rows allocate no
// strings; it is valid until the next line.
type predLine struct {
	campaignID []byte
	country    string // canonical if assigned
	os         string // canonical if known
	ctr, ir    float64
}

// prediction decodes one predictions.jsonl line; see campaign.
func (d *lineDecoder) prediction(line []byte, p *predLine) (present uint32, ok bool) {
	*p = predLine{}
	return d.record(line, predictionFieldNames, func(f int) (got bool) {
		switch 1 << f {
		case prCampaign:
			var b []byte
			if b, got = d.str(); got {
				d.cid = append(d.cid[:0], b...)
				p.campaignID = d.cid
			}
		case prCountry:
			got = d.strInto(&p.country, convCountry)
		case prOS:
			got = d.strInto(&p.os, convOS)
		case prCTR:
			got = d.float64Into(&p.ctr)
		case prInstallRate:
			got = d.float64Into(&p.ir)
		}
		return got
	})
}
