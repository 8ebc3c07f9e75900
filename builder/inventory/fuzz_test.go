package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/adedge/adedge/abtest"
)

// stdDecode decodes line with encoding/json as strictly as it can
// (DisallowUnknownFields, nothing after the value).
func stdDecode(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return errTrailing
	}
	return nil
}

var errTrailing = os.ErrInvalid

// FuzzLoadCampaignLine feeds one campaigns.jsonl line through the decoder
// and through Load. Neither may panic, and whenever the hand-written
// decoder accepts the line's shape, encoding/json (which it replaced) must
// accept it too and decode the same Campaign: the decoder may be stricter,
// never laxer or different.
func FuzzLoadCampaignLine(f *testing.F) {
	for _, l := range baseFiles()[CampaignsFile] {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"id":"x","frequency_cap":null,"targeting":{"os":[{"name":"ios"}],"countries":[]},"creative_ids":[]}`))
	f.Add([]byte(`{"id":"\u00e9\ud83d\ude00\ud800x","bid_micros":-0,"start":"2026-01-01T00:00:00.5+02:00"}`))
	f.Add([]byte(`{"ID":"a","id":"b","id":"c"} `))
	f.Add([]byte(`{"bid_micros":1e3,"daily_budget_micros":9223372036854775808,"targeting":[[[]]]}`))
	dir := f.TempDir()
	base := newFiles(f)
	for name, lines := range base.m {
		if name != CampaignsFile {
			writeFile(f, filepath.Join(dir, name), strings.Join(lines, "\n")+"\n")
		}
	}
	prefix := strings.Join(base.m[CampaignsFile], "\n") + "\n"
	f.Fuzz(func(t *testing.T, line []byte) {
		d := newLineDecoder()
		var c Campaign
		present, ok := d.campaign(line, &c)
		var ms msgs
		var facts campaignFacts
		if ok {
			validateCampaign(&c, present, &facts, &ms)
		}
		if ok && !d.bad && bytes.IndexByte(line, '\n') < 0 {
			var std Campaign
			if err := stdDecode(line, &std); err != nil {
				t.Fatalf("decoder accepted what encoding/json refuses (%v): %q", err, line)
			}
			if !reflect.DeepEqual(c, std) {
				t.Fatalf("decoders differ on %q:\n ours %#v\n  std %#v", line, c, std)
			}
		}
		writeFile(t, filepath.Join(dir, CampaignsFile), prefix+string(line)+"\n")
		inv, err := Load(dir, Options{})
		if (inv == nil) == (err == nil) {
			t.Fatalf("Load returned %v and %v", inv, err)
		}
		if err != nil {
			if _, isVE := err.(*ValidationError); !isVE {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
		}
	})
}

// FuzzDecodeLine runs the other line decoders the same way (the first
// byte picks the file), checking against encoding/json.
func FuzzDecodeLine(f *testing.F) {
	for i, name := range []string{CreativesFile, PlacementsFile, PredictionsFile} {
		for _, l := range baseFiles()[name] {
			f.Add(append([]byte{byte(i)}, l...))
		}
	}
	f.Add([]byte("\x00{\"id\":\"a\",\"width\":65535,\"height\":-0}"))
	f.Add([]byte("\x02{\"ctr\":1E-400,\"install_rate\":-0.0,\"country\":\"\\u0055S\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || bytes.IndexByte(in, '\n') >= 0 {
			return
		}
		kind, line := in[0]%3, in[1:]
		d := newLineDecoder()
		var ms msgs
		var ours, std any
		var ok bool
		switch kind {
		case 0:
			var c Creative
			var present uint32
			present, ok = d.creative(line, &c)
			validateCreative(&c, present, &ms)
			if c.Video != nil { // what the members were is ours alone
				c.Video.present = 0
				for i := range c.Video.MediaFiles {
					c.Video.MediaFiles[i].present = 0
				}
			}
			ours, std = &c, &Creative{}
		case 1:
			var p Placement
			var present uint32
			present, ok = d.placement(line, &p)
			validatePlacement(&p, present, &ms)
			ours, std = &p, &Placement{}
		case 2:
			var p predLine
			var present uint32
			present, ok = d.prediction(line, &p)
			validatePrediction(&p, present, &ms)
			ours = &Prediction{CampaignID: string(p.campaignID), Country: p.country, OS: p.os, CTR: p.ctr, InstallRate: p.ir}
			std = &Prediction{}
		}
		if !ok || d.bad {
			return
		}
		if err := stdDecode(line, std); err != nil {
			t.Fatalf("decoder accepted what encoding/json refuses (%v): %q", err, line)
		}
		if !reflect.DeepEqual(ours, std) {
			t.Fatalf("decoders differ on %q:\n ours %#v\n  std %#v", line, ours, std)
		}
	})
}

// FuzzExperiments checks experiments.json parsing: no panic, problem
// offsets inside the file, and a file with no problem decodes the same
// with encoding/json.
func FuzzExperiments(f *testing.F) {
	f.Add([]byte(strings.Join(baseFiles()[ExperimentsFile], "\n")))
	f.Add([]byte(`{"id":"e","salt":"s","tests":[{"id":"t","variant":"v","share_bp":10000,"params":{}}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","tests":null} {}`))
	f.Add([]byte(`{"id":"e","salt":"s","holdout":{"salt":"h","share_bp":500},"layers":[{"id":"a","segments":100},{"id":"b","salt":"x","segments":1000}],` +
		`"tests":[{"id":"t1","layer":"a","variant":"v","segments":"0-9,20","allow_move":true,"params":{"min_ctr":0.1}},{"id":"t2","layer":"b","variant":"w","segments":"0-499"}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","layers":[{"id":"a","segments":100}],"tests":[{"id":"t1","layer":"a","variant":"v","segments":"0-19"},{"id":"t2","layer":"a","variant":"v","segments":"10-39"}]}`))
	prev := &Previous{Source: "fuzz", Set: &Experiments{ID: "e", Salt: "s", Layers: []abtest.Layer{{ID: "a", Segments: 100}}, Tests: []ExperimentTest{
		{ID: "t1", Layer: "a", Variant: "v", Segments: "0-19"}}}, Retired: []ExperimentTest{{ID: "t0", Variant: "old"}}}
	f.Fuzz(func(t *testing.T, buf []byte) {
		if _, probs := decodeExperiments(buf, prev); len(probs) > 0 {
			for _, p := range probs {
				if p.pos < -1 || p.pos > len(buf) || p.msg == "" {
					t.Fatalf("bad problem %+v for %q", p, buf)
				}
			}
		}
		e, probs := decodeExperiments(buf, nil)
		for _, p := range probs {
			if p.pos < -1 || p.pos > len(buf) || p.msg == "" {
				t.Fatalf("bad problem %+v for %q", p, buf)
			}
		}
		if len(probs) > 0 {
			return
		}
		var std Experiments
		if err := stdDecode(buf, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, buf)
		}
		if !reflect.DeepEqual(e, std) {
			t.Fatalf("decoders differ on %q:\n ours %#v\n  std %#v", buf, e, std)
		}
	})
}

// FuzzCheckURL checks that checkURL's fast path never accepts a URL the
// full check refuses.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a.example/x?y=1#z", "https://a:1/", "https://a", "https://a.b/%zz", "https://a@b/", "https://[::1]/", "https://a/b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		full := checkURLSlow(v)
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f {
				return // refused before either path
			}
		}
		if plainHTTPSURL(v) && full != "" {
			t.Fatalf("fast path accepted %q, full check says %s", v, full)
		}
	})
}
