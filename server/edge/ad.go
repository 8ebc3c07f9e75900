package edge

import (
	"context"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/adreq"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/staging"
	"github.com/adedge/adedge/server/token"
)

// serveAd answers /v1/ad, from the JSON body of a POST or the raw query
// of a GET (query, from target: the request line's own bytes when fasthttp
// need not parse the URI); adreq.ParseRawQuery reads it without fasthttp's
// Args (docs/BENCHMARKS.md, "raw query").
func (s *Server) serveAd(ctx *fasthttp.RequestCtx, query []byte) {
	start := requestStart(ctx)
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)

	var ferr *adreq.FieldError
	if ctx.IsPost() {
		if len(ctx.PostBody()) > adreq.MaxBodyLen {
			s.metrics.badRequests.Inc()
			jsonError(ctx, fasthttp.StatusRequestEntityTooLarge, "body over "+strconv.Itoa(adreq.MaxBodyLen)+" bytes", "body")
			return
		}
		if s.cfg.Geo != nil {
			ferr = adreq.ParseJSONGeo(ctx.PostBody(), &st.req, &st.scratch)
		} else {
			ferr = adreq.ParseJSON(ctx.PostBody(), &st.req, &st.scratch)
		}
	} else if s.cfg.Geo != nil {
		ferr = adreq.ParseRawQueryGeo(query, &st.qbuf, &st.req)
	} else {
		ferr = adreq.ParseRawQuery(query, &st.qbuf, &st.req)
	}
	if ferr == nil && st.req.Country == adreq.NoCountry {
		ferr = s.geoCountry(ctx, &st.req)
	}
	if ferr != nil {
		s.metrics.badRequests.Inc()
		jsonError(ctx, fasthttp.StatusBadRequest, ferr.Error(), ferr.Field)
		return
	}

	snap := s.src.Acquire()
	if snap == nil {
		s.metrics.noSnapshot.Inc()
		jsonError(ctx, fasthttp.StatusServiceUnavailable, "no snapshot loaded yet", "")
		return
	}
	defer snap.Release()
	exp := s.experiment(snap)
	a := exp.bucketer.Assign(st.req.Device)
	if s.cfg.Forwarder != nil && s.cfg.Staging.Staged(st.req.Device) && !staging.IsForwarded(ctx) {
		if s.forwardStaging(ctx, exp, a) {
			return
		}
	}

	prof := s.readProfile(st, st.req.Device, true)

	now := s.wallNow(start)
	seq := s.reqSeq.Add(1)
	st.sreq = selection.Request{
		Placement: st.req.Placement, Country: st.req.Country, OS: st.req.OS,
		OSVersion: st.req.OSVersion, DeviceType: st.req.DeviceType, Now: now.Unix(), Seed: seq, App: st.req.App,
	}
	s.sel.Select(snap.R, &st.sreq, prof, exp.bucketer.Params(a), &st.res)
	res := &st.res
	outcome := abtest.NoFill
	s.metrics.adRequests[res.Outcome].Inc()
	for i, n := range res.Skipped {
		if n > 0 {
			s.metrics.skips[i].Add(float64(n))
		}
	}
	if res.Truncated {
		s.metrics.truncated.Inc()
	}
	switch res.Outcome {
	case selection.Filled:
		var err error
		st.buf, err = s.appendAd(st.buf[:0], st, snap, exp, a, seq, now)
		outcome = abtest.Fill
		if err != nil {
			outcome = abtest.Error
			// Only reachable with ids over the token limits, which the
			// builder refuses; answer no-fill rather than a broken URL.
			s.event("token_error", err)
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			break
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		ctx.SetBody(st.buf)
	case selection.UnknownPlacement:
		outcome = abtest.Error
		s.metrics.badRequests.Inc()
		jsonError(ctx, fasthttp.StatusBadRequest, "placement: unknown in snapshot "+snap.Version, "placement")
	default:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
	s.setEnvHeader(ctx)
	el := time.Since(start)
	di := decisionInfo{device: st.req.Device, latency: el, dims: decisionDims(snap.R, st, outcome)}
	s.recordDecision(ctx, st, snap, exp, a, seq, outcome, now, &di)
	s.metrics.adLatency.Observe(el.Seconds())
	if exp.gen != nil {
		exp.gen.RequestDims(a, st.req.Device, outcome, el, &di.dims.ab)
	}
	s.access(st, ctx.Response.StatusCode(), el, snap)
}

// readProfile reads device's profile under its own deadline into
// st.prof: nil when there is no device or store, the read is not allowed
// (privacy), or it missed; a miss serves unpersonalised.
func (s *Server) readProfile(st *reqState, device []byte, allowed bool) *profiles.Profile {
	if len(device) == 0 || s.store == nil || !allowed {
		s.metrics.profile[profileSkipped].Inc()
		return nil
	}
	st.prof.Reset()
	pctx, cancel := context.Background(), context.CancelFunc(nil)
	if !s.memStore {
		pctx, cancel = context.WithTimeout(pctx, s.cfg.ProfileTimeout)
	}
	err := s.store.Get(pctx, unsafe.String(unsafe.SliceData(device), len(device)), &st.prof)
	if cancel != nil {
		cancel()
	}
	switch {
	case err == nil:
		s.metrics.profile[profileHit].Inc()
		return &st.prof
	case errors.Is(err, profiles.ErrNotFound):
		s.metrics.profile[profileMiss].Inc()
	case errors.Is(err, profiles.ErrTimeout):
		s.metrics.profile[profileTimeout].Inc()
	case errors.Is(err, profiles.ErrBusy):
		s.metrics.profile[profileShed].Inc()
	case errors.Is(err, profiles.ErrUnavailable):
		s.metrics.profile[profileUnavailable].Inc()
	default:
		s.metrics.profile[profileError].Inc()
		s.event("profile_error", err)
	}
	return nil
}

// appendAd encodes the 200 response: request id, campaign, creative, signed
// impression and click URLs, price and bucket labels. What depends only on
// the snapshot and the bucket comes from exp.answers (answer.go).
func (s *Server) appendAd(b []byte, st *reqState, snap *snapsource.Snap, exp *expInfo, a abtest.Assignment, seq uint64, now time.Time) ([]byte, error) {
	r := snap.R
	ca := exp.answers.creative(r, st.res.Campaign, st.res.Creative, &st.ans)
	_, variant := exp.bucketer.Labels(a)

	st.sign = token.Claims{
		Issued: now.UnixMilli(), PriceMicros: st.res.PriceMicros, CapPeriod: st.res.CapPeriod,
		Env: s.envCode, Test: a.Test, Placement: st.req.Placement, Country: countryCode(st.req.Country),
		OS: uint8(st.req.OS), DeviceType: st.req.DeviceType, Format: ca.format,
		Campaign: ca.campID, Creative: ca.crID,
		Device: st.req.Device, Experiment: unsafe.Slice(unsafe.StringData(exp.id), len(exp.id)),
		Variant: unsafe.Slice(unsafe.StringData(variant), len(variant)), Snapshot: unsafe.Slice(unsafe.StringData(snap.Version), len(snap.Version)),
	}
	var err error
	st.tok, err = s.signer.Append(st.tok[:0], &st.sign)
	if err != nil {
		return b, err
	}
	b = append(b, `{"request_id":"`...)
	b = appendHex64(b, seq^s.reqSalt)
	b = append(b, '"')
	b = append(b, ca.json...)
	pl, _ := r.Placement(st.res.Placement)
	if pl.Interstitial() {
		b = append(b, `,"interstitial":true`...)
	}
	if pl.Rewarded() {
		b = append(b, `,"rewarded":true`...)
	}
	if ca.video {
		cr, _ := r.Creative(st.res.Creative)
		b = append(b, `,"duration_seconds":`...)
		b = strconv.AppendUint(b, uint64(cr.DurationSeconds), 10)
		b = append(b, `,"vast":"`...)
		campID, crID := unsafe.String(unsafe.SliceData(ca.campID), len(ca.campID)), unsafe.String(unsafe.SliceData(ca.crID), len(ca.crID))
		st.auc.adm = s.appendVAST(st.auc.adm[:0], st, r, &cr, campID, crID, &st.sreq)
		b = appendJSONStringBody(b, unsafe.String(unsafe.SliceData(st.auc.adm), len(st.auc.adm)))
		b = append(b, '"')
	}
	b = append(b, `},"impression_url":"`...)
	b = s.appendTrackURL(b, "/v1/imp?t=", st.tok)
	b = append(b, `","click_url":"`...)
	b = s.appendTrackURL(b, "/v1/click?t=", st.tok)
	b = append(b, `","price_micros":`...)
	b = strconv.AppendInt(b, st.res.PriceMicros, 10)
	b = append(b, `,"ecpm_micros":`...)
	b = strconv.AppendInt(b, st.res.ECPMMicros, 10)
	return s.appendTail(b, exp, a), nil
}

// experiment returns the snapshot's experiment set id and control params,
// parsed once per snapshot version.
func (s *Server) experiment(snap *snapsource.Snap) *expInfo {
	if e := s.exp.Load(); e != nil && e.version == snap.Version {
		return e
	}
	if e := s.expPrev.Load(); e != nil && e.version == snap.Version {
		return e // a request still on the snapshot being replaced
	}
	e := &expInfo{version: snap.Version, params: abtest.Defaults, answers: newAnswers(snap.R, s.answerBudget)}
	var err error
	if e.bucketer, err = abtest.SnapshotBucketer(snap.R.ExperimentsJSON(), abtest.Defaults); err != nil {
		// The builder refuses bad sets; a snapshot from elsewhere serves
		// everyone as control rather than not at all.
		s.event("experiment_set_invalid", err)
	}
	e.id = e.bucketer.Set().ID
	if c := s.cfg.Counters; c != nil {
		e.gen = c.Serving(s.cfg.Env, snap.Version, e.bucketer)
		e.stageGen = c.Serving("staging", snap.Version, e.bucketer) // pinned like e.gen
	}
	if old := s.exp.Swap(e); old != nil && old.version != e.version {
		s.expPrev.Store(old)
	}
	return e
}

// forwardStaging hands a staged request to the staging pool: true when
// staging answered (its response is in ctx). A mirror copy or a failed
// forward returns false and the request is served here; the failure counts
// against staging.
func (s *Server) forwardStaging(ctx *fasthttp.RequestCtx, exp *expInfo, a abtest.Assignment) bool {
	f := s.cfg.Forwarder
	if f.Mirror() {
		f.Copy(ctx)
		return false
	}
	if err := f.Forward(ctx); err != nil {
		if exp.stageGen != nil {
			exp.stageGen.ForwardError(a)
		}
		ctx.Response.Header.Set("X-Adedge-Staging", "fallback")
		return false
	}
	return true
}

// access writes the request's access-log line through the ring.
func (s *Server) access(st *reqState, code int, el time.Duration, snap *snapsource.Snap) {
	if s.log == nil {
		return
	}
	b := st.line[:0]
	b = s.cfg.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, " ad "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, el.Microseconds(), 10)
	b = append(b, "us "...)
	b = append(b, st.res.Outcome.String()...)
	b = append(b, " placement="...)
	b = append(b, st.req.Placement...)
	if st.res.Outcome == selection.Filled {
		c, _ := snap.R.Campaign(st.res.Campaign)
		b = append(b, " campaign="...)
		b = append(b, snap.R.String(c.ID)...)
	}
	st.line = b
	s.log.Write(b)
}
