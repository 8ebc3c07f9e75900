package abtest

import (
	"testing"
)

// FuzzParseSet: experiment sets from a snapshot never panic the bucketer.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte(`{"id":"e","salt":"s","tests":[{"id":"a","variant":"v","share_bp":2000,"params":{"floor_multiplier":1.1}}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","tests":[{"id":"a","share_bp":4294967295},{"id":"b","share_bp":2}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","holdout":{"salt":"h","share_bp":500},"layers":[{"id":"a","segments":100},{"id":"b","salt":"x","segments":1000}],` +
		`"tests":[{"id":"t1","layer":"a","variant":"v","segments":"0-9,20","params":{"min_ctr":0.1}},{"id":"t2","layer":"b","variant":"w","segments":"0-499","allow_move":true}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","layers":[{"id":"a","segments":10000}],"tests":[{"id":"t1","layer":"a","variant":"v","segments":"0-9999"}]}`))
	ref := twoLayers()
	legacy := defaultSet()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSet(b)
		if err != nil {
			return
		}
		// Comparing with any valid set, either way, never panics, and
		// fractions stay in [0, 1].
		for _, o := range []*Set{&ref, &legacy} {
			for _, ms := range [][]Move{Moves(o, &s), Moves(&s, o)} {
				for _, m := range ms {
					for _, v := range []float64{m.Moved, m.ToOther, m.Held, m.From, m.OldShare, m.NewShare} {
						if v < 0 || v > 1+1e-9 {
							t.Fatalf("move %+v out of range", m)
						}
					}
				}
			}
			s.CheckChange(o, o.Tests)
			o.CheckChange(&s, s.Tests)
		}
		bk, err := NewBucketer(s, Defaults)
		if err != nil {
			t.Fatalf("validated set refused by NewBucketer: %v", err)
		}
		for _, d := range []string{"", "a", "device-1"} {
			a := bk.Assign([]byte(d))
			if int(a.Test) > bk.NumTests() {
				t.Fatalf("test %d of %d", a.Test, bk.NumTests())
			}
			for l := 0; l < bk.NumLayers(); l++ {
				if int(a.Groups[l]) > bk.LayerTests(l) {
					t.Fatalf("layer %d group %d of %d", l, a.Groups[l], bk.LayerTests(l))
				}
				bk.LayerLabels(a, l)
			}
			_ = bk.Params(a)
		}
	})
}
