package edge

import (
	"bytes"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/snapshot"
)

// TestAnswerMemoIsTheEncoder is the memo's oracle: an edge that memoises
// fills' JSON (answer.go) answers byte for byte what an edge with no memo
// budget answers (every creative encoded per request), on the same key,
// clock, request salt and sequence, over the medium snapshot's filling
// placements with and without devices, in two passes (the second served
// from the memo). The requests must reach video (VAST) and layered
// answers, and the memo must have been used, or the test proves nothing.
func TestAnswerMemoIsTheEncoder(t *testing.T) {
	clock := time.Now()
	now := func() time.Time { return clock }
	opts := envOpts{scale: "medium", store: "file", noWorkers: true, config: func(c *Config) { c.Now = now }}
	memo := newEnv(t, opts)
	plain := newEnv(t, opts)
	plain.srv.answerBudget = 0
	plain.signer, plain.srv.signer = memo.signer, memo.signer
	plain.srv.reqSalt = memo.srv.reqSalt

	uris := fillMix(t, memo, 2000, nil)
	uris = append(uris, fillMix(t, memo, 400, memo.w.devices[:2000])...)
	uris = append(uris, videoPlacements(t, memo, 600)...)
	var video, layered, unassigned int
	for pass := 0; pass < 2; pass++ {
		for _, u := range uris {
			a, b := serveOne(memo, u), serveOne(plain, u)
			if a.code != b.code || !bytes.Equal(a.body, b.body) {
				t.Fatalf("pass %d %s:\nmemo  %d %s\nplain %d %s", pass, u, a.code, a.body, b.code, b.body)
			}
			if a.code != fasthttp.StatusOK {
				continue
			}
			video += bytes.Count(a.body, []byte(`"vast":"`))
			layered += bytes.Count(a.body, []byte(`"layers":[`))
			unassigned += bytes.Count(a.body, []byte(`"variant":"unassigned"`))
		}
	}
	if video == 0 || layered == 0 || unassigned == 0 {
		t.Fatalf("coverage: %d video, %d layered, %d unassigned answers; want each > 0", video, layered, unassigned)
	}
	mc, mt := memoEntries(memo)
	pc, pt := memoEntries(plain)
	if mc == 0 || mt == 0 || pc+pt != 0 {
		t.Fatalf("memo holds %d creatives and %d tails, the budget-0 edge %d and %d; want >0, >0, 0, 0", mc, mt, pc, pt)
	}
}

// videoPlacements returns ad request URIs for up to n placements that
// allow video, without osv (fillMix's fills at them are banners).
func videoPlacements(t *testing.T, e *env, n int) [][]byte {
	snap := e.src.Acquire()
	defer snap.Release()
	r := snap.R
	var out [][]byte
	for pi := 0; pi < r.NumPlacements() && len(out) < n; pi++ {
		pl, _ := r.Placement(pi)
		if pl.Formats&(1<<snapshot.FormatVideo) != 0 {
			q := adQuery{placement: r.String(pl.ID), country: []string{"US", "DE", "JP"}[pi%3], os: []string{"ios", "android"}[pi%2]}
			out = append(out, []byte("http://edge"+q.uri()))
		}
	}
	return out
}

type answered struct {
	code int
	body []byte
}

func serveOne(e *env, uri []byte) answered {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURIBytes(uri)
	e.srv.Handler(&ctx)
	return answered{ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)}
}

func memoEntries(e *env) (creatives, tails int) {
	x := e.srv.exp.Load()
	if x == nil {
		return 0, 0
	}
	for i := range x.answers.creatives {
		if x.answers.creatives[i].Load() != nil {
			creatives++
		}
	}
	for i := range x.answers.tails {
		if x.answers.tails[i].Load() != nil {
			tails++
		}
	}
	return creatives, tails
}

// A memo entry is for one (campaign, creative) pair: the same creative
// asked for with another campaign is encoded afresh with that campaign's
// id, and a full budget stops the memo from growing while answers stay
// right.
func TestAnswerMemoKeyAndBudget(t *testing.T) {
	e := newEnv(t, envOpts{scale: "small", store: "none", noWorkers: true})
	snap := e.src.Acquire()
	defer snap.Release()
	r := snap.R
	if r.NumCampaigns() < 2 || r.NumCreatives() < 3 {
		t.Fatalf("snapshot too small: %d campaigns, %d creatives", r.NumCampaigns(), r.NumCreatives())
	}
	want := func(camp, ci int) []byte {
		var x creativeAnswer
		x.build(r, camp, ci)
		return x.json
	}
	var scratch creativeAnswer
	a := newAnswers(r, 1<<20)
	first := a.creative(r, 0, 0, &scratch)
	if first == &scratch || !bytes.Equal(first.json, want(0, 0)) {
		t.Fatalf("first use: scratch %v, json %s", first == &scratch, first.json)
	}
	if again := a.creative(r, 0, 0, &scratch); again != first {
		t.Fatal("second use did not return the memo's entry")
	}
	other := a.creative(r, 1, 0, &scratch)
	if other != &scratch || !bytes.Equal(other.json, want(1, 0)) || other.campaign != 1 {
		t.Fatalf("creative 0 under campaign 1: scratch %v, json %s", other == &scratch, other.json)
	}
	if !bytes.Contains(other.json, []byte(campaignID(r, 1))) {
		t.Fatalf("campaign 1's id missing from %s", other.json)
	}

	small := newAnswers(r, 1) // room for exactly one entry
	if e := small.creative(r, 0, 1, &scratch); e == &scratch {
		t.Fatal("the first entry should fit")
	}
	if e := small.creative(r, 0, 2, &scratch); e != &scratch || !bytes.Equal(e.json, want(0, 2)) {
		t.Fatalf("over budget: scratch %v, json %s", e == &scratch, e.json)
	}
	if small.creatives[2].Load() != nil {
		t.Fatal("an entry was kept over budget")
	}
	if e := small.creative(r, 0, r.NumCreatives(), &scratch); e != &scratch {
		t.Fatal("an index past the table was not encoded into scratch")
	}
}

func campaignID(r *snapshot.Reader, i int) string {
	c, _ := r.Campaign(i)
	return r.String(c.ID)
}

// Across a swap, requests still holding the old snapshot and requests on
// the new one alternate for a while. Each keeps its own expInfo (and
// memo) instead of rebuilding it on every alternation.
func TestExperimentInfoSurvivesSwap(t *testing.T) {
	e := newEnv(t, envOpts{store: "none", noWorkers: true})
	old := e.src.Acquire()
	defer old.Release()
	publish(t, e.dir, e.w.snapshot(t, baseCreated.Add(time.Minute)))
	if swapped, err := e.src.Reload(); err != nil || !swapped {
		t.Fatalf("reload: %v %v", swapped, err)
	}
	cur := e.src.Acquire()
	defer cur.Release()
	if cur.Version == old.Version {
		t.Fatal("no new version")
	}
	xo, xc := e.srv.experiment(old), e.srv.experiment(cur)
	for range 3 {
		if e.srv.experiment(old) != xo || e.srv.experiment(cur) != xc {
			t.Fatal("an expInfo was rebuilt while two snapshots alternate")
		}
	}
	if xo.version != old.Version || xc.version != cur.Version || e.srv.exp.Load() != xc {
		t.Fatalf("versions %s / %s, current %s", xo.version, xc.version, e.srv.exp.Load().version)
	}
}

// The memo's gauges: bytes grow as creatives fill, and a capped memo
// says it is full (its later fills still answer, encoded per request).
func TestAnswerMemoMetrics(t *testing.T) {
	for _, c := range []struct {
		name   string
		budget int64
		full   float64
	}{{"default", defaultAnswerBudget, 0}, {"one entry", 1, 1}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{store: "none", noWorkers: true})
			e.srv.answerBudget = c.budget
			if got := e.metric("adedge_answer_memo_bytes"); got != 0 {
				t.Fatalf("bytes %v before any fill", got)
			}
			for _, u := range fillMix(t, e, 16, nil) {
				if a := serveOne(e, u); a.code != fasthttp.StatusOK {
					t.Fatalf("%s: %d", u, a.code)
				}
			}
			if got := e.metric("adedge_answer_memo_bytes"); got <= 0 {
				t.Errorf("bytes %v after 16 fills", got)
			}
			if got := e.metric("adedge_answer_memo_full"); got != c.full {
				t.Errorf("full %v, want %v", got, c.full)
			}
		})
	}
}
