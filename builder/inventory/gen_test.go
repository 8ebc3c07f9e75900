package inventory

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// genConfig sizes a generated inventory. The real generator is `adtool
// gen`; this one only feeds tests and benchmarks, with lines shaped like
// production exports (campaign lines ~700 bytes, creative ~190, placement
// ~130, prediction ~95).
type genConfig struct {
	Campaigns            int
	CreativesPerCampaign int
	Placements           int
	Seed                 uint64
	Shuffle              bool // write records in random order rather than sorted by id
}

var genCountries = strings.Fields("US GB DE FR JP KR BR IN CA AU MX ES IT NL SE PL TR ID TH VN PH SA AE EG NG ZA AR CL CO PE")

// genInventory writes a valid inventory into dir and returns the number of
// prediction rows.
func genInventory(tb testing.TB, dir string, cfg genConfig) int {
	tb.Helper()
	// Values come from a per-record generator so that shuffling the order
	// (with its own generator) does not change them.
	shuffler := rand.New(rand.NewPCG(cfg.Seed, 7))
	order := func(n int) []int {
		o := make([]int, n)
		for i := range o {
			o[i] = i
		}
		if cfg.Shuffle {
			shuffler.Shuffle(n, func(i, j int) { o[i], o[j] = o[j], o[i] })
		}
		return o
	}
	var r *rand.Rand
	seed := func(kind, i int) { r = rand.New(rand.NewPCG(cfg.Seed, uint64(kind)<<40|uint64(i))) }
	create := func(name string) (*os.File, *bufio.Writer) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		return f, bufio.NewWriterSize(f, 1<<20)
	}
	done := func(f *os.File, w *bufio.Writer) {
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}

	formats := []string{"banner", "video", "native"}
	placementFormats := []string{`"formats":["banner"]`, `"formats":["banner","video"],"interstitial":true`, `"formats":["video"],"interstitial":true,"rewarded":true`, `"formats":["native"]`}
	nCreatives := cfg.Campaigns * cfg.CreativesPerCampaign
	f, w := create(CreativesFile)
	for _, i := range order(nCreatives) {
		format := formats[i%3]
		wd, ht, video := 0, 0, ""
		switch format {
		case "banner":
			wd, ht = 320, 50
		case "native":
			wd, ht = 1200, 627
		case "video":
			video = fmt.Sprintf(`,"video":{"duration_seconds":30,"media_files":[{"url":"https://cdn.adedge.example/assets/cr-%08d.mp4","mime":"video/mp4","width":1280,"height":720,"bitrate_kbps":1800}]}`, i)
		}
		fmt.Fprintf(w, `{"id":"cr-%08d","format":"%s","width":%d,"height":%d,"asset_url":"https://cdn.adedge.example/assets/cr-%08d.png","click_url":"https://click.adedge.example/c/cr-%08d?src=edge","adomain":"adv-%05d.example","iab_category":"IAB%d"%s}`+"\n",
			i, format, wd, ht, i, i, i%20000, 1+i%26, video)
	}
	done(f, w)

	type target struct {
		countries []string
		ios, andr bool
	}
	targets := make([]target, cfg.Campaigns)
	f, w = create(CampaignsFile)
	for _, i := range order(cfg.Campaigns) {
		seed(1, i)
		t := target{}
		k := 3 + r.IntN(10)
		perm := r.Perm(len(genCountries))[:k]
		for _, p := range perm {
			t.countries = append(t.countries, genCountries[p])
		}
		switch r.IntN(3) {
		case 0:
			t.ios = true
		case 1:
			t.andr = true
		default:
			t.ios, t.andr = true, true
		}
		targets[i] = t
		var osList []string
		if t.ios {
			osList = append(osList, `{"name":"ios","min_version":"14.0"}`)
		}
		if t.andr {
			osList = append(osList, `{"name":"android","min_version":"8.1.0"}`)
		}
		crs := make([]string, cfg.CreativesPerCampaign)
		for j := range crs {
			crs[j] = fmt.Sprintf(`"cr-%08d"`, i*cfg.CreativesPerCampaign+j)
		}
		bidTypes := []string{"cpm", "cpc", "cpi"}
		freq := ""
		if i%3 == 0 {
			freq = `"frequency_cap":{"count":3,"period_seconds":86400},`
		}
		fmt.Fprintf(w, `{"id":"cmp-%07d","advertiser":"adv-%05d","category":"IAB%d","bid_type":"%s","bid_micros":%d,"daily_budget_micros":%d,"start":"2026-0%d-01T00:00:00Z","end":"2027-0%d-01T00:00:00Z","targeting":{"countries":["%s"],"os":[%s],"device_types":["phone","tablet"],"segments":["seg-%d","seg-%d"]},%s"promoted_app":"com.example.app%d","creative_ids":[%s]}`+"\n",
			i, i%20000, 1+i%26, bidTypes[i%3], 1000+r.IntN(5_000_000), 1_000_000*(1+r.IntN(1000)),
			1+i%9, 1+i%9, strings.Join(t.countries, `","`), strings.Join(osList, ","), i%200, (i+7)%200, freq, i%50000, strings.Join(crs, ","))
	}
	done(f, w)

	f, w = create(PlacementsFile)
	for _, i := range order(cfg.Placements) {
		seed(2, i)
		fmt.Fprintf(w, `{"id":"pl-%08d","app":"com.pub.app%d",%s,"floor_micros":%d,"blocked_advertisers":["adv-%05d"],"blocked_categories":["IAB%d"]}`+"\n",
			i, i%50000, placementFormats[i%4], r.IntN(2_000_000), i%20000, 1+i%26)
	}
	done(f, w)

	f, w = create(PredictionsFile)
	rows := 0
	for _, i := range order(cfg.Campaigns) {
		seed(3, i)
		t := targets[i]
		for j, c := range t.countries {
			if j%3 == 2 {
				continue // sparse: not every targeted country is modelled
			}
			for _, o := range []struct {
				name string
				on   bool
			}{{"android", t.andr}, {"ios", t.ios}} {
				if !o.on {
					continue
				}
				ctr := 0.001 + r.Float64()*0.05
				fmt.Fprintf(w, `{"campaign_id":"cmp-%07d","country":"%s","os":"%s","ctr":%.6f,"install_rate":%.6f}`+"\n", i, c, o.name, ctr, ctr*r.Float64()*0.2)
				rows++
			}
		}
	}
	done(f, w)

	writeFile(tb, filepath.Join(dir, ExperimentsFile), `{
  "id": "exp-2026-11",
  "salt": "s-8f2a",
  "tests": [
    {"id": "t1", "variant": "floor_plus_10", "share_bp": 2000, "params": {"floor_multiplier": 1.1}},
    {"id": "t2", "variant": "cpi_boost", "share_bp": 2000, "params": {"weight_cpi": 1.5, "min_ctr": 0.001}},
    {"id": "t3", "variant": "aa", "share_bp": 1000}
  ]
}
`)
	return rows
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
