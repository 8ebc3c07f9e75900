package distrib

import (
	"errors"
	"strconv"
	"strings"
)

// ParseRate reads bytes per second: "50M" is 50e6, "32Mi" is 32 MiB.
func ParseRate(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a non-negative number of bytes/s, e.g. 50M or 32Mi")
	}
	return int64(n * float64(mult)), nil
}

// RateFlag is ParseRate as a flag check (internal/cliflag): "" when v
// reads, else what it should look like.
func RateFlag(v string) string {
	if _, err := ParseRate(v); err != nil {
		return "bytes/s like 50M, 32Mi or 0 (unlimited)"
	}
	return ""
}
