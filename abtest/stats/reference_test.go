package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// R's stats::p.adjust on two vectors, as printed by R 4.5.2 (digits=17)
// and recorded in sgcx-org/pystatistics, tests/hypothesis/test_p_adjust.py.
func TestHolmBHMatchRPAdjust(t *testing.T) {
	cases := []struct{ p, holm, bh []float64 }{
		{[]float64{0.001, 0.01, 0.05, 0.1, 0.5, 0.9},
			[]float64{0.006, 0.05, 0.2, 0.3, 1.0, 1.0},
			[]float64{0.006, 0.03, 0.1, 0.15, 0.6, 0.9}},
		{[]float64{0.01, 0.04, 0.03, 0.005},
			[]float64{0.03, 0.06, 0.06, 0.02},
			[]float64{0.02, 0.04, 0.04, 0.02}},
	}
	for _, c := range cases {
		h, b := Holm(c.p), BH(c.p)
		for i := range c.p {
			near(t, "holm", h[i], c.holm[i], 1e-12)
			near(t, "BH", b[i], c.bh[i], 1e-12)
		}
	}
	// NaN entries stay NaN and do not count in n (R drops NAs).
	h := Holm([]float64{0.01, math.NaN(), 0.04})
	if !math.IsNaN(h[1]) || math.Abs(h[0]-0.02) > 1e-12 || math.Abs(h[2]-0.04) > 1e-12 {
		t.Errorf("Holm with NaN: %v", h)
	}
}

// Benjamini and Hochberg's own example (J. R. Statist. Soc. B 57, 1995,
// §4.2: fifteen p-values from Neuhaus et al.'s thrombolysis study): at
// 0.05 the Bonferroni-type procedures reject three hypotheses and the
// FDR procedure four.
func TestBHPaperExample(t *testing.T) {
	p := []float64{0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000}
	count := func(q []float64) (n int) {
		for _, v := range q {
			if v <= 0.05 {
				n++
			}
		}
		return n
	}
	if n := count(Holm(p)); n != 3 {
		t.Errorf("Holm rejects %d, the paper 3", n)
	}
	if n := count(BH(p)); n != 4 {
		t.Errorf("BH rejects %d, the paper 4", n)
	}
}

// mixtureSPRT (erik-stenberg/mixtureSPRT, R/mSPRT.default.R, the
// reference R implementation Johari et al.'s method is usually checked
// against), normal case, transcribed: after i pairs with differences z,
//
//	Λ_i = sqrt(2σ²/(2σ² + iτ²)) · exp(i²τ²(mean(z[1:i]) − θ)² / (4σ²(2σ² + iτ²)))
//
// MSPRTLambda takes the difference and its variance (2σ²/i) instead.
func TestMSPRTMatchesMixtureSPRT(t *testing.T) {
	x := []float64{0.3, 1.2, -0.4, 0.9, 1.6, 0.2, 1.1, 0.8, 1.9, 0.5, 1.4, 0.7}
	y := []float64{0.1, -0.2, 0.4, 0.0, -0.5, 0.3, 0.2, -0.1, 0.6, -0.3, 0.1, 0.0}
	const sigma, tau, theta = 1.0, 0.97, 0.0 // tau = calcTau(0.05, 1, 100), the package README's
	var sum float64
	for i := range x {
		sum += x[i] - y[i]
		n := float64(i + 1)
		zbar := sum / n
		want := math.Sqrt(2*sigma*sigma/(2*sigma*sigma+n*tau*tau)) *
			math.Exp(n*n*tau*tau*(zbar-theta)*(zbar-theta)/(4*sigma*sigma*(2*sigma*sigma+n*tau*tau)))
		got := MSPRTLambda(zbar, 2*sigma*sigma/n, tau*tau, theta)
		if math.Abs(got-want) > 1e-12*want {
			t.Fatalf("look %d: Λ %g, mixtureSPRT %g", i+1, got, want)
		}
		// p < α exactly when θ0 = 0 is outside the confidence sequence.
		lo, hi := ConfidenceSequence(zbar, 2*sigma*sigma/n, tau*tau, 0.05)
		if (AlwaysValidP(zbar, 2*sigma*sigma/n, tau*tau) < 0.05) != (lo > 0 || hi < 0) {
			t.Fatalf("look %d: p and confidence sequence disagree", i+1)
		}
	}
	// calcTau(alpha=0.05, sigma=1, truncation=100) rounds to 0.97 in R.
	if v := math.Round(OptimalTau2(0.05, 1, 100)*100) / 100; v != 0.97 {
		t.Errorf("calcTau(0.05, 1, 100) = %g, mixtureSPRT 0.97", v)
	}
}

// The point of the sequential view: an A/A test looked at 30 times
// (daily) "finds" an effect at the 5% level in far more than 5% of runs
// with fixed-horizon p-values, and in at most 5% with the always-valid
// ones (Johari et al. 2022, Theorem 1). 2000 deterministic simulations.
func TestPeekingAAFalsePositives(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const sims, looks, perLook = 2000, 30, 50
	var fixedFP, seqFP int
	for s := 0; s < sims; s++ {
		var sa, sb float64
		fixedHit, seqHit := false, false
		minP := 1.0
		for k := 1; k <= looks; k++ {
			for j := 0; j < perLook; j++ {
				sa += rng.NormFloat64()
				sb += rng.NormFloat64()
			}
			n := float64(k * perLook)
			diff := (sa - sb) / n
			v := 2 / n
			if 2*(1-NormalCDF(math.Abs(diff)/math.Sqrt(v))) < 0.05 {
				fixedHit = true
			}
			minP = math.Min(minP, AlwaysValidP(diff, v, OptimalTau2(0.05, 1, looks*perLook)))
			if minP < 0.05 {
				seqHit = true
			}
		}
		if fixedHit {
			fixedFP++
		}
		if seqHit {
			seqFP++
		}
	}
	fixed, seq := float64(fixedFP)/sims, float64(seqFP)/sims
	t.Logf("A/A, 30 looks: fixed-horizon false positives %.3f, always-valid %.3f", fixed, seq)
	if fixed < 0.15 {
		t.Errorf("fixed-horizon peeking false positive rate %.3f: expected the well-known inflation (> 0.15)", fixed)
	}
	if seq > 0.05+0.015 {
		t.Errorf("always-valid false positive rate %.3f > 0.05", seq)
	}
}

// Sequential folds looks: the p-value never rises and the confidence
// sequence only narrows.
func TestSequentialRunningMin(t *testing.T) {
	looks := []Lift{
		{Abs: 0.02, Rel: 0.2, Var: 1e-4, RelVar: 1e-2},
		{Abs: 0.001, Rel: 0.01, Var: 5e-5, RelVar: 5e-3},
	}
	s := Sequential(looks, []float64{0.1, 0.1}, 0.1, 0.05)
	p0 := AlwaysValidP(0.02, 1e-4, 1e-4)
	p1 := AlwaysValidP(0.001, 5e-5, 1e-4)
	if math.Abs(s.P-math.Min(p0, p1)) > 1e-12 || s.Looks != 2 || s.Abs != 0.001 {
		t.Errorf("%+v (p0 %g p1 %g)", s, p0, p1)
	}
	lo0, hi0 := ConfidenceSequence(0.02, 1e-4, 1e-4, 0.05)
	lo1, hi1 := ConfidenceSequence(0.001, 5e-5, 1e-4, 0.05)
	if math.Abs(s.AbsLo-math.Max(lo0, lo1)) > 1e-12 || math.Abs(s.AbsHi-math.Min(hi0, hi1)) > 1e-12 {
		t.Errorf("CS [%g, %g]", s.AbsLo, s.AbsHi)
	}
	if e := Sequential(nil, nil, 0.1, 0.05); !math.IsNaN(e.P) {
		t.Errorf("no looks: %+v", e)
	}
}

// The analysis-of-covariance example of Montgomery, Design and Analysis
// of Experiments (ch. 15, "Analysis of Covariance": breaking strength y
// of a fibre against its diameter x on three machines): β̂ = Exy/Exx =
// 0.954 and adjusted treatment means 40.38, 41.42, 38.80. CUPED with unit
// denominators is this adjustment.
func TestCUPEDMontgomeryANCOVA(t *testing.T) {
	y := [][]float64{{36, 41, 39, 42, 49}, {40, 48, 39, 45, 44}, {35, 37, 42, 34, 32}}
	x := [][]float64{{20, 25, 24, 25, 32}, {22, 28, 22, 30, 28}, {21, 23, 26, 21, 15}}
	var groups [][]CUPEDCluster
	for g := range y {
		var cl []CUPEDCluster
		for i := range y[g] {
			cl = append(cl, CUPEDCluster{X: y[g][i], Y: 1, PX: x[g][i], PY: 1})
		}
		groups = append(groups, cl)
	}
	res, ok := CUPED(groups)
	if !ok {
		t.Fatal("not applied")
	}
	near(t, "theta", res.Theta, 0.954, 0.0005)
	for g, want := range []float64{40.38, 41.42, 38.80} {
		near(t, "adjusted mean", res.Groups[g].Value, want, 0.005)
	}
	if !(res.VarianceRatio < 0.5) {
		t.Errorf("diameter explains most of strength's variance; variance ratio %g", res.VarianceRatio)
	}
}

// On simulated shards whose pre-period predicts the test period, CUPED
// keeps the estimate unbiased (its intervals cover the true lift) and
// narrows them.
func TestCUPEDNarrowsAndCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const trueLift = 0.02
	covered, narrower := 0, 0
	const sims = 200
	for s := 0; s < sims; s++ {
		var groups [][]CUPEDCluster
		for g := 0; g < 2; g++ {
			var cl []CUPEDCluster
			for k := 0; k < 64; k++ {
				users := 1000 + rng.Float64()*200
				taste := 1 + 0.3*rng.NormFloat64() // a shard's users' spend level, both periods
				pre := users * 0.1 * taste * (1 + 0.05*rng.NormFloat64())
				lift := 1.0
				if g == 1 {
					lift += trueLift
				}
				cur := users * 0.1 * taste * lift * (1 + 0.05*rng.NormFloat64())
				cl = append(cl, CUPEDCluster{X: cur, Y: users, PX: pre, PY: users})
			}
			groups = append(groups, cl)
		}
		res, ok := CUPED(groups)
		if !ok {
			t.Fatal("not applied")
		}
		adj := Compare(res.Groups[1], res.Groups[0])
		x := func(g int) (xs, ys []float64) {
			for _, c := range groups[g] {
				xs, ys = append(xs, c.X), append(ys, c.Y)
			}
			return
		}
		x0, y0 := x(0)
		x1, y1 := x(1)
		raw := Compare(Ratio(x1, y1), Ratio(x0, y0))
		if adj.AbsLo <= 0.1*trueLift && 0.1*trueLift <= adj.AbsHi {
			covered++
		}
		if adj.AbsHi-adj.AbsLo < raw.AbsHi-raw.AbsLo {
			narrower++
		}
	}
	if covered < sims*90/100 {
		t.Errorf("CUPED 95%% intervals covered the true lift in %d of %d", covered, sims)
	}
	if narrower < sims*95/100 {
		t.Errorf("CUPED narrower in only %d of %d", narrower, sims)
	}
}

// The jackknife variance of a mean is exactly s²/n (Efron and Tibshirani
// 1993, §11.2): checked on the Welch example's first sample.
func TestJackknifeOfMean(t *testing.T) {
	a := []float64{27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4}
	present := make([]int, len(a))
	for i := range present {
		present[i] = i
	}
	e := Jackknife(present, func(skip int) float64 {
		var s float64
		n := 0
		for i, v := range a {
			if i != skip {
				s += v
				n++
			}
		}
		return s / float64(n)
	})
	m, v := meanVar(a)
	near(t, "mean", e.Value, m, 1e-12)
	near(t, "jackknife variance", e.Variance, v/float64(len(a)), 1e-12)
}
