package gen

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Stream ids: each file (and the shared world and campaign plan) draws from
// its own PCG stream, so files can be written concurrently and the bytes do
// not depend on scheduling. Never renumber: that changes every output.
const (
	streamWorld uint64 = iota + 1
	streamPlan
	streamCampaigns
	streamCreatives
	streamPlacements
	streamPredictions
	streamProfiles
	streamExperiments
)

// splitmix64 is a good 64-bit mixer, used to turn (seed, stream) into PCG
// state words that share no structure.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// newStream returns the deterministic generator for one stream of a seed.
func newStream(seed, stream uint64) *rand.Rand {
	a := splitmix64(seed ^ splitmix64(stream))
	b := splitmix64(a ^ 0x5851f42d4c957f2d)
	return rand.New(rand.NewPCG(a, b))
}

// weighted samples indexes in proportion to fixed weights.
type weighted struct {
	cum   []float64
	total float64
}

func newWeighted(w []float64) weighted {
	c := make([]float64, len(w))
	t := 0.0
	for i, x := range w {
		t += x
		c[i] = t
	}
	return weighted{cum: c, total: t}
}

func (w weighted) pick(r *rand.Rand) int {
	u := r.Float64() * w.total
	i := sort.SearchFloat64s(w.cum, u)
	// SearchFloat64s finds the first cum >= u; u == cum[i] must go right so
	// zero-weight entries are never picked.
	for i < len(w.cum)-1 && w.cum[i] <= u {
		i++
	}
	return i
}

// truncLogNormal draws a log-normal value with the given median and sigma,
// redrawing (not clamping, which would pile mass on the bounds) outside
// [lo, hi].
func truncLogNormal(r *rand.Rand, median, sigma, lo, hi float64) float64 {
	mu := math.Log(median)
	for range 16 {
		v := math.Exp(mu + sigma*r.NormFloat64())
		if v >= lo && v <= hi {
			return v
		}
	}
	return min(max(median, lo), hi)
}

// roundMicros converts v (currency units) to micros rounded to a multiple
// of step, never below one step.
func roundMicros(v float64, step int64) int64 {
	m := int64(math.Round(v*1e6/float64(step))) * step
	if m < step {
		m = step
	}
	return m
}

// newZipf returns a Zipf sampler over n >= 1 items (index 0 most popular).
func newZipf(r *rand.Rand, s, v float64, n int) *rand.Zipf {
	if n < 1 {
		n = 1
	}
	return rand.NewZipf(r, s, v, uint64(n-1))
}
