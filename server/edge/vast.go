package edge

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/snapshot"
)

// appendVAST appends an inline VAST 4.2 document for a video creative:
// its media files (those of a mime type the player takes, when it names
// any) with their sizes, bitrates and delivery, its duration, the signed
// impression URL as Impression, start/quartile/complete tracking and
// ClickTracking through /v1/video, and ClickThrough through the signed
// /v1/click redirect. It validates against the IAB's vast_4.2.xsd
// (TestVASTValidatesAgainstXSD).
func (s *Server) appendVAST(b []byte, st *reqState, r *snapshot.Reader, cr *snapshot.Creative, campID, crID string, q *selection.Request) []byte {
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?><VAST version="4.2" xmlns="http://www.iab.com/VAST"><Ad id="`...)
	b = appendXMLAttr(b, crID)
	b = append(b, `"><InLine><AdSystem version="1">adedge</AdSystem><Impression id="adedge">`...)
	b = s.appendXMLURL(b, "/v1/imp?t=", st.tok, "")
	b = append(b, `</Impression><AdServingId>`...)
	b = appendHex64(b, s.reqSeq.Load()^s.reqSalt)
	b = append(b, `</AdServingId><AdTitle>`...)
	b = appendXMLAttr(b, campID)
	b = append(b, `</AdTitle><Creatives><Creative id="`...)
	b = appendXMLAttr(b, crID)
	b = append(b, `" adId="`...)
	b = appendXMLAttr(b, crID)
	b = append(b, `"><Linear><TrackingEvents>`...)
	for _, e := range videoEvents[:5] {
		b = append(b, `<Tracking event="`...)
		b = append(b, e...)
		b = append(b, `">`...)
		b = s.appendXMLURL(b, "/v1/video?e=", st.tok, e)
		b = append(b, `</Tracking>`...)
	}
	b = append(b, `</TrackingEvents><Duration>`...)
	b = appendDuration(b, int64(cr.DurationSeconds))
	b = append(b, `</Duration><MediaFiles>`...)
	for k := 0; k < int(cr.MediaFiles.Len); k++ {
		m, ok := r.MediaFile(int(cr.MediaFiles.Off) + k)
		if !ok {
			break
		}
		mime := r.String(m.MIME)
		if !selection.AcceptsMIME(q.Mimes, mime) {
			continue
		}
		b = append(b, `<MediaFile delivery="`...)
		b = append(b, snapshot.DeliveryName(m.Delivery)...)
		b = append(b, `" type="`...)
		b = appendXMLAttr(b, mime)
		b = append(b, `" width="`...)
		b = strconv.AppendUint(b, uint64(m.Width), 10)
		b = append(b, `" height="`...)
		b = strconv.AppendUint(b, uint64(m.Height), 10)
		if m.BitrateKbps > 0 {
			b = append(b, `" bitrate="`...)
			b = strconv.AppendUint(b, uint64(m.BitrateKbps), 10)
		}
		b = append(b, `">`...)
		b = appendXMLAttr(b, r.String(m.URL))
		b = append(b, `</MediaFile>`...)
	}
	b = append(b, `</MediaFiles><VideoClicks><ClickTracking id="adedge">`...)
	b = s.appendXMLURL(b, "/v1/video?e=", st.tok, "click")
	b = append(b, `</ClickTracking><ClickThrough id="adedge">`...)
	b = s.appendXMLURL(b, "/v1/click?t=", st.tok, "")
	b = append(b, `</ClickThrough></VideoClicks></Linear><UniversalAdId idRegistry="adedge">`...)
	b = appendXMLAttr(b, crID)
	return append(b, `</UniversalAdId></Creative></Creatives></InLine></Ad></VAST>`...)
}

// appendXMLURL appends PublicURL + path [+ event + "&t="] + token, XML-escaped.
func (s *Server) appendXMLURL(b []byte, path string, tok []byte, event string) []byte {
	b = appendXMLAttr(b, s.cfg.PublicURL)
	b = append(b, path...)
	if event != "" {
		b = append(b, event...)
		b = append(b, "&amp;t="...)
	}
	return append(b, tok...)
}

// appendDuration appends secs as VAST's HH:MM:SS.
func appendDuration(b []byte, secs int64) []byte {
	h, m, sec := secs/3600, secs/60%60, secs%60
	for _, v := range [3]int64{h, m, sec} {
		if v < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ':')
	}
	return b[:len(b)-1]
}

// serveWin answers /v1/win?t=TOKEN&p=PRICE, a bid's nurl: the exchange or
// mediation layer says the bid won its auction (p is its clearing price,
// ${AUCTION_PRICE} substituted, or not). The token is the bid's, verified
// like a pixel's (403 forged or expired), and the notice is counted in
// adedge_win_notices_total. It is not billing and writes no event: the
// impression pixel (burl, /v1/imp) is what bills, once, so a win notice
// and a burl for one bid never count twice.
func (s *Server) serveWin(ctx *fasthttp.RequestCtx) {
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	if !s.verifyToken(ctx, st, s.cfg.Now()) {
		return
	}
	s.metrics.sdk.wins.Inc()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// serveVideo answers /v1/video?e=EVENT&t=TOKEN, the VAST tracking pixels:
// the token is the bid's signed impression token, verified like a pixel's,
// and the event is counted in adedge_video_events_total. With an event log
// the start and quartile events are recorded like pixels (once per token
// and event; 503 when the log cannot take them) as video_* events. Billing
// stays on /v1/imp (the VAST Impression): quartiles are not billable, and
// the VAST ClickTracking ping is not a click (the ClickThrough via
// /v1/click is).
func (s *Server) serveVideo(ctx *fasthttp.RequestCtx) {
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	ev := ctx.QueryArgs().Peek("e")
	idx := -1
	for i, e := range videoEvents {
		if string(ev) == e {
			idx = i
		}
	}
	if idx < 0 {
		jsonError(ctx, fasthttp.StatusBadRequest, "e: must be start, firstQuartile, midpoint, thirdQuartile, complete or click", "e")
		return
	}
	now := s.cfg.Now()
	if !s.verifyToken(ctx, st, now) {
		return
	}
	dup := false
	if k := videoKinds[idx]; k != 0 {
		var ok bool
		if dup, ok = s.recordTrack(ctx, st, &st.claims, k, now); !ok {
			return // 503: not recorded, the player retries
		}
	}
	if !dup {
		s.metrics.sdk.videoEvents[idx].Inc()
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
