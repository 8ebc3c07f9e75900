package abtest

import (
	"testing"

	"github.com/adedge/adedge/snapshot"
)

// TestFormatCodes: one format keeps its code (snapshot format + 1), a
// set gets FormatSetFlag and reads back as its names in format order,
// none (and codes no edge writes) read as unknown; the rows' format
// dimension spells codes the same way.
func TestFormatCodes(t *testing.T) {
	bv := snapshot.FormatMask(1<<snapshot.FormatBanner | 1<<snapshot.FormatVideo)
	for _, c := range []struct {
		m     snapshot.FormatMask
		code  uint8
		label string
	}{
		{0, 0, ""},
		{1 << snapshot.FormatBanner, 1, "banner"},
		{1 << snapshot.FormatVideo, 2, "video"},
		{1 << snapshot.FormatNative, 3, "native"},
		{bv, FormatSetFlag | uint8(bv), "banner+video"},
		{1<<snapshot.FormatVideo | 1<<snapshot.FormatNative, FormatSetFlag | 6, "video+native"},
		{snapshot.AllFormats, FormatSetFlag | 7, "banner+video+native"},
		{0xf0, 0, ""}, // bits beyond the formats are dropped
	} {
		if got := FormatCode(c.m); got != c.code {
			t.Errorf("FormatCode(%b) = %#x, want %#x", c.m, got, c.code)
		}
		if got := FormatLabel(c.code); got != c.label {
			t.Errorf("FormatLabel(%#x) = %q, want %q", c.code, got, c.label)
		}
		if got := dimName(2, uint32(c.code)); got != c.label {
			t.Errorf("rows' format of code %#x = %q, want %q", c.code, got, c.label)
		}
	}
	for _, bad := range []uint8{4, 0x7f, FormatSetFlag, FormatSetFlag | 1, FormatSetFlag | 0x08, 0xff} {
		if got := FormatLabel(bad); got != "" {
			t.Errorf("FormatLabel(%#x) = %q, want unknown", bad, got)
		}
	}
}
