package abtest

import (
	"testing"
)

// FuzzParseRow: any line either parses into a row that passes its own
// checks or is refused; never a panic.
func FuzzParseRow(f *testing.F) {
	f.Add([]byte(`{"start":"2026-12-01T07:00:00Z","end":"2026-12-01T07:01:00Z","edge":"e","env":"production","snapshot":"s","experiment":"x","test":"control","test_index":0,"variant":"control","share_bp":5000,"shard":3,"requests":2,"fills":1,"errors":0,"forward_errors":0,"impressions":1,"clicks":0,"revenue_micros":5,"latency_us":[2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"devices":0,"hll":""}`))
	f.Add([]byte(`{"hll":"AQ4BAAAA"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRow(line)
		if err != nil {
			return
		}
		if r.Shard >= Shards || len(r.LatencyUS) != NumLatencyBuckets || r.TestIndex > MaxTests || r.Env == "" {
			t.Fatalf("accepted an invalid row %+v", r)
		}
	})
}

// FuzzParseSet: experiment sets from a snapshot never panic the bucketer.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte(`{"id":"e","salt":"s","tests":[{"id":"a","variant":"v","share_bp":2000,"params":{"floor_multiplier":1.1}}]}`))
	f.Add([]byte(`{"id":"e","salt":"s","tests":[{"id":"a","share_bp":4294967295},{"id":"b","share_bp":2}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSet(b)
		if err != nil {
			return
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
			bk.Labels(a)
		}
	})
}
