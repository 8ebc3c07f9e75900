package ortb

import (
	"golang.org/x/text/language"

	"github.com/adedge/adedge/snapshot"
)

// alpha3 maps an ISO 3166-1 alpha-3 code (index (a*26+b)*26+c of its
// letters) to snapshot.CountryIndex of its alpha-2 code, plus one; 0 =
// not a country. Built once from golang.org/x/text's CLDR region table.
var alpha3 [26 * 26 * 26]uint16

func init() {
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			cc := string([]byte{a, b})
			r, err := language.ParseRegion(cc)
			if err != nil || !r.IsCountry() || r.String() != cc || privateUse(a, b) {
				continue
			}
			a3 := r.ISO3()
			if len(a3) != 3 || a3 == "ZZZ" { // CLDR's exceptionally reserved codes (UK, EA, ...)
				continue
			}
			idx, _ := snapshot.CountryIndex(cc)
			alpha3[(int(a3[0]-'A')*26+int(a3[1]-'A'))*26+int(a3[2]-'A')] = idx + 1
		}
	}
}

// CountryIndex maps device.geo.country to snapshot.CountryIndex. OpenRTB
// specifies ISO 3166-1 alpha-3 ("USA"); alpha-2 ("US"), which some SDKs
// send, is accepted too. Any letter case.
func CountryIndex(code []byte) (uint16, bool) {
	var up [3]byte
	if len(code) < 2 || len(code) > 3 {
		return 0, false
	}
	for i, c := range code {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return 0, false
		}
		up[i] = c
	}
	if len(code) == 2 {
		return snapshot.CountryIndex(string(up[:2]))
	}
	v := alpha3[(int(up[0]-'A')*26+int(up[1]-'A'))*26+int(up[2]-'A')]
	return v - 1, v != 0
}

// privateUse reports the ISO 3166 user-assigned codes (AA, QM-QZ, XA-XZ,
// ZZ), which CLDR lists as regions; XK (Kosovo) is kept, as OpenRTB
// exchanges send it.
func privateUse(a, b byte) bool {
	switch {
	case a == 'A' && b == 'A', a == 'Z' && b == 'Z':
		return true
	case a == 'Q' && b >= 'M', a == 'X' && b != 'K':
		return true
	}
	return false
}
