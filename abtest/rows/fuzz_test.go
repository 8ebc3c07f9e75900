package rows

import (
	"testing"

	"github.com/adedge/adedge/abtest"
)

// FuzzParseRow: any line either parses into a row that passes its own
// checks or is refused; never a panic.
func FuzzParseRow(f *testing.F) {
	f.Add([]byte(`{"start":"2026-12-01T07:00:00Z","end":"2026-12-01T07:01:00Z","edge":"e","env":"production","snapshot":"s","experiment":"x","test":"control","test_index":0,"variant":"control","share_bp":5000,"shard":3,"requests":2,"fills":1,"errors":0,"forward_errors":0,"impressions":1,"clicks":0,"revenue_micros":5,"latency_us":[2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"devices":0,"hll":""}`))
	f.Add([]byte(`{"hll":"AQ4BAAAA"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Parse(line)
		if err != nil {
			return
		}
		if r.Shard >= abtest.Shards || len(r.LatencyUS) != abtest.NumLatencyBuckets || r.TestIndex > abtest.MaxTests || r.Env == "" {
			t.Fatalf("accepted an invalid row %+v", r)
		}
	})
}
