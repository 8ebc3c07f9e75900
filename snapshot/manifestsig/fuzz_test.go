package manifestsig

import (
	"bytes"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to Verify: it must never panic, and any
// input it accepts must carry a valid payload that signs back to an envelope
// verifying to the same payload.
func FuzzVerify(f *testing.F) {
	pub, priv := testKey()
	env, err := Sign(priv, samplePayload())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte(`{"signed":"e30=","signature":"","key_id":""}`))
	f.Add(bytes.Replace(env, []byte(`"signature":"`), []byte(`"signature":"A`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Verify(pub, data, "")
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid payload: %v", err)
		}
		again, err := Sign(priv, p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Verify(pub, again, p.Channel)
		if err != nil || *p2 != *p {
			t.Fatalf("re-signed payload does not verify: %v", err)
		}
	})
}
