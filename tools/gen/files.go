package gen

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder/inventory"
)

// baseUnix is the fixed base date schedules are built around: 2026-01-01
// 00:00 UTC. Most campaigns run over all of 2026-2027.
var baseUnix = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

const day = 86400

// Id widths (zero padded, numbered from 1; wider counts just get longer ids).
const (
	campaignIDWidth  = 7
	creativeIDWidth  = 8
	placementIDWidth = 7
)

var (
	campaignOS = [...]string{"android", "ios"}
	androidVW  = newWeighted(androidVerW[:])
	iosVW      = newWeighted(iosVerW[:])
	capCountWt = newWeighted(capCountW[:])
	capPerWt   = newWeighted(capPeriodW[:])
	fmtGameWt  = newWeighted(gameFormatW[:])
	fmtAppWt   = newWeighted(appFormatW[:])
	fmtBrandWt = newWeighted(brandFormatW[:])
	fmtPlaceWt = newWeighted(placeFormatW[:])
	sizeWt     = [...]weighted{newWeighted(bannerSizeW[:]), newWeighted(interSizeW[:]), newWeighted(rewardSizeW[:]), newWeighted(nativeSizeW[:])}
	sizeTab    = [...][]size{bannerSizes[:], interSizes[:], rewardSizes[:], nativeSizes[:]}
)

func (g *generator) campaigns(s *sink) {
	r := newStream(g.seed, streamCampaigns)
	for i := range g.p.camps {
		c := &g.p.camps[i]
		ctry := g.p.countries(c)
		b := s.buf
		b = append(b, `{"id":`...)
		b = appendID(b, "cmp-", i+1, campaignIDWidth)
		b = append(b, `,"advertiser":`...)
		b = appendStr(b, g.w.advs[c.adv].name)
		b = append(b, `,"category":`...)
		b = appendStr(b, categories[c.cat].code)
		b = append(b, `,"bid_type":"`...)
		b = append(b, bidNames[c.bid]...)

		// Bids: log-normal around typical prices, higher for iOS and tier-1.
		t1 := 0
		for _, k := range ctry {
			if tier1[countries[k]] {
				t1++
			}
		}
		mult := 1.0
		if 2*t1 >= len(ctry) {
			mult *= 1.3
		}
		if c.osMask == osIOS {
			mult *= 1.4
		}
		var bid int64
		switch c.bid {
		case bidCPI:
			bid = roundMicros(truncLogNormal(r, 1.8*mult, 0.55, 0.5, 8), 10_000)
		case bidCPC:
			bid = roundMicros(truncLogNormal(r, 0.25*mult, 0.7, 0.05, 2), 1_000)
		default:
			bid = roundMicros(truncLogNormal(r, 3*mult, 0.7, 0.5, 20), 10_000)
		}
		b = append(b, `","bid_micros":`...)
		b = strconv.AppendInt(b, bid, 10)
		b = append(b, `,"daily_budget_micros":`...)
		b = strconv.AppendInt(b, roundMicros(truncLogNormal(r, 400, 1.2, 50, 1_000_000), 10_000_000), 10)

		// Schedule: evergreen over 2026-2027, short flights inside it, and
		// some already ended.
		var start, end int64
		switch u := r.Float64(); {
		case u < 0.82:
			start = baseUnix - int64(r.IntN(271))*day
			end = baseUnix + 730*day + int64(r.IntN(366))*day
		case u < 0.94:
			start = baseUnix + int64(r.IntN(700))*day + int64(r.IntN(24))*3600
			end = start + int64(7+r.IntN(84))*day
		default:
			end = baseUnix - int64(1+r.IntN(200))*day
			start = end - int64(14+r.IntN(77))*day
		}
		b = append(b, `,"start":"`...)
		b = time.Unix(start, 0).UTC().AppendFormat(b, time.RFC3339)
		b = append(b, `","end":"`...)
		b = time.Unix(end, 0).UTC().AppendFormat(b, time.RFC3339)

		b = append(b, `","targeting":{"countries":[`...)
		for j, k := range ctry {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, countries[k]...)
			b = append(b, '"')
		}
		b = append(b, `],"os":[`...)
		first := true
		for o := range 2 {
			if c.osMask&(1<<o) == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, `{"name":"`...)
			b = append(b, campaignOS[o]...)
			b = append(b, '"')
			var v string
			if o == 0 {
				v = androidVersions[androidVW.pick(r)]
			} else {
				v = iosVersions[iosVW.pick(r)]
			}
			if v != "" {
				b = append(b, `,"min_version":"`...)
				b = append(b, v...)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
		switch u := r.Float64(); {
		case u < 0.85:
		case u < 0.94:
			b = append(b, `,"device_types":["phone"]`...)
		case u < 0.98:
			b = append(b, `,"device_types":["tablet"]`...)
		default:
			b = append(b, `,"device_types":["phone","tablet"]`...)
		}
		if r.Float64() < 0.25 {
			n := 1
			if u := r.Float64(); u > 0.5 {
				n = 2
				if u > 0.85 {
					n = 3
				}
			}
			var mask uint64
			b = append(b, `,"segments":[`...)
			for j := 0; j < n; {
				var k int
				onTopic := r.Float64() < 0.8
				if categories[c.cat].game == onTopic {
					k = r.IntN(gameSegments)
				} else {
					k = gameSegments + r.IntN(len(segments)-gameSegments)
				}
				if mask&(1<<k) != 0 {
					continue
				}
				mask |= 1 << k
				if j > 0 {
					b = append(b, ',')
				}
				b = appendStr(b, segments[k])
				j++
			}
			b = append(b, ']')
		}
		b = append(b, '}')
		if r.Float64() < 0.4 {
			b = append(b, `,"frequency_cap":{"count":`...)
			b = strconv.AppendUint(b, uint64(capCounts[capCountWt.pick(r)]), 10)
			b = append(b, `,"period_seconds":`...)
			b = strconv.AppendUint(b, uint64(capPeriods[capPerWt.pick(r)]), 10)
			b = append(b, '}')
		}
		if c.app >= 0 {
			b = append(b, `,"promoted_app":`...)
			b = appendStr(b, g.w.apps[c.app].id)
		}
		// App-bundle lists: a few campaigns run only in some of the
		// biggest publisher apps, more keep out of some.
		top := min(20, len(g.w.pubApps))
		switch u := r.Float64(); {
		case u < 0.05 && top > 0:
			b = append(b, `,"allowed_bundles":`...)
			b = appendStrs(b, g.pickApps(r, top, 1+r.IntN(3)))
		case u < 0.15 && top > 0:
			b = append(b, `,"blocked_bundles":`...)
			b = appendStrs(b, g.pickApps(r, top, 1+r.IntN(2)))
		}
		b = append(b, `,"creative_ids":[`...)
		for k := range int(c.nCre) {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendID(b, "cr-", int(c.firstCre)+k+1, creativeIDWidth)
		}
		b = append(b, "]}\n"...)
		s.buf = b
		s.done()
	}
}

func (g *generator) creatives(s *sink) {
	r := newStream(g.seed, streamCreatives)
	var idb []byte
	for i := range g.p.camps {
		c := &g.p.camps[i]
		adv := g.w.advs[c.adv].name
		fw := fmtBrandWt
		if c.appInstall {
			fw = fmtAppWt
			if categories[c.cat].game {
				fw = fmtGameWt
			}
		}
		for k := range int(c.nCre) {
			idb = appendID(idb[:0], "cr-", int(c.firstCre)+k+1, creativeIDWidth) // quoted
			id := idb[1 : len(idb)-1]
			f := fw.pick(r)
			sz := sizeTab[f][sizeWt[f].pick(r)]
			var ext string
			u := r.Float64()
			switch f {
			case 0: // banner
				ext = pickStr(u, 0.5, "png", 0.9, "jpg", "html")
			case 1: // interstitial
				ext = pickStr(u, 0.45, "jpg", 0.8, "mp4", "html")
			case 2: // rewarded
				ext = pickStr(u, 0.85, "mp4", 2, "html", "")
			default: // native
				ext = pickStr(u, 0.7, "jpg", 2, "png", "")
			}
			// The slot kind f decides the creative format: video files
			// are video creatives, the rest banners (full screen 0x0
			// ones for interstitial and rewarded slots) or natives.
			format := "banner"
			switch {
			case ext == "mp4":
				format = "video"
			case f == 3:
				format = "native"
			}
			b := s.buf
			b = append(b, `{"id":`...)
			b = append(b, idb...)
			b = append(b, `,"format":"`...)
			b = append(b, format...)
			b = append(b, `","width":`...)
			b = strconv.AppendUint(b, uint64(sz.w), 10)
			b = append(b, `,"height":`...)
			b = strconv.AppendUint(b, uint64(sz.h), 10)
			b = append(b, `,"asset_url":"https://cdn.adedge.example/a/`...)
			b = append(b, adv...)
			b = append(b, '/')
			b = append(b, id...)
			if sz.w > 0 {
				b = append(b, '_')
				b = strconv.AppendUint(b, uint64(sz.w), 10)
				b = append(b, 'x')
				b = strconv.AppendUint(b, uint64(sz.h), 10)
			}
			b = append(b, '.')
			b = append(b, ext...)
			b = append(b, `","click_url":"`...)
			switch {
			case c.app >= 0 && c.osMask == osAndroid:
				b = append(b, "https://play.google.com/store/apps/details?id="...)
				b = append(b, g.w.apps[c.app].id...)
			case c.app >= 0 && c.osMask == osIOS:
				b = append(b, "https://apps.apple.com/app/id"...)
				b = strconv.AppendUint(b, uint64(g.w.apps[c.app].appleID), 10)
			case c.app >= 0:
				b = append(b, "https://app.adedge.example/i/"...)
				b = append(b, g.w.apps[c.app].id...)
				b = append(b, "?c="...)
				b = appendNum(b, i+1, campaignIDWidth)
			default:
				b = append(b, "https://www."...)
				b = append(b, adv...)
				b = append(b, ".example/lp/"...)
				b = appendNum(b, r.IntN(1000), 3)
				b = append(b, "?utm_source=adedge&utm_medium="...)
				b = append(b, formatNames[f]...)
				b = append(b, "&utm_campaign=cmp-"...)
				b = appendNum(b, i+1, campaignIDWidth)
			}
			b = append(b, `","adomain":"`...)
			b = append(b, adv...)
			b = append(b, `.example"`...)
			// The IAB category: mostly the campaign's, some another one
			// (so a placement's category block can hit one creative of a
			// campaign), some none.
			switch u := r.Float64(); {
			case u < 0.8:
				b = append(b, `,"iab_category":`...)
				b = appendStr(b, categories[c.cat].code)
			case u < 0.9:
				b = append(b, `,"iab_category":`...)
				b = appendStr(b, categories[r.IntN(len(categories))].code)
			}
			if format == "video" {
				b = appendVideo(b, r, adv, string(id), sz)
			}
			b = append(b, "}\n"...)
			s.buf = b
			s.done()
		}
	}
}

// pickApps draws n distinct publisher apps among the top ones.
func (g *generator) pickApps(r *rand.Rand, top, n int) []string {
	var l []string
	for range n {
		l = appendUnique(l, g.w.pubApps[r.IntN(top)])
	}
	return l
}

// videoDurations are the lengths video creatives have (seconds).
var videoDurations = [...]uint16{6, 15, 15, 30, 30, 30, 60}

// appendVideo appends a video creative's "video" member: a duration and
// two or three renditions in the creative's orientation.
func appendVideo(b []byte, r *rand.Rand, adv, id string, sz size) []byte {
	w, h := uint16(1280), uint16(720)
	if sz.h > sz.w {
		w, h = h, w
	}
	b = append(b, `,"video":{"duration_seconds":`...)
	b = strconv.AppendUint(b, uint64(videoDurations[r.IntN(len(videoDurations))]), 10)
	b = append(b, `,"media_files":[`...)
	rend := func(b []byte, name, mime string, w, h uint16, kbps int, delivery string) []byte {
		b = append(b, `{"url":"https://cdn.adedge.example/v/`...)
		b = append(b, adv...)
		b = append(b, '/')
		b = append(b, id...)
		b = append(b, name...)
		b = append(b, `","mime":"`...)
		b = append(b, mime...)
		b = append(b, `","width":`...)
		b = strconv.AppendUint(b, uint64(w), 10)
		b = append(b, `,"height":`...)
		b = strconv.AppendUint(b, uint64(h), 10)
		if kbps > 0 {
			b = append(b, `,"bitrate_kbps":`...)
			b = strconv.AppendInt(b, int64(kbps), 10)
		}
		if delivery != "" {
			b = append(b, `,"delivery":"`...)
			b = append(b, delivery...)
			b = append(b, '"')
		}
		return append(b, '}')
	}
	b = rend(b, "_hd.mp4", "video/mp4", w, h, 1500+100*r.IntN(11), "")
	b = append(b, ',')
	b = rend(b, "_sd.mp4", "video/mp4", w/2, h/2, 600+50*r.IntN(7), "")
	switch u := r.Float64(); {
	case u < 0.3:
		b = append(b, ',')
		b = rend(b, ".webm", "video/webm", w, h, 1200+100*r.IntN(6), "")
	case u < 0.5:
		b = append(b, ',')
		b = rend(b, ".m3u8", "application/x-mpegURL", w, h, 0, "streaming")
	}
	return append(b, "]}"...)
}

func pickStr(u, p1 float64, a string, p2 float64, b, c string) string {
	switch {
	case u < p1:
		return a
	case u < p2:
		return b
	}
	return c
}

func (g *generator) placements(s *sink) {
	r := newStream(g.seed, streamPlacements)
	appZ := newZipf(r, 1.1, 20, len(g.w.pubApps))
	var sens []string
	for _, code := range sensitiveCategories {
		for ci, c := range categories {
			if c.code == code && g.p.usedCats[ci] {
				sens = append(sens, code)
			}
		}
	}
	var picked []string
	for i := range g.sc.Placements {
		f := fmtPlaceWt.pick(r)
		var floor int64
		if r.Float64() >= 0.2 {
			floor = roundMicros(truncLogNormal(r, floorMedian[f], 0.7, 0.05, 60), 10_000)
		}
		b := s.buf
		b = append(b, `{"id":`...)
		b = appendID(b, "pl-", i+1, placementIDWidth)
		b = append(b, `,"app":`...)
		b = appendStr(b, g.w.pubApps[appZ.Uint64()])
		b = append(b, placementFormats[f]...)
		b = append(b, `,"floor_micros":`...)
		b = strconv.AppendInt(b, floor, 10)
		if r.Float64() < 0.15 {
			// Blocks name advertisers and categories that campaigns use:
			// a random campaign's, so big advertisers are blocked most.
			blockAdv, blockCat := true, true
			switch u := r.Float64(); {
			case u < 0.4:
				blockCat = false
			case u < 0.8:
				blockAdv = false
			}
			if blockAdv {
				picked = picked[:0]
				for range 1 + geometric(r, 0.4, 3) {
					picked = appendUnique(picked, g.w.advs[g.p.camps[r.IntN(len(g.p.camps))].adv].name)
				}
				b = append(b, `,"blocked_advertisers":`...)
				b = appendStrs(b, picked)
			}
			if blockCat {
				picked = picked[:0]
				for range 1 + geometric(r, 0.35, 2) {
					if len(sens) > 0 && r.Float64() < 0.6 {
						picked = appendUnique(picked, sens[r.IntN(len(sens))])
					} else {
						picked = appendUnique(picked, categories[g.p.camps[r.IntN(len(g.p.camps))].cat].code)
					}
				}
				b = append(b, `,"blocked_categories":`...)
				b = appendStrs(b, picked)
			}
		}
		b = append(b, "}\n"...)
		s.buf = b
		s.done()
	}
}

func appendUnique(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

func (g *generator) predictions(s *sink) {
	r := newStream(g.seed, streamPredictions)
	cov := g.sc.PredictionCoverage
	for i := range g.p.camps {
		c := &g.p.camps[i]
		// Campaign-level rates, then a per-market jitter.
		ctr0 := truncLogNormal(r, 0.012, 0.5, 0.0005, 0.2)
		cvr0 := truncLogNormal(r, 0.05, 0.6, 0.002, 0.6)
		for _, k := range g.p.countries(c) {
			for o := range 2 {
				if c.osMask&(1<<o) == 0 || r.Float64() >= cov {
					continue
				}
				ctr := min(ctr0*math.Exp(0.35*r.NormFloat64()), 0.5)
				ir := 0.0
				if c.appInstall {
					ir = min(ctr*cvr0*math.Exp(0.3*r.NormFloat64()), ctr)
				}
				b := s.buf
				b = append(b, `{"campaign_id":`...)
				b = appendID(b, "cmp-", i+1, campaignIDWidth)
				b = append(b, `,"country":"`...)
				b = append(b, countries[k]...)
				b = append(b, `","os":"`...)
				b = append(b, campaignOS[o]...)
				b = append(b, `","ctr":`...)
				b = strconv.AppendFloat(b, ctr, 'g', 4, 64)
				b = append(b, `,"install_rate":`...)
				b = strconv.AppendFloat(b, ir, 'g', 4, 64)
				b = append(b, "}\n"...)
				s.buf = b
				s.done()
			}
		}
	}
}

func (g *generator) profiles(s *sink) {
	r := newStream(g.seed, streamProfiles)
	segZ := newZipf(r, 1.3, 2, len(segments))
	nApps := len(g.w.apps)
	appZ := newZipf(r, 1.1, 3, nApps)
	var chosen []int32
	for range g.sc.Profiles {
		b := s.buf
		b = append(b, `{"device":"`...)
		b = appendUUID(b, r.Uint64(), r.Uint64(), r.Float64() < 0.3)
		b = append(b, `","segments":[`...)
		if r.Float64() >= 0.15 {
			n := 1 + min(7, int(r.ExpFloat64()*1.8))
			var mask uint64
			for range n {
				mask |= 1 << segZ.Uint64()
			}
			first := true
			for k := range segments {
				if mask&(1<<k) != 0 {
					if !first {
						b = append(b, ',')
					}
					first = false
					b = appendStr(b, segments[k])
				}
			}
		}
		b = append(b, `],"installed_apps":[`...)
		if nApps > 0 && r.Float64() >= 0.1 {
			n := min(int(truncLogNormal(r, 4.2, 0.6, 1, 40)), nApps)
			chosen = chosen[:0]
			for try := 0; len(chosen) < n && try < 20*n; try++ {
				a := int32(appZ.Uint64())
				dup := false
				for _, x := range chosen {
					if x == a {
						dup = true
						break
					}
				}
				if !dup {
					chosen = append(chosen, a)
				}
			}
			for j, a := range chosen {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendStr(b, g.w.apps[a].id)
			}
		}
		b = append(b, "]}\n"...)
		s.buf = b
		s.done()
	}
}

// Experiment tests: three tests at 20/20/10% of one layer of 100 segments
// (0-19, 20-39, 40-49), control keeps 50%. The layer's salt is the set's,
// so the set buckets every device as the original consecutive-range form
// did (docs/EXPERIMENTS.md, migration).
func (g *generator) experiments(s *sink) {
	r := newStream(g.seed, streamExperiments)
	salt := "salt-" + strconv.FormatUint(r.Uint64(), 16)
	e := inventory.Experiments{
		ID:     "exp-default",
		Salt:   salt,
		Layers: []abtest.Layer{{ID: "main", Salt: salt, Segments: 100}},
		Tests: []inventory.ExperimentTest{
			{ID: "t1-floor", Layer: "main", Variant: "floor_x1.1", Segments: "0-19", Params: map[string]float64{"floor_multiplier": 1.1}},
			{ID: "t2-cpi-weight", Layer: "main", Variant: "weight_cpi_x1.2", Segments: "20-39", Params: map[string]float64{"weight_cpi": 1.2}},
			{ID: "t3-min-ctr", Layer: "main", Variant: "min_ctr_0.001", Segments: "40-49", Params: map[string]float64{"min_ctr": 0.001}},
		},
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		s.err = err
		return
	}
	s.buf = append(append(s.buf, b...), '\n')
	s.records = len(e.Tests)
}

// appendStr appends s as a JSON string. Generated strings are ASCII; quotes,
// backslashes and control bytes are escaped anyway so the output is always
// valid JSON.
func appendStr(b []byte, s string) []byte {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			clean = false
			break
		}
	}
	b = append(b, '"')
	if clean {
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexLower[c>>4], hexLower[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendStrs(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, s)
	}
	return append(b, ']')
}

// appendID appends the quoted id prefix + n zero-padded to width digits.
func appendID(b []byte, prefix string, n, width int) []byte {
	b = append(b, '"')
	b = append(b, prefix...)
	b = appendNum(b, n, width)
	return append(b, '"')
}

func appendNum(b []byte, n, width int) []byte {
	var d [20]byte
	i := len(d)
	for n > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[i:]...)
}

const (
	hexLower = "0123456789abcdef"
	hexUpper = "0123456789ABCDEF"
)

// appendUUID appends a random (version 4) UUID from two random words:
// upper-case like an iOS IDFA or lower-case like an Android GAID.
func appendUUID(b []byte, hi, lo uint64, upper bool) []byte {
	hi = hi&^(0xf<<12) | 4<<12           // version 4
	lo = lo&^(0xc<<60) | uint64(0x8)<<60 // RFC 4122 variant
	hex := hexLower
	if upper {
		hex = hexUpper
	}
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		w := hi
		if i >= 8 {
			w = lo
		}
		x := byte(w >> (56 - 8*(i%8)))
		b = append(b, hex[x>>4], hex[x&15])
	}
	return b
}
