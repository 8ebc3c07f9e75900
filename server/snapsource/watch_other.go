//go:build !linux

package snapsource

import (
	"errors"
	"io"
)

// startWatch has no implementation off Linux; Run polls only.
func startWatch(string, func(string)) (io.Closer, error) {
	return nil, errors.New("inotify not available on this platform")
}
