package inventory

import (
	"fmt"
	"math"
	"net/url"
	"slices"
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
	case !ok:
		out.addf("format: %s", enumHint(c.Format, formatNames))
	case f == snapshot.FormatBanner:
		if c.Width == 0 {
			out.addf("width: must be > 0 pixels for a banner, got 0")
		}
		if c.Height == 0 {
			out.addf("height: must be > 0 pixels for a banner, got 0")
		}
	case (c.Width == 0) != (c.Height == 0):
		out.addf("width, height: give both or neither for %s (0 x 0 = fullscreen/any size), got %d x %d", c.Format, c.Width, c.Height)
	}
	if p := checkURL(c.AssetURL); p != "" {
		out.addf("asset_url: %s", p)
	}
	if p := checkURL(c.ClickURL); p != "" {
		out.addf("click_url: %s", p)
	}
}

// validatePlacement appends the problems of one decoded placement to out.
func validatePlacement(p *Placement, present uint32, out *msgs) {
	if m := checkID(p.ID); m != "" {
		out.addf("id: %s", m)
	}
	if m := checkID(p.App); m != "" {
		out.addf("app: %s", m)
	}
	if _, ok := snapshot.ParseFormat(p.Format); !ok {
		if present&plFormat == 0 {
			out.addf("format: required field missing (one of %s)", strings.Join(formatNames, ", "))
		} else {
			out.addf("format: %s", enumHint(p.Format, formatNames))
		}
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
