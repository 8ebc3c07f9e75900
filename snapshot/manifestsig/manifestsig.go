// Package manifestsig signs and verifies the per-channel manifests the
// builder publishes and the edges poll. A manifest tells an edge which
// snapshot a channel serves and how to fetch and check it; the ed25519
// signature is what makes it safe to fetch that manifest over plain HTTP from
// any mirror or through any proxy.
//
// The wire form is an envelope whose payload is carried as base64 of the exact
// signed bytes, so no canonical JSON is needed: the verifier checks the
// signature over the bytes it received, then parses them.
package manifestsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/snapshot"
)

// MaxBytes bounds an envelope; real ones are under 1 KiB.
const MaxBytes = 64 << 10

// domain is prefixed to the payload before signing, so a signature made for
// this purpose can never be replayed as a signature over something else made
// with the same key.
const domain = "adedge-manifest-v1\n"

// Channels the builder publishes.
const (
	Staging    = "staging"
	Production = "production"
)

// ValidChannel reports whether c names a channel.
func ValidChannel(c string) bool { return c == Staging || c == Production }

// Errors callers tell apart.
var (
	ErrSignature = errors.New("manifestsig: bad signature")
	ErrMalformed = errors.New("manifestsig: malformed manifest")
	ErrChannel   = errors.New("manifestsig: manifest is for another channel")
)

// Payload is what a channel's manifest says. Every field is covered by the
// signature.
type Payload struct {
	Channel       string `json:"channel"`
	Version       string `json:"version"`
	File          string `json:"file"` // <version>.snap
	Size          int64  `json:"size"`
	XXHash64      string `json:"xxhash64"` // whole file, 16 lower-case hex digits
	FormatVersion uint32 `json:"format_version"`
	Created       string `json:"created"`  // the snapshot's data time, RFC 3339
	InfoHash      string `json:"infohash"` // BitTorrent v1 infohash of the .torrent, 40 hex digits
	PieceLength   int64  `json:"piece_length"`
	Torrent       string `json:"torrent"` // URL of the .torrent (absolute, or relative to the manifest URL)
	WebSeed       string `json:"webseed"` // BEP 19 URL of the file (absolute, or relative)
	// Seq orders manifests of a channel: it grows with every publish,
	// promote and rollback, so an edge refuses a replayed older manifest
	// even when it names a newer snapshot (or, after a rollback, an older).
	Seq    uint64 `json:"seq"`
	Issued string `json:"issued"` // signing time, RFC 3339, for humans
}

var (
	hex16RE = regexp.MustCompile(`^[0-9a-f]{16}$`)
	hex40RE = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// Validate checks every field an edge relies on.
func (p *Payload) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(f, a...)) }
	switch {
	case !ValidChannel(p.Channel):
		return bad("channel %q", p.Channel)
	case !snapshot.ValidVersion(p.Version):
		return bad("version %q", p.Version)
	case p.File != p.Version+".snap":
		return bad("file %q must be %q", p.File, p.Version+".snap")
	case p.Size < snapshot.HeaderSize+snapshot.FooterSize || p.Size > 1<<40:
		return bad("size %d", p.Size)
	case !hex16RE.MatchString(p.XXHash64):
		return bad("xxhash64 %q", p.XXHash64)
	case p.FormatVersion != snapshot.FormatVersion:
		return bad("format version %d, this build reads %d", p.FormatVersion, snapshot.FormatVersion)
	case !hex40RE.MatchString(p.InfoHash):
		return bad("infohash %q", p.InfoHash)
	case p.PieceLength < 16<<10 || p.PieceLength > 64<<20 || p.PieceLength&(p.PieceLength-1) != 0:
		return bad("piece length %d: want a power of two in [16 KiB, 64 MiB]", p.PieceLength)
	case p.Torrent == "" || len(p.Torrent) > 2048 || p.WebSeed == "" || len(p.WebSeed) > 2048:
		return bad("torrent and webseed URLs are required (at most 2048 bytes)")
	case p.Seq == 0:
		return bad("seq must be > 0")
	}
	if _, err := time.Parse(time.RFC3339, p.Created); err != nil {
		return bad("created %q", p.Created)
	}
	return nil
}

// Envelope is the JSON document served at /v1/manifest.
type Envelope struct {
	Signed    string `json:"signed"`    // base64 (standard) of the payload JSON
	Signature string `json:"signature"` // base64 (standard) of ed25519(domain + payload JSON)
	KeyID     string `json:"key_id"`    // KeyID of the signing key, to tell rotated keys apart
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Sign validates p and returns the envelope JSON.
func Sign(priv ed25519.PrivateKey, p *Payload) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("manifestsig: private key has the wrong size")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(priv, append([]byte(domain), body...))
	return json.Marshal(Envelope{
		Signed:    base64.StdEncoding.EncodeToString(body),
		Signature: base64.StdEncoding.EncodeToString(sig),
		KeyID:     KeyID(priv.Public().(ed25519.PublicKey)),
	})
}

// Verify checks the envelope's signature with pub and returns its payload,
// validated. channel, when not empty, must be the payload's channel: a
// staging manifest served on the production URL is refused.
func Verify(pub ed25519.PublicKey, data []byte, channel string) (*Payload, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("manifestsig: public key has the wrong size")
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(data), MaxBytes)
	}
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the envelope", ErrMalformed)
	}
	body, err := base64.StdEncoding.DecodeString(env.Signed)
	if err != nil {
		return nil, fmt.Errorf("%w: signed: %v", ErrMalformed, err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is not %d bytes of base64", ErrMalformed, ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, append([]byte(domain), body...), sig) {
		return nil, fmt.Errorf("%w (key %s; this edge trusts %s)", ErrSignature, clip(env.KeyID), KeyID(pub))
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if channel != "" && p.Channel != channel {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrChannel, p.Channel, channel)
	}
	return &p, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// GenerateKey makes a new key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// Key files hold one line of hex: the 32-byte seed for a private key, the
// 32-byte public key for a public one.

// WriteKeys writes PREFIX.key (private, mode 0600) and PREFIX.pub, refusing
// to overwrite an existing private key.
func WriteKeys(prefix string, pub ed25519.PublicKey, priv ed25519.PrivateKey) error {
	f, err := os.OpenFile(prefix+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(priv.Seed())); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return atomicfile.Write(prefix+".pub", func(f *os.File) error {
		_, err := fmt.Fprintln(f, hex.EncodeToString(pub))
		return err
	})
}

// LoadPrivateKey reads a private key file written by WriteKeys.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readHexFile(path, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// LoadPublicKey reads a public key file written by WriteKeys.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := readHexFile(path, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

func readHexFile(path string, n int) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) > 4*n {
		return nil, fmt.Errorf("%s: not a key file (%d bytes)", path, len(raw))
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%s: want %d bytes as hex on one line", path, n)
	}
	return b, nil
}
