package pacing

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Curve is the expected share of a day's traffic in each UTC hour. The zero
// Curve is flat. Even pacing plans a campaign's spend along it, so the
// budget follows the traffic instead of running dry by the evening peak.
type Curve [24]float64

// ParseCurve reads 24 comma-separated non-negative weights (any scale, at
// least one above zero), hour 0 UTC first; "" and "flat" are the flat curve.
func ParseCurve(s string) (Curve, error) {
	var c Curve
	s = strings.TrimSpace(s)
	if s == "" || s == "flat" {
		return c, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 24 {
		return c, fmt.Errorf("pacing curve: want 24 comma-separated hourly weights (hour 0 UTC first), got %d", len(parts))
	}
	sum := 0.0
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return c, fmt.Errorf("pacing curve: hour %d: %q is not a non-negative number", i, p)
		}
		c[i] = v
		sum += v
	}
	if sum <= 0 {
		return c, errors.New("pacing curve: all weights are zero")
	}
	return c, nil
}

// weights returns the curve normalised to a mean of 1 per hour (flat when
// the curve is zero).
func (c *Curve) weights() [24]float64 {
	var w [24]float64
	sum := 0.0
	for _, v := range c {
		sum += v
	}
	for i := range w {
		if sum <= 0 {
			w[i] = 1
		} else {
			w[i] = c[i] * 24 / sum
		}
	}
	return w
}

// dayPlan integrates a curve over one campaign day [start, end) (unix
// seconds; 23 or 25 hours long across a DST change).
type dayPlan struct {
	start, end int64
	w          [24]float64
	cum        [25]float64 // cumulative weight-seconds at each UTC hour start within a UTC day
	total      float64     // weight-seconds in [start, end)
}

func newDayPlan(c *Curve, start, end int64) dayPlan {
	p := dayPlan{start: start, end: end, w: c.weights()}
	for h := 0; h < 24; h++ {
		p.cum[h+1] = p.cum[h] + p.w[h]*3600
	}
	p.total = p.integral(start, end)
	return p
}

// at is the weight-seconds from an arbitrary origin (the epoch) to t.
func (p *dayPlan) at(t int64) float64 {
	day := math.Floor(float64(t) / 86400)
	sec := float64(t) - day*86400
	h := int(sec / 3600)
	if h > 23 {
		h = 23
	}
	return day*p.cum[24] + p.cum[h] + (sec-float64(h)*3600)*p.w[h]
}

func (p *dayPlan) integral(a, b int64) float64 { return p.at(b) - p.at(a) }

// Fraction is the planned share of the day's traffic before t, in [0, 1].
func (p *dayPlan) Fraction(t int64) float64 {
	switch {
	case t <= p.start:
		return 0
	case t >= p.end || p.total <= 0:
		return 1
	}
	return p.integral(p.start, t) / p.total
}

// DayBounds returns the unix seconds of the start and end of the day that
// contains t in loc (UTC when loc is nil), and the day's key (YYYYMMDD).
// Days are 23 or 25 hours long across a DST change.
func DayBounds(loc *time.Location, t time.Time) (start, end int64, key uint32) {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	s := time.Date(y, m, d, 0, 0, 0, 0, loc)
	e := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	return s.Unix(), e.Unix(), uint32(y*10000 + int(m)*100 + d)
}
