//go:build !linux

package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

type counters struct{ sent, done atomic.Int64 }

type engine struct{}

// newEngine: the event loop is Linux's (epoll); the edge and its
// benchmarks run on Linux only.
func newEngine(*Options, string, [][]byte, int, *worker, *counters) (*engine, error) {
	return nil, errors.New("the load generator needs Linux (epoll)")
}

func (*engine) run(context.Context, time.Duration, time.Duration, time.Duration) {}
