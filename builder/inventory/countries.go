package inventory

import (
	"strings"

	"github.com/adedge/adedge/snapshot"
)

// assignedCountries is the ISO 3166-1 alpha-2 list of officially assigned
// codes (249 codes, as published by the ISO 3166 Maintenance Agency and
// mirrored by Debian's iso-codes 4.15). Exceptionally reserved, transitionally
// reserved and user-assigned codes (UK, EU, XK, ZZ, ...) are not countries
// and are refused: a typo such as "UK" for "GB" must not silently target
// nobody. Update this list when ISO assigns or withdraws a code.
var assignedCountries = strings.Fields(`
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
`)

// countryName holds the canonical string of every assigned code, indexed
// by snapshot.CountryIndex; "" marks an unassigned code. Decoders return
// these strings so a million rows share 249 strings.
var countryName [snapshot.NumCountries]string

func init() {
	for _, c := range assignedCountries {
		i, _ := snapshot.CountryIndex(c)
		countryName[i] = c
	}
}

// countryIndex maps an assigned upper-case alpha-2 code to its
// snapshot.CountryIndex.
func countryIndex(code string) (uint16, bool) {
	i, ok := snapshot.CountryIndex(code)
	if !ok || countryName[i] == "" {
		return 0, false
	}
	return i, true
}
