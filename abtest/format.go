package abtest

import (
	"math/bits"
	"strings"

	"github.com/adedge/adedge/snapshot"
)

// FormatSetFlag marks a format code that is a set of formats, not one:
// the code of a no-fill in a slot that took several formats for the
// request is FormatSetFlag | the set (snapshot.FormatMask), so the
// breakdown says which formats the slot could show ("banner+video")
// instead of "unknown". Codes 1..snapshot.NumFormats stay one format
// (snapshot format + 1), 0 unknown: the events' format field and the
// rows' Dims.Format share these codes (docs/EVENTS.md, docs/REPORTS.md).
const FormatSetFlag = 0x80

// FormatCode is the format code of what a slot shows for a request: m's
// only format, FormatSetFlag|m for several, 0 (unknown) for none.
func FormatCode(m snapshot.FormatMask) uint8 {
	m &= snapshot.AllFormats
	switch {
	case m == 0:
		return 0
	case m&(m-1) == 0:
		return uint8(bits.TrailingZeros8(uint8(m))) + 1
	}
	return FormatSetFlag | uint8(m)
}

// FormatLabel is a format code as rows and reports spell it: "banner",
// "video", "native"; a set as its formats joined by "+" in format order
// ("banner+video"); "" for unknown (0, or a code no edge writes).
func FormatLabel(code uint8) string {
	if code > 0 && int(code) <= snapshot.NumFormats {
		return snapshot.Format(code - 1).String()
	}
	m := snapshot.FormatMask(code &^ FormatSetFlag)
	if code&FormatSetFlag == 0 || m&^snapshot.AllFormats != 0 || bits.OnesCount8(uint8(m)) < 2 {
		return ""
	}
	var names []string
	for f := snapshot.Format(0); f < snapshot.NumFormats; f++ {
		if m.Has(f) {
			names = append(names, f.String())
		}
	}
	return strings.Join(names, "+")
}
