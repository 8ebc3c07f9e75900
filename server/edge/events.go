package edge

import (
	"encoding/binary"
	"strconv"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/events"
	"github.com/adedge/adedge/server/privacy"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
)

// eventState is the per-request scratch for billing events (part of the
// pooled request state).
type eventState struct {
	ev      events.Event
	buf     []byte
	country [2]byte
	ip      [48]byte
	layers  []byte
}

// decisionInfo is what a decision event needs beyond the selection: the
// privacy decision (zero on /v1/ad: allowed), the device it may store,
// the handling time so far and the decision's dimensions.
type decisionInfo struct {
	dec     privacy.Decision
	device  []byte
	latency time.Duration
	dims    adDims
}

// adDims are one decision's breakdown dimensions: the ad event's
// country, OS and format, and the same values in the A/B rows'
// breakdowns (decisionDims is the one rule for both).
type adDims struct {
	ab abtest.Dims // Format is the events' format code (formatCode; 0 unknown)
	os string      // the events' OS name
}

// decisionDims is the rule: the request's country and OS, and the format
// of the ad the slot shows: the creative's when filled, else the formats
// the slot takes for the request (the placement's the request accepts:
// one format, or a set such as "banner+video", abtest.FormatCode), else
// unknown (a slot that takes none of the request's formats, or an
// unknown placement). Call it after selection, before the event and the
// counters.
func decisionDims(r *snapshot.Reader, st *reqState, outcome abtest.Outcome) adDims {
	d := adDims{ab: abtest.Dims{Country: countryCode(st.sreq.Country)}, os: st.sreq.OS.String()}
	if st.sreq.OS < snapshot.NumOS {
		d.ab.OS = uint8(st.sreq.OS) + 1
	}
	switch {
	case outcome == abtest.Fill:
		cr, _ := r.Creative(st.res.Creative)
		d.ab.Format = formatCode(&cr)
	case st.res.Placement >= 0:
		pl, _ := r.Placement(st.res.Placement)
		d.ab.Format = abtest.FormatCode(selection.FormatsFor(&pl, &st.sreq))
	}
	return d
}

// countryCode is a snapshot country index as its two letters (zero when
// unknown): the token's and the events' spelling.
func countryCode(c uint16) [2]byte {
	if c >= snapshot.NumCountries {
		return [2]byte{}
	}
	return [2]byte{'A' + byte(c/26), 'A' + byte(c%26)}
}

// formatCode is a creative's format in events and tokens (0 = unknown).
func formatCode(cr *snapshot.Creative) uint8 { return uint8(cr.Format) + 1 }

// appendEventIP writes the request's client address into st's buffer,
// truncated to its network (/24, /48) when truncate: the events' ip field.
func (s *Server) appendEventIP(ctx *fasthttp.RequestCtx, st *reqState, truncate bool) []byte {
	ip := s.clientIP(ctx)
	if !ip.IsValid() {
		return nil
	}
	if truncate {
		bits := 24
		if ip.Is6() && !ip.Is4In6() {
			bits = 48
		}
		if p, err := ip.Unmap().Prefix(bits); err == nil {
			ip = p.Addr()
		}
	}
	return ip.Unmap().AppendTo(st.evs.ip[:0])
}

// deviceHash is xxhash64 of a device id the request may store (0 without).
func deviceHash(device []byte) uint64 {
	if len(device) == 0 {
		return 0
	}
	return xxhash.Sum64(device)
}

// shareBP is the configured share of an assignment's first-layer group
// (basis points; the holdout's for a held device, 0 unassigned).
func shareBP(b *abtest.Bucketer, a abtest.Assignment) uint32 {
	switch {
	case a.Unassigned:
		return 0
	case a.Held:
		return b.HoldoutBP()
	}
	return b.GroupShareBP(0, a.Test)
}

func deviceTypeName(dt uint8) string {
	switch dt {
	case snapshot.DevicePhone:
		return "phone"
	case snapshot.DeviceTablet:
		return "tablet"
	}
	return ""
}

func bs(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// recordTrack writes a verified pixel's event to the log before it is
// answered. It reports whether the pixel is a duplicate (answer as the
// first time, count nothing) and false, false with the 503 already written
// when the event could not be recorded.
func (s *Server) recordTrack(ctx *fasthttp.RequestCtx, st *reqState, c *token.Claims, kind events.Kind, now time.Time) (dup, ok bool) {
	rec := s.cfg.Events
	if rec == nil {
		return false, true
	}
	e := &st.evs.ev
	*e = events.Event{Kind: kind, Env: c.Env, Test: c.Test, Shard: abtest.Shard(c.Device),
		Time: now.UnixMilli(), Issued: c.Issued, PriceMicros: c.PriceMicros, CapPeriod: c.CapPeriod, Weight: 1,
		Format: c.Format, Privacy: c.Privacy, PrivacySignals: c.PrivacySignals, TokenVersion: c.Version,
		DeviceHash: deviceHash(c.Device),
		Edge:       bs(s.cfg.EdgeName), Snapshot: c.Snapshot, Campaign: c.Campaign, Creative: c.Creative,
		Experiment: c.Experiment, Variant: c.Variant, Placement: c.Placement,
		OS: bs(snapshot.OS(c.OS).String()), DeviceType: bs(deviceTypeName(c.DeviceType))}
	if kind != events.KindImp && kind != events.KindClick {
		e.PriceMicros, e.CapPeriod = 0, 0 // video events are not billable
	}
	if c.Country != [2]byte{} {
		st.evs.country = c.Country
		e.Country = st.evs.country[:]
	}
	// A v1 token does not say what the request allowed: truncate.
	e.IP = s.appendEventIP(ctx, st, c.Version == token.V1 || c.Privacy >= uint8(privacy.Anonymous))
	if x := s.exp.Load(); x != nil && x.id == string(c.Experiment) && len(c.Device) > 0 {
		// The token carries the first layer's test; the others re-bucket
		// the device (deterministic: the answer at request time).
		st.evs.layers = x.bucketer.AppendLayers(st.evs.layers[:0], x.bucketer.Assign(c.Device))
		e.Layers = st.evs.layers
	}
	copy(e.ID[:], c.MAC())
	e.TestID = bs(s.testID(c))
	dup, err := rec.Track(e, &st.evs.buf)
	if err != nil {
		ctx.Response.Header.Set("Retry-After", "1")
		jsonError(ctx, fasthttp.StatusServiceUnavailable, "event not recorded; retry", "")
		return false, false
	}
	return dup, true
}

// testID labels a token's test from the serving experiment set when it is
// the token's; "" when this edge does not know the set (the warehouse can
// join it from the decision events).
func (s *Server) testID(c *token.Claims) string {
	if c.Test == 0 {
		if string(c.Variant) == abtest.HoldoutTest {
			return abtest.HoldoutTest
		}
		return abtest.ControlTest
	}
	if e := s.exp.Load(); e != nil && e.id == string(c.Experiment) {
		if t := e.bucketer.GroupTest(0, c.Test); t != nil {
			return t.ID
		}
		return abtest.ControlTest
	}
	return ""
}

// recordDecision queues the decision's event (sampled; never blocks).
func (s *Server) recordDecision(ctx *fasthttp.RequestCtx, st *reqState, snap *snapsource.Snap, exp *expInfo, a abtest.Assignment, seq uint64,
	outcome abtest.Outcome, now time.Time, di *decisionInfo) {
	rec := s.cfg.Events
	if rec == nil {
		return
	}
	ok, weight := rec.SampleAd(seq)
	if !ok {
		return
	}
	test, variant := exp.bucketer.Labels(a)
	e := &st.evs.ev
	*e = events.Event{Kind: events.KindAd, Env: s.envCode, Test: a.Test, Shard: a.Shard,
		Time: now.UnixMilli(), Issued: now.UnixMilli(), Weight: weight,
		LatencyUS: uint32(min(di.latency.Microseconds(), 1<<32-1)), ShareBP: shareBP(exp.bucketer, a),
		DeviceHash: deviceHash(di.device), Privacy: uint8(di.dec.Level), PrivacySignals: di.dec.Signals,
		Edge: bs(s.cfg.EdgeName), Snapshot: bs(snap.Version), Placement: st.req.Placement,
		Experiment: bs(exp.id), TestID: bs(test), Variant: bs(variant),
		OS: bs(di.dims.os), DeviceType: bs(deviceTypeName(st.req.DeviceType)), Format: di.dims.ab.Format}
	if cc := di.dims.ab.Country; cc != [2]byte{} {
		st.evs.country = cc
		e.Country = st.evs.country[:]
	}
	e.IP = s.appendEventIP(ctx, st, di.dec.TruncateIP())
	st.evs.layers = exp.bucketer.AppendLayers(st.evs.layers[:0], a)
	e.Layers = st.evs.layers
	binary.BigEndian.PutUint64(e.ID[:8], seq^s.reqSalt) // the response's request_id
	switch outcome {
	case abtest.Fill:
		e.Outcome = events.OutcomeFill
		r := snap.R
		camp, _ := r.Campaign(st.res.Campaign)
		cr, _ := r.Creative(st.res.Creative)
		e.Campaign, e.Creative = bs(r.String(camp.ID)), bs(r.String(cr.ID))
		e.PriceMicros = st.res.PriceMicros
	case abtest.Error:
		e.Outcome = events.OutcomeError
	default:
		e.Outcome = events.OutcomeNoFill
	}
	rec.Decision(e, &st.evs.buf)
}

// registerEvents exports the recorder's counters: pixels recorded, refused
// (503), duplicates, decisions written, dropped and sampled out, the log's
// bytes, segments and fsyncs, and the recent-id set's size.
func (m *Metrics) registerEvents(rec *events.Recorder) {
	counter := func(name, help string, f func(events.Stats) int64) {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(rec.Stats())) }))
	}
	gauge := func(name, help string, f func(events.Stats) float64) {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(rec.Stats()) }))
	}
	counter("adedge_events_tracked_total", "Impressions and clicks recorded first-seen in the event log.", func(s events.Stats) int64 { return s.Tracked })
	counter("adedge_events_unrecorded_total", "Pixels answered 503 because their event could not be recorded.", func(s events.Stats) int64 { return s.TrackFailed })
	counter("adedge_events_duplicates_total", "Pixels whose event id was already recorded (answered, not counted).", func(s events.Stats) int64 { return s.Duplicates })
	counter("adedge_events_duplicates_dropped_total", "Duplicate records not logged (queue full or log refused).", func(s events.Stats) int64 { return s.DupDropped })
	counter("adedge_events_decisions_total", "Ad decision events written to the log.", func(s events.Stats) int64 { return s.AdWritten })
	counter("adedge_events_decisions_dropped_total", "Ad decision events dropped (queue full, log refused, over size).", func(s events.Stats) int64 { return s.AdDropped + s.AdErrors })
	counter("adedge_events_decisions_sampled_out_total", "Ad decisions not logged by --events-sample-ads.", func(s events.Stats) int64 { return s.AdSampledOut })
	counter("adedge_events_fsyncs_total", "Group-commit fsyncs of the event log.", func(s events.Stats) int64 { return s.Log.Fsyncs })
	counter("adedge_events_fsync_errors_total", "Failed fsyncs of the event log.", func(s events.Stats) int64 { return s.Log.FsyncErrs })
	counter("adedge_events_seen_evicted_total", "Event ids dropped from the recent-id set before their window ended (cap).", func(s events.Stats) int64 { return s.SeenEvicted })
	gauge("adedge_events_log_bytes", "Bytes in the event log's segments.", func(s events.Stats) float64 { return float64(s.Log.Bytes) })
	gauge("adedge_events_log_max_bytes", "The event log's bound (--events-max-bytes).", func(s events.Stats) float64 { return float64(s.Log.MaxBytes) })
	gauge("adedge_events_log_segments", "Segment files in the event log.", func(s events.Stats) float64 { return float64(s.Log.Segments) })
	gauge("adedge_events_seen_ids", "Event ids in the recent-id set.", func(s events.Stats) float64 { return float64(s.SeenIDs) })
	gauge("adedge_events_fsync_aio", "1 when the event log fsyncs through Linux AIO (holding no P while the disk flushes), 0 for blocking fsync(2).",
		func(s events.Stats) float64 {
			if s.Log.AIOFsync {
				return 1
			}
			return 0
		})
}

// EventsFailing reports whether a pixel could not be recorded within the
// last window: /health is degraded meanwhile.
func EventsFailing(rec *events.Recorder, now time.Time, window time.Duration) bool {
	t := rec.LastFailure()
	return !t.IsZero() && now.Sub(t) < window
}

// AppendEventsHealth appends the "events" member of /health.
func AppendEventsHealth(dst []byte, rec *events.Recorder, now time.Time) []byte {
	st := rec.Stats()
	dst = append(dst, `,"events":{"log_bytes":`...)
	dst = strconv.AppendInt(dst, st.Log.Bytes, 10)
	dst = append(dst, `,"max_bytes":`...)
	dst = strconv.AppendInt(dst, st.Log.MaxBytes, 10)
	dst = append(dst, `,"unrecorded":`...)
	dst = strconv.AppendInt(dst, st.TrackFailed, 10)
	dst = append(dst, `,"duplicates":`...)
	dst = strconv.AppendInt(dst, st.Duplicates, 10)
	dst = append(dst, `,"decisions_dropped":`...)
	dst = strconv.AppendInt(dst, st.AdDropped+st.AdErrors, 10)
	if !st.LastFailure.IsZero() {
		dst = append(dst, `,"last_failure_seconds_ago":`...)
		dst = strconv.AppendFloat(dst, now.Sub(st.LastFailure).Seconds(), 'f', 1, 64)
		dst = append(dst, `,"last_error":`...)
		dst = appendJSONString(dst, st.LastError)
	}
	return append(dst, '}')
}
