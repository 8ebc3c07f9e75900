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

// Version is the record format version this package writes and reads.
const Version = 1

// Kind is an event's type. Values are stable on disk and in ClickHouse.
type Kind uint8

// Event kinds. 5..15 are reserved for the video quartile events (start,
// first quartile, midpoint, third quartile, complete) and later kinds.
const (
	KindAd      Kind = 1 // a served decision (fill, no-fill or error)
	KindImp     Kind = 2 // an impression pixel
	KindClick   Kind = 3 // a click
	KindInstall Kind = 4 // reserved: an attributed install
	maxKind          = 15
)

// Kinds in display order.
var Kinds = []Kind{KindAd, KindImp, KindClick, KindInstall}

var kindNames = [...]string{"", "ad", "imp", "click", "install"}

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
	numFields      = 11
	fixedSize      = 56
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
// Record layout (version 1, little-endian):
//
//	0   uint8   version (1)
//	1   uint8   kind
//	2   uint8   flags
//	3   uint8   env (0 production, 1 staging)
//	4   uint8   test (0 control, 1..3)
//	5   uint8   user shard (xxhash64(device) mod 64)
//	6   uint8   outcome (ad only)
//	7   uint8   format (creative format code, ad only; 0 unknown)
//	8   [16]    id
//	24  int64   time: decision or receive time, unix ms
//	32  int64   issued: the token's issue time, unix ms (ad: = time)
//	40  int64   price, micros
//	48  uint32  frequency-cap period, seconds (imp/click)
//	52  uint32  weight: decisions this record stands for (ad, sampled); 1
//	56  eleven strings, each uint8 length + bytes: edge, snapshot,
//	    placement, campaign, creative, experiment, test, variant, country,
//	    os, device type
type Event struct {
	Kind                        Kind
	Flags                       uint8
	Env, Test, Shard            uint8
	Outcome, Format             uint8
	ID                          ID
	Time, Issued, PriceMicros   int64
	CapPeriod, Weight           uint32
	Edge, Snapshot, Placement   []byte
	Campaign, Creative          []byte
	Experiment, TestID, Variant []byte
	Country, OS, DeviceType     []byte
}

// Duplicate reports the duplicate flag.
func (e *Event) Duplicate() bool { return e.Flags&FlagDuplicate != 0 }

func (e *Event) fields() [numFields]*[]byte {
	return [numFields]*[]byte{&e.Edge, &e.Snapshot, &e.Placement, &e.Campaign, &e.Creative,
		&e.Experiment, &e.TestID, &e.Variant, &e.Country, &e.OS, &e.DeviceType}
}

// FieldNames names the string fields in record order.
var FieldNames = [numFields]string{"edge", "snapshot", "placement", "campaign", "creative",
	"experiment", "test", "variant", "country", "os", "device_type"}

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

// Decode parses one record into e; the string fields alias b. Every
// malformed input is an error, never a panic.
func (e *Event) Decode(b []byte) error {
	if len(b) < fixedSize {
		return ErrShort
	}
	if b[0] != Version {
		return ErrVersion
	}
	if b[1] == 0 || b[1] > maxKind || b[6] > maxOutcome {
		return ErrKind
	}
	e.Kind, e.Flags, e.Env, e.Test, e.Shard, e.Outcome, e.Format = Kind(b[1]), b[2], b[3], b[4], b[5], b[6], b[7]
	copy(e.ID[:], b[8:24])
	e.Time = int64(binary.LittleEndian.Uint64(b[24:]))
	e.Issued = int64(binary.LittleEndian.Uint64(b[32:]))
	e.PriceMicros = int64(binary.LittleEndian.Uint64(b[40:]))
	e.CapPeriod = binary.LittleEndian.Uint32(b[48:])
	e.Weight = binary.LittleEndian.Uint32(b[52:])
	p := fixedSize
	for _, f := range e.fields() {
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
