//go:build !linux

package wal

import (
	"errors"
	"os"
)

// aioFsync exists on Linux only; elsewhere the log uses fsync(2).
type aioFsync struct{}

var errNoAIO = errors.New("wal: AIO fsync unavailable")

func newAIOFsync() (*aioFsync, error) { return nil, errors.New("not Linux") }

func (a *aioFsync) fsync(*os.File) error { return errNoAIO }

func (a *aioFsync) close() {}
