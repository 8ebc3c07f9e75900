package snapshot

import (
	"encoding/binary"
	"math"
)

// On-disk record sizes for format version 2. A file may declare larger
// records (fields appended by a newer writer); never smaller.
const (
	CampaignSize  = 152
	CreativeSize  = 56
	MediaFileSize = 32
	PlacementSize = 48
	CandidateSize = 24
	RefSize       = 8  // StrRef and ListRef records
	SlotSize      = 16 // PLACEMENT_INDEX slots
	PacingSize    = 24 // PACING records
)

// AppendPacing appends p's PacingSize-byte encoding to dst.
func AppendPacing(dst []byte, p *CampaignPacing) []byte {
	var b [PacingSize]byte
	le.PutUint64(b[0:], uint64(p.LifetimeBudgetMicros))
	b[8] = p.Mode
	b[9] = p.Billing
	putRef(b[16:], p.TimeZone.Off, p.TimeZone.Len)
	return append(dst, b[:]...)
}

func decodePacing(b []byte, p *CampaignPacing) {
	_ = b[PacingSize-1]
	p.LifetimeBudgetMicros = int64(le.Uint64(b[0:]))
	p.Mode = b[8]
	p.Billing = b[9]
	p.TimeZone = getStrRef(b[16:])
}

var le = binary.LittleEndian

func putRef(b []byte, off, n uint32) {
	le.PutUint32(b, off)
	le.PutUint32(b[4:], n)
}

func getStrRef(b []byte) StrRef   { return StrRef{le.Uint32(b), le.Uint32(b[4:])} }
func getListRef(b []byte) ListRef { return ListRef{le.Uint32(b), le.Uint32(b[4:])} }

// AppendCampaign appends c's CampaignSize-byte encoding to dst.
func AppendCampaign(dst []byte, c *Campaign) []byte {
	var b [CampaignSize]byte
	putRef(b[0:], c.ID.Off, c.ID.Len)
	le.PutUint32(b[8:], c.Advertiser)
	le.PutUint32(b[12:], c.Category)
	b[16] = byte(c.BidType)
	b[17] = c.DeviceTypes
	b[18] = c.OSMask
	le.PutUint32(b[20:], c.FreqCapCount)
	le.PutUint64(b[24:], uint64(c.BidMicros))
	le.PutUint64(b[32:], uint64(c.DailyBudgetMicros))
	le.PutUint64(b[40:], uint64(c.Start))
	le.PutUint64(b[48:], uint64(c.End))
	le.PutUint32(b[56:], c.MinOSVersion[0])
	le.PutUint32(b[60:], c.MinOSVersion[1])
	le.PutUint32(b[64:], c.FreqCapPeriod)
	le.PutUint64(b[72:], c.PromotedAppHash)
	putRef(b[80:], c.PromotedApp.Off, c.PromotedApp.Len)
	putRef(b[88:], c.Creatives.Off, c.Creatives.Len)
	putRef(b[96:], c.Countries.Off, c.Countries.Len)
	for i, w := range c.Segments {
		le.PutUint64(b[104+8*i:], w)
	}
	putRef(b[136:], c.AllowedBundles.Off, c.AllowedBundles.Len)
	putRef(b[144:], c.BlockedBundles.Off, c.BlockedBundles.Len)
	return append(dst, b[:]...)
}

// decodeCampaign reads a campaign from b, which holds at least CampaignSize bytes.
func decodeCampaign(b []byte, c *Campaign) {
	_ = b[CampaignSize-1]
	c.ID = getStrRef(b[0:])
	c.Advertiser = le.Uint32(b[8:])
	c.Category = le.Uint32(b[12:])
	c.BidType = BidType(b[16])
	c.DeviceTypes = b[17]
	c.OSMask = b[18]
	c.FreqCapCount = le.Uint32(b[20:])
	c.BidMicros = int64(le.Uint64(b[24:]))
	c.DailyBudgetMicros = int64(le.Uint64(b[32:]))
	c.Start = int64(le.Uint64(b[40:]))
	c.End = int64(le.Uint64(b[48:]))
	c.MinOSVersion[0] = le.Uint32(b[56:])
	c.MinOSVersion[1] = le.Uint32(b[60:])
	c.FreqCapPeriod = le.Uint32(b[64:])
	c.PromotedAppHash = le.Uint64(b[72:])
	c.PromotedApp = getStrRef(b[80:])
	c.Creatives = getListRef(b[88:])
	c.Countries = getListRef(b[96:])
	for i := range c.Segments {
		c.Segments[i] = le.Uint64(b[104+8*i:])
	}
	c.AllowedBundles = getListRef(b[136:])
	c.BlockedBundles = getListRef(b[144:])
}

// AppendCreative appends c's CreativeSize-byte encoding to dst.
func AppendCreative(dst []byte, c *Creative) []byte {
	var b [CreativeSize]byte
	putRef(b[0:], c.ID.Off, c.ID.Len)
	b[8] = byte(c.Format)
	le.PutUint16(b[10:], c.DurationSeconds)
	le.PutUint16(b[12:], c.Width)
	le.PutUint16(b[14:], c.Height)
	putRef(b[16:], c.AssetURL.Off, c.AssetURL.Len)
	putRef(b[24:], c.ClickURL.Off, c.ClickURL.Len)
	putRef(b[32:], c.MediaFiles.Off, c.MediaFiles.Len)
	putRef(b[40:], c.ADomain.Off, c.ADomain.Len)
	le.PutUint32(b[48:], c.Category)
	return append(dst, b[:]...)
}

// AppendMediaFile appends m's MediaFileSize-byte encoding to dst.
func AppendMediaFile(dst []byte, m *MediaFile) []byte {
	var b [MediaFileSize]byte
	putRef(b[0:], m.URL.Off, m.URL.Len)
	putRef(b[8:], m.MIME.Off, m.MIME.Len)
	le.PutUint16(b[16:], m.Width)
	le.PutUint16(b[18:], m.Height)
	le.PutUint32(b[20:], m.BitrateKbps)
	b[24] = m.Delivery
	return append(dst, b[:]...)
}

func decodeMediaFile(b []byte, m *MediaFile) {
	_ = b[MediaFileSize-1]
	m.URL = getStrRef(b[0:])
	m.MIME = getStrRef(b[8:])
	m.Width = le.Uint16(b[16:])
	m.Height = le.Uint16(b[18:])
	m.BitrateKbps = le.Uint32(b[20:])
	m.Delivery = b[24]
}

func decodeCreative(b []byte, c *Creative) {
	_ = b[CreativeSize-1]
	c.ID = getStrRef(b[0:])
	c.Format = Format(b[8])
	c.DurationSeconds = le.Uint16(b[10:])
	c.Width = le.Uint16(b[12:])
	c.Height = le.Uint16(b[14:])
	c.AssetURL = getStrRef(b[16:])
	c.ClickURL = getStrRef(b[24:])
	c.MediaFiles = getListRef(b[32:])
	c.ADomain = getStrRef(b[40:])
	c.Category = le.Uint32(b[48:])
}

// AppendPlacement appends p's PlacementSize-byte encoding to dst.
func AppendPlacement(dst []byte, p *Placement) []byte {
	var b [PlacementSize]byte
	putRef(b[0:], p.ID.Off, p.ID.Len)
	putRef(b[8:], p.App.Off, p.App.Len)
	b[16] = byte(p.Formats)
	b[17] = p.Flags
	le.PutUint64(b[24:], uint64(p.FloorMicros))
	putRef(b[32:], p.BlockedAdvertisers.Off, p.BlockedAdvertisers.Len)
	putRef(b[40:], p.BlockedCategories.Off, p.BlockedCategories.Len)
	return append(dst, b[:]...)
}

func decodePlacement(b []byte, p *Placement) {
	_ = b[PlacementSize-1]
	p.ID = getStrRef(b[0:])
	p.App = getStrRef(b[8:])
	p.Formats = FormatMask(b[16])
	p.Flags = b[17]
	p.FloorMicros = int64(le.Uint64(b[24:]))
	p.BlockedAdvertisers = getListRef(b[32:])
	p.BlockedCategories = getListRef(b[40:])
}

// AppendCandidate appends c's CandidateSize-byte encoding to dst.
func AppendCandidate(dst []byte, c *Candidate) []byte {
	var b [CandidateSize]byte
	le.PutUint32(b[0:], c.Campaign)
	le.PutUint32(b[4:], c.CreativesOff)
	le.PutUint16(b[8:], c.CreativesLen)
	le.PutUint32(b[12:], math.Float32bits(c.CTR))
	le.PutUint64(b[16:], uint64(c.ECPMMicros))
	return append(dst, b[:]...)
}

func decodeCandidate(b []byte, c *Candidate) {
	_ = b[CandidateSize-1]
	c.Campaign = le.Uint32(b[0:])
	c.CreativesOff = le.Uint32(b[4:])
	c.CreativesLen = le.Uint16(b[8:])
	c.CTR = math.Float32frombits(le.Uint32(b[12:]))
	c.ECPMMicros = int64(le.Uint64(b[16:]))
}

// AppendRef appends an 8-byte StrRef or ListRef record.
func AppendRef(dst []byte, off, n uint32) []byte {
	var b [RefSize]byte
	putRef(b[:], off, n)
	return append(dst, b[:]...)
}

// AppendU32 appends one U32POOL element.
func AppendU32(dst []byte, v uint32) []byte {
	return le.AppendUint32(dst, v)
}
