package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// The sequential (always-valid) view: the mixture sequential probability
// ratio test (mSPRT) of Johari, Pekelis and Walsh, "Always Valid
// Inference: Continuous Monitoring of A/B Tests", Operations Research
// 70(3), 2022 (and Johari, Koomen, Pekelis, Walsh, "Peeking at A/B Tests",
// KDD 2017), for an asymptotically normal difference estimate with a
// normal mixing distribution N(θ0, τ²). Analysts may look every day and
// stop when they like: the probability that the p-value ever drops below
// α under the null is at most α, which a fixed-horizon p-value promises
// only at one pre-set look.

// MSPRTLambda is the mixture likelihood ratio of "the difference is θ0"
// after an estimate diff with variance v, mixing variance tau2:
//
//	Λ = sqrt(v / (v + τ²)) · exp(τ² (diff − θ0)² / (2 v (v + τ²)))
//
// (Johari et al. 2022, eq. 11 with V_n = v). With n pairs of N(·, σ²)
// observations, v = 2σ²/n and this is mixtureSPRT's normal case.
func MSPRTLambda(diff, v, tau2, theta0 float64) float64 {
	if !(v > 0) || !(tau2 > 0) || math.IsNaN(diff) {
		return math.NaN()
	}
	d := diff - theta0
	return math.Sqrt(v/(v+tau2)) * math.Exp(tau2*d*d/(2*v*(v+tau2)))
}

// AlwaysValidP is min(1, 1/Λ) at one look. Over a sequence of looks the
// always-valid p-value is the running minimum of these (RunningMinP).
func AlwaysValidP(diff, v, tau2 float64) float64 {
	l := MSPRTLambda(diff, v, tau2, 0)
	if math.IsNaN(l) {
		return math.NaN()
	}
	return math.Min(1, 1/l)
}

// ConfidenceSequence is the set of θ0 the mSPRT does not reject at level
// alpha after this look: diff ± sqrt(v(v+τ²)/τ² · (ln((v+τ²)/v) − 2 ln α)).
// Intersected over looks (each bound kept at its tightest) it covers the
// true difference at every look at once with probability 1−α.
func ConfidenceSequence(diff, v, tau2, alpha float64) (lo, hi float64) {
	if !(v > 0) || !(tau2 > 0) || math.IsNaN(diff) {
		return math.NaN(), math.NaN()
	}
	h := math.Sqrt(v * (v + tau2) / tau2 * (math.Log((v+tau2)/v) - 2*math.Log(alpha)))
	return diff - h, diff + h
}

// OptimalTau2 is the mixing variance Johari et al. (2017, §4.3) suggest
// for a test expected to stop around n observations per arm with
// per-observation variance sigma2 (mixtureSPRT's calcTau, unrounded):
// τ² = σ² Φ(−b) / (φ(b)/b − Φ(−b)), b = 2 ln(1/α) / sqrt(n σ²).
func OptimalTau2(alpha, sigma2, n float64) float64 {
	b := 2 * math.Log(1/alpha) / math.Sqrt(n*sigma2)
	std := distuv.UnitNormal
	return sigma2 * std.CDF(-b) / (std.Prob(b)/b - std.CDF(-b))
}

// SeqLift is the sequential view of one comparison.
type SeqLift struct {
	P             float64 // always-valid p-value (running minimum over the looks)
	AbsLo, AbsHi  float64 // confidence sequence of the absolute lift (intersection over the looks)
	RelLo, RelHi  float64 // the same for the relative lift (delta-method variance)
	Tau2, RelTau2 float64 // mixing variances used (absolute and relative scale)
	Looks         int
	Abs, Rel      float64 // the last look's point estimates
}

// Sequential folds looks (cumulative estimates, oldest first) into the
// always-valid view. tauRel is the mixing standard deviation as a
// fraction of the control value (the size of relative effects the test
// is tuned to detect: 0.1 = "about 10%"); alpha the level of the
// confidence sequence.
func Sequential(looks []Lift, controls []float64, tauRel, alpha float64) SeqLift {
	nan := math.NaN()
	s := SeqLift{P: 1, AbsLo: math.Inf(-1), AbsHi: math.Inf(1), RelLo: math.Inf(-1), RelHi: math.Inf(1), Abs: nan, Rel: nan, Tau2: nan, RelTau2: nan}
	for i, l := range looks {
		c := controls[i]
		if math.IsNaN(l.Abs) || math.IsNaN(l.Var) || !(l.Var > 0) || c == 0 || math.IsNaN(c) {
			continue
		}
		s.Looks++
		s.Abs, s.Rel = l.Abs, l.Rel
		s.Tau2 = tauRel * tauRel * c * c
		s.RelTau2 = tauRel * tauRel
		s.P = math.Min(s.P, AlwaysValidP(l.Abs, l.Var, s.Tau2))
		lo, hi := ConfidenceSequence(l.Abs, l.Var, s.Tau2, alpha)
		s.AbsLo, s.AbsHi = math.Max(s.AbsLo, lo), math.Min(s.AbsHi, hi)
		if l.RelVar > 0 {
			lo, hi = ConfidenceSequence(l.Rel, l.RelVar, s.RelTau2, alpha)
			s.RelLo, s.RelHi = math.Max(s.RelLo, lo), math.Min(s.RelHi, hi)
		}
	}
	if s.Looks == 0 {
		s.P, s.AbsLo, s.AbsHi, s.RelLo, s.RelHi = nan, nan, nan, nan, nan
	}
	if math.IsInf(s.RelLo, -1) {
		s.RelLo, s.RelHi = nan, nan
	}
	return s
}
