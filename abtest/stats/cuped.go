package stats

import (
	"math"

	"gonum.org/v1/gonum/stat"
)

// CUPEDCluster is one cluster's (user shard's) totals of a ratio metric
// in the test window (X over Y) and in a pre-period (PX over PY) in which
// the same users were in the same group.
type CUPEDCluster struct{ X, Y, PX, PY float64 }

// CUPEDResult is CUPED's adjustment of several groups' ratio estimates.
type CUPEDResult struct {
	Groups []RatioEstimate // adjusted value and variance, per group
	Theta  float64         // the pooled within-group coefficient
	// VarianceRatio is the adjusted over the unadjusted variance, averaged
	// over groups (1 − ρ²: the share of variance CUPED left).
	VarianceRatio float64
}

// CUPED is Deng, Xu, Kohavi and Walker's "Improving the Sensitivity of
// Online Controlled Experiments by Utilizing Pre-Experiment Data" (WSDM
// 2013), on clusters and for ratio metrics through the delta method's
// linearisation (Deng, Knoblich, Lu, "Applying the Delta Method in Metric
// Analytics", KDD 2018): each cluster's influence value
// L = (x − R·y)/ȳ is regressed on its pre-period value P = (px − Rp·py)/pȳ
// with one θ pooled within groups; each group's estimate becomes
// R − θ(Rp − Rp_all) with variance Σ(L − θP)² / (n(n−1)). With every y = 1
// this is the analysis of covariance's adjusted treatment mean
// ȳ_g − β̂(x̄_g − x̄) with β̂ = Exy/Exx. ok is false when the pre-period
// has no variance to use.
func CUPED(groups [][]CUPEDCluster) (res CUPEDResult, ok bool) {
	type lin struct {
		l, p   []float64
		r, rp  float64
		ratio  RatioEstimate
		usable bool
	}
	ls := make([]lin, len(groups))
	var allPX, allPY float64
	var lAll, pAll []float64
	for g, cl := range groups {
		var sx, sy, spx, spy float64
		n := 0
		for _, c := range cl {
			if c.X == 0 && c.Y == 0 {
				continue
			}
			sx, sy, spx, spy = sx+c.X, sy+c.Y, spx+c.PX, spy+c.PY
			n++
		}
		allPX, allPY = allPX+spx, allPY+spy
		xs, ys := make([]float64, 0, n), make([]float64, 0, n)
		for _, c := range cl {
			xs, ys = append(xs, c.X), append(ys, c.Y)
		}
		ls[g].ratio = Ratio(xs, ys)
		if n < 2 || sy == 0 || spy == 0 {
			continue
		}
		r, rp := sx/sy, spx/spy
		ybar, pybar := sy/float64(n), spy/float64(n)
		for _, c := range cl {
			if c.X == 0 && c.Y == 0 {
				continue
			}
			ls[g].l = append(ls[g].l, (c.X-r*c.Y)/ybar)
			ls[g].p = append(ls[g].p, (c.PX-rp*c.PY)/pybar)
		}
		ls[g].r, ls[g].rp, ls[g].usable = r, rp, true
		lAll = append(lAll, ls[g].l...)
		pAll = append(pAll, ls[g].p...)
	}
	// Both have mean 0 within each group, so the pooled within-group
	// slope is the regression through the origin of all of them.
	var sxy, sxx float64
	for i := range lAll {
		sxy += lAll[i] * pAll[i]
		sxx += pAll[i] * pAll[i]
	}
	res.Groups = make([]RatioEstimate, len(groups))
	for g := range ls {
		res.Groups[g] = ls[g].ratio
	}
	if sxx == 0 || allPY == 0 || len(lAll) < 3 {
		return res, false
	}
	res.Theta = sxy / sxx
	rpAll := allPX / allPY
	var ratios float64
	used := 0
	for g := range ls {
		if !ls[g].usable {
			continue
		}
		n := float64(len(ls[g].l))
		adj := make([]float64, len(ls[g].l))
		for i := range adj {
			adj[i] = ls[g].l[i] - res.Theta*ls[g].p[i]
		}
		// Σ(L − θP)² / (n(n−1)); the mean of L − θP is 0, so this is
		// the sample variance over n.
		v := stat.Variance(adj, nil) / n
		res.Groups[g] = RatioEstimate{Value: ls[g].r - res.Theta*(ls[g].rp-rpAll), Variance: v, Clusters: len(adj)}
		if ls[g].ratio.Variance > 0 {
			ratios += v / ls[g].ratio.Variance
			used++
		}
	}
	res.VarianceRatio = math.NaN()
	if used > 0 {
		res.VarianceRatio = ratios / float64(used)
	}
	return res, true
}

// Jackknife estimates a statistic of clusters that is not a ratio of
// sums (a latency quantile of merged histograms) and its variance by
// deleting one cluster at a time (Quenouille–Tukey; Efron and Tibshirani,
// An Introduction to the Bootstrap, 1993, §11.2):
// v = (n−1)/n · Σ (θ_(k) − θ_(·))². f(-1) is the statistic on all
// clusters, f(k) without cluster k; present lists the clusters with data.
func Jackknife(present []int, f func(skip int) float64) RatioEstimate {
	full := f(-1)
	n := len(present)
	if n < 2 || math.IsNaN(full) {
		return RatioEstimate{Value: full, Variance: math.NaN(), Clusters: n}
	}
	loo := make([]float64, 0, n)
	for _, k := range present {
		loo = append(loo, f(k))
	}
	mean := stat.Mean(loo, nil)
	var ss float64
	for _, v := range loo {
		ss += (v - mean) * (v - mean)
	}
	return RatioEstimate{Value: full, Variance: float64(n-1) / float64(n) * ss, Clusters: n}
}
