// Package privacy turns a request's privacy signals (COPPA, GDPR with a
// TCF v2 consent string, limit-ad-tracking, Apple's ATT status, the IAB US
// privacy string, GPP) into one Decision: what the edge may do with the
// device and the user for this request. docs/PRIVACY.md is the table of
// signal -> action; this file is its only implementation, and the edge's
// handlers, the event log and the A/B bucketing all read the Decision.
//
// Every signal maps to one of three levels, and the strictest present
// wins:
//
//	Allowed         personalised: device id, profile, caps as usual
//	Unpersonalised  no profile read, no personalised targeting; the device
//	                id still keys frequency caps and the A/B bucket
//	Anonymous       as Unpersonalised, and the device id is neither used
//	                (no A/B bucket, no caps read or updated) nor stored
//	                (not in tokens or events); the IP is truncated in events
//
// A malformed consent string counts as no consent; a malformed US privacy
// or GPP string counts as an opt-out. The parse of a consent or GPP string
// allocates (the libraries' parsers do); requests without them do not.
package privacy

import (
	"strings"
	"unsafe"

	"github.com/prebid/go-gdpr/consentconstants"
	"github.com/prebid/go-gdpr/vendorconsent"
	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/constants"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspco"
	"github.com/prebid/go-gpp/sections/uspct"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"
	"github.com/prebid/go-gpp/sections/uspva"
)

// Level is how much of the user's data a request may use.
type Level uint8

// Levels, from least to most restricted.
const (
	Allowed Level = iota
	Unpersonalised
	Anonymous
	NumLevels
)

var levelNames = [NumLevels]string{"allowed", "unpersonalised", "anonymous"}

// String names the level for the adedge_privacy_total action label.
func (l Level) String() string {
	if l < NumLevels {
		return levelNames[l]
	}
	return "unknown"
}

// Signal is one privacy signal a request carried.
type Signal uint8

// Signals, each with its fixed level (SignalLevel).
const (
	COPPA         Signal = iota // regs.coppa=1
	GDPRNoConsent               // regs.gdpr=1, TCF v2 string without purposes 1,3,4 or our vendor
	GDPRMalformed               // regs.gdpr=1, consent string missing or not TCF v2
	GDPRConsent                 // regs.gdpr=1 and consent for purposes 1,3,4 and our vendor
	LMT                         // device.lmt=1
	ATT                         // device.ext.atts 1 (restricted) or 2 (denied)
	USPrivacy                   // us_privacy opts out of sale ("1?Y?") or is malformed
	GPPOptOut                   // a GPP US section opts out of sale, sharing or targeted ads, or GPC
	GPPMalformed                // regs.gpp that does not parse
	NumSignals
)

var signalNames = [NumSignals]string{"coppa", "gdpr_no_consent", "gdpr_malformed", "gdpr_consent", "lmt", "att", "us_privacy", "gpp_opt_out", "gpp_malformed"}

var signalLevels = [NumSignals]Level{
	COPPA:         Anonymous,
	GDPRNoConsent: Anonymous,
	GDPRMalformed: Anonymous,
	GDPRConsent:   Allowed,
	LMT:           Anonymous,
	ATT:           Anonymous,
	USPrivacy:     Unpersonalised,
	GPPOptOut:     Unpersonalised,
	GPPMalformed:  Unpersonalised,
}

// String names the signal for the adedge_privacy_total signal label.
func (s Signal) String() string {
	if s < NumSignals {
		return signalNames[s]
	}
	return "unknown"
}

// SignalLevel is the level a signal alone imposes (the docs/PRIVACY.md table).
func SignalLevel(s Signal) Level {
	if s < NumSignals {
		return signalLevels[s]
	}
	return Anonymous
}

// TCF purposes personalisation needs: store/access information on a device
// (1), create a personalised ads profile (3), select personalised ads (4).
var tcfPurposes = [...]consentconstants.Purpose{1, 3, 4}

// Input is the privacy part of a request. Byte slices may alias the
// request; Decide does not keep them.
type Input struct {
	COPPA     bool
	GDPR      bool   // regs.gdpr=1
	Consent   []byte // TCF v2 consent string
	LMT       bool
	ATTS      int8 // device.ext.atts; -1 when absent
	USPrivacy []byte
	GPP       []byte
	GPPSID    []uint16 // applicable sections; empty = every section in GPP
}

// Decision is what the edge may do for one request.
type Decision struct {
	Level   Level
	Signals uint16 // bit s set: Signal s was present
}

// Has reports whether signal s was present.
func (d Decision) Has(s Signal) bool { return d.Signals&(1<<s) != 0 }

// UseDevice: the device id may key the A/B bucket, staging and frequency caps.
func (d Decision) UseDevice() bool { return d.Level < Anonymous }

// ReadProfile: the user profile may be read.
func (d Decision) ReadProfile() bool { return d.Level == Allowed }

// Personalise: profile-based targeting (segments, installs) may apply.
func (d Decision) Personalise() bool { return d.Level == Allowed }

// UpdateCaps: a served impression may update the device's frequency caps.
func (d Decision) UpdateCaps() bool { return d.Level < Anonymous }

// StoreDevice: the device id may go into tracking tokens and events.
func (d Decision) StoreDevice() bool { return d.Level < Anonymous }

// TruncateIP: events keep only the network part of the IP (/24, /48).
func (d Decision) TruncateIP() bool { return d.Level == Anonymous }

func (d *Decision) add(s Signal) {
	d.Signals |= 1 << s
	if l := signalLevels[s]; l > d.Level {
		d.Level = l
	}
}

// Policy holds the edge's own privacy settings.
type Policy struct {
	// VendorID is this network's IAB TCF vendor id (--tcf-vendor-id). Zero
	// means none registered: no GDPR consent string can then grant
	// personalisation.
	VendorID uint16
}

// Decide evaluates in. It never fails: unreadable signals take their
// restrictive meaning.
func (p *Policy) Decide(in *Input) Decision {
	var d Decision
	if in.COPPA {
		d.add(COPPA)
	}
	if in.LMT {
		d.add(LMT)
	}
	if in.ATTS == 1 || in.ATTS == 2 {
		d.add(ATT)
	}
	if len(in.USPrivacy) > 0 && USPrivacyOptOut(in.USPrivacy) {
		d.add(USPrivacy)
	}
	consent, gdpr := in.Consent, in.GDPR
	if len(in.GPP) > 0 {
		optOut, tcf, ok := p.gpp(in.GPP, in.GPPSID)
		switch {
		case !ok:
			d.add(GPPMalformed)
		case optOut:
			d.add(GPPOptOut)
		}
		if tcf != "" && len(consent) == 0 {
			// An applicable TCF EU section means GDPR applies, with that string.
			consent, gdpr = unsafe.Slice(unsafe.StringData(tcf), len(tcf)), true
		}
	}
	if gdpr {
		d.add(p.tcf(consent))
	}
	return d
}

// tcf classifies a TCF consent string under regs.gdpr=1.
func (p *Policy) tcf(consent []byte) (sig Signal) {
	// go-gdpr v1.12.0 indexes past the end of some truncated strings
	// (FuzzConsent found one): a string that panics it is malformed.
	defer func() {
		if recover() != nil {
			sig = GDPRMalformed
		}
	}()
	if len(consent) == 0 {
		return GDPRMalformed
	}
	c, err := vendorconsent.ParseString(string(consent))
	if err != nil || c == nil || c.Version() != 2 {
		return GDPRMalformed
	}
	for _, pu := range tcfPurposes {
		if !c.PurposeAllowed(pu) {
			return GDPRNoConsent
		}
	}
	if p.VendorID == 0 || p.VendorID > c.MaxVendorID() || !c.VendorConsent(p.VendorID) {
		return GDPRNoConsent
	}
	return GDPRConsent
}

// USPrivacyOptOut reports whether an IAB US privacy string ("1YYN") opts
// out of sale: version 1, four characters of Y, N or '-', the third 'Y'.
// A malformed string counts as an opt-out.
func USPrivacyOptOut(s []byte) bool {
	if len(s) != 4 || s[0] != '1' {
		return true
	}
	for _, c := range s[1:] {
		if c != 'Y' && c != 'N' && c != '-' && c != 'y' && c != 'n' {
			return true
		}
	}
	return s[2] == 'Y' || s[2] == 'y'
}

// gpp parses a GPP string and reports whether an applicable US section
// opts out, the applicable TCF EU v2 section's string if any, and whether
// the string parsed.
func (p *Policy) gpp(s []byte, sids []uint16) (optOut bool, tcf string, ok bool) {
	defer func() {
		if recover() != nil { // as for go-gdpr: a panic means malformed
			optOut, tcf, ok = true, "", false
		}
	}()
	if !gppHeaderSane(s) {
		return true, "", false
	}
	c, errs := gpp.Parse(string(s))
	if len(errs) > 0 {
		return true, "", false
	}
	applies := func(id constants.SectionID) bool {
		if len(sids) == 0 {
			return true
		}
		for _, s := range sids {
			if constants.SectionID(s) == id {
				return true
			}
		}
		return false
	}
	for _, sec := range c.Sections {
		if !applies(sec.GetID()) {
			continue
		}
		switch v := sec.(type) {
		case uspnat.USPNAT:
			cs := v.CoreSegment
			optOut = optOut || cs.SaleOptOut == 1 || cs.SharingOptOut == 1 || cs.TargetedAdvertisingOptOut == 1 || v.GPCSegment.Gpc
		case uspca.USPCA:
			cs := v.CoreSegment
			optOut = optOut || cs.SaleOptOut == 1 || cs.SharingOptOut == 1 || v.GPCSegment.Gpc
		case uspva.USPVA:
			optOut = optOut || v.CoreSegment.SaleOptOut == 1 || v.CoreSegment.TargetedAdvertisingOptOut == 1
		case uspco.USPCO:
			optOut = optOut || v.CoreSegment.SaleOptOut == 1 || v.CoreSegment.TargetedAdvertisingOptOut == 1 || v.GPCSegment.Gpc
		case uspct.USPCT:
			optOut = optOut || v.CoreSegment.SaleOptOut == 1 || v.CoreSegment.TargetedAdvertisingOptOut == 1 || v.GPCSegment.Gpc
		case usput.USPUT:
			optOut = optOut || v.CoreSegment.SaleOptOut == 1 || v.CoreSegment.TargetedAdvertisingOptOut == 1
		default:
			switch sec.GetID() {
			case constants.SectionUSPV1:
				optOut = optOut || USPrivacyOptOut([]byte(sec.GetValue()))
			case constants.SectionTCFEU2:
				tcf = strings.Clone(sec.GetValue())
			}
		}
	}
	return optOut, tcf, true
}

// maxGPPSections bounds the sections of one GPP string (the IAB lists
// about twenty section ids in all).
const maxGPPSections = 32

// gppHeaderSane guards go-gpp v0.2.0's Parse, which hangs on some headers
// (FuzzConsent found them): its Fibonacci decoder computes fibonacci(i) by
// plain recursion, exponential in the length of a code, and reads a code
// until two consecutive one bits however long it is; its section-id loop
// never ends on a range ending at 65535. This decodes the header's
// section-id ranges with codes bounded to what a 16-bit id needs and
// accepts only headers whose ranges list exactly one id below 65535 per
// section; go-gpp then reparses a header known to be harmless.
func gppHeaderSane(s []byte) bool {
	hdr, nsec := s, 0
	for i, c := range s {
		if c == '~' {
			if nsec == 0 {
				hdr = s[:i]
			}
			nsec++
		}
	}
	if nsec == 0 || nsec > maxGPPSections || len(hdr) < 4 || len(hdr) > 32 {
		return false
	}
	var bits [32 * 6]byte
	n := 0
	for _, c := range hdr {
		var v byte
		switch {
		case 'A' <= c && c <= 'Z':
			v = c - 'A'
		case 'a' <= c && c <= 'z':
			v = c - 'a' + 26
		case '0' <= c && c <= '9':
			v = c - '0' + 52
		case c == '-':
			v = 62
		case c == '_':
			v = 63
		default:
			return false
		}
		for b := 5; b >= 0; b-- {
			bits[n] = v >> uint(b) & 1
			n++
		}
	}
	pos := 12 // past type and version
	read := func(width int) (uint32, bool) {
		if pos+width > n {
			return 0, false
		}
		var v uint32
		for _, b := range bits[pos : pos+width] {
			v = v<<1 | uint32(b)
		}
		pos += width
		return v, true
	}
	// fib reads one Fibonacci code (weights 1, 2, 3, 5, ...; ends in 11).
	fib := func() (uint32, bool) {
		var v uint32
		prev := byte(0)
		w0, w1 := uint32(1), uint32(2)
		for k := 0; k < 26 && pos < n; k++ { // fib(26) > 65535
			b := bits[pos]
			pos++
			if b == 1 && prev == 1 {
				return v, true
			}
			if b == 1 {
				v += w0
			}
			prev = b
			w0, w1 = w1, w0+w1
		}
		return 0, false
	}
	count, ok := read(12)
	if !ok || count == 0 || int(count) > maxGPPSections {
		return false
	}
	var maxID, total uint32
	for range count {
		isRange, ok := read(1)
		if !ok {
			return false
		}
		off, ok := fib()
		if !ok {
			return false
		}
		start, end := maxID+off, maxID+off
		if isRange == 1 {
			off2, ok := fib()
			if !ok {
				return false
			}
			end = start + off2
		}
		if end >= 0xFFFF {
			return false
		}
		total += end - start + 1
		if total > uint32(nsec) {
			return false
		}
		maxID = max(maxID, end)
	}
	return total == uint32(nsec)
}
