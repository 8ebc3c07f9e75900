//go:build !unix

package tcplisten

import "errors"

// SetBacklog is not available off unix.
func SetBacklog(uintptr, int) error { return errors.New("setting the backlog needs a unix kernel") }
