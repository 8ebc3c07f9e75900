package snaptool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/adedge/adedge/snapshot"
)

// TestHostileRecords resealed files whose record sections hold random
// bytes (valid checksums, so the Reader accepts them) through every tool:
// none may panic, and Verify must report them as verification failures.
func TestHostileRecords(t *testing.T) {
	res := baseWorld().build(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	failures := 0
	for iter := range 60 {
		path := filepath.Join(dir, fmt.Sprintf("h%d.snap", iter))
		reseal(t, res.Path, path, func(id uint32, b []byte) {
			if id == snapshot.SecExperiments || len(b) == 0 {
				return
			}
			for n := rng.IntN(8); n >= 0; n-- {
				i := rng.IntN(len(b))
				switch rng.IntN(3) {
				case 0:
					b[i] = byte(rng.Uint32())
				case 1:
					b[i] = 0xff
				default:
					b[i] ^= 1 << rng.IntN(8)
				}
			}
		})
		err := Verify(io.Discard, path, "", VerifyOptions{NoManifest: true})
		if err != nil {
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("iter %d: verify returned a non-verification error: %v", iter, err)
			}
			failures++
		}
		_ = Inspect(io.Discard, path, InspectOptions{Top: -1})
		_ = Inspect(io.Discard, path, InspectOptions{JSON: true})
		for _, p := range []string{"p-banner", "p-inter"} {
			_ = Lookup(io.Discard, path, p, "US", "android", LookupOptions{OSVersion: "1", DeviceType: "phone", Limit: -1, Now: dataTime})
		}
		_ = Diff(io.Discard, res.Path, path, DiffOptions{Keys: 20, Limit: -1})
		_ = Diff(io.Discard, path, res.Path, DiffOptions{JSON: true})
	}
	if failures < 50 {
		t.Errorf("only %d of 60 corrupted files failed verification", failures)
	}

	// Files snapshot.Open refuses outright: Verify fails cleanly, the
	// others return an error.
	for i, b := range [][]byte{nil, []byte("ADEDGSNP"), bytes.Repeat([]byte{0xff}, 300)} {
		path := filepath.Join(dir, fmt.Sprintf("junk%d.snap", i))
		writeBytes(t, path, b)
		if err := Verify(io.Discard, path, "", VerifyOptions{}); !errors.Is(err, ErrVerify) {
			t.Errorf("junk %d: verify %v", i, err)
		}
		if Inspect(io.Discard, path, InspectOptions{}) == nil || Diff(io.Discard, path, res.Path, DiffOptions{}) == nil ||
			Lookup(io.Discard, path, "p", "US", "ios", LookupOptions{}) == nil {
			t.Errorf("junk %d accepted", i)
		}
	}
}
