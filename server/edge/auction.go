package edge

import (
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/adreq"
	"github.com/adedge/adedge/server/geo"
	"github.com/adedge/adedge/server/ortb"
	"github.com/adedge/adedge/server/privacy"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/server/snapsource"
	"github.com/adedge/adedge/server/staging"
	"github.com/adedge/adedge/server/token"
	"github.com/adedge/adedge/snapshot"
)

// auctionState is the OpenRTB part of the pooled per-request memory.
type auctionState struct {
	req     ortb.Request
	scratch ortb.Scratch
	pin     privacy.Input
	chosen  []uint32 // campaigns already in this response (selection.Request.Exclude)
	adm     []byte   // one bid's markup before JSON escaping
}

// Auction request errors that need no allocation.
var (
	errNoTagID   [ortb.MaxImps][2]string // message, field
	errOS        = "device.os: must be android or ios"
	errNoCountry = "device.geo.country: required (no geoip database, or the client IP is not in it)"
	errCountry   = "device.geo.country: must be an ISO 3166-1 alpha-3 (or alpha-2) country code"
)

func init() {
	for i := range errNoTagID {
		f := "imp[" + strconv.Itoa(i) + "].tagid"
		errNoTagID[i] = [2]string{f + ": required (the placement id)", f}
	}
}

// serveAuction answers POST /openrtb2/auction: an OpenRTB 2.6 BidRequest
// subset (server/ortb) in, a BidResponse with one bid per filled imp, or
// 204 when no imp fills. Privacy signals decide what the request may use
// (server/privacy); no campaign wins two imps of one request.
func (s *Server) serveAuction(ctx *fasthttp.RequestCtx) {
	start := requestStart(ctx)
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	au := &st.auc
	m := &s.metrics.sdk
	bad := func(code int, msg, field string) {
		m.auctions["bad_request"].Inc()
		s.metrics.badRequests.Inc()
		jsonError(ctx, code, msg, field)
	}
	if err := ortb.Parse(ctx.PostBody(), &au.req, &au.scratch); err != nil {
		bad(err.Status, err.Error(), err.Field)
		return
	}
	r := &au.req
	for i := range r.Imp {
		if len(r.Imp[i].TagID) == 0 {
			bad(fasthttp.StatusBadRequest, errNoTagID[i][0], errNoTagID[i][1])
			return
		}
	}
	// The device, as adreq.Request: the one shape selection and the
	// event log read.
	q := &st.req
	*q = adreq.Request{DeviceType: snapshot.DevicePhone}
	os, ok := adreq.ParseOS(r.Device.OS)
	if !ok {
		bad(fasthttp.StatusBadRequest, errOS, "device.os")
		return
	}
	q.OS = os
	q.OSVersion, _ = snapshot.ParseOSVersion(string(r.Device.OSV)) // unknown = 0, as on /v1/ad
	if r.Device.DeviceType == 5 {                                  // AdCOM 5: tablet
		q.DeviceType = snapshot.DeviceTablet
	}
	if r.HasApp {
		q.App = r.App.Bundle
	}
	switch c := r.Device.Country; {
	case len(c) > 0:
		idx, ok := ortb.CountryIndex(c)
		if !ok {
			bad(fasthttp.StatusBadRequest, errCountry, "device.geo.country")
			return
		}
		q.Country = idx
		m.geo["request"].Inc()
	default:
		idx, src := s.countryFromIP(ctx, r.Device.IP)
		if src == "" {
			m.geo["none"].Inc()
			bad(fasthttp.StatusBadRequest, errNoCountry, "device.geo.country")
			return
		}
		q.Country = idx
		m.geo[src].Inc()
	}

	// Privacy first: it decides whether the device id exists for us.
	pin := &au.pin
	*pin = privacy.Input{COPPA: r.Regs.COPPA == ortb.Yes, GDPR: r.Regs.GDPR == ortb.Yes, Consent: r.Consent,
		LMT: r.Device.LMT == ortb.Yes, ATTS: r.Device.ATTS, USPrivacy: r.Regs.USPrivacy, GPP: r.Regs.GPP, GPPSID: r.Regs.GPPSIDs()}
	dec := s.cfg.Privacy.Decide(pin)
	m.countPrivacy(dec)
	if dec.UseDevice() && adreq.IDChars(r.Device.IFA) && string(r.Device.IFA) != adreq.ZeroDeviceID {
		q.Device = r.Device.IFA
	}

	snap := s.src.Acquire()
	if snap == nil {
		s.metrics.noSnapshot.Inc()
		jsonError(ctx, fasthttp.StatusServiceUnavailable, "no snapshot loaded yet", "")
		return
	}
	defer snap.Release()
	exp := s.experiment(snap)
	a := exp.bucketer.Assign(q.Device) // no device: control, unassigned
	if s.cfg.Forwarder != nil && s.cfg.Staging.Staged(q.Device) && !staging.IsForwarded(ctx) {
		if s.forwardStaging(ctx, exp, a) {
			return
		}
	}
	var device []byte // what may be read against and stored
	if dec.StoreDevice() {
		device = q.Device
	}
	prof := s.readProfile(st, device, dec.ReadProfile())

	now := s.wallNow(start)
	b := st.buf[:0]
	au.chosen = au.chosen[:0]
	bids := 0
	for i := range r.Imp {
		imp := &r.Imp[i]
		seq := s.reqSeq.Add(1)
		q.Placement = imp.TagID
		st.sreq = selection.Request{
			Placement: imp.TagID, Country: q.Country, OS: q.OS, OSVersion: q.OSVersion, DeviceType: q.DeviceType,
			Now: now.Unix(), Seed: seq, MinECPMMicros: floorMicros(imp), Exclude: au.chosen, App: q.App,
		}
		slotOf(imp, &st.sreq)
		s.sel.Select(snap.R, &st.sreq, prof, exp.bucketer.Params(a), &st.res)
		res := &st.res
		s.metrics.adRequests[res.Outcome].Inc()
		for k, n := range res.Skipped {
			if n > 0 {
				s.metrics.skips[k].Add(float64(n))
			}
		}
		outcome := abtest.NoFill
		if res.Outcome == selection.UnknownPlacement {
			outcome = abtest.Error
		}
		if res.Outcome == selection.Filled {
			var ok bool
			b, ok = s.appendBid(b, bids, st, imp, snap, exp, a, device, dec, now)
			if ok {
				outcome = abtest.Fill
				bids++
				au.chosen = append(au.chosen, uint32(res.Campaign))
			}
		}
		di := decisionInfo{dec: dec, device: device, latency: time.Since(start), dims: decisionDims(snap.R, st, outcome)}
		s.recordDecision(ctx, st, snap, exp, a, seq, outcome, now, &di)
		if exp.gen != nil {
			exp.gen.RequestDims(a, q.Device, outcome, di.latency, &di.dims.ab)
		}
	}
	s.setEnvHeader(ctx)
	if bids == 0 {
		m.auctions["no_bid"].Inc()
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	} else {
		m.auctions["bid"].Inc()
		m.bids.Add(float64(bids))
		b = append(b, `]}],"cur":"USD"}`...)
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	}
	st.buf = b
	el := time.Since(start)
	s.metrics.adLatency.Observe(el.Seconds())
	s.access(st, ctx.Response.StatusCode(), el, snap)
}

// floorMicros is an imp's bidfloor (CPM, USD) in eCPM micros. A floor in
// another currency cannot be compared and is ignored.
func floorMicros(imp *ortb.Imp) int64 {
	if imp.BidFloor <= 0 || (len(imp.FloorCur) > 0 && string(imp.FloorCur) != "USD") {
		return 0
	}
	return int64(imp.BidFloor * 1e6)
}

// countryFromIP looks up device.ip, else the client address (through the
// trusted balancers' X-Forwarded-For); src names which one answered, ""
// when neither did.
func (s *Server) countryFromIP(ctx *fasthttp.RequestCtx, deviceIP []byte) (uint16, string) {
	db := s.cfg.Geo
	if db == nil {
		return 0, ""
	}
	if len(deviceIP) > 0 {
		if ip, err := geo.ParseIP(deviceIP); err == nil {
			if c, ok := db.Country(ip); ok {
				return c, "device_ip"
			}
		}
	}
	if c, ok := db.Country(s.clientIP(ctx)); ok {
		return c, "client_ip"
	}
	return 0, ""
}

// geoCountry fills a /v1/ad request's missing country from the client IP.
func (s *Server) geoCountry(ctx *fasthttp.RequestCtx, q *adreq.Request) *adreq.FieldError {
	c, ok := s.cfg.Geo.Country(s.clientIP(ctx))
	if !ok {
		s.metrics.sdk.geo["none"].Inc()
		return adreq.ErrCountryRequired
	}
	q.Country = c
	s.metrics.sdk.geo["client_ip"].Inc()
	return nil
}

// clientIP is the request's client address (geo.ClientIP).
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return geo.ClientIP(peer, s.cfg.TrustedProxies, func() []byte { return ctx.Request.Header.Peek("X-Forwarded-For") })
}

// slotOf copies what an imp says about its slot into the selection
// request: selection matches the creatives against it (docs/API.md,
// "Formats").
func slotOf(imp *ortb.Imp, q *selection.Request) {
	if imp.HasBanner {
		q.Accept |= 1 << snapshot.FormatBanner
		q.Sizes = imp.Banner.Sizes()
	}
	if imp.HasVideo {
		v := &imp.Video
		q.Accept |= 1 << snapshot.FormatVideo
		q.Mimes = v.MimeList()
		q.MinDuration, q.MaxDuration, q.Protocols = v.MinDuration, v.MaxDuration, v.Protocols
	}
	if imp.HasNative {
		q.Accept |= 1 << snapshot.FormatNative
	}
	q.Interstitial = imp.Instl || (imp.HasVideo && imp.Video.Plcmt == 3) // AdCOM plcmt 3: interstitial
}

// appendBid appends one bid (with the seatbid header before the first)
// for the selection in st.res, whose creative selection matched to the
// imp. It returns false, appending nothing, when its token cannot be
// signed.
func (s *Server) appendBid(b []byte, n int, st *reqState, imp *ortb.Imp, snap *snapsource.Snap, exp *expInfo, a abtest.Assignment,
	device []byte, dec privacy.Decision, now time.Time) ([]byte, bool) {
	r := snap.R
	res := &st.res
	camp, _ := r.Campaign(res.Campaign)
	cr, _ := r.Creative(res.Creative)
	pl, _ := r.Placement(res.Placement)
	campID, crID, asset := r.String(camp.ID), r.String(cr.ID), r.String(cr.AssetURL)
	vast := cr.Format == snapshot.FormatVideo
	_, variant := exp.bucketer.Labels(a)
	capPeriod := res.CapPeriod
	if !dec.UpdateCaps() {
		capPeriod = 0
	}
	st.sign = token.Claims{
		Issued: now.UnixMilli(), PriceMicros: res.PriceMicros, CapPeriod: capPeriod,
		Env: s.envCode, Test: a.Test, Placement: imp.TagID, Country: countryCode(st.sreq.Country),
		OS: uint8(st.sreq.OS), DeviceType: st.sreq.DeviceType, Format: formatCode(&cr),
		Privacy: uint8(dec.Level), PrivacySignals: dec.Signals,
		Campaign: unsafe.Slice(unsafe.StringData(campID), len(campID)),
		Creative: unsafe.Slice(unsafe.StringData(crID), len(crID)),
		Device:   device, Experiment: unsafe.Slice(unsafe.StringData(exp.id), len(exp.id)),
		Variant: unsafe.Slice(unsafe.StringData(variant), len(variant)), Snapshot: unsafe.Slice(unsafe.StringData(snap.Version), len(snap.Version)),
	}
	var err error
	st.tok, err = s.signer.Append(st.tok[:0], &st.sign)
	if err != nil {
		s.event("token_error", err)
		return b, false
	}
	if n == 0 {
		b = append(b, `{"id":`...)
		b = appendJSONString(b, unsafe.String(unsafe.SliceData(st.auc.req.ID), len(st.auc.req.ID)))
		b = append(b, `,"bidid":"`...)
		b = appendHex64(b, s.reqSeq.Load()^s.reqSalt)
		b = append(b, `","seatbid":[{"seat":"adedge","bid":[`...)
	} else {
		b = append(b, ',')
	}
	b = append(b, `{"id":"`...)
	b = strconv.AppendInt(b, int64(n+1), 10)
	b = append(b, `","impid":`...)
	b = appendJSONString(b, unsafe.String(unsafe.SliceData(imp.ID), len(imp.ID)))
	b = append(b, `,"price":`...)
	b = strconv.AppendFloat(b, float64(res.ECPMMicros)/1e6, 'f', -1, 64)
	b = append(b, `,"adm":"`...)
	adm := st.auc.adm[:0]
	if vast {
		adm = s.appendVAST(adm, st, r, &cr, campID, crID, &st.sreq)
	} else {
		adm = s.appendMarkup(adm, st, asset, cr.Width, cr.Height)
	}
	st.auc.adm = adm
	b = appendJSONStringBody(b, unsafe.String(unsafe.SliceData(adm), len(adm)))
	b = append(b, `","burl":"`...)
	b = s.appendTrackURL(b, "/v1/imp?t=", st.tok)
	b = append(b, `","nurl":"`...)
	b = s.appendTrackURL(b, "/v1/win?t=", st.tok)
	b = append(b, "&p=${AUCTION_PRICE}"...)
	b = append(b, `","crid":`...)
	b = appendJSONString(b, crID)
	b = append(b, `,"cid":`...)
	b = appendJSONString(b, campID)
	if v := r.String(cr.ADomain); v != "" {
		b = append(b, `,"adomain":[`...)
		b = appendJSONString(b, v)
		b = append(b, ']')
	}
	if ci, ok := cr.HasCategory(); ok {
		b = append(b, `,"cat":[`...)
		b = appendJSONString(b, r.Category(ci))
		b = append(b, ']')
	}
	if v := r.String(camp.PromotedApp); v != "" {
		b = append(b, `,"bundle":`...)
		b = appendJSONString(b, v)
	}
	b = append(b, `,"w":`...)
	b = strconv.AppendUint(b, uint64(cr.Width), 10)
	b = append(b, `,"h":`...)
	b = strconv.AppendUint(b, uint64(cr.Height), 10)
	switch cr.Format { // AdCOM markup types
	case snapshot.FormatVideo:
		b = append(b, `,"mtype":2,"dur":`...)
		b = strconv.AppendUint(b, uint64(cr.DurationSeconds), 10)
	case snapshot.FormatNative:
		b = append(b, `,"mtype":4`...)
	default:
		b = append(b, `,"mtype":1`...)
	}
	b = append(b, `,"ext":{"format":"`...)
	b = append(b, cr.Format.String()...)
	b = append(b, `","privacy":"`...)
	b = append(b, dec.Level.String()...)
	b = append(b, '"')
	if pl.Rewarded() || imp.Rwdd {
		b = append(b, `,"rewarded":true`...)
	}
	if pl.Interstitial() || st.sreq.Interstitial {
		b = append(b, `,"interstitial":true`...)
	}
	b = append(b, `}}`...)
	return b, true
}

// appendTrackURL appends PublicURL + path + token (JSON-safe: the token is base64url).
func (s *Server) appendTrackURL(b []byte, path string, tok []byte) []byte {
	b = append(b, s.publicJSON...)
	b = append(b, path...)
	return append(b, tok...)
}

// appendMarkup is a banner-style adm: the image (or HTML) asset linked
// through the signed click URL.
func (s *Server) appendMarkup(b []byte, st *reqState, asset string, w, h uint16) []byte {
	b = append(b, `<a href="`...)
	b = appendXMLAttr(b, s.cfg.PublicURL)
	b = append(b, "/v1/click?t="...)
	b = append(b, st.tok...)
	b = append(b, `"><img src="`...)
	b = appendXMLAttr(b, asset)
	b = append(b, `" width="`...)
	b = strconv.AppendUint(b, uint64(w), 10)
	b = append(b, `" height="`...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, `"></a>`...)
}

// appendXMLAttr appends s escaped for an XML/HTML attribute or text node.
func appendXMLAttr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&#39;"...)
		default:
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				continue // not allowed in XML 1.0
			}
			b = append(b, c)
		}
	}
	return b
}
