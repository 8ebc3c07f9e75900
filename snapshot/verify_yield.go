package snapshot

import (
	"runtime"

	"github.com/cespare/xxhash/v2"
)

// yieldChunk is how much a section checksum hashes between yields.
const yieldChunk = 1 << 20

// yieldingSum64 is xxhash.Sum64 over b in 1 MiB chunks with a
// runtime.Gosched between them. Verifying a new snapshot runs on the
// serving process while it serves: on an edge with one P (a container
// limited to one CPU, or a pinned benchmark) hashing 17 MB in one go held
// the P for a scheduler quantum and showed as a 20 ms stall in client p99
// at each swap; in chunks the longest hold is ~0.1 ms. The result equals
// xxhash.Sum64(b) (TestYieldingSum64).
func yieldingSum64(b []byte) uint64 {
	if len(b) <= yieldChunk {
		return xxhash.Sum64(b)
	}
	d := xxhash.New()
	for len(b) > 0 {
		n := min(len(b), yieldChunk)
		_, _ = d.Write(b[:n])
		b = b[n:]
		runtime.Gosched()
	}
	return d.Sum64()
}
