// Package promtext reads the Prometheus text exposition format well enough
// for the project's drills and benchmark suite: scrape /metrics, sum a
// series over label matches, and estimate a histogram quantile between two
// scrapes. (The official parser, prometheus/common/expfmt, wants the
// protobuf model types and more code than this needs; these callers only
// read what the edge itself exports.)
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Samples maps a series ("name{labels}" as exposed) to its value.
type Samples map[string]float64

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)`)

// Parse reads the text format, ignoring comments and malformed lines.
func Parse(r io.Reader) (Samples, error) {
	m := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sm := sampleRE.FindStringSubmatch(sc.Text()); sm != nil {
			if v, err := strconv.ParseFloat(sm[2], 64); err == nil {
				m[sm[1]] = v
			}
		}
	}
	return m, sc.Err()
}

var client = &http.Client{Timeout: 5 * time.Second}

// Scrape GETs url and parses it.
func Scrape(url string) (Samples, error) {
	res, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("promtext: %s: HTTP %d", url, res.StatusCode)
	}
	return Parse(res.Body)
}

// Sum adds every series of name whose labels contain all of match (each a
// literal such as `result="hit"`).
func (m Samples) Sum(name string, match ...string) float64 {
	var s float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, x := range match {
			if !strings.Contains(k, x) {
				ok = false
				break
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// Delta is after.Sum - before.Sum.
func Delta(before, after Samples, name string, match ...string) float64 {
	return after.Sum(name, match...) - before.Sum(name, match...)
}

// Quantile returns the upper bound of the bucket of histogram name that
// holds quantile q of the observations made between two scrapes, and the
// number of observations. The result is "at most": buckets are coarse.
// +Inf comes back as math.Inf(1); no observations as (0, 0).
func Quantile(before, after Samples, name string, q float64) (upper float64, count float64) {
	_, upper, count = QuantileBucket(before, after, name, q)
	return upper, count
}

// QuantileBucket is Quantile with the bucket's lower bound too: quantile
// q lies in (lower, upper]. A verdict that must not fail on the bucket's
// coarseness fails only when lower is already over its bound.
func QuantileBucket(before, after Samples, name string, q float64) (lower, upper, count float64) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + "_bucket{"
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		rest := k[i+4:]
		end := strings.IndexByte(rest, '"')
		if end < 0 {
			continue
		}
		le := rest[:end]
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{f, v - before[k]})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0, 0, 0
	}
	total := bs[len(bs)-1].n
	for i, b := range bs {
		if b.n >= q*total {
			if i > 0 {
				lower = bs[i-1].le
			}
			return lower, b.le, total
		}
	}
	return bs[len(bs)-1].le, math.Inf(1), total
}
