package ortb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input panics or hangs; whatever is accepted is valid JSON
// and obeys the documented bounds; an error always names a field and a
// status.
func FuzzParse(f *testing.F) {
	f.Add([]byte(inApp))
	files, _ := filepath.Glob("testdata/iab/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"x","imp":[{"id":"1","video":{"maxduration":"30"}}]}`))
	f.Add([]byte(`{"id":"x","imp":[{"id":"1","banner":{"format":[{"w":1,"h":2}]}}],"regs":{"gpp_sid":[1,2]}}`))
	var s Scratch
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := Parse(body, &r, &s)
		if err != nil {
			if err.Field == "" || err.Reason == "" || (err.Status != StatusBadRequest && err.Status != StatusTooLarge) {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if len(body) > MaxBodyLen || len(r.ID) == 0 || len(r.ID) > MaxIDLen || len(r.Imp) == 0 || len(r.Imp) > MaxImps {
			t.Fatalf("bounds: body %d id %q imps %d", len(body), r.ID, len(r.Imp))
		}
		for _, imp := range r.Imp {
			if len(imp.TagID) > MaxIDLen || len(imp.ID) > MaxIDLen || imp.BidFloor < 0 || imp.Banner.NFormat > MaxFormats {
				t.Fatalf("imp bounds %+v", imp)
			}
			for _, c := range imp.TagID {
				if c <= ' ' || c > '~' {
					t.Fatalf("tagid %q", imp.TagID)
				}
			}
		}
		if len(r.Device.IFA) > MaxDeviceLen || len(r.Consent) > MaxConsentLen || len(r.Regs.GPP) > MaxConsentLen {
			t.Fatalf("device/consent bounds")
		}
	})
}
