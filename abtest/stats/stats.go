// Package stats is the statistics of the A/B report: distribution
// functions, Pearson's chi-square, the ratio-metric (delta method) variance
// and Welch's t. Everything here is plain float64 maths with the textbook
// references cited beside each test; it knows nothing of adedge.
package stats

import (
	"math"
)

// NormalCDF is the standard normal distribution function.
func NormalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// lgamma is log|Γ(x)|.
func lgamma(x float64) float64 { v, _ := math.Lgamma(x); return v }

// RegIncBeta is the regularised incomplete beta function I_x(a, b), by the
// continued fraction of Numerical Recipes (3rd ed., §6.4, betacf).
func RegIncBeta(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	bt := math.Exp(lgamma(a+b) - lgamma(a) - lgamma(b) + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return bt * betacf(a, b, x) / a
	}
	return 1 - bt*betacf(b, a, 1-x)/b
}

func betacf(a, b, x float64) float64 {
	const eps, fpmin = 1e-15, 1e-300
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < fpmin {
		d = fpmin
	}
	d = 1 / d
	h := d
	for m := 1; m <= 10000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = 1 + aa/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// StudentTTwoSided is P(|T| >= |t|) for Student's t with df degrees of
// freedom (df may be fractional, as Welch's is).
func StudentTTwoSided(t, df float64) float64 {
	if math.IsNaN(t) || df <= 0 {
		return math.NaN()
	}
	if math.IsInf(t, 0) {
		return 0
	}
	return RegIncBeta(df/2, 0.5, df/(df+t*t))
}

// StudentTQuantile is the q quantile (0.5 < q < 1) of Student's t, found by
// bisection on the distribution function.
func StudentTQuantile(q, df float64) float64 {
	lo, hi := 0.0, 1e3
	want := 2 * (1 - q) // two-sided tail
	for i := 0; i < 200; i++ {
		mid := (lo + hi) / 2
		if StudentTTwoSided(mid, df) > want {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// RegGammaQ is the regularised upper incomplete gamma Q(a, x), by series
// or continued fraction (Numerical Recipes §6.2, gser/gcf).
func RegGammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for n := 0; n < 10000; n++ {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lgamma(a))
	}
	const fpmin = 1e-300
	b := x + 1 - a
	c := 1 / fpmin
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < fpmin {
			d = fpmin
		}
		c = b + an/c
		if math.Abs(c) < fpmin {
			c = fpmin
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lgamma(a)) * h
}

// ChiSquareSF is P(X >= x) for a chi-square with df degrees of freedom.
func ChiSquareSF(x float64, df int) float64 {
	if df <= 0 {
		return math.NaN()
	}
	return RegGammaQ(float64(df)/2, x/2)
}

// ChiSquareGOF is Pearson's goodness-of-fit test of observed counts against
// expected proportions (normalised here). It returns the statistic, the
// degrees of freedom (categories with a positive expectation minus one) and
// the p-value.
func ChiSquareGOF(observed []float64, expected []float64) (stat float64, df int, p float64) {
	return ChiSquareGOFExtra(observed, expected, nil)
}

// ChiSquareGOFExtra is ChiSquareGOF with each category's variance widened
// by extraVar[i] (Pearson's term d²/E is d² over the multinomial variance;
// a count that is itself estimated adds its estimation variance to it).
func ChiSquareGOFExtra(observed, expected, extraVar []float64) (stat float64, df int, p float64) {
	var n, w float64
	for i := range observed {
		n += observed[i]
		w += expected[i]
	}
	if n <= 0 || w <= 0 {
		return 0, 0, math.NaN()
	}
	k := 0
	for i := range observed {
		e := n * expected[i] / w
		if e <= 0 {
			if observed[i] > 0 {
				return math.Inf(1), max(k, 1), 0
			}
			continue
		}
		k++
		d := observed[i] - e
		v := e
		if extraVar != nil {
			v += extraVar[i]
		}
		stat += d * d / v
	}
	df = k - 1
	if df < 1 {
		return stat, df, math.NaN()
	}
	return stat, df, ChiSquareSF(stat, df)
}

// RatioEstimate is a ratio metric (sum of numerators over sum of
// denominators) with the variance of the ratio estimator over clusters.
type RatioEstimate struct {
	Value    float64 // Σx / Σy
	Variance float64 // of Value
	Clusters int     // clusters with data (the degrees of freedom + 1)
}

// Ratio estimates R = Σx/Σy from per-cluster totals (user shards: each
// shard's users are a random sample of the bucket's users, so shards are
// independent clusters and the variance is at user level, not per request).
// The variance is the linearised ratio-estimator variance of Cochran,
// Sampling Techniques (3rd ed., 1977), eq. 6.13 without the finite
// population correction:
//
//	v(R) = Σ (x_k − R·y_k)² / (n (n−1) ȳ²)
func Ratio(x, y []float64) RatioEstimate {
	var sx, sy float64
	n := 0
	for k := range x {
		if y[k] == 0 && x[k] == 0 {
			continue
		}
		sx += x[k]
		sy += y[k]
		n++
	}
	if sy == 0 {
		return RatioEstimate{Value: math.NaN(), Variance: math.NaN(), Clusters: n}
	}
	r := sx / sy
	if n < 2 {
		return RatioEstimate{Value: r, Variance: math.NaN(), Clusters: n}
	}
	ybar := sy / float64(n)
	var ss float64
	for k := range x {
		if y[k] == 0 && x[k] == 0 {
			continue
		}
		d := x[k] - r*y[k]
		ss += d * d
	}
	return RatioEstimate{Value: r, Variance: ss / (float64(n) * float64(n-1) * ybar * ybar), Clusters: n}
}

// Lift compares a variant with control.
type Lift struct {
	Abs, AbsLo, AbsHi float64 // variant − control, with its 95% CI
	Rel, RelLo, RelHi float64 // (variant − control) / control, with its 95% CI
	P                 float64 // two-sided p-value of "no difference"
	DF                float64 // Welch–Satterthwaite degrees of freedom
	Var, RelVar       float64 // variances of Abs and Rel (the sequential view's input)
}

// Compare is Welch's unequal-variance t-test on two estimates (Welch 1947;
// Satterthwaite 1946 for the degrees of freedom), with the relative lift's
// interval by the delta method (variance of a ratio of independent
// estimates: Var(t/c) ≈ Var(t)/c² + t²·Var(c)/c⁴).
func Compare(variant, control RatioEstimate) Lift {
	nan := math.NaN()
	l := Lift{Abs: variant.Value - control.Value, AbsLo: nan, AbsHi: nan, Rel: nan, RelLo: nan, RelHi: nan, P: nan, DF: nan, Var: nan, RelVar: nan}
	if control.Value != 0 {
		l.Rel = l.Abs / control.Value
	}
	vt, vc := variant.Variance, control.Variance
	se2 := vt + vc
	if math.IsNaN(se2) || variant.Clusters < 2 || control.Clusters < 2 {
		return l
	}
	nt, nc := float64(variant.Clusters-1), float64(control.Clusters-1)
	l.Var = se2
	if se2 == 0 {
		l.AbsLo, l.AbsHi = l.Abs, l.Abs
		l.DF = nt + nc
		if l.Abs == 0 {
			l.P = 1
		} else {
			l.P = 0
		}
	} else {
		l.DF = se2 * se2 / (vt*vt/nt + vc*vc/nc)
		se := math.Sqrt(se2)
		q := StudentTQuantile(0.975, l.DF)
		l.AbsLo, l.AbsHi = l.Abs-q*se, l.Abs+q*se
		l.P = StudentTTwoSided(l.Abs/se, l.DF)
	}
	if c := control.Value; c != 0 {
		rv := vt/(c*c) + variant.Value*variant.Value*vc/(c*c*c*c)
		l.RelVar = rv
		q := StudentTQuantile(0.975, l.DF)
		l.RelLo, l.RelHi = l.Rel-q*math.Sqrt(rv), l.Rel+q*math.Sqrt(rv)
	}
	return l
}

// WelchT is Welch's t statistic and degrees of freedom for two samples
// given their means, sample variances and sizes.
func WelchT(m1, v1 float64, n1 int, m2, v2 float64, n2 int) (t, df float64) {
	a, b := v1/float64(n1), v2/float64(n2)
	t = (m1 - m2) / math.Sqrt(a+b)
	df = (a + b) * (a + b) / (a*a/float64(n1-1) + b*b/float64(n2-1))
	return t, df
}
