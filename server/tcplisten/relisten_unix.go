//go:build unix

package tcplisten

import "syscall"

func relisten(fd uintptr, backlog int) error { return syscall.Listen(int(fd), backlog) }
