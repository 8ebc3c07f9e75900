package inventory

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/adedge/adedge/snapshot"
)

// This file holds the rules on values, one record at a time. Cross-record
// rules (duplicates, references) are in load.go. Each rule appends an
// actionable message naming the field to msgs.

// checkID applies the id rule: non-empty, at most MaxIDLen bytes, and no
// whitespace, control or invisible format characters anywhere. It returns
// "" when v is fine.
func checkID(v string) string {
	if v == "" {
		return "required: must be a non-empty id"
	}
	if len(v) > MaxIDLen {
		return fmt.Sprintf("too long: %d bytes, at most %d", len(v), MaxIDLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c > ' ' && c < 0x7f {
			continue
		}
		if c < utf8.RuneSelf {
			return fmt.Sprintf("must not contain whitespace or control characters (found %U at byte %d)", rune(c), i)
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return fmt.Sprintf("must not contain whitespace, control or invisible characters (found %U at byte %d)", r, i)
		}
		i += size - 1
	}
	return ""
}

// checkLabel applies the label rule (advertisers, categories, segments,
// variants): like an id, but inner spaces are allowed; leading or trailing
// whitespace is not, since labels are matched exactly.
func checkLabel(v string) string {
	if v == "" {
		return "required: must be non-empty"
	}
	if len(v) > MaxIDLen {
		return fmt.Sprintf("too long: %d bytes, at most %d", len(v), MaxIDLen)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Sprintf("must not start or end with whitespace, got %q", v)
	}
	for i, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || (unicode.IsSpace(r) && r != ' ') {
			return fmt.Sprintf("must not contain control, invisible or non-space whitespace characters (found %U at byte %d)", r, i)
		}
	}
	return ""
}

// checkURL requires an absolute https URL with a host, printable ASCII only
// (percent-encode anything else), at most MaxURLLen bytes.
func checkURL(v string) string {
	if v == "" {
		return "required: must be an https URL"
	}
	if len(v) > MaxURLLen {
		return fmt.Sprintf("too long: %d bytes, at most %d", len(v), MaxURLLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return fmt.Sprintf("must be printable ASCII without spaces (percent-encode the rest); found byte 0x%02x at %d in %q", c, i, preview([]byte(v)))
		}
	}
	if plainHTTPSURL(v) {
		return ""
	}
	return checkURLSlow(v)
}

// checkURLSlow is the full URL check, after the byte checks.
func checkURLSlow(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		msg := err.Error()
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return fmt.Sprintf("not a valid URL (%s): %q", msg, preview([]byte(v)))
	}
	if u.Scheme != "https" {
		if u.Scheme == "" {
			return fmt.Sprintf("must be an absolute https URL, got %q", preview([]byte(v)))
		}
		return fmt.Sprintf("must use https, got scheme %q", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("must have a host (https://host/...), got %q", preview([]byte(v)))
	}
	if u.User != nil {
		return "must not contain user credentials"
	}
	return ""
}

// plainHTTPSURL is checkURL's fast path: it accepts only URLs that
// url.Parse certainly accepts with scheme https, a host and no user info:
// "https://" + host of [A-Za-z0-9.-] + optional ":digits" + optional
// "/", "?" or "#" part without '%' (escapes go the slow way) and from the
// printable ASCII already checked. Anything else gets the full check.
func plainHTTPSURL(v string) bool {
	rest, ok := strings.CutPrefix(v, "https://")
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) {
		c := rest[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	if i < len(rest) && rest[i] == ':' {
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		i = j
	}
	if i == len(rest) {
		return true
	}
	if c := rest[i]; c != '/' && c != '?' && c != '#' {
		return false
	}
	return !strings.ContainsAny(rest[i:], "%[]{}|\\^`\"<>")
}

// parseTime parses an RFC 3339 time.
func parseTime(v string) (time.Time, string) {
	if v == "" {
		return time.Time{}, "required: expected an RFC 3339 time such as 2026-01-02T15:04:05Z"
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Sprintf("not an RFC 3339 time (expected e.g. 2026-01-02T15:04:05Z): %q", preview([]byte(v)))
	}
	return t, ""
}

func enumHint(v string, names []string) string {
	hint := ""
	for _, n := range names {
		if strings.EqualFold(v, n) {
			hint = fmt.Sprintf(" (values are lower-case: %q)", n)
		}
	}
	return fmt.Sprintf("unknown value %q; expected one of %s%s", preview([]byte(v)), strings.Join(names, ", "), hint)
}

func countryProblem(v string) string {
	if v == "" {
		return "must be a country code, got an empty string"
	}
	if up := strings.ToUpper(v); up != v {
		if _, ok := countryIndex(up); ok {
			return fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 code (codes are upper-case: %q)", v, up)
		}
	}
	if v == "UK" {
		return `"UK" is not an ISO 3166-1 alpha-2 code (the United Kingdom is "GB")`
	}
	return fmt.Sprintf("%q is not an assigned ISO 3166-1 alpha-2 country code", preview([]byte(v)))
}

// campaignFacts are the values validation derives from a campaign, kept
// for the cross-record checks.
type campaignFacts struct {
	countries []uint16 // sorted, assigned codes only
	osMask    uint8
	end       time.Time
}

type msgs []string

func (m *msgs) addf(format string, args ...any) { *m = append(*m, fmt.Sprintf(format, args...)) }

// validateCampaign appends the problems of one decoded campaign to out.
// present is the mask returned by the decoder.
func validateCampaign(c *Campaign, present uint32, f *campaignFacts, out *msgs) {
	f.countries, f.osMask = f.countries[:0], 0
	if p := checkID(c.ID); p != "" {
		out.addf("id: %s", p)
	}
	if p := checkLabel(c.Advertiser); p != "" {
		out.addf("advertiser: %s", p)
	}
	if p := checkLabel(c.Category); p != "" {
		out.addf("category: %s", p)
	}
	if _, ok := snapshot.ParseBidType(c.BidType); !ok {
		if present&campBidType == 0 {
			out.addf("bid_type: required field missing (one of %s)", strings.Join(bidTypeNames, ", "))
		} else {
			out.addf("bid_type: %s", enumHint(c.BidType, bidTypeNames))
		}
	}
	switch {
	case present&campBid == 0:
		out.addf("bid_micros: required field missing (price per %s in micros, > 0)", orDefault(c.BidType, "bid_type unit"))
	case c.BidMicros <= 0:
		out.addf("bid_micros: must be > 0, got %d", c.BidMicros)
	case c.BidMicros > MaxBidMicros:
		out.addf("bid_micros: must be <= %d (%d currency units), got %d", MaxBidMicros, MaxBidMicros/1_000_000, c.BidMicros)
	}
	validateBudget(c, present, out)
	start, ps := parseTime(c.Start)
	if ps != "" {
		out.addf("start: %s", ps)
	}
	end, pe := parseTime(c.End)
	if pe != "" {
		out.addf("end: %s", pe)
	}
	if ps == "" && pe == "" && !end.After(start) {
		out.addf("end: must be after start, got start %s and end %s", c.Start, c.End)
	}
	f.end = end
	if present&campTargeting == 0 {
		out.addf("targeting: required field missing (needs countries and os)")
	} else {
		validateTargeting(&c.Targeting, f, out)
	}
	if fc := c.FrequencyCap; fc != nil {
		if fc.Count < 1 {
			out.addf("frequency_cap.count: must be >= 1 impression, got %d (omit frequency_cap for no cap)", fc.Count)
		}
		if fc.PeriodSeconds < 60 {
			out.addf("frequency_cap.period_seconds: must be >= 60, got %d", fc.PeriodSeconds)
		}
	}
	if present&campPromotedApp != 0 {
		if p := checkID(c.PromotedApp); p != "" {
			out.addf("promoted_app: %s (omit the field when there is none)", p)
		}
	}
	if len(c.CreativeIDs) == 0 {
		out.addf("creative_ids: must list at least one creative id")
	}
	for i, id := range c.CreativeIDs {
		if p := checkID(id); p != "" {
			out.addf("creative_ids[%d]: %s", i, p)
		}
	}
	for _, d := range firstDups(c.CreativeIDs) {
		out.addf("creative_ids[%d]: duplicate creative %q (also at [%d])", d[0], c.CreativeIDs[d[0]], d[1])
	}
	idList(out, "allowed_bundles", "bundle", c.AllowedBundles, MaxBundles)
	idList(out, "blocked_bundles", "bundle", c.BlockedBundles, MaxBundles)
	for i, b := range c.BlockedBundles {
		if slices.Contains(c.AllowedBundles, b) {
			out.addf("blocked_bundles[%d]: %q is also in allowed_bundles", i, b)
		}
	}
}

// idList checks a list of ids: the id rule for each, no repeats, at most
// max entries.
func idList(out *msgs, field, what string, list []string, max int) {
	if len(list) > max {
		out.addf("%s: at most %d entries, got %d", field, max, len(list))
	}
	for i, id := range list {
		if p := checkID(id); p != "" {
			out.addf("%s[%d]: %s", field, i, p)
		}
	}
	for _, d := range firstDups(list) {
		out.addf("%s[%d]: duplicate %s %q (also at [%d])", field, d[0], what, list[d[0]], d[1])
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// indexBefore returns the index of the first element before i equal to
// list[i], or -1. Only for lists with few distinct values.
func indexBefore(list []string, i int) int {
	for j := 0; j < i; j++ {
		if list[j] == list[i] {
			return j
		}
	}
	return -1
}

// firstDups returns the repeated positions in list as pairs (repeat,
// first occurrence); quadratic only for short lists.
func firstDups(list []string) [][2]int {
	var out [][2]int
	if len(list) <= 64 {
		for i := range list {
			if j := indexBefore(list, i); j >= 0 {
				out = append(out, [2]int{i, j})
			}
		}
		return out
	}
	seen := make(map[string]int, len(list))
	for i, v := range list {
		if j, ok := seen[v]; ok {
			out = append(out, [2]int{i, j})
			continue
		}
		seen[v] = i
	}
	return out
}

func validateTargeting(t *Targeting, f *campaignFacts, out *msgs) {
	if len(t.Countries) == 0 {
		out.addf("targeting.countries: must list at least one ISO 3166-1 alpha-2 country code")
	}
	var seen [snapshot.NumCountries]bool
	f.countries = f.countries[:0]
	for i, c := range t.Countries {
		idx, ok := countryIndex(c)
		if !ok {
			out.addf("targeting.countries[%d]: %s", i, countryProblem(c))
			continue
		}
		if seen[idx] {
			out.addf("targeting.countries[%d]: duplicate country %q (also at [%d])", i, c, indexBefore(t.Countries, i))
			continue
		}
		seen[idx] = true
		f.countries = append(f.countries, idx)
	}
	if len(t.OS) == 0 {
		out.addf("targeting.os: must list at least one os (objects with name %s)", strings.Join(osNames, " or "))
	}
	f.osMask = 0
	for i, o := range t.OS {
		os, ok := snapshot.ParseOS(o.Name)
		switch {
		case o.Name == "":
			out.addf("targeting.os[%d].name: required (one of %s)", i, strings.Join(osNames, ", "))
		case !ok:
			out.addf("targeting.os[%d].name: %s", i, enumHint(o.Name, osNames))
		case f.osMask&(1<<os) != 0:
			j := 0
			for j < i && t.OS[j].Name != o.Name {
				j++
			}
			out.addf("targeting.os[%d].name: duplicate os %q (also at [%d]); give one entry per os", i, o.Name, j)
		default:
			f.osMask |= 1 << os
		}
		if o.MinVersion != "" {
			if _, ok := snapshot.ParseOSVersion(o.MinVersion); !ok {
				out.addf("targeting.os[%d].min_version: %q is not a version; expected major[.minor[.patch]] with major <= 65535 and minor, patch <= 255 (e.g. \"14.2\")", i, preview([]byte(o.MinVersion)))
			}
		}
	}
	for i, dt := range t.DeviceTypes {
		if _, ok := snapshot.ParseDeviceType(dt); !ok {
			out.addf("targeting.device_types[%d]: %s", i, enumHint(dt, deviceTypeNames))
		} else if j := indexBefore(t.DeviceTypes, i); j >= 0 {
			out.addf("targeting.device_types[%d]: duplicate %q (also at [%d])", i, dt, j)
		}
	}
	for i, s := range t.Segments {
		if p := checkLabel(s); p != "" {
			out.addf("targeting.segments[%d]: %s", i, p)
		}
	}
	for _, d := range firstDups(t.Segments) {
		out.addf("targeting.segments[%d]: duplicate segment %q (also at [%d])", d[0], t.Segments[d[0]], d[1])
	}
}

// validateCreative appends the problems of one decoded creative to out.
func validateCreative(c *Creative, present uint32, out *msgs) {
	if p := checkID(c.ID); p != "" {
		out.addf("id: %s", p)
	}
	f, ok := snapshot.ParseFormat(c.Format)
	switch {
	case present&crFormat == 0:
		out.addf("format: required field missing (one of %s)", strings.Join(formatNames, ", "))
	case !ok && (c.Format == "interstitial" || c.Format == "rewarded"):
		out.addf("format: %q is a placement property since snapshot format 2: give the creative format (banner, video or native) here and set interstitial or rewarded on the placement", c.Format)
	case !ok:
		out.addf("format: %s", enumHint(c.Format, formatNames))
	}
	switch {
	case c.Width == 0 && c.Height != 0:
		out.addf("width: must be > 0 when height is (give both, or neither for full screen / any size), got 0 x %d", c.Height)
	case c.Height == 0 && c.Width != 0:
		out.addf("height: must be > 0 when width is (give both, or neither for full screen / any size), got %d x 0", c.Width)
	}
	if p := checkURL(c.AssetURL); p != "" {
		out.addf("asset_url: %s", p)
	}
	if p := checkURL(c.ClickURL); p != "" {
		out.addf("click_url: %s", p)
	}
	if present&crADomain != 0 {
		if p := checkDomain(c.ADomain); p != "" {
			out.addf("adomain: %s", p)
		}
	}
	if present&crIABCategory != 0 && !iabCategory(c.IABCategory) {
		out.addf("iab_category: %q is not an IAB content category (taxonomy 1.0: IAB1 to IAB26, or a subcategory such as IAB9-30)", preview([]byte(c.IABCategory)))
	}
	switch {
	case ok && f == snapshot.FormatVideo && c.Video == nil:
		out.addf("video: required for format video (duration_seconds and media_files)")
	case ok && f != snapshot.FormatVideo && c.Video != nil:
		out.addf("video: only for format video, this creative is %s", c.Format)
	case c.Video != nil:
		validateVideo(c.Video, out)
	}
}

// validateVideo checks a video creative's duration and media files.
func validateVideo(v *Video, out *msgs) {
	switch {
	case v.present&vidDuration == 0:
		out.addf("video.duration_seconds: required field missing (seconds, 1 to %d)", MaxVideoSeconds)
	case v.DurationSeconds == 0 || v.DurationSeconds > MaxVideoSeconds:
		out.addf("video.duration_seconds: must be in [1, %d], got %d", MaxVideoSeconds, v.DurationSeconds)
	}
	switch n := len(v.MediaFiles); {
	case v.present&vidMediaFiles == 0:
		out.addf("video.media_files: required field missing (1 to %d renditions)", MaxMediaFiles)
		return
	case n == 0 || n > MaxMediaFiles:
		out.addf("video.media_files: must list 1 to %d renditions, got %d", MaxMediaFiles, n)
	}
	for i := range v.MediaFiles {
		m := &v.MediaFiles[i]
		at := fmt.Sprintf("video.media_files[%d]", i)
		if m.present&mfURL == 0 {
			out.addf("%s.url: required field missing", at)
		} else if p := checkURL(m.URL); p != "" {
			out.addf("%s.url: %s", at, p)
		}
		if m.present&mfMIME == 0 {
			out.addf("%s.mime: required field missing (e.g. video/mp4)", at)
		} else if !mimeType(m.MIME) {
			out.addf("%s.mime: %q is not a media type (type/subtype, e.g. video/mp4, application/x-mpegURL)", at, preview([]byte(m.MIME)))
		}
		if m.Width == 0 || m.Height == 0 {
			out.addf("%s.width, height: both required and > 0 pixels, got %d x %d", at, m.Width, m.Height)
		}
		if m.BitrateKbps > MaxBitrateKbps {
			out.addf("%s.bitrate_kbps: must be at most %d, got %d", at, MaxBitrateKbps, m.BitrateKbps)
		}
		if m.present&mfDelivery != 0 {
			if _, ok := snapshot.ParseDelivery(m.Delivery); !ok {
				out.addf("%s.delivery: %s", at, enumHint(m.Delivery, deliveryNames))
			}
		}
	}
}

// deliveryNames are the media file delivery methods (snapshot.ParseDelivery).
var deliveryNames = []string{"progressive", "streaming"}

// checkDomain checks an advertiser domain: lower-case host name labels,
// at least two, no scheme or path ("acme.com", not "https://acme.com/").
func checkDomain(v string) string {
	if v == "" || len(v) > 253 {
		return fmt.Sprintf("must be a domain name of 1 to 253 bytes, got %d bytes", len(v))
	}
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		return fmt.Sprintf("%q is not a domain name (e.g. acme.com)", preview([]byte(v)))
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Sprintf("%q is not a domain name (e.g. acme.com)", preview([]byte(v)))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("%q is not a domain name: lower-case letters, digits, '-' and '.' only, no scheme or path (e.g. acme.com)", preview([]byte(v)))
			}
		}
	}
	return ""
}

// iabCategory reports whether v is an IAB content taxonomy 1.0 id:
// IAB1..IAB26, optionally -n with n of one to three digits.
func iabCategory(v string) bool {
	rest, ok := strings.CutPrefix(v, "IAB")
	if !ok {
		return false
	}
	top, sub, hasSub := strings.Cut(rest, "-")
	n, err := strconv.Atoi(top)
	if err != nil || n < 1 || n > 26 || top[0] == '0' {
		return false
	}
	if hasSub {
		m, err := strconv.Atoi(sub)
		if err != nil || m < 1 || len(sub) > 3 || sub[0] == '0' {
			return false
		}
	}
	return true
}

// mimeType reports whether v looks like a media type: type/subtype of
// token characters, at most 64 bytes.
func mimeType(v string) bool {
	typ, sub, ok := strings.Cut(v, "/")
	if !ok || typ == "" || sub == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '/' && i == len(typ) {
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&-^_.+", c) >= 0) {
			return false
		}
	}
	return true
}

// validatePlacement appends the problems of one decoded placement to out.
func validatePlacement(p *Placement, present uint32, out *msgs) {
	if m := checkID(p.ID); m != "" {
		out.addf("id: %s", m)
	}
	if m := checkID(p.App); m != "" {
		out.addf("app: %s", m)
	}
	switch {
	case present&plFormats == 0 && present&plLegacyFormat == 0:
		out.addf("formats: required field missing (a list of %s)", strings.Join(formatNames, ", "))
	case present&plFormats != 0 && len(p.Formats) == 0:
		out.addf("formats: must list at least one of %s", strings.Join(formatNames, ", "))
	}
	for i, f := range p.Formats {
		if _, ok := snapshot.ParseFormat(f); !ok {
			out.addf("formats[%d]: %s", i, enumHint(f, formatNames))
		}
	}
	for _, d := range firstDups(p.Formats) {
		out.addf("formats[%d]: duplicate %q (also at [%d])", d[0], p.Formats[d[0]], d[1])
	}
	if p.FloorMicros < 0 || p.FloorMicros > MaxFloorMicros {
		out.addf("floor_micros: must be in [0, %d] (micros of CPM; 0 = no floor), got %d", MaxFloorMicros, p.FloorMicros)
	}
	for i, a := range p.BlockedAdvertisers {
		if m := checkLabel(a); m != "" {
			out.addf("blocked_advertisers[%d]: %s", i, m)
		}
	}
	for _, d := range firstDups(p.BlockedAdvertisers) {
		out.addf("blocked_advertisers[%d]: duplicate %q (also at [%d])", d[0], p.BlockedAdvertisers[d[0]], d[1])
	}
	for i, c := range p.BlockedCategories {
		if m := checkLabel(c); m != "" {
			out.addf("blocked_categories[%d]: %s", i, m)
		}
	}
	for _, d := range firstDups(p.BlockedCategories) {
		out.addf("blocked_categories[%d]: duplicate %q (also at [%d])", d[0], p.BlockedCategories[d[0]], d[1])
	}
}

// checkRate validates a probability in [0,1].
func checkRate(v float64) string {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Sprintf("must be a probability in [0, 1], got %v", v)
	}
	return ""
}

// validatePrediction appends the problems of one decoded prediction line
// that need no other file.
func validatePrediction(p *predLine, present uint32, out *msgs) {
	if present&prCampaign == 0 {
		out.addf("campaign_id: required field missing")
	}
	if present&prCountry == 0 {
		out.addf("country: required field missing (ISO 3166-1 alpha-2 code)")
	} else if _, ok := countryIndex(p.country); !ok {
		out.addf("country: %s", countryProblem(p.country))
	}
	if _, ok := snapshot.ParseOS(p.os); !ok {
		if present&prOS == 0 {
			out.addf("os: required field missing (one of %s)", strings.Join(osNames, ", "))
		} else {
			out.addf("os: %s", enumHint(p.os, osNames))
		}
	}
	if present&prCTR == 0 {
		out.addf("ctr: required field missing (clicks per impression in [0, 1])")
	} else if m := checkRate(p.ctr); m != "" {
		out.addf("ctr: %s", m)
	}
	if present&prInstallRate == 0 {
		out.addf("install_rate: required field missing (installs per impression in [0, 1])")
	} else if m := checkRate(p.ir); m != "" {
		out.addf("install_rate: %s", m)
	}
}

// Pacing modes and billing events a campaign may name.
var (
	pacingNames  = []string{"even", "asap"}
	billingNames = []string{"impression", "click"}
)

// validateBudget checks the budget and pacing fields (docs/INPUTS.md).
func validateBudget(c *Campaign, present uint32, out *msgs) {
	budget := func(name string, v int64, set bool) {
		switch {
		case !set:
		case v == 0:
			out.addf("%s: 0 is not a budget (nothing could ever serve); omit the field for no limit", name)
		case v < 0 || v > MaxBudgetMicros:
			out.addf("%s: must be in [1, %d] micros, got %d", name, int64(MaxBudgetMicros), v)
		}
	}
	budget("daily_budget_micros", c.DailyBudgetMicros, present&campBudget != 0)
	budget("lifetime_budget_micros", c.LifetimeBudgetMicros, present&campLifetime != 0)
	if c.LifetimeBudgetMicros > 0 && c.DailyBudgetMicros > c.LifetimeBudgetMicros {
		out.addf("lifetime_budget_micros: %d is below daily_budget_micros %d: the daily budget could never be spent", c.LifetimeBudgetMicros, c.DailyBudgetMicros)
	}
	if present&campPacing != 0 && !slices.Contains(pacingNames, c.Pacing) {
		out.addf("pacing: %s", enumHint(c.Pacing, pacingNames))
	}
	if present&campBilling != 0 {
		switch {
		case !slices.Contains(billingNames, c.BillingEvent):
			out.addf("billing_event: %s", enumHint(c.BillingEvent, billingNames))
		case c.BillingEvent == "click" && c.BidType != "cpc":
			out.addf("billing_event: click is for cpc campaigns (the bid is a price per click), this one is %q", c.BidType)
		}
	}
	if present&campTimeZone != 0 {
		if _, err := snapshot.LoadZone(c.TimeZone); err != nil {
			out.addf("time_zone: %v", err)
		}
	}
}
