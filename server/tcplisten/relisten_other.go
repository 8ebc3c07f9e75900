//go:build !unix

package tcplisten

import "errors"

func relisten(uintptr, int) error { return errors.New("setting the backlog needs a unix kernel") }
