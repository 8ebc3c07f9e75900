package edge

import (
	"strconv"
	"sync/atomic"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/snapshot"
)

// defaultAnswerBudget is how many bytes of memoised creative JSON one
// snapshot may hold (about 100k creatives' worth); creatives past it are
// encoded per request, as before the memo.
const defaultAnswerBudget = 32 << 20

// answers memoises the parts of a fill's JSON that depend only on the
// snapshot and the bucket: a creative's object with its campaign's id, and
// the bucket labels and snapshot version that end every answer. Encoding
// them per request (JSON escaping, integer formatting, and reading the
// campaign and creative records out of the mapping) cost 13% of the edge's
// throughput (docs/BENCHMARKS.md, "Where a request's time goes"); a memo hit
// is one copy. Entries are heap copies, never aliases of the mapping, so a
// memo outlives nothing it points into. Built lazily, at most once per key
// and snapshot version (a race builds twice and keeps one); steady state
// allocates nothing.
type answers struct {
	creatives []atomic.Pointer[creativeAnswer] // by creative index
	tails     [abtest.NumLabelKeys]atomic.Pointer[[]byte]
	budget    atomic.Int64 // bytes creatives may still take; below 0 nothing more is kept
	limit     int64        // the budget it started with; <= 0: nothing memoised (the oracle test's encoder)
}

// creativeAnswer is one creative's part of a fill, and what the token needs
// of it.
type creativeAnswer struct {
	campaign     int    // the campaign index it was built with (a creative could be listed by two)
	campID, crID []byte // ids, for the token
	format       uint8  // the token's and events' format code
	video        bool   // the answer carries VAST, built per request
	// json runs from `,"campaign":` to the creative object's last fixed
	// member (asset_url or adomain), its brace left open.
	json []byte
}

// entryOverhead is what a creativeAnswer costs besides its bytes: the
// struct, three slice headers and the allocator's rounding.
const entryOverhead = 96

func newAnswers(r *snapshot.Reader, budget int64) *answers {
	a := &answers{creatives: make([]atomic.Pointer[creativeAnswer], r.NumCreatives())}
	a.budget.Store(budget)
	a.limit = budget
	return a
}

// creative returns the answer part of creative ci in campaign camp: the
// memo's, or one built into scratch when the memo is full or does not know
// the pair.
func (a *answers) creative(r *snapshot.Reader, camp, ci int, scratch *creativeAnswer) *creativeAnswer {
	if ci >= 0 && ci < len(a.creatives) {
		e := a.creatives[ci].Load()
		if e != nil && e.campaign == camp {
			return e
		}
		if e == nil && a.budget.Load() > 0 {
			e = &creativeAnswer{}
			e.build(r, camp, ci)
			if a.creatives[ci].CompareAndSwap(nil, e) {
				a.budget.Add(-int64(len(e.json) + len(e.campID) + len(e.crID) + entryOverhead))
			}
			return e
		}
	}
	scratch.build(r, camp, ci)
	return scratch
}

// build encodes creative ci of campaign camp into e, reusing its buffers.
func (e *creativeAnswer) build(r *snapshot.Reader, camp, ci int) {
	c, _ := r.Campaign(camp)
	cr, _ := r.Creative(ci)
	e.campaign = camp
	e.campID = append(e.campID[:0], r.String(c.ID)...)
	e.crID = append(e.crID[:0], r.String(cr.ID)...)
	e.format = formatCode(&cr)
	e.video = cr.Format == snapshot.FormatVideo
	b := e.json[:0]
	b = append(b, `,"campaign":`...)
	b = appendJSONString(b, r.String(c.ID))
	b = append(b, `,"creative":{"id":`...)
	b = appendJSONString(b, r.String(cr.ID))
	b = append(b, `,"format":"`...)
	b = append(b, cr.Format.String()...)
	b = append(b, `","width":`...)
	b = strconv.AppendUint(b, uint64(cr.Width), 10)
	b = append(b, `,"height":`...)
	b = strconv.AppendUint(b, uint64(cr.Height), 10)
	b = append(b, `,"asset_url":`...)
	b = appendJSONString(b, r.String(cr.AssetURL))
	if v := r.String(cr.ADomain); v != "" {
		b = append(b, `,"adomain":`...)
		b = appendJSONString(b, v)
	}
	e.json = b
}

// appendTail appends the end of a fill for assignment as: the bucket
// labels and the snapshot version, from the memo when the key has one.
func (s *Server) appendTail(b []byte, exp *expInfo, as abtest.Assignment) []byte {
	k := as.LabelKey()
	if k < 0 || exp.answers.limit <= 0 {
		return s.encodeTail(b, exp, as)
	}
	if t := exp.answers.tails[k].Load(); t != nil {
		return append(b, *t...)
	}
	t := s.encodeTail(nil, exp, as)
	exp.answers.tails[k].CompareAndSwap(nil, &t)
	return append(b, t...)
}

// encodeTail writes `,"bucket":{...},"snapshot":"..."}`.
func (s *Server) encodeTail(b []byte, exp *expInfo, as abtest.Assignment) []byte {
	test, variant := exp.bucketer.Labels(as)
	b = append(b, `,"bucket":{"env":"`...)
	b = append(b, s.cfg.Env...)
	b = append(b, `","experiment":`...)
	b = appendJSONString(b, exp.id)
	b = append(b, `,"test":`...)
	b = appendJSONString(b, test)
	b = append(b, `,"variant":`...)
	b = appendJSONString(b, variant)
	if bk := exp.bucketer; bk.Set().Layered() {
		// One (test, variant) per layer; test and variant above are the
		// first layer's (docs/EXPERIMENTS.md).
		b = append(b, `,"layers":[`...)
		for l := 0; l < bk.NumLayers(); l++ {
			layer, test, variant := bk.LayerLabels(as, l)
			if l > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"layer":`...)
			b = appendJSONString(b, layer)
			b = append(b, `,"test":`...)
			b = appendJSONString(b, test)
			b = append(b, `,"variant":`...)
			b = appendJSONString(b, variant)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `},"snapshot":"`...)
	b = append(b, exp.version...)
	return append(b, `"}`...)
}

// answerMemo reports the current snapshot's memo: bytes its creative
// parts take, and whether it is full (the metrics adedge_answer_memo_*).
func (s *Server) answerMemo() (used int64, full bool) {
	x := s.exp.Load()
	if x == nil || x.answers.limit <= 0 {
		return 0, false
	}
	left := x.answers.budget.Load()
	return x.answers.limit - left, left <= 0
}
