package stats

import (
	"math"
	"slices"
)

// Multiple-testing corrections with R's p.adjust semantics (NaN entries
// are left NaN and do not count in n). A report compares several tests
// on several metrics: at five metrics and three tests a 5% false positive
// rate per comparison finds "a winner" in more than half of A/A reports.

// Holm is Holm's (1979) step-down adjustment: it controls the chance of
// any false positive (family-wise error) under any dependence.
func Holm(p []float64) []float64 {
	idx, n := order(p, false)
	out := nanLike(p)
	run := 0.0
	for i, k := range idx {
		v := math.Min(1, float64(n-i)*p[k])
		run = math.Max(run, v)
		out[k] = run
	}
	return out
}

// BH is the Benjamini–Hochberg (1995) step-up adjustment: it controls the
// expected share of false positives among the reported ones (FDR), for
// independent or positively dependent tests.
func BH(p []float64) []float64 {
	idx, n := order(p, true)
	out := nanLike(p)
	run := 1.0
	for i, k := range idx {
		rank := n - i // idx is descending
		v := math.Min(1, float64(n)/float64(rank)*p[k])
		run = math.Min(run, v)
		out[k] = run
	}
	return out
}

// order returns the indexes of the non-NaN p-values sorted (ascending, or
// descending) and how many there are.
func order(p []float64, desc bool) ([]int, int) {
	var idx []int
	for i, v := range p {
		if !math.IsNaN(v) {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if desc {
			a, b = b, a
		}
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	return idx, len(idx)
}

func nanLike(p []float64) []float64 {
	out := make([]float64, len(p))
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}
