package abtest

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Problem is one rule an experiment set breaks.
type Problem struct {
	// Path names the field as experiments.json spells it: "salt", "tests",
	// "tests[1].id", "tests[0].params.min_ctr".
	Path string
	Msg  string
}

// String is "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Msg }

// Check returns every rule s breaks, in field order (nil when s is valid).
// It is the one statement of the experiment-set rules: the builder maps
// each Problem's Path to file:line, adtool verify lists them, and the edge
// refuses a set with any (Validate), serving everyone as control.
func (s *Set) Check() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if s.ID == "" {
		add("id", "required: must be non-empty (the experiment set id, in every report row)")
	}
	if s.Salt == "" {
		add("salt", "required: must be non-empty (the bucketing salt)")
	}
	if len(s.Tests) > MaxTests {
		add("tests", "at most %d tests run at once, got %d", MaxTests, len(s.Tests))
	}
	sum := uint64(0)
	first := map[string]int{} // test id -> index of its first use
	for i := range s.Tests {
		t := &s.Tests[i]
		p := fmt.Sprintf("tests[%d]", i)
		switch j, dup := first[t.ID]; {
		case t.ID == "":
			add(p+".id", "required: must be non-empty")
		case t.ID == ControlTest:
			add(p+".id", "%q is reserved for the control group", ControlTest)
		case dup:
			add(p+".id", "duplicate test id %q (first at tests[%d])", t.ID, j)
		default:
			first[t.ID] = i
		}
		if t.Variant == "" {
			add(p+".variant", "required: must be non-empty (the label reports show)")
		}
		if t.ShareBP == 0 {
			add(p+".share_bp", "must be >= 1 (0.01%% of traffic), got 0")
		}
		sum += uint64(t.ShareBP)
		names := make([]string, 0, len(t.Params))
		for k := range t.Params {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			rng, known := ParamNames[k]
			if !known {
				add(p+".params", "unknown parameter %q (known: %s)", shorten(k), strings.Join(ParamList(), ", "))
				continue
			}
			if v := t.Params[k]; math.IsNaN(v) || math.IsInf(v, 0) || v < rng.Min || v > rng.Max {
				add(p+".params."+k, "must be in [%g, %g], got %v", rng.Min, rng.Max, v)
			}
		}
	}
	if sum > Slots {
		add("tests", "share_bp values add up to %d (%.2f%%), more than %d (100%%); control gets %d minus the sum",
			sum, float64(sum)/100, Slots, Slots)
	}
	return ps
}

// Validate is Check as an error naming every problem (nil when valid).
func (s *Set) Validate() error {
	ps := s.Check()
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.String()
	}
	return fmt.Errorf("experiment set: %s", strings.Join(msgs, "; "))
}

// ParamList is the parameter names a test may override, sorted.
func ParamList() []string {
	names := make([]string, 0, len(ParamNames))
	for n := range ParamNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// shorten bounds a name quoted back in a message.
func shorten(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
