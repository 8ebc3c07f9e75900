package edge

import (
	"errors"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
)

// serveTrack answers /v1/imp and /v1/click: verify the token, record the
// event (with an event log: before answering, 503 when it cannot; a
// duplicate answers as the first did and counts nothing), count, and for
// clicks redirect to the creative's click URL when the serving snapshot
// still has it.
func (s *Server) serveTrack(ctx *fasthttp.RequestCtx, click bool) {
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	now := s.cfg.Now()
	if !s.verifyToken(ctx, st, now) {
		return
	}
	c := &st.claims
	kind := events.KindImp
	if click {
		kind = events.KindClick
	}
	dup, ok := s.recordTrack(ctx, st, c, kind, now)
	if !ok {
		return // 503: not recorded, the SDK retries
	}
	if !dup {
		s.countTrack(c, click, now)
	}
	if click {
		if u := s.clickURL(c.Creative); u != "" {
			ctx.Response.Header.Set("Location", u)
			ctx.SetStatusCode(fasthttp.StatusFound)
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// verifyToken checks the request's t= token into st.claims, answering
// 400/403 (counted by reason) when it is missing or does not verify.
func (s *Server) verifyToken(ctx *fasthttp.RequestCtx, st *reqState, now time.Time) bool {
	tok := ctx.QueryArgs().Peek("t")
	if len(tok) == 0 {
		s.metrics.trackReject["missing"].Inc()
		jsonError(ctx, fasthttp.StatusBadRequest, "t: required", "t")
		return false
	}
	if err := s.signer.Verify(tok, now, &st.claims); err != nil {
		reason, code := "forged", fasthttp.StatusForbidden
		switch {
		case errors.Is(err, token.ErrExpired):
			reason = "expired"
		case errors.Is(err, token.ErrNotYetValid):
			reason = "not_yet_valid"
		case errors.Is(err, token.ErrMalformed):
			reason = "malformed"
		}
		s.metrics.trackReject[reason].Inc()
		jsonError(ctx, code, "t: "+reason+" token", "t")
		return false
	}
	return true
}

// countTrack is THE place a verified impression or click is counted:
// revenue, A/B counters, frequency caps (and spend). With an event log it
// runs only for the first arrival of an event id, after its event is in
// the log; a duplicate never gets here.
func (s *Server) countTrack(c *token.Claims, click bool, now time.Time) {
	g := s.bucketGen(c)
	var a abtest.Assignment
	var dims abtest.Dims
	if g != nil {
		a = g.Tracked(c.Test, c.Variant, c.Device)
		dims = trackDims(c)
	}
	if s.cfg.Pacing != nil {
		// Spend for budgets: first-seen events only (docs/PACING.md).
		s.cfg.Pacing.Counted(c.Campaign, click, c.PriceMicros)
	}
	if click {
		s.metrics.clicks.Inc()
		if g != nil {
			g.ClickDims(a, &dims)
		}
		return
	}
	s.metrics.impressions.Inc()
	s.metrics.revenue.Add(float64(c.PriceMicros))
	if g != nil {
		g.ImpressionDims(a, c.PriceMicros, &dims)
	}
	if c.CapPeriod > 0 && len(c.Device) > 0 && s.store != nil {
		u := capUpdate{device: string(c.Device), campaign: string(c.Campaign), period: c.CapPeriod, now: now.Unix()}
		select {
		case s.capQ <- u:
		default:
			s.metrics.capUpdates["dropped"].Inc()
		}
	}
}

// trackDims are the breakdown dimensions a verified token gives its
// impression or click in the A/B rows: the request's country and OS and
// the creative's format, as the decision counted them (token v2 carries
// decisionDims' values); a v1 token carries none (unknown).
func trackDims(c *token.Claims) abtest.Dims {
	if c.Version == token.V1 {
		return abtest.Dims{}
	}
	d := abtest.Dims{Country: c.Country, Format: c.Format}
	if c.OS < snapshot.NumOS {
		d.OS = c.OS + 1
	}
	return d
}

var envNames = [token.MaxEnv + 1]string{"production", "staging"}

// bucketGen finds the counter generation a verified token's event belongs
// to: its env, snapshot and experiment set. A token from a snapshot this
// edge never served (another edge's) gets a generation of its own, labelled
// from the serving snapshot's set when the experiment set is the same.
func (s *Server) bucketGen(c *token.Claims) *abtest.Generation {
	ctr := s.cfg.Counters
	if ctr == nil || int(c.Env) >= len(envNames) {
		return nil
	}
	env := envNames[c.Env]
	if g := ctr.Lookup(unsafe.Slice(unsafe.StringData(env), len(env)), c.Snapshot, c.Experiment); g != nil {
		return g
	}
	var b *abtest.Bucketer
	if e := s.exp.Load(); e != nil && e.id == string(c.Experiment) {
		b = e.bucketer
	} else if bb, err := abtest.NewBucketer(abtest.Set{ID: string(c.Experiment), Salt: "unknown"}, abtest.Defaults); err == nil {
		b = bb
	}
	return ctr.Generation(env, string(c.Snapshot), b)
}

// clickURL finds a creative's click URL by id in the serving snapshot.
func (s *Server) clickURL(id []byte) string {
	snap := s.src.Acquire()
	if snap == nil {
		return ""
	}
	defer snap.Release()
	r := snap.R
	if i, ok := r.LookupCreativeBytes(id); ok {
		cr, _ := r.Creative(i)
		return strings.Clone(r.String(cr.ClickURL)) // the header outlives the mapping reference
	}
	return ""
}
