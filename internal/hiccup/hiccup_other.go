//go:build !linux

package hiccup

import (
	"errors"
	"time"
)

func thread(int, int) (func() time.Duration, func(time.Duration), error) {
	return nil, nil, errors.New("hiccup: needs Linux (sched_setaffinity, SCHED_FIFO)")
}
