package promtext

import (
	"math"
	"strings"
	"testing"
)

const before = `# HELP h a histogram
# TYPE h histogram
h_bucket{le="0.001"} 10
h_bucket{le="0.01"} 10
h_bucket{le="+Inf"} 10
c_total{result="hit",env="a"} 5
c_total{result="miss",env="a"} 1
g 3
`

const after = `h_bucket{le="0.001"} 60
h_bucket{le="0.01"} 108
h_bucket{le="+Inf"} 110
c_total{result="hit",env="a"} 9
c_total{result="miss",env="a"} 4
c_total{result="hit",env="b"} 2
g 7
garbage line
`

func TestParseSumQuantile(t *testing.T) {
	b, err := Parse(strings.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Parse(strings.NewReader(after))
	if got := a.Sum("c_total"); got != 15 {
		t.Errorf("sum %v", got)
	}
	if got := Delta(b, a, "c_total", `result="hit"`); got != 6 {
		t.Errorf("hit delta %v", got)
	}
	if got := a.Sum("g"); got != 7 {
		t.Errorf("gauge %v", got)
	}
	// 100 new observations: 50 <= 1 ms, 48 more <= 10 ms, 2 above.
	for _, c := range []struct{ q, want float64 }{{0.5, 0.001}, {0.51, 0.01}, {0.98, 0.01}, {0.99, math.Inf(1)}} {
		if got, n := Quantile(b, a, "h", c.q); got != c.want || n != 100 {
			t.Errorf("q%v = %v (n %v), want %v", c.q, got, n, c.want)
		}
	}
	// The bucket's lower bound: the quantile lies in (lower, upper].
	for _, c := range []struct{ q, lo, hi float64 }{{0.5, 0, 0.001}, {0.51, 0.001, 0.01}, {0.99, 0.01, math.Inf(1)}} {
		if lo, hi, n := QuantileBucket(b, a, "h", c.q); lo != c.lo || hi != c.hi || n != 100 {
			t.Errorf("q%v in (%v, %v] (n %v), want (%v, %v]", c.q, lo, hi, n, c.lo, c.hi)
		}
	}
	if got, n := Quantile(a, a, "h", 0.99); got != 0 || n != 0 {
		t.Errorf("no observations: %v %v", got, n)
	}
}

// FuzzParse: any bytes parse without panicking, and Quantile and Sum on
// the result never panic either.
func FuzzParse(f *testing.F) {
	f.Add([]byte(before))
	f.Add([]byte(after))
	f.Add([]byte("h_bucket{le=\"x\"} 1\nh_bucket{le=\"\"} 2\nh_bucket{le} 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		_ = m.Sum("h")
		_, _ = Quantile(Samples{}, m, "h", 0.99)
	})
}
