package privacy

import (
	"encoding/base64"
	"testing"

	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspnat"
)

// bits is a big-endian bit writer for building TCF v2 core strings.
type bits struct {
	b []byte
	n uint
}

func (w *bits) put(v uint64, width uint) {
	for i := int(width) - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.b[w.n/8] |= 0x80 >> (w.n % 8)
		}
		w.n++
	}
}

// tcfString encodes a TCF v2 core segment (the fields of the IAB's
// "TCString core segment" table, in order) with the given purpose
// consents and vendor consents as a bit field.
func tcfString(version uint64, purposes []int, vendors []uint16) string {
	var w bits
	w.put(version, 6)
	w.put(16000000000, 36) // Created, deciseconds
	w.put(16000000000, 36) // LastUpdated
	w.put(7, 12)           // CmpId
	w.put(1, 12)           // CmpVersion
	w.put(1, 6)            // ConsentScreen
	w.put(4, 6)            // ConsentLanguage "EN"
	w.put(13, 6)
	w.put(100, 12) // VendorListVersion
	w.put(2, 6)    // TcfPolicyVersion
	w.put(0, 1)    // IsServiceSpecific
	w.put(0, 1)    // UseNonStandardStacks
	w.put(0, 12)   // SpecialFeatureOptIns
	var p uint64
	for _, n := range purposes {
		p |= 1 << uint(24-n)
	}
	w.put(p, 24) // PurposesConsent
	w.put(0, 24) // PurposesLITransparency
	w.put(0, 1)  // PurposeOneTreatment
	w.put(4, 6)  // PublisherCC "EN"
	w.put(13, 6)
	var maxV uint16
	for _, v := range vendors {
		maxV = max(maxV, v)
	}
	w.put(uint64(maxV), 16) // MaxVendorId
	w.put(0, 1)             // IsRangeEncoding: bit field
	for id := uint16(1); id <= maxV; id++ {
		set := uint64(0)
		for _, v := range vendors {
			if v == id {
				set = 1
			}
		}
		w.put(set, 1)
	}
	w.put(0, 16) // vendor LI MaxVendorId
	w.put(0, 1)
	w.put(0, 12) // NumPubRestrictions
	return base64.RawURLEncoding.EncodeToString(w.b)
}

const vendor = 733

func gppString(t *testing.T, secs ...gpp.Section) string {
	t.Helper()
	s, err := gpp.Encode(secs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecide(t *testing.T) {
	good := tcfString(2, []int{1, 2, 3, 4, 7}, []uint16{1, vendor})
	natOut := uspnat.USPNAT{SectionID: 7, CoreSegment: uspnat.USPNATCoreSegment{Version: 1, SaleOptOut: 1, SharingOptOut: 2, TargetedAdvertisingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 12), KnownChildSensitiveDataConsents: make([]byte, 2)},
		GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1}}
	natIn := natOut
	natIn.CoreSegment.SaleOptOut = 2
	caGPC := uspca.USPCA{SectionID: 8, CoreSegment: uspca.USPCACoreSegment{Version: 1, SaleOptOut: 2, SharingOptOut: 2,
		SensitiveDataProcessing: make([]byte, 9), KnownChildSensitiveDataConsents: make([]byte, 2)},
		GPCSegment: sections.CommonUSGPCSegment{SubsectionType: 1, Gpc: true}}
	cases := []struct {
		name  string
		in    Input
		level Level
		sigs  []Signal
	}{
		{"nothing", Input{ATTS: -1}, Allowed, nil},
		{"coppa", Input{COPPA: true, ATTS: -1}, Anonymous, []Signal{COPPA}},
		{"gdpr consent", Input{GDPR: true, Consent: []byte(good), ATTS: -1}, Allowed, []Signal{GDPRConsent}},
		{"gdpr consent ignored without gdpr=1", Input{Consent: []byte("garbage"), ATTS: -1}, Allowed, nil},
		{"gdpr no purpose 4", Input{GDPR: true, Consent: []byte(tcfString(2, []int{1, 3}, []uint16{vendor})), ATTS: -1}, Anonymous, []Signal{GDPRNoConsent}},
		{"gdpr no purpose 1", Input{GDPR: true, Consent: []byte(tcfString(2, []int{3, 4}, []uint16{vendor})), ATTS: -1}, Anonymous, []Signal{GDPRNoConsent}},
		{"gdpr other vendor", Input{GDPR: true, Consent: []byte(tcfString(2, []int{1, 3, 4}, []uint16{vendor - 1})), ATTS: -1}, Anonymous, []Signal{GDPRNoConsent}},
		{"gdpr vendor past max", Input{GDPR: true, Consent: []byte(tcfString(2, []int{1, 3, 4}, []uint16{10})), ATTS: -1}, Anonymous, []Signal{GDPRNoConsent}},
		{"gdpr malformed", Input{GDPR: true, Consent: []byte("not-a-tcf-string"), ATTS: -1}, Anonymous, []Signal{GDPRMalformed}},
		{"gdpr missing", Input{GDPR: true, ATTS: -1}, Anonymous, []Signal{GDPRMalformed}},
		{"gdpr v1 string", Input{GDPR: true, Consent: []byte("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"), ATTS: -1}, Anonymous, []Signal{GDPRMalformed}},
		{"lmt", Input{LMT: true, ATTS: -1}, Anonymous, []Signal{LMT}},
		{"att denied", Input{ATTS: 2}, Anonymous, []Signal{ATT}},
		{"att restricted", Input{ATTS: 1}, Anonymous, []Signal{ATT}},
		{"att authorized", Input{ATTS: 3}, Allowed, nil},
		{"att not determined", Input{ATTS: 0}, Allowed, nil},
		{"usp opt out", Input{USPrivacy: []byte("1YYN"), ATTS: -1}, Unpersonalised, []Signal{USPrivacy}},
		{"usp opt out no lspa", Input{USPrivacy: []byte("1YY-"), ATTS: -1}, Unpersonalised, []Signal{USPrivacy}},
		{"usp no opt out", Input{USPrivacy: []byte("1YNN"), ATTS: -1}, Allowed, nil},
		{"usp not applicable", Input{USPrivacy: []byte("1---"), ATTS: -1}, Allowed, nil},
		{"usp malformed", Input{USPrivacy: []byte("2YNN"), ATTS: -1}, Unpersonalised, []Signal{USPrivacy}},
		{"gpp nat opt out", Input{GPP: []byte(gppString(t, natOut)), ATTS: -1}, Unpersonalised, []Signal{GPPOptOut}},
		{"gpp nat no opt out", Input{GPP: []byte(gppString(t, natIn)), ATTS: -1}, Allowed, nil},
		{"gpp nat opt out not applicable", Input{GPP: []byte(gppString(t, natOut)), GPPSID: []uint16{8}, ATTS: -1}, Allowed, nil},
		{"gpp ca gpc", Input{GPP: []byte(gppString(t, caGPC)), ATTS: -1}, Unpersonalised, []Signal{GPPOptOut}},
		{"gpp uspv1 opt out", Input{GPP: []byte("DBABTA~1YYN"), ATTS: -1}, Unpersonalised, []Signal{GPPOptOut}},
		{"gpp tcf section", Input{GPP: []byte("DBABMA~" + good), GPPSID: []uint16{2}, ATTS: -1}, Allowed, []Signal{GDPRConsent}},
		{"gpp tcf section no consent", Input{GPP: []byte("DBABMA~" + tcfString(2, []int{1}, []uint16{vendor})), ATTS: -1}, Anonymous, []Signal{GDPRNoConsent}},
		{"gpp malformed", Input{GPP: []byte("not gpp"), ATTS: -1}, Unpersonalised, []Signal{GPPMalformed}},
		{"coppa beats consent", Input{COPPA: true, GDPR: true, Consent: []byte(good), ATTS: -1}, Anonymous, []Signal{COPPA, GDPRConsent}},
		{"usp and lmt", Input{LMT: true, USPrivacy: []byte("1YYN"), ATTS: -1}, Anonymous, []Signal{LMT, USPrivacy}},
	}
	p := Policy{VendorID: vendor}
	for _, c := range cases {
		d := p.Decide(&c.in)
		var want uint16
		for _, s := range c.sigs {
			want |= 1 << s
		}
		if d.Level != c.level || d.Signals != want {
			t.Errorf("%s: got level %v signals %b, want %v %b", c.name, d.Level, d.Signals, c.level, want)
		}
	}
	// Without a registered vendor id no string grants consent.
	var none Policy
	if d := none.Decide(&Input{GDPR: true, Consent: []byte(good), ATTS: -1}); d.Level != Anonymous || !d.Has(GDPRNoConsent) {
		t.Errorf("vendor 0: %+v", d)
	}
}

// What each level permits: the rows of docs/PRIVACY.md.
func TestDecisionActions(t *testing.T) {
	type row struct{ useDevice, readProfile, personalise, updateCaps, storeDevice, truncateIP bool }
	want := map[Level]row{
		Allowed:        {true, true, true, true, true, false},
		Unpersonalised: {true, false, false, true, true, false},
		Anonymous:      {false, false, false, false, false, true},
	}
	for l, w := range want {
		d := Decision{Level: l}
		got := row{d.UseDevice(), d.ReadProfile(), d.Personalise(), d.UpdateCaps(), d.StoreDevice(), d.TruncateIP()}
		if got != w {
			t.Errorf("%v: got %+v want %+v", l, got, w)
		}
	}
}

// A request without consent or GPP strings decides without allocating.
func TestDecideAllocs(t *testing.T) {
	p := Policy{VendorID: vendor}
	in := Input{COPPA: true, LMT: true, ATTS: 2, USPrivacy: []byte("1YYN")}
	if n := testing.AllocsPerRun(100, func() { p.Decide(&in) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzConsent(f *testing.F) {
	f.Add(tcfString(2, []int{1, 3, 4}, []uint16{vendor}), "DBABMA~"+tcfString(2, []int{1}, nil), "1YYN", true)
	f.Add("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "DBABBgA~xlgWEYCZAA", "1---", true)
	f.Add("", "DBACNY~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN", "", false)
	f.Add("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", "DBABrGA~DSJgmkoZJSA.YA~BlgWEYCY.QA~BSFgmiU~bSFgmJQ.YA~BWJYJllA~bSFgmSZQ.YA", "1YN", true)
	p := Policy{VendorID: vendor}
	f.Fuzz(func(t *testing.T, consent, gppStr, usp string, gdpr bool) {
		d := p.Decide(&Input{GDPR: gdpr, Consent: []byte(consent), GPP: []byte(gppStr), USPrivacy: []byte(usp), ATTS: -1})
		if d.Level >= NumLevels {
			t.Fatalf("level %d", d.Level)
		}
		if gdpr && d.Level == Allowed && !d.Has(GDPRConsent) {
			t.Fatalf("gdpr=1 allowed without consent: %+v", d)
		}
		if d.Has(GDPRConsent) && (d.Has(GDPRNoConsent) || d.Has(GDPRMalformed)) {
			t.Fatalf("contradictory signals %b", d.Signals)
		}
	})
}
