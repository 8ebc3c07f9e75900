package abtest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
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
	salts := map[string]string{} // effective salt -> path of its first use
	if h := s.Holdout; h != nil {
		if h.Salt == "" {
			add("holdout.salt", "required: must be non-empty (the holdout's own salt)")
		} else {
			salts[h.Salt] = "holdout.salt"
		}
		if h.ShareBP == 0 || h.ShareBP >= Slots {
			add("holdout.share_bp", "must be in [1, %d] (0.01%% units), got %d", Slots-1, h.ShareBP)
		}
	}
	layered := s.Layered()
	if len(s.Layers) > MaxLayers {
		add("layers", "at most %d layers, got %d", MaxLayers, len(s.Layers))
	}
	layerAt := map[string]int{}
	for i := range s.Layers {
		l := &s.Layers[i]
		p := fmt.Sprintf("layers[%d]", i)
		switch j, dup := layerAt[l.ID]; {
		case l.ID == "":
			add(p+".id", "required: must be non-empty")
		case dup:
			add(p+".id", "duplicate layer id %q (first at layers[%d])", l.ID, j)
		case strings.ContainsAny(l.ID, labelSeparators):
			add(p+".id", "must not contain %q (events list layers as layer:test:variant;...)", labelSeparators)
		default:
			layerAt[l.ID] = i
		}
		if l.Segments == 0 || Slots%l.Segments != 0 {
			add(p+".segments", "must divide %d (e.g. 100 or 1000), got %d", Slots, l.Segments)
		}
		if salt := s.LayerSalt(i); s.Salt != "" || l.Salt != "" {
			sp := p + ".salt"
			if first, dup := salts[salt]; dup {
				add(sp, "salt %q is already %s's: layers and the holdout need independent salts", salt, first)
			} else {
				salts[salt] = sp
			}
		}
	}
	if !layered && s.Holdout != nil && s.Holdout.Salt != "" && s.Holdout.Salt == s.Salt {
		add("holdout.salt", "must differ from the set's salt (the holdout is an independent draw)")
	}
	sum := uint64(0)
	first := map[string]int{}   // test id -> index of its first use
	perLayer := map[int][]int{} // layer index -> its tests so far
	owner := map[string]int{}   // parameter -> index of the first test that sets it
	for i := range s.Tests {
		t := &s.Tests[i]
		p := fmt.Sprintf("tests[%d]", i)
		switch j, dup := first[t.ID]; {
		case t.ID == "":
			add(p+".id", "required: must be non-empty")
		case t.ID == ControlTest || t.ID == HoldoutTest:
			add(p+".id", "%q is reserved for the %s group", t.ID, t.ID)
		case dup:
			add(p+".id", "duplicate test id %q (first at tests[%d])", t.ID, j)
		default:
			first[t.ID] = i
		}
		if t.Variant == "" {
			add(p+".variant", "required: must be non-empty (the label reports show)")
		}
		li := -1
		if layered {
			if strings.ContainsAny(t.ID, labelSeparators) {
				add(p+".id", "must not contain %q in a layered set (events list layers as layer:test:variant;...)", labelSeparators)
			}
			if strings.ContainsAny(t.Variant, labelSeparators) {
				add(p+".variant", "must not contain %q in a layered set (events list layers as layer:test:variant;...)", labelSeparators)
			}
			if t.ShareBP != 0 {
				add(p+".share_bp", "a layered set allocates segments, not share_bp: give \"segments\" instead")
			}
			switch li = s.layerIndex(t.Layer); {
			case t.Layer == "":
				add(p+".layer", "required in a layered set: one of %s", s.layerList())
			case li < 0:
				add(p+".layer", "unknown layer %q (layers: %s)", shorten(t.Layer), s.layerList())
			case len(perLayer[li]) >= MaxTests:
				add(p+".layer", "layer %q already has %d tests, the most a layer runs at once", t.Layer, MaxTests)
				li = -1
			}
			if t.Segments == "" {
				add(p+".segments", "required in a layered set: the layer segments the test holds, e.g. \"0-19\"")
			} else if li >= 0 {
				n := s.Layers[li].Segments
				if n > 0 && Slots%n == 0 {
					if rs, err := ParseSegments(t.Segments, n); err != nil {
						add(p+".segments", "%v", err)
					} else {
						for _, j := range perLayer[li] {
							o, _ := ParseSegments(s.Tests[j].Segments, n)
							if ov, ok := overlap(rs, o); ok {
								add(p+".segments", "segment %s is also tests[%d]'s (%s) in layer %q: tests of a layer hold disjoint segments",
									ov, j, shorten(s.Tests[j].ID), t.Layer)
								break
							}
						}
					}
				}
			}
			if li >= 0 {
				perLayer[li] = append(perLayer[li], i)
			}
		} else {
			if t.Layer != "" {
				add(p+".layer", "unknown layer %q: the set has no layers (add a \"layers\" list)", shorten(t.Layer))
			}
			if t.Segments != "" {
				add(p+".segments", "segments need a layered set (\"layers\"); without layers a test takes share_bp")
			}
			if t.ShareBP == 0 {
				add(p+".share_bp", "must be >= 1 (0.01%% of traffic), got 0")
			}
			sum += uint64(t.ShareBP)
		}
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
			if !layered || li < 0 {
				continue
			}
			if j, ok := owner[k]; ok && s.Tests[j].Layer != t.Layer {
				add(p+".params."+k, "parameter %q is also set by tests[%d] in layer %q: each parameter belongs to one layer, so merged parameters are unambiguous",
					k, j, s.Tests[j].Layer)
			} else if !ok {
				owner[k] = i
			}
		}
	}
	if sum > Slots {
		add("tests", "share_bp values add up to %d (%.2f%%), more than %d (100%%); control gets %d minus the sum",
			sum, float64(sum)/100, Slots, Slots)
	}
	if !layered && len(s.Tests) > MaxTests {
		add("tests", "at most %d tests run at once, got %d", MaxTests, len(s.Tests))
	}
	return ps
}

// labelSeparators may not appear in a layered set's layer ids, test ids
// and variants: ad events list every layer's assignment as
// "layer:test:variant;layer:test:variant".
const labelSeparators = ":;"

// layerList names the set's layers for messages.
func (s *Set) layerList() string {
	if len(s.Layers) == 0 {
		return "(none)"
	}
	ids := make([]string, len(s.Layers))
	for i := range s.Layers {
		ids[i] = strconv.Quote(shorten(s.Layers[i].ID))
	}
	return strings.Join(ids, ", ")
}

// SegRange is an inclusive range of layer segments.
type SegRange struct{ Lo, Hi uint32 }

// String is "lo-hi", or "lo" for one segment.
func (r SegRange) String() string {
	if r.Lo == r.Hi {
		return strconv.FormatUint(uint64(r.Lo), 10)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// maxSegmentsLen bounds a segments string (10,000 single segments and
// commas fit in 50 KB; anything longer is not a list a person wrote).
const maxSegmentsLen = 1 << 16

// ParseSegments reads a test's segments, "0-19,40-44" (inclusive ranges
// or single segments, comma-separated), of a layer with n segments. The
// ranges come back sorted; overlapping or out-of-range ones are refused.
func ParseSegments(s string, n uint32) ([]SegRange, error) {
	if len(s) > maxSegmentsLen {
		return nil, fmt.Errorf("too long: %d bytes, at most %d", len(s), maxSegmentsLen)
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf(`empty: want ranges such as "0-19,40-44"`)
	}
	var rs []SegRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 32)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf(`%q: want a segment number or an inclusive range "lo-hi"`, shorten(part))
		}
		if a > b {
			return nil, fmt.Errorf("%q: range runs backwards", shorten(part))
		}
		if b >= uint64(n) {
			return nil, fmt.Errorf("segment %d is outside the layer's %d segments (0-%d)", b, n, n-1)
		}
		rs = append(rs, SegRange{uint32(a), uint32(b)})
	}
	slices.SortFunc(rs, func(x, y SegRange) int { return int(x.Lo) - int(y.Lo) })
	for i := 1; i < len(rs); i++ {
		if rs[i].Lo <= rs[i-1].Hi {
			return nil, fmt.Errorf("segment %d is listed twice (%s and %s)", rs[i].Lo, rs[i-1], rs[i])
		}
	}
	return rs, nil
}

// overlap returns the first range two sorted range lists share.
func overlap(a, b []SegRange) (SegRange, bool) {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].Lo, b[j].Lo), min(a[i].Hi, b[j].Hi)
		if lo <= hi {
			return SegRange{lo, hi}, true
		}
		if a[i].Hi < b[j].Hi {
			i++
		} else {
			j++
		}
	}
	return SegRange{}, false
}

// SegmentCount is how many segments the ranges cover.
func SegmentCount(rs []SegRange) uint32 {
	n := uint32(0)
	for _, r := range rs {
		n += r.Hi - r.Lo + 1
	}
	return n
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
