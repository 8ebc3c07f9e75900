package inventory

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/adedge/adedge/abtest"
)

// maxExperimentsBytes bounds experiments.json (a few hundred bytes in
// practice); a larger file is refused, not buffered.
const maxExperimentsBytes = MaxLineBytes

var (
	experimentsFieldNames = []string{"id", "salt", "tests", "holdout", "layers"}
	testFieldNames        = []string{"id", "variant", "share_bp", "params", "layer", "segments", "allow_move"}
	layerFieldNames       = []string{"id", "salt", "segments"}
	holdoutFieldNames     = []string{"salt", "share_bp"}
)

// posProblem is a problem at a byte offset of experiments.json.
type posProblem struct {
	pos int
	msg string
}

// decodeExperiments parses and validates experiments.json and, when prev
// is set, the change from the set the edges run now (abtest's
// CheckChange). It never fails hard: every problem comes back with its
// byte offset.
func decodeExperiments(buf []byte, prev *Previous) (Experiments, []posProblem) {
	var e Experiments
	d := newLineDecoder()
	var extra []posProblem
	add := func(pos int, format string, args ...any) {
		extra = append(extra, posProblem{pos, fmt.Sprintf(format, args...)})
	}
	at := map[string]int{} // field path -> byte offset, for abtest's problems
	if len(bytes.TrimSpace(buf)) == 0 {
		return e, []posProblem{{-1, `empty file; expected a JSON object such as {"id": "exp-1", "salt": "s1", "tests": []}`}}
	}
	if d.begin(buf) {
		present := d.members(experimentsFieldNames, func(f int) (got bool) {
			pos := d.s.pos
			at[experimentsFieldNames[f]] = pos
			switch f {
			case 0:
				got = d.strInto(&e.ID, convCopy)
				if got && e.ID != "" { // empty: abtest's rule
					if m := checkID(e.ID); m != "" {
						add(pos, "id: %s", m)
					}
				}
			case 1:
				got = d.strInto(&e.Salt, convCopy)
				if got && e.Salt != "" {
					if m := checkLabel(e.Salt); m != "" {
						add(pos, "salt: %s", m)
					}
				}
			case 2:
				got = d.tests(&e.Tests, add, at)
			case 3:
				got = d.holdout(&e.Holdout, add, at)
			case 4:
				got = d.layers(&e.Layers, add, at)
			}
			return got
		})
		if d.finish() {
			if present&1 == 0 {
				add(0, "id: required field missing (the experiment set id, in every report row)")
			}
			if present&2 == 0 {
				add(0, "salt: required field missing (the bucketing salt)")
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
	sp := setProblems(&e, at, out, nil)
	out = append(out, sp...)
	if len(out) == 0 && prev != nil {
		out = append(out, setProblems(&e, at, nil, prev)...)
	}
	slices.SortStableFunc(out, func(a, b posProblem) int { return a.pos - b.pos })
	return e, out
}

// setProblems applies the experiment-set rules (abtest's Check, the ones
// the edge enforces; with prev, CheckChange against the running set) to
// what was decoded, each at the offset of its field. A field that already
// has a problem (missing, wrong type) gets no second one.
func setProblems(e *Experiments, at map[string]int, have []posProblem, prev *Previous) []posProblem {
	reported := map[string]bool{}
	for _, p := range have {
		if path, _, ok := strings.Cut(p.msg, ": "); ok {
			reported[path] = true
		}
	}
	ps := e.Check()
	if prev != nil {
		ps = e.CheckChange(prev.Set, prev.Retired)
		for i := range ps {
			ps[i].Msg += " (previous set: " + prev.Source + ")"
		}
	}
	var out []posProblem
	for _, p := range ps {
		if reported[p.Path] {
			continue
		}
		pos, path := -1, p.Path
		for pos < 0 && path != "" {
			if o, ok := at[path]; ok {
				pos = o
			} else if i := strings.LastIndexAny(path, ".["); i > 0 {
				path = path[:i]
			} else {
				path = ""
			}
		}
		out = append(out, posProblem{max(pos, 0), p.String()})
	}
	return out
}

// tests decodes the "tests" array, validating each test.
func (d *lineDecoder) tests(dst *[]ExperimentTest, add func(int, string, ...any), at map[string]int) bool {
	out := []ExperimentTest{}
	ok := d.objects("test", func(i, start int) {
		var t ExperimentTest
		idPos := start
		prefix := fmt.Sprintf("tests[%d]", i)
		at[prefix] = start
		present := d.members(testFieldNames, func(f int) (got bool) {
			pos := d.s.pos
			at[prefix+"."+testFieldNames[f]] = pos
			switch f {
			case 0:
				idPos = pos
				got = d.strInto(&t.ID, convCopy)
			case 1:
				got = d.strInto(&t.Variant, convCopy)
				if got && t.Variant != "" {
					if m := checkLabel(t.Variant); m != "" {
						add(pos, "tests[%d].variant: %s", i, m)
					}
				}
			case 2:
				got = d.uint32Into(&t.ShareBP)
			case 3:
				got = d.params(&t.Params, prefix, add, at)
			case 4:
				got = d.strInto(&t.Layer, convCopy)
			case 5:
				got = d.strInto(&t.Segments, convCopy)
			case 6:
				got = d.boolInto(&t.AllowMove)
			}
			return got
		})
		if present&1 == 0 {
			add(start, "tests[%d].id: required field missing", i)
		} else if t.ID != "" {
			if m := checkID(t.ID); m != "" {
				add(idPos, "tests[%d].id: %s", i, m)
			}
		}
		if present&2 == 0 {
			add(start, "tests[%d].variant: required field missing (the label reports show)", i)
		}
		if present&4 == 0 && present&(1<<5) == 0 { // neither: say what each form wants
			add(start, "tests[%d].share_bp: required field missing (traffic share in 0.01%% units, 2000 = 20%%; in a layered set: \"layer\" and \"segments\")", i)
		}
		out = append(out, t)
	})
	*dst = out
	return ok
}

// objects decodes an array of objects: each element through each(i,
// start) with the object begun at offset start (what names the element
// in type errors). False for null or a type mismatch.
func (d *lineDecoder) objects(what string, each func(i, start int)) bool {
	if d.s.null() {
		return false
	}
	if !d.s.beginArray() {
		if !d.s.failed() {
			d.typeErr("an array of " + what + " objects")
		}
		return false
	}
	first := true
	for i := 0; d.s.nextElem(&first); i++ {
		d.index(i)
		d.s.ws()
		start := d.s.pos
		if !d.s.beginObject() {
			if d.s.failed() {
				break
			}
			d.typeErr("a " + what + " object")
			continue
		}
		each(i, start)
	}
	d.index(-1)
	return true
}

// holdout decodes the global holdout object.
func (d *lineDecoder) holdout(dst **abtest.Holdout, add func(int, string, ...any), at map[string]int) bool {
	start := d.s.pos
	if !d.beginObj() {
		return false
	}
	h := &abtest.Holdout{}
	at["holdout"] = start
	present := d.members(holdoutFieldNames, func(f int) bool {
		at["holdout."+holdoutFieldNames[f]] = d.s.pos
		if f == 0 {
			return d.strInto(&h.Salt, convCopy)
		}
		return d.uint32Into(&h.ShareBP)
	})
	if present&1 == 0 {
		add(start, "holdout.salt: required field missing (the holdout's own salt)")
	} else if h.Salt != "" {
		if m := checkLabel(h.Salt); m != "" {
			add(at["holdout.salt"], "holdout.salt: %s", m)
		}
	}
	if present&2 == 0 {
		add(start, "holdout.share_bp: required field missing (held-out share in 0.01%% units, 500 = 5%%)")
	}
	*dst = h
	return true
}

// layers decodes the "layers" array.
func (d *lineDecoder) layers(dst *[]abtest.Layer, add func(int, string, ...any), at map[string]int) bool {
	out := []abtest.Layer{}
	ok := d.objects("layer", func(i, start int) {
		var l abtest.Layer
		prefix := fmt.Sprintf("layers[%d]", i)
		at[prefix] = start
		present := d.members(layerFieldNames, func(f int) (got bool) {
			pos := d.s.pos
			at[prefix+"."+layerFieldNames[f]] = pos
			switch f {
			case 0:
				if got = d.strInto(&l.ID, convCopy); got && l.ID != "" {
					if m := checkID(l.ID); m != "" {
						add(pos, "%s.id: %s", prefix, m)
					}
				}
			case 1:
				if got = d.strInto(&l.Salt, convCopy); got && l.Salt != "" {
					if m := checkLabel(l.Salt); m != "" {
						add(pos, "%s.salt: %s", prefix, m)
					}
				}
			case 2:
				got = d.uint32Into(&l.Segments)
			}
			return got
		})
		if present&1 == 0 {
			add(start, "%s.id: required field missing", prefix)
		}
		if present&4 == 0 {
			add(start, "%s.segments: required field missing (how many segments the layer's 10000 slots form: 100 or 1000)", prefix)
		}
		out = append(out, l)
	})
	*dst = out
	return ok
}

// boolInto reads true or false.
func (d *lineDecoder) boolInto(dst *bool) bool {
	if d.s.null() {
		return false
	}
	switch d.s.peek() {
	case 't':
		d.s.literal("true")
		*dst = true
		return !d.s.failed()
	case 'f':
		d.s.literal("false")
		return !d.s.failed()
	}
	if !d.s.failed() {
		d.typeErr("true or false")
	}
	return false
}

// params decodes a test's parameter overrides. Names and ranges are
// abtest's rules (setProblems): an unknown name is kept, with the value 0
// when it is not a number, so that Check names it.
func (d *lineDecoder) params(dst *map[string]float64, prefix string, add func(int, string, ...any), at map[string]int) bool {
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
		if _, dup := m[name]; dup {
			d.s.skipValue()
			d.bad = true
			add(pos, "%s.params: parameter %q appears twice", prefix, preview(key))
			continue
		}
		if _, known := abtest.ParamNames[name]; !known {
			d.s.skipValue()
			m[name] = 0
			at[prefix+".params"] = pos
			continue
		}
		at[prefix+".params."+name] = pos
		d.push(name)
		var v float64
		if d.s.peek() == 'n' {
			d.typeErr("a number")
		} else if d.float64Into(&v) {
			m[name] = v
		}
		d.pop()
	}
	*dst = m
	return true
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

// ParseExperiments checks an experiments.json on its own (adtool
// experiments diff), with Load's rules and messages: the problems come
// back as a *ValidationError naming file:line. prev, when set, adds the
// change rules against the running set.
func ParseExperiments(name string, buf []byte, prev *Previous) (Experiments, error) {
	c := &collector{file: name}
	if len(buf) > maxExperimentsBytes {
		c.addf(0, "too large: %d bytes, the limit is %d", len(buf), maxExperimentsBytes)
		return Experiments{}, mergeProblems(c)
	}
	e, probs := decodeExperiments(buf, prev)
	for _, p := range probs {
		line := 0
		if p.pos >= 0 {
			line = lineOf(buf, p.pos)
		}
		c.add(line, p.msg)
	}
	return e, mergeProblems(c)
}
