package gen

// Static dictionaries the generator draws from. Order matters: it is part of
// the determinism contract (same seed, same bytes), so append, never reorder.

// countries are real ISO 3166-1 alpha-2 codes in rough order of mobile ad
// traffic; countryWeights gives them a Zipf-like share (US first).
var countries = [...]string{
	"US", "GB", "DE", "JP", "BR", "IN", "FR", "CA", "KR", "AU",
	"MX", "IT", "ES", "RU", "ID", "TR", "NL", "SA", "PL", "TH",
	"PH", "VN", "TW", "AR", "CO", "SE", "CH", "BE", "AT", "NO",
	"DK", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "IL", "AE",
	"EG", "ZA", "NG", "KE", "MY", "SG", "HK", "NZ", "CL", "PE",
	"PK", "BD", "UA", "KZ", "MA", "DZ", "QA", "KW", "EC", "UY",
	"LK", "JO",
}

// tier1 countries bid higher (a multiplier on CPI/CPM) and are the usual
// multi-country bundle.
var tier1 = map[string]bool{"US": true, "GB": true, "DE": true, "JP": true, "CA": true, "AU": true, "KR": true, "FR": true, "CH": true, "NO": true, "SE": true, "DK": true, "NL": true}

// category is an IAB content category (IAB1..IAB26, sub-categories "IABn-m").
type category struct {
	code string
	game bool
	// Weights for the three kinds of use; 0 = never picked for that use.
	gameApp, app, brand float64
}

var categories = [...]category{
	{"IAB9-30", true, 70, 0, 0}, // Video & Computer Games
	{"IAB9-5", true, 14, 0, 0},  // Board Games/Puzzles
	{"IAB9-7", true, 10, 0, 0},  // Card Games (casino-style)
	{"IAB1-6", false, 0, 6, 2},  // Music
	{"IAB1-5", false, 0, 5, 4},  // Movies
	{"IAB1-7", false, 0, 4, 3},  // Television
	{"IAB1-1", false, 0, 2, 1},  // Books & Literature
	{"IAB2", false, 0, 1, 8},    // Automotive
	{"IAB3", false, 0, 3, 4},    // Business
	{"IAB4", false, 0, 1, 2},    // Careers
	{"IAB5", false, 0, 6, 3},    // Education
	{"IAB6", false, 0, 2, 3},    // Family & Parenting
	{"IAB7", false, 0, 8, 5},    // Health & Fitness
	{"IAB8", false, 0, 7, 6},    // Food & Drink
	{"IAB8-5", false, 0, 0, 2},  // Cocktails/Beer
	{"IAB10", false, 0, 1, 3},   // Home & Garden
	{"IAB11", false, 0, 0, 1},   // Law, Gov't & Politics
	{"IAB12", false, 0, 4, 2},   // News
	{"IAB13", false, 0, 6, 6},   // Personal Finance
	{"IAB13-7", false, 0, 3, 2}, // Investing
	{"IAB14-1", false, 0, 5, 1}, // Dating
	{"IAB15", false, 0, 1, 1},   // Science
	{"IAB16", false, 0, 1, 2},   // Pets
	{"IAB17", false, 0, 4, 4},   // Sports
	{"IAB18", false, 0, 4, 7},   // Style & Fashion
	{"IAB19", false, 0, 6, 5},   // Technology & Computing
	{"IAB19-6", false, 0, 2, 3}, // Cell Phones
	{"IAB20", false, 0, 6, 6},   // Travel
	{"IAB21", false, 0, 1, 2},   // Real Estate
	{"IAB22", false, 0, 8, 10},  // Shopping
	{"IAB22-2", false, 0, 2, 2}, // Couponing
	{"IAB23", false, 0, 0, 1},   // Religion & Spirituality
}

// sensitiveCategories are what publishers typically block.
var sensitiveCategories = [...]string{"IAB14-1", "IAB9-7", "IAB8-5", "IAB11", "IAB23", "IAB13-7"}

// segments is the user-segment dictionary (well under the 256-segment limit).
// The first gameSegments entries are game-related.
var segments = [...]string{
	"gamers", "casual_players", "midcore_players", "hardcore_players",
	"puzzle_fans", "strategy_fans", "rpg_fans", "racing_fans",
	"casino_players", "high_spenders", "whales", "non_payers",
	"lapsed_users", "new_users", "travel", "business_travelers",
	"sports_fans", "music_lovers", "foodies", "fitness",
	"shoppers", "deal_seekers", "parents", "students",
	"young_adults", "auto_intenders", "finance", "crypto",
	"news_readers", "tech_enthusiasts", "fashion", "beauty",
	"pet_owners", "home_improvement", "movie_buffs", "book_readers",
	"dating", "health_conscious", "commuters", "outdoor",
}

const gameSegments = 14 // segments[:gameSegments] suit game campaigns

var syllables = [...]string{
	"ka", "vo", "tek", "zen", "lu", "mi", "ra", "no", "sol", "vi",
	"da", "ro", "ze", "pa", "xi", "qua", "bel", "tor", "lin", "mar",
	"fa", "go", "ni", "sa", "ter", "ox", "ly", "dra", "pix", "glo",
	"nu", "ki", "ber", "zu", "mo", "ta",
}

var advSuffixes = [...]string{"", "", "", "games", "studio", "labs", "soft", "apps", "media", "play", "interactive", "mobile", "digital", "corp"}

var pubSuffixes = [...]string{"", "", "mobile", "apps", "games", "dev", "soft", "tech", "hq"}

var gameWords = [...]string{
	"merge", "solitaire", "puzzle", "royale", "farm", "racing", "idle", "heroes",
	"match3", "tiles", "bingo", "slots", "runner", "chess", "mahjong", "sudoku",
	"words", "kingdom", "legends", "tycoon", "blast", "quest", "clash", "city",
	"survival", "sniper", "drift", "bubble", "jewels", "cooking",
}

var appWords = [...]string{
	"wallet", "bank", "invest", "dating", "flights", "hotels", "shop", "deals",
	"fitness", "yoga", "meditate", "learn", "language", "music", "radio", "news",
	"weather", "photo", "video", "vpn", "cleaner", "food", "delivery", "rides",
	"maps", "scanner", "notes", "budget", "podcasts", "tv",
}

// Minimum OS versions campaigns target ("" = any).
var (
	androidVersions = [...]string{"", "8.0", "9.0", "10", "11", "12"}
	androidVerW     = [...]float64{35, 14, 10, 16, 12, 13}
	iosVersions     = [...]string{"", "13.0", "14.0", "14.5", "15.0", "16.0", "16.4"}
	iosVerW         = [...]float64{35, 10, 14, 8, 15, 12, 6}
)

// Creative sizes per format (0x0 = full screen / responsive).
type size struct{ w, h uint16 }

var (
	bannerSizes = [...]size{{320, 50}, {300, 250}, {728, 90}}
	bannerSizeW = [...]float64{55, 30, 15}
	interSizes  = [...]size{{320, 480}, {480, 320}, {768, 1024}, {1024, 768}, {0, 0}}
	interSizeW  = [...]float64{35, 10, 15, 5, 35}
	rewardSizes = [...]size{{0, 0}, {320, 480}, {480, 320}}
	rewardSizeW = [...]float64{70, 20, 10}
	nativeSizes = [...]size{{1200, 627}, {0, 0}, {1080, 1080}}
	nativeSizeW = [...]float64{50, 30, 20}
	formatNames = [...]string{"banner", "interstitial", "rewarded", "native"} // slot kinds, not creative formats
	// A slot kind's placement fields.
	placementFormats = [...]string{
		`,"formats":["banner"]`,
		`,"formats":["banner","video"],"interstitial":true`,
		`,"formats":["video","banner"],"interstitial":true,"rewarded":true`,
		`,"formats":["native"]`,
	}
	gameFormatW  = [...]float64{15, 35, 35, 15} // by formatNames
	appFormatW   = [...]float64{35, 30, 15, 20}
	brandFormatW = [...]float64{50, 20, 0, 30}
	placeFormatW = [...]float64{40, 30, 20, 10}
	// Median placement floor (eCPM, currency units) per format.
	floorMedian = [...]float64{0.4, 3, 6, 1.2}
)

// Frequency caps: impressions per period.
var (
	capCounts  = [...]uint32{1, 2, 3, 5, 10}
	capCountW  = [...]float64{20, 20, 30, 20, 10}
	capPeriods = [...]uint32{3600, 14400, 43200, 86400, 604800}
	capPeriodW = [...]float64{20, 10, 10, 50, 10}
)
