// Package abtraffic is the demo's stand-in for SDKs (adtool abtraffic): it
// asks an edge for ads and fires the impression and click URLs of some
// fills, so A/B reports have impressions, clicks and revenue to compare.
// It is a demo tool, not a load generator (that is tools/loadgen).
package abtraffic

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adedge/adedge/tools/loadgen"
)

// Options configure Run, a stand-in for SDKs in demos: it asks
// for ads and fires the impression and click URLs of some fills, so reports
// have impressions, clicks and revenue to compare.
type Options struct {
	Target, Inventory   string
	Requests, Workers   int
	ImpressionP, ClickP float64 // chance a fill's impression fires; chance an impression clicks
	Seed                uint64
}

// Result counts what Run did, by the answering environment.
type Result struct {
	Requests, Fills, Impressions, Clicks, Errors int64
	ByEnv                                        map[string]int64
	ByBucket                                     map[string]int64
}

// Run sends opt.Requests ad requests drawn like loadgen's mix.
func Run(opt Options) (*Result, error) {
	uris, err := loadgen.Mix(opt.Inventory, "/v1/ad", opt.Requests, 0, opt.Seed) // GETs only
	if err != nil {
		return nil, err
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	cl := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{MaxIdleConnsPerHost: opt.Workers}}
	res := &Result{ByEnv: map[string]int64{}, ByBucket: map[string]int64{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	fire := func(u string) bool {
		resp, err := cl.Get(u)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode < 400
	}
	for w := 0; w < opt.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(opt.Seed, uint64(w)))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(uris) {
					return
				}
				resp, err := cl.Get(opt.Target + uris[i].URI)
				atomic.AddInt64(&res.Requests, 1)
				if err != nil {
					atomic.AddInt64(&res.Errors, 1)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
				env := resp.Header.Get("X-Adedge-Env")
				var ad struct {
					Imp    string `json:"impression_url"`
					Click  string `json:"click_url"`
					Bucket struct{ Test, Variant string }
				}
				bucket := ""
				if resp.StatusCode == 200 && json.Unmarshal(body, &ad) == nil {
					atomic.AddInt64(&res.Fills, 1)
					bucket = ad.Bucket.Test + "/" + ad.Bucket.Variant
					if rng.Float64() < opt.ImpressionP && fire(ad.Imp) {
						atomic.AddInt64(&res.Impressions, 1)
						if rng.Float64() < opt.ClickP && fire(ad.Click) {
							atomic.AddInt64(&res.Clicks, 1)
						}
					}
				} else if resp.StatusCode >= 500 {
					atomic.AddInt64(&res.Errors, 1)
				}
				mu.Lock()
				res.ByEnv[env]++
				if bucket != "" {
					res.ByBucket[bucket]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return res, nil
}

// String summarises a traffic run.
func (r *Result) String() string {
	return fmt.Sprintf("%d requests, %d fills, %d impressions, %d clicks, %d errors; answered by env %v; fills by bucket %v",
		r.Requests, r.Fills, r.Impressions, r.Clicks, r.Errors, r.ByEnv, r.ByBucket)
}
