package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Advertiser kinds: what they sell decides categories, bid types and formats.
const (
	kindGame  uint8 = iota // game studio: app installs, interstitial/rewarded
	kindApp                // non-game app: app installs, some web
	kindBrand              // brand: mostly CPM/CPC web campaigns
)

// Bid types, numbered like snapshot.BidType.
const (
	bidCPM uint8 = iota
	bidCPC
	bidCPI
)

var bidNames = [...]string{"cpm", "cpc", "cpi"}

// OS mask bits for a campaign plan.
const (
	osAndroid uint8 = 1 << 0
	osIOS     uint8 = 1 << 1
)

type advertiser struct {
	name string
	kind uint8
	apps []int32 // indexes into world.apps, the advertiser's main app first
}

type promotedApp struct {
	id      string
	cat     uint8 // index into categories
	appleID uint32
}

// world is what every file shares: advertisers and their apps, publisher
// apps, and samplers over the static tables. Built from streamWorld only.
type world struct {
	advs    []advertiser
	apps    []promotedApp // global order follows advertiser popularity
	pubApps []string
	catGame weighted
	catApp  weighted
	catBrnd weighted
	ctry    weighted
	ctryW   []float64
	// countryAlpha[i] is country i's rank in alphabetical order.
	countryAlpha [len(countries)]uint8
}

func buildWorld(seed uint64, sc Scale) *world {
	r := newStream(seed, streamWorld)
	w := &world{}
	var g, a, b []float64
	for _, c := range categories {
		g, a, b = append(g, c.gameApp), append(a, c.app), append(b, c.brand)
	}
	w.catGame, w.catApp, w.catBrnd = newWeighted(g), newWeighted(a), newWeighted(b)
	w.ctryW = make([]float64, len(countries))
	for i := range countries {
		w.ctryW[i] = 1 / math.Pow(float64(i)+1, 1.05)
	}
	w.ctry = newWeighted(w.ctryW)
	for i := range countries {
		for j := range countries {
			if countries[j] < countries[i] {
				w.countryAlpha[i]++
			}
		}
	}

	used := make(map[string]bool, sc.Advertisers+sc.Apps)
	w.advs = make([]advertiser, sc.Advertisers)
	for i := range w.advs {
		ad := &w.advs[i]
		ad.name = uniqueName(r, advSuffixes[:], used, "a", i)
		var nApps int
		switch u := r.Float64(); {
		case u < 0.5:
			ad.kind, nApps = kindGame, 1+geometric(r, 0.45, 5)
		case u < 0.8:
			ad.kind, nApps = kindApp, 1+geometric(r, 0.6, 3)
		default:
			ad.kind = kindBrand
			if r.Float64() < 0.3 {
				nApps = 1
			}
		}
		words := map[string]bool{}
		for range nApps {
			var cat int
			var word string
			if ad.kind == kindGame {
				cat, word = w.catGame.pick(r), gameWords[r.IntN(len(gameWords))]
			} else {
				cat, word = w.catApp.pick(r), appWords[r.IntN(len(appWords))]
			}
			for n, base := 2, word; words[word]; n++ {
				word = base + strconv.Itoa(n)
			}
			words[word] = true
			ad.apps = append(ad.apps, int32(len(w.apps)))
			w.apps = append(w.apps, promotedApp{
				id:      "com." + ad.name + "." + word,
				cat:     uint8(cat),
				appleID: 300_000_000 + uint32(r.IntN(1_400_000_000)),
			})
		}
	}
	w.pubApps = make([]string, sc.Apps)
	for i := range w.pubApps {
		name := uniqueName(r, pubSuffixes[:], used, "p", i)
		var word string
		if r.Float64() < 0.65 {
			word = gameWords[r.IntN(len(gameWords))]
		} else {
			word = appWords[r.IntN(len(appWords))]
		}
		w.pubApps[i] = "com." + name + "." + word
	}
	return w
}

// uniqueName makes a pronounceable lower-case alphanumeric name (valid as an
// id and as a Java package segment) not in used.
func uniqueName(r *rand.Rand, suffixes []string, used map[string]bool, tag string, i int) string {
	for try := 0; ; try++ {
		n := 2 + r.IntN(2)
		b := make([]byte, 0, 24)
		for range n {
			b = append(b, syllables[r.IntN(len(syllables))]...)
		}
		b = append(b, suffixes[r.IntN(len(suffixes))]...)
		if try >= 6 {
			b = append(b, tag...)
			b = strconv.AppendInt(b, int64(i), 10)
		}
		s := string(b)
		if !used[s] {
			used[s] = true
			return s
		}
	}
}

// geometric returns the number of successes before the first failure with
// continue probability p, at most limit.
func geometric(r *rand.Rand, p float64, limit int) int {
	n := 0
	for n < limit && r.Float64() < p {
		n++
	}
	return n
}

// campaignPlan is what more than one file needs to know about a campaign:
// creatives.jsonl needs its creative count, kind and app; predictions.jsonl
// its countries and OS; placements.jsonl its advertiser and category.
type campaignPlan struct {
	firstCre   uint32 // index of the first creative
	adv        uint32
	app        int32 // promoted app, -1 none
	ctryOff    uint32
	nCtry      uint8
	cat        uint8
	bid        uint8
	osMask     uint8
	nCre       uint8
	appInstall bool
}

type plan struct {
	camps    []campaignPlan
	ctry     []uint8 // country indexes, each campaign's run in alphabetical order
	usedCats [len(categories)]bool
	pairs    int // targeted (campaign, country, OS) triples
}

func (p *plan) countries(c *campaignPlan) []uint8 {
	return p.ctry[c.ctryOff : c.ctryOff+uint32(c.nCtry)]
}

func buildPlan(seed uint64, sc Scale, w *world) *plan {
	r := newStream(seed, streamPlan)
	p := &plan{camps: make([]campaignPlan, sc.Campaigns), ctry: make([]uint8, 0, sc.Campaigns*6)}
	advZ := newZipf(r, 1.15, 8, len(w.advs))
	// Creatives per campaign: 1 + Binomial(9, q) has the requested mean
	// within [1, 10]; the total is then adjusted to exactly sc.Creatives.
	q := (float64(sc.Creatives)/float64(sc.Campaigns) - 1) / 9
	total := 0
	keys := make([]float64, len(countries))
	order := make([]uint8, len(countries))
	for i := range p.camps {
		c := &p.camps[i]
		c.adv = uint32(advZ.Uint64())
		ad := &w.advs[c.adv]
		c.app = -1
		var installP float64
		switch ad.kind {
		case kindGame:
			installP = 0.92
		case kindApp:
			installP = 0.75
		default:
			installP = 0.15
		}
		if len(ad.apps) > 0 && r.Float64() < installP {
			c.appInstall = true
			c.app = ad.apps[geometric(r, 0.35, len(ad.apps)-1)]
			c.cat = w.apps[c.app].cat
			switch u := r.Float64(); {
			case u < 0.85:
				c.bid = bidCPI
			case u < 0.95:
				c.bid = bidCPC
			default:
				c.bid = bidCPM
			}
			switch u := r.Float64(); {
			case u < 0.62:
				c.osMask = osAndroid
			case u < 0.90:
				c.osMask = osIOS
			default:
				c.osMask = osAndroid | osIOS
			}
		} else {
			switch ad.kind {
			case kindGame:
				c.cat = uint8(w.catGame.pick(r))
			case kindApp:
				c.cat = uint8(w.catApp.pick(r))
			default:
				c.cat = uint8(w.catBrnd.pick(r))
			}
			if r.Float64() < 0.65 {
				c.bid = bidCPM
			} else {
				c.bid = bidCPC
			}
			switch u := r.Float64(); {
			case u < 0.6:
				c.osMask = osAndroid | osIOS
			case u < 0.88:
				c.osMask = osAndroid
			default:
				c.osMask = osIOS
			}
		}
		p.usedCats[c.cat] = true

		// Countries: mostly one market, some bundles, a few near-global.
		var k int
		switch u := r.Float64(); {
		case u < 0.45:
			k = 1
		case u < 0.75:
			k = 2 + r.IntN(4)
		case u < 0.94:
			k = 6 + r.IntN(10)
		default:
			k = 20 + r.IntN(21)
		}
		sel := order[:0]
		if k <= 5 {
			var mask uint64
			for len(sel) < k {
				j := w.ctry.pick(r)
				if mask&(1<<j) == 0 {
					mask |= 1 << j
					sel = append(sel, uint8(j))
				}
			}
		} else {
			// Weighted sampling without replacement (Efraimidis-Spirakis):
			// the k largest log(u)/w.
			for j := range keys {
				keys[j] = math.Log(1-r.Float64()) / w.ctryW[j]
			}
			for range k {
				best := -1
				for j := range keys {
					if best < 0 || keys[j] > keys[best] {
						best = j
					}
				}
				keys[best] = math.Inf(-1)
				sel = append(sel, uint8(best))
			}
		}
		// Alphabetical order (insertion sort, k <= 40).
		for a := 1; a < len(sel); a++ {
			for b := a; b > 0 && w.countryAlpha[sel[b]] < w.countryAlpha[sel[b-1]]; b-- {
				sel[b], sel[b-1] = sel[b-1], sel[b]
			}
		}
		c.ctryOff, c.nCtry = uint32(len(p.ctry)), uint8(len(sel))
		p.ctry = append(p.ctry, sel...)
		nOS := 1
		if c.osMask == osAndroid|osIOS {
			nOS = 2
		}
		p.pairs += len(sel) * nOS

		n := 1
		for range 9 {
			if r.Float64() < q {
				n++
			}
		}
		c.nCre = uint8(n)
		total += n
	}
	// Adjust to the exact total: random nudges, then a sweep for the rest.
	diff := sc.Creatives - total
	for try := 0; diff != 0 && try < 4*absInt(diff)+1000; try++ {
		c := &p.camps[r.IntN(len(p.camps))]
		if diff > 0 && c.nCre < 10 {
			c.nCre++
			diff--
		} else if diff < 0 && c.nCre > 1 {
			c.nCre--
			diff++
		}
	}
	for i := 0; diff != 0 && i < len(p.camps); i++ {
		c := &p.camps[i]
		for diff > 0 && c.nCre < 10 {
			c.nCre++
			diff--
		}
		for diff < 0 && c.nCre > 1 {
			c.nCre--
			diff++
		}
	}
	next := uint32(0)
	for i := range p.camps {
		p.camps[i].firstCre = next
		next += uint32(p.camps[i].nCre)
	}
	return p
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
