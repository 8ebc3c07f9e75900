package ortb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// The same bodies decoded by prebid/openrtb's BidRequest (encoding/json)
// give the same values for every member this package reads.
func TestAgreesWithPrebid(t *testing.T) {
	bodies := map[string][]byte{"inApp": []byte(inApp)}
	files, _ := filepath.Glob("testdata/iab/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies[p] = b
	}
	for name, body := range bodies {
		var want openrtb2.BidRequest
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%s: prebid: %v", name, err)
		}
		var got Request
		var s Scratch
		if err := Parse(body, &got, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		eq := func(what string, a, b any) {
			if a != b {
				t.Errorf("%s: %s: got %v, prebid %v", name, what, a, b)
			}
		}
		eq("id", string(got.ID), want.ID)
		eq("tmax", got.TMax, want.TMax)
		eq("imps", len(got.Imp), len(want.Imp))
		for i := range got.Imp {
			g, w := &got.Imp[i], &want.Imp[i]
			eq("imp.id", string(g.ID), w.ID)
			eq("imp.tagid", string(g.TagID), w.TagID)
			eq("imp.bidfloor", g.BidFloor, w.BidFloor)
			eq("imp.instl", g.Instl, w.Instl == 1)
			eq("imp.rwdd", g.Rwdd, w.Rwdd == 1)
			eq("imp.banner", g.HasBanner, w.Banner != nil)
			if w.Banner != nil && w.Banner.W != nil {
				eq("banner.w", int64(g.Banner.W), *w.Banner.W)
				eq("banner.h", int64(g.Banner.H), *w.Banner.H)
			}
			eq("imp.video", g.HasVideo, w.Video != nil)
			if w.Video != nil {
				eq("video.maxduration", int64(g.Video.MaxDuration), w.Video.MaxDuration)
				eq("video.minduration", int64(g.Video.MinDuration), w.Video.MinDuration)
				eq("video.mimes", g.Video.NMimes, len(w.Video.MIMEs))
				eq("video.plcmt", int64(g.Video.Plcmt), int64(w.Video.Plcmt))
			}
		}
		if want.App != nil {
			eq("app.bundle", string(got.App.Bundle), want.App.Bundle)
		}
		if d := want.Device; d != nil {
			eq("device.ifa", string(got.Device.IFA), d.IFA)
			eq("device.ua", string(got.Device.UA), d.UA)
			eq("device.os", string(got.Device.OS), d.OS)
			eq("device.osv", string(got.Device.OSV), d.OSV)
			eq("device.ip", string(got.Device.IP), d.IP)
			if d.Lmt != nil {
				eq("device.lmt", int8(got.Device.LMT), *d.Lmt)
			}
			eq("device.devicetype", int64(max(got.Device.DeviceType, 0)), int64(d.DeviceType))
			if d.Geo != nil {
				eq("device.geo.country", string(got.Device.Country), d.Geo.Country)
			}
		}
		if r := want.Regs; r != nil {
			eq("regs.coppa", int8(max(got.Regs.COPPA, 0)), r.COPPA)
			eq("regs.gpp", string(got.Regs.GPP), r.GPP)
			eq("regs.gpp_sid", got.Regs.NGPPSID, len(r.GPPSID))
		}
	}
}

// BenchmarkPrebidUnmarshal is the comparison behind docs/DECISIONS.md:
// the same body into prebid/openrtb's structs with encoding/json.
func BenchmarkPrebidUnmarshal(b *testing.B) {
	body := []byte(inApp)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var r openrtb2.BidRequest
		if err := json.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}
