// Package events is the billing event model (docs/EVENTS.md): one compact
// binary record per served decision, impression and click, an id that is
// the same wherever the same pixel arrives, and the edge's recorder that
// writes them to the durable log (server/events/wal) exactly once per id.
package events

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
)

// Version is the record format version this package writes; Decode also
// reads version 1 (V1), which logs written before the upgrade hold.
const Version = 2

// V1 is the first record version (docs/EVENTS.md "Version 1").
const V1 = 1

// Kind is an event's type. Values are stable on disk and in ClickHouse.
type Kind uint8

// Event kinds. 10..15 are reserved for later kinds.
const (
	KindAd      Kind = 1 // a served decision (fill, no-fill or error)
	KindImp     Kind = 2 // an impression pixel
	KindClick   Kind = 3 // a click
	KindInstall Kind = 4 // reserved: an attributed install
	// The VAST tracking events of /v1/video (not billable; recorded once
	// per token and kind like a pixel).
	KindVideoStart         Kind = 5
	KindVideoFirstQuartile Kind = 6
	KindVideoMidpoint      Kind = 7
	KindVideoThirdQuartile Kind = 8
	KindVideoComplete      Kind = 9
	maxKind                     = 15
)

// Kinds in display order.
var Kinds = []Kind{KindAd, KindImp, KindClick, KindInstall, KindVideoStart, KindVideoFirstQuartile,
	KindVideoMidpoint, KindVideoThirdQuartile, KindVideoComplete}

var kindNames = [...]string{"", "ad", "imp", "click", "install", "video_start", "video_first_quartile",
	"video_midpoint", "video_third_quartile", "video_complete"}

// Tracked reports whether k is recorded exactly once per id (pixels,
// clicks, video events); decisions are not.
func (k Kind) Tracked() bool { return k >= KindImp && k <= KindVideoComplete && k != KindInstall }

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// Flags on a record.
const (
	// FlagDuplicate: the edge had already recorded this id (a replayed
	// pixel); it answered as the first time and counted nothing.
	FlagDuplicate = 1 << 0
)

// Outcomes of an ad decision (KindAd); 0 for other kinds.
const (
	OutcomeNone    = 0
	OutcomeFill    = 1
	OutcomeNoFill  = 2
	OutcomeError   = 3
	maxOutcome     = 3
	IDSize         = 16
	MaxField       = 255 // bytes per string field
	numFieldsV1    = 11
	numFields      = 13
	fixedSizeV1    = 56
	fixedSize      = 76
	MaxEncodedSize = fixedSize + numFields*(1+MaxField)
)

// ID identifies an event: for impressions and clicks the token's MAC (the
// same bytes wherever and however often the pixel arrives), for decisions
// the edge's request id.
type ID [IDSize]byte

// String is the id in hex (as stored in ClickHouse).
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Key folds the id and kind into the 64 bits the recent-id set keeps.
func (id ID) Key(k Kind) uint64 {
	return mix64(binary.LittleEndian.Uint64(id[0:8]) ^ mix64(binary.LittleEndian.Uint64(id[8:16])^uint64(k)<<56))
}

// mix64 is splitmix64's finaliser: every input bit moves every output bit,
// so structured ids (tests, sequence-like request ids) do not collide.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Event is one record. String fields alias the decoded buffer after Decode.
//
// Record layout (version 2, little-endian; docs/EVENTS.md):
//
//	0   uint8   version (2)
//	1   uint8   kind
//	2   uint8   flags
//	3   uint8   env (0 production, 1 staging)
//	4   uint8   test (0 control, 1..3)
//	5   uint8   user shard (xxhash64(device) mod 64)
//	6   uint8   outcome (ad only)
//	7   uint8   format (creative format code: snapshot format + 1; 0x80 | a format mask for a no-fill in a slot taking several, abtest.FormatSetFlag; 0 unknown)
//	8   [16]    id
//	24  int64   time: decision or receive time, unix ms
//	32  int64   issued: the token's issue time, unix ms (ad: = time)
//	40  int64   price, micros
//	48  uint32  frequency-cap period, seconds (imp/click)
//	52  uint32  weight: decisions this record stands for (ad, sampled); 1
//	56  uint32  latency, microseconds (ad: the server's handling time)
//	60  uint32  share, basis points (ad: the A/B group's configured share)
//	64  uint64  device hash: xxhash64(device), 0 without one or when the
//	            privacy level forbids storing it
//	72  uint8   privacy level (server/privacy.Level)
//	73  uint8   token version (imp/click/video: 1 or 2; ad: 0)
//	74  uint16  privacy signals (server/privacy.Decision.Signals)
//	76  thirteen strings, each uint8 length + bytes: edge, snapshot,
//	    placement, campaign, creative, experiment, test, variant, country,
//	    os, device type, layers, ip
//
// Version 1 is offsets 0..55 and the first eleven strings.
type Event struct {
	Kind                        Kind
	Flags                       uint8
	Env, Test, Shard            uint8
	Outcome, Format             uint8
	Privacy, TokenVersion       uint8
	PrivacySignals              uint16
	ID                          ID
	Time, Issued, PriceMicros   int64
	CapPeriod, Weight           uint32
	LatencyUS, ShareBP          uint32
	DeviceHash                  uint64
	Edge, Snapshot, Placement   []byte
	Campaign, Creative          []byte
	Experiment, TestID, Variant []byte
	Country, OS, DeviceType     []byte
	// Layers is every experiment layer's assignment, "layer:test:variant"
	// joined by ";" (empty for a set without layers; docs/EXPERIMENTS.md).
	Layers []byte
	// IP is the client address as text, truncated to its network (/24,
	// /48) when the privacy level is anonymous or unknown (v1 tokens).
	IP []byte
	// Version is the version Decode read (V1 or Version); Append always
	// writes Version.
	Version uint8
}

// Duplicate reports the duplicate flag.
func (e *Event) Duplicate() bool { return e.Flags&FlagDuplicate != 0 }

func (e *Event) fields() [numFields]*[]byte {
	return [numFields]*[]byte{&e.Edge, &e.Snapshot, &e.Placement, &e.Campaign, &e.Creative,
		&e.Experiment, &e.TestID, &e.Variant, &e.Country, &e.OS, &e.DeviceType, &e.Layers, &e.IP}
}

// FieldNames names the string fields in record order.
var FieldNames = [numFields]string{"edge", "snapshot", "placement", "campaign", "creative",
	"experiment", "test", "variant", "country", "os", "device_type", "layers", "ip"}

// ErrField is returned by Append for a string field over MaxField bytes.
var ErrField = errors.New("events: string field over 255 bytes")

// Append encodes e onto b. It allocates only when b lacks room.
func (e *Event) Append(b []byte) ([]byte, error) {
	var h [fixedSize]byte
	h[0] = Version
	h[1] = byte(e.Kind)
	h[2] = e.Flags
	h[3] = e.Env
	h[4] = e.Test
	h[5] = e.Shard
	h[6] = e.Outcome
	h[7] = e.Format
	copy(h[8:24], e.ID[:])
	binary.LittleEndian.PutUint64(h[24:], uint64(e.Time))
	binary.LittleEndian.PutUint64(h[32:], uint64(e.Issued))
	binary.LittleEndian.PutUint64(h[40:], uint64(e.PriceMicros))
	binary.LittleEndian.PutUint32(h[48:], e.CapPeriod)
	binary.LittleEndian.PutUint32(h[52:], e.Weight)
	binary.LittleEndian.PutUint32(h[56:], e.LatencyUS)
	binary.LittleEndian.PutUint32(h[60:], e.ShareBP)
	binary.LittleEndian.PutUint64(h[64:], e.DeviceHash)
	h[72] = e.Privacy
	h[73] = e.TokenVersion
	binary.LittleEndian.PutUint16(h[74:], e.PrivacySignals)
	b = append(b, h[:]...)
	for _, f := range e.fields() {
		if len(*f) > MaxField {
			return b, ErrField
		}
		b = append(b, byte(len(*f)))
		b = append(b, *f...)
	}
	return b, nil
}

// Decode errors.
var (
	ErrShort   = errors.New("events: record truncated")
	ErrVersion = errors.New("events: unknown record version")
	ErrKind    = errors.New("events: kind out of range")
	ErrTrail   = errors.New("events: trailing bytes after record")
)

// Decode parses one record (version 2, or 1 with the later fields zero)
// into e; the string fields alias b. Every malformed input is an error,
// never a panic.
func (e *Event) Decode(b []byte) error {
	if len(b) < fixedSizeV1 {
		return ErrShort
	}
	if b[0] != Version && b[0] != V1 {
		return ErrVersion
	}
	if b[1] == 0 || b[1] > maxKind || b[6] > maxOutcome {
		return ErrKind
	}
	*e = Event{Version: b[0]}
	e.Kind, e.Flags, e.Env, e.Test, e.Shard, e.Outcome, e.Format = Kind(b[1]), b[2], b[3], b[4], b[5], b[6], b[7]
	copy(e.ID[:], b[8:24])
	e.Time = int64(binary.LittleEndian.Uint64(b[24:]))
	e.Issued = int64(binary.LittleEndian.Uint64(b[32:]))
	e.PriceMicros = int64(binary.LittleEndian.Uint64(b[40:]))
	e.CapPeriod = binary.LittleEndian.Uint32(b[48:])
	e.Weight = binary.LittleEndian.Uint32(b[52:])
	p, fs := fixedSizeV1, e.fields()
	strs := fs[:numFieldsV1]
	if e.Version == Version {
		if len(b) < fixedSize {
			return ErrShort
		}
		e.LatencyUS = binary.LittleEndian.Uint32(b[56:])
		e.ShareBP = binary.LittleEndian.Uint32(b[60:])
		e.DeviceHash = binary.LittleEndian.Uint64(b[64:])
		e.Privacy, e.TokenVersion = b[72], b[73]
		e.PrivacySignals = binary.LittleEndian.Uint16(b[74:])
		p, strs = fixedSize, fs[:]
	}
	for _, f := range strs {
		if p >= len(b) {
			return ErrShort
		}
		n := int(b[p])
		p++
		if p+n > len(b) {
			return ErrShort
		}
		*f = b[p : p+n : p+n]
		p += n
	}
	if p != len(b) {
		return ErrTrail
	}
	return nil
}
