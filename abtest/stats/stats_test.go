package stats

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.6g, want %.6g (±%g)", what, got, want, tol)
	}
}

// Critical values from any printed table (e.g. NIST/SEMATECH e-Handbook of
// Statistical Methods, §1.3.6.7.2 and §1.3.6.7.4).
func TestTablesOfCriticalValues(t *testing.T) {
	near(t, "t(0.975, 10)", StudentTQuantile(0.975, 10), 2.228, 0.001)
	near(t, "t(0.975, 30)", StudentTQuantile(0.975, 30), 2.042, 0.001)
	near(t, "t(0.975, 1e6)", StudentTQuantile(0.975, 1e6), 1.960, 0.001)
	near(t, "chi2 SF(3.841, 1)", ChiSquareSF(3.841, 1), 0.05, 0.0005)
	near(t, "chi2 SF(7.815, 3)", ChiSquareSF(7.815, 3), 0.05, 0.0005)
	near(t, "chi2 SF(23.209, 10)", ChiSquareSF(23.209, 10), 0.01, 0.0002)
	near(t, "Phi(1.96)", NormalCDF(1.96), 0.9750, 0.0001)
}

// Mendel's dihybrid cross (round/yellow peas), the standard worked example
// of Pearson's goodness-of-fit test: 315, 108, 101, 32 against 9:3:3:1
// gives chi2 = 0.470 with 3 df, p = 0.925 (e.g. Zar, Biostatistical
// Analysis, 5th ed., Example 22.3; Rice, Mathematical Statistics and Data
// Analysis, §9.5).
func TestChiSquareMendel(t *testing.T) {
	stat, df, p := ChiSquareGOF([]float64{315, 108, 101, 32}, []float64{9, 3, 3, 1})
	near(t, "chi2", stat, 0.470, 0.001)
	if df != 3 {
		t.Errorf("df = %d", df)
	}
	near(t, "p", p, 0.925, 0.001)
}

// Welch's t-test, example 1 of the Wikipedia article "Welch's t-test"
// (samples A1, A2 of 15 each; means 20.82 and 22.99, variances 7.9 and
// 3.8): t = -2.46, df = 24.9, p = 0.021. The article's df comes from the
// rounded variances; the unrounded data give 24.99, hence the tolerance.
func TestWelchWorkedExample(t *testing.T) {
	a1 := []float64{27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4}
	a2 := []float64{27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4}
	m1, v1 := meanVar(a1)
	m2, v2 := meanVar(a2)
	tt, df := WelchT(m1, v1, len(a1), m2, v2, len(a2))
	near(t, "t", tt, -2.46, 0.005)
	near(t, "df", df, 24.9, 0.1)
	near(t, "p", StudentTTwoSided(tt, df), 0.021, 0.001)

	// The same through Compare: per-cluster values with y=1 make Ratio the
	// sample mean and its variance s²/n.
	ones := make([]float64, len(a1))
	for i := range ones {
		ones[i] = 1
	}
	l := Compare(Ratio(a1, ones), Ratio(a2, ones))
	near(t, "Compare.Abs", l.Abs, m1-m2, 1e-9)
	near(t, "Compare.DF", l.DF, 24.9, 0.1)
	near(t, "Compare.P", l.P, 0.021, 0.001)
	if !(l.AbsLo < l.Abs && l.Abs < l.AbsHi && l.AbsHi < 0) {
		t.Errorf("CI [%g, %g] around %g should exclude 0 (p < 0.05)", l.AbsLo, l.AbsHi, l.Abs)
	}
	// Half-width = t(0.975, 24.9) * se.
	se := math.Sqrt(v1/15 + v2/15)
	near(t, "CI half-width", (l.AbsHi-l.AbsLo)/2, StudentTQuantile(0.975, l.DF)*se, 1e-9)
}

func meanVar(x []float64) (float64, float64) {
	var s float64
	for _, v := range x {
		s += v
	}
	m := s / float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return m, ss / float64(len(x)-1)
}

// The ratio estimator's variance on a small hand-worked example:
// x = (2, 4, 3, 7), y = (10, 10, 20, 20): R = 16/60 = 0.26667, ȳ = 15,
// residuals x - R·y = (-0.6667, 1.3333, -2.3333, 1.6667),
// Σ² = 0.4444 + 1.7778 + 5.4444 + 2.7778 = 10.4444,
// v = 10.4444 / (4·3·225) = 0.0038683.
func TestRatioVariance(t *testing.T) {
	r := Ratio([]float64{2, 4, 3, 7}, []float64{10, 10, 20, 20})
	near(t, "R", r.Value, 16.0/60, 1e-12)
	near(t, "v(R)", r.Variance, 10.444444444/(4*3*225), 1e-9)
	if r.Clusters != 4 {
		t.Errorf("clusters %d", r.Clusters)
	}
	// Empty clusters are left out; one cluster has no variance.
	r = Ratio([]float64{0, 5}, []float64{0, 10})
	if r.Value != 0.5 || !math.IsNaN(r.Variance) {
		t.Errorf("single cluster: %+v", r)
	}
}

func TestCompareNoDifference(t *testing.T) {
	a := RatioEstimate{Value: 0.1, Variance: 1e-6, Clusters: 64}
	l := Compare(a, a)
	if l.Abs != 0 || math.Abs(l.P-1) > 1e-9 || l.AbsLo >= 0 || l.AbsHi <= 0 {
		t.Errorf("identical estimates: %+v", l)
	}
	b := RatioEstimate{Value: 0.11, Variance: 1e-6, Clusters: 64}
	l = Compare(b, a)
	near(t, "rel", l.Rel, 0.1, 1e-12)
	if l.P > 1e-6 {
		t.Errorf("a 7-sigma difference has p=%g", l.P)
	}
}

func TestChiSquareGOFExtraNil(t *testing.T) {
	a, _, p1 := ChiSquareGOF([]float64{315, 108, 101, 32}, []float64{9, 3, 3, 1})
	b, _, p2 := ChiSquareGOFExtra([]float64{315, 108, 101, 32}, []float64{9, 3, 3, 1}, []float64{0, 0, 0, 0})
	if a != b || p1 != p2 || math.IsNaN(p1) {
		t.Fatalf("%g %g / %g %g", a, b, p1, p2)
	}
}
