//go:build !unix

package health

import "time"

// processCPU is not measured here: the weight follows in-flight requests only.
func processCPU() time.Duration { return 0 }
