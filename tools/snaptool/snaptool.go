// Package snaptool is the logic behind `adtool inspect | verify | diff |
// lookup`: read-only tools over a snapshot file for operators and the build
// pipeline.
//
// Each command is a function that takes paths and options, writes human
// output (aligned with text/tabwriter) or, with JSON set, one indented JSON
// document to an io.Writer, and returns an error. Verify returns a
// *VerifyError (errors.Is(err, ErrVerify)) for anything wrong with the file
// so the caller can exit 1 on a mismatch and 2 on operational errors.
//
// Every function tolerates any input file: snapshot.Open verifies framing
// and checksums, the Reader bounds-checks every accessor, and the few places
// here that read raw section bytes check their bounds first.
package snaptool

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/adedge/adedge/snapshot"
)

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTab returns a tabwriter with the package's column layout; padding
// at the end of a line is dropped.
func newTab(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(&trimTrailing{w: w}, 0, 0, 2, ' ', 0)
}

// trimTrailing drops spaces that end a line (tabwriter pads the last
// tab-terminated cell). Every block written through it ends with a newline.
type trimTrailing struct {
	w       io.Writer
	pending int
	buf     []byte
}

func (t *trimTrailing) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	for _, c := range p {
		switch c {
		case ' ':
			t.pending++
			continue
		case '\n':
			t.pending = 0
		default:
			for ; t.pending > 0; t.pending-- {
				t.buf = append(t.buf, ' ')
			}
		}
		t.buf = append(t.buf, c)
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// money renders micros as currency units with 2 to 6 decimals ("1.50",
// "0.001234").
func money(m int64) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = -u
	}
	s := fmt.Sprintf("%d.%06d", u/1_000_000, u%1_000_000)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	if neg {
		return "-" + s
	}
	return s
}

// bytesHuman renders a byte count with a binary unit ("1.5 MiB").
func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// unixTime renders unix seconds as RFC 3339 UTC.
func unixTime(s int64) string {
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

// keyName renders a candidate-list key as "format/country/os".
func keyName(key int) string {
	f, country, os := splitKey(key)
	return f.String() + "/" + snapshot.CountryCode(country) + "/" + os.String()
}

// splitKey is the inverse of snapshot.KeyIndex for key in [0, NumKeys).
func splitKey(key int) (snapshot.Format, uint16, snapshot.OS) {
	os := snapshot.OS(key % snapshot.NumOS)
	key /= snapshot.NumOS
	return snapshot.Format(key / snapshot.NumCountries), uint16(key % snapshot.NumCountries), os
}

// deviceNames lists the device types set in a campaign's device bits.
func deviceNames(bits uint8) []string {
	var out []string
	if bits&snapshot.DevicePhone != 0 {
		out = append(out, "phone")
	}
	if bits&snapshot.DeviceTablet != 0 {
		out = append(out, "tablet")
	}
	if rest := bits &^ snapshot.AllDevices; rest != 0 {
		out = append(out, fmt.Sprintf("unknown(0x%02x)", rest))
	}
	return out
}

// segmentNames lists the names of the segment bits set in segs.
func segmentNames(r *snapshot.Reader, segs [4]uint64, dst []string) []string {
	dst = dst[:0]
	for w, word := range segs {
		for b := 0; word != 0 && b < 64; b++ {
			if word&(1<<b) != 0 {
				word &^= 1 << b
				i := uint32(w*64 + b)
				name := r.Segment(i)
				if name == "" {
					name = fmt.Sprintf("#%d", i)
				}
				dst = append(dst, name)
			}
		}
	}
	return dst
}

// sectionBytes returns a section's raw bytes and record size from the
// section table (nil when absent or out of the file's bounds; Open has
// already checked both, this only guards against misuse).
func sectionBytes(r *snapshot.Reader, id uint32) ([]byte, int) {
	data := r.Bytes()
	for _, s := range r.Sections() {
		if s.ID != id {
			continue
		}
		if s.Offset > uint64(len(data)) || s.Length > uint64(len(data))-s.Offset {
			return nil, 0
		}
		return data[s.Offset : s.Offset+s.Length], int(s.RecordSize)
	}
	return nil, 0
}

// refAt reads the 8-byte (offset, length) pair of record i of a RefSize
// section; ok is false when i is out of range.
func refAt(b []byte, stride, i int) (off, n uint32, ok bool) {
	if stride < snapshot.RefSize || i < 0 || i >= len(b)/stride {
		return 0, 0, false
	}
	o := i * stride
	return le32(b[o:]), le32(b[o+4:]), true
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	return uint64(le32(b)) | uint64(le32(b[4:]))<<32
}

// campaignID returns campaign i's id ("#i" when the record or string is
// missing, so output never shows a blank id).
func campaignID(r *snapshot.Reader, i uint32) string {
	c, ok := r.Campaign(int(i))
	if !ok {
		return fmt.Sprintf("#%d(out of range)", i)
	}
	if s := r.String(c.ID); s != "" {
		return s
	}
	return fmt.Sprintf("#%d", i)
}

// nameOr returns s, or "#i" when s is empty (a dangling dictionary index).
func nameOr(s string, i uint32) string {
	if s == "" {
		return fmt.Sprintf("#%d", i)
	}
	return s
}
