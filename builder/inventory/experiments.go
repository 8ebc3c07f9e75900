package inventory

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/adedge/adedge/abtest"
)

// maxExperimentsBytes bounds experiments.json (a few hundred bytes in
// practice); a larger file is refused, not buffered.
const maxExperimentsBytes = MaxLineBytes

var (
	experimentsFieldNames = []string{"id", "salt", "tests"}
	testFieldNames        = []string{"id", "variant", "share_bp", "params"}
)

// posProblem is a problem at a byte offset of experiments.json.
type posProblem struct {
	pos int
	msg string
}

// decodeExperiments parses and validates experiments.json. It never fails
// hard: every problem comes back with its byte offset.
func decodeExperiments(buf []byte) (Experiments, []posProblem) {
	var e Experiments
	d := newLineDecoder()
	var extra []posProblem
	add := func(pos int, format string, args ...any) {
		extra = append(extra, posProblem{pos, fmt.Sprintf(format, args...)})
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		return e, []posProblem{{-1, `empty file; expected a JSON object such as {"id": "exp-1", "salt": "s1", "tests": []}`}}
	}
	if d.begin(buf) {
		var seen, present uint32
		var testsPos int
		first := true
		for {
			key, more := d.s.nextKey(&first)
			if !more {
				break
			}
			f := d.field(key, experimentsFieldNames, &seen)
			if f < 0 {
				continue
			}
			d.push(experimentsFieldNames[f])
			pos := d.s.pos
			var got bool
			switch f {
			case 0:
				got = d.strInto(&e.ID, convCopy)
				if got {
					if m := checkID(e.ID); m != "" {
						add(pos, "id: %s", m)
					}
				}
			case 1:
				got = d.strInto(&e.Salt, convCopy)
				if got {
					if m := checkLabel(e.Salt); m != "" {
						add(pos, "salt: %s", m)
					}
				}
			case 2:
				testsPos = pos
				got = d.tests(&e.Tests, add)
			}
			d.pop()
			if got {
				present |= 1 << f
			}
		}
		if d.finish() {
			if present&1 == 0 {
				add(0, "id: required field missing (the experiment set id, in every report row)")
			}
			if present&2 == 0 {
				add(0, "salt: required field missing (the bucketing salt)")
			}
			if len(e.Tests) > MaxTests {
				add(testsPos, "tests: at most %d tests run at once, got %d", MaxTests, len(e.Tests))
			}
			sum := 0
			for _, t := range e.Tests {
				sum += int(t.ShareBP)
			}
			if sum > TotalShareBP {
				add(testsPos, "tests: share_bp values add up to %d (%.2f%%), more than %d (100%%); control gets %d minus the sum",
					sum, float64(sum)/100, TotalShareBP, TotalShareBP)
			}
		}
	} else {
		d.finish()
	}
	if d.s.failed() { // a syntax error hides the rest
		return e, []posProblem{{d.s.synPos, fmt.Sprintf("malformed JSON at column %d: %s", columnOf(buf, d.s.synPos), d.s.synErr)}}
	}
	out := make([]posProblem, 0, len(d.msgs)+len(extra))
	for i, m := range d.msgs {
		out = append(out, posProblem{d.msgPos[i], m})
	}
	out = append(out, extra...)
	slices.SortStableFunc(out, func(a, b posProblem) int { return a.pos - b.pos })
	return e, out
}

// tests decodes the "tests" array, validating each test.
func (d *lineDecoder) tests(dst *[]ExperimentTest, add func(int, string, ...any)) bool {
	if d.s.null() {
		return false
	}
	if !d.s.beginArray() {
		if !d.s.failed() {
			d.typeErr("an array of test objects")
		}
		return false
	}
	out := []ExperimentTest{}
	firstSeen := map[string]int{} // test id -> byte offset of its first use
	first := true
	for i := 0; d.s.nextElem(&first); i++ {
		d.index(i)
		d.s.ws()
		start := d.s.pos
		if !d.s.beginObject() {
			if d.s.failed() {
				break
			}
			d.typeErr("a test object")
			continue
		}
		var t ExperimentTest
		var seen, present uint32
		idPos := start
		first := true
		for {
			key, more := d.s.nextKey(&first)
			if !more {
				break
			}
			f := d.field(key, testFieldNames, &seen)
			if f < 0 {
				continue
			}
			d.push(testFieldNames[f])
			pos := d.s.pos
			var got bool
			switch f {
			case 0:
				idPos = pos
				got = d.strInto(&t.ID, convCopy)
			case 1:
				got = d.strInto(&t.Variant, convCopy)
				if got {
					if m := checkLabel(t.Variant); m != "" {
						add(pos, "tests[%d].variant: %s", i, m)
					}
				}
			case 2:
				got = d.uint32Into(&t.ShareBP)
				if got && t.ShareBP < 1 {
					add(pos, "tests[%d].share_bp: must be >= 1 (0.01%% of traffic), got %d", i, t.ShareBP)
				}
			case 3:
				got = d.params(&t.Params, i, add)
			}
			d.pop()
			if got {
				present |= 1 << f
			}
		}
		if present&1 == 0 {
			add(start, "tests[%d].id: required field missing", i)
		} else if m := checkID(t.ID); m != "" {
			add(idPos, "tests[%d].id: %s", i, m)
		} else if p, dup := firstSeen[t.ID]; dup {
			add(idPos, "tests[%d].id: duplicate test id %q (first at line %d)", i, t.ID, lineOf(d.s.buf, p))
		} else {
			firstSeen[t.ID] = idPos
		}
		if present&2 == 0 {
			add(start, "tests[%d].variant: required field missing (the label reports show)", i)
		}
		if present&4 == 0 {
			add(start, "tests[%d].share_bp: required field missing (traffic share in 0.01%% units, 2000 = 20%%)", i)
		}
		out = append(out, t)
	}
	d.index(-1)
	*dst = out
	return true
}

// params decodes a test's parameter overrides, checking names and ranges.
func (d *lineDecoder) params(dst *map[string]float64, test int, add func(int, string, ...any)) bool {
	if !d.beginObj() {
		return false
	}
	m := map[string]float64{}
	first := true
	for {
		key, more := d.s.nextKey(&first)
		if !more {
			break
		}
		name := string(key)
		pos := d.s.pos
		rng, known := abtest.ParamNames[name]
		if !known {
			d.s.skipValue()
			add(pos, "tests[%d].params: unknown parameter %q (known: %s)", test, preview(key), strings.Join(paramNames(), ", "))
			continue
		}
		if _, dup := m[name]; dup {
			d.s.skipValue()
			d.bad = true
			add(pos, "tests[%d].params: parameter %q appears twice", test, name)
			continue
		}
		d.push(name)
		var v float64
		if d.s.peek() == 'n' {
			d.typeErr("a number")
		} else if d.float64Into(&v) {
			m[name] = v
			if math.IsNaN(v) || math.IsInf(v, 0) || v < rng.Min || v > rng.Max {
				add(pos, "tests[%d].params.%s: must be in [%g, %g], got %v", test, name, rng.Min, rng.Max, v)
			}
		}
		d.pop()
	}
	*dst = m
	return true
}

func paramNames() []string {
	names := make([]string, 0, len(abtest.ParamNames))
	for n := range abtest.ParamNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lineOf returns the 1-based line of byte offset pos in buf.
func lineOf(buf []byte, pos int) int {
	pos = min(max(pos, 0), len(buf))
	return 1 + bytes.Count(buf[:pos], []byte{'\n'})
}

// columnOf returns the 1-based column (in bytes) of byte offset pos.
func columnOf(buf []byte, pos int) int {
	pos = min(max(pos, 0), len(buf))
	return pos - bytes.LastIndexByte(buf[:pos], '\n')
}
