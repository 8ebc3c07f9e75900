package snaptool

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/snapshot"
)

// DefaultMaxProblems caps the problems CheckReferences reports; the rest
// are counted in a final line.
const DefaultMaxProblems = 100

// CheckReferences checks the structure of an opened (so checksum-verified)
// snapshot beyond what the Reader checks, and returns one line per problem,
// at most DefaultMaxProblems plus a final "... and N more" line; nil when
// the file is consistent. It checks:
//
//   - every StrRef and ListRef in every record lies inside STRINGS/U32POOL;
//   - dictionary, creative and country indexes are in range, country and
//     blocked lists ascending, segment bits below the segment count;
//   - campaigns, creatives and placements are sorted by unique id, and each
//     campaign's creatives are grouped by format;
//   - the placement index finds every placement by its own id, and each of
//     its slots holds the right hash;
//   - the candidate index tiles the CANDIDATES section; every candidate
//     names a campaign in range that targets the list's country and OS and
//     has not ended, its creatives are a sub-run of the campaign's whose
//     format is the list's, its CTR is a probability, CPM/CPC eCPMs match
//     builder.ECPMMicros, and each list is sorted by eCPM descending then
//     campaign ascending with no campaign twice;
//   - the experiment set passes abtest's rules, the ones the edge enforces.
func CheckReferences(r *snapshot.Reader) []string { return checkReferences(r, 0) }

// recLabel names a record in a problem; it is formatted only when a
// problem is recorded, so clean records cost no formatting.
type recLabel struct {
	kind string
	i    int
	id   string
}

func (l recLabel) String() string {
	if l.id != "" {
		return fmt.Sprintf("%s %s (#%d)", l.kind, l.id, l.i)
	}
	return fmt.Sprintf("%s #%d", l.kind, l.i)
}

// candLabel names a candidate-list entry in a problem.
type candLabel struct {
	r            *snapshot.Reader
	key, i       int
	campaign     uint32
	withCampaign bool
}

func (l candLabel) String() string {
	s := fmt.Sprintf("candidate list %s [%d]", keyName(l.key), l.i)
	if l.withCampaign {
		s += " campaign " + campaignID(l.r, l.campaign)
	}
	return s
}

// keyLabel is a candidate-list key formatted on demand.
type keyLabel int

func (k keyLabel) String() string { return keyName(int(k)) }

type problems struct {
	list []string
	max  int
	more int
}

func (p *problems) add(format string, args ...any) {
	if len(p.list) < p.max {
		p.list = append(p.list, fmt.Sprintf(format, args...))
		return
	}
	p.more++
}

func (p *problems) result() []string {
	if p.more > 0 {
		return append(p.list, fmt.Sprintf("... and %d more problems", p.more))
	}
	return p.list
}

// refChecker holds what the checks need of the file.
type refChecker struct {
	r        *snapshot.Reader
	p        *problems
	strLen   uint64
	poolLen  uint64 // elements
	crFormat []snapshot.Format
	camps    []campFact
}

// campFact is what the candidate checks need of a campaign, decoded once.
type campFact struct {
	bid, end             int64
	creatives, countries snapshot.ListRef
	osMask               uint8
	bidType              snapshot.BidType
}

func (c *refChecker) strOK(ref snapshot.StrRef) bool {
	return uint64(ref.Off)+uint64(ref.Len) <= c.strLen
}

func (c *refChecker) listOK(ref snapshot.ListRef) bool {
	return uint64(ref.Off)+uint64(ref.Len) <= c.poolLen
}

// str checks a StrRef and returns its string (empty when out of bounds).
func (c *refChecker) str(what recLabel, field string, ref snapshot.StrRef) string {
	if !c.strOK(ref) {
		c.p.add("%s: %s string ref %d+%d outside the %d-byte strings section", what, field, ref.Off, ref.Len, c.strLen)
		return ""
	}
	return c.r.String(ref)
}

// ascList checks a ListRef of ascending indexes below limit.
func (c *refChecker) ascList(what recLabel, field string, ref snapshot.ListRef, limit int, limitName string) {
	if !c.listOK(ref) {
		c.p.add("%s: %s list ref %d+%d outside the %d-element u32 pool", what, field, ref.Off, ref.Len, c.poolLen)
		return
	}
	l := c.r.List(ref)
	for i := 0; i < l.Len(); i++ {
		v := l.At(i)
		if uint64(v) >= uint64(limit) {
			c.p.add("%s: %s[%d] = %d out of range (%d %s)", what, field, i, v, limit, limitName)
		}
		if i > 0 && v <= l.At(i-1) {
			c.p.add("%s: %s not strictly ascending at [%d] (%d after %d)", what, field, i, v, l.At(i-1))
		}
	}
}

func checkReferences(r *snapshot.Reader, maxProblems int) []string {
	if maxProblems <= 0 {
		maxProblems = DefaultMaxProblems
	}
	p := &problems{max: maxProblems}
	strs, _ := sectionBytes(r, snapshot.SecStrings)
	pool, _ := sectionBytes(r, snapshot.SecU32Pool)
	c := &refChecker{r: r, p: p, strLen: uint64(len(strs)), poolLen: uint64(len(pool) / 4)}

	c.checkDicts()
	c.checkCreatives()
	c.checkCampaigns()
	c.checkPlacements()
	c.checkPlacementIndex()
	c.checkCandidates()
	c.checkExperiments()
	return p.result()
}

func (c *refChecker) checkDicts() {
	for _, d := range []struct {
		id   uint32
		name string
	}{{snapshot.SecAdvertisers, "advertiser"}, {snapshot.SecCategories, "category"}, {snapshot.SecSegments, "segment"}} {
		b, stride := sectionBytes(c.r, d.id)
		if stride < snapshot.RefSize {
			continue // the Reader refuses such files; nothing to read
		}
		for i := 0; i < len(b)/stride; i++ {
			off, n, _ := refAt(b, stride, i)
			what := recLabel{kind: d.name, i: i}
			if s := c.str(what, "name", snapshot.StrRef{Off: off, Len: n}); s == "" && c.strOK(snapshot.StrRef{Off: off, Len: n}) {
				c.p.add("%s: empty name", what)
			}
		}
	}
}

func (c *refChecker) checkCreatives() {
	r := c.r
	c.crFormat = make([]snapshot.Format, r.NumCreatives())
	prev := ""
	for i := 0; i < r.NumCreatives(); i++ {
		cr, _ := r.Creative(i)
		what := recLabel{kind: "creative", i: i}
		id := c.str(what, "id", cr.ID)
		if id != "" {
			what.id = id
		} else if c.strOK(cr.ID) {
			c.p.add("%s: empty id", what)
		}
		c.str(what, "asset_url", cr.AssetURL)
		c.str(what, "click_url", cr.ClickURL)
		c.str(what, "adomain", cr.ADomain)
		if int(cr.Format) >= snapshot.NumFormats {
			c.p.add("%s: format %d unknown", what, cr.Format)
		}
		if ci, ok := cr.HasCategory(); ok && int(ci) >= r.NumCategories() {
			c.p.add("%s: category index %d out of range (%d categories)", what, ci, r.NumCategories())
		}
		c.checkMedia(what, &cr)
		c.crFormat[i] = cr.Format
		if i > 0 && id != "" && prev != "" && id <= prev {
			c.p.add("%s: ids not sorted and unique (%q after %q)", what, id, prev)
		}
		prev = id
	}
}

// checkMedia checks a creative's media files: a video has at least one,
// inside MEDIA_FILES, with a URL, a mime type and a known delivery; other
// formats have none.
func (c *refChecker) checkMedia(what recLabel, cr *snapshot.Creative) {
	r := c.r
	ref := cr.MediaFiles
	switch {
	case cr.Format != snapshot.FormatVideo:
		if ref.Len != 0 || cr.DurationSeconds != 0 {
			c.p.add("%s: %s creative with video fields (%d media files, %d s)", what, cr.Format, ref.Len, cr.DurationSeconds)
		}
		return
	case ref.Len == 0 || cr.DurationSeconds == 0:
		c.p.add("%s: video without media files or duration (%d, %d s)", what, ref.Len, cr.DurationSeconds)
		return
	case uint64(ref.Off)+uint64(ref.Len) > uint64(r.NumMediaFiles()):
		c.p.add("%s: media files %d+%d outside the %d records", what, ref.Off, ref.Len, r.NumMediaFiles())
		return
	}
	for k := 0; k < int(ref.Len); k++ {
		m, _ := r.MediaFile(int(ref.Off) + k)
		if c.str(what, "media file url", m.URL) == "" || c.str(what, "media file mime", m.MIME) == "" {
			c.p.add("%s: media file %d without url or mime", what, k)
		}
		if snapshot.DeliveryName(m.Delivery) == "" {
			c.p.add("%s: media file %d delivery %d unknown", what, k, m.Delivery)
		}
	}
}

func (c *refChecker) checkCampaigns() {
	r := c.r
	prev := ""
	nSeg := r.NumSegments()
	c.camps = make([]campFact, r.NumCampaigns())
	for i := 0; i < r.NumCampaigns(); i++ {
		cp, _ := r.Campaign(i)
		c.camps[i] = campFact{bid: cp.BidMicros, end: cp.End, creatives: cp.Creatives, countries: cp.Countries, osMask: cp.OSMask, bidType: cp.BidType}
		what := recLabel{kind: "campaign", i: i}
		id := c.str(what, "id", cp.ID)
		if id != "" {
			what.id = id
		} else if c.strOK(cp.ID) {
			c.p.add("%s: empty id", what)
		}
		if i > 0 && id != "" && prev != "" && id <= prev {
			c.p.add("%s: ids not sorted and unique (%q after %q)", what, id, prev)
		}
		prev = id
		if int(cp.Advertiser) >= r.NumAdvertisers() {
			c.p.add("%s: advertiser index %d out of range (%d advertisers)", what, cp.Advertiser, r.NumAdvertisers())
		}
		if int(cp.Category) >= r.NumCategories() {
			c.p.add("%s: category index %d out of range (%d categories)", what, cp.Category, r.NumCategories())
		}
		if int(cp.BidType) >= snapshot.NumBidTypes {
			c.p.add("%s: bid type %d unknown", what, cp.BidType)
		}
		if cp.BidMicros <= 0 {
			c.p.add("%s: bid %d micros, must be > 0", what, cp.BidMicros)
		}
		if cp.DeviceTypes == 0 || cp.DeviceTypes&^snapshot.AllDevices != 0 {
			c.p.add("%s: device type bits 0x%02x invalid", what, cp.DeviceTypes)
		}
		if cp.OSMask == 0 || cp.OSMask&^(1<<snapshot.NumOS-1) != 0 {
			c.p.add("%s: OS mask 0x%02x invalid", what, cp.OSMask)
		}
		if cp.End <= cp.Start {
			c.p.add("%s: end %d not after start %d", what, cp.End, cp.Start)
		}
		app := c.str(what, "promoted_app", cp.PromotedApp)
		switch {
		case app != "" && cp.PromotedAppHash != xxhash.Sum64String(app):
			c.p.add("%s: promoted app hash %016x is not xxhash64(%q)", what, cp.PromotedAppHash, app)
		case cp.PromotedApp.Len == 0 && cp.PromotedAppHash != 0:
			c.p.add("%s: promoted app hash set without a promoted app", what)
		}
		for w, word := range cp.Segments {
			for b := 0; b < 64; b++ {
				if word&(1<<b) != 0 && w*64+b >= nSeg {
					c.p.add("%s: segment bit %d set, only %d segments", what, w*64+b, nSeg)
				}
			}
		}
		c.ascList(what, "countries", cp.Countries, snapshot.NumCountries, "countries")
		c.ascList(what, "allowed bundles", cp.AllowedBundles, r.NumBundles(), "bundles")
		c.ascList(what, "blocked bundles", cp.BlockedBundles, r.NumBundles(), "bundles")
		if !c.listOK(cp.Creatives) {
			c.p.add("%s: creatives list ref %d+%d outside the %d-element u32 pool", what, cp.Creatives.Off, cp.Creatives.Len, c.poolLen)
			continue
		}
		if cp.Creatives.Len == 0 {
			c.p.add("%s: no creatives", what)
		}
		l := r.List(cp.Creatives)
		var prevF snapshot.Format
		for j := 0; j < l.Len(); j++ {
			v := l.At(j)
			if uint64(v) >= uint64(len(c.crFormat)) {
				c.p.add("%s: creatives[%d] = %d out of range (%d creatives)", what, j, v, len(c.crFormat))
				continue
			}
			f := c.crFormat[v]
			if j > 0 && f < prevF {
				c.p.add("%s: creatives not grouped by format at [%d]", what, j)
			}
			prevF = f
		}
	}
}

func (c *refChecker) checkPlacements() {
	r := c.r
	prev := ""
	for i := 0; i < r.NumPlacements(); i++ {
		pl, _ := r.Placement(i)
		what := recLabel{kind: "placement", i: i}
		id := c.str(what, "id", pl.ID)
		if id != "" {
			what.id = id
			if j, ok := r.LookupPlacement(id); !ok || j != i {
				if ok {
					c.p.add("%s: placement index finds #%d for its id", what, j)
				} else {
					c.p.add("%s: placement index does not find it by id", what)
				}
			}
		} else if c.strOK(pl.ID) {
			c.p.add("%s: empty id", what)
		}
		if i > 0 && id != "" && prev != "" && id <= prev {
			c.p.add("%s: ids not sorted and unique (%q after %q)", what, id, prev)
		}
		prev = id
		c.str(what, "app", pl.App)
		if pl.Formats == 0 || pl.Formats&^snapshot.AllFormats != 0 {
			c.p.add("%s: format bits 0x%02x invalid", what, pl.Formats)
		}
		if pl.Flags&^snapshot.KnownPlacementFlags != 0 {
			c.p.add("%s: flag bits 0x%02x unknown", what, pl.Flags)
		}
		if pl.FloorMicros < 0 {
			c.p.add("%s: negative floor %d", what, pl.FloorMicros)
		}
		c.ascList(what, "blocked advertisers", pl.BlockedAdvertisers, r.NumAdvertisers(), "advertisers")
		c.ascList(what, "blocked categories", pl.BlockedCategories, r.NumCategories(), "categories")
	}
}

func (c *refChecker) checkPlacementIndex() {
	r := c.r
	b, stride := sectionBytes(r, snapshot.SecPlacementIndex)
	if stride < snapshot.SlotSize {
		return
	}
	n := r.NumPlacements()
	seen := make([]bool, n)
	used := 0
	for s := 0; s < len(b)/stride; s++ {
		slot := b[s*stride:]
		idx := le32(slot[8:])
		if idx == 0 {
			continue
		}
		used++
		if uint64(idx-1) >= uint64(n) {
			c.p.add("placement index slot %d: placement %d out of range (%d placements)", s, idx-1, n)
			continue
		}
		if seen[idx-1] {
			c.p.add("placement index slot %d: placement #%d indexed twice", s, idx-1)
		}
		seen[idx-1] = true
		pl, _ := r.Placement(int(idx - 1))
		if c.strOK(pl.ID) && le64(slot) != xxhash.Sum64String(r.String(pl.ID)) {
			c.p.add("placement index slot %d: hash %016x is not the hash of placement #%d's id %q", s, le64(slot), idx-1, r.String(pl.ID))
		}
	}
	if used != n {
		c.p.add("placement index: %d slots used for %d placements", used, n)
	}
}

func (c *refChecker) checkCandidates() {
	r := c.r
	keys, kstride := sectionBytes(r, snapshot.SecCandidateIndex)
	var total uint64
	for _, s := range r.Sections() {
		if s.ID == snapshot.SecCandidates {
			total = s.Count
		}
	}
	created := r.Header().Created
	stamp := make([]int32, r.NumCampaigns())
	var next uint64
	for k := 0; k < snapshot.NumKeys; k++ {
		off, n, ok := refAt(keys, kstride, k)
		if !ok {
			c.p.add("candidate index: key %d missing", k)
			return
		}
		key := keyLabel(k)
		if uint64(off)+uint64(n) > total {
			c.p.add("candidate list %s: ref %d+%d outside the %d candidates", key, off, n, total)
			continue
		}
		if n > 0 && uint64(off) != next {
			c.p.add("candidate list %s: starts at %d, expected %d (lists must tile the candidates section in key order)", key, off, next)
		}
		next = max(next, uint64(off)+uint64(n))
		f, country, os := splitKey(k)
		l := r.CandidatesAt(k)
		var prev snapshot.Candidate
		for i := 0; i < l.Len(); i++ {
			cd := l.At(i)
			what := candLabel{r: r, key: k, i: i, campaign: cd.Campaign}
			if i > 0 && (cd.ECPMMicros > prev.ECPMMicros || cd.ECPMMicros == prev.ECPMMicros && cd.Campaign <= prev.Campaign) {
				c.p.add("%s: not sorted by eCPM desc, campaign asc (%s eCPM %s after %s eCPM %s)", what,
					campaignID(r, cd.Campaign), money(cd.ECPMMicros), campaignID(r, prev.Campaign), money(prev.ECPMMicros))
			}
			prev = cd
			if math.IsNaN(float64(cd.CTR)) || cd.CTR < 0 || cd.CTR > 1 {
				c.p.add("%s: CTR %v is not a probability", what, cd.CTR)
			}
			if cd.ECPMMicros < 0 {
				c.p.add("%s: negative eCPM %d", what, cd.ECPMMicros)
			}
			if uint64(cd.Campaign) >= uint64(len(c.camps)) {
				c.p.add("%s: campaign index %d out of range (%d campaigns)", what, cd.Campaign, r.NumCampaigns())
				continue
			}
			cp := &c.camps[cd.Campaign]
			what.withCampaign = true
			if stamp[cd.Campaign] == int32(k+1) {
				c.p.add("%s: campaign appears twice in the list", what)
			}
			stamp[cd.Campaign] = int32(k + 1)
			if cp.osMask&(1<<os) == 0 {
				c.p.add("%s: campaign does not target %s", what, os)
			}
			if c.listOK(cp.countries) && !r.List(cp.countries).Contains(uint32(country)) {
				c.p.add("%s: campaign does not target %s", what, snapshot.CountryCode(country))
			}
			if cp.end <= created {
				c.p.add("%s: campaign ended (%s) before the data time", what, unixTime(cp.end))
			}
			switch cp.bidType {
			case snapshot.BidCPM:
				if cd.ECPMMicros != cp.bid {
					c.p.add("%s: CPM eCPM %d differs from the bid %d", what, cd.ECPMMicros, cp.bid)
				}
			case snapshot.BidCPC:
				want := builder.ECPMMicros(snapshot.BidCPC, cp.bid, float64(cd.CTR), 0)
				if d := math.Abs(float64(cd.ECPMMicros - want)); d > 1+1e-6*math.Abs(float64(want)) {
					c.p.add("%s: CPC eCPM %d, bid %d x CTR %v gives %d", what, cd.ECPMMicros, cp.bid, cd.CTR, want)
				}
			}
			// The creatives sub-run: inside the campaign's list, all of this format.
			cs, ce := uint64(cd.CreativesOff), uint64(cd.CreativesOff)+uint64(cd.CreativesLen)
			ps, pe := uint64(cp.creatives.Off), uint64(cp.creatives.Off)+uint64(cp.creatives.Len)
			switch {
			case cd.CreativesLen == 0:
				c.p.add("%s: no creatives", what)
			case cs < ps || ce > pe:
				c.p.add("%s: creatives %d+%d outside the campaign's creatives %d+%d", what, cd.CreativesOff, cd.CreativesLen, cp.creatives.Off, cp.creatives.Len)
			case ce > c.poolLen:
				c.p.add("%s: creatives %d+%d outside the u32 pool", what, cd.CreativesOff, cd.CreativesLen)
			default:
				cl := r.List(snapshot.ListRef{Off: cd.CreativesOff, Len: uint32(cd.CreativesLen)})
				for j := 0; j < cl.Len(); j++ {
					v := cl.At(j)
					if uint64(v) >= uint64(len(c.crFormat)) {
						c.p.add("%s: creative index %d out of range", what, v)
					} else if c.crFormat[v] != f {
						c.p.add("%s: creative #%d is %s, list is %s", what, v, c.crFormat[v], f)
					}
				}
			}
		}
	}
	if next != total {
		c.p.add("candidate index: lists cover %d of %d candidates", next, total)
	}
}

// checkExperiments applies the experiment-set rules the edge enforces
// (abtest's Set.Check): a set the edge would refuse, and so serve everyone
// as control, fails verify.
func (c *refChecker) checkExperiments() {
	var set abtest.Set
	if err := json.Unmarshal(c.r.ExperimentsJSON(), &set); err != nil {
		c.p.add("experiments: unexpected shape: %v", err)
		return
	}
	for _, p := range set.Check() {
		c.p.add("experiments: %s", p)
	}
}
