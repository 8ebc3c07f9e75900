// Package snapshot defines adedge's read-only serving file: the byte format, a
// streaming writer used by the builder, and an mmap reader used by the edge.
//
// # File layout (format version 2)
//
// All integers are little-endian. Sections start on 64-byte boundaries (zero
// padding between them) so fixed-width records never straddle more cache lines
// than they must.
//
//	+------------------------------+ offset 0
//	| header (128 bytes)           |
//	+------------------------------+ 128, padded to 64
//	| section 1 ... section N      | each: fixed-width records or a byte blob
//	+------------------------------+
//	| section table (N x 48 bytes) |
//	+------------------------------+
//	| footer (40 bytes)            | last bytes of the file
//	+------------------------------+
//
// Header (128 bytes):
//
//	0   [8]byte  magic "ADEDGSNP"
//	8   uint32   format version (FormatVersion)
//	12  uint32   header size (128)
//	16  int64    created, unix seconds (data time, see builder docs)
//	24  uint64   content hash: xxhash64 over the build inputs (build id)
//	32  [48]byte version string, NUL padded ("20261122T053000Z-1a2b3c4d")
//	80  uint32   reserved (0); the section count is in the footer so the
//	             writer can stream the file in one pass
//	84  uint32   flags: feature bits (KnownFlags); a reader refuses a file
//	             with a bit it does not know, since such a bit changes how
//	             the file must be read
//	88  [32]byte reserved (0)
//	120 uint64   xxhash64 of header bytes [0,120)
//
// Section table entry (48 bytes):
//
//	0  uint32 section id (Sec* constants)
//	4  uint32 record size in bytes (0 for byte blobs)
//	8  uint64 offset of the section from the start of the file
//	16 uint64 length in bytes
//	24 uint64 record count (length / record size; blob: 0)
//	32 uint64 xxhash64 of the section's bytes
//	40 uint64 reserved (0)
//
// Footer (40 bytes, the last bytes of the file):
//
//	0  uint64  section table offset
//	8  uint32  section count (stored only here: header offset 80 is reserved)
//	12 uint32  reserved (0)
//	16 uint64  xxhash64 of the section table bytes
//	24 uint64  total file length (detects truncation and appended bytes)
//	32 [8]byte magic "SNPADEDG"
//
// The whole file's xxhash64 is not stored in the file (it cannot contain its
// own hash); the builder writes it into manifest.json and edges check it after a
// download.
//
// # Versioning
//
// FormatVersion changes when an existing field changes meaning or position; a
// reader refuses any version it does not know. Compatible additions do not bump
// it: a new section gets a new id and old readers skip ids they do not know; a
// record may grow at its end, since the table carries the record size and
// readers stride by it (they require at least the size they know).
//
// # Records
//
// Strings live once in the STRINGS blob and are referenced by StrRef (uint32
// offset, uint32 length). Variable-length lists of uint32 (a campaign's
// creatives and countries, a placement's blocked advertisers and categories)
// live in the U32POOL section and are referenced by ListRef (offset and length
// counted in uint32 elements). Record layouts are given on the Go structs below
// (Campaign, Creative, Placement, Candidate); the byte offsets are the
// *Off constants in records.go.
//
// Candidate lists are keyed by (creative format, country, OS). CANDIDATE_INDEX is a
// dense table of NumKeys ListRef entries (8 bytes each) indexed by KeyIndex;
// each points at a run of Candidate records in CANDIDATES, sorted by eCPM
// descending, then campaign index ascending (deterministic tie-break).
//
// PLACEMENT_INDEX is an open-addressing hash table with a power-of-two number
// of 16-byte slots: uint64 xxhash64 of the placement id, uint32 placement index
// plus one (0 marks an empty slot), uint32 reserved. Lookups probe linearly
// from hash&(slots-1), at most `slots` probes, and confirm the id string.
//
// EXPERIMENTS holds the experiment set as canonical JSON (see abtest): it is a
// few hundred bytes read once per snapshot, never per request, so a binary
// layout would buy nothing.
package snapshot

// Magic numbers at the start (header) and end (footer) of every snapshot.
const (
	HeaderMagic = "ADEDGSNP"
	FooterMagic = "SNPADEDG"
)

// FormatVersion is the only on-disk format this package reads and writes.
// Version 2 (issue 12) replaced version 1's four slot formats with creative
// formats (banner, video, native) and placement flags, and added video,
// advertiser domain, IAB category and app-bundle fields; a version 1 file is
// refused (ErrUnsupportedVersion): nothing was released with it.
const FormatVersion uint32 = 2

// KnownFlags is every header flag bit this package understands (none yet).
// A writer that needs readers to do something new sets a new bit; an older
// reader then refuses the file instead of misreading it.
const KnownFlags uint32 = 0

// Fixed sizes of the framing structures.
const (
	HeaderSize     = 128
	FooterSize     = 40
	TableEntrySize = 48
	SectionAlign   = 64
	MaxVersionLen  = 47 // version string bytes; one NUL always remains
	MaxSections    = 64 // a reader refuses more: bounds the work on hostile input
)

// Section ids. Never reuse a retired id.
const (
	SecStrings        uint32 = 1  // blob: all strings, concatenated
	SecU32Pool        uint32 = 2  // uint32 elements referenced by ListRef
	SecAdvertisers    uint32 = 3  // StrRef records: advertiser index -> name
	SecCategories     uint32 = 4  // StrRef records: category index -> name
	SecSegments       uint32 = 5  // StrRef records: segment bit -> name (<= MaxSegments)
	SecCampaigns      uint32 = 6  // Campaign records, sorted by id
	SecCreatives      uint32 = 7  // Creative records, sorted by id
	SecPlacements     uint32 = 8  // Placement records, sorted by id
	SecPlacementIndex uint32 = 9  // hash table slots (16 bytes)
	SecCandidateIndex uint32 = 10 // NumKeys ListRef records
	SecCandidates     uint32 = 11 // Candidate records
	SecExperiments    uint32 = 12 // blob: canonical JSON experiment set
	SecPacing         uint32 = 13 // optional: CampaignPacing records, one per campaign, in campaign order
	SecMediaFiles     uint32 = 14 // MediaFile records of video creatives, referenced by Creative.MediaFiles
	SecBundles        uint32 = 15 // StrRef records: app bundle index -> id, sorted (campaign allow/block lists)
)

// SectionName names a section id for errors and tools.
func SectionName(id uint32) string {
	switch id {
	case SecStrings:
		return "strings"
	case SecU32Pool:
		return "u32pool"
	case SecAdvertisers:
		return "advertisers"
	case SecCategories:
		return "categories"
	case SecSegments:
		return "segments"
	case SecCampaigns:
		return "campaigns"
	case SecCreatives:
		return "creatives"
	case SecPlacements:
		return "placements"
	case SecPlacementIndex:
		return "placement-index"
	case SecCandidateIndex:
		return "candidate-index"
	case SecCandidates:
		return "candidates"
	case SecExperiments:
		return "experiments"
	case SecPacing:
		return "pacing"
	case SecMediaFiles:
		return "media-files"
	case SecBundles:
		return "bundles"
	}
	return "unknown"
}

// Format is a creative's format: what kind of markup it is. The numeric
// values are part of the file format (and of the candidate-index key).
type Format uint8

// Creative formats.
const (
	FormatBanner Format = iota // an image or HTML ad of a size (0x0: full screen, interstitials only)
	FormatVideo                // a linear video with media files, answered as VAST
	FormatNative               // a native ad the app renders from its assets
	NumFormats   = 3
)

var formatNames = [NumFormats]string{"banner", "video", "native"}

// String returns the format's input name ("banner", ...).
func (f Format) String() string {
	if int(f) < NumFormats {
		return formatNames[f]
	}
	return "unknown"
}

// ParseFormat maps an input name to a Format.
func ParseFormat(s string) (Format, bool) {
	for i, n := range formatNames {
		if n == s {
			return Format(i), true
		}
	}
	return 0, false
}

// FormatMask is a set of formats, bit 1<<Format each: what a placement
// allows and what a request accepts.
type FormatMask uint8

// AllFormats accepts every format.
const AllFormats FormatMask = 1<<NumFormats - 1

// Has reports whether f is in the set.
func (m FormatMask) Has(f Format) bool { return m&(1<<f) != 0 }

// Placement flag bits (Placement.Flags).
const (
	PlacementInterstitial uint8 = 1 << 0 // a full-screen slot: 0x0 banners fit it
	PlacementRewarded     uint8 = 1 << 1 // the user is rewarded for watching (rewarded video)
	KnownPlacementFlags         = PlacementInterstitial | PlacementRewarded
)

// Media file delivery methods (MediaFile.Delivery), as VAST names them.
const (
	DeliveryProgressive uint8 = 0
	DeliveryStreaming   uint8 = 1
	NumDeliveries             = 2
)

var deliveryNames = [NumDeliveries]string{"progressive", "streaming"}

// DeliveryName is a delivery's VAST name ("" when unknown).
func DeliveryName(d uint8) string {
	if int(d) < NumDeliveries {
		return deliveryNames[d]
	}
	return ""
}

// ParseDelivery maps a VAST delivery name to its code.
func ParseDelivery(s string) (uint8, bool) {
	for i, n := range deliveryNames {
		if n == s {
			return uint8(i), true
		}
	}
	return 0, false
}

// Size is a width and height in pixels (0x0: full screen / any).
type Size struct{ W, H uint16 }

// OS is a device operating system. The numeric values are part of the format.
type OS uint8

// Operating systems.
const (
	OSAndroid OS = iota
	OSiOS
	NumOS = 2
)

var osNames = [NumOS]string{"android", "ios"}

// String returns the OS's input name ("android", "ios").
func (o OS) String() string {
	if int(o) < NumOS {
		return osNames[o]
	}
	return "unknown"
}

// ParseOS maps an input name to an OS.
func ParseOS(s string) (OS, bool) {
	for i, n := range osNames {
		if n == s {
			return OS(i), true
		}
	}
	return 0, false
}

// BidType says what the advertiser pays for. Part of the format.
type BidType uint8

// Bid types.
const (
	BidCPM      BidType = iota // per thousand impressions
	BidCPC                     // per click
	BidCPI                     // per install
	NumBidTypes = 3
)

var bidNames = [NumBidTypes]string{"cpm", "cpc", "cpi"}

// String returns the bid type's input name.
func (b BidType) String() string {
	if int(b) < NumBidTypes {
		return bidNames[b]
	}
	return "unknown"
}

// ParseBidType maps an input name to a BidType.
func ParseBidType(s string) (BidType, bool) {
	for i, n := range bidNames {
		if n == s {
			return BidType(i), true
		}
	}
	return 0, false
}

// Device type bits in Campaign.DeviceTypes. Part of the format.
const (
	DevicePhone  uint8 = 1 << 0
	DeviceTablet uint8 = 1 << 1
	AllDevices         = DevicePhone | DeviceTablet
)

// ParseDeviceType maps an input name to its bit.
func ParseDeviceType(s string) (uint8, bool) {
	switch s {
	case "phone":
		return DevicePhone, true
	case "tablet":
		return DeviceTablet, true
	}
	return 0, false
}

// MaxSegments bounds the user-segment dictionary: campaigns carry segment
// targeting as a 256-bit set so the edge tests it with four ANDs.
const MaxSegments = 256

// NumCountries is the size of the country code space: two letters A-Z, index
// (c0-'A')*26 + (c1-'A'). A dense space keeps the candidate index a plain
// array, at 32 KiB for every (format, country, OS).
const NumCountries = 26 * 26

// NumKeys is the number of (format, country, OS) candidate-list keys.
const NumKeys = NumFormats * NumCountries * NumOS

// CountryIndex maps a two-letter upper-case country code to its index.
func CountryIndex(code string) (uint16, bool) {
	if len(code) != 2 {
		return 0, false
	}
	a, b := code[0], code[1]
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0, false
	}
	return uint16(a-'A')*26 + uint16(b-'A'), true
}

// CountryCode is the inverse of CountryIndex ("" when out of range).
func CountryCode(idx uint16) string {
	if int(idx) >= NumCountries {
		return ""
	}
	return string([]byte{'A' + byte(idx/26), 'A' + byte(idx%26)})
}

// KeyIndex is the position of a (format, country, OS) list in CANDIDATE_INDEX.
func KeyIndex(f Format, country uint16, os OS) int {
	return (int(f)*NumCountries+int(country))*NumOS + int(os)
}

// ParseOSVersion packs "major[.minor[.patch]]" as major<<16 | minor<<8 | patch
// so version checks are one integer compare. Minor and patch must be < 256,
// major < 65536.
func ParseOSVersion(s string) (uint32, bool) {
	var parts [3]uint32
	n, cur, digits := 0, uint32(0), 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || n == 3 {
				return 0, false
			}
			parts[n] = cur
			n++
			cur, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits >= 5 {
			return 0, false
		}
		cur = cur*10 + uint32(c-'0')
		digits++
	}
	if parts[0] > 0xffff || parts[1] > 0xff || parts[2] > 0xff {
		return 0, false
	}
	return parts[0]<<16 | parts[1]<<8 | parts[2], true
}

// FormatOSVersion renders a packed OS version ("14.2.0").
func FormatOSVersion(v uint32) string {
	return itoa(v>>16) + "." + itoa(v>>8&0xff) + "." + itoa(v&0xff)
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// StrRef points at a string in the STRINGS section.
type StrRef struct {
	Off, Len uint32
}

// ListRef points at Len consecutive elements starting at element Off of the
// U32POOL section (or, in CANDIDATE_INDEX, of the CANDIDATES section).
type ListRef struct {
	Off, Len uint32
}

// Campaign is one campaign record (CampaignSize bytes on disk).
type Campaign struct {
	ID                StrRef        // 0
	Advertiser        uint32        // 8: index into ADVERTISERS
	Category          uint32        // 12: index into CATEGORIES
	BidType           BidType       // 16
	DeviceTypes       uint8         // 17: Device* bits; never 0
	OSMask            uint8         // 18: bit 1<<OS for each targeted OS
	_                 uint8         // 19: reserved
	FreqCapCount      uint32        // 20: 0 = no cap
	BidMicros         int64         // 24
	DailyBudgetMicros int64         // 32
	Start, End        int64         // 40, 48: unix seconds, serving window [Start, End)
	MinOSVersion      [NumOS]uint32 // 56, 60: packed, per OS
	FreqCapPeriod     uint32        // 64: seconds
	_                 uint32        // 68: reserved
	PromotedAppHash   uint64        // 72: xxhash64 of the app id; 0 = none
	PromotedApp       StrRef        // 80
	Creatives         ListRef       // 88: creative indexes in U32POOL
	Countries         ListRef       // 96: country indexes in U32POOL, ascending
	Segments          [4]uint64     // 104..136: segment bitset; all zero = no segment targeting
	AllowedBundles    ListRef       // 136: bundle indexes (BUNDLES) the campaign may serve in, ascending; empty = any
	BlockedBundles    ListRef       // 144: bundle indexes it never serves in, ascending
}

// Pacing modes and billing events of CampaignPacing (issue 11).
const (
	PacingEven uint8 = 0 // spread the budget over the day along the traffic curve
	PacingASAP uint8 = 1 // serve until the budget is spent

	BillImpression uint8 = 0 // spend = the token's price per impression
	BillClick      uint8 = 1 // spend = the bid per click (CPC)
)

// CampaignPacing is one record of the optional PACING section, a parallel
// array of the campaigns (PacingSize bytes on disk). A snapshot without
// the section has every campaign at the defaults (zero record): no
// lifetime budget, even pacing, impressions billed, UTC days.
type CampaignPacing struct {
	LifetimeBudgetMicros int64   // 0: 0 = no lifetime limit
	Mode                 uint8   // 8: PacingEven or PacingASAP
	Billing              uint8   // 9: BillImpression or BillClick
	_                    [6]byte // 10: reserved
	TimeZone             StrRef  // 16: IANA zone name of the budget day; empty = UTC
}

// Creative is one creative record (CreativeSize bytes on disk).
type Creative struct {
	ID              StrRef  // 0
	Format          Format  // 8
	_               uint8   // 9: reserved
	DurationSeconds uint16  // 10: video length; 0 for other formats
	Width, Height   uint16  // 12, 14: 0x0 = full screen / any
	AssetURL        StrRef  // 16
	ClickURL        StrRef  // 24
	MediaFiles      ListRef // 32: records of MEDIA_FILES (Off = first record, Len = count); video only
	ADomain         StrRef  // 40: the advertiser's domain (OpenRTB bid.adomain); may be empty
	Category        uint32  // 48: IAB content category as CATEGORIES index + 1; 0 = none
	_               uint32  // 52: reserved
}

// HasCategory reports whether the creative names an IAB category, and its
// CATEGORIES index.
func (c *Creative) HasCategory() (uint32, bool) { return c.Category - 1, c.Category != 0 }

// MediaFile is one rendition of a video creative (MediaFileSize bytes on disk).
type MediaFile struct {
	URL         StrRef  // 0
	MIME        StrRef  // 8: "video/mp4", ...
	Width       uint16  // 16
	Height      uint16  // 18
	BitrateKbps uint32  // 20: 0 = unknown
	Delivery    uint8   // 24: DeliveryProgressive or DeliveryStreaming
	_           [7]byte // 25: reserved
}

// Placement is one placement record (PlacementSize bytes on disk).
type Placement struct {
	ID                 StrRef     // 0
	App                StrRef     // 8
	Formats            FormatMask // 16: creative formats the slot shows (never 0)
	Flags              uint8      // 17: Placement* bits (interstitial, rewarded)
	_                  [6]uint8
	FloorMicros        int64   // 24: minimum eCPM in micros
	BlockedAdvertisers ListRef // 32: advertiser indexes in U32POOL, ascending
	BlockedCategories  ListRef // 40: category indexes in U32POOL, ascending
}

// Interstitial reports the placement's interstitial flag.
func (p *Placement) Interstitial() bool { return p.Flags&PlacementInterstitial != 0 }

// Rewarded reports the placement's rewarded flag.
func (p *Placement) Rewarded() bool { return p.Flags&PlacementRewarded != 0 }

// Kind names the placement for reports and tools: "rewarded",
// "interstitial", else its one format ("banner", "video", "native"), or
// "mixed" for a non-interstitial slot showing several.
func (p *Placement) Kind() string {
	switch {
	case p.Rewarded():
		return "rewarded"
	case p.Interstitial():
		return "interstitial"
	}
	for f := Format(0); f < NumFormats; f++ {
		if p.Formats == 1<<f {
			return f.String()
		}
	}
	return "mixed"
}

// Candidate is one entry of a candidate list (CandidateSize bytes on disk).
type Candidate struct {
	Campaign     uint32  // 0: campaign index
	CreativesOff uint32  // 4: U32POOL offset of the campaign's creatives of this list's format
	CreativesLen uint16  // 8: how many (>= 1); they are a sub-run of Campaign.Creatives
	_            uint16  // 10: reserved
	CTR          float32 // 12: predicted click-through rate the eCPM used
	ECPMMicros   int64   // 16: expected revenue per thousand impressions, micros
}
