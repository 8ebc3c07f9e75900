package abtest

import (
	"testing"
)

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
