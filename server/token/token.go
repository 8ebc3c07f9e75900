// Package token signs and verifies the tracking tokens carried by impression
// and click URLs (`t=<token>`).
//
// A token is everything /v1/imp and /v1/click need to count revenue and
// update frequency caps without a snapshot lookup, so those endpoints work
// across snapshot swaps and on any edge that shares the key.
//
// # Wire format (version 2; version 1 still verifies)
//
// token = base64url-without-padding(payload || mac), where mac is
// HMAC-SHA256(key, payload) truncated to MACSize bytes and payload is,
// little-endian:
//
//	0   uint8   version (2)
//	1   int64   issued, unix milliseconds (> 0)
//	9   int64   price, micros (>= 0)
//	17  uint32  frequency-cap period, seconds (0 = no cap)
//	21  uint8   env (<= MaxEnv)
//	22  uint8   test (<= MaxTest)
//	23  uint8   privacy level of the request (<= MaxPrivacy; server/privacy.Level)
//	24  uint16  privacy signals present (server/privacy.Decision.Signals)
//	26  [2]byte country, ISO 3166 alpha-2 upper case; 0,0 = unknown
//	28  uint8   OS code (snapshot.OS)
//	29  uint8   device type code (snapshot.Device*)
//	30  uint8   creative format code (the events' format byte)
//	31  then seven ids in this order, each a uint8 length and that many bytes:
//	    campaign, creative, device, experiment, variant, snapshot, placement
//
// Version 1 (tokens signed before the upgrade, valid until their TTL ends)
// is the same without offsets 23..30 and the placement id: its six ids
// start at offset 23. Verify reads both and reports which in
// Claims.Version; Append writes version 2 unless Claims.Version is 1.
//
// The encoding is canonical: one Claims value has exactly one token (strict
// base64, no trailing payload bytes), so tokens can be deduplicated as
// strings.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"sync"
	"time"
)

// Version is the payload format version Append writes; Verify also reads
// version 1 (V1).
const Version = 2

// V1 is the first payload version: no privacy, country, OS, device type,
// format or placement. Tokens of it are still in flight after an upgrade.
const V1 = 1

// Limits and sizes of the format.
const (
	MACSize     = 16  // truncated HMAC-SHA256: 128 bits is ample for a short-lived token
	MinKeySize  = 32  // bytes; HMAC-SHA256 gains nothing from longer keys beyond 64
	MaxIDLen    = 128 // campaign, creative, experiment, variant, snapshot ids
	MaxDeviceID = 64  // IDFA/GAID are 36; leaves room, keeps URLs short
	MaxEnv      = 1   // 0 production, 1 staging
	MaxTest     = 3   // 0 control, 1..3 A/B tests
	MaxPrivacy  = 2   // privacy levels: 0 allowed, 1 unpersonalised, 2 anonymous
	// DefaultMaxSkew is how far in the future a token's issue time may lie:
	// the edge that signs and the edge that verifies have different clocks.
	DefaultMaxSkew = 5 * time.Second

	fixedSizeV1 = 23
	fixedSize   = 31
	numIDsV1    = 6
	numIDs      = 7
	minRawSize  = fixedSizeV1 + numIDsV1 + MACSize
	maxRawSize  = fixedSize + numIDs + 6*MaxIDLen + MaxDeviceID + MACSize
	minTokenLen = (minRawSize*8 + 5) / 6 // base64 without padding
)

// MaxTokenLen is the longest token Append can produce (1,181 bytes); Verify
// refuses longer input before decoding anything.
const MaxTokenLen = (maxRawSize*8 + 5) / 6

// Errors returned by Verify. They are distinct so the edge can count forged
// and expired tokens apart; all of them mean HTTP 403.
var (
	ErrMalformed   = errors.New("token: malformed")
	ErrForged      = errors.New("token: bad signature")
	ErrExpired     = errors.New("token: expired")
	ErrNotYetValid = errors.New("token: issued in the future")
)

// ErrInvalidClaims is wrapped by Append's error when the claims cannot be
// encoded (an id too long, a label out of range, no issue time).
var ErrInvalidClaims = errors.New("token: invalid claims")

// b64 is strict so that a token has exactly one spelling (otherwise the
// unused low bits of the last character would be malleable).
var b64 = base64.RawURLEncoding.Strict()

// Claims is what a token carries.
//
// After Verify the id fields alias a buffer owned by this Claims value: they
// stay valid until the next Verify into the same Claims. Reuse one Claims per
// request (or per worker) so verification does not allocate; assigning a
// Claims literal to it drops that buffer, so keep a separate Claims for Append.
type Claims struct {
	Issued      int64  // unix milliseconds
	PriceMicros int64  // revenue per impression, micros
	CapPeriod   uint32 // campaign frequency-cap period in seconds (0 = no cap)
	Env, Test   uint8  // bucket labels: env 0 production, 1 staging; test 0 control, 1..3

	// Version is the payload version Verify read (V1 or Version); for
	// Append, 0 means Version and V1 writes a version-1 token (tests,
	// tools that replay old traffic), refused when a v2-only field is set.
	Version uint8
	// Privacy is the request's privacy level (<= MaxPrivacy) and
	// PrivacySignals the signals it carried (server/privacy); the billing
	// events of the token's pixels carry them (v2; 0 for v1 tokens).
	Privacy        uint8
	PrivacySignals uint16
	// Country is the request's ISO 3166 alpha-2 code (upper case), zero
	// when unknown; OS, DeviceType and Format are the request's OS and
	// device type codes and the creative's format code (v2).
	Country            [2]byte
	OS, DeviceType     uint8
	Format             uint8
	Campaign, Creative []byte
	Device, Experiment []byte
	Variant, Snapshot  []byte
	Placement          []byte // the placement served (v2)

	buf []byte // decoded token; the id fields above alias it after Verify
	mac []byte // the verified token's MAC (aliases buf)
}

// MAC is the verified token's MACSize-byte tag: the same bytes wherever and
// however often the same token arrives, so it is the billing event id
// (docs/EVENTS.md). Nil before a successful Verify; aliases like the ids.
func (c *Claims) MAC() []byte { return c.mac }

// reset zeroes c but keeps its buffer's capacity.
func (c *Claims) reset() { *c = Claims{buf: c.buf[:0]} }

// ids lists the id fields in wire order with their limits.
func (c *Claims) ids() [numIDs]*[]byte {
	return [numIDs]*[]byte{&c.Campaign, &c.Creative, &c.Device, &c.Experiment, &c.Variant, &c.Snapshot, &c.Placement}
}

var idNames = [numIDs]string{"campaign", "creative", "device", "experiment", "variant", "snapshot", "placement"}

// v2Only reports whether c sets a field version 1 cannot carry.
func (c *Claims) v2Only() bool {
	return c.Privacy != 0 || c.PrivacySignals != 0 || c.Country != [2]byte{} || c.OS != 0 || c.DeviceType != 0 ||
		c.Format != 0 || len(c.Placement) != 0
}

func validCountry(cc [2]byte) bool {
	return cc == [2]byte{} || cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z'
}

func idLimit(i int) int {
	if i == 2 {
		return MaxDeviceID
	}
	return MaxIDLen
}

// Signer issues and verifies tokens. It is safe for concurrent use.
type Signer struct {
	cur, prev *keyState // prev is nil without WithPreviousKey
	ttlMs     int64
	skewMs    int64
}

// keyState pools HMAC states for one key: hmac.New precomputes the keyed
// inner and outer SHA-256 states, so a pooled one costs only the payload's
// blocks per token (measured faster than re-hashing ipad/opad per call).
type keyState struct {
	pool sync.Pool
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
	raw [maxRawSize]byte // Append's payload||mac before base64
}

func newKeyState(key []byte) *keyState {
	k := append([]byte(nil), key...)
	ks := &keyState{}
	ks.pool.New = func() any { return &macState{h: hmac.New(sha256.New, k)} }
	return ks
}

// mac computes the truncated MAC of payload into m.sum[:MACSize].
func (m *macState) mac(payload []byte) []byte {
	m.h.Reset()
	m.h.Write(payload)
	return m.h.Sum(m.sum[:0])[:MACSize]
}

// Option configures a Signer.
type Option func(*Signer) error

// WithPreviousKey lets tokens signed with the key in force before a rotation
// still verify until they expire. New tokens are always signed with the
// current key.
func WithPreviousKey(key []byte) Option {
	return func(s *Signer) error {
		if len(key) < MinKeySize {
			return fmt.Errorf("token: previous key is %d bytes, need at least %d", len(key), MinKeySize)
		}
		s.prev = newKeyState(key)
		return nil
	}
}

// WithMaxSkew sets how far in the future an issue time may be before Verify
// refuses it (default DefaultMaxSkew).
func WithMaxSkew(d time.Duration) Option {
	return func(s *Signer) error {
		if d < 0 {
			return errors.New("token: negative skew")
		}
		s.skewMs = d.Milliseconds()
		return nil
	}
}

// NewSigner returns a Signer for key (at least MinKeySize bytes; copied)
// whose tokens are valid for ttl after their issue time.
func NewSigner(key []byte, ttl time.Duration, opts ...Option) (*Signer, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("token: key is %d bytes, need at least %d", len(key), MinKeySize)
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("token: ttl %v too short", ttl)
	}
	s := &Signer{cur: newKeyState(key), ttlMs: ttl.Milliseconds(), skewMs: DefaultMaxSkew.Milliseconds()}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// check reports why c cannot be encoded. It allocates only on failure.
func check(c *Claims) error {
	if c.Issued <= 0 {
		return fmt.Errorf("%w: issued time %d not set", ErrInvalidClaims, c.Issued)
	}
	if c.PriceMicros < 0 {
		return fmt.Errorf("%w: negative price %d", ErrInvalidClaims, c.PriceMicros)
	}
	if c.Env > MaxEnv {
		return fmt.Errorf("%w: env %d > %d", ErrInvalidClaims, c.Env, MaxEnv)
	}
	if c.Test > MaxTest {
		return fmt.Errorf("%w: test %d > %d", ErrInvalidClaims, c.Test, MaxTest)
	}
	switch c.Version {
	case 0, Version:
	case V1:
		if c.v2Only() {
			return fmt.Errorf("%w: a version 1 token cannot carry privacy, country, OS, device type, format or placement", ErrInvalidClaims)
		}
	default:
		return fmt.Errorf("%w: token version %d (want %d or %d)", ErrInvalidClaims, c.Version, V1, Version)
	}
	if c.Privacy > MaxPrivacy {
		return fmt.Errorf("%w: privacy level %d > %d", ErrInvalidClaims, c.Privacy, MaxPrivacy)
	}
	if !validCountry(c.Country) {
		return fmt.Errorf("%w: country %q is not two upper-case letters", ErrInvalidClaims, c.Country[:])
	}
	for i, p := range c.ids() {
		if len(*p) > idLimit(i) {
			return fmt.Errorf("%w: %s id is %d bytes, max %d", ErrInvalidClaims, idNames[i], len(*p), idLimit(i))
		}
	}
	return nil
}

// Append appends c's token to dst. On error it returns dst unchanged and an
// error wrapping ErrInvalidClaims, so a bad claim never becomes a URL that
// later fails verification. It does not allocate when dst has room for
// MaxTokenLen more bytes.
func (s *Signer) Append(dst []byte, c *Claims) ([]byte, error) {
	if err := check(c); err != nil {
		return dst, err
	}
	m := s.cur.pool.Get().(*macState)
	raw := m.raw[:fixedSize]
	raw[0] = Version
	binary.LittleEndian.PutUint64(raw[1:], uint64(c.Issued))
	binary.LittleEndian.PutUint64(raw[9:], uint64(c.PriceMicros))
	binary.LittleEndian.PutUint32(raw[17:], c.CapPeriod)
	raw[21] = c.Env
	raw[22] = c.Test
	ids := c.ids()
	if c.Version == V1 {
		raw, ids[numIDs-1] = raw[:fixedSizeV1], nil
		raw[0] = V1
	} else {
		raw[23] = c.Privacy
		binary.LittleEndian.PutUint16(raw[24:], c.PrivacySignals)
		raw[26], raw[27] = c.Country[0], c.Country[1]
		raw[28], raw[29], raw[30] = c.OS, c.DeviceType, c.Format
	}
	for _, p := range ids {
		if p == nil {
			break
		}
		raw = append(raw, byte(len(*p)))
		raw = append(raw, *p...)
	}
	raw = append(raw, m.mac(raw)...)
	dst = appendB64(dst, raw)
	s.cur.pool.Put(m)
	return dst, nil
}

// Verify checks tok at time now and decodes it into dst. It returns
// ErrMalformed (not a token), ErrForged (signature matches neither key),
// ErrExpired or ErrNotYetValid. The signature is checked before anything in
// the payload is trusted. dst's id fields alias dst's own buffer (see
// Claims); dst is left zeroed on error. Steady state allocates nothing.
func (s *Signer) Verify(tok []byte, now time.Time, dst *Claims) error {
	dst.reset()
	if len(tok) < minTokenLen || len(tok) > MaxTokenLen {
		return ErrMalformed
	}
	raw, err := b64.AppendDecode(dst.buf, tok)
	dst.buf = raw[:0] // keep the capacity for the next call
	// Go's decoder skips CR and LF even in strict mode; a token with them
	// would have two spellings, so require every character to count.
	if err != nil || b64.EncodedLen(len(raw)) != len(tok) || len(raw) < minRawSize {
		return ErrMalformed
	}
	payload, tag := raw[:len(raw)-MACSize], raw[len(raw)-MACSize:]
	if !s.cur.verify(payload, tag) && (s.prev == nil || !s.prev.verify(payload, tag)) {
		return ErrForged
	}
	if !decode(payload, dst) {
		dst.reset()
		return ErrMalformed
	}
	dst.mac = tag
	nowMs := now.UnixMilli()
	if dst.Issued > nowMs+s.skewMs {
		dst.reset()
		return ErrNotYetValid
	}
	if nowMs-dst.Issued > s.ttlMs {
		dst.reset()
		return ErrExpired
	}
	return nil
}

func (k *keyState) verify(payload, tag []byte) bool {
	m := k.pool.Get().(*macState)
	ok := hmac.Equal(m.mac(payload), tag)
	k.pool.Put(m)
	return ok
}

// decode parses a payload whose MAC already matched. It applies the same
// limits as Append (a matching MAC from an old or buggy signer must still
// not push out-of-range labels into counters) and requires every byte to be
// consumed, so the encoding stays canonical.
func decode(p []byte, c *Claims) bool {
	if len(p) < fixedSizeV1 || p[0] != V1 && p[0] != Version {
		return false
	}
	c.Version = p[0]
	c.Issued = int64(binary.LittleEndian.Uint64(p[1:]))
	c.PriceMicros = int64(binary.LittleEndian.Uint64(p[9:]))
	c.CapPeriod = binary.LittleEndian.Uint32(p[17:])
	c.Env, c.Test = p[21], p[22]
	if c.Issued <= 0 || c.PriceMicros < 0 || c.Env > MaxEnv || c.Test > MaxTest {
		return false
	}
	ids := c.ids()
	if c.Version == V1 {
		p, ids[numIDs-1] = p[fixedSizeV1:], nil
	} else {
		if len(p) < fixedSize {
			return false
		}
		c.Privacy = p[23]
		c.PrivacySignals = binary.LittleEndian.Uint16(p[24:])
		c.Country = [2]byte{p[26], p[27]}
		c.OS, c.DeviceType, c.Format = p[28], p[29], p[30]
		if c.Privacy > MaxPrivacy || !validCountry(c.Country) {
			return false
		}
		p = p[fixedSize:]
	}
	for i, f := range ids {
		if f == nil {
			break
		}
		if len(p) < 1 {
			return false
		}
		n := int(p[0])
		if n > idLimit(i) || len(p) < 1+n {
			return false
		}
		*f = p[1 : 1+n : 1+n]
		p = p[1+n:]
	}
	return len(p) == 0
}

// GenerateKey returns a new random key of MinKeySize bytes.
func GenerateKey() []byte {
	k := make([]byte, MinKeySize)
	rand.Read(k) // never fails since Go 1.24 (it crashes the program instead)
	return k
}

// LoadKey reads a signing key from path. A file whose content, with
// surrounding whitespace trimmed, is all hex digits is decoded as hex (as
// `openssl rand -hex 32` writes it); any other content is the raw key, byte
// for byte. Either way the key must be at least MinKeySize
// bytes. Keep the file readable by the edge's user only (mode 0600): anyone
// holding the key can mint revenue-bearing tokens. LoadKey does not enforce
// the mode, since secret managers mount files with their own permissions.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	key := b
	if t := bytes.TrimSpace(b); len(t) > 0 && isHex(t) {
		if len(t)%2 != 0 {
			return nil, fmt.Errorf("token: %s: odd number of hex digits", path)
		}
		key = make([]byte, len(t)/2)
		if _, err := hex.Decode(key, t); err != nil {
			return nil, fmt.Errorf("token: %s: %w", path, err)
		}
	}
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("token: %s: key is %d bytes, need at least %d (hex: %d digits)", path, len(key), MinKeySize, 2*MinKeySize)
	}
	return key, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
