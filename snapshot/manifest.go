package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Manifest describes one built snapshot: what an edge needs to fetch and
// verify it. The builder writes it as manifest.json beside the file; the
// distribution layer signs and serves it.
type Manifest struct {
	Version       string            `json:"version"`
	File          string            `json:"file"` // <version>.snap, relative to the manifest
	Size          int64             `json:"size"`
	XXHash64      string            `json:"xxhash64"` // 16 lower-case hex digits, whole file
	FormatVersion uint32            `json:"format_version"`
	Created       string            `json:"created"`      // RFC 3339, the header's data time
	ContentHash   string            `json:"content_hash"` // 16 hex digits over the inputs
	Counts        map[string]int64  `json:"counts"`
	Sections      []ManifestSection `json:"sections"`
	Inputs        []ManifestInput   `json:"inputs"`
}

// ManifestSection is one section's size and checksum, for tools and humans.
type ManifestSection struct {
	Name     string `json:"name"`
	Bytes    uint64 `json:"bytes"`
	Records  uint64 `json:"records"`
	XXHash64 string `json:"xxhash64"`
}

// ManifestInput is one inventory file the snapshot was built from.
type ManifestInput struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	XXHash64 string `json:"xxhash64"`
}

// MaxManifestBytes bounds what ReadManifest accepts.
const MaxManifestBytes = 1 << 20

var (
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,46}$`)
	hex16RE   = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ValidVersion reports whether v is usable as a snapshot version and file
// name stem (no path separators, no leading dot).
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// Hex16 renders a 64-bit hash as manifests store it.
func Hex16(h uint64) string { return fmt.Sprintf("%016x", h) }

// HashFile streams the file at path through xxhash64: the whole-file hash a
// manifest's xxhash64 field carries (Hex16 renders it). Every tool and edge
// that checks a downloaded or published file against its manifest calls
// this one function.
func HashFile(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	d := xxhash.New()
	if _, err := io.CopyBuffer(d, f, make([]byte, 1<<20)); err != nil {
		return 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return d.Sum64(), nil
}

// Validate checks the fields an edge relies on.
func (m *Manifest) Validate() error {
	switch {
	case !ValidVersion(m.Version):
		return fmt.Errorf("manifest: bad version %q", m.Version)
	case m.File != m.Version+".snap":
		return fmt.Errorf("manifest: file %q must be %q", m.File, m.Version+".snap")
	case m.Size < HeaderSize+FooterSize:
		return fmt.Errorf("manifest: size %d too small for a snapshot", m.Size)
	case !hex16RE.MatchString(m.XXHash64):
		return fmt.Errorf("manifest: xxhash64 %q is not 16 lower-case hex digits", m.XXHash64)
	case m.FormatVersion != FormatVersion:
		return fmt.Errorf("manifest: format version %d, this build reads %d", m.FormatVersion, FormatVersion)
	}
	return nil
}

// Hash returns the whole-file xxhash64 as a number.
func (m *Manifest) Hash() (uint64, error) {
	return strconv.ParseUint(m.XXHash64, 16, 64)
}

// ReadManifest reads and validates a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: manifest larger than %d bytes", path, MaxManifestBytes)
	}
	return ParseManifest(b)
}

// ParseManifest decodes and validates manifest JSON.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) == 0 {
		return nil, errors.New("manifest: empty")
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
